"""Hour-of-week slots against the generator's true active hours; channels and consent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnkit.data.contract import CHANNELS
from churnkit.models.timing import ChannelRanker


def _true_slots(truth, index: pd.Index) -> np.ndarray:
    return np.asarray(truth.active_slots)[truth.customers.index.get_indexer(index)]


@pytest.mark.slow  # the shared shop and fit (session fixture)
def test_slot_probabilities_are_distributions(timing_model, timing_shop):
    _, _, _, evaluation = timing_shop
    P = timing_model.slots_.slot_probabilities(evaluation)
    assert P.shape == (len(evaluation), 168)
    assert np.allclose(P.sum(axis=1), 1.0) and (P >= 0).all()


@pytest.mark.slow  # the shared shop and fit (session fixture)
def test_customers_without_history_get_the_population_prior(timing_model, timing_shop):
    _, _, _, evaluation = timing_shop
    none = evaluation[evaluation["activity_events"].fillna(0) == 0]
    assert len(none) > 0
    P = timing_model.slots_.slot_probabilities(none)
    assert np.allclose(P, timing_model.slots_.prior_slot_[None, :])


@pytest.mark.slow  # the shared shop and fit (session fixture)
def test_top_slot_finds_the_customers_true_active_hours(timing_model, timing_shop):
    # Ground truth: the generator's per-customer hour-of-week weights. The model's best slot
    # must carry far more of the customer's true activity than the population's best slot.
    _, truth, _, evaluation = timing_shop
    rich = evaluation[evaluation["activity_events"].fillna(0) >= 5]
    true = _true_slots(truth, rich.index)
    P = timing_model.slots_.slot_probabilities(rich)
    rows = np.arange(len(rich))
    model_lift = true[rows, P.argmax(axis=1)].mean() * 168
    global_lift = true[:, int(np.argmax(timing_model.slots_.prior_slot_))].mean() * 168
    assert model_lift > 1.25 * global_lift, (model_lift, global_lift)
    assert model_lift > 2.5  # 2.5 times the weight of a uniform slot


def _contacts_frame(rows: list[dict]) -> pd.DataFrame:
    base = {f"{k}_{ch}": 0 for ch in CHANNELS for k in ("contacts", "opens", "conversions")}
    base |= {f"can_contact_{ch}": True for ch in CHANNELS} | {"unsubscribed": False}
    return pd.DataFrame([base | r for r in rows])


def _population() -> pd.DataFrame:
    # email opened 20% of the time, sms 40%, with spread across customers
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(400):
        n_e, n_s = 10, 10
        o_e, o_s = rng.binomial(n_e, rng.beta(2, 8)), rng.binomial(n_s, rng.beta(4, 6))
        # every open converts on both channels: the ranking is by open rate alone
        rows.append({"contacts_email": n_e, "opens_email": o_e, "conversions_email": o_e,
                     "contacts_sms": n_s, "opens_sms": o_s, "conversions_sms": o_s})
    return _contacts_frame(rows)


def test_channels_shrink_thin_history_toward_the_population():
    ranker = ChannelRanker().fit(_population())
    cust = _contacts_frame([
        {},  # no history: the population's better channel (sms)
        {"contacts_email": 1, "opens_email": 1},  # one open: not enough to beat sms
        {"contacts_email": 40, "opens_email": 36, "contacts_sms": 40, "opens_sms": 4},
    ])
    allowed = {f"can_contact_{ch}": False for ch in ("messenger", "push", "phone")}
    cust = cust.assign(**allowed)
    ranked = ranker.rank(cust)
    assert list(ranked["channel"]) == ["sms", "sms", "email"]
    assert ranked["channel_confidence"].iloc[2] > 0.99
    assert 0 < ranked["channel_confidence"].iloc[1] < 0.99


def test_only_consented_channels_and_never_after_an_unsubscribe():
    ranker = ChannelRanker().fit(_population())
    no_consent = {f"can_contact_{ch}": False for ch in CHANNELS}
    cust = _contacts_frame([
        no_consent | {"can_contact_phone": True},
        no_consent,
        {"unsubscribed": True, "contacts_sms": 5, "opens_sms": 5},
    ])
    ranked = ranker.rank(cust)
    assert ranked["channel"].iloc[0] == "phone" and ranked["channel_confidence"].iloc[0] == 1.0
    assert ranked["channel"].iloc[1] is None and np.isnan(ranked["channel_confidence"].iloc[1])
    assert ranked["channel"].iloc[2] is None


@pytest.mark.slow  # the shared shop and fit (session fixture)
def test_real_shop_channels_respect_consent(timing_model, timing_shop):
    _, _, _, evaluation = timing_shop
    out = timing_model.predict(evaluation, as_of=evaluation["cutoff"].iloc[0])
    for ch in CHANNELS:
        chosen = (out["channel"] == ch).to_numpy()
        assert evaluation[f"can_contact_{ch}"].to_numpy(dtype=bool)[chosen].all(), ch
    blocked = evaluation["allowed_channels"].to_numpy() == 0
    assert blocked.any() and out["channel"].isna().to_numpy()[blocked].all()


@pytest.mark.slow  # the shared shop and fit (session fixture)
@pytest.mark.parametrize("ch", CHANNELS)
def test_priors_are_proper(ch, timing_model):
    a, b = timing_model.channels_.alpha_[ch], timing_model.channels_.beta_[ch]
    assert a > 0 and b > 0 and 0 < a / (a + b) < 1


def test_organic_conversions_do_not_rank_a_channel_up():
    """Conversions are orders after a message, opened or not: a channel opened rarely whose
    messages are often followed by an order anyway does not outrank a channel that is read."""
    rng = np.random.default_rng(1)
    rows = []
    for _ in range(300):
        o_e, o_s = rng.binomial(10, 0.1), rng.binomial(10, 0.5)
        rows.append({"contacts_email": 10, "opens_email": o_e, "conversions_email": 4,
                     "contacts_sms": 10, "opens_sms": o_s, "conversions_sms": 1})
    ranker = ChannelRanker().fit(_contacts_frame(rows))
    allowed = {f"can_contact_{ch}": False for ch in ("messenger", "push", "phone")}
    ranked = ranker.rank(_contacts_frame([{}]).assign(**allowed))
    assert ranked["channel"].iloc[0] == "sms"


@pytest.mark.slow  # the shared shop and fit (session fixture)
def test_real_shop_channel_follows_the_customers_own_affinity(timing_model, timing_shop):
    """Against the generator's personal open propensities: where the customer's own history
    moves the choice off the population's best channel, the channel chosen opens better."""
    _, truth, _, evaluation = timing_shop
    ranker = timing_model.channels_
    chosen = ranker.rank(evaluation)["channel"]
    history = [c for c in evaluation.columns if c.startswith(("contacts_", "opens_"))]
    population = ranker.rank(evaluation.assign(**dict.fromkeys(history, 0)))["channel"]
    moved = chosen.notna() & (chosen != population)
    assert moved.sum() > 30
    prop = truth.open_propensity(evaluation.index[moved])
    cols = pd.Index(CHANNELS)
    rows = np.arange(moved.sum())
    own = prop.to_numpy()[rows, cols.get_indexer(chosen[moved])]
    pop_best = prop.to_numpy()[rows, cols.get_indexer(population[moved])]
    assert own.mean() > pop_best.mean() + 0.02, (own.mean(), pop_best.mean())
