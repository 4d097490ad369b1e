"""Reading requests: as_of, customer ids, and /score_events rows into validated tables."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import churnkit as ck
from churnkit.errors import RequestError
from serving.parsing import (
    customer_id_of,
    parse_as_of,
    parse_ids,
    records_of,
    tables_from_rows,
)
from serving.schemas import OrdersRow
from serving.settings import Settings

SETTINGS = Settings.from_env({"CHURNKIT_MODEL": "m", "CHURNKIT_DATA": "d"})


@pytest.fixture(scope="module")
def one_customer():
    tables, _ = ck.synth.generate(60, seed=5, start="2024-01-01", end="2025-07-01")
    cid = int(tables.orders["customer_id"].iloc[0])
    return cid, tables.for_customers([cid])


def _rows(frame: pd.DataFrame | None) -> list[dict] | None:
    if frame is None:
        return None
    return json.loads(frame.to_json(orient="records", date_format="iso", date_unit="us"))


def test_as_of_rules():
    now = pd.Timestamp("2026-01-01T12:00:00Z")
    assert parse_as_of(None, SETTINGS, now) == now
    given = pd.Timestamp("2025-07-01T03:00:00+03:00").to_pydatetime()
    assert parse_as_of(given, SETTINGS, now) == pd.Timestamp("2025-07-01T00:00:00Z")
    assert parse_as_of((now + pd.Timedelta(hours=23)).to_pydatetime(), SETTINGS, now) > now
    with pytest.raises(RequestError, match="in the future"):
        parse_as_of((now + pd.Timedelta(days=2)).to_pydatetime(), SETTINGS, now)
    with pytest.raises(RequestError, match="before 1900"):
        parse_as_of(pd.Timestamp("1850-01-01T00:00:00Z").to_pydatetime(), SETTINGS, now)


def test_ids_take_the_store_kind_and_are_distinct():
    assert parse_ids([7, "7", " 8 ", "x", 9, 7, "-3"], "int") == ([7, 8, 9, -3], ["x"])
    assert parse_ids([7, "7", "a", "a"], "str") == (["7", "a"], [])


def test_rows_become_the_validated_tables_of_one_customer(one_customer):
    cid, mine = one_customer
    rows = {name: _rows(mine.get(name)) for name in ck.TABLES}
    rows["contacts"] = []
    tables = tables_from_rows(rows)
    assert customer_id_of(tables) == cid and isinstance(customer_id_of(tables), int)
    assert len(tables.orders) == len(mine.orders)
    assert tables.contacts is not None and len(tables.contacts) == 0
    assert set(ck.TABLES["contacts"].column_names) <= set(tables.contacts.columns)


def test_rows_breaking_the_contract_are_a_422_listing_every_problem(one_customer):
    _, mine = one_customer
    orders = _rows(mine.orders)
    orders[0] = {**orders[0], "amount": -5, "status": "teleported"}
    with pytest.raises(RequestError) as caught:
        tables_from_rows({"customers": _rows(mine.customers), "orders": orders})
    assert caught.value.status == 422
    detail = " ".join(caught.value.detail or [])
    assert "orders.amount" in detail and "orders.status" in detail


def test_two_customers_are_refused(one_customer):
    tables, _ = ck.synth.generate(5, seed=5, start="2024-01-01", end="2025-07-01")
    with pytest.raises(RequestError, match="exactly one customer") as caught:
        tables_from_rows({"customers": _rows(tables.customers.iloc[:2]), "orders": []})
    assert caught.value.status == 422


def test_records_of_leaves_out_the_columns_not_sent():
    row = OrdersRow.model_validate_json(
        '{"order_id": 1, "customer_id": 7.0, "ordered_at": "2025-01-01T10:00:00+02:00", '
        '"amount": 5, "status": "delivered", "status_at": "2025-01-02T00:00:00Z"}')
    (record,) = records_of([row])
    assert record["customer_id"] == 7 and record["ordered_at"] == "2025-01-01T10:00:00+02:00"
    assert "n_items" not in record and "discount_amount" not in record
    assert records_of(None) is None
