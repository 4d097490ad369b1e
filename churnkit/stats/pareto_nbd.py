"""The Pareto/NBD model of repeat purchases (Schmittlein, Morrison & Colombo 1987), the other
classic BTYD model beside BG/NBD (:mod:`churnkit.stats.btyd`).

While alive a customer buys at a Poisson rate ``lambda ~ Gamma(r, alpha)`` and stays alive for
an exponential time of rate ``mu ~ Gamma(s, beta)`` (rates per day in churnkit). A customer is
summarized as in BG/NBD: ``x`` repeat purchases, the last at ``t_x``, observed for ``T``
(days since the first purchase). The likelihood and P(alive) follow Fader, Hardie & Lee
(2005), "A note on deriving the Pareto/NBD model and related expressions", with the Gauss
hypergeometric function in the form that converges (``alpha >= beta`` or not) and every term in
log space.

P(no purchase in ``(T, T + t]``): a dead customer buys nothing; an alive one has, given the
data, independent posteriors ``lambda ~ Gamma(r + x, alpha + T)`` and ``mu ~ Gamma(s, beta +
T)``, and the density of a first purchase at ``u`` before dropping out is
``E[lambda exp(-(lambda + mu) u)]``, a closed form; its integral over ``[0, t]`` is taken by
Gauss-Legendre quadrature (smooth, decreasing integrand).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln, hyp2f1

from churnkit.stats.btyd_likelihood import summary_arrays

#: Gauss-Legendre nodes for the first-purchase integral (its integrand is smooth and monotone).
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(48)


@dataclass(frozen=True)
class ParetoNBDParams:
    """Population parameters: purchase rate ``Gamma(r, alpha)``, drop-out rate ``Gamma(s,
    beta)`` (``alpha``, ``beta`` in the unit of the times, days in churnkit)."""

    r: float
    alpha: float
    s: float
    beta: float

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"Pareto/NBD parameter {name} must be positive, got {value}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _log_terms(params: ParetoNBDParams, x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """``log`` of the likelihood's two parts (without the constant ``Gamma`` and power terms):
    alive at ``T`` (``(alpha + T)^-(r+x) (beta + T)^-s``) and dropped out in ``(t_x, T]``
    (``s / (r + s + x) * A0``)."""
    r, alpha, s, beta = params.r, params.alpha, params.s, params.beta
    alive = -(r + x) * np.log(alpha + big_t) - s * np.log(beta + big_t)
    a = r + s + x
    if alpha >= beta:
        b, base = s + 1, alpha
    else:
        b, base = r + x, beta
    diff = abs(alpha - beta)
    at_tx = np.log(hyp2f1(a, b, a + 1, diff / (base + t_x))) - a * np.log(base + t_x)
    at_t = np.log(hyp2f1(a, b, a + 1, diff / (base + big_t))) - a * np.log(base + big_t)
    # A0 = exp(at_tx) - exp(at_t) >= 0 (t_x <= T); 0 when the customer bought at T.
    with np.errstate(divide="ignore"):
        gone = at_tx + np.log1p(-np.exp(np.minimum(at_t - at_tx, 0.0)))
    return alive, np.log(s / (r + s + x)) + gone


def log_likelihood(params: ParetoNBDParams, frequency, recency, T) -> np.ndarray:
    """Each customer's log-likelihood (``frequency`` repeat purchases, the last at ``recency``,
    observed for ``T``)."""
    x, t_x, big_t = summary_arrays(frequency, recency, T)
    alive, gone = _log_terms(params, x, t_x, big_t)
    return (gammaln(params.r + x) - gammaln(params.r) + params.r * np.log(params.alpha)
            + params.s * np.log(params.beta) + np.logaddexp(alive, gone))


def fit_pareto_nbd(frequency, recency, T, *, max_customers: int | None = 100_000,
                   random_state: int = 0) -> ParetoNBDParams:
    """Maximum-likelihood parameters (L-BFGS-B on the log parameters, customers grouped by
    their summary); at most ``max_customers`` customers, a seeded random sample of them (the
    likelihood's hypergeometric terms cost more than BG/NBD's)."""
    x, t_x, big_t = summary_arrays(frequency, recency, T)
    if x.size == 0:
        raise ValueError("Pareto/NBD fit needs at least one customer")
    if max_customers is not None and x.size > max_customers:
        pick = np.random.default_rng(random_state).choice(x.size, max_customers, replace=False)
        x, t_x, big_t = x[pick], t_x[pick], big_t[pick]
    rows, weight = np.unique(np.column_stack([x, t_x, big_t]), axis=0, return_counts=True)
    x, t_x, big_t = rows.T
    scale = max(float(np.mean(big_t)), 1e-9)  # start near the data's own time scale

    def objective(theta: np.ndarray) -> float:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            ll = log_likelihood(ParetoNBDParams(*np.exp(theta)), x, t_x, big_t)
        total = float(np.dot(weight, ll))
        return -total / weight.sum() if np.isfinite(total) else 1e10

    start = np.log([0.5, scale, 0.5, scale])
    result = minimize(objective, start, method="L-BFGS-B", bounds=[(-12, 12)] * 4)
    if not np.all(np.isfinite(result.x)):
        raise RuntimeError(f"Pareto/NBD fit did not converge: {result.message}")
    return ParetoNBDParams(*(float(v) for v in np.exp(result.x)))


def p_alive(params: ParetoNBDParams, frequency, recency, T) -> np.ndarray:
    """Probability that each customer is still alive at ``T``."""
    return _p_alive(params, *summary_arrays(frequency, recency, T))


def _p_alive(params: ParetoNBDParams, x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray
             ) -> np.ndarray:
    """:func:`p_alive` of summaries already checked (:func:`summary_arrays`)."""
    alive, gone = _log_terms(params, x, t_x, big_t)
    return 1.0 / (1.0 + np.exp(gone - alive))


def p_purchase_if_alive(params: ParetoNBDParams, t, frequency, T) -> np.ndarray:
    """Probability of at least one purchase in ``(T, T + t]`` for a customer alive at ``T``:
    ``int_0^t (r+x)/(alpha+T) ((alpha+T)/(alpha+T+u))^(r+x+1) ((beta+T)/(beta+T+u))^s du``."""
    x = np.asarray(frequency, dtype=float)
    big_t = np.asarray(T, dtype=float)
    t = np.asarray(t, dtype=float)
    shape = np.broadcast_shapes(x.shape, big_t.shape, t.shape)
    x, big_t, t = (v.ravel() for v in np.broadcast_arrays(x, big_t, t))
    out = np.empty(len(x))
    # Customers in blocks: the (customers, nodes) temporaries of a whole base are hundreds of
    # MB each (paid in page faults); a block's stay in cache. Every value is computed row by
    # row, so the blocks give the same bits as one pass.
    for lo in range(0, len(x), _BLOCK):
        block = slice(lo, lo + _BLOCK)
        out[block] = _purchase_integral(params, t[block], x[block], big_t[block])
    return out.reshape(shape)


#: Customers per block of :func:`p_purchase_if_alive` (a block's temporaries: about 1.5 MB).
_BLOCK = 4096


def _purchase_integral(params: ParetoNBDParams, t: np.ndarray, x: np.ndarray,
                       big_t: np.ndarray) -> np.ndarray:
    a_t, b_t = params.alpha + big_t, params.beta + big_t
    u = (0.5 * t)[..., None] * (_NODES + 1.0)  # nodes mapped to [0, t]
    k = (params.r + x)[..., None]
    log_density = (np.log(k) - np.log(a_t)[..., None]
                   - (k + 1) * np.log1p(u / a_t[..., None])
                   - params.s * np.log1p(u / b_t[..., None]))
    # A sum along each row (not a matrix product, whose blocking may depend on the number of
    # rows): a customer gets the same bits alone or among many.
    return 0.5 * t * np.sum(np.exp(log_density) * _WEIGHTS, axis=-1)


def p_no_purchase(params: ParetoNBDParams, t, frequency, recency, T) -> np.ndarray:
    """Conditional probability of no purchase in ``(T, T + t]``: ``1 - P(alive) * P(a purchase
    before dropping out | alive)``."""
    return predictions(params, t, frequency, recency, T)[1]


def predictions(params: ParetoNBDParams, t, frequency, recency, T
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(p_alive, p_no_purchase)`` over a horizon ``t``, with the inputs checked once and
    ``P(alive)`` computed once: the values of the two functions."""
    x, t_x, big_t = summary_arrays(frequency, recency, T)
    return summary_predictions(params, t, x, t_x, big_t)


def summary_predictions(params: ParetoNBDParams, t: float | np.ndarray, x: np.ndarray,
                        t_x: np.ndarray, big_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`predictions` of summaries known to be valid (float64 arrays of one shape, whole
    ``x >= 0``, ``0 <= t_x <= big_t``), without checking them (see
    :func:`churnkit.stats.btyd.summary_predictions`)."""
    alive = _p_alive(params, x, t_x, big_t)
    if x.ndim == 1 and len(x) <= _BLOCK:  # one block of rows: the integral itself
        purchase = _purchase_integral(params, np.full(len(x), t, dtype=float), x, big_t)
    else:
        purchase = p_purchase_if_alive(params, t, x, big_t)
    return alive, 1.0 - alive * purchase


__all__ = ["ParetoNBDParams", "fit_pareto_nbd", "log_likelihood", "p_alive", "p_no_purchase",
           "p_purchase_if_alive", "predictions",
           "summary_predictions"]
