"""Orders-only shops: a bare purchase export (customer, time, amount) is a whole shop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pytest

import churnkit as ck
from churnkit.features import left_out_families

START, END = "2023-01-01", "2024-07-01"
AS_OF = pd.Timestamp("2024-03-01", tz="UTC")
BARE = ["customer_id", "ordered_at", "amount"]
LEFT_OUT = {"delivery": ("orders.status",), "browsing": ("browsing",),
            "complaints": ("tickets",), "contacts": ("contacts",)}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "churnkit", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def orders() -> pd.DataFrame:
    """A purchase export: the synthetic shop's orders reduced to three columns, in file order."""
    tables, _ = ck.synth.generate(300, seed=3, start=START, end=END)
    return tables.orders[BARE].sample(frac=1.0, random_state=0).reset_index(drop=True)


def _write(directory: Path, **frames: pd.DataFrame) -> Path:
    directory.mkdir()
    for name, frame in frames.items():
        frame.to_csv(directory / f"{name}.csv", index=False)
    return directory


@pytest.fixture(scope="module")
def shops(orders, tmp_path_factory) -> tuple[Path, Path]:
    """The bare export, and the same shop given in full with the values the defaults stand for:
    signup = first order, every order delivered when placed, order ids = row positions."""
    root = tmp_path_factory.mktemp("shops")
    bare = _write(root / "bare", orders=orders)
    first = orders.groupby("customer_id")["ordered_at"].min()
    explicit_orders = orders.assign(order_id=range(len(orders)), status="delivered",
                                    status_at=orders["ordered_at"])
    customers = pd.DataFrame({"customer_id": first.index, "signup_at": first.to_numpy()})
    explicit = _write(root / "explicit", orders=explicit_orders, customers=customers)
    return bare, explicit


def test_validate_cli_accepts_a_bare_export_and_says_what_is_left_out(shops):
    result = run("validate", str(shops[0]))
    assert result.returncode == 0, result.stderr
    assert "satisfies the data contract" in result.stdout
    line = next(li for li in result.stdout.splitlines() if li.startswith("orders only: "))
    assert ("delivery (no orders.status), browsing (no browsing table), complaints (no tickets "
            "table), contacts (no contacts table) families left out") in line
    assert "customers derived from the first order" in line and "no consent: no channel" in line
    assert "late deliveries" in result.stdout and "not recorded" in result.stdout
    # a shop given in full says nothing of the kind
    assert "orders only" not in run("validate", str(shops[1])).stdout


def test_load_tables_derives_the_customers_a_given_table_would_give(shops):
    bare, explicit = ck.load_tables(shops[0]), ck.load_tables(shops[1])
    assert bare.present() == ("customers", "orders")
    assert {"customers", "orders.status", "orders.status_at", "orders.order_id"} <= bare.defaulted
    assert not bare.recorded("customers") and not bare.recorded("orders.status")
    assert bare.recorded("orders") and bare.recorded("orders.amount")
    pdt.assert_frame_equal(bare.customers, explicit.customers)
    pdt.assert_frame_equal(bare.orders, explicit.orders)
    assert not bare.customers.filter(like="consent_").any().any()
    assert (bare.customers["timezone"] == "UTC").all()
    assert left_out_families(bare) == LEFT_OUT
    assert left_out_families(explicit) == {k: v for k, v in LEFT_OUT.items() if k != "delivery"}


def test_features_leave_out_what_the_export_lacks_and_equal_the_explicit_shop(shops):
    bare, explicit = ck.load_tables(shops[0]), ck.load_tables(shops[1])
    features = ck.build_features(bare, as_of=AS_OF)
    assert features.attrs["families"] == ["purchases", "clock", "btyd", "consent"]
    assert not any(c.startswith(("late_orders_", "sessions_", "tickets_", "contacts_"))
                   for c in features.columns)
    kept = {"orders_lifetime", "p_alive", "btyd_frequency", "days_since_last_order"}
    assert kept <= set(features.columns)
    assert features["orders_lifetime"].sum() > 0 and features["p_alive"].notna().all()
    full = ck.build_features(explicit, as_of=AS_OF)
    assert "delivery" in full.attrs["families"]
    pdt.assert_frame_equal(features, full[features.columns])
    # one customer alone equals its row of the whole base (the derived table slices alike)
    one = features.index[7]
    alone = ck.build_features(bare, as_of=AS_OF, customer_ids=[one],
                              population=features.attrs["population"])
    pdt.assert_frame_equal(alone, features.loc[[one]])


