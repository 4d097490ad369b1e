"""The reductions' cheaper forms give the bits of the straightforward ones: the sort by value
(lexsort), window membership (a search), the strided layouts (argmax, per-customer cumsum) and
the local times grouped by zone (one conversion per row)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from churnkit.features import reduce as r
from churnkit.features.arrays import Rows
from churnkit.features.local_time import LOCAL_PARTS, local_parts
from churnkit.features.sql import ALL_WINDOWS


def _grouped(seed: int, n: int = 40) -> tuple[np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    return np.repeat(np.arange(n), rng.integers(0, 7, n)), rng


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [True, False])
def test_by_value_sorts_like_lexsort(seed, ties):
    cust, rng = _grouped(seed)
    vals = rng.choice([-0.0, 0.0, 1.5, 2.0, -3.0, 7.25], len(cust))
    got = r._by_value(cust, vals, ties=ties)
    want = np.lexsort((vals, cust))
    if ties:  # the same permutation
        assert np.array_equal(got, want)
    else:  # the same values in order (0.0 and -0.0 compare equal)
        assert np.array_equal(cust[got], cust[want]) and np.array_equal(vals[got], vals[want])


def _old_median(rows: Rows, values: np.ndarray) -> np.ndarray:
    keep = ~np.isnan(values)
    cust, vals = rows.cust[keep], values[keep]
    out = np.full(rows.n, np.nan)
    order = np.lexsort((vals, cust))
    vals, cust = vals[order], cust[order]
    first = r.starts_of(cust)
    size = np.diff(np.append(first, len(cust)))
    lo, hi = vals[first + (size - 1) // 2], vals[first + size // 2]
    out[cust[first]] = lo + (hi - lo) / 2
    return out


@pytest.mark.parametrize("seed", range(5))
def test_median_and_smallest_k_bits(seed):
    cust, rng = _grouped(seed)
    vals = rng.choice([-0.0, 0.0, 0.1, 1 / 3, 2.0, np.nan, 1e300], len(cust))
    rows = Rows(40, cust, {})
    assert np.array_equal(r.median(rows, vals).view(np.int64),
                          _old_median(rows, vals).view(np.int64))
    got = r.smallest_k(rows, vals, 3)
    keep = ~np.isnan(vals)
    for c in range(40):
        mine = vals[keep & (cust == c)]
        want = mine[np.argsort(mine, kind="stable")][:3]  # stable: -0.0 and 0.0 in row order
        assert np.array_equal(got[c, :len(want)].view(np.int64), want.view(np.int64))
        assert np.isnan(got[c, len(want):]).all()


def test_window_index_is_the_search():
    age = np.array([-1.0, 0.0, 29.9, 30.0, 30.5, 365.0, 365.1, 1e9, np.inf, np.nan])
    bounds = np.array([np.inf if w is None else w for w in ALL_WINDOWS])
    got = r.window_index(age, ALL_WINDOWS)
    assert got.dtype == np.int8
    assert np.array_equal(got, np.searchsorted(bounds, age, side="left"))
    assert np.array_equal(r.window_index(age, (7, 30)), np.searchsorted([7, 30], age))


@pytest.mark.parametrize("seed", range(3))
def test_windowed_equals_counting_each_window(seed):
    cust, rng = _grouped(seed)
    rows = Rows(40, cust, {})
    age = np.where(rng.random(len(cust)) < 0.1, np.nan, rng.uniform(0, 800, len(cust)))
    group = rng.integers(-1, 3, len(cust))
    weights = rng.normal(size=len(cust))
    counts = r.windowed(rows, age, ALL_WINDOWS, group=group, n_groups=3)
    sums = r.windowed(rows, age, ALL_WINDOWS, group=group, n_groups=3, weights=weights)
    assert counts.shape == sums.shape == (40, 3, len(ALL_WINDOWS))
    for g in range(3):
        for k, w in enumerate(ALL_WINDOWS):
            inside = (group == g) & (~np.isnan(age) if w is None else age <= w)
            assert counts[:, g, k].flags.c_contiguous
            assert np.array_equal(counts[:, g, k], r.count(rows, inside))
            assert np.allclose(sums[:, g, k], r.total(rows, weights, inside))


def test_tally_and_first_max():
    rng = np.random.default_rng(3)
    rows = Rows(30, rng.integers(0, 30, 500), {})
    key = rng.integers(0, 24, 500).astype(np.int8)
    hours = r.tally(rows, key, 24)
    assert hours[:, 5].flags.c_contiguous
    assert np.array_equal(r.first_max(hours), np.asarray(hours).argmax(axis=1))
    assert np.array_equal(r.first_max(np.zeros((4, 3), dtype=np.int64)), np.zeros(4))


@pytest.mark.parametrize("only", [False, True])
def test_local_parts_grouped_by_zone_are_each_rows_own(only):
    zones = ("Europe/Berlin", "America/New_York", "UTC", "Asia/Kathmandu")
    rng = np.random.default_rng(4)
    m = 400
    utc = rng.integers(1_600_000_000_000_000, 1_730_000_000_000_000, m)
    zone = rng.integers(0, len(zones), m).astype(np.int8)
    keep = rng.random(m) < 0.5 if only else None
    got = local_parts(utc, zone, zones, keep)
    for i in range(m):
        if keep is not None and not keep[i]:
            assert all(got[p][i] == -1 for p in LOCAL_PARTS)
            continue
        t = pd.Timestamp(int(utc[i]), unit="us", tz="UTC").tz_convert(zones[zone[i]])
        assert [got[p][i] for p in LOCAL_PARTS] == [t.hour, t.isoweekday(), t.day, t.month]


@pytest.mark.parametrize("block", [1, 3, 10, 1000])
def test_windowed_in_blocks_has_the_bits_of_one_pass(monkeypatch, block):
    cust, rng = _grouped(7, n=60)
    rows = Rows(60, cust, {})
    age = rng.uniform(0, 500, len(cust))
    weights = rng.normal(size=len(cust)) * 10.0 ** rng.integers(-3, 4, len(cust))
    group = rng.integers(-1, 2, len(cust))
    one = r.windowed(rows, age, ALL_WINDOWS, group=group, n_groups=2, weights=weights)
    monkeypatch.setattr(r, "BLOCK_ROWS", block)
    spans = r.blocks(cust)
    assert len(spans) > 1 or block == 1000
    assert [lo for lo, _ in spans[1:]] == [hi for _, hi in spans[:-1]]
    assert all(cust[lo] != cust[lo - 1] for lo, _ in spans[1:])  # cut at a customer's first row
    got = r.windowed(rows, age, ALL_WINDOWS, group=group, n_groups=2, weights=weights)
    assert np.array_equal(got.view(np.int64), one.view(np.int64))
    # the first window's sums, row by row in table order
    for c in range(60):
        want = 0.0
        for v in weights[(cust == c) & (group == 1) & (age <= ALL_WINDOWS[0])]:
            want += v
        assert got[c, 1, 0] == want


def test_tally_of_several_row_sets_counts_them_together():
    rng = np.random.default_rng(5)
    a, b = Rows(9, rng.integers(0, 9, 50), {}), Rows(9, rng.integers(0, 9, 30), {})
    ka, kb = rng.integers(0, 4, 50).astype(np.int8), rng.integers(0, 4, 30).astype(np.int8)
    both = Rows(9, np.concatenate([a.cust, b.cust]), {})
    want = r.tally(both, np.concatenate([ka, kb]), 4)
    assert np.array_equal(r.tally(a, ka, 4, (b, kb)), want)
    assert np.array_equal(r.tally(a, ka, 4) + r.tally(b, kb, 4), want)


@pytest.mark.parametrize("seed", range(3))
def test_session_order_is_the_lexsort_of_customer_and_session(seed):
    from churnkit.features.arrays import _session_order

    rng = np.random.default_rng(seed)
    for _ in range(100):
        n = int(rng.integers(2, 60))
        row_ids = np.sort(rng.integers(0, 8, n))
        session = rng.integers(0, 6, n)
        new = np.ones(n, dtype=bool)
        new[1:] = row_ids[1:] != row_ids[:-1]
        want = np.lexsort((session, np.cumsum(new)))
        got = _session_order(row_ids, session)
        assert np.array_equal(np.arange(n) if got is None else got, want)


def test_distinct_summaries_keep_every_rows_bits():
    from churnkit.features.btyd import _distinct

    rng = np.random.default_rng(6)
    for _ in range(100):
        n = int(rng.integers(1, 50))
        cols = [rng.choice([0.0, -0.0, 1.0, 2.5, 1e300], n) for _ in range(3)]
        first, inverse = _distinct(*cols)
        for c in cols:
            assert np.array_equal(c[first][inverse].view(np.int64), c.view(np.int64))
        bits = {tuple(int(c.view(np.int64)[i]) for c in cols) for i in range(n)}
        assert len(first) == len(bits) and np.all(np.diff(first) > 0)


def test_distinct_of_a_few_rows_equals_the_factorized_distinct(monkeypatch):
    """The dict path for a few rows (one customer scored alone) gives the factorized path's
    first rows and codes exactly."""
    import churnkit.features.btyd as btyd

    rng = np.random.default_rng(8)
    for _ in range(300):
        n = int(rng.integers(1, btyd._FEW + 1))
        cols = [rng.choice([0.0, -0.0, 1.0, 2.5, np.nan], n) for _ in range(3)]
        few = btyd._distinct(*cols)
        with monkeypatch.context() as m:
            m.setattr(btyd, "_FEW", 0)
            many = btyd._distinct(*cols)
        assert np.array_equal(few[0], many[0]) and np.array_equal(few[1], many[1])
        assert few[0].dtype == many[0].dtype and few[1].dtype == many[1].dtype


@pytest.mark.parametrize("block", [1, 4, 1000])
def test_tally_in_blocks_counts_like_count(monkeypatch, block):
    cust, rng = _grouped(8)
    rows = Rows(40, cust, {})
    key = rng.integers(0, 5, len(cust)).astype(np.int8)
    monkeypatch.setattr(r, "BLOCK_ROWS", block)
    got = r.tally(rows, key, 5, (rows, key))
    for k in range(5):
        assert np.array_equal(got[:, k], 2 * r.count(rows, key == k))


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kathmandu"])
def test_local_parts_of_one_zone_leave_the_times_alone(zone):
    utc = np.arange(1_600_000_000_000_000, 1_600_100_000_000_000, 7_777_777_777)
    kept = utc.copy()
    got = local_parts(utc, np.zeros(len(utc), dtype=np.int8), (zone,), None)
    assert np.array_equal(utc, kept)  # converted in place only on its own copy
    t = pd.DatetimeIndex(kept.view("datetime64[us]"), tz="UTC").tz_convert(zone)
    assert np.array_equal(got["hour"], t.hour) and np.array_equal(got["month"], t.month)
    assert np.array_equal(got["isodow"], t.day_of_week + 1) and np.array_equal(got["day"], t.day)


def test_few_and_many_rows_take_forms_of_the_same_values():
    rng = np.random.default_rng(9)
    age = np.concatenate([rng.uniform(-5, 900, 5000), [np.nan, np.inf, 30.0, 365.0]])
    many = r.window_index(age, ALL_WINDOWS)
    few = np.concatenate([r.window_index(age[i:i + 100], ALL_WINDOWS)
                          for i in range(0, len(age), 100)])
    assert many.dtype == few.dtype == np.int8 and np.array_equal(many, few)
    counts = rng.integers(0, 4, (24, 1000)).T  # a view of a (key, customer) layout
    assert np.array_equal(r.first_max(counts), np.concatenate(
        [r.first_max(counts[i:i + 100]) for i in range(0, 1000, 100)]))


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu",
                                  "Australia/Lord_Howe", "America/Sao_Paulo", "Pacific/Apia"])
def test_a_few_stamps_get_the_wall_times_pandas_gives(zone):
    # A few rows of one zone are converted one by one: the same wall times as pandas', also
    # at and around the zone's clock changes and at odd microseconds.
    from churnkit.features.local_time import _few_wall_times

    rng = np.random.default_rng(len(zone))
    stamps = rng.integers(946_684_800_000_000, 2_051_222_400_000_000, 25)  # 2000 .. 2035
    index = pd.date_range("2019-01-01", "2026-01-01", freq="D", tz=zone)
    offsets = index.map(lambda t: t.utcoffset())
    changes = index[1:][np.asarray(offsets[1:] != offsets[:-1])].tz_convert("UTC")
    around = changes.as_unit("us").asi8[:, None] + np.array([-86_400_000_000, -3_600_000_001,
                                                            -1, 0, 1, 3_599_999_999])
    for batch in (stamps, around.ravel()[:32], around.ravel()[-32:]):
        got = _few_wall_times(batch, zone)
        want = pd.DatetimeIndex(batch.view("datetime64[us]"), tz="UTC").tz_convert(zone) \
            .tz_localize(None).as_unit("us").asi8
        assert got is not None and np.array_equal(got, want), zone
    assert _few_wall_times(np.array([0]), "Not/A_Zone") is None  # left to pandas


def test_a_few_categories_are_coded_as_the_arrow_path_codes_them():
    from churnkit.features import table_arrays

    for values in (["b", None, "a", "b", np.nan], [None], [], ["é", "e", "Z", "z"]):
        series = np.array(values, dtype=object)
        got = table_arrays.categories_of(series)
        big = np.concatenate([series] * 40)  # past the few-rows form
        codes, names = table_arrays.categories_of(big)
        assert got[1] == names and np.array_equal(np.concatenate([got[0]] * 40), codes)
    with pytest.raises(pa.ArrowTypeError):  # not text: refused alike, few rows or many
        table_arrays.categories_of(np.array(["x", 3, None], dtype=object))


def test_the_rows_of_one_customer_are_found_as_among_many():
    from churnkit.features import arrays

    rows = np.array([3, 3, 5, 5, 5, 9])
    for one in (3, 5, 9, 4, 10):
        owned, counts = arrays._runs(rows, np.array([one]))
        # the general form: the same customer among others no row belongs to
        many = np.array(sorted({one, -1, 100}))
        owned_many, counts_many = arrays._runs(rows, many)
        assert counts.tolist() == [counts_many[many.tolist().index(one)]]
        mask = np.ones(6, bool) if owned is None else owned
        assert np.array_equal(rows == one, mask)
        assert np.array_equal(mask, np.ones(6, bool) if owned_many is None else owned_many)
    owned, counts = arrays._runs(np.array([7, 7]), np.array([7]))
    assert owned is None and counts.tolist() == [2]


def test_the_contract_time_columns_are_the_validated_frames_datetimes():
    import churnkit as ck
    from churnkit.data.contract import TABLES

    tables = ck.validate(ck.synth.generate(50, seed=3, start="2024-01-01", end="2024-06-01")[0])
    for name, frame in tables.items():
        datetimes = {c for c, d in frame.dtypes.items() if pd.api.types.is_datetime64_any_dtype(d)}
        assert datetimes == TABLES[name].timestamp_columns, name
