"""The cause of each customer's risk, read from the features and the churn model's SHAP values.

docs/domain.md "Why customers leave": a logistics failure, an unresolved complaint, price, being
forgotten after a first purchase, or natural fading. A cause needs *evidence* in the features
(thresholds from the policy config); when several have it, the cause whose features push the
customer's churn score up the most (sum of positive SHAP contributions of its feature group)
wins, ties broken by ``cause_order``. Without evidence the risk is natural fading; a customer
below the at-risk percentile has cause ``none``. Everything is vectorized over the frame.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnkit.data.columns import FeatureColumns
from churnkit.policy.config import CAUSES, PolicyConfig

#: Feature-name patterns of each cause's SHAP group (checked in this order: price first, so
#: that ``tickets_price_*`` counts for price, not for complaints).
CAUSE_FEATURES = (
    ("price", re.compile(r"^(abandoned_|discount|discounted_|delivery_cost_share|tickets_price"
                         r"|checkouts_|cart_adds_)")),
    ("delivery_failure", re.compile(r"^(late_orders_|lost_orders_|not_delivered_orders_"
                                    r"|delivery_failure|days_since_last_failure"
                                    r"|mean_delivery_delay|max_delivery_delay|paid_not_received"
                                    r"|days_since_paid_not_received|tickets_delivery_)")),
    ("unresolved_complaint", re.compile(r"^(unresolved_tickets|oldest_unresolved|tickets_"
                                        r"|days_since_last_ticket|mean_resolution"
                                        r"|mean_satisfaction|min_satisfaction)")),
)


def feature_cause(name: str) -> str | None:
    """The cause whose SHAP group holds feature ``name`` (None: no cause's group)."""
    for cause, pattern in CAUSE_FEATURES:
        if pattern.match(name):
            return cause
    return None


@dataclass(frozen=True)
class RowContributions:
    """The churn model's SHAP values (log-odds) of some rows of a feature frame: ``values``
    (len(rows), len(names) + 1, the bias last) for the rows at positions ``rows``."""

    values: np.ndarray
    rows: np.ndarray
    names: tuple[str, ...]


def column(features: pd.DataFrame | FeatureColumns, name: str,
           default: float = np.nan) -> np.ndarray:
    """Feature ``name`` as float64 (``default`` everywhere when its family is absent)."""
    if isinstance(features, FeatureColumns):
        return features.number(name, default)
    if name not in features.columns:
        return np.full(len(features), default, dtype=float)
    return pd.to_numeric(features[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def cause_evidence(features: pd.DataFrame | FeatureColumns,
                   config: PolicyConfig) -> dict[str, np.ndarray]:
    """Per evidence cause, a boolean array: does the customer show its signs at ``as_of``?"""
    if isinstance(features, FeatureColumns):  # read once per set of thresholds (uplift, policy)
        thresholds = tuple((cause, tuple(sorted(values.items())))
                           for cause, values in sorted(config.causes.items()))
        return dict(features.derived(("cause evidence", thresholds),
                                     lambda: _cause_evidence(features, config)))
    return _cause_evidence(features, config)


def _cause_evidence(features: pd.DataFrame | FeatureColumns,
                    config: PolicyConfig) -> dict[str, np.ndarray]:
    c = config.causes
    with np.errstate(invalid="ignore"):
        d = c["delivery_failure"]
        delivery = ((column(features, "days_since_last_failure") <= d["lookback_days"])
                    | (column(features, "days_since_paid_not_received") <= d["lookback_days"]))
        u = c["unresolved_complaint"]
        complaint = ((column(features, "unresolved_tickets", 0) >= u["min_unresolved"])
                     | ((column(features, "min_satisfaction") <= u["low_satisfaction"])
                        & (column(features, "days_since_last_ticket") <= u["lookback_days"])))
        p = c["price"]
        price = ((column(features, "abandoned_checkouts_90d", 0)
                  >= p["min_abandoned_checkouts_90d"])
                 | (column(features, "delivery_cost_share") >= p["min_delivery_cost_share"])
                 | (column(features, "discounted_order_share") >= p["min_discounted_order_share"])
                 | (column(features, "tickets_price_365d", 0) >= p["min_price_tickets_365d"]))
        f = c["forgotten"]
        orders = column(features, "orders_lifetime", 0)
        forgotten = ((orders >= 1) & (orders <= f["max_orders"])
                     & (column(features, "days_since_last_order") >= f["min_days_since_last_order"])
                     & (column(features, "sessions_since_last_order", 0) == 0))
    return {"delivery_failure": delivery, "unresolved_complaint": complaint, "price": price,
            "forgotten": forgotten}


def at_risk_rows(percentile: np.ndarray, features: pd.DataFrame,
                 config: PolicyConfig) -> np.ndarray:
    """Boolean per row: at or above the config's at-risk percentile, or a paid order that never
    arrived (docs/domain.md: first, whatever the score). Everyone else gets cause ``none``."""
    with np.errstate(invalid="ignore"):
        pnr = (column(features, "days_since_paid_not_received")
               <= config.paid_not_received["lookback_days"])
        return (np.asarray(percentile, dtype=float) >= config.at_risk_percentile) | pnr


@functools.lru_cache(maxsize=16)
def _cause_groups(names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per cause, the positions in ``names`` of its feature group (``bias`` in none)."""
    return {cause: np.asarray([k for k, n in enumerate(names)
                               if n != "bias" and feature_cause(n) == cause], dtype=np.intp)
            for cause, _ in CAUSE_FEATURES}


def _positive_sum(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Per row, the sum of the positive values at ``positions``, added one column after the
    other (an accumulation: a row gets the same bits whatever the other rows, where a row-wise
    ``sum`` orders its additions by the array's layout)."""
    return np.cumsum(np.clip(values[:, positions], 0, None), axis=1)[:, -1]


def cause_shap_mass(contributions: pd.DataFrame | RowContributions | None,
                    index: pd.Index) -> dict[str, np.ndarray]:
    """Per cause, the sum of positive SHAP contributions (log-odds) of its feature group (0 for
    rows without contributions: scoring explains the at-risk customers only).

    ``contributions``: a frame (columns the features and ``bias``) aligned with ``index`` by
    label, or the values of some rows by position."""
    out = {cause: np.zeros(len(index)) for cause, _ in CAUSE_FEATURES}
    if contributions is None or not len(index):
        return out
    if isinstance(contributions, RowContributions):
        values, rows = contributions.values, contributions.rows
        groups = _cause_groups(contributions.names)
    else:
        contributions = contributions.reindex(index, fill_value=0.0)
        values, rows = contributions.to_numpy(dtype=float), None
        groups = _cause_groups(tuple(str(c) for c in contributions.columns))
    for cause, positions in groups.items():
        if len(positions):
            mass = _positive_sum(values, positions)
            if rows is None:
                out[cause] = mass
            else:
                out[cause][rows] = mass
    return out


def infer_causes(features: pd.DataFrame | FeatureColumns, at_risk: np.ndarray,
                 config: PolicyConfig,
                 contributions: pd.DataFrame | RowContributions | None = None
                 ) -> tuple[np.ndarray, dict]:
    """The cause code per customer (index into :data:`CAUSES`) and the evidence behind it.

    Parameters
    ----------
    features
        The feature frame (index ``customer_id``) the scores were computed from.
    at_risk
        Boolean per row: above the config's at-risk percentile (or paid-not-received).
    contributions
        The churn model's per-row SHAP values (columns = features, plus ``bias``); without
        them ties between causes with evidence follow ``cause_order``.
    """
    evidence = cause_evidence(features, config)
    mass = cause_shap_mass(contributions, features.index)
    order = list(config.cause_order)
    n = len(features)
    score = np.full((n, len(order)), -np.inf)
    for k, cause in enumerate(order):
        # A tiny bonus by rank breaks ties (e.g. no SHAP values) in cause_order.
        bonus = (len(order) - k) * 1e-9
        m = mass.get(cause, np.zeros(n))
        score[:, k] = np.where(evidence[cause], m + bonus, -np.inf)
    best = np.argmax(score, axis=1) if n else np.zeros(0, dtype=int)
    has = np.isfinite(score[np.arange(n), best]) if n else np.zeros(0, dtype=bool)
    code_of = np.array([CAUSES.index(c) for c in order])
    codes = np.where(has, code_of[best] if n else best, CAUSES.index("natural"))
    # docs/domain.md: paid but never received is our failure before anything else.
    pnr = column(features, "days_since_paid_not_received") <= config.paid_not_received[
        "lookback_days"]
    codes = np.where(pnr, CAUSES.index("delivery_failure"), codes)
    codes = np.where(at_risk, codes, CAUSES.index("none"))
    return codes.astype(np.int64), evidence
