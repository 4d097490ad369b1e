"""The BG/NBD "buy till you die" model (Fader, Hardie & Lee 2005), small and exact, on scipy.

While alive, a customer buys as a Poisson process with rate ``lambda ~ Gamma(r, alpha)``; right
after each purchase they drop out for good with probability ``p ~ Beta(a, b)``. A customer is
summarized by three numbers:

``frequency`` (x)
    Repeat purchases: the number of purchases after the first one (here: distinct purchase days
    minus one, see :func:`summarize_purchases`).
``recency`` (t_x)
    Time from the first to the last purchase (0 when x = 0).
``T``
    Time from the first purchase to the end of observation (``as_of``).

**Units.** churnkit works in **days**: :func:`summarize_purchases` returns days, and parameters
fitted on days have ``alpha`` in days (``r``, ``a``, ``b`` are unitless). The functions themselves
are unit-agnostic: fitted on weeks, ``alpha`` is in weeks and ``t`` must be given in weeks
(``alpha_days = 7 * alpha_weeks``).

**as_of.** The model itself knows no dates; the summary statistics must be built from purchases
strictly before ``as_of`` (UTC) and ``T`` measured up to ``as_of``, which
:func:`summarize_purchases` does. Predictions then concern ``(as_of, as_of + t]``.

The likelihood depends on a customer only through ``(x, t_x, T)``, and its costly special
functions only through ``x``, so fitting groups identical triples and evaluates the gamma and
digamma terms once per distinct ``x`` (:mod:`churnkit.stats.btyd_likelihood`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from churnkit.stats.btyd_likelihood import (
    Summaries,
    checked_array,
    dot,
    group_triples,
    log_mixture,
    log_terms,
    loglik_and_grad,
    summary_arrays,
)

_PARAM_NAMES = ("r", "alpha", "a", "b")
#: Log-parameter bounds for the optimizer: exp(+-20) keeps every term finite while leaving room
#: for the degenerate optima (b -> infinity when nobody drops out).
_LOG_BOUNDS = (-20.0, 20.0)


@dataclass(frozen=True)
class BGNBDParams:
    """Fitted BG/NBD parameters.

    Attributes
    ----------
    r, alpha
        Shape and rate of the Gamma distribution of purchase rates; ``alpha`` is in the time unit
        of the data it was fitted on (days in churnkit), so the mean rate ``r / alpha`` is in
        purchases per day.
    a, b
        Shapes of the Beta distribution of the drop-out probability after each purchase.
    """

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        for name in _PARAM_NAMES:
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"BG/NBD parameter {name} must be positive, got {value!r}")

    def to_dict(self) -> dict:
        """``{"r": ..., "alpha": ..., "a": ..., "b": ...}`` as plain floats (JSON-ready)."""
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping) -> BGNBDParams:
        """Inverse of :meth:`to_dict`; refuses missing or unknown keys."""
        keys = set(d)
        if keys != set(_PARAM_NAMES):
            missing = sorted(set(_PARAM_NAMES) - keys)
            unknown = sorted(keys - set(_PARAM_NAMES))
            raise ValueError(
                "BG/NBD parameters need exactly r, alpha, a, b "
                f"(missing {missing}, unknown {unknown})"
            )
        return cls(**{k: float(d[k]) for k in _PARAM_NAMES})


def log_likelihood(params: BGNBDParams, frequency, recency, T) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood of ``(frequency, recency, T)`` (any consistent unit)."""
    x, t_x, big_t = summary_arrays(frequency, recency, T)
    data = Summaries.build(x.ravel(), t_x.ravel(), big_t.ravel(), np.ones(x.size))
    theta = np.array([params.r, params.alpha, params.a, params.b])
    a1_u, a2, a3, *_ = log_terms(theta, data)
    return (a1_u[data.x_idx] + a2 + log_mixture(a2, a3)[0]).reshape(x.shape)


