"""BG/NBD: published CDNOW estimates, closed forms, lifetimes parity, simulation recovery."""

from __future__ import annotations

import importlib.metadata
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import check_grad

from churnkit.stats import btyd, btyd_likelihood
from churnkit.stats.btyd import (
    BGNBDParams,
    expected_purchases,
    fit_bgnbd,
    p_alive,
    p_no_purchase,
)
from churnkit.stats.btyd_data import simulate_bgnbd, summarize_purchases

#: Fader, Hardie & Lee (2005), "Counting your customers the easy way", CDNOW sample, weeks.
PUBLISHED = BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
#: Their reported maximized log-likelihood on the same data.
PUBLISHED_LL = -9582.4


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    # Read the file shipped inside the lifetimes distribution without importing lifetimes: the
    # data set is all we need from it, and its import mutates pandas options.
    path = importlib.metadata.distribution("lifetimes").locate_file(
        "lifetimes/datasets/cdnow_customers_summary.csv"
    )
    return pd.read_csv(path)


@pytest.fixture(scope="module")
def cdnow_fit(cdnow: pd.DataFrame) -> BGNBDParams:
    return fit_bgnbd(cdnow["frequency"], cdnow["recency"], cdnow["T"])


def _lifetimes_fitter(params: BGNBDParams):
    """lifetimes' BetaGeoFitter with our parameters, or a skip naming why it cannot run."""
    try:
        with warnings.catch_warnings():
            # lifetimes 0.11 sets a pandas option that pandas 3 deprecated, at import time.
            warnings.simplefilter("ignore")
            from lifetimes import BetaGeoFitter
        fitter = BetaGeoFitter()
        fitter.params_ = pd.Series(params.to_dict())
        return fitter
    except Exception as exc:  # pragma: no cover - depends on the installed lifetimes
        pytest.skip(f"lifetimes cannot run here ({type(exc).__name__}: {exc}); parity not checked")


# ---------------------------------------------------------------------------------------------
# published values


def test_cdnow_fit_matches_published_estimates(cdnow_fit: BGNBDParams) -> None:
    for name, published in PUBLISHED.to_dict().items():
        assert getattr(cdnow_fit, name) == pytest.approx(published, rel=0.01), name


def test_cdnow_log_likelihood_matches_published(cdnow: pd.DataFrame, cdnow_fit) -> None:
    ll = btyd.log_likelihood(cdnow_fit, cdnow["frequency"], cdnow["recency"], cdnow["T"]).sum()
    assert ll == pytest.approx(PUBLISHED_LL, abs=0.1)


def test_fit_in_days_scales_alpha_only(cdnow: pd.DataFrame, cdnow_fit) -> None:
    days = fit_bgnbd(cdnow["frequency"], 7 * cdnow["recency"], 7 * cdnow["T"])
    assert days.alpha == pytest.approx(7 * cdnow_fit.alpha, rel=1e-4)
    for name in ("r", "a", "b"):
        assert getattr(days, name) == pytest.approx(getattr(cdnow_fit, name), rel=1e-4)


# ---------------------------------------------------------------------------------------------
# closed forms and parity with lifetimes


def test_p_alive_closed_form() -> None:
    p = PUBLISHED
    x, t_x, big_t = np.array([0, 0, 2, 7]), np.array([0.0, 0.0, 30.43, 10.0]), np.full(4, 38.86)
    got = p_alive(p, x, t_x, big_t)
    assert got[0] == 1.0 and got[1] == 1.0  # one can only drop out right after a purchase
    for i in (2, 3):
        odds = ((p.alpha + big_t[i]) / (p.alpha + t_x[i])) ** (p.r + x[i])
        ratio = p.a / (p.b + x[i] - 1) * odds
        assert got[i] == pytest.approx(1 / (1 + ratio), rel=1e-12)
    # a purchase at the very end of observation leaves one doubt: a drop-out right after it
    assert p_alive(p, 5, 38.86, 38.86) == pytest.approx(1 / (1 + p.a / (p.b + 4)))


def test_expected_purchases_small_t_is_alive_times_posterior_rate() -> None:
    # d/dt E[Y(t)] at t = 0 = P(alive) * E[lambda | alive, data] = P(alive) * (r + x) / (alpha + T),
    # which does not involve the hypergeometric function at all.
    p = PUBLISHED
    x, t_x, big_t = np.array([0, 1, 4, 30]), np.array([0, 5.0, 20.0, 38.0]), np.full(4, 38.86)
    t = 1e-6
    rate = expected_purchases(p, t, x, t_x, big_t) / t
    expected = p_alive(p, x, t_x, big_t) * (p.r + x) / (p.alpha + big_t)
    np.testing.assert_allclose(rate, expected, rtol=1e-5)


