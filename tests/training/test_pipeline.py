"""The training pipeline end to end on a small synthetic shop: honest, reproducible, tracked."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import churnkit as ck
from training.config import TrainConfig
from training.pipeline import bundle_dir, train
from training.tracking import log_training_run, promote, pyfunc_example

pytestmark = pytest.mark.slow
AS_OF = "2025-07-01"
CREATED = pd.Timestamp("2025-07-02T08:00:00Z")


@pytest.fixture(scope="module")
def shop():
    return ck.synth.generate(3000, seed=11, start="2023-01-01", end=AS_OF)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    return TrainConfig.load(trials=3, bootstrap=50, threads=1, train_cutoffs=2,
                            models_dir=root / "models",
                            tracking_uri=f"sqlite:///{root / 'mlruns.db'}", name="churn-test")


@pytest.fixture(scope="module")
def result(shop, config):
    tables, truth = shop
    return train(tables, as_of=AS_OF, config=config, truth=truth, created_at=CREATED)


def test_model_beats_every_baseline_and_approaches_the_oracle(result):
    ev = result.evaluation
    auc = {name: m["roc_auc"].value for name, m in ev.metrics.items()}
    for baseline in ("recency", "btyd", "pareto_nbd", "rfm_logreg"):
        assert auc["model"] > auc[baseline], auc
    assert ev.versus_best_baseline["roc_auc"].low > 0, "paired CI above zero"
    assert auc["oracle"] > auc["model"]
    assert ev.oracle_margin_share > 0.75
    # calibrated on the validation cutoff: the mean probability tracks the held-out churn rate
    model_p = result.eval_frame["score_model"]
    assert abs(model_p.mean() - ev.churn_rate) < 0.05


def test_evaluation_cutoff_is_held_out(result):
    c = result.cutoffs
    h = pd.Timedelta(days=c.horizon_days)
    assert c.evaluation + h == pd.Timestamp(AS_OF, tz="UTC")
    assert max(c.train) + h <= c.validation and c.validation + h <= c.evaluation
    assert set(result.eval_frame["cutoff"]) == {c.evaluation}


def test_bundle_roundtrip_and_one_scoring_path(result, shop, config):
    tables, _ = shop
    path = result.bundle.save(bundle_dir(config, result.bundle))
    bundle = ck.ModelBundle.load(path)
    full = ck.score(tables, as_of=AS_OF, bundle=bundle)
    some = full.index[[0, 7, 42]]
    alone = ck.score(tables, as_of=AS_OF, bundle=bundle, customer_ids=[some[1]])
    pd.testing.assert_frame_equal(alone, full.loc[[some[1]]])
    assert set(full["risk_band"]) <= {"critical", "high", "medium", "low"}
    assert full["risk_percentile"].between(0, 100).all()
    # the riskiest band churns far more often in the generator's truth
    assert {"churn_probability", "risk_band", "risk_percentile", "segment",
            "top_drivers"} <= set(full.columns)
    drivers = full.loc[full["churn_probability"].idxmax(), "top_drivers"]
    assert 1 <= len(drivers) <= 3 and drivers[0]["contribution"] > 0


def test_trained_bundle_carries_the_postpone_averages(result, shop, tmp_path):
    # docs/domain.md's decision filter: averages fixed at training, saved with the bundle, so a
    # customer scored alone is postponed exactly as in the full run
    tables, _ = shop
    rule = result.bundle.policy.postpone
    assert rule.active and rule.reference_value > 0
    assert 0 < rule.reference_return_probability < 1
    rules_only = replace(result.bundle, uplift=None)  # where the rules decide
    rules_only.save(tmp_path / "b")
    bundle = ck.ModelBundle.load(tmp_path / "b")
    assert bundle.policy.postpone == rule
    full = ck.score(tables, as_of=AS_OF, bundle=bundle)
    postponed = full["policy_trace"].map(lambda t: any(s.startswith("postpone:") for s in t))
    assert postponed.sum() > 0 and (full.loc[postponed, "action"] == "do_not_contact").all()
    one = full.index[postponed.to_numpy()][0]
    alone = ck.score(tables, as_of=AS_OF, bundle=bundle, customer_ids=[one])
    pd.testing.assert_frame_equal(alone, full.loc[[one]])


def test_bundle_with_changed_feature_spec_is_refused(result, tmp_path):
    path = result.bundle.save(tmp_path / "b")
    doc = json.loads((path / "bundle.json").read_text())
    doc["feature_spec"]["dtypes"][0] = "str"
    doc["feature_spec"]["names"][1] = "feature_from_the_future"
    (path / "bundle.json").write_text(json.dumps(doc))
    with pytest.raises(ck.BundleMismatchError) as info:
        ck.ModelBundle.load(path)
    message = str(info.value)
    assert "'feature_from_the_future' is no longer computed" in message
    assert f"'{doc['feature_spec']['names'][0]}' was str" in message


def test_same_seed_same_model(shop, config, result):
    tables, _ = shop
    again = train(tables, as_of=AS_OF, config=config, created_at=CREATED)
    assert again.study.best_params == result.study.best_params
    np.testing.assert_array_equal(again.eval_frame["score_model"],
                                  result.eval_frame["score_model"])


def test_orders_only_shop_still_beats_recency(config):
    # Many shops have nothing but customers and orders; the lift over recency is smaller there,
    # so this check needs a larger shop than the others to be decided.
    tables, _ = ck.synth.generate(10_000, seed=12, start="2023-01-01", end=AS_OF)
    lean = ck.Tables(customers=tables.customers, orders=tables.orders, normalized=True)
    res = train(lean, as_of=AS_OF, config=config.model_copy(update={"train_cutoffs": 3}),
                created_at=CREATED)
    assert set(res.bundle.feature_spec.families) <= {"purchases", "delivery", "clock", "btyd",
                                                      "consent"}
    assert res.evaluation.versus_baselines["recency"]["roc_auc"].low > 0


def test_register_load_by_alias_and_promote(shop, result, config, tmp_path):
    path = result.bundle.save(tmp_path / "bundle")
    metrics = result.evaluation.flat_metrics()
    kwargs = dict(tracking_uri=config.tracking_uri, experiment="test", bundle_path=path,
                  params={"seed": 0}, artifacts=[], evaluation={}, register_as="churn-reg",
                  example=pyfunc_example(shop[0], result.bundle))
    first = log_training_run(metrics=metrics, **kwargs)
    assert first.registered_version == "1"
    assert promote("churn-reg", tracking_uri=config.tracking_uri).promoted

    import os
    os.environ["MLFLOW_TRACKING_URI"] = config.tracking_uri
    try:
        loaded = ck.ModelBundle.load("models:/churn-reg@champion")
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]
    assert loaded.metadata.version == result.bundle.metadata.version

    worse = {**metrics, "model.roc_auc": metrics["model.roc_auc"] - 0.01}
    log_training_run(metrics=worse, **kwargs)
    refused = promote("churn-reg", tracking_uri=config.tracking_uri)
    assert not refused.promoted and "does not beat champion v1" in refused.reason
    better = {**metrics, "model.roc_auc": metrics["model.roc_auc"] + 0.01}
    log_training_run(metrics=better, **kwargs)
    accepted = promote("churn-reg", tracking_uri=config.tracking_uri)
    assert accepted.promoted and accepted.champion == "1" and accepted.challenger == "3"
    no_edge = {**metrics, "diff_best.roc_auc_low": -0.001}
    log_training_run(metrics=no_edge, **kwargs)
    assert "does not beat its best baseline" in promote(
        "churn-reg", tracking_uri=config.tracking_uri).reason
    assert replace(result.bundle.metadata, metrics={}).name == "churn-test"
