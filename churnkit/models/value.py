"""Customer value: expected revenue over the horizon, and what a customer who comes back is worth.

A hurdle model of revenue in ``[as_of, as_of + horizon)`` (currency): LightGBM's probability that
the customer orders at all in the window times a LightGBM gamma regression of their revenue given
that they order. Two outputs matter downstream:

- ``expected_value`` = P(order) × E[revenue | order]: what the customer is expected to bring
  (the scoring contract's column; ranks customers by value);
- ``value_if_returned`` = E[revenue | order]: what a win-back that brings the customer back is
  worth. The policy multiplies it by an uplift in P(return) and compares it with the action's
  cost (DOMAIN.md economic gate), so a customer who is surely leaving still has value at stake.

Features are the churnkit feature frame (index ``customer_id``), as of the scoring date.
"""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from churnkit.data.frames import numeric_matrix, require_columns
from churnkit.features.registry import all_features, model_features
from churnkit.models.part import read_document, write_document

_FILE = "value_model.json"
VALUE_COLUMNS = ("expected_value", "value_if_returned", "p_order")


def value_feature_names(features: pd.DataFrame) -> list[str]:
    """The registry's numeric and flag model inputs present in ``features`` (text ones left
    out; see :func:`churnkit.features.registry.model_features`)."""
    kinds = {f.name: f.dtype for f in all_features()}
    return [n for n in model_features(features.columns) if kinds[n] != "str"]


def _matrix(features: pd.DataFrame, names: list[str]) -> np.ndarray:
    require_columns(features, names, needed_by="the value model")
    return numeric_matrix(features, names)


class ValueModel(BaseEstimator):
    """Expected revenue over ``horizon_days`` (currency), per customer (see module docstring).

    Parameters follow LightGBM's; ``random_state`` seeds both models; ``n_jobs`` threads.
    Fitted attributes: ``feature_names_``, ``classifier_``, ``regressor_`` (LightGBM boosters),
    ``mean_if_returned_`` (fallback when too few buyers to fit the regression).
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

    def fit(self, features: pd.DataFrame, revenue: object) -> ValueModel:
        """Fit on feature rows and the revenue each customer brought in the following
        ``horizon_days`` (currency, >= 0; NaN not allowed)."""
        y = np.asarray(revenue, dtype=float)
        if len(y) != len(features):
            raise ValueError(f"revenue has {len(y)} values for {len(features)} feature rows")
        bad = np.flatnonzero(~np.isfinite(y) | (y < 0))
        if len(bad):
            raise ValueError(f"revenue must be finite and >= 0; rows {bad[:5].tolist()} are not")
        self.feature_names_ = value_feature_names(features)
        X = _matrix(features, self.feature_names_)
        buys = y > 0
        if buys.all() or not buys.any():
            raise ValueError("revenue must have both customers who ordered and who did not")
        self.classifier_ = lgb.train(self._params("binary"),
                                     lgb.Dataset(X, buys.astype(float), free_raw_data=True),
                                     num_boost_round=self.n_estimators)
        self.mean_if_returned_ = float(y[buys].mean())
        self.regressor_ = None
        if buys.sum() >= 2 * self.min_child_samples:
            self.regressor_ = lgb.train(self._params("gamma"),
                                        lgb.Dataset(X[buys], y[buys], free_raw_data=True),
                                        num_boost_round=self.n_estimators)
        return self

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        """Index as ``features``: ``expected_value``, ``value_if_returned`` (currency over the
        horizon) and ``p_order`` (probability of any order in the horizon)."""
        X = _matrix(features, self.feature_names_)
        if not len(X):
            return pd.DataFrame({c: pd.Series(dtype=float) for c in VALUE_COLUMNS},
                                index=features.index)
        p = self.classifier_.predict(X)
        cond = (self.regressor_.predict(X) if self.regressor_ is not None
                else np.full(len(X), self.mean_if_returned_))
        return pd.DataFrame({"expected_value": p * cond, "value_if_returned": cond,
                             "p_order": p}, index=features.index)

    def predict(self, features: pd.DataFrame) -> pd.Series:
        """``expected_value``: expected revenue over the horizon (currency), index as
        ``features``."""
        return self.predict_frame(features)["expected_value"]

    # -- persistence (a bundle component) ------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """``classifier.txt``, ``regressor.txt`` (LightGBM text) and ``value_model.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.classifier_.save_model(str(directory / "classifier.txt"))
        if self.regressor_ is not None:
            self.regressor_.save_model(str(directory / "regressor.txt"))
        write_document(directory, _FILE, {
            "params": self.get_params(), "feature_names": self.feature_names_,
            "mean_if_returned": self.mean_if_returned_,
        }, format=self.FORMAT)

    @classmethod
    def load(cls, directory: str | Path) -> ValueModel:
        """Read what :meth:`save` wrote."""
        directory = Path(directory)
        meta = read_document(directory, _FILE, part="value model", format=cls.FORMAT)
        model = cls(**meta["params"])
        model.feature_names_ = list(meta["feature_names"])
        model.mean_if_returned_ = float(meta["mean_if_returned"])
        model.classifier_ = lgb.Booster(model_file=str(directory / "classifier.txt"))
        reg = directory / "regressor.txt"
        model.regressor_ = lgb.Booster(model_file=str(reg)) if reg.exists() else None
        return model