def fit_bgnbd(
    frequency, recency, T, *, penalizer: float = 0.0, weights=None
) -> BGNBDParams:
    """Fit BG/NBD by maximum likelihood.

    Parameters
    ----------
    frequency, recency, T
        Array-likes of equal length, one entry per customer, as returned by
        :func:`summarize_purchases` (days; any consistent unit works, ``alpha`` then comes out in
        that unit). Customers must have made at least one purchase before ``as_of``.
    penalizer
        L2 penalty ``penalizer * (r^2 + alpha^2 + a^2 + b^2)`` added to the mean negative
        log-likelihood (the same convention as ``lifetimes``); 0 for plain maximum likelihood.
    weights
        Optional non-negative number of customers each row stands for (e.g. counts of identical
        rows). Identical rows are grouped internally anyway.

    Returns
    -------
    BGNBDParams

    Raises
    ------
    ValueError
        Bad inputs (negative, missing, fractional frequency, recency > T, no customers).
    RuntimeError
        The optimizer failed to converge.

    Notes
    -----
    L-BFGS-B on the log-parameters with the analytic gradient, from the moment-style start
    ``r = 1``, ``alpha = mean(T) / (mean(x) + 1)``, ``a = b = 1``.
    """
    x, t_x, big_t = summary_arrays(frequency, recency, T)
    x, t_x, big_t = x.ravel(), t_x.ravel(), big_t.ravel()
    if x.size == 0:
        raise ValueError("cannot fit BG/NBD on zero customers")
    if weights is None:
        w = np.ones(x.size)
    else:
        w = np.asarray(weights, dtype="float64").ravel()
        if w.shape != x.shape:
            raise ValueError(f"weights has {w.size} entries, expected {x.size}")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError("weights must be finite and non-negative")
    if not (np.isfinite(penalizer) and penalizer >= 0):
        raise ValueError(f"penalizer must be >= 0, got {penalizer!r}")

    x, t_x, big_t, w = group_triples(x, t_x, big_t, w)
    total = w.sum()
    if total <= 0:
        raise ValueError("weights sum to zero")
    w = w / total  # mean log-likelihood: the scale L-BFGS-B's tolerances expect
    data = Summaries.build(x, t_x, big_t, w)

    def objective(log_theta: np.ndarray) -> tuple[float, np.ndarray]:
        theta = np.exp(log_theta)
        ll, grad = loglik_and_grad(theta, data)
        value = -ll + penalizer * float(theta @ theta)
        d_theta = -grad + 2 * penalizer * theta
        return value, d_theta * theta  # chain rule for the log-parameters

    mean_t, mean_x = dot(w, big_t), dot(w, x)
    start = np.log([1.0, max(mean_t / (mean_x + 1.0), 1e-3), 1.0, 1.0])
    result = minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[_LOG_BOUNDS] * 4,
        options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9},
    )
    if not result.success:
        # L-BFGS-B sometimes stops on a line-search hiccup at the optimum; accept it only if the
        # gradient there is negligible.
        _, grad = objective(result.x)
        if not np.all(np.isfinite(result.x)) or np.max(np.abs(grad)) > 1e-5:
            raise RuntimeError(f"BG/NBD fit did not converge: {result.message}")
    return BGNBDParams(*(float(v) for v in np.exp(result.x)))


# ---------------------------------------------------------------------------------------------
# predictions


def p_alive(params: BGNBDParams, frequency, recency, T) -> np.ndarray:
    """Probability that each customer is still alive at the end of observation (``T``).

    ``1 / (1 + [x > 0] * a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x))``; exactly 1
    for customers without repeat purchases (in BG/NBD one can only drop out right after a
    purchase). Inputs as for :func:`fit_bgnbd` (days).
    """
    return _p_alive(params, *summary_arrays(frequency, recency, T))


