"""Days to the next order: a discrete-time hazard model (LightGBM) that handles censoring.

Each training row (customer, cutoff) becomes one row per day bin it was *at risk* in: bins before
its first order in the label window (target 0), the bin of that order (target 1), or every bin
when the window held no order (censored: target 0 throughout, no made-up event time). A LightGBM
binary model of ``P(order in bin b | no order before b)`` over those person-period rows is the
standard censoring-aware survival model for discrete time. From the hazards per bin (assumed
constant per day inside a bin) follow the survival curve ``S(t)``, the probability of an order
within the horizon ``1 - S(H)``, and the return-time distribution of those who do return.
"""

from __future__ import annotations

import functools

import lightgbm as lgb
import numpy as np
import pandas as pd

from churnkit.data.columns import clipped
from churnkit.data.frames import numeric_matrix
from churnkit.models.prediction import predict
from churnkit.models.trees import TreeSettings

#: Features of the hazard model (those present in the frame are used).
FEATURES = (
    "days_since_last_order", "days_since_first_order", "days_since_signup", "orders_30d",
    "orders_90d", "orders_180d", "orders_365d", "orders_lifetime", "gap_mean_days",
    "gap_median_days", "gap_std_days", "gap_last_days", "overdue_ratio", "orders_trend_90d",
    "mean_basket", "discount_share", "sessions_30d", "sessions_90d", "days_since_last_session",
    "sessions_since_last_order", "cart_adds_30d", "abandoned_carts_30d", "p_alive",
    "expected_purchases_90d", "btyd_frequency", "btyd_recency_days", "btyd_T_days",
    "delivery_failures_90d", "paid_not_received", "unresolved_tickets", "tickets_90d",
    "days_since_last_contact", "contacts_90d", "payday_affinity", "orders_in_transit",
)


def _row_sums(a: np.ndarray) -> np.ndarray:
    """Per row, the sum of ``a``'s columns added left to right: a row gets the same bits
    whatever the other rows (``a.sum(axis=1)`` orders its additions by the array's layout,
    which differs between one row and many)."""
    return np.cumsum(a, axis=1)[:, -1]  # an accumulation is sequential, whatever the layout


def feature_matrix(frame: pd.DataFrame, names: tuple[str, ...]) -> np.ndarray:
    """The named columns as a float matrix (flags 0/1, missing as NaN)."""
    return numeric_matrix(frame, names)


