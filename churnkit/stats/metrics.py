"""Classification metrics with bootstrap confidence intervals, fast enough for 10^5-10^6 rows.

Every metric is computed with per-row weights, so a bootstrap resample is a row of weights (how
often :func:`churnkit.stats.bootstrap.resample_counts` drew each customer) over one fixed sort of
the scores (no re-sorting per resample). Paired comparisons (model minus baseline) use the same
resamples for both, which is what makes their difference's interval tight and honest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from churnkit.stats.bootstrap import percentile_interval, resample_counts

EPS = 1e-15


def _groups(score: np.ndarray, descending: bool) -> tuple[np.ndarray, np.ndarray]:
    """Sort order and the start of each run of tied scores in that order."""
    order = np.argsort(-score if descending else score, kind="stable")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    return order, starts


def roc_auc(y: np.ndarray, score: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """ROC-AUC with ties counted half; ``weights`` of shape (n,) or (B, n) give B values."""
    y = np.asarray(y, dtype=bool)
    order, starts = _groups(np.asarray(score, dtype=float), descending=False)
    w = np.ones((1, len(y))) if weights is None else np.atleast_2d(weights)
    pos = np.add.reduceat((w * y)[:, order], starts, axis=1)
    neg = np.add.reduceat((w * ~y)[:, order], starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    total = pos.sum(axis=1) * neg.sum(axis=1)
    auc = (pos * (neg_below + 0.5 * neg)).sum(axis=1) / np.maximum(total, EPS)
    return auc if weights is not None and np.ndim(weights) == 2 else auc[0]


def average_precision(y: np.ndarray, score: np.ndarray,
                      weights: np.ndarray | None = None) -> np.ndarray:
    """PR-AUC as average precision (step-wise, ties as one threshold), weighted like roc_auc."""
    y = np.asarray(y, dtype=bool)
    order, starts = _groups(np.asarray(score, dtype=float), descending=True)
    w = np.ones((1, len(y))) if weights is None else np.atleast_2d(weights)
    tp = np.cumsum(np.add.reduceat((w * y)[:, order], starts, axis=1), axis=1)
    fp = np.cumsum(np.add.reduceat((w * ~y)[:, order], starts, axis=1), axis=1)
    precision = tp / np.maximum(tp + fp, EPS)
    recall_step = np.diff(np.c_[np.zeros(len(tp)), tp], axis=1) / np.maximum(tp[:, -1:], EPS)
    ap = (precision * recall_step).sum(axis=1)
    return ap if weights is not None and np.ndim(weights) == 2 else ap[0]


def brier(y: np.ndarray, p: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Mean squared error of probabilities (lower is better)."""
    err = (np.asarray(p, dtype=float) - np.asarray(y, dtype=float)) ** 2
    return _weighted_mean(err, weights)


