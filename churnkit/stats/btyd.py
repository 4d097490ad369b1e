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
digamma terms once per distinct ``x``: a million customers fit in about a second.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

_PARAM_NAMES = ("r", "alpha", "a", "b")
#: Log-parameter bounds for the optimizer: exp(+-20) keeps every term finite while leaving room
#: for the degenerate optima (b -> infinity when nobody drops out).
_LOG_BOUNDS = (-20.0, 20.0)
_DAY = pd.Timedelta(days=1)


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


# ---------------------------------------------------------------------------------------------
# input checks


def _as_array(values: object, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype="float64")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has missing or infinite values")
    if np.any(arr < 0):
        raise ValueError(f"{name} has negative values")
    return arr


def _summary_arrays(
    frequency: object, recency: object, T: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = _as_array(frequency, "frequency")
    t_x = _as_array(recency, "recency")
    big_t = _as_array(T, "T")
    if np.any(x != np.floor(x)):
        raise ValueError("frequency must be whole numbers (repeat purchases)")
    x, t_x, big_t = np.broadcast_arrays(x, t_x, big_t)
    # A small tolerance: T and recency often come from separately rounded floats.
    if np.any(t_x > big_t * (1 + 1e-9) + 1e-9):
        raise ValueError("recency is larger than T for some customers (recency <= T is required)")
    return x, t_x, big_t


# ---------------------------------------------------------------------------------------------
# likelihood


@dataclass(frozen=True)
class _Summaries:
    """Rows (customers, or distinct triples) prepared for the likelihood.

    ``ux`` are the distinct frequencies and ``x_idx`` maps each row to its entry in ``ux``: every
    gamma/beta/digamma term depends on x only, so it is computed once per distinct x, and its
    contribution to the gradient is summed per x with ``bincount`` instead of gathered per row.
    """

    x: np.ndarray
    t_x: np.ndarray
    big_t: np.ndarray
    w: np.ndarray
    ux: np.ndarray
    x_idx: np.ndarray
    w_per_x: np.ndarray

    @classmethod
    def build(cls, x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray, w: np.ndarray) -> _Summaries:
        ux, x_idx = np.unique(x, return_inverse=True)
        w_per_x = np.bincount(x_idx, weights=w, minlength=ux.size)
        return cls(x, t_x, big_t, w, ux, x_idx, w_per_x)


def _per_x_terms(theta: np.ndarray, ux: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A1 and the parameter-only parts of A2, A3 (see :func:`_terms`), per distinct x."""
    r, alpha, a, b = theta
    pos = ux > 0
    bx1 = np.where(pos, b + ux - 1, 1.0)  # b + x - 1 only means something for x >= 1
    lnb_ab = betaln(a, b)
    a1 = gammaln(r + ux) - gammaln(r) + r * np.log(alpha)
    c2 = betaln(a, b + ux) - lnb_ab
    c3 = np.where(pos, betaln(a + 1, bx1) - lnb_ab, -np.inf)  # the term is absent for x = 0
    return a1, c2, c3


def _terms(theta: np.ndarray, data: _Summaries) -> tuple[np.ndarray, ...]:
    """Per-row pieces of the log-likelihood (Fader, Hardie & Lee 2005, eq. 6).

    log L = A1 + log(exp(A2) + [x > 0] exp(A3)), with
    A1 = lnG(r+x) - lnG(r) + r ln(alpha),
    A2 = lnB(a, b+x) - lnB(a, b) - (r+x) ln(alpha+T),
    A3 = lnB(a+1, b+x-1) - lnB(a, b) - (r+x) ln(alpha+t_x),
    summed in log space (see :func:`_mixture`), so neither large x nor long T underflows.
    """
    r, alpha = theta[0], theta[1]
    a1_u, c2_u, c3_u = _per_x_terms(theta, data.ux)
    rx = r + data.x
    log_at = np.log(alpha + data.big_t)
    log_atx = np.log(alpha + data.t_x)
    a2 = c2_u[data.x_idx] - rx * log_at
    a3 = c3_u[data.x_idx] - rx * log_atx
    return a1_u, a2, a3, rx, log_at, log_atx


def _dot(u: np.ndarray, v: np.ndarray) -> float:
    # einsum instead of ``@``: on long vectors it skips OpenBLAS's thread hand-off, which on the
    # 2 shared cores of the build machine made each dot 20x slower (measured: 7 ms vs 0.4 ms).
    return float(np.einsum("i,i->", u, v))


def _mixture(a2: np.ndarray, a3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log(exp(a2) + exp(a3)) - a2`` and the weight ``exp(a3) / (exp(a2) + exp(a3))``.

    Stable for any difference (``a3 = -inf`` gives 0 and 0) with one ``exp`` and one ``log1p``,
    about twice as fast as ``np.logaddexp`` followed by ``expit``.
    """
    d = a3 - a2
    u = np.exp(-np.abs(d))
    log_mix = np.maximum(d, 0.0) + np.log1p(u)
    p3 = np.where(d >= 0, 1.0, u) / (1.0 + u)
    return log_mix, p3


def _loglik_and_grad(theta: np.ndarray, data: _Summaries) -> tuple[float, np.ndarray]:
    """Weighted sum of log-likelihoods and its gradient with respect to (r, alpha, a, b)."""
    r, alpha, a, b = theta
    a1_u, a2, a3, rx, log_at, log_atx = _terms(theta, data)
    w = data.w
    log_mix, p3 = _mixture(a2, a3)
    ll = float(a1_u @ data.w_per_x) + _dot(w, a2 + log_mix)

    # Posterior weight of each term; the A3 term is absent (weight 0) where x = 0.
    wp3 = w * p3
    wp2 = w - wp3
    ux, pos = data.ux, data.ux > 0
    bx1 = np.where(pos, b + ux - 1, 1.0)
    psi_ab, psi_abx = digamma(a + b), digamma(a + b + ux)
    d_a1_dr = digamma(r + ux) - digamma(r) + np.log(alpha)
    d_a2_da = psi_ab - psi_abx
    d_a2_db = digamma(b + ux) - psi_abx - digamma(b) + psi_ab
    d_a3_da = digamma(a + 1) - psi_abx - digamma(a) + psi_ab
    d_a3_db = np.where(pos, digamma(bx1) - psi_abx - digamma(b) + psi_ab, 0.0)
    wp2_x = np.bincount(data.x_idx, weights=wp2, minlength=ux.size)
    wp3_x = np.bincount(data.x_idx, weights=wp3, minlength=ux.size)

    g_r = d_a1_dr @ data.w_per_x - _dot(wp2, log_at) - _dot(wp3, log_atx)
    g_alpha = r / alpha * data.w_per_x.sum() - _dot(
        rx, wp2 / (alpha + data.big_t) + wp3 / (alpha + data.t_x)
    )
    g_a = d_a2_da @ wp2_x + d_a3_da @ wp3_x
    g_b = d_a2_db @ wp2_x + d_a3_db @ wp3_x
    return ll, np.array([g_r, g_alpha, g_a, g_b])


def log_likelihood(params: BGNBDParams, frequency, recency, T) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood of ``(frequency, recency, T)`` (any consistent unit)."""
    x, t_x, big_t = _summary_arrays(frequency, recency, T)
    data = _Summaries.build(x.ravel(), t_x.ravel(), big_t.ravel(), np.ones(x.size))
    theta = np.array([params.r, params.alpha, params.a, params.b])
    a1_u, a2, a3, *_ = _terms(theta, data)
    return (a1_u[data.x_idx] + a2 + _mixture(a2, a3)[0]).reshape(x.shape)


def _group_triples(
    x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Collapse identical (x, t_x, T) rows into one row carrying the summed weight."""
    # recency is irrelevant when x = 0; zeroing it lets those customers group on T alone.
    t_x = np.where(x > 0, t_x, 0.0)
    frame = pd.DataFrame({"x": x, "t_x": t_x, "T": big_t, "w": w})
    grouped = frame.groupby(["x", "t_x", "T"], sort=False, observed=True)["w"].sum()
    idx = grouped.index
    return (
        idx.get_level_values("x").to_numpy(dtype="float64"),
        idx.get_level_values("t_x").to_numpy(dtype="float64"),
        idx.get_level_values("T").to_numpy(dtype="float64"),
        grouped.to_numpy(dtype="float64"),
    )


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
    x, t_x, big_t = _summary_arrays(frequency, recency, T)
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

    x, t_x, big_t, w = _group_triples(x, t_x, big_t, w)
    total = w.sum()
    if total <= 0:
        raise ValueError("weights sum to zero")
    w = w / total  # mean log-likelihood: the scale L-BFGS-B's tolerances expect
    data = _Summaries.build(x, t_x, big_t, w)

    def objective(log_theta: np.ndarray) -> tuple[float, np.ndarray]:
        theta = np.exp(log_theta)
        ll, grad = _loglik_and_grad(theta, data)
        value = -ll + penalizer * float(theta @ theta)
        d_theta = -grad + 2 * penalizer * theta
        return value, d_theta * theta  # chain rule for the log-parameters

    mean_t, mean_x = _dot(w, big_t), _dot(w, x)
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
    x, t_x, big_t = _summary_arrays(frequency, recency, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    pos = x > 0
    bx1 = np.where(pos, b + x - 1, 1.0)
    # In log space: (r + x) * log-ratio overflows a plain power for very frequent buyers.
    log_odds_dead = (
        np.log(a) - np.log(bx1) + (r + x) * (np.log(alpha + big_t) - np.log(alpha + t_x))
    )
    return np.where(pos, expit(-log_odds_dead), 1.0)


def _hyp_term(params: BGNBDParams, a: float, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``(a+b+x-1)/(a-1) * [1 - (1-z)^(a-1) * 2F1(a+b-1-r, a-1; a+b+x-1; z)]``.

    The textbook form ``1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)`` equals this
    by Euler's transformation; this form keeps the hypergeometric parameters bounded as x grows,
    where the textbook one overflows.
    """
    r, b = params.r, params.b
    c = a + b + x - 1
    hyp = hyp2f1(a + b - 1 - r, a - 1, c, z)
    return c / (a - 1) * (1 - np.exp((a - 1) * np.log1p(-z)) * hyp)


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
    Fader, Hardie & Lee (2005), eq. 10. At ``a = 1`` the formula is 0/0; there it is evaluated
    as the mean of ``a = 1 +- 1e-4``, which cancels the first-order error.
    """
    x, t_x, big_t = _summary_arrays(frequency, recency, T)
    t = _as_array(t, "t")
    x, t_x, big_t, t = np.broadcast_arrays(x, t_x, big_t, t)
    z = t / (params.alpha + big_t + t)
    a = params.a
    if abs(a - 1) < 1e-4:
        term = 0.5 * (_hyp_term(params, 1 - 1e-4, x, z) + _hyp_term(params, 1 + 1e-4, x, z))
    else:
        term = _hyp_term(params, a, x, z)
    return term * p_alive(params, x, t_x, big_t)


def p_no_purchase(params: BGNBDParams, t, frequency, recency, T) -> np.ndarray:
    """Conditional probability of no purchase at all in ``(T, T + t]`` (``t`` in days).

    A dead customer buys nothing. An alive one has, given the data, a purchase rate distributed
    ``Gamma(r + x, alpha + T)`` (the drop-out terms factor out of the posterior), and buys nothing
    in ``t`` with probability ``exp(-lambda t)``, whose posterior mean is
    ``((alpha + T) / (alpha + T + t))^(r + x)``. Hence
    ``P0 = (1 - P_alive) + P_alive * ((alpha + T) / (alpha + T + t))^(r + x)``: in [0, 1],
    non-increasing in ``t``, 1 at ``t = 0``.
    """
    x, t_x, big_t = _summary_arrays(frequency, recency, T)
    t = _as_array(t, "t")
    x, t_x, big_t, t = np.broadcast_arrays(x, t_x, big_t, t)
    alive = p_alive(params, x, t_x, big_t)
    alpha_t = params.alpha + big_t
    quiet = np.exp((params.r + x) * (np.log(alpha_t) - np.log(alpha_t + t)))
    return (1 - alive) + alive * quiet