def _bin_positions(edges: tuple[int, ...], days: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Each day's bin among ``edges`` (days clipped to [0, horizon]) and how far into the bin
    it lies (0..1)."""
    bounds = np.asarray(edges, dtype=float)
    width = np.diff(bounds)
    days = np.clip(days, 0, bounds[-1])
    b = np.clip(np.searchsorted(bounds, days, side="right") - 1, 0, len(width) - 1)
    return b, (days - bounds[b]) / width[b]


@functools.lru_cache(maxsize=16)
def _daily_positions(edges: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_bin_positions` of days 0..horizon (read-only arrays, kept per set of bins)."""
    b, frac = _bin_positions(edges, np.arange(edges[-1] + 1, dtype=float))
    b.flags.writeable = frac.flags.writeable = False
    return b, frac


def _survival(hazards: np.ndarray, b: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """``S`` per row at days whose bins are ``b``, ``frac`` of the way into them."""
    log_s_end = np.cumsum(np.log1p(-hazards), axis=1)  # log S at each bin's end
    log_s_start = np.empty_like(log_s_end)
    log_s_start[:, 0] = 0.0
    log_s_start[:, 1:] = log_s_end[:, :-1]
    return np.exp(log_s_start[:, b] + frac[None, :] * np.log1p(-hazards[:, b]))


class NextOrderModel:
    """Discrete-time hazard of the next order over day bins ``edges`` (days after ``as_of``).

    ``trees`` sizes the LightGBM model; fitted attributes end in ``_``.
    """

    def __init__(self, edges: tuple[int, ...], *, trees: TreeSettings | None = None) -> None:
        self.edges = tuple(int(e) for e in edges)
        self.trees = trees if trees is not None else TreeSettings()

    @property
    def horizon_days(self) -> int:
        return self.edges[-1]

    def _expand(self, X: np.ndarray, bins: np.ndarray) -> np.ndarray:
        """Person-period design: the customer's features plus the bin's start and width, and
        the recency and overdue ratio as they will be at the bin's start."""
        start = np.asarray(self.edges[:-1], dtype=float)[bins]
        width = np.diff(self.edges).astype(float)[bins]
        recency = X[:, self.features_.index("days_since_last_order")] + start \
            if "days_since_last_order" in self.features_ else np.full(len(X), np.nan)
        gap = X[:, self.features_.index("gap_mean_days")] \
            if "gap_mean_days" in self.features_ else np.full(len(X), np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            overdue = recency / gap
        return np.column_stack([X, start, width, recency, overdue])

    def fit(self, frame: pd.DataFrame) -> NextOrderModel:
        """Fit on rows with ``days_to_next_order`` and ``censored`` labels (and the features)."""
        for col in ("days_to_next_order", "censored"):
            if col not in frame.columns:
                raise ValueError(f"training frame lacks the label column {col!r}")
        self.features_ = [n for n in FEATURES if n in frame.columns]
        X = feature_matrix(frame, tuple(self.features_))
        t = frame["days_to_next_order"].to_numpy(dtype=float)
        censored = frame["censored"].to_numpy(dtype=bool)
        edges = np.asarray(self.edges, dtype=float)
        n_bins = len(edges) - 1
        # The bin of the event (or the last bin for censored rows): rows are at risk in bins
        # 0 .. last, and the target is 1 only in an event's own bin.
        last = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, n_bins - 1)
        last = np.where(censored, n_bins - 1, last)
        reps = last + 1
        rows = np.repeat(np.arange(len(X)), reps)
        bins = np.concatenate([np.arange(r) for r in reps]) if len(reps) else np.array([], int)
        y = ((bins == last[rows]) & ~censored[rows]).astype(int)
        if not y.any() or y.all():
            raise ValueError(
                f"the next-order model needs both orders and censored windows among its "
                f"{len(X)} training rows (orders: {int((~censored).sum())}); use more cutoffs "
                "or a longer history")
        design = self._expand(X[rows], bins)
        params = self.trees.classifier_params(objective="binary")
        self.booster_ = lgb.LGBMClassifier(**params).fit(design, y).booster_
        self.n_person_periods_ = len(y)
        return self

    def hazards(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, n_bins) probability of the next order in each bin given none before it."""
        X = feature_matrix(frame, tuple(self.features_))
        n_bins = len(self.edges) - 1
        rows = np.repeat(np.arange(len(X)), n_bins)
        bins = np.tile(np.arange(n_bins), len(X))
        h = predict(self.booster_, self._expand(X[rows], bins)) if len(X) else np.empty(0)
        return clipped(np.asarray(h).reshape(len(X), n_bins), 1e-6, 1 - 1e-6)

    def survival(self, hazards: np.ndarray, days: np.ndarray) -> np.ndarray:
        """``S(t)`` = P(no order before day t) per row at each day in ``days`` (<= horizon);
        constant daily hazard inside each bin."""
        return _survival(hazards, *_bin_positions(self.edges, np.asarray(days, dtype=float)))

    def daily_survival(self, hazards: np.ndarray) -> np.ndarray:
        """:meth:`survival` on days 0, 1, ..., horizon (where each day falls among the bins
        found once per set of bins)."""
        return _survival(hazards, *_daily_positions(self.edges))

    def summary(self, hazards: np.ndarray, *, quantile: float) -> pd.DataFrame:
        """Per row: ``p_return`` (order within the horizon), ``conditional_mean_days`` and
        ``conditional_quantile_days`` (return time among those who return within the horizon),
        and ``expected_days`` (unconditional mean; beyond the horizon the last bin's daily hazard
        continues, capped at 10 years)."""
        return pd.DataFrame(self.summary_columns(hazards, quantile=quantile))

    def summary_columns(self, hazards: np.ndarray, *, quantile: float,
                        survival: np.ndarray | None = None,
                        conditional_mean: bool = True) -> dict[str, np.ndarray]:
        """:meth:`summary`'s columns as arrays (``survival``: ``S`` on days 0..horizon, when
        the caller has it already; without ``conditional_mean``, no
        ``conditional_mean_days``)."""
        H = self.horizon_days
        grid = np.arange(0, H + 1, dtype=float)
        S = self.daily_survival(hazards) if survival is None else survival  # (n, H+1)
        p_return = 1 - S[:, -1]
        # Conditional CDF of the return time given a return before H.
        with np.errstate(divide="ignore", invalid="ignore"):
            cond = (1 - S) / p_return[:, None]
        out = {"p_return": p_return}
        if conditional_mean:
            mass = -np.diff(S, axis=1)  # P(order on day d) for d = 0..H-1
            mid = grid[:-1] + 0.5
            with np.errstate(divide="ignore", invalid="ignore"):
                out["conditional_mean_days"] = _row_sums(mass * mid) / p_return
        q_idx = (cond < quantile).sum(axis=1)  # first day whose conditional CDF reaches q
        q_days = np.minimum(q_idx, H).astype(float)
        width_last = self.edges[-1] - self.edges[-2]
        daily_tail = -np.log1p(-hazards[:, -1]) / width_last
        restricted = _row_sums(S[:, :-1])  # E[min(T, H)] on the day grid
        expected = np.minimum(restricted + S[:, -1] / np.maximum(daily_tail, 1e-9), 3650.0)
        return {**out, "conditional_quantile_days": q_days, "expected_days": expected}

    # -- persistence -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"edges": list(self.edges), "features": self.features_,
                "booster": self.booster_.model_to_string()}

    @classmethod
    def from_dict(cls, data: dict) -> NextOrderModel:
        model = cls(tuple(data["edges"]))
        model.features_ = list(data["features"])
        model.booster_ = lgb.Booster(model_str=data["booster"])
        return model
