"""The timing model of a bundle: which day, which local weekday and hour, which channel.

:class:`TimingModel` joins three parts fitted on the training snapshots (features + labels per
cutoff, the frames ``training.pipeline`` builds):
:class:`~churnkit.models.timing.days.NextOrderModel` (discrete-time hazard of the next order),
:class:`~churnkit.models.timing.slots.SlotModel` (hour-of-week engagement) and
:class:`~churnkit.models.timing.channels.ChannelRanker` (empirical-Bayes channel ranking).
:meth:`TimingModel.predict` turns them into the scoring columns of the contract.

The day rule (every threshold in ``churnkit/config/timing.yaml``):

1. **incident** -- a lost or undelivered order known in the last ``incident_recent_days``, or a
   ticket still unresolved at ``as_of``: contact on the ``as_of`` day (docs/domain.md: paid but
   never received -> contact immediately, top priority).
2. **drift** -- P(order within the horizon) below ``drift_probability``: the customer has already
   drifted from their rhythm; contact as soon as allowed (best weekday in the next
   ``drift_search_days`` days).
3. **rhythm** -- otherwise wait until the ``return_quantile`` of their return time given that
   they return (before then they would likely buy anyway), at most ``max_wait_days``; then the
   best weekday in the following ``rhythm_search_days`` days.

The hour is the best slot of the chosen weekday inside ``allowed_hours`` (default 09:00-21:00
local).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from churnkit.data.columns import FeatureColumns, clipped, nan_to_zero
from churnkit.data.contract import as_utc_timestamp
from churnkit.data.frames import utc_datetime_array
from churnkit.models.part import read_document, write_document
from churnkit.models.timing.channels import ChannelRanker
from churnkit.models.timing.config import TimingConfig
from churnkit.models.timing.days import NextOrderModel
from churnkit.models.timing.slots import HOURS_PER_WEEK, SlotModel

_FILE = "timing.json"
#: Rows planned at once (bounds memory: the survival grid is rows x horizon days).
PLAN_CHUNK = 50_000
#: The scoring columns this model adds (the shared scoring contract).
OUTPUT_COLUMNS = (
    "contact_date", "contact_date_confidence", "contact_weekday", "contact_hour_local",
    "contact_slot_confidence", "channel", "channel_confidence", "expected_days_to_next_order",
)


class TimingModel:
    """Contact timing: fitted on training snapshots, applied to a feature frame at ``as_of``.

    Parameters
    ----------
    config
        Rules and fit sizes (default: the packaged ``config/timing.yaml``).
    horizon_days
        The label horizon of the training snapshots (the hazard model's last day).
    random_state, n_jobs
        LightGBM seed and threads (None = every core).
    """

    FORMAT = 1

    def __init__(self, config: TimingConfig | None = None, *, horizon_days: int = 90,
                 random_state: int = 0, n_jobs: int | None = 1) -> None:
        self.config = config
        self.horizon_days = horizon_days
        self.random_state = random_state
        self.n_jobs = n_jobs

    @property
    def config_(self) -> TimingConfig:
        return self.config if self.config is not None else TimingConfig.load()

    def fit(self, train: pd.DataFrame) -> TimingModel:
        """Fit on stacked training snapshots: feature columns plus the label columns
        ``days_to_next_order``, ``censored`` and ``next_engagement_slot``, and optionally
        ``cutoff``: the snapshot date of each row. Rows of several cutoffs are stacked, so the
        cutoff is per-row training data, not an ``as_of`` of the fit (which has none); without
        the column the rows count as one snapshot.

        At most ``max_training_customers`` rows (a seeded sample) feed the hazard model (each
        expands into up to one row per day bin) and at most ``max_slot_training_rows`` the hour
        and weekday models, which keeps the fit to seconds on a 20k-customer shop. The channel
        priors use the latest cutoff's rows (the contact history as known most recently).
        """
        cfg = self.config_
        missing = [c for c in ("days_to_next_order", "censored", "next_engagement_slot")
                   if c not in train.columns]
        if missing:
            raise ValueError(f"timing training frame lacks label column(s) {missing}")
        if len(train) == 0:
            raise ValueError("timing training frame is empty")
        rng = np.random.default_rng(self.random_state)
        rows = self._sample(train, cfg.max_training_customers, rng)
        trees = cfg.hazard_trees.settings(random_state=self.random_state, n_jobs=self.n_jobs)
        self.days_ = NextOrderModel(cfg.bin_edges(self.horizon_days), trees=trees).fit(rows)
        slot_trees = cfg.slot_trees.settings(random_state=self.random_state, n_jobs=self.n_jobs)
        self.slots_ = SlotModel(trees=slot_trees, hour_profiles=cfg.hour_profiles).fit(
            self._sample(train, cfg.max_slot_training_rows, rng))
        latest = train
        if "cutoff" in train.columns:
            latest = train[train["cutoff"] == train["cutoff"].max()]
        self.channels_ = ChannelRanker(strength_min=cfg.prior_strength_min,
                                       strength_max=cfg.prior_strength_max).fit(latest)
        self.config = cfg
        return self

    @staticmethod
    def _sample(frame: pd.DataFrame, limit: int, rng: np.random.Generator) -> pd.DataFrame:
        """At most ``limit`` rows of ``frame`` (a seeded sample, in the original order)."""
        if len(frame) <= limit:
            return frame
        return frame.iloc[np.sort(rng.choice(len(frame), limit, replace=False))]

    # -- prediction ------------------------------------------------------------------------
    def plan(self, features: pd.DataFrame, *, as_of: object) -> pd.DataFrame:
        """Every timing output with its working: the contract columns (:data:`OUTPUT_COLUMNS`)
        plus ``contact_rule`` (incident, drift or rhythm), ``p_order_within_horizon``,
        ``return_days_if_returning`` (conditional mean), ``contact_day_offset`` (days after
        ``as_of``) and ``channel_ranking`` (allowed channels, best first)."""
        day0 = as_utc_timestamp(as_of).normalize()
        if len(features) <= PLAN_CHUNK:
            return self._plan(features, day0)
        # Bounded memory on large frames (the survival grid is rows x horizon days).
        return pd.concat([self._plan(features.iloc[s:s + PLAN_CHUNK], day0)
                          for s in range(0, len(features), PLAN_CHUNK)])

    def _plan(self, features: pd.DataFrame, day0: pd.Timestamp) -> pd.DataFrame:
        columns = self._plan_columns(features, day0)
        columns["channel"] = pd.Series(columns["channel"], index=features.index, dtype=object)
        return pd.DataFrame(columns, index=features.index)

    def _plan_columns(self, features: pd.DataFrame | FeatureColumns, day0: pd.Timestamp, *,
                      working: bool = True) -> dict[str, object]:
        """:meth:`plan`'s columns as arrays (``contact_date`` a DatetimeIndex, ``channel`` an
        object array); without ``working`` only :data:`OUTPUT_COLUMNS`."""
        cfg = self.config_
        n = len(features)
        hz = self.days_.hazards(features)
        S = self.days_.daily_survival(hz)  # (n, days 0..horizon)
        summary = self.days_.summary_columns(hz, quantile=cfg.return_quantile, survival=S,
                                             conditional_mean=working)
        p_return = summary["p_return"]

        incident = np.zeros(n, dtype=bool)
        with np.errstate(invalid="ignore"):  # NaN compares False: no incident
            if "days_since_paid_not_received" in features.columns:
                incident |= _numbers(features, "days_since_paid_not_received") \
                    <= cfg.incident_recent_days
            if "unresolved_tickets" in features.columns:
                incident |= _numbers(features, "unresolved_tickets") > 0
        drift = ~incident & (p_return < cfg.drift_probability)
        rhythm = ~incident & ~drift
        wait = np.minimum(summary["conditional_quantile_days"], cfg.max_wait_days)
        base = np.where(rhythm, np.round(wait), 0).astype(int)
        window = np.where(incident, 1, np.where(drift, cfg.drift_search_days,
                                                 cfg.rhythm_search_days))

        # P(slot) = P(weekday) x P(hour): the best allowed hour is the same on every weekday,
        # and the best day in the search window is the one with the most likely weekday.
        hours, days = self.slots_.hour_weekday_probabilities(features)
        lo, hi = cfg.allowed_hours
        hour = hours[:, lo:hi].argmax(axis=1) + lo
        first_wd = (day0.day_of_week + base) % 7
        offsets = np.arange(max(cfg.rhythm_search_days, cfg.drift_search_days, 1))
        cand_wd = (first_wd[:, None] + offsets[None, :]) % 7
        cand_score = np.take_along_axis(days, cand_wd, axis=1)
        cand_score = np.where(offsets[None, :] < window[:, None], cand_score, -np.inf)
        pick = cand_score.argmax(axis=1)  # ties: the earliest day
        rows = np.arange(n)
        weekday = cand_wd[rows, pick]
        offset = base + pick
        # Slot confidence: the share of that day's engagement chance within +-1 hour of the hour.
        # (the three hours' shares added left to right, as a running sum from 0 would)
        around = hour[:, None] + np.array([-1, 0, 1])[None, :]
        shares = (hours[rows[:, None], clipped(around, 0, 23)]
                  * ((around >= 0) & (around < 24)))
        near = (shares[:, 0] + shares[:, 1]) + shares[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            slot_conf = clipped(near / hours.sum(axis=1), 0.0, 1.0)

        # Date confidence: rules are certain; drift = P(no return on their own); rhythm = how
        # concentrated the return time is around the chosen day.
        w = cfg.date_confidence_window_days
        horizon = self.days_.horizon_days
        lo_d = clipped(offset - w / 2, 0, horizon)
        hi_d = clipped(offset + w / 2, 0, horizon)
        s_lo, s_hi = _row_interp(S, np.stack([lo_d, hi_d], axis=1)).T
        with np.errstate(divide="ignore", invalid="ignore"):
            concentration = clipped((s_lo - s_hi) / p_return, 0.0, 1.0)
        date_conf = np.where(incident, 1.0, np.where(drift, 1 - p_return, concentration))

        channels = self.channels_.rank_columns(features, ranking=working)
        out = {
            "contact_date": _days_after(day0, offset),
            "contact_date_confidence": nan_to_zero(date_conf),
            "contact_weekday": weekday.astype("int64"),
            "contact_hour_local": hour.astype("int64"),
            "contact_slot_confidence": nan_to_zero(slot_conf),
            "channel": channels["channel"],
            "channel_confidence": channels["channel_confidence"],
            "expected_days_to_next_order": summary["expected_days"],
        }
        if working:
            out.update({
                "contact_rule": np.select([incident, drift], ["incident", "drift"], "rhythm"),
                "p_order_within_horizon": p_return,
                "return_days_if_returning": summary["conditional_mean_days"],
                "contact_day_offset": offset.astype("int64"),
                "channel_ranking": channels["channel_ranking"],
            })
        return out

    def predict(self, features: pd.DataFrame, *, as_of: object) -> pd.DataFrame:
        """The scoring contract's timing columns (:data:`OUTPUT_COLUMNS`) per customer.

        ``as_of`` (UTC) is the scoring cutoff the features were built at (required: the
        frame's attrs or columns are not read for it). ``contact_date`` is the UTC-midnight
        timestamp of the calendar day to contact; ``contact_weekday`` (0 = Monday) is that
        day's weekday and ``contact_hour_local`` the customer's local hour.
        """
        return self.plan(features, as_of=as_of).loc[:, list(OUTPUT_COLUMNS)]

    def predict_columns(self, features: pd.DataFrame | FeatureColumns, *, as_of: object
                        ) -> dict[str, object]:
        """:meth:`predict`'s columns as arrays: ``contact_date`` a UTC DatetimeIndex,
        ``channel`` an object array (str or None), the others NumPy arrays."""
        day0 = as_utc_timestamp(as_of).normalize()
        if len(features) <= PLAN_CHUNK:
            return self._plan_columns(features, day0, working=False)
        parts = [self._plan_columns(_rows(features, slice(s, s + PLAN_CHUNK)), day0,
                                    working=False)
                 for s in range(0, len(features), PLAN_CHUNK)]
        return {c: (pd.concat([pd.Series(p[c]) for p in parts], ignore_index=True).array
                    if c == "contact_date" else np.concatenate([p[c] for p in parts]))
                for c in OUTPUT_COLUMNS}

    # -- persistence -----------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write ``timing.json`` (config, channel priors, the LightGBM models as text)."""
        write_document(directory, _FILE, {
            "horizon_days": self.horizon_days, "config": self.config_.model_dump(mode="json"),
            "days": self.days_.to_dict(), "slots": self.slots_.to_dict(),
            "channels": self.channels_.to_dict(),
        }, format=self.FORMAT)

    @classmethod
    def load(cls, directory: str | Path) -> TimingModel:
        """Read what :meth:`save` wrote."""
        doc = read_document(directory, _FILE, part="timing model", format=cls.FORMAT)
        model = cls(TimingConfig(**doc["config"]), horizon_days=int(doc["horizon_days"]))
        model.days_ = NextOrderModel.from_dict(doc["days"])
        model.slots_ = SlotModel.from_dict(doc["slots"])
        model.channels_ = ChannelRanker.from_dict(doc["channels"])
        return model


@functools.lru_cache(maxsize=8)
def _day_dtype(unit: str) -> pd.DatetimeTZDtype:
    """The dtype pandas gives a UTC day of this unit plus whole days."""
    return (pd.Timestamp(0, tz="UTC").as_unit(unit)
            + pd.to_timedelta(np.zeros(1, dtype=np.int64), unit="D")).dtype


def _days_after(day0: pd.Timestamp, offset: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """``day0 + pd.to_timedelta(offset, unit="D")`` (UTC midnights, whole days after
    ``day0``) as a datetime array of that expression's dtype, by NumPy arithmetic."""
    dtype = _day_dtype(day0.unit)
    day = np.timedelta64(1, "D").astype(f"m8[{dtype.unit}]")
    return utc_datetime_array(day0.as_unit(dtype.unit).asm8 + offset.astype(np.int64) * day,
                              dtype)


def _numbers(features: pd.DataFrame | FeatureColumns, name: str) -> np.ndarray:
    """Column ``name`` as float64 (text read as numbers where it is one, else NaN)."""
    if isinstance(features, FeatureColumns):
        return features.number(name)
    return pd.to_numeric(features[name], errors="coerce").to_numpy(dtype=float,
                                                                   na_value=np.nan)


def _rows(features: pd.DataFrame | FeatureColumns, rows: slice) -> pd.DataFrame | FeatureColumns:
    if isinstance(features, FeatureColumns):
        return features.take(np.arange(len(features))[rows])
    return features.iloc[rows]


def _row_interp(S: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Row-wise linear interpolation of ``S`` (values at days 0, 1, ...) at ``days`` (one day
    per row, or a row of days per row)."""
    i = clipped(np.floor(days).astype(int), 0, S.shape[1] - 2)
    frac = days - i
    rows = np.arange(len(S)).reshape(-1, *([1] * (np.ndim(days) - 1)))
    return S[rows, i] * (1 - frac) + S[rows, i + 1] * frac


__all__ = ["HOURS_PER_WEEK", "OUTPUT_COLUMNS", "TimingModel"]
