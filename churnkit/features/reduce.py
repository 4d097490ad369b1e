"""Per-customer reductions over rows grouped by customer: the feature families' vocabulary.

Every function takes :class:`~churnkit.features.arrays.Rows` (rows carry their customer position,
non-decreasing) and returns one value per customer (length ``rows.n``), for one customer or a
million alike. Sums are accumulated row by row in table order (``np.bincount``), so a customer's
value does not depend on which other customers are in the call: scored alone it is bitwise the
nightly row. Empty means NaN for floats; counts and totals are 0 without rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from churnkit.features.arrays import NAT, Rows

#: ``w`` days before ``as_of``: a row of age ``a`` days is inside when ``a <= w``.
Window = int | None


def inside(age: np.ndarray, window: Window) -> np.ndarray | None:
    """Rows of ``age`` (days before as_of) inside ``window`` (None: all rows, the lifetime)."""
    return None if window is None else age <= window


def _and(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None:
        return b
    return a if b is None else a & b


def count(rows: Rows, mask: np.ndarray | None = None, *also: np.ndarray | None) -> np.ndarray:
    """Rows per customer where every given mask holds (int64)."""
    for m in also:
        mask = _and(mask, m)
    cust = rows.cust if mask is None else rows.cust[mask]
    return np.bincount(cust, minlength=rows.n).astype(np.int64)


def total(rows: Rows, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Sum of ``values`` per customer where ``mask`` holds (float64; NaN values skipped; 0 if
    none)."""
    keep = ~np.isnan(values)
    mask = keep if mask is None else mask & keep
    # float64 even without rows (bincount of nothing gives int64 zeros)
    return np.bincount(rows.cust[mask], weights=values[mask], minlength=rows.n).astype(
        np.float64, copy=False)


