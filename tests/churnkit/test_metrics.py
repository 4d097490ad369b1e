"""The weighted metrics agree with scikit-learn, and bootstrap intervals behave."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from churnkit.stats import metrics as m


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    n = 4000
    y = rng.random(n) < 0.3
    p = np.clip(0.3 + 0.25 * (y - 0.3) + rng.normal(0, 0.2, n), 0.001, 0.999)
    p = np.clip(np.round(p, 2), 0.01, 0.99)  # ties on purpose, no 0 or 1
    return y, p


def test_point_metrics_match_sklearn(data):
    y, p = data
    assert m.roc_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
    assert m.average_precision(y, p) == pytest.approx(
        skm.average_precision_score(y, p), abs=1e-12
    )
    assert m.brier(y, p) == pytest.approx(skm.brier_score_loss(y, p), abs=1e-12)
    assert m.log_loss(y, p) == pytest.approx(skm.log_loss(y, p), abs=1e-9)


def test_weighted_metrics_match_sklearn_sample_weight(data):
    y, p = data
    w = np.random.default_rng(5).integers(0, 4, len(y)).astype(float)
    assert m.roc_auc(y, p, np.stack([w, w]))[1] == pytest.approx(
        skm.roc_auc_score(y, p, sample_weight=w), abs=1e-12
    )
    assert m.average_precision(y, p, np.stack([w]))[0] == pytest.approx(
        skm.average_precision_score(y, p, sample_weight=w), abs=1e-12
    )


def test_top_decile_lift_of_a_perfect_ranking():
    y = np.r_[np.ones(100), np.zeros(900)].astype(bool)
    assert m.top_decile_lift(y, y.astype(float)) == pytest.approx(10.0)
    assert m.top_decile_lift(y, np.zeros(1000) + 0.5) <= 10.0


def test_bootstrap_intervals_cover_point_and_pair(data):
    y, p = data
    noise = np.clip(p + np.random.default_rng(1).normal(0, 0.3, len(p)), 0, 1)
    draws = m.bootstrap_draws(y, {"model": p, "worse": noise}, n_boot=100, random_state=0)
    est = m.evaluate_scores(y, {"model": p}, n_boot=100, random_state=0)["model"]["roc_auc"]
    assert est.low < est.value < est.high
    diff = m.paired_difference(draws, "model", "worse", "roc_auc")
    assert diff.low > 0, "a model ahead by a wide margin has a paired interval above zero"
    same = m.paired_difference(draws, "model", "model", "roc_auc")
    assert same.low == same.high == 0.0


def test_bootstrap_point_values_equal_the_plain_metrics(data):
    y, p = data
    draws = m.bootstrap_draws(y, {"p": p, "days": p * 300}, n_boot=20, random_state=0)
    assert draws["p"]["roc_auc"][0] == pytest.approx(m.roc_auc(y, p), abs=1e-6)  # float32
    assert draws["p"]["pr_auc"][0] == pytest.approx(m.average_precision(y, p), abs=1e-6)
    assert draws["p"]["top_decile_lift"][0] == pytest.approx(m.top_decile_lift(y, p), rel=0.02)
    assert draws["p"]["brier"][0] == pytest.approx(m.brier(y, p))
    # a score outside [0, 1] gets ranking metrics only, identical to the probability's
    assert "brier" not in draws["days"]
    np.testing.assert_allclose(draws["days"]["roc_auc"][1], draws["p"]["roc_auc"][1])
    assert len(draws["p"]["roc_auc"][1]) == 20
