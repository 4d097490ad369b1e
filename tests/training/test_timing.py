"""Timing inside the training pipeline: fitted, evaluated at the held-out cutoff, bundled,
reported, and served by ``ck.score``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import churnkit as ck
from churnkit.timing import OUTPUT_COLUMNS, TimingModel
from training.config import TrainConfig
from training.pipeline import train
from training.report import render_report
from training.timing import day_baselines, summary_lines

AS_OF = "2025-07-01"
CREATED = pd.Timestamp("2025-07-02T08:00:00Z")


def test_day_baselines_follow_their_definitions():
    frame = pd.DataFrame({"gap_mean_days": [30.0, 30.0, np.nan],
                          "days_since_last_order": [10.0, 45.0, 5.0],
                          "expected_purchases_90d": [1e-9, 90.0, 9.0]})
    b = day_baselines(frame, 90)
    assert list(b["mean_gap"]) == [20.0, 0.0, 45.0]  # remaining gap; overdue: now; none: H/2
    assert b["btyd"][0] == pytest.approx(45.0, abs=0.1)  # no rate: uniform over the horizon
    assert b["btyd"][1] == pytest.approx(1.0, abs=0.01)  # one order a day: about a day
    assert b["btyd"][0] > b["btyd"][2] > b["btyd"][1]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    tables, truth = ck.synth.generate(2000, seed=13, start="2023-01-01", end=AS_OF)
    root = tmp_path_factory.mktemp("timing-train")
    config = TrainConfig.load(trials=2, bootstrap=20, threads=1, train_cutoffs=2,
                              models_dir=root / "models",
                              tracking_uri=f"sqlite:///{root / 'mlruns.db'}", name="timing-test")
    return tables, train(tables, as_of=AS_OF, config=config, truth=truth, created_at=CREATED)


@pytest.mark.slow
def test_train_fits_and_evaluates_timing_at_the_held_out_cutoff(result):
    _, res = result
    assert isinstance(res.bundle.timing, TimingModel)
    te = res.timing_evaluation
    assert te.cutoff == res.cutoffs.evaluation
    days = te.days["mae_days"]
    assert days["model"] < days["mean_gap"], days  # the hazard model beats the heuristic
    hour = te.slots.loc[("hour", "all")]
    assert hour.loc["model", "top3"] > hour.loc["global_best", "top3"], hour
    assert te.truth is not None
    truth_all = te.truth.loc["all", "in_true_top_decile"]
    assert truth_all["model"] > truth_all["global_best"], truth_all
    metrics = res.bundle.metadata.metrics
    assert "timing_days_mae_model" in metrics and "timing_hour_top3_all_model" in metrics
    assert metrics["timing_days_mae_model"] == pytest.approx(days["model"])
    lines = summary_lines(te)
    assert "MAE" in lines[0] and "top-3" in lines[1]


@pytest.mark.slow
def test_bundle_with_timing_scores_and_reports(result, tmp_path):
    tables, res = result
    path = res.bundle.save(tmp_path / "bundle")
    assert (path / "timing" / "timing.json").exists()
    bundle = ck.ModelBundle.load(path)
    ids = tables.customers["customer_id"].iloc[:50].tolist()
    scored = ck.score(tables, as_of=AS_OF, bundle=bundle, customer_ids=ids)
    assert set(OUTPUT_COLUMNS) <= set(scored.columns)
    as_of = pd.Timestamp(AS_OF, tz="UTC")
    assert (scored["contact_date"] >= as_of).all()
    assert scored["contact_hour_local"].between(9, 20).all()
    html = render_report(res.evaluation, title="t", timing=res.timing_evaluation)
    assert 'id="timing"' in html and "modal_hour" in html and "mean_gap" in html