def mean(rows: Rows, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Mean of the non-NaN ``values`` per customer where ``mask`` holds (NaN when none)."""
    keep = ~np.isnan(values)
    mask = keep if mask is None else mask & keep
    n = np.bincount(rows.cust[mask], minlength=rows.n)
    s = np.bincount(rows.cust[mask], weights=values[mask], minlength=rows.n)
    return ratio(s, n)


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den``, NaN where ``den`` is 0 (SQL's ``x / nullif(y, 0)``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.true_divide(num, den, dtype=np.float64)
    out[np.asarray(den) == 0] = np.nan
    return out


def _extreme(rows: Rows, values: np.ndarray, mask: np.ndarray | None, ufunc: np.ufunc
             ) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if mask is not None:
        values = np.where(mask, values, np.nan)
    out = np.full(rows.n, np.nan)
    if not len(values):
        return out
    first = starts_of(rows.cust)
    out[rows.cust[first]] = ufunc.reduceat(values, first)
    return out


def minimum(rows: Rows, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Smallest non-NaN value per customer where ``mask`` holds (NaN when none)."""
    return _extreme(rows, values, mask, np.fmin)


def maximum(rows: Rows, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Largest non-NaN value per customer where ``mask`` holds (NaN when none)."""
    return _extreme(rows, values, mask, np.fmax)


def latest(rows: Rows, times: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Latest time (int64 µs) per customer where ``mask`` holds and the time is set (:data:`NAT`
    when none)."""
    keep = times != NAT
    mask = keep if mask is None else mask & keep
    out = np.full(rows.n, NAT, dtype=np.int64)
    np.maximum.at(out, rows.cust[mask], times[mask])
    return out


def any_of(rows: Rows, mask: np.ndarray) -> np.ndarray:
    """True for customers with at least one row where ``mask`` holds."""
    return count(rows, mask) > 0


def starts_of(keys: np.ndarray) -> np.ndarray:
    """Indices where a run of equal ``keys`` begins (keys grouped, e.g. customer positions)."""
    new = np.empty(len(keys), dtype=bool)
    if len(keys):
        new[0] = True
        np.not_equal(keys[1:], keys[:-1], out=new[1:])
    return np.flatnonzero(new)


def _by_value(cust: np.ndarray, vals: np.ndarray, *, ties: bool = True) -> np.ndarray:
    """The order sorting rows by customer, then value: ``np.lexsort((vals, cust))``, by one sort
    of the values and one of an int64 key (customer in the high bits, the value's rank in the
    low ones), cheaper than the lexsort's two indirect stable sorts. ``ties=False``: equal values
    may come in any order (any order gives the same bits to the caller)."""
    m = len(vals)
    if m >= 1 << 32 or (m and int(cust[-1]) >= 1 << 31):  # the key would not fit
        return np.lexsort((vals, cust))
    by_value = np.argsort(vals, kind="stable" if ties else None)
    rank = np.empty(m, dtype=np.int64)
    rank[by_value] = np.arange(m)
    key = cust.astype(np.int64) << 32
    key |= rank
    key.sort()
    key &= 0xFFFF_FFFF
    return by_value[key]


def smallest_k(rows: Rows, values: np.ndarray, k: int, mask: np.ndarray | None = None
               ) -> np.ndarray:
    """The ``k`` smallest non-NaN values per customer, ascending: shape (n, k), NaN-padded."""
    keep = ~np.isnan(values)
    mask = keep if mask is None else mask & keep
    cust, vals = rows.cust[mask], values[mask]
    # equal values have equal bits but for 0.0 and -0.0, whose order shows in the output
    order = _by_value(cust, vals, ties=bool((vals == 0).any()))
    cust, vals = cust[order], vals[order]
    first = starts_of(cust)
    rank = np.arange(len(cust)) - np.repeat(first, np.diff(np.append(first, len(cust))))
    out = np.full((rows.n, k), np.nan)
    hit = rank < k
    out[cust[hit], rank[hit]] = vals[hit]
    return out


def median(rows: Rows, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Median of the non-NaN values per customer (mean of the middle two for an even count;
    NaN when none)."""
    keep = ~np.isnan(values)
    mask = keep if mask is None else mask & keep
    cust, vals = rows.cust[mask], values[mask]
    out = np.full(rows.n, np.nan)
    if not len(cust):
        return out
    # the order of equal values does not show: lo + (hi - lo) / 2 is +0.0 for any two zeros
    order = _by_value(cust, vals, ties=False)
    cust = cust[order]
    first = starts_of(cust)
    size = np.diff(np.append(first, len(cust)))
    lo = vals[order[first + (size - 1) // 2]]
    hi = vals[order[first + size // 2]]
    out[cust[first]] = lo + (hi - lo) / 2
    return out


def std(rows: Rows, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Sample standard deviation of the non-NaN values per customer (NaN with fewer than 2)."""
    keep = ~np.isnan(values)
    mask = keep if mask is None else mask & keep
    cust, vals = rows.cust[mask], values[mask]
    n = np.bincount(cust, minlength=rows.n)
    mu = ratio(np.bincount(cust, weights=vals, minlength=rows.n), n)
    dev = vals - mu[cust]
    ss = np.bincount(cust, weights=dev * dev, minlength=rows.n)
    return np.sqrt(ratio(ss, np.where(n >= 2, n - 1, 0)))


def last_value(rows: Rows, values: np.ndarray) -> np.ndarray:
    """Each customer's value on their last row (NaN without rows)."""
    out = np.full(rows.n, np.nan)
    if len(rows.cust):
        end = np.append(starts_of(rows.cust)[1:], len(rows.cust)) - 1
        out[rows.cust[end]] = values[end]
    return out


#: Up to this many rows (or customers) a reduction takes its one-call form: the per-call cost
#: of NumPy dominates, and both forms give the same values (tests/churnkit/features).
_FEW = 256


def window_index(age: np.ndarray, windows: tuple[Window, ...]) -> np.ndarray:
    """Per row, the first of ``windows`` (ascending, ``None`` last) that holds it;
    ``len(windows)`` when none does (a NaN age): int8."""
    if len(age) <= _FEW:  # one customer's rows: one search costs less than a pass per window
        bounds = np.array([np.inf if w is None else w for w in windows], dtype=np.float64)
        return np.searchsorted(bounds, age, side="left").astype(np.int8)
    # the windows are nested, so those holding a row are the last ones: count them (one int8
    # add per window, narrower than a search's int64 positions)
    holding = np.zeros(len(age), dtype=np.int8)
    for w in windows:
        if w is None:
            np.add(holding, ~np.isnan(age), out=holding, casting="unsafe")
        else:
            np.add(holding, age <= w, out=holding, casting="unsafe")
    return np.subtract(np.int8(len(windows)), holding, out=holding)


def windowed(rows: Rows, age: np.ndarray | Callable[[np.ndarray], np.ndarray],
             windows: tuple[Window, ...], *,
             group: np.ndarray | None = None, n_groups: int = 1,
             weights: np.ndarray | None = None, mask: np.ndarray | None = None) -> np.ndarray:
    """Counts (or sums of ``weights``) per customer, group and window, in one pass.

    ``windows`` are nested (ascending, ``None`` = lifetime last); ``group`` (0 ..
    ``n_groups`` - 1, negative = no group) splits the rows, e.g. by status. Returns shape
    ``(n, n_groups, len(windows))``: ``[c, g, k]`` counts customer ``c``'s rows of group ``g``
    inside window ``k`` (where ``mask`` holds). ``age`` may be a function of a slice of row
    indices giving those rows' ages (e.g. of their times): then no array of every row's age is
    made. The result is a view of an array laid out as
    ``(group, window, customer)``: ``[:, g, k]`` (every customer's value) is contiguous, and the
    running sum over the windows adds whole rows of customers.
    """
    n_windows = len(windows)
    counts = weights is None
    out = np.zeros((n_groups, n_windows, rows.n), dtype=np.int64 if counts else np.float64)
    # rows in blocks of whole customers: the per-row temporaries stay small (a whole base's
    # would be fresh memory, paid in page faults) and each customer's sums are the same
    # sequence of additions as in one pass
    for lo, hi in blocks(rows.cust):
        c0, c1 = int(rows.cust[lo]), int(rows.cust[hi - 1]) + 1
        slot = window_index(age[lo:hi] if isinstance(age, np.ndarray) else age(slice(lo, hi)),
                            windows)
        keep = slot < n_windows
        if group is not None:
            keep &= group[lo:hi] >= 0
        if mask is not None:
            keep &= mask[lo:hi]
        if weights is not None:
            keep &= ~np.isnan(weights[lo:hi])
        key = slot[keep].astype(np.int64)
        if group is not None:
            key += group[lo:hi][keep].astype(np.int64) * n_windows
        key *= c1 - c0
        key += rows.cust[lo:hi][keep]
        key -= c0
        size = n_groups * n_windows * (c1 - c0)
        if counts:
            flat = np.bincount(key, minlength=size)
        else:
            flat = np.bincount(key, weights=weights[lo:hi][keep], minlength=size)
        part = flat.reshape(n_groups, n_windows, c1 - c0)
        np.cumsum(part, axis=1, out=out[:, :, c0:c1])
    return out.transpose(2, 0, 1)


#: Rows per block of the blocked reductions (:func:`blocks`): a block's int64 temporaries are
#: 2 MB, within a core's cache.
BLOCK_ROWS = 1 << 18


def blocks(cust: np.ndarray, size: int | None = None) -> list[tuple[int, int]]:
    """``[lo, hi)`` row ranges of about ``size`` (default :data:`BLOCK_ROWS`) rows covering
    grouped rows (``cust`` non-decreasing), each cut at a customer's first row: no customer
    spans two blocks."""
    size = BLOCK_ROWS if size is None else size
    m = len(cust)
    if m <= size:
        return [(0, m)] if m else []
    cuts = np.searchsorted(cust, cust[size::size], "left")
    bounds = np.unique(np.concatenate([[0], cuts, [m]])).tolist()
    return list(itertools.pairwise(bounds))


def first_at_or_after(rows: Rows, times: np.ndarray, cust: np.ndarray, at: np.ndarray
                      ) -> np.ndarray:
    """The ASOF join: for each query ``i``, the index into ``rows`` of customer ``cust[i]``'s
    first row with ``times >= at[i]`` (int64 µs), or -1 when that customer has none.

    ``times`` must be non-decreasing within each customer's rows (event tables are in time
    order per customer). One ``searchsorted`` on a key ordered like (customer, time): the
    customer in the high bits, the time since the earliest one in the low bits, coarsened by a
    shift only when both do not fit in 62 bits (a large base over a long period); rows sharing a
    query's coarse key but earlier than it are then stepped past.
    """
    cust = np.asarray(cust, dtype=np.int64)
    at = np.asarray(at, dtype=np.int64)
    if not len(at) or not len(times):
        return np.full(len(at), -1, dtype=np.int64)
    t0 = min(int(times.min()), int(at.min()))
    span = max(int(times.max()), int(at.max())) - t0
    time_bits = 62 - int(rows.n).bit_length()
    shift = max(0, span.bit_length() - time_bits)
    row_key = times - t0  # in place from here: one array of the rows' length, not four
    if shift:
        row_key >>= shift
    row_key |= rows.cust << time_bits
    query_key = (cust << time_bits) | ((at - t0) >> shift)
    i = np.searchsorted(row_key, query_key, "left")
    last = np.minimum(i, len(times) - 1)
    if shift:  # rows sharing a query's coarse key may be earlier than it: step past them
        ahead = np.flatnonzero(row_key[last] == query_key)
        while len(ahead):  # at most as many rounds as rows share one coarse key
            ahead = ahead[times[i[ahead]] < at[ahead]]
            i[ahead] += 1
            ahead = ahead[i[ahead] < len(times)]
            ahead = ahead[row_key[i[ahead]] == query_key[ahead]]
        last = np.minimum(i, len(times) - 1)
    return np.where((i < len(times)) & (rows.cust[last] == cust), i, -1)


def tally(rows: Rows, key: np.ndarray, n_keys: int, *also: tuple[Rows, np.ndarray]
          ) -> np.ndarray:
    """Rows per customer and key: shape (n, ``n_keys``) int64, ``[c, k]`` counting customer
    ``c``'s rows with ``key == k`` (keys 0 .. ``n_keys`` - 1), e.g. a histogram of local hours;
    ``also``: more (rows, key) pairs of the same customers counted with them (no concatenated
    copy of the rows). Only counts: ``rows`` need not be grouped by customer here (grouped
    ones are counted in blocks of customers, which stay in cache). A view of an array laid out
    as (key, customer): ``[:, k]`` (every customer's count of key ``k``) is contiguous."""
    n = rows.n
    out = np.zeros((n_keys, n), dtype=np.int64)
    for source, keys in ((rows, key), *also):
        cust = source.cust
        grouped = len(cust) < 2 or not (cust[1:] < cust[:-1]).any()
        for lo, hi in blocks(cust) if grouped else [(0, len(cust))]:
            c0, c1 = (int(cust[lo]), int(cust[hi - 1]) + 1) if grouped else (0, n)
            flat = np.multiply(keys[lo:hi], np.int64(c1 - c0), dtype=np.int64)
            flat += cust[lo:hi]
            flat -= c0
            out[:, c0:c1] += np.bincount(flat, minlength=n_keys * (c1 - c0)).reshape(n_keys, -1)
    return out.T


def first_max(counts: np.ndarray) -> np.ndarray:
    """Per row of ``counts`` (n, k), the column of its largest value, the first of equal ones
    (``counts.argmax(axis=1)``, column by column: cheaper on a view of a (k, n) layout)."""
    if len(counts) <= _FEW:  # a few customers: one call costs less than a pass per column
        return np.asarray(counts).argmax(axis=1)
    best = counts[:, 0].copy()
    at = np.zeros(len(counts), dtype=np.int64)
    for j in range(1, counts.shape[1]):
        column = counts[:, j]
        more = column > best
        at[more] = j
        np.maximum(best, column, out=best)
    return at
