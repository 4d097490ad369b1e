"""Lifecycle and activity segments of each customer, from the features at ``as_of``.

docs/domain.md "Lifecycle segments": new = first purchase only, repeat = 2-4 purchases,
VIP = 5+; sleeping = no purchase for 30-90 days, lapsed = 90+ days.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnkit.data.columns import FeatureColumns

#: Orders from which a customer is a VIP.
VIP_MIN_ORDERS = 5
#: Days since the last order from which a customer is sleeping, and lapsed.
SLEEPING_DAYS, LAPSED_DAYS = 30, 90


def _values(features: pd.DataFrame | FeatureColumns, name: str) -> np.ndarray:
    """Column ``name`` (a KeyError without it); numbers as float64 from feature columns."""
    if isinstance(features, FeatureColumns):
        if name not in features.columns:
            raise KeyError(name)
        return features.number(name)
    return features[name].to_numpy()


def lifecycle_segment(features: pd.DataFrame | FeatureColumns) -> np.ndarray:
    """``prospect`` (no order yet), ``new`` (1 order), ``repeat`` (2-4) or ``vip`` (5+)."""
    orders = _values(features, "orders_lifetime")
    return np.select(
        [orders == 0, orders == 1, orders < VIP_MIN_ORDERS],
        ["prospect", "new", "repeat"],
        default="vip",
    )


def activity_state(features: pd.DataFrame | FeatureColumns) -> np.ndarray:
    """``active`` (< 30 days since the last order), ``sleeping`` (30-90) or ``lapsed`` (90+, or
    never ordered)."""
    days = _values(features, "days_since_last_order").astype(float, copy=False)
    return np.select(
        [np.isnan(days) | (days >= LAPSED_DAYS), days >= SLEEPING_DAYS],
        ["lapsed", "sleeping"],
        default="active",
    )
