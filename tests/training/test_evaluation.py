"""evaluate() on synthetic scores of known quality: paired intervals, baselines, oracle, tables."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from training.evaluation import Evaluation, evaluate

N = 3000


def _data(seed: int = 7):
    rng = np.random.default_rng(seed)
    truth = rng.beta(1.2, 4.0, N)
    y = rng.random(N) < truth
    noisy = lambda sd: np.clip(truth + rng.normal(0, sd, N), 0, 1)  # noqa: E731
    scores = {
        "model": noisy(0.03),
        "weak": noisy(0.4),
        "medium": noisy(0.15),
        # Days since the last order: not a probability, only ranking metrics apply.
        "recency days": np.round(200 * truth + rng.normal(0, 60, N)) + 300,
        "oracle": truth,
    }
    segment = np.where(rng.random(N) < 0.5, "new", "repeat").astype(object)
    segment[:30] = "vip"  # too few customers to score
    stayed = np.flatnonzero(~y)[:80]
    complaints = np.zeros(N, dtype=bool)
    complaints[stayed] = True  # only one outcome among complainers
    segments = pd.DataFrame({"segment": segment, "has_browsing": rng.random(N) < 0.6,
                             "has_complaints": complaints})
    return y, scores, segments


@pytest.fixture(scope="module")
def ev() -> Evaluation:
    y, scores, segments = _data()
    contributions = pd.DataFrame({"recency": [1.0, -3.0, 2.0], "tickets": [0.1, -0.1, 0.4],
                                  "bias": [-2.0, -2.0, -2.0]})
    return evaluate(y, scores, oracle="oracle", segments=segments, contributions=contributions,
                    cutoff="2025-04-02", horizon_days=90, n_boot=100, random_state=1)


def test_point_values_and_basic_fields(ev):
    y, scores, _ = _data()
    assert ev.n_customers == N and ev.churn_rate == pytest.approx(y.mean())
    assert ev.cutoff == pd.Timestamp("2025-04-02", tz="UTC") and ev.horizon_days == 90
    assert ev.metrics["model"]["roc_auc"].value == pytest.approx(roc_auc_score(y, scores["model"]))
    for by_metric in ev.metrics.values():
        for est in by_metric.values():
            assert est.low <= est.value <= est.high or math.isclose(est.low, est.high)
    # A score in days is not a probability: no Brier score, log loss or calibration for it.
    assert set(ev.metrics["recency days"]) == {"roc_auc", "pr_auc", "top_decile_lift"}
    assert "brier" not in ev.versus_baselines["recency days"]
    assert "recency days" not in set(ev.calibration["score"])
    assert ev.baselines == ["weak", "medium", "recency days"]
    assert ev.score_names == ["model", "weak", "medium", "recency days", "oracle"]


def test_strong_score_beats_weak_with_paired_interval_above_zero(ev):
    diff = ev.versus_baselines["weak"]["roc_auc"]
    assert diff.low > 0
    assert diff.value == pytest.approx(
        ev.metrics["model"]["roc_auc"].value - ev.metrics["weak"]["roc_auc"].value
    )
    # Lower is better for Brier: the model's is smaller, so the whole interval is below zero.
    assert ev.versus_baselines["weak"]["brier"].high < 0
    assert ev.verdict("roc_auc", "weak").startswith("model beats weak by ")
    assert ev.verdict("brier", "weak").startswith("model beats weak by ")


def test_best_baseline_ignores_model_and_oracle(ev):
    baseline_aucs = {b: ev.metrics[b]["roc_auc"].value for b in ev.baselines}
    assert ev.best_baseline == max(baseline_aucs, key=baseline_aucs.get) == "medium"
    assert ev.versus_best_baseline == ev.versus_baselines["medium"]


def test_oracle_margin_share(ev):
    y, scores, _ = _data()
    auc = {s: roc_auc_score(y, scores[s]) for s in ("model", "oracle")}
    expected = (auc["model"] - 0.5) / (auc["oracle"] - 0.5)
    assert ev.oracle == "oracle"
    assert ev.oracle_margin_share == pytest.approx(expected)
    assert 0.8 < ev.oracle_margin_share <= 1.05


def test_segments_small_and_one_class_groups_are_not_scored(ev):
    seg = ev.by_segment
    assert set(seg["group"]) == {"segment", "browsing", "complaints"}
    assert set(seg["score"]) == set(ev.metrics)
    vip = seg[(seg["group"] == "segment") & (seg["value"] == "vip")]
    assert (vip["n"] == 30).all() and vip[["roc_auc", "pr_auc", "brier"]].isna().all().all()
    assert vip["note"].str.contains("fewer than 50").all()
    one_class = seg[(seg["group"] == "complaints") & (seg["value"] == "yes")]
    assert one_class["roc_auc"].isna().all() and (one_class["churn_rate"] == 0).all()
    assert one_class["note"].str.contains("one outcome").all()
    scored = seg[seg["note"] == ""]
    assert scored["roc_auc"].notna().all()
    # Brier only where the score is a probability.
    assert scored.loc[scored["score"] == "recency days", "brier"].isna().all()
    assert scored.loc[scored["score"] == "model", "brier"].notna().all()
    # Each group partitions the customers.
    per_group = seg[seg["score"] == "model"].groupby("group")["n"].sum()
    assert (per_group == N).all()


def test_calibration_bins_sum_to_n(ev):
    y, _, _ = _data()
    for score, rows in ev.calibration.groupby("score"):
        assert rows["n"].sum() == N, score
        assert len(rows) <= 10 and (rows["n"] > 0).all()
        assert np.average(rows["observed_rate"], weights=rows["n"]) == pytest.approx(y.mean())
        assert rows["mean_predicted"].is_monotonic_increasing
    assert (ev.calibration["score"] == "model").sum() == 10
    # "medium" is clipped at 0 for a fifth of the customers: tied scores share one bin.
    medium = ev.calibration[ev.calibration["score"] == "medium"]
    assert len(medium) < 10 and medium["n"].iloc[0] > N / 10


def test_gain_curve_ends_and_perfect_dominates_random():
    rng = np.random.default_rng(0)
    y = rng.random(2000) < 0.2
    scores = {"model": rng.random(2000), "perfect": y.astype(float),
              "constant": np.full(2000, 0.3)}
    ev = evaluate(y, scores, cutoff="2025-01-01", horizon_days=90, n_boot=20)
    for score, rows in ev.gain.groupby("score"):
        assert len(rows) == 101
        first, last = rows.iloc[0], rows.iloc[-1]
        assert (first["share_contacted"], first["share_churners_caught"]) == (0.0, 0.0), score
        assert last["share_contacted"] == 1.0
        assert last["share_churners_caught"] == pytest.approx(1.0)
        assert np.all(np.diff(rows["share_churners_caught"]) >= -1e-12)
    curve = {s: rows["share_churners_caught"].to_numpy() for s, rows in ev.gain.groupby("score")}
    assert np.all(curve["perfect"] >= curve["model"] - 1e-12)
    assert curve["perfect"][30] == pytest.approx(1.0)  # 30% contacted > 20% churners
    # Ties count as a random order: a constant score is exactly the diagonal.
    np.testing.assert_allclose(curve["constant"], np.linspace(0, 1, 101), atol=1e-12)


def test_flat_metrics_are_valid_mlflow_names_and_finite(ev):
    flat = ev.flat_metrics()
    valid = re.compile(r"^[A-Za-z0-9_\-\. /]+$")
    assert all(valid.match(k) for k in flat), [k for k in flat if not valid.match(k)]
    assert all(isinstance(v, float) and math.isfinite(v) for v in flat.values())
    for key in ("model.roc_auc", "model.roc_auc_low", "model.roc_auc_high", "medium.brier",
                "recency days.roc_auc", "diff_best.roc_auc", "diff.weak.roc_auc",
                "oracle_margin_share"):
        assert key in flat, key
    assert flat["model.roc_auc"] == ev.metrics["model"]["roc_auc"].value


def test_flat_metrics_clean_names_mlflow_refuses():
    rng = np.random.default_rng(1)
    y = rng.random(500) < 0.3
    ev = evaluate(y, {"model": rng.random(500), "rfm:logreg(v2)": rng.random(500)},
                  cutoff="2025-01-01", horizon_days=90, n_boot=10)
    assert "rfm_logreg_v2_.roc_auc" in ev.flat_metrics()


def test_to_dict_is_strict_json_and_summary_table(ev):
    data = json.loads(json.dumps(ev.to_dict(), allow_nan=False))
    assert data["metrics"]["model"]["roc_auc"].keys() == {"value", "low", "high"}
    assert data["best_baseline"] == "medium" and data["cutoff"].startswith("2025-04-02")
    assert len(data["gain"]) == 5 * 101 and data["by_segment"][0]["group"] == "segment"
    hist = data["score_distribution"]
    assert sum(hist["churned"]) + sum(hist["stayed"]) == N
    table = ev.summary_table()
    assert list(table.index) == ev.score_names and "roc_auc" in table.columns
    assert re.fullmatch(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", table.loc["model", "roc_auc"])
    assert table.loc["recency days", "brier"] == "—"


def test_importance_and_score_distribution(ev):
    assert list(ev.importance.index) == ["recency", "tickets"]  # bias dropped, descending
    assert ev.importance["recency"] == pytest.approx(2.0)
    y, _, _ = _data()
    assert len(ev.score_distribution["churned"]) == y.sum()
    assert len(ev.score_distribution["stayed"]) == (~y).sum()


def test_optional_inputs_absent():
    rng = np.random.default_rng(2)
    y = rng.random(400) < 0.3
    ev = evaluate(y.astype(int), {"model": rng.random(400), "b": rng.random(400)},
                  cutoff=pd.Timestamp("2025-01-01", tz="Europe/Berlin"), horizon_days=30,
                  n_boot=10)
    assert ev.oracle is None and ev.oracle_margin_share is None
    assert ev.importance.empty and ev.by_segment.empty and ev.best_baseline == "b"
    assert str(ev.cutoff.tz) == "UTC" and "oracle_margin_share" not in ev.flat_metrics()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"model": "nope"}, "model score 'nope'"),
    ({"oracle": "nope"}, "oracle score 'nope'"),
    ({"scores": {"model": np.r_[np.nan, np.zeros(9)], "b": np.zeros(10)}}, "missing or inf"),
    ({"scores": {"model": np.zeros(10)}}, "at least one baseline"),
    ({"y": np.zeros(10, dtype=bool)}, "only one outcome"),
    ({"segments": pd.DataFrame({"segment": ["a"] * 3})}, "segments has 3 rows"),
])
def test_bad_inputs_are_refused(kwargs, message):
    args = {"y": np.arange(10) % 2 == 0, "scores": {"model": np.linspace(0, 1, 10),
                                                     "b": np.ones(10) / 2}}
    args |= kwargs
    with pytest.raises(ValueError, match=re.escape(message)):
        evaluate(args.pop("y"), args.pop("scores"), cutoff="2025-01-01", horizon_days=90,
                 n_boot=5, **args)


def test_groups_have_their_own_best_baseline_and_paired_difference():
    y, scores, _ = _data()
    scores = dict(scores)
    group = np.zeros(N, dtype=bool)
    group[: N // 3] = True
    # Inside the group a baseline nearly as good as the oracle: the group's best baseline is
    # that one, not the overall best.
    rng = np.random.default_rng(3)
    sharp = scores["weak"].copy()
    sharp[group] = np.clip(scores["oracle"][group] + rng.normal(0, 0.01, group.sum()), 0, 1)
    scores["sharp inside"] = sharp
    tiny = np.zeros(N, dtype=bool)
    tiny[:10] = True
    ev = evaluate(y, scores, oracle="oracle", groups={"active_90d": group, "tiny": tiny},
                  cutoff="2025-04-02", horizon_days=90, n_boot=100, random_state=1)
    inside = ev.groups["active_90d"]
    assert inside.label == "ordered in the last 90 days" and inside.n_customers == group.sum()
    assert inside.churn_rate == pytest.approx(y[group].mean())
    assert inside.metrics["model"]["roc_auc"].value == pytest.approx(
        roc_auc_score(y[group], scores["model"][group]))
    assert inside.best_baseline == "sharp inside" != ev.best_baseline
    diff = inside.versus_best_baseline["roc_auc"]
    assert diff.value == pytest.approx(inside.metrics["model"]["roc_auc"].value
                                       - inside.metrics["sharp inside"]["roc_auc"].value)
    assert diff.low <= diff.value <= diff.high
    assert ev.groups["tiny"].note.startswith("fewer than") and not ev.groups["tiny"].metrics
    assert "not scored" in ev.groups["tiny"].line("model")
    line = inside.line("model")
    assert "sharp inside" in line and f"{diff.value:+.3f}" in line
    flat = ev.flat_metrics()
    assert flat["active_90d.diff_best.roc_auc"] == pytest.approx(diff.value)
    assert flat["active_90d.n_customers"] == group.sum()
    assert "active_90d.model.roc_auc_low" in flat and not any(k.startswith("tiny.model")
                                                             for k in flat)
    json.dumps(ev.to_dict(), allow_nan=False)


def test_activity_groups_are_recent_buyers():
    from training.pipeline import activity_groups

    frame = pd.DataFrame({"days_since_last_order": [3.0, 30.0, 30.5, 90.0, 400.0, np.nan]})
    groups = activity_groups(frame)
    assert groups["active_30d"].tolist() == [True, True, False, False, False, False]
    assert groups["active_90d"].tolist() == [True, True, True, True, False, False]
    assert activity_groups(pd.DataFrame({"x": [1]})) == {}
