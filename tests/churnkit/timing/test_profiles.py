"""Hour profiles: the mixture recovers planted daily rhythms and shrinks thin histories."""

from __future__ import annotations

import numpy as np
import pytest

from churnkit.models.timing.profiles import HourProfiles
from churnkit.models.timing.slots import HOUR_COUNT_COLS, SlotModel

HOURS = np.arange(24)


def _bump(peak: float, width: float = 1.5) -> np.ndarray:
    d = np.abs(HOURS + 0.5 - peak) % 24
    p = np.exp(-0.5 * (np.minimum(d, 24 - d) / width) ** 2) + 0.01
    return p / p.sum()


MORNING, EVENING = _bump(8.5), _bump(20.5)


def _customers(n: int, events: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 24) counts drawn from MORNING (label 0) or EVENING (label 1), 30/70."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.7).astype(int)
    counts = np.stack([rng.multinomial(events, (MORNING, EVENING)[k]) for k in labels])
    return counts, labels


def test_recovers_planted_rhythms_and_their_shares():
    counts, _ = _customers(3000, 6, seed=0)
    model = HourProfiles(2, random_state=1).fit(counts)
    order = np.argsort(model.profiles_.argmax(axis=1))  # morning profile first
    assert model.profiles_[order[0]].argmax() in (7, 8, 9)
    assert model.profiles_[order[1]].argmax() in (19, 20, 21)
    assert model.shares_[order] == pytest.approx([0.3, 0.7], abs=0.03)
    # new customers: the predicted peak is in their own rhythm
    test, truth = _customers(500, 6, seed=2)
    peak = model.hour_probabilities(test).argmax(axis=1)
    morning = (peak >= 6) & (peak <= 11)
    assert (morning == (truth == 0)).mean() > 0.97


def test_thin_histories_shrink_toward_the_population():
    counts, _ = _customers(3000, 6, seed=0)
    model = HourProfiles(2, random_state=1).fit(counts)
    population = model.shares_ @ model.profiles_
    none = model.hour_probabilities(np.zeros((1, 24)))[0]
    assert none == pytest.approx(population)
    # one morning event moves the distribution toward the morning; five move it further
    one = np.zeros((1, 24))
    one[0, 8] = 1
    five = one * 5
    p0, p1, p5 = population[8], model.hour_probabilities(one)[0, 8], \
        model.hour_probabilities(five)[0, 8]
    assert p0 < p1 < p5 <= MORNING[8] * 1.1
    assert np.allclose(model.hour_probabilities(five).sum(axis=1), 1.0)


def test_a_customer_alone_gets_the_bits_of_the_full_run():
    # the nightly job scores shards, the service one customer: the same row, the same floats
    counts, _ = _customers(2000, 5, seed=4)
    model = HourProfiles(32).fit(counts)
    full = model.hour_probabilities(counts)
    alone = np.vstack([model.hour_probabilities(counts[i:i + 1]) for i in range(50)])
    assert np.array_equal(full[:50], alone)


def test_round_trip_and_bad_input():
    counts, _ = _customers(500, 4, seed=3)
    model = HourProfiles(4).fit(counts)
    again = HourProfiles.from_dict(model.to_dict())
    assert np.allclose(again.hour_probabilities(counts), model.hour_probabilities(counts))
    with pytest.raises(ValueError, match=r"shape \(n, 24\)"):
        model.hour_probabilities(np.zeros((3, 7)))
    with pytest.raises(ValueError, match="negative"):
        model.hour_probabilities(-np.ones((1, 24)))
    with pytest.raises(ValueError, match="no row has activity"):
        HourProfiles(4).fit(np.zeros((10, 24)))


@pytest.mark.slow  # the shared shop and fit (session fixture)
def test_slot_model_reads_the_hour_counts(timing_model, timing_shop):
    _, truth, _, evaluation = timing_shop
    slots = timing_model.slots_
    assert slots.profiles_ is not None
    # the profiles change the hour distribution of customers with activity, and only theirs
    without = SlotModel.from_dict({**slots.to_dict(), "hour_profiles": None})
    active = evaluation[evaluation["activity_events"] > 0]
    with_p, _ = slots.hour_weekday_probabilities(active)
    without_p, _ = without.hour_weekday_probabilities(active)
    assert not np.allclose(with_p, without_p)
    assert np.allclose(with_p.sum(axis=1), 1.0)
    # a frame without the hour counts (features of an older version) scores as before
    old = active.drop(columns=list(HOUR_COUNT_COLS))
    assert np.allclose(slots.hour_weekday_probabilities(old)[0], without_p)
    # ground truth: the profiles put more of the customer's true daily activity in the top
    # three hours than the models without them
    true = np.asarray(truth.active_slots)[truth.customers.index.get_indexer(active.index)]
    true_h = true.reshape(len(true), 7, 24).sum(axis=1)
    rows = np.arange(len(active))[:, None]

    def captured(P: np.ndarray) -> float:
        return float(true_h[rows, np.argsort(-P, axis=1)[:, :3]].sum(axis=1).mean())

    assert captured(with_p) > captured(without_p)
