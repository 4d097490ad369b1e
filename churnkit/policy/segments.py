"""Lifecycle and activity segments of each customer, from the features at ``as_of``.

docs/domain.md "Lifecycle segments": new = first purchase only, repeat = 2-4 purchases,
VIP = 5+; sleeping = no purchase for 30-90 days, lapsed = 90+ days.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Orders from which a customer is a VIP.
VIP_MIN_ORDERS = 5
#: Days since the last order from which a customer is sleeping, and lapsed.
SLEEPING_DAYS, LAPSED_DAYS = 30, 90

def lifecycle_segment(features: pd.DataFrame) -> np.ndarray:
    """``prospect`` (no order yet), ``new`` (1 order), ``repeat`` (2-4) or ``vip`` (5+)."""
    orders = features["orders_lifetime"].to_numpy()
    return np.select(
        [orders == 0, orders == 1, orders < VIP_MIN_ORDERS],
        ["prospect", "new", "repeat"],
        default="vip",
    )


def activity_state(features: pd.DataFrame) -> np.ndarray:
    """``active`` (< 30 days since the last order), ``sleeping`` (30-90) or ``lapsed`` (90+, or
    never ordered)."""
    days = features["days_since_last_order"].to_numpy(dtype=float)
    return np.select(
        [np.isnan(days) | (days >= LAPSED_DAYS), days >= SLEEPING_DAYS],
        ["lapsed", "sleeping"],
        default="active",
    )
