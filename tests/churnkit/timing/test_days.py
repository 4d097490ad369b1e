"""The next-order hazard model: censoring handled, probabilities that match what happens."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnkit.models.timing import NextOrderModel
from churnkit.models.trees import TreeSettings

EDGES = (0, 3, 7, 14, 21, 30, 45, 60, 90)


def _exponential(n: int, rate: np.ndarray, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = rng.exponential(1 / rate)
    censored = t >= 90
    return pd.DataFrame({"days_to_next_order": np.where(censored, 90.0, t),
                         "censored": censored, "orders_90d": 30 * rate})


def test_censored_rows_are_not_read_as_orders():
    # Constant daily hazard: S(90) = exp(-90 rate). Treating censored rows as orders at day 90
    # (or dropping them) would put S(90) far from the truth.
    frame = _exponential(6000, np.full(6000, 0.01), seed=1)
    trees = TreeSettings(n_estimators=30, learning_rate=0.06, num_leaves=4)
    model = NextOrderModel(EDGES, trees=trees).fit(frame)
    s = model.summary(model.hazards(frame.head(50)), quantile=0.5)
    expected = 1 - np.exp(-0.9)
    assert s["p_return"].mean() == pytest.approx(expected, abs=0.03)
    # the return time of returners: a truncated exponential's mean
    lam, H = 0.01, 90
    cond = 1 / lam - H * np.exp(-lam * H) / (1 - np.exp(-lam * H))
    assert s["conditional_mean_days"].mean() == pytest.approx(cond, abs=3)
    assert (s["expected_days"] > 90).all()  # beyond the horizon: most never return in it


def test_faster_buyers_are_expected_sooner():
    rate = np.where(np.arange(6000) % 2 == 0, 0.05, 0.005)
    frame = _exponential(6000, rate, seed=2)
    trees = TreeSettings(n_estimators=40, learning_rate=0.06, num_leaves=4)
    model = NextOrderModel(EDGES, trees=trees).fit(frame)
    s = model.summary(model.hazards(frame), quantile=0.5)
    fast = rate == 0.05
    assert s["p_return"][fast].mean() > s["p_return"][~fast].mean() + 0.4
    assert s["conditional_mean_days"][fast].mean() < s["conditional_mean_days"][~fast].mean()


@pytest.mark.slow  # the shared shop and fit (session fixture)
def test_survival_is_monotone_and_bounded(timing_model, timing_shop):
    _, _, _, evaluation = timing_shop
    days = timing_model.days_
    hz = days.hazards(evaluation.head(200))
    S = days.survival(hz, np.arange(0, 91))
    assert np.all(np.diff(S, axis=1) <= 1e-12) and np.all((S > 0) & (S <= 1))
    assert np.allclose(S[:, 0], 1.0)
    # the day grid's positions found once per set of bins: the same bits as finding them
    assert np.array_equal(days.daily_survival(hz), S)
    assert np.array_equal(days.daily_survival(hz[:1]), S[:1])


def test_survival_at_any_days_is_piecewise_constant_hazard():
    # h = 0.1 per bin: inside bin [3, 7) the daily hazard is 1 - 0.9^(1/4); at half-days too
    model = NextOrderModel(EDGES)
    hz = np.full((1, len(EDGES) - 1), 0.1)
    S = model.survival(hz, np.array([0.0, 3.0, 5.0, 7.0, 95.0]))
    expected = [1.0, 0.9, 0.9 * 0.9 ** 0.5, 0.81, 0.9 ** 8]
    np.testing.assert_allclose(S[0], expected, rtol=1e-12)


@pytest.mark.slow  # the shared shop and fit (session fixture)
def test_p_return_tracks_the_held_out_return_rate(timing_model, timing_shop):
    _, _, _, evaluation = timing_shop
    s = timing_model.days_.summary(timing_model.days_.hazards(evaluation), quantile=0.5)
    observed = 1 - evaluation["censored"].mean()
    assert s["p_return"].mean() == pytest.approx(observed, abs=0.06)


def test_missing_label_columns_are_named():
    with pytest.raises(ValueError, match="censored"):
        NextOrderModel(EDGES).fit(pd.DataFrame({"days_to_next_order": [1.0]}))


def test_windows_without_any_order_are_refused_clearly():
    frame = pd.DataFrame({"days_to_next_order": [90.0] * 20, "censored": [True] * 20,
                          "orders_90d": np.arange(20.0)})
    with pytest.raises(ValueError, match="needs both orders and censored windows"):
        NextOrderModel(EDGES).fit(frame)
