"""The pooled policy evaluation over several campaigns: the estimator by hand, dropped strata
reported, paired intervals, and the rolling origin on a synthetic shop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import churnkit as ck
from churnkit.models.uplift import UpliftModel
from training.campaign_set import ATTRIBUTION_DAYS, CampaignSet, campaign_training_set
from training.uplift import UpliftEvaluation, evaluate_uplift
from training.uplift_pooled import pool, rolling_evaluations

ACTIONS = ["promo_code", "we_miss_you"]


def held_out(campaign: str, arm: list[str], outcome: list[int], policy: list[str], *,
             value: float = 100.0, m: list[float] | None = None,
             true_up: float | None = None) -> UpliftEvaluation:
    """A held-out campaign by hand: arms, outcomes, one policy 'p' (and do_nothing)."""
    n = len(arm)
    index = pd.Index([f"{campaign}-{i}" for i in range(n)], name="contact_id")
    test = CampaignSet(pd.DataFrame(index=index), pd.Series(arm, index=index),
                       pd.Series(outcome, index=index), pd.DataFrame())
    decisions = pd.DataFrame({"do_nothing": "do_not_contact", "p": policy}, index=index)
    costs = pd.DataFrame({"promo_code": 10.0, "we_miss_you": 1.0}, index=index)
    truth = None if true_up is None else pd.DataFrame(
        {"promo_code": true_up, "we_miss_you": 0.0}, index=index)
    return UpliftEvaluation(
        campaign, pd.Timestamp("2025-01-01", tz="UTC"), [], n, pd.DataFrame(), pd.DataFrame(),
        pd.Series(dtype=float), pd.Series(dtype=float), "test", "test", decisions, None,
        test=test, values=pd.Series(value, index=index), costs=costs, true_uplift=truth,
        outcome_prediction=None if m is None else pd.Series(m, index=index))


def test_the_pooled_estimate_by_hand_with_a_dropped_stratum_reported():
    # A: the policy sends promo_code to contacts 0-3 (stratum of 4): randomized to promo are
    # 0 (ordered) and 1 (did not), control is 2 (did not); 3 got we_miss_you (not the policy's
    # action, so neither mean). Effect = mean(100 - 10, 0 - 10) - mean(0) = 40.
    a = held_out("A", ["promo_code", "promo_code", "control", "we_miss_you", "control",
                       "promo_code"], [1, 0, 0, 1, 0, 1],
                 ["promo_code"] * 4 + ["do_not_contact"] * 2,
                 m=[0.8, 0.2, 0.1, 0.5, 0.5, 0.5], true_up=0.3)
    # B: we_miss_you to all four, but nobody randomized to control: no estimate, counted 0
    b = held_out("B", ["we_miss_you", "we_miss_you", "promo_code", "promo_code"], [1, 1, 0, 0],
                 ["we_miss_you"] * 4, m=[0.5] * 4, true_up=0.3)
    pooled = pool([a, b], n_boot=200, seed=1)
    p = pooled.policies.loc["p"]
    assert p["profit_per_1000_ipw"] == pytest.approx(1000 * 4 * 40 / 10)
    # doubly robust: residuals 100·(y − m): treated (20 − 10, −20 − 10) → −10, control −10 → 0
    assert p["profit_per_1000_dr"] == pytest.approx(0.0, abs=1e-9)
    assert p["dropped_share"] == pytest.approx(0.4)
    assert pooled.dropped.to_dict("records") == [
        {"campaign": "B", "policy": "p", "action": "we_miss_you", "contacts": 4, "treated": 2,
         "control": 0}]
    # truth: A's four promo contacts 0.3 × 100 − 10 = 20 each, B's we_miss_you 0 × 100 − 1
    assert p["profit_per_1000_true"] == pytest.approx(1000 * (4 * 20 - 4 * 1) / 10)
    assert pooled.policies.loc["do_nothing", "profit_per_1000_ipw"] == 0.0
    assert pooled.per_campaign.loc["A", "p"] == pytest.approx(1000 * 4 * 40 / 6)
    assert pooled.per_campaign.loc["B", "p"] == 0.0
    assert pooled.campaigns == ["A", "B"] and pooled.n_contacts == 10


def test_differences_are_paired_on_the_same_resamples():
    rng = np.random.default_rng(3)
    evs = []
    for k in range(3):
        n = 400
        arm = rng.choice(["promo_code", "we_miss_you", "control"], n, p=[0.4, 0.4, 0.2])
        y = (rng.random(n) < np.where(arm == "promo_code", 0.3, 0.2)).astype(int)
        policy = rng.choice(["promo_code", "we_miss_you"], n)
        evs.append(held_out(f"C{k}", list(arm), list(y), list(policy), m=list(rng.random(n))))
    for ev in evs:  # two policies that decide alike, and p itself under the name uplift
        ev.decisions["uplift"] = ev.decisions["p"]
        ev.decisions["rules"] = ev.decisions["p"]
    pooled = pool(evs, n_boot=300, seed=0)
    p = pooled.policies.loc["p"]
    assert p["profit_per_1000_ipw_low"] < p["profit_per_1000_ipw"] < p["profit_per_1000_ipw_high"]
    # paired: the same decisions differ by exactly 0 on every resample (unpaired intervals of
    # two such estimates would be as wide as the estimates' own)
    same = pooled.differences.loc["uplift - rules"]
    assert (same["difference"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
    assert (same["dr_low"], same["dr_high"]) == (0.0, 0.0)
    # minus doing nothing is the policy's own estimate and interval
    versus = pooled.differences.loc["uplift - do_nothing"]
    assert versus["difference"] == pytest.approx(p["profit_per_1000_ipw"])
    assert (versus["low"], versus["high"]) == pytest.approx(
        (p["profit_per_1000_ipw_low"], p["profit_per_1000_ipw_high"]))
    assert "cannot be told apart" in pooled.verdict("uplift", "rules")
    metrics = pooled.flat_metrics()
    assert metrics["uplift_pooled_p"] == p["profit_per_1000_ipw"]
    assert metrics["uplift_pooled_uplift_minus_rules_high"] == 0.0
    assert metrics["uplift_pooled_campaigns"] == 3.0


@pytest.mark.slow
def test_rolling_origin_fits_each_campaign_only_on_earlier_ones():
    as_of = "2025-07-01"
    tables, truth = ck.synth.generate(3000, seed=21, start="2023-01-01", end=as_of)
    evs = rolling_evaluations(tables, as_of=as_of, last=3, truth=truth, n_boot=20,
                              model_factory=lambda: UpliftModel(n_jobs=1))
    assert len(evs) == 3
    assert [e.holdout for e in evs] == sorted(e.holdout for e in evs)
    last_sent = tables.contacts.assign(campaign_id=tables.contacts["campaign"]) \
        .groupby("campaign")["sent_at"].max()
    for ev in evs:
        assert ev.holdout not in ev.train_campaigns and ev.train_campaigns
        closed = last_sent[ev.train_campaigns] + pd.Timedelta(days=ATTRIBUTION_DAYS)
        assert (closed <= ev.as_of).all()  # closed before the held-out campaign's send day
        assert ev.outcome_prediction is not None
        assert ((ev.outcome_prediction > 0) & (ev.outcome_prediction < 1)).all()
    # the latest is the same evaluation as evaluate_uplift alone
    alone = evaluate_uplift(tables, as_of=as_of, truth=truth, n_boot=20,
                            model=UpliftModel(n_jobs=1),
                            data=campaign_training_set(tables, [*evs[-1].train_campaigns,
                                                                evs[-1].holdout]))
    pd.testing.assert_frame_equal(alone.decisions, evs[-1].decisions)
    pooled = pool(evs, n_boot=100, seed=0)
    # pooled = the campaigns' own estimates weighted by their sizes
    sizes = pd.Series({e.holdout: len(e.decisions) for e in evs})
    for policy in ("rules", "uplift", "oracle"):
        weighted = (pooled.per_campaign[policy] * sizes).sum() / sizes.sum()
        assert pooled.policies.loc[policy, "profit_per_1000_ipw"] == pytest.approx(weighted)
    assert {"uplift - rules", "uplift - do_nothing", "rules - do_nothing"} <= set(
        pooled.differences.index)
    assert "profit_per_1000_true" in pooled.policies
    assert pooled.policies.loc["do_nothing"].filter(like="profit").abs().max() == 0.0
