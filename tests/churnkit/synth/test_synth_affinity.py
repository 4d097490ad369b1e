"""Personal channel affinity: each customer's open propensity per channel, drawn around the
population's rates from a stream of its own, shows in the contacts table and in the truth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from churnkit import synth
from churnkit.data.contract import CHANNELS, SEND_ACTIONS


def _treated_messages(tables, truth) -> pd.DataFrame:
    """Treated messages with whether they were opened and the customer's drawn propensity on
    the message's channel."""
    c = tables.contacts[tables.contacts["group"] == "treatment"]
    prop = truth.open_propensity(c["customer_id"].to_numpy()).to_numpy()
    col = pd.Index(CHANNELS).get_indexer(c["channel"].astype(str))
    return pd.DataFrame({"customer_id": c["customer_id"].to_numpy(),
                         "channel": c["channel"].astype(str).to_numpy(),
                         "opened": c["opened_at"].notna().to_numpy(),
                         "propensity": prop[np.arange(len(c)), col]})


def test_open_rates_follow_the_drawn_propensity_within_each_channel(shop):
    tables, truth = shop
    m = _treated_messages(tables, truth)
    assert len(m) > 20_000
    for ch in ("email", "sms", "push"):  # messenger's propensities crowd near 1; phone is rare
        sub = m[m["channel"] == ch]
        tercile = pd.qcut(sub["propensity"], 3, labels=False)
        rate = sub.groupby(tercile)["opened"].mean()
        # same channel, so the gap is personal: low < mid < high, high about 3x low
        assert rate[0] < rate[1] < rate[2], (ch, rate)
        assert rate[2] > 2 * rate[0], (ch, rate)
    # per customer-channel open rates correlate with the propensity (message-weighted), within
    # a channel: the population's channel rates alone would not make them
    cells = m.groupby(["customer_id", "channel"]).agg(rate=("opened", "mean"),
                                                      p=("propensity", "first"),
                                                      n=("opened", "size")).reset_index()
    for ch in ("email", "sms", "push"):
        sub = cells[cells["channel"] == ch]
        cov = np.cov(sub["p"], sub["rate"], aweights=sub["n"].to_numpy(float))
        assert cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1]) > 0.25, ch


@pytest.mark.parametrize("a, b", [("messenger", "email"), ("sms", "push"), ("push", "sms"),
                                  ("email", "sms"), ("sms", "email")])
def test_customers_drawn_to_prefer_a_channel_open_it_more(shop, a, b):
    """Among customers messaged on both channels and drawn to prefer ``a`` over ``b`` by a
    clear margin, ``a``'s messages are opened more often than ``b``'s: the preference is
    personal, whichever way the population's rates point."""
    tables, truth = shop
    m = _treated_messages(tables, truth)
    prop = truth.open_propensity()
    prefer = prop.index[prop[a] > prop[b] + 0.2]
    both = m[m["customer_id"].isin(prefer) & m["channel"].isin([a, b])]
    on_both = both.groupby("customer_id")["channel"].nunique() == 2
    both = both[both["customer_id"].isin(on_both.index[on_both])]
    rate = both.groupby("channel")["opened"].mean()
    counts = both["channel"].value_counts()
    assert counts.min() >= 50, counts
    assert rate[a] > rate[b] + 0.1, rate


def test_affinity_has_its_own_stream_and_is_deterministic():
    kw = dict(start="2024-01-01", end="2024-04-01")
    _, g1 = synth.generate(800, seed=5, **kw)
    _, g2 = synth.generate(800, seed=5, **kw)
    pd.testing.assert_frame_equal(g1.open_propensity(), g2.open_propensity())
    _, g3 = synth.generate(800, seed=6, **kw)
    assert not np.allclose(g1.open_propensity().to_numpy(), g3.open_propensity().to_numpy())
    # A wider spread changes only the affinity: every other trait is drawn as before.
    wide = dataclasses.replace(synth.DEFAULT_PARAMS, open_affinity_sigma=2.0)
    _, g4 = synth.generate(800, seed=5, params=wide, **kw)
    pd.testing.assert_frame_equal(g1.customers, g4.customers)
    np.testing.assert_array_equal(g1.active_slots, g4.active_slots)
    # same normal draws, larger spread: the ranking of customers on a channel is kept
    for ch in CHANNELS:
        r1, r4 = g1.open_propensity()[ch].rank(), g4.open_propensity()[ch].rank()
        np.testing.assert_array_equal(r1.to_numpy(), r4.to_numpy())
    # No spread: everyone has the population's rates.
    flat = dataclasses.replace(synth.DEFAULT_PARAMS, open_affinity_sigma=0.0)
    _, g5 = synth.generate(800, seed=5, params=flat, **kw)
    base = dict(flat.open_base)
    for ch in CHANNELS:
        assert (g5.open_propensity()[ch] == base[ch]).all()


def test_ground_truth_agrees_with_the_draws(shop):
    _, truth = shop
    prop = truth.open_propensity()
    pop = truth.kernel.pop
    np.testing.assert_array_equal(prop.to_numpy(), pop.open_propensity)
    assert list(prop.columns) == list(CHANNELS)
    assert prop.index.equals(truth.customers.index)
    assert ((prop > 0) & (prop < 1)).all().all()
    # drawn around the population's rates: the mean is the rate, customers spread widely
    for ch, rate in dict(synth.DEFAULT_PARAMS.open_base).items():
        assert abs(prop[ch].mean() - rate) < 0.01, ch
        assert prop[ch].std() > 0.08, ch
    # someone reads email but not messenger, though the population's messenger rate is 3x
    assert ((prop["email"] > 0.5) & (prop["messenger"] < 0.5)).sum() > 10

    best = truth.best_channel()
    consent = truth.customers[[f"consent_{ch}" for ch in CHANNELS]].to_numpy()
    masked = np.where(consent, prop.to_numpy(), -1.0)
    has = consent.any(axis=1)
    expected = np.asarray(CHANNELS, dtype=object)[masked.argmax(axis=1)]
    assert (best["channel"].to_numpy()[has] == expected[has]).all()
    assert best["channel"][~has].isna().all() and best["open_propensity"][~has].isna().all()
    np.testing.assert_allclose(best["open_propensity"].to_numpy()[has], masked.max(axis=1)[has])
    # the personal best is not the population's: messenger for everyone who consented to it
    assert (best["channel"][has & consent[:, CHANNELS.index("messenger")]]
            != "messenger").mean() > 0.05

    ids = truth.customers.index[[30, 4, 17]]
    pd.testing.assert_frame_equal(truth.best_channel(ids), best.loc[ids])
    pd.testing.assert_frame_equal(truth.open_propensity(ids), prop.loc[ids])
    with pytest.raises(KeyError):
        truth.open_propensity([0])

    # the action response assumes the personal best channel at the most active hour
    uplift = truth.action_response[list(SEND_ACTIONS)].sub(truth.action_response["none"], axis=0)
    opened = truth.action_response_if_opened[list(SEND_ACTIONS)].sub(
        truth.action_response_if_opened["none"], axis=0)
    factor = np.nan_to_num(best["open_propensity"].to_numpy())
    np.testing.assert_allclose(uplift.to_numpy(), opened.to_numpy() * factor[:, None],
                               atol=1e-12)