def test_predictions_match_lifetimes(cdnow: pd.DataFrame) -> None:
    fitter = _lifetimes_fitter(PUBLISHED)
    x, t_x, big_t = cdnow["frequency"], cdnow["recency"], cdnow["T"]
    np.testing.assert_allclose(
        p_alive(PUBLISHED, x, t_x, big_t),
        fitter.conditional_probability_alive(x, t_x, big_t),
        rtol=1e-10,
    )
    for t in (1.0, 10.0, 52.0):
        np.testing.assert_allclose(
            expected_purchases(PUBLISHED, t, x, t_x, big_t),
            fitter.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, big_t),
            rtol=1e-9,
        )


def test_log_likelihood_matches_lifetimes(cdnow: pd.DataFrame) -> None:
    fitter = _lifetimes_fitter(PUBLISHED)
    x, t_x, big_t = (cdnow[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    theirs = fitter._negative_log_likelihood(
        np.log(list(PUBLISHED.to_dict().values())), x, t_x, big_t, np.ones(len(x)), 0.0
    )
    assert -btyd.log_likelihood(PUBLISHED, x, t_x, big_t).mean() == pytest.approx(theirs, rel=1e-12)


def test_gradient_matches_finite_differences(cdnow: pd.DataFrame) -> None:
    x, t_x, big_t = (cdnow[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    data = btyd_likelihood.Summaries.build(x, t_x, big_t, np.full(len(x), 1 / len(x)))
    for theta in ([0.5, 3.0, 1.5, 2.0], [0.243, 4.414, 0.793, 2.426], [2.0, 40.0, 0.3, 9.0]):
        theta = np.array(theta)
        err = check_grad(
            lambda th: btyd_likelihood.loglik_and_grad(th, data)[0],
            lambda th: btyd_likelihood.loglik_and_grad(th, data)[1],
            theta,
            epsilon=1e-7,
        )
        scale = np.linalg.norm(btyd_likelihood.loglik_and_grad(theta, data)[1])
        assert err <= 1e-4 * max(scale, 1.0)


# ---------------------------------------------------------------------------------------------
# P(no purchase)


def test_p_no_purchase_bounds_and_monotone(cdnow: pd.DataFrame) -> None:
    x, t_x, big_t = cdnow["frequency"], cdnow["recency"], cdnow["T"]
    ts = [0.0, 1.0, 4.0, 13.0, 52.0, 520.0]
    probs = np.stack([p_no_purchase(PUBLISHED, t, x, t_x, big_t) for t in ts])
    assert np.all((probs >= 0) & (probs <= 1))
    np.testing.assert_array_equal(probs[0], 1.0)
    assert np.all(np.diff(probs, axis=0) <= 1e-15)
    # never below the probability of being dead already
    assert np.all(probs[-1] >= 1 - p_alive(PUBLISHED, x, t_x, big_t) - 1e-12)


@settings(max_examples=200, deadline=None)
@given(
    x=st.integers(0, 5000),
    frac=st.floats(0, 1),
    big_t=st.floats(0.01, 5000),
    t1=st.floats(0, 1000),
    dt=st.floats(0, 1000),
)
def test_p_no_purchase_property(x: int, frac: float, big_t: float, t1: float, dt: float) -> None:
    t_x = frac * big_t if x > 0 else 0.0
    p1 = p_no_purchase(PUBLISHED, t1, x, t_x, big_t)
    p2 = p_no_purchase(PUBLISHED, t1 + dt, x, t_x, big_t)
    assert 0 <= p2 <= p1 + 1e-12 <= 1 + 1e-12
    assert 0 <= p_alive(PUBLISHED, x, t_x, big_t) <= 1
    assert np.isfinite(expected_purchases(PUBLISHED, t1, x, t_x, big_t))


def _simulate_with_holdout(params: BGNBDParams, big_t: np.ndarray, t: float, rng):
    """BG/NBD customers observed over (0, T] (calibration) then (T, T + t] (holdout)."""
    # simulate_bgnbd returns summaries only; the holdout split needs the purchase times.
    n = len(big_t)
    lam = rng.gamma(params.r, 1 / params.alpha, n)
    drop = rng.beta(params.a, params.b, n)
    x_cal = np.zeros(n, dtype=int)
    t_x = np.zeros(n)
    x_hold = np.zeros(n, dtype=int)
    now = np.zeros(n)
    active = np.arange(n)
    while active.size:
        nxt = now[active] + rng.exponential(1 / np.maximum(lam[active], 1e-300))
        inside = nxt <= big_t[active] + t
        active, nxt = active[inside], nxt[inside]
        cal = nxt <= big_t[active]
        x_cal[active[cal]] += 1
        t_x[active[cal]] = nxt[cal]
        x_hold[active[~cal]] += 1
        now[active] = nxt
        active = active[rng.random(active.size) >= drop[active]]
    return x_cal, t_x, x_hold


def test_predictions_match_simulated_holdout() -> None:
    rng = np.random.default_rng(20240304)
    true = BGNBDParams(r=0.5, alpha=15.0, a=0.8, b=2.5)
    n, t = 200_000, 60.0
    big_t = np.full(n, 180.0)
    x, t_x, hold = _simulate_with_holdout(true, big_t, t, rng)
    for group in (x == 0, (x >= 1) & (x <= 3), x > 3):
        zero = p_no_purchase(true, t, x[group], t_x[group], big_t[group])
        observed = np.mean(hold[group] == 0)
        se = np.sqrt(observed * (1 - observed) / group.sum())
        assert zero.mean() == pytest.approx(observed, abs=5 * se + 1e-3)
        expected = expected_purchases(true, t, x[group], t_x[group], big_t[group])
        se_mean = hold[group].std() / np.sqrt(group.sum())
        assert expected.mean() == pytest.approx(hold[group].mean(), abs=5 * se_mean + 1e-3)


# ---------------------------------------------------------------------------------------------
# fitting


def test_simulated_parameters_are_recovered() -> None:
    true = BGNBDParams(r=0.5, alpha=15.0, a=0.8, b=2.5)  # alpha in days
    rng = np.random.default_rng(7)
    big_t = rng.uniform(90, 720, 20_000)
    sim = simulate_bgnbd(true, big_t, random_state=rng)
    fit = fit_bgnbd(sim["frequency"], sim["recency"], sim["T"])
    # 20 seeds gave relative standard errors of 1-3% (b: 3%); 15% is about 5 of them.
    for name, value in true.to_dict().items():
        assert getattr(fit, name) == pytest.approx(value, rel=0.15), name


@pytest.mark.slow
def test_million_customers_fit() -> None:
    true = BGNBDParams(r=0.8, alpha=20.0, a=0.8, b=2.5)
    rng = np.random.default_rng(11)
    sim = simulate_bgnbd(true, rng.uniform(30, 730, 1_000_000), random_state=rng)
    fit = fit_bgnbd(sim["frequency"], sim["recency"], sim["T"])
    for name, value in true.to_dict().items():
        assert getattr(fit, name) == pytest.approx(value, rel=0.03), name


def test_weights_equal_repeated_rows(cdnow: pd.DataFrame) -> None:
    sub = cdnow.iloc[:500]
    reps = np.arange(len(sub)) % 3 + 1
    repeated = sub.loc[sub.index.repeat(reps)]
    a = fit_bgnbd(repeated["frequency"], repeated["recency"], repeated["T"])
    b = fit_bgnbd(sub["frequency"], sub["recency"], sub["T"], weights=reps)
    for name in ("r", "alpha", "a", "b"):
        assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-6)


def test_penalizer_shrinks_parameters(cdnow: pd.DataFrame, cdnow_fit) -> None:
    pen = fit_bgnbd(cdnow["frequency"], cdnow["recency"], cdnow["T"], penalizer=0.1)
    before = np.array(list(cdnow_fit.to_dict().values()))
    after = np.array(list(pen.to_dict().values()))
    assert np.sum(after**2) < np.sum(before**2)


@pytest.mark.parametrize(
    ("frequency", "recency", "T", "message"),
    [
        ([1, -1], [1, 0], [2, 2], "negative"),
        ([1, 1.5], [1, 1], [2, 2], "whole"),
        ([1, 1], [3, 1], [2, 2], "recency is larger than T"),
        ([1, np.nan], [1, 1], [2, 2], "missing"),
        ([], [], [], "zero customers"),
    ],
)
def test_fit_rejects_bad_input(frequency, recency, T, message) -> None:
    with pytest.raises(ValueError, match=message):
        fit_bgnbd(frequency, recency, T)


def test_params_round_trip_and_checks() -> None:
    assert BGNBDParams.from_dict(PUBLISHED.to_dict()) == PUBLISHED
    with pytest.raises(ValueError, match="missing"):
        BGNBDParams.from_dict({"r": 1.0, "alpha": 1.0, "a": 1.0})
    with pytest.raises(ValueError, match="positive"):
        BGNBDParams(r=0.0, alpha=1.0, a=1.0, b=1.0)


def test_extreme_frequencies_stay_finite() -> None:
    x = np.array([0, 1, 100, 10_000, 100_000])
    t_x = np.array([0.0, 1.0, 999.0, 999.9, 1000.0])
    big_t = np.full(5, 1000.0)
    for values in (
        p_alive(PUBLISHED, x, t_x, big_t),
        expected_purchases(PUBLISHED, 30.0, x, t_x, big_t),
        p_no_purchase(PUBLISHED, 30.0, x, t_x, big_t),
        btyd.log_likelihood(PUBLISHED, x, t_x, big_t),
    ):
        assert np.all(np.isfinite(values))
    # a very frequent buyer who stopped long ago is almost surely gone
    assert p_alive(PUBLISHED, 10_000, 10.0, 1000.0) < 1e-100


def test_expected_purchases_near_a_equal_one_is_continuous() -> None:
    values = [
        expected_purchases(BGNBDParams(0.5, 10.0, a, 2.0), 30.0, 3, 20.0, 50.0)
        for a in (1 - 1e-3, 1 - 1e-6, 1.0, 1 + 1e-6, 1 + 1e-3)
    ]
    np.testing.assert_allclose(values, values[2], rtol=1e-3)


# ---------------------------------------------------------------------------------------------
# summarize_purchases


def test_summarize_purchases_days() -> None:
    orders = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 1, 2, 3, 3],
            "ordered_at": pd.to_datetime(
                [
                    "2024-01-01T08:00Z",
                    "2024-01-01T20:00Z",  # same UTC day: not a repeat purchase
                    "2024-01-11T10:00Z",
                    "2024-03-01T00:00Z",  # at as_of: not yet happened
                    "2024-02-29T23:59Z",
                    "2024-03-01T00:00Z",  # customer 3 only buys at/after as_of: absent
                    "2024-03-02T00:00Z",
                ],
                utc=True,
            ),
        }
    )
    out = summarize_purchases(orders.sample(frac=1, random_state=1), as_of="2024-03-01")
    assert list(out.index) == [1, 2]
    assert out.loc[1, "frequency"] == 1
    assert out.loc[1, "recency"] == 10.0
    assert out.loc[1, "T"] == 60.0  # 2024 is a leap year
    assert out.loc[2].tolist() == [0, 0.0, 1.0]
    assert out["frequency"].dtype == np.int64
    # fractional T when as_of is not midnight
    later = summarize_purchases(orders, as_of="2024-03-01T12:00")
    assert later.loc[2, "T"] == 1.5


