"""The event stores return exactly the validated rows of the requested customers, fresh per
call: a Parquet directory through DuckDB, and PostgreSQL."""

from __future__ import annotations

import time
import uuid

import pandas as pd
import pytest
from _pg import PG_URL, requires_pg

import churnkit as ck
from churnkit.io import write_tables
from serving.store import DatabaseStore, ParquetStore, open_store

END = "2025-07-01"


@pytest.fixture(scope="module")
def small_shop():
    tables, _ = ck.synth.generate(300, seed=3, start="2024-01-01", end=END)
    return tables


def assert_same_tables(got: ck.Tables, want: ck.Tables) -> None:
    assert got.present() == want.present()
    for name, frame in want.items():
        pd.testing.assert_frame_equal(got.get(name).reset_index(drop=True),
                                      frame.reset_index(drop=True), check_dtype=False,
                                      obj=name)


def test_parquet_store_gives_the_customers_rows(small_shop, tmp_path):
    ck.save_tables(small_shop, tmp_path)
    store = open_store(str(tmp_path))
    assert isinstance(store, ParquetStore) and store.id_kind == "int"
    ids = [int(i) for i in small_shop.customers["customer_id"].iloc[[4, 90, 250]]]
    got = store.tables_for([*ids, 10**9])
    assert sorted(got.customers["customer_id"]) == sorted(ids)
    assert_same_tables(got, small_shop.for_customers(ids))
    assert len(store.tables_for([]).customers) == 0


def test_parquet_store_sees_new_parts_and_new_tables(small_shop, tmp_path):
    ck.save_tables(small_shop.replace(tickets=None), tmp_path)
    store = ParquetStore(tmp_path)
    cid = int(small_shop.customers["customer_id"].iloc[7])
    assert store.tables_for([cid]).tickets is None
    # the tickets table appears as a directory of parts, then gets one more part
    tickets = small_shop.tickets
    (tmp_path / "tickets").mkdir()
    tickets.iloc[:10].to_parquet(tmp_path / "tickets" / "part-0.parquet", index=False)
    n_before = len(store.tables_for([cid]).tickets)
    extra = tickets.iloc[:1].assign(ticket_id=10**7, customer_id=cid,
                                    opened_at=pd.Timestamp("2025-06-30", tz="UTC"))
    extra.to_parquet(tmp_path / "tickets" / "part-1.parquet", index=False)
    after = store.tables_for([cid]).tickets
    assert len(after) == n_before + 1 and 10**7 in set(after["ticket_id"])
    assert n_before == int((tickets.iloc[:10]["customer_id"] == cid).sum())