def _p_alive(params: BGNBDParams, x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray
             ) -> np.ndarray:
    """:func:`p_alive` of summaries already checked (:func:`summary_arrays`)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    pos = x > 0
    bx1 = np.where(pos, b + x - 1, 1.0)
    # In log space: (r + x) * log-ratio overflows a plain power for very frequent buyers.
    log_odds_dead = (
        np.log(a) - np.log(bx1) + (r + x) * (np.log(alpha + big_t) - np.log(alpha + t_x))
    )
    return np.where(pos, expit(-log_odds_dead), 1.0)


#: Relative size of the tail left out of the series of :func:`_purchases_if_alive`.
_SERIES_RTOL = 1e-16
#: Terms added between two convergence checks (and rescalings) of that series.
_CHECK_EVERY = 8
#: Refuse a window in which a customer who never drops out would buy more than this many times on
#: average (the series needs about that many terms): a sign of ``t`` in the wrong unit.
_MOST_PURCHASES = 1e7
#: Rescale the series' probabilities when they grow past this (they are kept relative to a
#: per-row scale, since P(N = 0) underflows for frequent buyers).
_RESCALE_ABOVE = 1e200


def _purchases_if_alive(params: BGNBDParams, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Expected purchases in ``(T, T + t]`` of a customer alive at ``T``, with
    ``z = t / (alpha + T + t)``, as a series of positive terms.

    Given the data and alive at ``T``, the rate is ``Gamma(r + x, alpha + T)`` and the drop-out
    probability ``Beta(a, b + x)``, independently. Had the customer never dropped out, the
    purchases in the window would be ``N ~ NegBin(r + x, z)``; of those, the first ``n`` count if
    the customer survives the ones before, so the expectation is ``sum_n P(N = n) R(n)`` with
    ``R(n) = sum_{k<n} rho_k`` and ``rho_k = (b + x)_k / (a + b + x)_k`` the chance of surviving
    ``k`` purchases. Every term is positive: no cancellation, no hypergeometric function, and
    ``a = 1`` is not special. The closed form (Fader, Hardie & Lee 2005, eq. 10) is the same sum,
    ``(a+b+x-1)/(a-1) * [1 - (1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z)]``, but it cancels
    catastrophically near ``a = 1`` or for a large ``b``, and overflows for a large ``a`` (fits
    on little history reach ``a, b > 1e6`` when every customer drops out alike).

    The sum stops when the geometric bound of what is left falls below ``_SERIES_RTOL`` of the
    total: about the number of purchases ``N`` may take, tens of terms for daily data, more for
    customers expected to buy hundreds of times in the window. Raises ``ValueError`` when some
    customer's window would need more than ``_MOST_PURCHASES`` terms.
    """
    a = params.a
    shape = np.broadcast(x, z).shape
    if (len(shape) == 1 and np.shape(x) == np.shape(z) == shape
            and getattr(x, "dtype", None) == getattr(z, "dtype", None) == np.float64):
        s, big_b = params.r + x, params.b + x  # new arrays already (one customer: no copies)
    else:
        s = np.array(np.broadcast_to(params.r + x, shape), dtype="float64").ravel()
        big_b = np.array(np.broadcast_to(params.b + x, shape), dtype="float64").ravel()
        z = np.array(np.broadcast_to(z, shape), dtype="float64").ravel()
    out = np.zeros(s.size)
    rows = np.flatnonzero(z > 0)  # t = 0: no purchases
    s, big_b, z = s[rows], big_b[rows], z[rows]
    with np.errstate(divide="ignore"):
        most = np.max(s * z / (1 - z), initial=0.0)  # the largest mean of N
    if not most <= _MOST_PURCHASES:
        raise ValueError(f"a customer would be expected to buy {most:.3g} times in the window "
                         f"(at most {_MOST_PURCHASES:.0e}): is t in the unit alpha was fitted in?")
    log_scale = s * np.log1p(-z)  # P(N = n) = exp(log_scale) * pmf
    if rows.size <= _ROW_BY_ROW:
        # The same sums row by row in Python floats (the same correctly rounded operations in
        # the same order, so the same bits): for a few rows NumPy's cost per operation is most
        # of the work.
        totals = np.empty(rows.size)
        for k, (sk, bk, zk, lk) in enumerate(zip(s.tolist(), big_b.tolist(), z.tolist(),
                                                  log_scale.tolist(), strict=True)):
            totals[k], log_scale[k] = _series_one(a, sk, bk, zk, lk)
        out[rows] = totals * np.exp(log_scale)
        return out.reshape(shape)
    pmf = np.ones(rows.size)
    rho = np.ones(rows.size)
    cum = np.zeros(rows.size)  # R(n)
    total = np.zeros(rows.size)
    n = 0
    while rows.size:
        pmf, rho, cum, total, n = _terms(a, s, big_b, z, pmf, rho, cum, total, n)
        # Past the mode the ratios q = P(N = m + 1) / P(N = m) = (s + m) z / (m + 1) fall, so
        # the rest is at most sum_j pmf q^j (R(n) + j) = pmf q / (1 - q) (R(n) + 1 / (1 - q)).
        q = (s + n) * z / (n + 1)
        past_mode = q < 1
        tail = np.full(rows.size, np.inf)
        qm = q[past_mode]
        tail[past_mode] = pmf[past_mode] * qm / (1 - qm) * (cum[past_mode] + 1 / (1 - qm))
        large = pmf > _RESCALE_ABOVE
        if large.any():
            pmf[large] /= _RESCALE_ABOVE
            total[large] /= _RESCALE_ABOVE
            log_scale[large] += np.log(_RESCALE_ABOVE)
        done = tail <= _SERIES_RTOL * total
        if done.any():
            out[rows[done]] = total[done] * np.exp(log_scale[done])
            keep = ~done
            rows, s, big_b, z, log_scale, pmf, rho, cum, total = (
                v[keep] for v in (rows, s, big_b, z, log_scale, pmf, rho, cum, total))
    return out.reshape(shape)


def _terms(a, s, big_b, z, pmf, rho, cum, total, n):
    """The series' next :data:`_CHECK_EVERY` terms added to ``total``: on arrays in place, on
    floats (one row) by the same operations in the same order."""
    for _ in range(_CHECK_EVERY):
        cum += rho
        rho *= (big_b + n) / (a + big_b + n)
        pmf *= (s + n) * (z / (n + 1))
        total += pmf * cum
        n += 1
    return pmf, rho, cum, total, n


