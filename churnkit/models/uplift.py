"""Which win-back action pays: per-customer uplift learned from campaign holdouts.

docs/domain.md "Measuring win-back": every campaign keeps a randomized control group, and the
actions are assigned at random, so the ``contacts`` table is an experiment. :class:`UpliftModel`
estimates, per customer and action ``a``, the uplift

    P(return within the attribution window | sent a) - P(return | not contacted)

with LightGBM (an R-learner by default, a T-learner on request).
:func:`churnkit.policy.choose_by_uplift` turns uplifts, customer values and action costs into a
decision: the action with the highest expected incremental profit ``uplift × value − cost``, or
``do_not_contact`` when none is positive.

Building the training set point-in-time (features as of each campaign's send day, outcome after
it) lives in ``training/uplift.py``; this module only fits and predicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from churnkit.data.columns import FeatureColumns
from churnkit.data.contract import CONTROL, SEND_ACTIONS
from churnkit.data.frames import numeric_matrix, require_columns
from churnkit.models.prediction import predict
from churnkit.models.trees import load_boosted, save_boosted
from churnkit.policy import PolicyConfig, cause_evidence

_FILE = "uplift.json"

#: The features the uplift model reads by default: the signals of docs/domain.md "Why customers
#: leave" (which decide which action fits) and of having left (which decide whether any action
#: can matter). A few thousand contacts per action cannot support 190 noisy columns.
UPLIFT_FEATURES = (
    "days_since_last_order", "orders_lifetime", "revenue_365d", "mean_basket",
    "gap_median_days", "overdue_ratio", "delivery_failures_90d", "delivery_failures_lifetime",
    "days_since_last_failure", "paid_not_received", "late_orders_90d", "lost_orders_90d",
    "max_delivery_delay_days", "unresolved_tickets", "tickets_90d", "tickets_lifetime",
    "tickets_delivery_90d", "tickets_service_90d", "tickets_price_365d",
    "days_since_last_ticket", "mean_satisfaction", "compensation_total", "discount_share",
    "discounted_order_share", "delivery_cost_share", "abandoned_checkouts_90d",
    "abandoned_carts_90d", "sessions_30d", "sessions_90d", "days_since_last_session",
    "sessions_trend_90d", "sessions_since_last_order", "p_alive", "p_no_purchase_90d",
    "contacts_365d", "open_rate", "conversion_rate", "days_since_last_comeback",
)
#: Default (num_leaves, min_child_samples) per learner; see :class:`UpliftModel`.
_TREE_DEFAULTS = {"r": (2, 800), "t": (4, 150)}
#: Derived 0/1 columns: the policy's evidence of each cause (``churnkit.policy.cause_evidence``
#: with the packaged thresholds), computed from the features at fit and predict time.
EVIDENCE_PREFIX = "evidence_"


def with_cause_evidence(features: pd.DataFrame) -> pd.DataFrame:
    """``features`` plus ``evidence_<cause>`` flags (0/1) from the packaged policy's cause
    evidence rules."""
    evidence = cause_evidence(features, PolicyConfig.default())
    return features.assign(**{f"{EVIDENCE_PREFIX}{cause}": flags.astype(float)
                              for cause, flags in evidence.items()})


def uplift_feature_names(features: pd.DataFrame) -> list[str]:
    """The default inputs present in ``features``: :data:`UPLIFT_FEATURES` and the cause
    evidence flags (every numeric column when none of those is present)."""
    present = [n for n in UPLIFT_FEATURES if n in features.columns]
    if not present:
        return [str(n) for n, d in features.dtypes.items()
                if pd.api.types.is_bool_dtype(d) or pd.api.types.is_numeric_dtype(d)]
    flags = [str(n) for n in with_cause_evidence(features.iloc[:0]).columns
             if str(n).startswith(EVIDENCE_PREFIX)]
    return present + flags


def _matrix(features: pd.DataFrame | FeatureColumns, names: Sequence[str]) -> np.ndarray:
    derived = [n for n in names if n.startswith(EVIDENCE_PREFIX) and n not in features.columns]
    if derived and isinstance(features, FeatureColumns):
        # The evidence flags go straight into the matrix (no frame with them is built).
        evidence = {f"{EVIDENCE_PREFIX}{cause}": flags for cause, flags in
                    cause_evidence(features, PolicyConfig.default()).items()}
        require_columns(features, [n for n in names if n not in evidence],
                        needed_by="the uplift model")
        X = features.matrix(names)
        for k, name in enumerate(names):
            if name in evidence and name not in features.columns:
                X[:, k] = evidence[name].astype(float)
        return X
    if derived:
        features = with_cause_evidence(features)
    require_columns(features, names, needed_by="the uplift model")
    return numeric_matrix(features, names)


class UpliftModel(BaseEstimator):
    """Per-action uplift learned from randomized win-back campaigns (scikit-learn's contract).

    Two learners:

    - ``"r"`` (default), the R-learner of Nie & Wager: a baseline ``m(x) = P(return | x)`` is
      fitted on every contact (all arms pooled, cross-fitted out of fold); then for each action
      ``a`` a LightGBM regression on the contacts randomized to ``a`` or to control, of the
      pseudo-outcome ``(y − m(x)) / (w − e)`` with weight ``(w − e)²`` (``w`` = 1 if sent
      ``a``, ``e`` = the share sent ``a`` there). Because the arms are randomized, its target
      is the uplift whatever ``m`` is; ``m`` only removes noise, which matters here: the base
      rate of ordering anyway is ~20% and the effects a few points.
    - ``"t"``: the T-learner, one classifier per arm, uplift = ``P(y | a) − P(y | control)``.

    Parameters
    ----------
    learner
        ``"r"`` or ``"t"``.
    calibrate
        R-learner only: shrink each action's predicted heterogeneity by how much of it the
        out-of-fold predictions confirm (best linear predictor, 3 extra fits per action). Off
        by default: on the synthetic benchmark it shrank real effects away (see
        docs/campaigns.md).
    n_estimators, learning_rate, num_leaves, min_child_samples, feature_fraction, reg_lambda
        LightGBM settings of each model. Strongly regularized by default: arms hold a few
        thousand contacts and the effects are a few percentage points. ``num_leaves`` and
        ``min_child_samples`` left at None take the learner's default at fit time
        (:data:`_TREE_DEFAULTS`, fitted as ``num_leaves_`` and ``min_child_samples_``):
        stumps with at least 800 contacts per leaf for the R-learner (an additive effect
        model, chosen on the validation campaign of two synthetic shops; see
        benchmarks/RESULTS.md), 4 leaves of 150 for the T-learner, whose per-arm models must
        also fit the base rate.
    min_arm_size
        Actions with fewer contacts are not modelled; their uplift is 0 (no effect is claimed
        that could not be measured). The control group needs at least this many rows.
    random_state, n_jobs
        Seed and LightGBM threads.
    attribution_days
        The outcome window the model was trained for (recorded; the outcome is built by the
        caller, see ``training/uplift.py``).
    """

    FORMAT = 1

    def __init__(self, *, learner: str = "r", n_estimators: int = 100,
                 learning_rate: float = 0.05, num_leaves: int | None = None,
                 min_child_samples: int | None = None,
                 feature_fraction: float = 0.5, reg_lambda: float = 5.0,
                 calibrate: bool = False, min_arm_size: int = 200, random_state: int = 0,
                 n_jobs: int = 1, attribution_days: int = 30) -> None:
        self.learner = learner
        self.calibrate = calibrate
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.reg_lambda = reg_lambda
        self.min_arm_size = min_arm_size
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.attribution_days = attribution_days

    def _params(self, objective: str = "binary") -> dict:
        return {"objective": objective, "learning_rate": self.learning_rate,
                "num_leaves": self.num_leaves_, "min_data_in_leaf": self.min_child_samples_,
                "feature_fraction": self.feature_fraction, "lambda_l2": self.reg_lambda,
                "bagging_fraction": 0.8, "bagging_freq": 1, "seed": self.random_state,
                "num_threads": self.n_jobs, "verbosity": -1, "deterministic": True,
                "force_col_wise": True}

    def fit(self, features: pd.DataFrame, arm: pd.Series, outcome: pd.Series,
            feature_names: Sequence[str] | None = None) -> UpliftModel:
        """Fit the learner.

        Parameters
        ----------
        features
            One row per contact (any index), the churnkit features as of the send day.
        arm
            Per row, ``"control"`` for the holdout or the action sent (a name of
            ``churnkit.ACTIONS``), aligned with ``features``.
        outcome
            Per row, 1 if the customer ordered within the attribution window after the send
            time (the same rule for both groups), else 0.
        """
        if self.learner not in ("r", "t"):
            raise ValueError(f"learner must be 'r' or 't', not {self.learner!r}")
        leaves, leaf_rows = _TREE_DEFAULTS[self.learner]
        self.num_leaves_ = leaves if self.num_leaves is None else self.num_leaves
        self.min_child_samples_ = (leaf_rows if self.min_child_samples is None
                                   else self.min_child_samples)
        arm_values = np.asarray(arm, dtype=object)
        y = np.asarray(outcome, dtype=float)
        if len(arm_values) != len(features) or len(y) != len(features):
            raise ValueError(f"features ({len(features)} rows), arm ({len(arm_values)}) and "
                             f"outcome ({len(y)}) must have the same length")
        unknown = sorted(set(arm_values) - {CONTROL, *SEND_ACTIONS}, key=str)
        if unknown:
            raise ValueError(f"contacts: column 'action'/'group' has arms {unknown}; expected "
                             f"'control' or one of {', '.join(SEND_ACTIONS)}")
        n_control = int((arm_values == CONTROL).sum())
        if n_control < self.min_arm_size:
            raise ValueError(f"contacts: only {n_control} control-group rows; the uplift "
                             f"model needs at least {self.min_arm_size} (a randomized holdout "
                             "is what makes the effect measurable)")
        names = list(feature_names) if feature_names is not None else \
            uplift_feature_names(features)
        X = _matrix(features, names)
        self.feature_names_ = names
        self.boosters_: dict[str, lgb.Booster] = {}
        self.arm_sizes_ = {a: int((arm_values == a).sum()) for a in (CONTROL, *SEND_ACTIONS)}
        self.arm_rates_ = {a: float(y[arm_values == a].mean()) if self.arm_sizes_[a]
                           else float("nan") for a in (CONTROL, *SEND_ACTIONS)}
        if self.learner == "t":
            self._fit_t(X, arm_values, y)
        else:
            self._fit_r(X, arm_values, y)
        self.actions_ = tuple(a for a in SEND_ACTIONS if a in self.boosters_)
        return self

    def _fit_t(self, X: np.ndarray, arm: np.ndarray, y: np.ndarray) -> None:
        for name in (CONTROL, *SEND_ACTIONS):
            rows = np.flatnonzero(arm == name)
            if len(rows) < self.min_arm_size or y[rows].min() == y[rows].max():
                continue
            self.boosters_[name] = lgb.train(self._params(), lgb.Dataset(X[rows], label=y[rows]),
                                             num_boost_round=self.n_estimators)

    def _fit_r(self, X: np.ndarray, arm: np.ndarray, y: np.ndarray, folds: int = 3) -> None:
        # Cross-fitted baseline: each row's m(x) comes from a model that did not see it.
        rng = np.random.default_rng(self.random_state)
        fold = rng.integers(0, folds, len(y))
        m = np.empty(len(y))
        for k in range(folds):
            train = fold != k
            booster = lgb.train(self._params(), lgb.Dataset(X[train], label=y[train]),
                                num_boost_round=self.n_estimators)
            m[~train] = booster.predict(X[~train])
        self.calibration_ = {}
        for name in SEND_ACTIONS:
            rows = np.flatnonzero((arm == name) | (arm == CONTROL))
            w = (arm[rows] == name).astype(float)
            if w.sum() < self.min_arm_size:
                continue
            e = w.mean()  # randomized: the same propensity for everyone in the campaigns
            target = (y[rows] - m[rows]) / (w - e)
            weight = (w - e) ** 2
            params = self._params("regression")
            if self.calibrate:
                self.calibration_[name] = self._oof_calibration(X[rows], target, weight,
                                                                fold[rows], folds)
            data = lgb.Dataset(X[rows], label=target, weight=weight)
            self.boosters_[name] = lgb.train(params, data, num_boost_round=self.n_estimators)

    def _oof_calibration(self, X: np.ndarray, target: np.ndarray, weight: np.ndarray,
                         fold: np.ndarray, folds: int) -> tuple[float, float, float]:
        """Out-of-fold effects, to measure how much of the predicted heterogeneity is real."""
        params = self._params("regression")
        oof = np.empty(len(target))
        for k in range(folds):
            train = fold != k
            data = lgb.Dataset(X[train], label=target[train], weight=weight[train])
            booster = lgb.train(params, data, num_boost_round=self.n_estimators)
            oof[~train] = booster.predict(X[~train])
        return _calibrate(oof, target, weight)

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """Uplift per action: the predicted increase in P(return within the attribution
        window) if contacted with it vs not contacted (index of ``features``, usually
        ``customer_id``; one column per action of :data:`SEND_ACTIONS`, 0 for actions the
        campaigns never tested enough)."""
        out = pd.DataFrame(0.0, index=features.index, columns=list(SEND_ACTIONS))
        for name, values in self.predict_columns(features).items():
            if name in self.actions_:
                out[name] = values
        return out

    def predict_columns(self, features: pd.DataFrame | FeatureColumns
                        ) -> dict[str, np.ndarray]:
        """:meth:`predict`'s columns as arrays: per action of :data:`SEND_ACTIONS`, the uplift
        of each row (float64; 0 for actions the campaigns never tested enough)."""
        X = _matrix(features, self.feature_names_)
        out = {name: np.zeros(len(X)) for name in SEND_ACTIONS}
        if not len(X):
            return out
        if self.learner == "t":
            base = predict(self.boosters_[CONTROL], X) if CONTROL in self.boosters_ else 0.0
            for name in self.actions_:
                out[name] = predict(self.boosters_[name], X) - base
        else:
            for name in self.actions_:
                mean, level, slope = self.calibration_.get(name, (0.0, None, 1.0))
                raw = predict(self.boosters_[name], X)
                shrunk = raw if level is None else level + slope * (raw - mean)
                out[name] = np.clip(shrunk, -1.0, 1.0)
        return out

    # -- persistence ---------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write ``uplift.json`` and one LightGBM text model per fitted model into
        ``directory``."""
        save_boosted(self, directory, _FILE, {
            "feature_names": self.feature_names_, "models": sorted(self.boosters_),
            "calibration": getattr(self, "calibration_", {}),
            "arm_sizes": self.arm_sizes_, "arm_rates": self.arm_rates_,
        }, self.boosters_)

    @classmethod
    def load(cls, directory: str | Path) -> UpliftModel:
        """Read what :meth:`save` wrote."""
        model, doc, booster = load_boosted(cls, directory, _FILE, part="uplift model")
        model.feature_names_ = list(doc["feature_names"])
        model.boosters_ = {name: booster(name) for name in doc["models"]}
        model.calibration_ = {k: tuple(v) for k, v in doc.get("calibration", {}).items()}
        model.arm_sizes_ = {k: int(v) for k, v in doc["arm_sizes"].items()}
        model.arm_rates_ = {k: float(v) for k, v in doc["arm_rates"].items()}
        model.actions_ = tuple(a for a in SEND_ACTIONS if a in model.boosters_)
        return model


def _calibrate(oof: np.ndarray, target: np.ndarray, weight: np.ndarray
               ) -> tuple[float, float, float]:
    """Best linear predictor of the effect from out-of-fold predictions (Chernozhukov et al.):
    weighted least squares of the R-learner pseudo-outcome on ``[1, oof − mean(oof)]``. Returns
    ``(mean, level, slope)``: predictions become ``level + slope · (raw − mean)``, with the
    slope clipped to [0, 1], so heterogeneity the held-out folds do not confirm shrinks to the
    average effect instead of being acted on."""
    mean = float(np.average(oof, weights=weight))
    design = np.column_stack([np.ones(len(oof)), oof - mean])
    sw = np.sqrt(weight)
    coef, *_ = np.linalg.lstsq(design * sw[:, None], target * sw, rcond=None)
    return mean, float(coef[0]), float(np.clip(coef[1], 0.0, 1.0))
