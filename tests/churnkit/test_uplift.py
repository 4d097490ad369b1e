"""The uplift model recovers known per-customer effects; the profit choice is exact arithmetic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnkit.data.contract import SEND_ACTIONS
from churnkit.models.uplift import UpliftModel
from churnkit.policy.uplift_choice import choose_by_uplift, cost_function
from churnkit.scoring.bundle import COMPONENTS


def _experiment(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series, pd.Series, pd.DataFrame]:
    """A randomized campaign with a known effect per customer: apology works only after a
    delivery failure (+30 points), promo only for the price-sensitive (+20), the rest nothing;
    ~22% come back anyway, more for recent buyers."""
    rng = np.random.default_rng(seed)
    failure = rng.random(n) < 0.3
    price = rng.random(n) < 0.4
    recency = rng.uniform(30, 180, n)
    features = pd.DataFrame({
        "delivery_failures_90d": failure.astype(float) * rng.integers(1, 3, n),
        "discounted_order_share": np.where(price, rng.uniform(0.6, 1, n), rng.uniform(0, 0.3, n)),
        "days_since_last_order": recency, "noise": rng.normal(size=n),
    }, index=pd.Index(np.arange(n), name="customer_id"))
    truth = pd.DataFrame(0.0, index=features.index, columns=list(SEND_ACTIONS))
    truth["apology_compensation"] = np.where(failure, 0.30, 0.0)
    truth["promo_code"] = np.where(price, 0.20, 0.0)
    arms = np.array(["control", *SEND_ACTIONS], dtype=object)
    arm = pd.Series(arms[rng.choice(len(arms), n, p=[0.13] + [0.87 / 6] * 6)],
                    index=features.index)
    base = 0.35 - 0.0012 * recency
    effect = np.zeros(n)
    for a in SEND_ACTIONS:
        hit = (arm == a).to_numpy()
        effect[hit] = truth[a].to_numpy()[hit]
    y = pd.Series((rng.random(n) < base + effect).astype(int), index=features.index)
    return features, arm, y, truth


@pytest.fixture(scope="module")
def experiment():
    return _experiment(14_000, seed=1)


@pytest.mark.parametrize("learner", ["r", "t"])
def test_learned_uplift_follows_the_true_effects(experiment, learner):
    features, arm, y, _ = experiment
    model = UpliftModel(learner=learner, n_jobs=1).fit(features, arm, y,
                                                       feature_names=list(features.columns))
    test, _, _, test_truth = _experiment(4000, seed=2)
    up = model.predict(test)
    assert list(up.columns) == list(SEND_ACTIONS)
    failure = test_truth["apology_compensation"] > 0
    price = test_truth["promo_code"] > 0
    apology = up["apology_compensation"]
    assert apology[failure].mean() - apology[~failure].mean() > 0.15
    assert abs(apology[failure].mean() - 0.30) < 0.1
    assert up["promo_code"][price].mean() - up["promo_code"][~price].mean() > 0.08
    # actions with no effect stay near zero on average
    assert up["we_miss_you"].mean() == pytest.approx(0.0, abs=0.05)
    # the learned best action is the true one for most customers with an effect
    best = up.idxmax(axis=1)
    assert (best[failure] == "apology_compensation").mean() > 0.8


def test_save_load_roundtrip_and_bundle_component(experiment, tmp_path):
    features, arm, y, _ = experiment
    model = UpliftModel(n_estimators=30).fit(features, arm, y,
                                             feature_names=list(features.columns))
    model.save(tmp_path)
    loaded = COMPONENTS["uplift"].load(tmp_path)
    pd.testing.assert_frame_equal(loaded.predict(features.head(200)),
                                  model.predict(features.head(200)))
    assert loaded.get_params() == model.get_params()


def test_fit_refuses_bad_arms(experiment):
    features, arm, y, _ = experiment
    with pytest.raises(ValueError, match="control-group rows"):
        UpliftModel().fit(features, arm.replace("control", "we_miss_you"), y,
                          feature_names=["noise"])
    with pytest.raises(ValueError, match="'carrier_pigeon'"):
        UpliftModel().fit(features, arm.replace("vip_gift", "carrier_pigeon"), y,
                          feature_names=["noise"])
    with pytest.raises(ValueError, match="lacks: nope"):
        UpliftModel().fit(features, arm, y, feature_names=["nope"])


def test_choose_by_uplift_is_profit_arithmetic():
    idx = pd.Index([1, 2, 3], name="customer_id")
    uplift = pd.DataFrame({"apology_compensation": [0.30, 0.01, 0.10],
                           "promo_code": [0.05, 0.02, 0.12],
                           "we_miss_you": [0.0, 0.001, 0.0]}, index=idx)
    value = pd.Series([1000.0, 100.0, 1000.0], index=idx)
    costs = {"apology_compensation": 100.0, "promo_code": 30.0, "we_miss_you": 5.0}
    out = choose_by_uplift(uplift, value, costs)
    # 1: apology 300-100=200 beats promo 50-30=20; 2: nothing pays; 3: promo 120-30 > 100-100
    assert list(out["action"]) == ["apology_compensation", "do_not_contact", "promo_code"]
    assert out["expected_incremental_profit"].tolist() == pytest.approx([200.0, 0.0, 90.0])
    # the same with costs as a frame and as a callable
    frame = pd.DataFrame([costs] * 3, index=idx)
    pd.testing.assert_frame_equal(choose_by_uplift(uplift, value, frame), out)
    pd.testing.assert_frame_equal(
        choose_by_uplift(uplift, value, lambda a, v: pd.Series(costs[a], index=v.index)), out)
    with pytest.raises(ValueError, match="promo_code"):
        choose_by_uplift(uplift, value, {"apology_compensation": 1.0, "we_miss_you": 1.0})


def test_default_costs_scale_compensation_with_value():
    cost = cost_function()
    values = pd.Series([1_000.0, 20_000.0])
    apology = np.asarray(cost("apology_compensation", values), dtype=float)
    promo = np.asarray(cost("we_miss_you", values), dtype=float)
    assert apology[1] > apology[0]  # docs/domain.md: compensation scales with value
    assert promo[0] == promo[1] > 0


def test_set_params_learner_takes_that_learners_tree_defaults(experiment):
    features, arm, y, _ = experiment
    rows = slice(0, 4000)
    args = (features.iloc[rows], arm.iloc[rows], y.iloc[rows])
    switched = UpliftModel(n_estimators=20).set_params(learner="t").fit(
        *args, feature_names=list(features.columns))
    direct = UpliftModel(learner="t", n_estimators=20).fit(
        *args, feature_names=list(features.columns))
    assert switched.boosters_["control"].params["num_leaves"] == 4
    assert switched.boosters_["control"].params["min_data_in_leaf"] == 150
    pd.testing.assert_frame_equal(switched.predict(features.head(300)),
                                  direct.predict(features.head(300)))
    # An explicit size still wins over the learner's default.
    sized = UpliftModel(learner="t", num_leaves=3, n_estimators=5).fit(
        *args, feature_names=list(features.columns))
    assert sized.boosters_["control"].params["num_leaves"] == 3
