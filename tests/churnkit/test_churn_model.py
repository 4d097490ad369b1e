"""ChurnModel: scikit-learn contract, determinism, calibration, SHAP, persistence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from churnkit.models.churn import ChurnModel
from churnkit.stats.metrics import roc_auc


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "recency": rng.exponential(30, n),
            "frequency": rng.poisson(3, n).astype(float),
            "noise": rng.normal(size=n),
            "top_category": pd.Categorical(rng.choice(["books", "toys", "food"], n)),
        }
    )
    logit = 0.05 * (X["recency"] - 30) - 0.4 * (X["frequency"] - 3) + 0.8 * (
        X["top_category"] == "toys"
    )
    # a base-rate shift between folds, as between snapshots, that calibration must absorb
    y = rng.random(n) < 1 / (1 + np.exp(-(logit + (0.7 if seed == 2 else 0.0))))
    return X, y.to_numpy()


@pytest.fixture(scope="module")
def folds():
    return _frame(6000, 1), _frame(3000, 2), _frame(3000, 3)


def test_fit_predict_and_sklearn_contract(folds):
    (X, y), (Xv, yv), _ = folds
    model = ChurnModel(n_estimators=200, random_state=1, n_jobs=1)
    assert clone(model).get_params() == model.get_params()
    assert model.fit(X, y, eval_set=(Xv, yv)) is model
    p = model.predict_proba(Xv)[:, 1]
    assert p.shape == (len(Xv),) and np.all((p >= 0) & (p <= 1))
    assert roc_auc(yv, p) > 0.75
    importance = model.feature_importance()
    assert importance.index[-1] == "noise"


def test_same_seed_same_model_and_calibration_tracks_base_rate(folds):
    (X, y), (Xv, yv), _ = folds
    a = ChurnModel(n_estimators=150, random_state=4, n_jobs=1).fit(X, y, eval_set=(Xv, yv))
    b = ChurnModel(n_estimators=150, random_state=4, n_jobs=1).fit(X, y, eval_set=(Xv, yv))
    np.testing.assert_array_equal(a.predict_proba(Xv), b.predict_proba(Xv))
    raw = ChurnModel(n_estimators=150, random_state=4, n_jobs=1, calibration="none").fit(
        X, y, eval_set=(Xv, yv)
    )
    # the validation fold churns more than the training fold: calibration moves the mean there
    gap_calibrated = abs(a.predict_proba(Xv)[:, 1].mean() - yv.mean())
    gap_raw = abs(raw.predict_proba(Xv)[:, 1].mean() - yv.mean())
    assert gap_calibrated < 0.01 < gap_raw
    # Platt scaling is monotone: the ranking is unchanged
    assert roc_auc(yv, a.predict_proba(Xv)[:, 1]) == pytest.approx(
        roc_auc(yv, raw.predict_proba(Xv)[:, 1])
    )


def test_contributions_sum_to_raw_log_odds(folds):
    (X, y), (Xv, yv), _ = folds
    model = ChurnModel(n_estimators=100, n_jobs=1, calibration="none").fit(X, y,
                                                                          eval_set=(Xv, yv))
    contrib = model.contributions(Xv.head(50))
    assert list(contrib.columns) == [*X.columns, "bias"]
    p = model.predict_proba(Xv.head(50))[:, 1]
    np.testing.assert_allclose(contrib.sum(axis=1), np.log(p / (1 - p)), rtol=1e-6, atol=1e-6)


def test_save_load_roundtrip_and_unseen_category(tmp_path, folds):
    (X, y), (Xv, yv), (Xt, _) = folds
    model = ChurnModel(n_estimators=100, n_jobs=1).fit(X, y, eval_set=(Xv, yv))
    model.save(tmp_path)
    loaded = ChurnModel.load(tmp_path)
    np.testing.assert_allclose(loaded.predict_proba(Xt), model.predict_proba(Xt))
    odd = Xt.head(3).copy()
    odd["top_category"] = pd.Categorical(["garden", "books", "garden"])
    assert np.isfinite(loaded.predict_proba(odd)).all()
    with pytest.raises(ValueError, match="features missing from the input: noise"):
        loaded.predict_proba(Xt.drop(columns=["noise"]))
