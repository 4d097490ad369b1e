"""Browsing and clock on the array engine: equal to their SQL definitions, one customer or all."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _shops import AS_OF, ago, shop, shops
from hypothesis import HealthCheck, given, settings

import churnkit as ck
from churnkit.features import reduce as r
from churnkit.features.arrays import Rows, ShopArrays, known_at
from churnkit.features.engine import compute_columns, computed_families
from churnkit.features.oracle import sql_features
from churnkit.features.registry import family

FAMILIES = ("browsing", "clock")
H = pd.Timedelta(hours=1)
US = pd.Timedelta(microseconds=1)


def _micros(as_of: pd.Timestamp) -> int:
    return int(as_of.value) // 1000


def _engine(tables: ck.Tables, as_of: pd.Timestamp, names=FAMILIES) -> dict[str, np.ndarray]:
    known = known_at(ShopArrays.of(tables), _micros(as_of))
    return compute_columns(known, [family(n) for n in names])


def assert_matches_sql(tables: ck.Tables, as_of: pd.Timestamp, names=FAMILIES
                       ) -> dict[str, np.ndarray]:
    """Engine columns equal the SQL oracle's: counts exactly, floats within 1e-9 relative."""
    fams = [family(n) for n in names]
    mine = _engine(tables, as_of, names)
    ref = sql_features(tables, as_of, fams)
    for fam in fams:
        for feature in fam.sql_features():
            got = np.asarray(mine[feature.name], dtype="float64")
            want = ref[feature.name].to_numpy(dtype="float64", na_value=np.nan)
            assert got.shape == want.shape, feature.name
            if feature.dtype == "count":
                assert np.array_equal(got, want), (feature.name, got, want)
            else:
                ok = np.isclose(got, want, rtol=1e-9, atol=0, equal_nan=True)
                assert ok.all(), (feature.name, ref.index[~ok].tolist(), got[~ok], want[~ok])
    return mine


def assert_alone_equals_batch(tables: ck.Tables, as_of: pd.Timestamp, names=FAMILIES) -> None:
    """Each customer computed alone gives bitwise their row of the full computation."""
    fams = [family(n) for n in names]
    arrays = ShopArrays.of(tables)
    full_known = known_at(arrays, _micros(as_of))
    full = compute_columns(full_known, fams)
    row_of = {cid: i for i, cid in enumerate(full_known.ids)}
    for i in range(len(arrays.ids)):
        known = known_at(arrays.take(np.array([i])), _micros(as_of))
        alone = compute_columns(known, fams)
        if not known.n:
            continue
        j = row_of[known.ids[0]]
        for name, values in alone.items():
            assert values.dtype == full[name].dtype, name
            assert values[0].tobytes() == full[name][j].tobytes(), (name, known.ids[0])


@pytest.fixture(scope="module")
def synthetic() -> ck.Tables:
    tables, _ = ck.synth.generate(300, seed=7, start="2024-01-01", end="2025-01-01")
    return ck.validate(tables)


@pytest.mark.parametrize("as_of", ["2024-02-15", "2024-07-01", "2025-01-01", "2026-01-01"])
def test_synthetic_shop_matches_sql(synthetic, as_of):
    cols = assert_matches_sql(synthetic, pd.Timestamp(as_of, tz="UTC"))
    assert cols["sessions_lifetime"].sum() > 0 and cols["activity_events"].sum() > 0


def test_synthetic_shop_without_browsing_matches_sql(synthetic):
    bare = synthetic.replace(browsing=None)
    assert [f.name for f in computed_families(bare)].count("browsing") == 0
    as_of = pd.Timestamp("2024-09-01", tz="UTC")
    cols = assert_matches_sql(bare, as_of, ("clock",))
    orders = _engine(synthetic, as_of, ("purchases",))["orders_lifetime"]
    assert np.array_equal(cols["activity_events"], orders)  # orders only


def test_synthetic_customer_alone_equals_batch(synthetic):
    assert_alone_equals_batch(synthetic, pd.Timestamp("2024-08-01", tz="UTC"))
    assert_alone_equals_batch(synthetic.replace(browsing=None),
                              pd.Timestamp("2024-08-01", tz="UTC"), ("clock",))


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shops(tables=("browsing",)))
def test_random_shops_match_sql(case):
    tables, as_of = case
    assert_matches_sql(tables, as_of)
    # cut at as_of: events of customers not signed up yet remain, and belong to no one
    assert_matches_sql(tables.until(as_of), as_of)


# --- hand-made edge cases ---------------------------------------------------------------------

def _customers(ids, zones=None):
    return {"customer_id": ids, "signup_at": [ago(400)] * len(ids),
            "timezone": zones or ["UTC"] * len(ids)}