def _wait_for_snapshot(store: ParquetStore, cid: int, timeout: float = 30.0) -> None:
    """Keep asking (as callers do: a call after a change starts the new snapshot, at most one
    load per second) until the store holds the current files."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = store._snapshot
        if held is not None and held[0] == store.signature():
            return
        store.tables_for([cid])
        time.sleep(0.1)
    raise AssertionError("the store took no snapshot of the changed files")


def test_memory_store_answers_like_the_files_and_follows_changes(small_shop, tmp_path):
    ck.save_tables(small_shop.replace(tickets=None), tmp_path)
    files = ParquetStore(tmp_path)  # reads the files on every call
    held = ParquetStore(tmp_path, memory_mb=100)
    assert "held in memory" in held.describe() and "held" not in files.describe()
    ids = [int(i) for i in small_shop.customers["customer_id"].iloc[[3, 77, 201]]]
    for a, b in ((held.tables_for([*ids, 10**9]), files.tables_for(ids)),
                 (held.tables_for([]), files.tables_for([]))):
        assert a.normalized and a.present() == b.present()
        for name, frame in b.items():
            pd.testing.assert_frame_equal(a.get(name).reset_index(drop=True),
                                          frame.reset_index(drop=True), obj=name)
    # a table appears, then a new part: the very next call sees it (read from the files) and
    # a new snapshot follows in the background, answering the same
    cid = ids[0]
    (tmp_path / "tickets").mkdir()
    small_shop.tickets.iloc[:5].to_parquet(tmp_path / "tickets" / "part-0.parquet", index=False)
    extra = small_shop.tickets.iloc[:1].assign(ticket_id=10**7, customer_id=cid,
                                               opened_at=pd.Timestamp("2025-06-30", tz="UTC"))
    extra.to_parquet(tmp_path / "tickets" / "part-1.parquet", index=False)
    fresh = held.tables_for([cid]).tickets
    assert 10**7 in set(fresh["ticket_id"])
    _wait_for_snapshot(held, cid)
    pd.testing.assert_frame_equal(held.tables_for([cid]).tickets.reset_index(drop=True),
                                  fresh.reset_index(drop=True))


def test_memory_store_slices_the_snapshot_and_skips_temporary_parts(small_shop, tmp_path):
    ck.save_tables(small_shop.replace(tickets=None), tmp_path)
    (tmp_path / "tickets" / "_tmp").mkdir(parents=True)
    small_shop.tickets.to_parquet(tmp_path / "tickets" / "part-0.parquet", index=False)
    # a writer's temporary part: not data yet, for either path
    small_shop.tickets.iloc[:3].assign(ticket_id=[10**7, 10**7 + 1, 10**7 + 2]).to_parquet(
        tmp_path / "tickets" / "_tmp" / "part-1.parquet", index=False)
    cid = int(small_shop.tickets["customer_id"].iloc[0])
    files = ParquetStore(tmp_path).tables_for([cid]).tickets
    held = ParquetStore(tmp_path, memory_mb=100)
    assert not (files["ticket_id"] >= 10**7).any()
    # unchanged files: answered from memory without touching DuckDB at all
    held._con.close()
    pd.testing.assert_frame_equal(held.tables_for([cid]).tickets.reset_index(drop=True),
                                  files.reset_index(drop=True))


def test_memory_store_does_not_reload_again_and_again(small_shop, tmp_path, monkeypatch,
                                                       caplog):
    ck.save_tables(small_shop, tmp_path)
    loads = []

    def failing(*args, **kwargs):
        loads.append(1)
        raise RuntimeError("out of luck")

    monkeypatch.setattr(ck, "load_tables", failing)
    with caplog.at_level("WARNING", logger="serving.store"):
        store = ParquetStore(tmp_path, memory_mb=100)  # the first load fails: files are read
    assert "RuntimeError: out of luck" in caplog.text and "held" not in store.describe()
    cid = int(small_shop.customers["customer_id"].iloc[0])
    for _ in range(5):
        assert list(store.tables_for([cid]).customers["customer_id"]) == [cid]
    time.sleep(0.2)
    assert len(loads) == 1  # not retried while the files are the same


def test_memory_store_falls_back_to_the_files(small_shop, tmp_path, caplog):
    # too big for the limit: never held
    ck.save_tables(small_shop, tmp_path)
    tiny = ParquetStore(tmp_path, memory_mb=0.001)
    assert "held" not in tiny.describe() and tiny.memory_mb == 0
    # bad rows somewhere: not held (the whole store would not validate), every call reads the
    # files and validates only its own customers' rows
    bad = small_shop.orders.copy()
    bad.loc[bad.index[0], "amount"] = -5.0
    bad.to_parquet(tmp_path / "orders.parquet", index=False)
    with caplog.at_level("WARNING", logger="serving.store"):
        store = ParquetStore(tmp_path, memory_mb=100)
    assert "held" not in store.describe()
    assert "not held in memory" in caplog.text and "orders.amount" in caplog.text
    sound = int(small_shop.customers["customer_id"].iloc[-1])
    assert sound != int(bad["customer_id"].iloc[0])
    got = store.tables_for([sound])
    assert list(got.customers["customer_id"]) == [sound]
    with pytest.raises(ck.DataValidationError, match="amount"):
        store.tables_for([int(bad["customer_id"].iloc[0])])


def test_parquet_store_refuses_a_directory_without_the_required_tables(tmp_path):
    with pytest.raises(ck.DataSourceError, match="does not exist"):
        ParquetStore(tmp_path / "nope")
    with pytest.raises(ck.DataSourceError, match=r"required table\(s\) orders "):
        ParquetStore(tmp_path)


def test_parquet_store_serves_an_orders_only_directory(small_shop, tmp_path):
    bare = small_shop.orders[["customer_id", "ordered_at", "amount"]]
    bare.to_csv(tmp_path / "orders.csv", index=False)
    ids = list(bare["customer_id"].iloc[:2])
    got = ParquetStore(tmp_path).tables_for(ids)
    want = ck.load_tables(tmp_path).for_customers(ids)
    assert "customers" in got.defaulted and got.defaulted == want.defaulted
    # order ids stand for row positions, which differ between the slice and the whole file
    assert_same_tables(got.replace(orders=got.orders.drop(columns="order_id")),
                       want.replace(orders=want.orders.drop(columns="order_id")))


@pytest.mark.postgres
@requires_pg()
def test_database_store_gives_the_customers_rows_fresh(small_shop):
    import psycopg

    schema = f"ck_serve_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        write_tables(small_shop, url)
        store = open_store(url)
        assert isinstance(store, DatabaseStore) and store.id_kind == "int"
        ids = [int(i) for i in small_shop.customers["customer_id"].iloc[[4, 90, 250]]]
        assert_same_tables(store.tables_for(ids), small_shop.for_customers(ids))
        # a ticket inserted now is seen by the next call
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO tickets (ticket_id, customer_id, opened_at, topic, "
                         "compensation_amount) VALUES (%s, %s, %s, 'delivery', 0)",
                         [10**7, ids[0], pd.Timestamp("2025-06-30", tz="UTC").to_pydatetime()])
        assert 10**7 in set(store.tables_for(ids).tickets["ticket_id"])
        store.close()
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.postgres
@requires_pg()
def test_database_store_looks_customers_up_by_index_and_names_tables_without_one(caplog):
    import psycopg

    from serving.store import CUSTOMER_ROWS

    tables, _ = ck.synth.generate(3000, seed=3, start="2024-01-01", end=END)
    schema = f"ck_index_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        write_tables(tables, url)
        store = open_store(url)
        assert store.unindexed == []
        cid = int(tables.customers["customer_id"].iloc[7])
        with psycopg.connect(url, autocommit=True) as conn:
            for name in tables.present():
                plan = conn.execute("EXPLAIN " + CUSTOMER_ROWS.format(table=name),
                                    [[cid]]).fetchall()
                text = " ".join(r[0] for r in plan)
                assert "Index" in text and "Seq Scan" not in text, (name, text)
            conn.execute("DROP INDEX " + conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = "
                "'tickets'", [schema]).fetchone()[0])
        store.close()
        with caplog.at_level("WARNING", logger="serving.store"):
            again = open_store(url)
        assert again.unindexed == ["tickets"]
        assert "no index on customer_id in tickets" in caplog.text
        again.close()
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.parametrize(("ids", "kind"), [(["1", "22", "0"], "int"), (["1", "007"], "str"),
                                           (["1", "a-2"], "str")])
def test_a_csv_store_reads_ids_as_validation_does(tmp_path, ids, kind):
    """CSV files hold every id as text; plain integers become int64 in validation, so the
    store parses requested ids as integers then (a text id would never be found)."""
    pd.DataFrame({"customer_id": ids, "ordered_at": "2025-01-02T00:00:00Z",
                  "amount": 10.0}).to_csv(tmp_path / "orders.csv", index=False)
    store = ParquetStore(tmp_path)
    assert store.id_kind == kind
    assert ck.validate(ck.load_tables(tmp_path)).orders["customer_id"].dtype.kind == \
        ("i" if kind == "int" else "O")