def test_summarize_then_fit_runs() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    orders = pd.DataFrame(
        {
            "cid": rng.integers(0, 300, n),
            "when": pd.Timestamp("2024-01-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 365 * 24, n), unit="h"),
        }
    )
    summary = summarize_purchases(orders, as_of="2025-01-01", customer_col="cid", time_col="when")
    assert (summary["recency"] < summary["T"]).all()
    params = fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])
    assert np.all(p_alive(params, summary["frequency"], summary["recency"], summary["T"]) <= 1)


@settings(max_examples=60, deadline=None)
@given(st.integers(10, 40), st.integers(0, 2**32 - 1),
       st.sampled_from([PUBLISHED, BGNBDParams(r=2.0, alpha=0.5, a=1.0, b=3e6),
                        BGNBDParams(r=0.9, alpha=30.0, a=4e6, b=2e6),
                        BGNBDParams(r=50.0, alpha=0.01, a=0.3, b=0.2)]))
def test_few_customers_get_the_bits_of_many(n, seed, params) -> None:
    """The row-by-row series for a few customers gives each customer's value of the vectorized
    one, bit for bit, also where the series rescales (very frequent buyers)."""
    rng = np.random.default_rng(seed)
    big_t = rng.uniform(0, 900, n)
    t_x = big_t * rng.random(n)
    x = np.floor(rng.exponential(5, n) * (rng.random(n) < 0.9))
    x[: n // 5] *= 400  # some very frequent buyers
    t = rng.choice([0.0, 1.0, 90.0, 365.0], n)
    many = btyd.predictions(params, t, x, t_x, big_t)
    for i in range(n):
        one = btyd.predictions(params, t[i:i + 1], x[i:i + 1], t_x[i:i + 1], big_t[i:i + 1])
        for got, want in zip(one, many, strict=True):
            assert got.view(np.int64)[0] == want[i:i + 1].view(np.int64)[0], (i, got, want[i])
    assert n > btyd._ROW_BY_ROW  # the many go through the vectorized sum
    np.testing.assert_array_equal(many[0], p_alive(params, x, t_x, big_t))
    np.testing.assert_array_equal(many[1], expected_purchases(params, t, x, t_x, big_t))
    np.testing.assert_array_equal(many[2], p_no_purchase(params, t, x, t_x, big_t))
