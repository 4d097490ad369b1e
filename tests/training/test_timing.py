"""Timing inside the training pipeline: fitted, evaluated at the held-out cutoff, bundled,
reported, and served by ``ck.score``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import churnkit as ck
from churnkit.data.contract import CHANNELS
from churnkit.models.timing import OUTPUT_COLUMNS, TimingModel
from churnkit.models.timing.channels import ChannelRanker
from training.config import TrainConfig
from training.pipeline import train
from training.report import render_report
from training.timing import day_baselines, evaluate_channels, summary_lines

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


def test_channel_evaluation_weights_each_policys_messages_by_the_allowed_channels():
    ranker = ChannelRanker()  # population: sms opens 60%, email 30%, the others 10%
    ranker.alpha_ = {ch: {"sms": 6.0, "email": 3.0}.get(ch, 1.0) for ch in CHANNELS}
    ranker.beta_ = {ch: {"sms": 4.0, "email": 7.0}.get(ch, 9.0) for ch in CHANNELS}
    model = type("Model", (), {"channels_": ranker})()
    ev = pd.DataFrame({"can_contact_email": [1, 1, 1], "can_contact_sms": [1, 1, 0],
                       "contacts_email": [0, 20, 0], "opens_email": [0, 18, 0],
                       "contacts_sms": [0, 20, 0], "opens_sms": [0, 0, 0]},
                      index=pd.Index(["a", "b", "c"], name="customer_id"))
    cutoff = pd.Timestamp("2025-01-01", tz="UTC")
    day = pd.Timedelta(days=1)
    contacts = pd.DataFrame({
        "customer_id": ["a", "a", "b", "b", "c", "a", "a"],
        "channel": ["sms", "email", "email", "sms", "email", "sms", "sms"],
        "group": ["treatment"] * 5 + ["control", "treatment"],
        "sent_at": [cutoff + day] * 6 + [cutoff - day],  # the last one before the cutoff
        "opened_at": [cutoff + 2 * day, pd.NaT, cutoff + 2 * day, pd.NaT, cutoff + 2 * day,
                      pd.NaT, cutoff],
        "converted_at": [cutoff + 9 * day] + [pd.NaT] * 6,
    })
    out = evaluate_channels(model, ev, contacts, cutoff=cutoff, horizon_days=90, n_boot=20)
    # b's own history makes email its best channel; the population's best is sms for both;
    # c (one allowed channel), the control message and the one before the cutoff are left out.
    assert out.loc["model", "messages"] == 2 and out.loc["model", "open_rate"] == 1.0
    assert out.loc["population_best", "open_rate"] == 0.5
    assert out.loc["as_sent", "messages"] == 4 and out.loc["as_sent", "open_rate"] == 0.5
    assert out.loc["model", "conversion_rate"] == 0.5
    assert out.loc["as_sent", "conversion_rate"] == 0.25
    assert (out["open_low"] <= out["open_rate"]).all()
    assert (out["open_rate"] <= out["open_high"]).all()
    # no message on a's best channel (sms): nothing to estimate for the policies, not 0%
    email_only = contacts[(contacts["customer_id"] == "a") & (contacts["channel"] == "email")]
    out = evaluate_channels(model, ev, email_only, cutoff=cutoff, horizon_days=90, n_boot=20)
    assert out.loc[["model", "population_best"], ["open_rate", "open_low"]].isna().all().all()
    assert out.loc["as_sent", "open_rate"] == 0.0 and out.loc["model", "messages"] == 0


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
    # On the shop, channels differ in open rate: the chosen channel opens more than a random one.
    channels = te.channels
    assert channels.loc["model", "open_rate"] > channels.loc["as_sent", "open_rate"], channels
    assert metrics["timing_channel_open_rate_model"] == channels.loc["model", "open_rate"]
    lines = summary_lines(te)
    assert "MAE" in lines[0] and "top-3" in lines[1] and "open rate" in lines[2]


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


@pytest.mark.slow
def test_churnkit_evaluate_reports_timing_and_channels_of_a_saved_bundle(result, tmp_path):
    import subprocess
    import sys

    tables, res = result
    data = tmp_path / "shop"
    ck.save_tables(tables, data)
    bundle = res.bundle.save(tmp_path / "bundle")
    report = tmp_path / "evaluation.html"
    run = subprocess.run(
        [sys.executable, "-m", "churnkit", "evaluate", "--data", str(data), "--model",
         str(bundle), "--as-of", AS_OF, "--report", str(report),
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlruns.db'}"],
        capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    html = report.read_text()
    assert 'id="timing"' in html and "Which channel" in html and "population_best" in html
    assert "open rate of the chosen channel" in run.stdout