def _orders(rows):
    """rows: (customer, ordered_at)."""
    return {"order_id": list(range(1, len(rows) + 1)), "customer_id": [c for c, _ in rows],
            "ordered_at": [t for _, t in rows], "amount": [10.0] * len(rows)}


def _browsing(rows):
    """rows: (customer, session, ts, event)."""
    return {"customer_id": [e[0] for e in rows], "session_id": [e[1] for e in rows],
            "ts": [e[2] for e in rows], "event": [e[3] for e in rows]}


@pytest.fixture(scope="module")
def edges() -> ck.Tables:
    cart_at = ago(10)
    rows = [
        # 1: browsing, no orders: an abandoned checkout, an open cart, a straddling session
        (1, "a", ago(40), "product_view"), (1, "a", ago(39.9), "add_to_cart"),
        (1, "a", ago(39.8), "checkout"),
        (1, "b", ago(0.5), "add_to_cart"),  # younger than 24 h: still open
        (1, "c", ago(2), "product_view"), (1, "c", ago(-0.1), "checkout"),  # cut at as_of
        (1, "c", ago(1.5), "add_to_cart"),
        (1, "d", AS_OF - 24 * H, "add_to_cart"),  # exactly 24 h before as_of: abandoned
        # 2: carts around orders
        (2, "e", cart_at, "add_to_cart"),  # order exactly 24 h later: abandoned
        (2, "f", ago(20), "checkout"),  # order 24 h - 1 µs later: not abandoned
        (2, "g", ago(30), "add_to_cart"),  # order at the same moment: not abandoned
        (2, "h", ago(50), "add_to_cart"), (2, "h", ago(49.99), "product_view"),
        # 3: a session id shared with customer 2, and a session entirely after as_of
        (3, "e", ago(5), "product_view"), (3, "e", ago(4.9), "checkout"),
        (3, "z", ago(-1), "add_to_cart"),
        # 5: several sessions, with an order in between
        (5, "s1", ago(100), "product_view"), (5, "s2", ago(50), "product_view"),
        (5, "s3", ago(3), "product_view"), (5, "s3", ago(2.9), "add_to_cart"),
    ]
    orders = [
        (2, cart_at + 24 * H), (2, ago(20) + 24 * H - US), (2, ago(30)), (2, ago(50.5)),
        (3, ago(80)), (4, ago(7)), (5, ago(60)), (5, ago(-2)),
    ]
    zones = ["UTC", "America/New_York", "Asia/Kathmandu", "Pacific/Chatham", "Europe/Moscow"]
    return shop(_customers([1, 2, 3, 4, 5], zones), _orders(orders), _browsing(rows))


def test_edge_cases_match_sql(edges):
    cols = assert_matches_sql(edges, AS_OF)
    by = dict(zip(range(1, 6), range(5), strict=True))
    c1, c2, c3, c4, c5 = (by[i] for i in range(1, 6))
    # customer 1: sessions a, d abandoned (d at exactly 24 h); b still open; c cut at as_of
    assert cols["abandoned_carts_lifetime"][c1] == 3  # a, c (cart 1.5 days ago), d
    assert cols["abandoned_checkouts_lifetime"][c1] == 1  # a; c's checkout is after as_of
    assert cols["checkouts_lifetime"][c1] == 1
    assert cols["sessions_lifetime"][c1] == 4
    assert cols["sessions_since_last_order"][c1] == 4  # no orders: every session
    # customer 2: only e (order exactly 24 h later) and h (the order came before) abandoned
    assert cols["abandoned_carts_lifetime"][c2] == 2
    assert cols["sessions_since_last_order"][c2] == 0
    # customer 3: its own session "e" only; "z" is after as_of
    assert cols["sessions_lifetime"][c3] == 1 and cols["abandoned_checkouts_lifetime"][c3] == 1
    # customer 4: orders, no browsing
    assert cols["sessions_lifetime"][c4] == 0 and np.isnan(cols["days_since_last_session"][c4])
    assert cols["activity_events"][c4] == 1
    # customer 5: the order after as_of is unknown; sessions after the order 60 days ago
    assert cols["sessions_since_last_order"][c5] == 2
    assert cols["activity_events"][c5] == 4  # 3 sessions + 1 order


def test_edge_cases_customer_alone_equals_batch(edges):
    assert_alone_equals_batch(edges, AS_OF)


