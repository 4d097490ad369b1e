"""The ground truth: the oracle churn probability is calibrated and ranks well; campaigns work
the way the latent response says; the truth's tables describe the shop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnkit import synth
from churnkit.data.contract import ACTIONS

H = pd.Timedelta(days=90)


def _realized_no_order(tables, p: pd.Series, as_of: pd.Timestamp) -> np.ndarray:
    o = tables.orders
    window = o[(o["ordered_at"] >= as_of) & (o["ordered_at"] < as_of + H)]
    return ~p.index.isin(window["customer_id"].unique())


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    """ROC-AUC by the rank-sum formula (ties get average ranks)."""
    ranks = pd.Series(score).rank().to_numpy()
    pos = label.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@pytest.mark.parametrize("as_of", ["2024-03-01", "2024-09-01"])
def test_oracle_is_calibrated_and_ranks_well(quiet_shop, as_of):
    tables, truth = quiet_shop
    t = pd.Timestamp(as_of, tz="UTC")
    p = truth.churn_probability(t, 90)
    y = _realized_no_order(tables, p, t)
    df = pd.DataFrame({"p": p.to_numpy(), "y": y})
    df["bin"] = pd.qcut(df["p"], 10, labels=False, duplicates="drop")
    bins = df.groupby("bin").agg(p=("p", "mean"), y=("y", "mean"))
    gap = (bins["y"] - bins["p"]).abs()
    assert len(df) > 10_000
    assert gap.max() < 0.05, bins
    assert gap.mean() < 0.02, bins
    assert abs(df["y"].mean() - df["p"].mean()) < 0.015
    assert _auc(df["p"].to_numpy(), y) > 0.85


def test_oracle_stays_calibrated_with_campaigns(shop):
    """Campaigns after as_of are ignored by the truth; they are rare enough not to matter much."""
    tables, truth = shop
    t = pd.Timestamp("2024-06-01", tz="UTC")
    p = truth.churn_probability(t, 90)
    y = _realized_no_order(tables, p, t)
    df = pd.DataFrame({"p": p.to_numpy(), "y": y})
    df["bin"] = pd.qcut(df["p"], 10, labels=False, duplicates="drop")
    bins = df.groupby("bin").agg(p=("p", "mean"), y=("y", "mean"))
    assert (bins["y"] - bins["p"]).abs().max() < 0.06, bins
    assert _auc(df["p"].to_numpy(), y) > 0.85


def test_churn_probability_interface(shop):
    tables, truth = shop
    t = pd.Timestamp("2023-07-01", tz="UTC")
    p = truth.churn_probability(t)
    signed = tables.customers.loc[tables.customers["signup_at"] < t, "customer_id"]
    assert p.name == "churn_probability" and p.index.name == "customer_id"
    assert set(p.index) == set(signed)
    assert p.between(0, 1).all()
    some = signed.to_numpy()[:50]
    sub = truth.churn_probability(t, 90, customer_ids=some)
    pd.testing.assert_series_equal(sub, p.loc[some])
    # a longer horizon can only make "no order at all" less likely
    assert (truth.churn_probability(t, 30).loc[some] >= sub - 1e-12).all()
    with pytest.raises(ValueError, match="as_of"):
        truth.churn_probability(None)
    with pytest.raises(ValueError, match="outside"):
        truth.churn_probability("2030-01-01")


def test_decided_customers_are_likely_gone(shop):
    _, truth = shop
    t = pd.Timestamp("2024-06-01", tz="UTC")
    p = truth.churn_probability(t, 90)
    lv = truth.leaving
    gone = lv[(lv["decided_at"] < t - pd.Timedelta(days=60))
              & ~(lv["reversed_at"] < t)]["customer_id"].unique()
    never = lv.groupby("customer_id")["decided_at"].apply(lambda s: s.isna().all())
    never = never[never].index
    assert p.reindex(gone).dropna().mean() > 0.9
    assert p.reindex(never).dropna().mean() < 0.5


def _contacts_with_cause(tables, truth) -> pd.DataFrame:
    """Contacts with the cause of the leave decision in force at sent_at (NaN if none)."""
    c = tables.contacts.sort_values("sent_at")
    lv = truth.leaving.dropna(subset=["decided_at"]).sort_values("decided_at")
    m = pd.merge_asof(c, lv[["customer_id", "decided_at", "cause", "reversed_at"]],
                      left_on="sent_at", right_on="decided_at", by="customer_id")
    live = m["decided_at"].notna() & ~(m["reversed_at"] < m["sent_at"])
    m["cause"] = m["cause"].astype(object).where(live)
    m["converted"] = m["converted_at"].notna()
    return m


def test_control_group_comes_back_less_than_matched_treated(shop):
    tables, truth = shop
    m = _contacts_with_cause(tables, truth)
    ours = m[m["cause"].isin(["delivery", "service"])]
    apology = ours[(ours["group"] == "treatment") & (ours["action"] == "apology_compensation")]
    control = ours[ours["group"] == "control"]
    assert len(apology) > 300 and len(control) > 200
    assert apology["converted"].mean() > control["converted"].mean() + 0.05
    # nothing moves natural churn (docs/domain.md: rarely worth fighting)
    natural = m[m["cause"] == "natural"]
    treated = natural[natural["group"] == "treatment"]["converted"].mean()
    held = natural[natural["group"] == "control"]["converted"].mean()
    assert treated < held + 0.05


def test_conversion_rule_is_first_order_within_30_days_for_both_groups(shop):
    tables, _ = shop
    c = tables.contacts.sort_values("sent_at")
    o = tables.orders[["customer_id", "ordered_at"]].sort_values("ordered_at")
    m = pd.merge_asof(c, o, left_on="sent_at", right_on="ordered_at", by="customer_id",
                      direction="forward")
    expected = m["ordered_at"].where(m["ordered_at"] < m["sent_at"] + pd.Timedelta(days=30))
    pd.testing.assert_series_equal(m["converted_at"], expected, check_names=False)
    assert (m.groupby("group")["converted_at"].apply(lambda s: s.notna().mean()) > 0).all()


def test_contacts_respect_consent_unsubscribe_and_control_share(shop):
    tables, _ = shop
    c = tables.contacts.merge(tables.customers, on="customer_id")
    consented = np.array([c.at[i, f"consent_{ch}"] for i, ch in zip(c.index, c["channel"],
                                                                      strict=True)])
    assert consented.all()
    assert not (c["unsubscribed_at"] <= c["sent_at"]).any()
    share = (tables.contacts["group"] == "control").mean()
    assert 0.10 < share < 0.15
    # every catalogue action except do_not_contact is tried, at random
    assert set(tables.contacts["action"].unique()) == set(ACTIONS) - {"do_not_contact"}


def test_campaign_comebacks_change_the_future(shop):
    tables, truth = shop
    back = truth.leaving[truth.leaving["reversal"] == "campaign"]
    assert len(back) > 50
    key = pd.MultiIndex.from_frame(tables.orders[["customer_id", "ordered_at"]])
    # each campaign comeback is an order placed at the reversal time
    assert pd.MultiIndex.from_arrays([back["customer_id"], back["reversed_at"]]).isin(key).all()


def test_action_response_fits_the_cause(shop):
    _, truth = shop
    lv = truth.leaving.dropna(subset=["decided_at"]).groupby("customer_id").last()
    resp = truth.action_response_if_opened.loc[lv.index]
    by_cause = resp.groupby(lv["cause"].astype(str)).mean()
    assert by_cause.loc["delivery"].idxmax() == "apology_compensation"
    assert by_cause.loc["service"].idxmax() == "apology_compensation"
    assert by_cause.loc["forgotten"].idxmax() in ("we_miss_you", "loyalty_points")
    assert by_cause.loc["price"].idxmax() in ("promo_code", "free_delivery")
    nat = by_cause.loc["natural"]
    assert (nat.drop("none") - nat["none"]).max() < 0.05
    at = truth.action_response_at("2024-06-01")
    assert at.notna().all(axis=1).sum() > 0 and at.isna().all(axis=1).sum() > 0


@pytest.mark.slow
def test_churn_probability_covers_every_customer_known_at_the_cutoff():
    # Speed is a benchmark's business (benchmarks/RESULTS.md), not a timed test's.
    tables, truth = synth.generate(50_000, seed=3, start="2023-01-01", end="2024-07-01")
    cutoff = pd.Timestamp("2024-06-01", tz="UTC")
    p = truth.churn_probability(cutoff, 90)
    known = tables.customers.loc[tables.customers["signup_at"] < cutoff, "customer_id"]
    assert set(p.index) == set(known)
    assert p.between(0, 1).all()
