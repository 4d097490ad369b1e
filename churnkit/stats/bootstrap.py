"""The bootstrap every evaluation uses: seeded resamples of row indices and percentile intervals.

A resample draws ``n`` rows with replacement out of ``n`` (within each stratum when ``strata``
is given, so every stratum keeps its size: e.g. treatment and control resampled apart). One
resample is held at a time, so memory is O(n) per resample. Statistics computed on the same
resamples, e.g. a model and a baseline, form a *paired* bootstrap: the interval of their
difference is the percentile interval of the per-resample differences.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

#: A percentile interval is NaN when fewer resamples than this share give a finite value.
MIN_FINITE_SHARE = 0.9


def resamples(n: int, *, n_boot: int, seed: int | np.random.Generator,
              strata: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Yield ``n_boot`` resamples of the rows ``0 .. n-1``, each an int64 array of ``n`` indices.

    Parameters
    ----------
    n
        Number of rows.
    n_boot
        Number of resamples.
    seed
        Seed or generator; the same seed gives the same resamples.
    strata
        Optional length-``n`` labels: rows are drawn within their stratum, which keeps its size
        (indices come grouped by stratum, in sorted label order).
    """
    rng = np.random.default_rng(seed)
    if strata is None:
        for _ in range(n_boot):
            yield rng.integers(0, n, n)
        return
    labels = np.asarray(strata)
    if len(labels) != n:
        raise ValueError(f"strata has {len(labels)} labels for {n} rows")
    groups = [np.flatnonzero(labels == s) for s in np.unique(labels)]
    for _ in range(n_boot):
        yield np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])


def resample_counts(n: int, *, n_boot: int, seed: int | np.random.Generator,
                    strata: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """The resamples of :func:`resamples` as how often each row is drawn (length-``n`` ints):
    the weights of a weighted statistic, ``(counts * x).sum() / counts.sum()``."""
    for idx in resamples(n, n_boot=n_boot, seed=seed, strata=strata):
        yield np.bincount(idx, minlength=n)


def percentile_interval(sample: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` percentile interval of resampled values (their finite ones).

    NaN, NaN when the sample is empty or fewer than :data:`MIN_FINITE_SHARE` of its values are
    finite (the statistic is undefined on too many resamples to bound it).
    """
    values = np.asarray(sample, dtype=float).ravel()
    finite = values[np.isfinite(values)]
    if len(finite) == 0 or len(finite) < MIN_FINITE_SHARE * len(values):
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return float(low), float(high)