def test_time_zones_and_ties_match_sql():
    """Local parts across zones and DST changes, paydays and seasons at local midnight, modal
    hour ties."""
    zones = ["UTC", "America/New_York", "Asia/Kathmandu", "Pacific/Chatham", "Europe/Moscow",
             "Australia/Lord_Howe"]
    moments = [pd.Timestamp(t, tz="UTC") for t in (
        "2024-03-10 06:30", "2024-03-10 07:30",  # New York DST starts at 07:00 UTC
        "2024-03-31 21:30", "2024-11-03 05:59:59.999999", "2024-11-03 06:00",
        "2024-01-14 18:15", "2024-02-29 23:59:59", "2024-04-30 20:45", "2023-12-31 22:00",
        "2024-05-15 00:00", "2024-04-06 14:30")]
    rows = [(c, t) for c in range(1, 7) for t in moments]
    rows.append((1, moments[0]))  # a duplicate moment
    browse = [(c, f"s{c}-{k}", t + k * H, "product_view")
              for c in range(1, 7) for k, t in enumerate(moments[:4])]
    browse += [(c, f"s{c}-0", moments[0] + 30 * pd.Timedelta(minutes=1), "add_to_cart")
               for c in range(1, 7)]
    tables = shop(_customers(list(range(1, 8)), [*zones, "UTC"]), _orders(rows), _browsing(browse))
    cols = assert_matches_sql(tables, AS_OF)
    assert cols["activity_events"][6] == 0 and np.isnan(cols["modal_local_hour"][6])
    assert np.isnan(cols["payday_affinity"][6])
    assert_matches_sql(tables.replace(browsing=None), AS_OF, ("clock",))
    assert_alone_equals_batch(tables, AS_OF)


def test_modal_hour_ties_go_to_the_earliest_hour():
    base = pd.Timestamp("2024-05-01", tz="UTC")
    rows = [(1, base + 20 * H), (1, base + 3 * H), (1, base + 20 * H + H / 2),
            (1, base + 3 * H + H / 2), (1, base + 9 * H)]
    cols = assert_matches_sql(shop(_customers([1]), _orders(rows)), AS_OF, ("clock",))
    assert cols["modal_local_hour"][0] == 3


def test_a_shop_without_any_order():
    rows = [(1, "a", ago(3), "add_to_cart"), (1, "b", ago(1), "view"), (2, "c", ago(0.2), "view")]
    tables = shop(_customers([1, 2, 3]), {}, _browsing(rows))
    cols = assert_matches_sql(tables, AS_OF)
    assert cols["abandoned_carts_lifetime"].tolist() == [1, 0, 0]
    assert cols["sessions_since_last_order"].tolist() == [2, 1, 0]
    assert np.isnan(cols["payday_affinity"]).all()
    assert_alone_equals_batch(tables, AS_OF)


def test_no_customer_known_yet(edges):
    cols = assert_matches_sql(edges, ago(500))
    assert all(len(v) == 0 for v in cols.values())


def test_first_at_or_after_is_the_asof_join():
    cust = np.array([0, 0, 0, 2, 2])
    times = np.array([10, 20, 20, 5, 30])
    rows = Rows(3, cust, {})
    got = r.first_at_or_after(rows, times, np.array([0, 0, 0, 0, 1, 2, 2, 2]),
                              np.array([5, 10, 11, 21, 0, 5, 6, 31]))
    assert got.tolist() == [0, 0, 1, -1, -1, 3, 4, -1]


@pytest.mark.parametrize("seed", range(5))
def test_first_at_or_after_matches_a_scan(seed):
    """Also with customer positions so large that the times are coarsened in the key."""
    rng = np.random.default_rng(seed)
    base = 1_700_000_000_000_000
    for _ in range(40):
        n, m, q = (int(x) for x in rng.integers(1, [8, 30, 20]))
        unit = int(rng.choice([1, 1_000, 10**9]))
        cust = np.sort(rng.integers(0, n, m))
        times = base + rng.integers(0, 50, m) * unit
        times = times[np.lexsort((times, cust))]
        who = rng.integers(0, n, q)
        at = base + rng.integers(-5, 55, q) * unit
        at[: q // 2] = times[rng.integers(0, m, q // 2)]  # ties with a row
        want = [next((j for j in range(m) if cust[j] == c and times[j] >= a), -1)
                for c, a in zip(who, at, strict=True)]
        for size in (n, 2**40, 2**58):
            assert r.first_at_or_after(Rows(size, cust, {}), times, who, at).tolist() == want


def test_tally_counts_like_count():
    rows = Rows(3, np.array([2, 0, 0, 2, 1, 0]), {})  # need not be grouped
    key = np.array([0, 1, 1, 2, 0, 0])
    got = r.tally(rows, key, 3)
    for k in range(3):
        assert np.array_equal(got[:, k], r.count(rows, key == k))
