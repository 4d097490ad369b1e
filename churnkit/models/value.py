"""Customer value: expected revenue over the horizon, and what a customer who comes back is worth.

A hurdle model of revenue in ``[as_of, as_of + horizon)`` (currency): LightGBM's probability that
the customer orders at all in the window times a LightGBM gamma regression of their revenue given
that they order. Two outputs matter downstream:

- ``expected_value`` = P(order) × E[revenue | order]: what the customer is expected to bring
  (the scoring contract's column; ranks customers by value);
- ``value_if_returned`` = E[revenue | order]: what a win-back that brings the customer back is
  worth. The policy multiplies it by an uplift in P(return) and compares it with the action's
  cost (docs/domain.md economic gate), so a customer who is surely leaving still has value at stake.

Features are the churnkit feature frame (index ``customer_id``), as of the scoring date.
"""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d

from churnkit.data.columns import FeatureColumns
from churnkit.data.frames import numeric_matrix, require_columns
from churnkit.features.registry import all_features, model_features
from churnkit.models.prediction import predict
from churnkit.models.trees import load_boosted, save_boosted

_FILE = "value_model.json"
VALUE_COLUMNS = ("expected_value", "value_if_returned", "p_order")


def value_feature_names(features: pd.DataFrame) -> list[str]:
    """The registry's numeric and flag model inputs present in ``features`` (text ones left
    out; see :func:`churnkit.features.registry.model_features`); every column when none of
    them is present."""
    kinds = {f.name: f.dtype for f in all_features()}
    names = [n for n in model_features(features.columns) if kinds[n] != "str"]
    return names or list(features.columns)


def _matrix(features: pd.DataFrame, names: list[str]) -> np.ndarray:
    require_columns(features, names, needed_by="the value model")
    return numeric_matrix(features, names)