#: Up to this many customers :func:`_purchases_if_alive` sums their series one by one.
_ROW_BY_ROW = 8


def _series_one(a: float, s: float, big_b: float, z: float, log_scale: float
                ) -> tuple[float, float]:
    """One row of :func:`_purchases_if_alive`'s series: its total and log scale, by the same
    operations as the vectorized loop."""
    pmf, rho, cum, total, n = 1.0, 1.0, 0.0, 0.0, 0
    while True:
        pmf, rho, cum, total, n = _terms(a, s, big_b, z, pmf, rho, cum, total, n)
        q = (s + n) * z / (n + 1)
        tail = pmf * q / (1 - q) * (cum + 1 / (1 - q)) if q < 1 else math.inf
        if pmf > _RESCALE_ABOVE:
            pmf /= _RESCALE_ABOVE
            total /= _RESCALE_ABOVE
            log_scale += _LOG_RESCALE
        if tail <= _SERIES_RTOL * total:
            return total, log_scale


_LOG_RESCALE = float(np.log(_RESCALE_ABOVE))


def predictions(params: BGNBDParams, t, frequency, recency, T
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(p_alive, expected_purchases, p_no_purchase)`` over a horizon ``t``, with the inputs
    checked and ``P(alive)`` computed once: the values of the three functions."""
    x, t_x, big_t = summary_arrays(frequency, recency, T)
    t = checked_array(t, "t")
    x, t_x, big_t, t = np.broadcast_arrays(x, t_x, big_t, t)
    return summary_predictions(params, t, x, t_x, big_t)


def summary_predictions(params: BGNBDParams, t: float | np.ndarray, x: np.ndarray,
                        t_x: np.ndarray, big_t: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`predictions` of summaries known to be valid (float64 arrays of one shape, whole
    ``x >= 0``, ``0 <= t_x <= big_t``, ``t >= 0``), without checking them: for callers that
    made the summaries themselves (the BTYD feature family), where the checks would cost more
    than the formulas for one customer."""
    alive = _p_alive(params, x, t_x, big_t)
    z = t / (params.alpha + big_t + t)
    expected = _purchases_if_alive(params, x, z) * alive
    alpha_t = params.alpha + big_t
    quiet = np.exp((params.r + x) * (np.log(alpha_t) - np.log(alpha_t + t)))
    return alive, expected, (1 - alive) + alive * quiet


def expected_purchases(params: BGNBDParams, t, frequency, recency, T) -> np.ndarray:
    """Conditional expected number of purchases in ``(T, T + t]``, i.e. in ``(as_of, as_of + t]``.

    Parameters
    ----------
    params
        Fitted parameters (``alpha`` in the unit of ``t``, days in churnkit).
    t
        Horizon length, days; scalar or array broadcastable with the customers.
    frequency, recency, T
        As for :func:`fit_bgnbd` (days).

    Notes
    -----
    Fader, Hardie & Lee (2005), eq. 10: ``P(alive)`` times the purchases of a customer alive at
    ``T``, summed as a series of positive terms (:func:`_purchases_if_alive`), which stays
    accurate where the closed form's hypergeometric function cancels or overflows (``a`` near 1,
    very large ``a`` or ``b``).
    """
    x, t_x, big_t = summary_arrays(frequency, recency, T)
    t = checked_array(t, "t")
    x, t_x, big_t, t = np.broadcast_arrays(x, t_x, big_t, t)
    z = t / (params.alpha + big_t + t)
    return _purchases_if_alive(params, x, z) * p_alive(params, x, t_x, big_t)


def p_no_purchase(params: BGNBDParams, t, frequency, recency, T) -> np.ndarray:
    """Conditional probability of no purchase at all in ``(T, T + t]`` (``t`` in days).

    A dead customer buys nothing. An alive one has, given the data, a purchase rate distributed
    ``Gamma(r + x, alpha + T)`` (the drop-out terms factor out of the posterior), and buys nothing
    in ``t`` with probability ``exp(-lambda t)``, whose posterior mean is
    ``((alpha + T) / (alpha + T + t))^(r + x)``. Hence
    ``P0 = (1 - P_alive) + P_alive * ((alpha + T) / (alpha + T + t))^(r + x)``: in [0, 1],
    non-increasing in ``t``, 1 at ``t = 0``.
    """
    x, t_x, big_t = summary_arrays(frequency, recency, T)
    t = checked_array(t, "t")
    x, t_x, big_t, t = np.broadcast_arrays(x, t_x, big_t, t)
    alive = p_alive(params, x, t_x, big_t)
    alpha_t = params.alpha + big_t
    quiet = np.exp((params.r + x) * (np.log(alpha_t) - np.log(alpha_t + t)))
    return (1 - alive) + alive * quiet
