"""The data contract: every problem is reported at once, named by table, column, rows and ids."""

from __future__ import annotations

import pandas as pd
import pytest

import churnkit as ck
from churnkit.data import REQUIRED_TABLES, TABLES, missing_tables


def _shop() -> dict[str, pd.DataFrame]:
    customers = pd.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "signup_at": ["2024-01-01", "2024-01-05T10:00:00+03:00", "2024-02-01"],
            "region": ["Moscow", "Omsk", None],
            "timezone": ["Europe/Moscow", "Asia/Omsk", None],
            "consent_email": [True, False, True],
            "unsubscribed_at": [None, "2024-03-01", None],
        }
    )
    orders = pd.DataFrame(
        {
            "order_id": [10, 11, 12, 13],
            "customer_id": [1, 1, 2, 3],
            "ordered_at": ["2024-01-02", "2024-02-02", "2024-01-10", "2024-02-03"],
            "amount": [100.0, 50.0, 20.0, 0.0],
            "discount_amount": [0.0, 5.0, 0.0, 0.0],
            "delivery_cost": [5.0, 0.0, 3.0, 0.0],
            "n_items": [1, 2, 1, 1],
            "category": ["books", "toys", "books", None],
            "status": ["delivered", "late", "lost", "placed"],
            "status_at": ["2024-01-04", "2024-02-09", "2024-01-20", "2024-02-03"],
            "delivery_delay_days": [None, 3.0, None, None],
        }
    )
    tickets = pd.DataFrame(
        {
            "ticket_id": [100],
            "customer_id": [2],
            "opened_at": ["2024-01-21"],
            "topic": ["delivery"],
            "resolved_at": [None],
            "compensation_amount": [0.0],
            "satisfaction": [None],
        }
    )
    return {"customers": customers, "orders": orders, "tickets": tickets}


def test_valid_shop_is_normalized():
    tables = ck.validate(ck.Tables(**_shop()))
    assert tables.normalized
    assert str(tables.orders["ordered_at"].dtype) == "datetime64[us, UTC]"
    # an offset is converted to UTC; a naive value is read as UTC
    signup = tables.customers.set_index("customer_id")["signup_at"]
    assert signup[2] == pd.Timestamp("2024-01-05T07:00:00Z")
    assert signup[1] == pd.Timestamp("2024-01-01T00:00:00Z")
    # absent optional columns get their contract default; a missing time zone means UTC
    assert not tables.customers["consent_phone"].any()
    assert tables.customers.set_index("customer_id")["timezone"][3] == "UTC"
    # event tables sorted by customer then time, so for_customers is a binary search
    assert tables.orders["customer_id"].is_monotonic_increasing
    assert tables.browsing is None and tables.contacts is None


def test_for_customers_slices_every_table():
    tables = ck.validate(ck.Tables(**_shop()))
    one = tables.for_customers([2, 999])
    assert one.customers["customer_id"].tolist() == [2]
    assert one.orders["order_id"].tolist() == [12]
    assert one.tickets["ticket_id"].tolist() == [100]
    assert len(tables.for_customers([]).orders) == 0


def _problems(**frames: pd.DataFrame) -> list[ck.Problem]:
    shop = _shop()
    shop.update(frames)
    with pytest.raises(ck.DataValidationError) as info:
        ck.validate(ck.Tables(**shop))
    return info.value.problems


def _find(problems, table, column, fragment):
    found = [
        p for p in problems if p.table == table and p.column == column and fragment in p.message
    ]
    assert found, f"no {table}.{column} problem with {fragment!r} in {problems}"
    return found[0]


def test_every_planted_problem_is_reported_at_once():
    shop = _shop()
    customers = shop["customers"].copy()
    customers.loc[2, "customer_id"] = 2  # duplicate id
    customers.loc[1, "timezone"] = "Mars/Olympus"
    orders = shop["orders"].copy()
    orders.loc[0, "amount"] = -5.0
    orders.loc[1, "status"] = "teleported"
    orders.loc[2, "ordered_at"] = "not a date"
    orders.loc[3, "customer_id"] = 42  # unknown customer
    orders.loc[0, "status_at"] = "2023-12-31"  # before ordered_at
    orders.loc[1, "ordered_at"] = "1850-01-01"  # impossible
    orders = orders.drop(columns=["status"]).assign(status=orders["status"])
    tickets = shop["tickets"].assign(satisfaction=[9])
    problems = _problems(customers=customers, orders=orders, tickets=tickets)

    dup = _find(problems, "customers", "customer_id", "duplicate")
    assert dup.n_rows == 2 and dup.examples == [2]
    _find(problems, "customers", "timezone", "time zone")
    neg = _find(problems, "orders", "amount", "negative")
    assert neg.n_rows == 1 and neg.examples == [10]
    enum = _find(problems, "orders", "status", "unknown values")
    assert "teleported" in enum.message and enum.examples == [11]
    _find(problems, "orders", "ordered_at", "unparseable")
    _find(problems, "orders", "ordered_at", "impossible")
    orphan = _find(problems, "orders", "customer_id", "not in customers")
    assert orphan.examples == [13]
    _find(problems, "orders", "status_at", "before ordered_at")
    _find(problems, "tickets", "satisfaction", "above 5")
    # the message names table.column, the row count and example ids
    assert str(neg) == "orders.amount: 1 row: negative values below 0 (expected >= 0) " \
        "(e.g. order_id 10)"