class ValueModel(RegressorMixin, BaseEstimator):
    """Expected revenue over ``horizon_days`` (currency), per customer (see module docstring).

    Parameters follow LightGBM's; ``random_state`` seeds both models; ``n_jobs`` threads.
    Fitted attributes: ``feature_names_``, ``classifier_``, ``regressor_`` (LightGBM boosters;
    ``classifier_`` is None when everyone or no one ordered, and P(order) is then
    ``order_rate_``), ``mean_if_returned_`` (fallback when too few buyers to fit the
    regression).
    """

    FORMAT = 1

    def __init__(self, *, horizon_days: int = 90, n_estimators: int = 300,
                 learning_rate: float = 0.05, num_leaves: int = 31, min_child_samples: int = 50,
                 random_state: int = 0, n_jobs: int | None = None) -> None:
        self.horizon_days = horizon_days
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _params(self, objective: str) -> dict:
        return {"objective": objective, "learning_rate": self.learning_rate,
                "num_leaves": self.num_leaves, "min_child_samples": self.min_child_samples,
                "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
                "lambda_l2": 1.0, "seed": self.random_state, "deterministic": True,
                "num_threads": self.n_jobs or 0, "verbosity": -1}

    def fit(self, X: pd.DataFrame | np.ndarray, y: object) -> ValueModel:
        """Fit on feature rows ``X`` and the revenue ``y`` each customer brought in the
        following ``horizon_days`` (currency, >= 0; NaN not allowed). ``X`` is a feature frame
        (or an array, whose columns are named ``x0``, ``x1``, ...)."""
        if y is None:
            raise ValueError("ValueModel requires y to be passed, but the target y is None")
        features = self._frame(X, reset=True)
        y = column_or_1d(check_array(y, ensure_2d=False, dtype=float, ensure_all_finite=False),
                         warn=True)
        if len(y) != len(features):
            raise ValueError(f"revenue has {len(y)} values for {len(features)} feature rows")
        bad = np.flatnonzero(~np.isfinite(y) | (y < 0))
        if len(bad):
            raise ValueError(f"revenue must be finite and >= 0; rows {bad[:5].tolist()} are not")
        self.feature_names_ = value_feature_names(features)
        self.n_features_in_ = features.shape[1]
        X = _matrix(features, self.feature_names_)
        buys = y > 0
        # The hurdle's first stage: P(order); a constant when everyone (or no one) ordered.
        self.order_rate_ = float(buys.mean())
        self.classifier_ = None
        if 0 < buys.sum() < len(y):
            self.classifier_ = lgb.train(self._params("binary"),
                                         lgb.Dataset(X, buys.astype(float), free_raw_data=True),
                                         num_boost_round=self.n_estimators)
        self.mean_if_returned_ = float(y[buys].mean()) if buys.any() else 0.0
        self.regressor_ = None
        if buys.sum() >= 2 * self.min_child_samples:
            self.regressor_ = lgb.train(self._params("gamma"),
                                        lgb.Dataset(X[buys], y[buys], free_raw_data=True),
                                        num_boost_round=self.n_estimators)
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # LightGBM routes missing values itself
        tags.target_tags.positive_only = True  # revenue
        return tags

    def _frame(self, features: pd.DataFrame | FeatureColumns | np.ndarray, *, reset: bool
               ) -> pd.DataFrame | FeatureColumns:
        """A frame (or feature columns) as given; an array checked and named by position
        (``x0``, ...)."""
        if isinstance(features, pd.DataFrame | FeatureColumns):
            return features
        array = check_array(features, ensure_all_finite="allow-nan")
        if not reset and array.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {array.shape[1]} features, but ValueModel is expecting "
                             f"{self.n_features_in_} features as input.")
        return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """Index as ``features``: ``expected_value``, ``value_if_returned`` (currency over the
        horizon) and ``p_order`` (probability of any order in the horizon)."""
        check_is_fitted(self, "order_rate_")
        features = self._frame(features, reset=False)
        values = self.predict_columns(features)
        if not len(features):
            return pd.DataFrame({c: pd.Series(dtype=float) for c in VALUE_COLUMNS},
                                index=features.index)
        return pd.DataFrame(values, index=features.index)

    def predict_columns(self, features: pd.DataFrame | FeatureColumns) -> dict[str, np.ndarray]:
        """:meth:`predict_frame`'s columns as arrays (float64, one value per row)."""
        check_is_fitted(self, "order_rate_")
        X = _matrix(features, self.feature_names_)
        if not len(X):
            return {c: np.empty(0) for c in VALUE_COLUMNS}
        p = (predict(self.classifier_, X) if self.classifier_ is not None
             else np.full(len(X), self.order_rate_))
        cond = (predict(self.regressor_, X) if self.regressor_ is not None
                else np.full(len(X), self.mean_if_returned_))
        return {"expected_value": p * cond, "value_if_returned": cond, "p_order": p}

    def predict(self, features: pd.DataFrame) -> pd.Series:
        """``expected_value``: expected revenue over the horizon (currency), index as
        ``features``."""
        return self.predict_frame(features)["expected_value"]

    # -- persistence (a bundle component) ------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """``classifier.txt``, ``regressor.txt`` (LightGBM text) and ``value_model.json``."""
        save_boosted(self, directory, _FILE, {
            "feature_names": self.feature_names_, "n_features_in": self.n_features_in_,
            "order_rate": self.order_rate_, "mean_if_returned": self.mean_if_returned_,
        }, {"classifier": self.classifier_, "regressor": self.regressor_})

    @classmethod
    def load(cls, directory: str | Path) -> ValueModel:
        """Read what :meth:`save` wrote."""
        model, meta, booster = load_boosted(cls, directory, _FILE, part="value model")
        model.feature_names_ = list(meta["feature_names"])
        model.n_features_in_ = int(meta.get("n_features_in", len(model.feature_names_)))
        model.mean_if_returned_ = float(meta["mean_if_returned"])
        # Saved before the constant first stage: the classifier is always there.
        model.order_rate_ = float(meta.get("order_rate", "nan"))
        model.classifier_ = booster("classifier")
        model.regressor_ = booster("regressor")
        return model
