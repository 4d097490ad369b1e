"""Pareto/NBD: the published CDNOW estimates, lifetimes' likelihood and P(alive), P(no purchase)
against a simulation of the model, parameters recovered from simulated customers."""

from __future__ import annotations

import importlib.metadata
import warnings

import numpy as np
import pandas as pd
import pytest

from churnkit.stats.pareto_nbd import (
    ParetoNBDParams,
    fit_pareto_nbd,
    log_likelihood,
    p_alive,
    p_no_purchase,
    p_purchase_if_alive,
)

#: Fader, Hardie & Lee (2005), CDNOW sample (weeks): r, alpha, s, beta and the log-likelihood.
PUBLISHED = ParetoNBDParams(r=0.553, alpha=10.578, s=0.606, beta=11.669)
PUBLISHED_LL = -9594.98


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    path = importlib.metadata.distribution("lifetimes").locate_file(
        "lifetimes/datasets/cdnow_customers_summary.csv")
    return pd.read_csv(path)


def test_cdnow_fit_matches_the_published_estimates(cdnow):
    fit = fit_pareto_nbd(cdnow["frequency"], cdnow["recency"], cdnow["T"])
    for name, value in PUBLISHED.to_dict().items():
        assert getattr(fit, name) == pytest.approx(value, rel=2e-3), name
    total = log_likelihood(fit, cdnow["frequency"], cdnow["recency"], cdnow["T"]).sum()
    assert total == pytest.approx(PUBLISHED_LL, abs=0.05)


def test_likelihood_and_p_alive_equal_lifetimes(cdnow):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lifetimes 0.11 sets a deprecated pandas option
            from lifetimes import ParetoNBDFitter
    except Exception as exc:  # pragma: no cover - depends on the installed lifetimes
        pytest.skip(f"lifetimes cannot run here ({type(exc).__name__}: {exc})")
    fitter = ParetoNBDFitter()
    fitter.params_ = pd.Series(PUBLISHED.to_dict())
    x, t_x, big_t = (cdnow[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    np.testing.assert_allclose(p_alive(PUBLISHED, x, t_x, big_t),
                               fitter.conditional_probability_alive(x, t_x, big_t), atol=1e-12)
    want = ParetoNBDFitter._conditional_log_likelihood(
        (PUBLISHED.r, PUBLISHED.alpha, PUBLISHED.s, PUBLISHED.beta), x, t_x, big_t)
    np.testing.assert_allclose(log_likelihood(PUBLISHED, x, t_x, big_t), want, rtol=1e-10)


@pytest.mark.parametrize(("x", "big_t", "t"), [(0, 10.0, 5.0), (3, 40.0, 13.0), (20, 70.0, 52.0)])
def test_a_purchase_if_alive_equals_the_posterior_simulated(x, big_t, t):
    """Alive at T: lambda ~ Gamma(r + x, alpha + T), mu ~ Gamma(s, beta + T); a purchase comes
    before dropping out with probability lambda/(lambda+mu) (1 - exp(-(lambda+mu) t))."""
    rng = np.random.default_rng(x)
    p = PUBLISHED
    lam = rng.gamma(p.r + x, 1 / (p.alpha + big_t), 400_000)
    mu = rng.gamma(p.s, 1 / (p.beta + big_t), 400_000)
    both = lam + mu
    simulated = lam / both * -np.expm1(-both * t)
    got = float(p_purchase_if_alive(p, t, x, big_t))
    assert got == pytest.approx(simulated.mean(), abs=4 * simulated.std() / np.sqrt(400_000))
    assert float(p_purchase_if_alive(p, 0.0, x, big_t)) == 0.0


def test_parameters_are_recovered_and_no_purchase_is_calibrated():
    """Customers simulated from the model: the fit recovers the parameters, and the predicted
    share with no purchase in a later window matches what the simulation does."""
    rng = np.random.default_rng(4)
    truth = ParetoNBDParams(r=0.8, alpha=40.0, s=0.7, beta=200.0)
    n, big_t, horizon = 40_000, 365.0, 90.0
    lam = rng.gamma(truth.r, 1 / truth.alpha, n)
    life = rng.exponential(1 / rng.gamma(truth.s, 1 / truth.beta, n))
    x, t_x, later = np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool)
    for i in range(n):  # purchase times of each customer until death or the end of the window
        end = min(life[i], big_t + horizon)
        times = np.cumsum(rng.exponential(1 / lam[i], 1 + int(lam[i] * end * 3 + 20)))
        times = times[times < end]
        seen = times[times < big_t]
        x[i], t_x[i] = len(seen), (seen[-1] if len(seen) else 0.0)
        later[i] = bool(np.any(times >= big_t))
    fit = fit_pareto_nbd(x, t_x, np.full(n, big_t))
    for name, value in truth.to_dict().items():
        assert getattr(fit, name) == pytest.approx(value, rel=0.2), name
    predicted = p_no_purchase(fit, horizon, x, t_x, np.full(n, big_t))
    assert predicted.mean() == pytest.approx(1 - later.mean(), abs=0.01)
    buyers = x > 0  # and within the repeat buyers, who are the ones it ranks
    assert predicted[buyers].mean() == pytest.approx(1 - later[buyers].mean(), abs=0.02)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="parameter s must be positive"):
        ParetoNBDParams(r=1.0, alpha=1.0, s=0.0, beta=1.0)
