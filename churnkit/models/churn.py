"""The churn model: gradient-boosted trees (LightGBM) with a time-based calibration step.

:class:`ChurnModel` follows scikit-learn's estimator contract (``__init__`` only stores
parameters, ``fit`` returns ``self``, fitted attributes end in ``_``, randomness comes in as
``random_state``), so Optuna, ``sklearn.base.clone`` and cross-validation just work.

Probabilities are calibrated on a *later* cutoff than the one trained on (the time-based
validation fold), because customers' base rates drift between snapshots. The default calibration
is Platt scaling on the log-odds, which is monotone and so leaves the ranking (ROC-AUC) untouched;
``calibration="isotonic"`` is available for large validation folds.
"""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
)

from churnkit.data.columns import FeatureColumns
from churnkit.models.compiled import forest_for
from churnkit.models.prediction import predict
from churnkit.models.trees import load_boosted, save_boosted

_FILE = "churn_model.json"
CALIBRATIONS = ("sigmoid", "isotonic", "none")


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class ChurnModel(ClassifierMixin, BaseEstimator):
    """LightGBM binary classifier of ``churned`` with calibrated probabilities.

    Parameters
    ----------
    n_estimators
        Maximum boosting rounds; early stopping on ``eval_set`` picks the number actually used.
    learning_rate, num_leaves, max_depth, min_child_samples, feature_fraction,
    bagging_fraction, lambda_l2, min_split_gain
        LightGBM's parameters of the same names (``max_depth=-1``: unlimited). The depth bounds
        the cost of SHAP drivers too (TreeSHAP is quadratic in it).
    early_stopping_rounds
        Stop when the validation log-loss has not improved for this many rounds.
    calibration
        ``"sigmoid"`` (Platt on log-odds, keeps the ranking), ``"isotonic"`` or ``"none"``.
    random_state
        Seed of LightGBM's bagging and feature sampling (the same seed gives the same model).
    n_jobs
        LightGBM threads; None uses every core.
    """

    FORMAT = 1

    def __init__(
        self,
        *,
        n_estimators: int = 1000,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        max_depth: int = -1,
        min_child_samples: int = 100,
        feature_fraction: float = 0.8,
        bagging_fraction: float = 0.8,
        lambda_l2: float = 1.0,
        min_split_gain: float = 0.0,
        early_stopping_rounds: int = 50,
        calibration: str = "sigmoid",
        random_state: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.bagging_fraction = bagging_fraction
        self.lambda_l2 = lambda_l2
        self.min_split_gain = min_split_gain
        self.early_stopping_rounds = early_stopping_rounds
        self.calibration = calibration
        self.random_state = random_state
        self.n_jobs = n_jobs

    # -- fitting -------------------------------------------------------------------------------
    def _lgb_params(self) -> dict:
        return {
            "objective": "binary",
            "metric": "binary_logloss",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "max_depth": self.max_depth,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1 if self.bagging_fraction < 1 else 0,
            "lambda_l2": self.lambda_l2,
            "min_split_gain": self.min_split_gain,
            "seed": self.random_state,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.n_jobs or 0,
            "verbosity": -1,
        }

    def fit(
        self,
        X: pd.DataFrame,
        y: pd.Series | np.ndarray,
        *,
        eval_set: tuple[pd.DataFrame, np.ndarray] | None = None,
        callbacks: list | None = None,
    ) -> ChurnModel:
        """Fit on ``X, y``; with ``eval_set`` (a later cutoff), early-stop and calibrate on it.

        ``X`` is a feature frame (or an array, whose columns are named ``x0``, ``x1``, ...);
        ``y`` holds two classes (``churned``: False/True), the second one is the positive class.
        """
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration={self.calibration!r}; expected one of {CALIBRATIONS}")
        if y is None:
            raise ValueError("ChurnModel requires y to be passed, but the target y is None")
        X = self._frame(X, reset=True)
        y = column_or_1d(check_array(y, ensure_2d=False, dtype=None), warn=True)
        check_consistent_length(X, y)
        check_classification_targets(y)
        self.classes_, y = np.unique(y, return_inverse=True)
        if len(self.classes_) != 2:
            raise ValueError(f"Only binary classification is supported: y has "
                             f"{len(self.classes_)} class(es) {self.classes_.tolist()}")
        self.feature_names_in_ = list(X.columns)
        self.n_features_in_ = len(self.feature_names_in_)
        self.categories_ = {
            c: list(X[c].cat.categories) for c in X.columns if isinstance(X[c].dtype,
                                                                          pd.CategoricalDtype)
        }
        train = lgb.Dataset(self._prepare(X), label=y.astype(float),
                            free_raw_data=True)
        valid_sets, cbs = [], list(callbacks or [])
        if eval_set is not None:
            valid = lgb.Dataset(self._prepare(eval_set[0]), label=np.asarray(eval_set[1],
                                                                              dtype=float),
                                reference=train)
            valid_sets = [valid]
            cbs.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        self.booster_ = lgb.train(
            self._lgb_params(), train, num_boost_round=self.n_estimators, valid_sets=valid_sets,
            valid_names=["validation"] if valid_sets else None, callbacks=cbs,
        )
        self.best_iteration_ = self.booster_.best_iteration or self.booster_.current_iteration()
        self.calibrator_ = None
        if eval_set is not None and self.calibration != "none":
            raw = self._raw_proba(eval_set[0])
            self.calibrator_ = _fit_calibrator(self.calibration, raw, np.asarray(eval_set[1]))
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # LightGBM routes missing values itself
        tags.classifier_tags.multi_class = False
        return tags

    # -- prediction ----------------------------------------------------------------------------
    def _frame(self, X: pd.DataFrame | np.ndarray, *, reset: bool) -> pd.DataFrame:
        """A frame as given; an array checked and named by position (``x0``, ... when fitting,
        the training features when predicting)."""
        if isinstance(X, pd.DataFrame):
            return X
        array = check_array(X, ensure_all_finite="allow-nan")
        if reset:
            return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])
        if array.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {array.shape[1]} features, but ChurnModel is expecting "
                             f"{self.n_features_in_} features as input.")
        return pd.DataFrame(array, columns=self.feature_names_in_)

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        """The columns in training order, categoricals with the training categories."""
        missing = [c for c in getattr(self, "feature_names_in_", X.columns) if c not in X.columns]
        if missing:
            raise ValueError(f"features missing from the input: {', '.join(missing)}")
        X = X[self.feature_names_in_]
        if self.categories_:
            X = X.copy()
            for column, categories in self.categories_.items():
                # A category never seen in training is unknown to the trees: treat it as missing.
                values = X[column].astype("object")
                values = values.where(values.isin(categories))
                X[column] = pd.Categorical(values, categories=categories)
        return X

    def _raw_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "booster_")
        X = self._frame(X, reset=False)
        if len(X) == 0:  # LightGBM refuses an empty matrix; no rows, no scores
            return np.empty(0)
        forest = forest_for(self.booster_, self.best_iteration_)
        if forest is not None:  # a compiled bundle: read the frame as lleaves reads it
            from lleaves.data_processing import data_to_ndarray

            return forest(data_to_ndarray(self._prepare(X), self.booster_.pandas_categorical))
        return self.booster_.predict(self._prepare(X), num_iteration=self.best_iteration_)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities, shape (n, 2): [P(stays), P(churns)]."""
        p = self._raw_proba(X)
        if self.calibrator_ is not None:
            p = _apply_calibrator(self.calibrator_, p)
        return np.c_[1 - p, p]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The class of each row: the positive one (churns) when its probability is >= 0.5."""
        positive = self.predict_proba(X)[:, 1] >= 0.5
        return self.classes_[positive.astype(int)]

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per-row SHAP values in log-odds from LightGBM's own ``pred_contrib``.

        Columns are the features plus ``bias``; each row sums to the raw (uncalibrated)
        log-odds of churning.
        """
        check_is_fitted(self, "booster_")
        X = self._frame(X, reset=False)
        if len(X) == 0:
            values = np.empty((0, len(self.feature_names_in_) + 1))
        else:
            values = self.booster_.predict(self._prepare(X), num_iteration=self.best_iteration_,
                                           pred_contrib=True)
        return pd.DataFrame(values, index=X.index, columns=[*self.feature_names_in_, "bias"])

    # -- prediction on feature columns (scoring) -----------------------------------------------
    def design(self, features: FeatureColumns) -> np.ndarray | None:
        """The float64 matrix the trees read, from feature columns: the training features in
        order, each category as its code among the training categories (unknown or missing:
        NaN), exactly as LightGBM encodes the frame :meth:`predict_proba` is given.

        None when LightGBM would read that frame otherwise (at float32 precision, or text in a
        column trained as a number): predict from the frame then.
        """
        check_is_fitted(self, "booster_")
        columns = features.columns
        missing = [c for c in self.feature_names_in_ if c not in columns]
        if missing:
            raise ValueError(f"features missing from the input: {', '.join(missing)}")
        codes = features.memo(("churn design", self), lambda: self._codes(features))
        if codes is None:
            return None
        X = features.matrix(self.feature_names_in_, text=False)
        for k, (column, lookup) in codes.items():
            X[:, k] = _encode(features.text(column), lookup)
        return X

    def _codes(self, features: FeatureColumns) -> dict[int, tuple[str, dict]] | None:
        """Per categorical input's position: its column and value -> code (float), or None
        when the frame's dtypes would not make LightGBM read float64 with these categories."""
        names = self.feature_names_in_
        text = {n for n in names if features.is_text(n)}
        if text != set(self.categories_):
            return None
        kinds = [features.dtype(n) for n in names if n not in text]
        if not all(isinstance(d, np.dtype) for d in kinds):  # e.g. nullable: as LightGBM does
            return None
        kinds = [np.dtype("float64") if d.kind == "b" else d for d in kinds]  # model_matrix: 0/1
        if np.result_type(*kinds, np.float32) != np.float64:
            return None
        # LightGBM re-encodes each category column (in column order) with the categories it
        # was trained with; a value outside them, or outside the model's, is missing.
        trained = self.booster_.pandas_categorical or []
        ordered = [n for n in names if n in text]
        if len(trained) != len(ordered):
            return None
        codes = {}
        for column, known in zip(ordered, trained, strict=True):
            at = {v: float(i) for i, v in enumerate(known)}
            codes[names.index(column)] = (column, {v: at[v] for v in self.categories_[column]
                                                   if v in at})
        return codes

    def predict_proba_design(self, X: np.ndarray) -> np.ndarray:
        """Calibrated P(churns) per row of a :meth:`design` matrix (shape (n,))."""
        if len(X) == 0:
            return np.empty(0)
        p = predict(self.booster_, X, num_iteration=self.best_iteration_)
        return _apply_calibrator(self.calibrator_, p) if self.calibrator_ is not None else p

    def contributions_design(self, X: np.ndarray) -> np.ndarray:
        """SHAP values in log-odds per row of a :meth:`design` matrix: (n, features + 1), the
        last column the bias (see :meth:`contributions`)."""
        if len(X) == 0:
            return np.empty((0, len(self.feature_names_in_) + 1))
        return predict(self.booster_, X, num_iteration=self.best_iteration_, pred_contrib=True)

    def feature_importance(self) -> pd.Series:
        """Total gain per feature, largest first."""
        gain = self.booster_.feature_importance(importance_type="gain",
                                                iteration=self.best_iteration_)
        return pd.Series(gain, index=self.feature_names_in_).sort_values(ascending=False)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """Write ``model.txt`` (LightGBM's text format) and ``churn_model.json``."""
        save_boosted(self, directory, _FILE, {
            "feature_names": self.feature_names_in_, "categories": self.categories_,
            "best_iteration": self.best_iteration_, "calibrator": self.calibrator_,
            "classes": self.classes_.tolist(),
        }, {"model": self.booster_}, num_iteration=self.best_iteration_)

    @classmethod
    def load(cls, directory: str | Path) -> ChurnModel:
        """Read what :meth:`save` wrote."""
        model, meta, booster = load_boosted(cls, directory, _FILE, part="churn model")
        model.booster_ = booster("model")
        model.feature_names_in_ = meta["feature_names"]
        model.n_features_in_ = len(model.feature_names_in_)
        model.categories_ = meta["categories"]
        model.best_iteration_ = meta["best_iteration"]
        model.calibrator_ = meta["calibrator"]
        model.classes_ = np.array(meta.get("classes", [False, True]))  # older: churned
        return model


def _encode(values: np.ndarray, lookup: dict) -> np.ndarray:
    """Category codes (float; NaN for anything not in ``lookup``) of an object array."""
    if len(values) <= 64:
        return np.array([lookup.get(v, np.nan) if isinstance(v, str) else np.nan
                         for v in values.tolist()], dtype=float).reshape(len(values))
    keys = list(lookup)
    at = pd.Categorical(values, categories=keys).codes
    mapped = np.asarray([lookup[k] for k in keys] + [np.nan], dtype=float)
    return mapped[np.where(at >= 0, at, len(keys))]


def _fit_calibrator(kind: str, raw: np.ndarray, y: np.ndarray) -> dict:
    """A calibrator as plain numbers (so it saves as JSON, not pickle)."""
    if kind == "sigmoid":
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(raw)[:, None], y)
        return {"kind": "sigmoid", "a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
    return {"kind": "isotonic", "x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}


def _apply_calibrator(cal: dict, raw: np.ndarray) -> np.ndarray:
    if cal["kind"] == "sigmoid":
        return 1.0 / (1.0 + np.exp(-(cal["a"] * _logit(raw) + cal["b"])))
    return np.interp(raw, cal["x"], cal["y"])
