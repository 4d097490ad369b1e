"""The BG/NBD likelihood: input checks, the per-customer terms and the analytic gradient.

:func:`churnkit.stats.btyd.fit_bgnbd` maximizes :func:`loglik_and_grad` over customers grouped
by their ``(frequency, recency, T)`` summary (:func:`group_triples`). Units as in
:mod:`churnkit.stats.btyd` (days in churnkit; the formulas are unit-agnostic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import betaln, digamma, gammaln

# ---------------------------------------------------------------------------------------------
# input checks


def checked_array(values: object, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype="float64")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has missing or infinite values")
    if np.any(arr < 0):
        raise ValueError(f"{name} has negative values")
    return arr


def summary_arrays(
    frequency: object, recency: object, T: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = checked_array(frequency, "frequency")
    t_x = checked_array(recency, "recency")
    big_t = checked_array(T, "T")
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
class Summaries:
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
    def build(cls, x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray, w: np.ndarray) -> Summaries:
        ux, x_idx = np.unique(x, return_inverse=True)
        w_per_x = np.bincount(x_idx, weights=w, minlength=ux.size)
        return cls(x, t_x, big_t, w, ux, x_idx, w_per_x)


def per_x_terms(theta: np.ndarray, ux: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A1 and the parameter-only parts of A2, A3 (see :func:`log_terms`), per distinct x."""
    r, alpha, a, b = theta
    pos = ux > 0
    bx1 = np.where(pos, b + ux - 1, 1.0)  # b + x - 1 only means something for x >= 1
    lnb_ab = betaln(a, b)
    a1 = gammaln(r + ux) - gammaln(r) + r * np.log(alpha)
    c2 = betaln(a, b + ux) - lnb_ab
    c3 = np.where(pos, betaln(a + 1, bx1) - lnb_ab, -np.inf)  # the term is absent for x = 0
    return a1, c2, c3


def log_terms(theta: np.ndarray, data: Summaries) -> tuple[np.ndarray, ...]:
    """Per-row pieces of the log-likelihood (Fader, Hardie & Lee 2005, eq. 6).

    log L = A1 + log(exp(A2) + [x > 0] exp(A3)), with
    A1 = lnG(r+x) - lnG(r) + r ln(alpha),
    A2 = lnB(a, b+x) - lnB(a, b) - (r+x) ln(alpha+T),
    A3 = lnB(a+1, b+x-1) - lnB(a, b) - (r+x) ln(alpha+t_x),
    summed in log space (see :func:`log_mixture`), so neither large x nor long T underflows.
    """
    r, alpha = theta[0], theta[1]
    a1_u, c2_u, c3_u = per_x_terms(theta, data.ux)
    rx = r + data.x
    log_at = np.log(alpha + data.big_t)
    log_atx = np.log(alpha + data.t_x)
    a2 = c2_u[data.x_idx] - rx * log_at
    a3 = c3_u[data.x_idx] - rx * log_atx
    return a1_u, a2, a3, rx, log_at, log_atx


def dot(u: np.ndarray, v: np.ndarray) -> float:
    """The inner product of two vectors."""
    # einsum instead of ``@``: on long vectors it skips OpenBLAS's thread hand-off, which is
    # slow on a machine whose cores are shared.
    return float(np.einsum("i,i->", u, v))


def log_mixture(a2: np.ndarray, a3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``log(exp(a2) + exp(a3)) - a2`` and the weight ``exp(a3) / (exp(a2) + exp(a3))``.

    Stable for any difference (``a3 = -inf`` gives 0 and 0) with one ``exp`` and one ``log1p``,
    cheaper than ``np.logaddexp`` followed by ``expit``.
    """
    d = a3 - a2
    u = np.exp(-np.abs(d))
    log_mix = np.maximum(d, 0.0) + np.log1p(u)
    p3 = np.where(d >= 0, 1.0, u) / (1.0 + u)
    return log_mix, p3


def loglik_and_grad(theta: np.ndarray, data: Summaries) -> tuple[float, np.ndarray]:
    """Weighted sum of log-likelihoods and its gradient with respect to (r, alpha, a, b)."""
    r, alpha, a, b = theta
    a1_u, a2, a3, rx, log_at, log_atx = log_terms(theta, data)
    w = data.w
    log_mix, p3 = log_mixture(a2, a3)
    ll = float(a1_u @ data.w_per_x) + dot(w, a2 + log_mix)

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

    g_r = d_a1_dr @ data.w_per_x - dot(wp2, log_at) - dot(wp3, log_atx)
    g_alpha = r / alpha * data.w_per_x.sum() - dot(
        rx, wp2 / (alpha + data.big_t) + wp3 / (alpha + data.t_x)
    )
    g_a = d_a2_da @ wp2_x + d_a3_da @ wp3_x
    g_b = d_a2_db @ wp2_x + d_a3_db @ wp3_x
    return ll, np.array([g_r, g_alpha, g_a, g_b])


def group_triples(
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