def log_loss(y: np.ndarray, p: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Mean negative log-likelihood of probabilities, clipped at 1e-15 (lower is better)."""
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    y = np.asarray(y, dtype=float)
    return _weighted_mean(-(y * np.log(p) + (1 - y) * np.log1p(-p)), weights)


def top_decile_lift(y: np.ndarray, score: np.ndarray,
                    weights: np.ndarray | None = None) -> np.ndarray:
    """Churn rate among the 10% highest scores divided by the overall churn rate."""
    y = np.asarray(y, dtype=float)
    k = max(1, int(np.ceil(0.1 * len(y))))
    top = np.zeros(len(y), dtype=bool)
    top[np.argsort(-np.asarray(score, dtype=float), kind="stable")[:k]] = True
    w = np.ones((1, len(y))) if weights is None else np.atleast_2d(weights)
    rate_top = (w * y * top).sum(axis=1) / np.maximum((w * top).sum(axis=1), EPS)
    rate_all = (w * y).sum(axis=1) / np.maximum(w.sum(axis=1), EPS)
    lift = rate_top / np.maximum(rate_all, EPS)
    return lift if weights is not None and np.ndim(weights) == 2 else lift[0]


def _weighted_mean(values: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    if weights is None:
        return values.mean()
    w = np.atleast_2d(weights)
    out = (w * values).sum(axis=1) / np.maximum(w.sum(axis=1), EPS)
    return out if np.ndim(weights) == 2 else out[0]


#: name -> (function, higher is better, takes probabilities rather than any ranking score)
METRICS: dict[str, tuple[Callable, bool, bool]] = {
    "roc_auc": (roc_auc, True, False),
    "pr_auc": (average_precision, True, False),
    "brier": (brier, False, True),
    "log_loss": (log_loss, False, True),
    "top_decile_lift": (top_decile_lift, True, False),
}


@dataclass(frozen=True)
class Estimate:
    """A metric value with its bootstrap percentile interval."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.4f} [{self.low:.4f}, {self.high:.4f}]"


def evaluate_scores(
    y: np.ndarray,
    scores: Mapping[str, np.ndarray],
    *,
    n_boot: int = 200,
    random_state: int = 0,
    level: float = 0.95,
    chunk: int = 50,
) -> dict[str, dict[str, Estimate]]:
    """Every metric for every score column, with percentile bootstrap intervals.

    All scores share the same resamples, so :func:`paired_difference` on the returned draws is
    a paired bootstrap. Metrics that need probabilities are skipped for scores that are not in
    [0, 1]. Returns ``{score_name: {metric: Estimate}}``.
    """
    draws = bootstrap_draws(y, scores, n_boot=n_boot, random_state=random_state, chunk=chunk)
    out: dict[str, dict[str, Estimate]] = {}
    for name, by_metric in draws.items():
        out[name] = {}
        for metric, (point, sample) in by_metric.items():
            out[name][metric] = Estimate(float(point), *percentile_interval(sample, level))
    return out


def _ranking_metrics(y_sorted: np.ndarray, starts: np.ndarray, top: np.ndarray,
                     ws: np.ndarray) -> dict[str, np.ndarray]:
    """ROC-AUC, PR-AUC and top-decile lift from weights ``ws`` (B, n) already in ascending
    score order: one gather and one pass of group sums serve all three."""
    total = np.add.reduceat(ws, starts, axis=1)
    pos = np.add.reduceat(ws * y_sorted, starts, axis=1)
    neg = total - pos
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    auc = (pos * (neg_below + 0.5 * neg)).sum(axis=1) / np.maximum(n_pos * n_neg, EPS)
    tp = np.cumsum(pos[:, ::-1], axis=1)
    seen = np.cumsum(total[:, ::-1], axis=1)
    ap = (tp / np.maximum(seen, EPS) * pos[:, ::-1]).sum(axis=1) / np.maximum(n_pos, EPS)
    w_top = ws[:, top]
    rate_top = (w_top * y_sorted[top]).sum(axis=1) / np.maximum(w_top.sum(axis=1), EPS)
    rate_all = n_pos / np.maximum(ws.sum(axis=1), EPS)
    return {"roc_auc": auc, "pr_auc": ap, "top_decile_lift": rate_top / np.maximum(rate_all, EPS)}


def bootstrap_draws(y, scores, *, n_boot: int, random_state: int, chunk: int = 50):
    """``{score: {metric: (point value, array of n_boot resampled values)}}``.

    Each score is sorted once; every chunk of resampling weights is gathered into that order
    once and shared by the ranking metrics. Probability metrics (Brier, log-loss) are computed
    only for scores inside [0, 1].
    """
    y = np.asarray(y, dtype=bool)
    n = len(y)
    k = max(1, int(np.ceil(0.1 * n)))
    prepared = {}
    for name, score in scores.items():
        score = np.asarray(score, dtype=float)
        order, starts = _groups(score, descending=False)
        top = np.zeros(n, dtype=bool)
        # The top decile in ascending order: the positions of the k highest scores.
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        top[rank[np.argsort(-score, kind="stable")[:k]]] = True
        prepared[name] = (score, order, starts, y[order].astype(np.float32), top,
                          _is_probability(score))
    samples: dict[str, dict[str, list]] = {s: {} for s in scores}
    counts = resample_counts(n, n_boot=n_boot, seed=random_state)
    # Chunks of resamples bound memory at chunk * n floats.
    for begin in range(0, n_boot, chunk):
        size = min(chunk, n_boot - begin)
        w = np.stack([next(counts) for _ in range(size)]).astype(np.float32)
        for name, (score, order, starts, y_sorted, top, is_prob) in prepared.items():
            values = _ranking_metrics(y_sorted, starts, top, w[:, order])
            if is_prob:
                values["brier"] = brier(y, score, w)
                values["log_loss"] = log_loss(y, score, w)
            for metric, v in values.items():
                samples[name].setdefault(metric, []).append(v)
    out = {}
    for name, (score, _, starts, y_sorted, top, is_prob) in prepared.items():
        point = _ranking_metrics(y_sorted, starts, top, np.ones((1, n), dtype=np.float32))
        point = {m: float(v[0]) for m, v in point.items()}
        if is_prob:
            point["brier"], point["log_loss"] = float(brier(y, score)), float(log_loss(y, score))
        out[name] = {m: (point[m], np.concatenate(samples[name][m]))
                     for m in METRICS if m in point}
    return out


def paired_difference(draws, a: str, b: str, metric: str, *, level: float = 0.95) -> Estimate:
    """``metric(a) - metric(b)`` with its paired bootstrap interval (same resamples)."""
    point_a, sample_a = draws[a][metric]
    point_b, sample_b = draws[b][metric]
    return Estimate(point_a - point_b, *percentile_interval(sample_a - sample_b, level))


def _is_probability(score: np.ndarray) -> bool:
    score = np.asarray(score, dtype=float)
    return bool(np.all((score >= 0) & (score <= 1)))
