"""The event stores return exactly the validated rows of the requested customers, fresh per
call: a Parquet directory through DuckDB, and PostgreSQL."""

from __future__ import annotations

import os
import uuid

import pandas as pd
import pytest

import churnkit as ck
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


def test_parquet_store_refuses_a_directory_without_the_required_tables(tmp_path):
    with pytest.raises(ck.DataSourceError, match="does not exist"):
        ParquetStore(tmp_path / "nope")
    with pytest.raises(ck.DataSourceError, match="customers, orders"):
        ParquetStore(tmp_path)


PG_URL = os.environ.get("CHURNKIT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_error() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'churnkit[postgres]')"
    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"no PostgreSQL server reachable at {PG_URL}: {str(exc).strip()[:120]}"
    return None


@pytest.mark.postgres
@pytest.mark.skipif(_pg_error() is not None, reason=_pg_error() or "")
def test_database_store_gives_the_customers_rows_fresh(small_shop):
    import psycopg

    from churnkit.db import write_tables

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
