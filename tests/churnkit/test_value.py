"""The customer value model: fit on snapshots, honest at a held-out cutoff, saved and loaded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import churnkit as ck
from churnkit.models.value import ValueModel
from training.value import realized_revenue, train_value, value_metrics

AS_OF = "2025-07-01"


@pytest.fixture(scope="module")
def trained():
    tables, _ = ck.synth.generate(2500, seed=17, start="2023-01-01", end=AS_OF)
    model, evaluation = train_value(tables, as_of=AS_OF, train_cutoffs=2, threads=1,
                                    n_estimators=120)
    return tables, model, evaluation


@pytest.mark.slow
def test_beats_the_baselines_at_the_held_out_cutoff(trained):
    _, _, ev = trained
    m = ev.metrics
    assert ev.cutoff == pd.Timestamp("2025-04-02", tz="UTC")  # as_of - 90 days, never fitted
    assert set(m) == {"model", "last_year_revenue", "last_90d_revenue", "btyd_x_mean_basket"}
    for baseline in ("last_year_revenue", "last_90d_revenue", "btyd_x_mean_basket"):
        assert m["model"]["spearman"] > m[baseline]["spearman"], (baseline, m)
        assert m["model"]["mae"] < m[baseline]["mae"], (baseline, m)
    assert m["model"]["top_decile_capture"] > 0.3
    assert 0.7 < m["model"]["total_ratio"] < 1.3  # unbiased in total, roughly


@pytest.mark.slow
def test_outputs_are_consistent_and_survive_save_load(trained, tmp_path):
    tables, model, _ = trained
    f = ck.build_features(tables, as_of=AS_OF)
    out = model.predict_frame(f)
    assert list(out.columns) == ["expected_value", "value_if_returned", "p_order"]
    assert (out["value_if_returned"] > 0).all() and out["p_order"].between(0, 1).all()
    np.testing.assert_allclose(out["expected_value"], out["p_order"] * out["value_if_returned"])
    # who bought more in the last year is worth more, on average
    top = f["revenue_365d"] >= f["revenue_365d"].quantile(0.9)
    assert out.loc[top, "expected_value"].mean() > 3 * out.loc[~top, "expected_value"].mean()
    model.save(tmp_path)
    again = ValueModel.load(tmp_path)
    pd.testing.assert_frame_equal(again.predict_frame(f), out)
    pd.testing.assert_series_equal(again.predict(f), out["expected_value"])


def _orders_shop():
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    customers = pd.DataFrame({"customer_id": [1, 2], "signup_at": [t0, t0],
                              "timezone": ["UTC", "UTC"]})
    times = [t0 + pd.Timedelta(days=d) for d in (5, 40, 50, 60, 95)]
    orders = pd.DataFrame({
        "order_id": [1, 2, 3, 4, 5], "customer_id": [1, 1, 1, 2, 1], "ordered_at": times,
        "amount": [10.0, 20.0, 30.0, 40.0, 50.0],
        "status": ["delivered", "delivered", "returned", "cancelled", "delivered"],
        "status_at": times,
    })
    return ck.validate(ck.Tables(customers, orders))


def test_realized_revenue_counts_the_window_without_cancelled_or_returned():
    tables = _orders_shop()
    rows = pd.DataFrame({"customer_id": [1, 2, 1],
                         "cutoff": pd.to_datetime(["2024-02-01", "2024-02-01", "2024-01-01"],
                                                  utc=True)})
    # window [Feb 1, May 1): customer 1 has 20 (Feb 10) + 50 (Apr 5), 30 returned; 2: cancelled
    # window [Jan 1, Apr 1): customer 1 has 10 + 20
    np.testing.assert_allclose(realized_revenue(tables, rows, horizon_days=90), [70, 0, 30])


def test_bad_targets_are_refused():
    f = pd.DataFrame({"orders_lifetime": [1, 2, 3], "revenue_365d": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="rows \\[1\\]"):
        ValueModel().fit(f, [0.0, -5.0, 3.0])
    with pytest.raises(ValueError, match="2 values for 3 feature rows"):
        ValueModel().fit(f, [0.0, 1.0])


def test_everyone_or_no_one_ordering_gives_a_constant_order_probability():
    f = pd.DataFrame({"orders_lifetime": [1, 2, 3], "revenue_365d": [1.0, 2.0, 3.0]})
    nobody = ValueModel(min_child_samples=1).fit(f, [0.0, 0.0, 0.0]).predict_frame(f)
    assert (nobody["p_order"] == 0).all() and (nobody["expected_value"] == 0).all()
    everyone = ValueModel(min_child_samples=1).fit(f, [10.0, 20.0, 30.0]).predict_frame(f)
    assert (everyone["p_order"] == 1).all()
    assert everyone["expected_value"].between(10, 30).all()


def test_metrics_reward_ranking_and_capture():
    realized = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 100.0])
    perfect = value_metrics(realized, realized)
    assert perfect["spearman"] == pytest.approx(1.0) and perfect["mae"] == 0
    assert perfect["top_decile_capture"] == 1.0 and perfect["total_ratio"] == 1.0
    wrong = value_metrics(realized[::-1], realized)
    assert wrong["top_decile_capture"] == 0.0 and wrong["spearman"] < 0