def test_missing_required_table_and_column():
    shop = _shop()
    with pytest.raises(ck.DataValidationError) as info:
        ck.validate(ck.Tables(customers=shop["customers"], orders=None))  # type: ignore[arg-type]
    assert [p.table for p in info.value.problems] == ["orders"]
    problems = _problems(orders=shop["orders"].drop(columns=["amount", "status_at"]))
    missing = {p.column for p in problems if "required column is missing" in p.message}
    assert missing == {"amount", "status_at"}


def test_nulls_in_non_nullable_columns():
    orders = _shop()["orders"].copy()
    orders.loc[1, "amount"] = None
    problem = _find(_problems(orders=orders), "orders", "amount", "empty values")
    assert problem.examples == [11]


def test_text_ids_are_harmonized_across_tables():
    shop = _shop()
    customers = shop["customers"].assign(customer_id=["a", "b", "c"])
    orders = shop["orders"].assign(customer_id=["a", "a", "b", "c"])
    tables = ck.validate(ck.Tables(customers=customers, orders=orders,
                                   tickets=shop["tickets"].assign(customer_id=["b"])))
    assert tables.orders["customer_id"].tolist() == ["a", "a", "b", "c"]
    assert tables.for_customers(["b"]).tickets["ticket_id"].tolist() == [100]


def test_contract_lists_five_tables_with_time_columns():
    assert list(TABLES) == ["customers", "orders", "browsing", "tickets", "contacts"]
    for spec in TABLES.values():
        assert spec.time_column in spec.column_names


def test_missing_tables_are_the_absent_required_ones_in_contract_order():
    assert REQUIRED_TABLES == ("orders",)
    assert missing_tables([]) == ["orders"]
    assert missing_tables({"customers", "browsing", "tickets"}) == ["orders"]
    assert missing_tables({"orders"}) == []
    assert missing_tables(iter(TABLES)) == []


def test_csv_and_parquet_directories_load_the_same(tmp_path):
    shop = _shop()
    csv_dir, pq_dir = tmp_path / "csv", tmp_path / "pq"
    csv_dir.mkdir()
    for name, frame in shop.items():
        frame.to_csv(csv_dir / f"{name}.csv", index=False)
    ck.save_tables(ck.validate(ck.Tables(**shop)), pq_dir)
    from_csv, from_pq = ck.load_tables(csv_dir), ck.load_tables(pq_dir)
    for name in ("customers", "orders", "tickets"):
        pd.testing.assert_frame_equal(
            from_csv.get(name), from_pq.get(name), check_dtype=False, check_index_type=False
        )
    assert from_pq.orders["amount"].dtype == "float64"


def test_load_tables_reports_missing_directory_and_tables(tmp_path):
    with pytest.raises(ck.DataSourceError, match="does not exist"):
        ck.load_tables(tmp_path / "nowhere")
    with pytest.raises(ck.DataValidationError, match="required table is missing") as err:
        ck.load_tables(tmp_path)
    assert [p.table for p in err.value.problems] == ["orders"]
    _shop()["customers"].to_csv(tmp_path / "customers.csv", index=False)
    with pytest.raises(ck.DataValidationError, match=r"no orders\.parquet or orders\.csv") as err:
        ck.load_tables(tmp_path)
    assert [p.table for p in err.value.problems] == ["orders"]


def test_as_of_is_never_implicit():
    with pytest.raises(ValueError, match="never assumes 'now'"):
        ck.as_utc_timestamp(None)
    assert ck.as_utc_timestamp("2024-03-01") == pd.Timestamp("2024-03-01", tz="UTC")
    assert ck.as_utc_timestamp("2024-03-01T03:00+03:00") == pd.Timestamp("2024-03-01", tz="UTC")
