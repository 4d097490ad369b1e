"""When in the week a customer engages: LightGBM over local hour-of-day and weekday.

A slot is a local hour of the week (Monday 00:00 = 0 .. Sunday 23:00 = 167, as in
:mod:`churnkit.labels`). The model is factorized the way activity clocks are: one LightGBM
multiclass model gives P(hour of day = h) of the customer's next engagement (24 classes) and one
gives P(weekday = d) (7 classes); a slot's probability is their product. The hour distribution is
the average of that model and a second one that predicts the engagement's offset from the
customer's modal hour (the same 24 classes in the customer's own frame, so every customer's
history teaches the shape of the peak around their own hour); that average is in turn averaged
with the customer's posterior hour profile (:mod:`churnkit.models.timing.profiles`: the population's
typical daily rhythms, weighted by how well each explains the customer's own 24 hour counts).
Features are the
customer's activity clock (share of activity per local hour band and weekday, the modal hour,
how much history there is, recent browsing and opens). A customer with no activity before
``as_of`` gets the population's slot distribution (the Laplace-smoothed frequency of next
engagements per slot in the training snapshots); thin histories are shrunk toward it by the
trees, rich ones are ranked by their own clock. Predicting n rows (not
n x 168) keeps scoring cheap.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

from churnkit.data.columns import FeatureColumns
from churnkit.data.frames import numeric_matrix
from churnkit.features.clock import HOUR_BANDS, WEEKDAYS
from churnkit.models.prediction import predict
from churnkit.models.timing.profiles import HourProfiles
from churnkit.models.trees import TreeSettings

HOURS_PER_WEEK = 168
_BAND_COLS = tuple(f"activity_share_h{lo:02d}_{hi:02d}" for lo, hi in HOUR_BANDS)
_DAY_COLS = tuple(f"activity_share_{d}" for d in WEEKDAYS)
#: The activity clock's local-hour histogram, read by the hour profiles.
HOUR_COUNT_COLS = tuple(f"activity_hour_{h:02d}" for h in range(24))
#: Customer-level inputs of both models (absent columns are missing values).
FEATURES = (*_BAND_COLS, *_DAY_COLS, "modal_local_hour", "activity_events", "orders_lifetime",
            "sessions_lifetime", "opens_lifetime", "days_since_last_session",
            "days_since_last_order", "payday_affinity")


def _matrix(frame: pd.DataFrame) -> np.ndarray:
    return numeric_matrix(frame, FEATURES)


def _hour_counts(frame: pd.DataFrame | FeatureColumns) -> np.ndarray | None:
    """(n, 24) activity counts per local hour (missing: 0), or None when the frame lacks
    them."""
    columns = frame.columns
    if not all(c in columns for c in HOUR_COUNT_COLS):
        return None
    if isinstance(frame, FeatureColumns):
        counts = frame.matrix(HOUR_COUNT_COLS)
        return np.where(np.isnan(counts), 0.0, counts)
    return frame.loc[:, list(HOUR_COUNT_COLS)].to_numpy(dtype="float64", na_value=0.0)


class SlotModel:
    """Ranks the 168 local hour-of-week slots by the chance of the customer's next engagement.

    ``trees`` sizes the LightGBM models, ``hour_profiles`` is the number of hour profiles
    (0: none); fitted attributes end in ``_``.
    """

    def __init__(self, *, trees: TreeSettings | None = None, hour_profiles: int = 32) -> None:
        self.trees = trees if trees is not None else TreeSettings()
        self.hour_profiles = hour_profiles

    def _fit_one(self, X: np.ndarray, y: np.ndarray, n_class: int) -> lgb.Booster:
        # Every class must occur for LightGBM's multiclass objective: one pseudo-row per class
        # with missing features (the population's smoothing, weight ~0).
        X = np.vstack([X, np.full((n_class, X.shape[1]), np.nan)])
        y = np.concatenate([y, np.arange(n_class)])
        w = np.concatenate([np.ones(len(y) - n_class), np.full(n_class, 1e-3)])
        params = self.trees.classifier_params(objective="multiclass", num_class=n_class)
        return lgb.LGBMClassifier(**params).fit(X, y, sample_weight=w).booster_

    def fit(self, frame: pd.DataFrame) -> SlotModel:
        """Fit on rows with a ``next_engagement_slot`` label (rows without one are skipped)."""
        if "next_engagement_slot" not in frame.columns:
            raise ValueError("training frame lacks the label column 'next_engagement_slot'")
        engaged = frame[frame["next_engagement_slot"].notna().to_numpy()]
        if len(engaged) == 0:
            raise ValueError("no training row has a next engagement: cannot fit the slot model")
        target = engaged["next_engagement_slot"].to_numpy(dtype="int64")
        # The population's slot distribution, Laplace-smoothed: the global-best baseline.
        counts = np.bincount(target, minlength=HOURS_PER_WEEK) + 1.0
        self.prior_slot_ = counts / counts.sum()
        X = _matrix(engaged)
        self.hour_booster_ = self._fit_one(X, target % 24, 24)
        self.weekday_booster_ = self._fit_one(X, target // 24, 7)
        # A second hour model in the customer's own frame: the offset (0-23 hours, mod 24) of
        # the engagement from their modal hour, shared by all modal hours (more data per class).
        modal = X[:, FEATURES.index("modal_local_hour")]
        has = ~np.isnan(modal)
        self.offset_booster_ = None
        if has.sum() >= 24:
            offset = (target[has] % 24 - modal[has].astype(np.int64)) % 24
            self.offset_booster_ = self._fit_one(X[has], offset, 24)
        # Hour profiles from the histograms of every training row with activity (not only
        # engaged ones: a profile is about the past clock, not the label).
        counts = _hour_counts(frame)
        self.profiles_ = None
        if self.hour_profiles > 0 and counts is not None and (counts.sum(axis=1) > 0).any():
            self.profiles_ = HourProfiles(self.hour_profiles,
                                          random_state=self.trees.random_state).fit(counts)
        return self

    def hour_weekday_probabilities(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(n, 24) P(local hour of the next engagement) and (n, 7) P(its local weekday)."""
        if len(frame) == 0:
            return np.empty((0, 24)), np.empty((0, 7))
        X = _matrix(frame)
        hours = np.asarray(predict(self.hour_booster_, X)).reshape(len(X), 24)
        modal = X[:, FEATURES.index("modal_local_hour")]
        has = ~np.isnan(modal)
        if self.offset_booster_ is not None and has.any():
            # The two hour models averaged (each a distribution over the 24 hours).
            offset_p = np.asarray(predict(self.offset_booster_, X[has])).reshape(-1, 24)
            cols = (modal[has].astype(np.int64)[:, None] + np.arange(24)[None, :]) % 24
            absolute = np.empty_like(offset_p)
            absolute[np.arange(len(cols))[:, None], cols] = offset_p
            hours[has] = (hours[has] + absolute) / 2
        counts = _hour_counts(frame)
        if self.profiles_ is not None and counts is not None:
            active = counts.sum(axis=1) > 0
            if active.any():
                # the counts are the clock's features, missing ones 0 (_hour_counts)
                hours[active] = (hours[active]
                                 + self.profiles_.probabilities_of_counts(counts[active])) / 2
        days = np.asarray(predict(self.weekday_booster_, X)).reshape(len(X), 7)
        # No activity before as_of: the population's distribution (the global prior), which
        # beats what the trees extrapolate from an all-missing clock.
        none = ~(X[:, FEATURES.index("activity_events")] > 0)  # NaN compares False, as 0
        prior = self.prior_slot_.reshape(7, 24)
        hours[none] = prior.sum(axis=0)
        days[none] = prior.sum(axis=1)
        return hours, days

    def slot_probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, 168) probability that the next engagement falls in each slot (rows sum to 1):
        P(weekday) x P(hour)."""
        hours, days = self.hour_weekday_probabilities(frame)
        out = (days[:, :, None] * hours[:, None, :]).reshape(len(frame), HOURS_PER_WEEK)
        none = ~(np.nan_to_num(_matrix(frame)[:, FEATURES.index("activity_events")], nan=0.0) > 0)
        out[none] = self.prior_slot_  # the joint population prior, not its two marginals
        return out

    # -- persistence -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"prior_slot": [float(x) for x in self.prior_slot_],
                "hour_booster": self.hour_booster_.model_to_string(),
                "weekday_booster": self.weekday_booster_.model_to_string(),
                "offset_booster": (None if self.offset_booster_ is None
                                   else self.offset_booster_.model_to_string()),
                "hour_profiles": (None if self.profiles_ is None else self.profiles_.to_dict())}

    @classmethod
    def from_dict(cls, data: dict) -> SlotModel:
        model = cls()
        model.prior_slot_ = np.asarray(data["prior_slot"], dtype=float)
        model.hour_booster_ = lgb.Booster(model_str=data["hour_booster"])
        model.weekday_booster_ = lgb.Booster(model_str=data["weekday_booster"])
        offset = data.get("offset_booster")
        model.offset_booster_ = None if offset is None else lgb.Booster(model_str=offset)
        profiles = data.get("hour_profiles")  # absent in bundles saved before hour profiles
        model.profiles_ = None if profiles is None else HourProfiles.from_dict(profiles)
        return model