def test_labels_equal_those_of_the_explicit_shop(shops):
    bare, explicit = ck.load_tables(shops[0]), ck.load_tables(shops[1])
    labels = ck.build_labels(bare, as_of=AS_OF, horizon_days=90)
    assert len(labels) > 0
    pdt.assert_frame_equal(labels, ck.build_labels(explicit, as_of=AS_OF, horizon_days=90))


def test_validate_derives_customers_for_tables_without_them(orders):
    tables = ck.validate(ck.Tables(customers=None, orders=orders))
    assert "customers" in tables.defaulted
    assert sorted(tables.customers["customer_id"]) == sorted(orders["customer_id"].unique())


def test_save_tables_writes_what_the_shop_gave(shops, tmp_path):
    bare = ck.load_tables(shops[0])
    ck.save_tables(bare, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["orders.parquet"]
    assert sorted(pd.read_parquet(tmp_path / "orders.parquet").columns) == sorted(BARE)
    again = ck.load_tables(tmp_path)
    assert again.defaulted == bare.defaulted
    pdt.assert_frame_equal(again.customers, bare.customers)
    # order ids are row positions, and the saved file holds the rows sorted
    pdt.assert_frame_equal(again.orders.drop(columns="order_id"),
                           bare.orders.drop(columns="order_id"))


def _problems(**frames: pd.DataFrame | None) -> list[ck.Problem]:
    with pytest.raises(ck.DataValidationError) as info:
        ck.validate(ck.Tables(**frames))
    return info.value.problems


def test_an_export_without_amount_names_orders_amount(orders, tmp_path):
    result = run("validate", str(_write(tmp_path / "shop", orders=orders.drop(columns="amount"))))
    assert result.returncode == 1
    assert "orders.amount: required column is missing" in result.stderr
    [problem] = _problems(orders=orders.drop(columns="amount"))
    assert (problem.table, problem.column) == ("orders", "amount")


def test_a_status_without_its_time_is_refused(orders):
    # the latest status known from the order's own time would leak into earlier features
    [problem] = _problems(orders=orders.assign(status="returned"))
    assert (problem.table, problem.column) == ("orders", "status_at")
    assert "absent only together with status" in problem.message


def test_a_status_time_alone_means_delivered_then(orders):
    at = pd.to_datetime(orders["ordered_at"], format="ISO8601") + pd.Timedelta(days=2)
    tables = ck.validate(ck.Tables(orders=orders.assign(status_at=at)))
    assert (tables.orders["status"] == "delivered").all()
    assert "orders.status" in tables.defaulted and tables.recorded("orders.status_at")


def test_customers_given_without_consent_or_status(orders):
    first = orders.groupby("customer_id")["ordered_at"].min()
    customers = pd.DataFrame({"customer_id": first.index, "signup_at": first.to_numpy()})
    tables = ck.validate(ck.Tables(customers=customers, orders=orders))
    assert tables.recorded("customers") and not tables.recorded("customers.consent_email")
    assert list(left_out_families(tables)) == list(LEFT_OUT)


def test_browsing_of_someone_who_never_ordered_is_named(orders):
    browsing = pd.DataFrame({"customer_id": [-1], "session_id": [1],
                             "ts": ["2024-01-01"], "event": ["view"]})
    [problem] = _problems(orders=orders, browsing=browsing)
    assert (problem.table, problem.column) == ("browsing", "customer_id")
    assert "customers are derived from the orders" in problem.message


def test_no_orders_and_no_customers_names_orders(tmp_path):
    with pytest.raises(ck.DataValidationError, match=r"no orders\.parquet or orders\.csv") as info:
        ck.load_tables(tmp_path)
    assert [p.table for p in info.value.problems] == ["orders"]
