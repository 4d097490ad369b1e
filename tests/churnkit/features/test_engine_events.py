"""The array engine equals the SQL oracle for the delivery, complaints and contacts families.

On a synthetic shop at several cutoffs (some exactly at a moment something became known), on
random small shops, and on hand-made edge cases; and a customer computed alone equals their
row of the full computation bitwise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _shops import AS_OF, ago, shop, shops
from hypothesis import HealthCheck, given, settings

import churnkit as ck
from churnkit.features.arrays import Known, ShopArrays, known_at
from churnkit.features.engine import compute_columns
from churnkit.features.family import Columns
from churnkit.features.oracle import sql_features
from churnkit.features.registry import family

FAMS = [family(name) for name in ("delivery", "complaints", "contacts")]
EXACT = ("count", "flag")


def _us(as_of: pd.Timestamp) -> int:
    return int(as_of.value) // 1000


def _engine(tables: ck.Tables, as_of: pd.Timestamp) -> tuple[Known, Columns]:
    known = known_at(ShopArrays.of(tables), _us(as_of))
    return known, compute_columns(known, FAMS)


def assert_engine_is_oracle(tables: ck.Tables, as_of: pd.Timestamp) -> tuple[Known, Columns]:
    """Every non-python column of the three families equals the SQL definition: counts and
    flags exactly, floats within 1e-9 relative (NaN where SQL gives NULL)."""
    known, cols = _engine(tables, as_of)
    ref = sql_features(tables, as_of, FAMS)
    assert list(ref.index) == list(known.ids)
    for fam in FAMS:
        for f in fam.sql_features():
            got = np.asarray(cols[f.name])
            assert got.shape == (known.n,), f.name
            if f.dtype in EXACT:
                want = ref[f.name].to_numpy(dtype="int64" if f.dtype == "count" else "bool")
                assert got.dtype == want.dtype, f.name
                bad = np.flatnonzero(got != want)
            else:
                want = ref[f.name].to_numpy(dtype="float64", na_value=np.nan)
                assert got.dtype == np.float64, f.name
                ok = np.isclose(got, want, rtol=1e-9, atol=0.0, equal_nan=True)
                bad = np.flatnonzero(~ok)
            assert not len(bad), (f.name, known.ids[bad[:3]], got[bad[:3]], want[bad[:3]])
    return known, cols


def assert_alone_is_row(tables: ck.Tables, as_of: pd.Timestamp) -> None:
    """Each customer computed alone gives bitwise their row of the full computation."""
    arrays = ShopArrays.of(tables)
    full = known_at(arrays, _us(as_of))
    cols = compute_columns(full, FAMS)
    row = {cid: k for k, cid in enumerate(full.ids.tolist())}
    for i in range(len(arrays.ids)):
        one = known_at(arrays.take(np.array([i])), _us(as_of))
        if one.n == 0:  # not signed up before as_of
            assert arrays.ids[i] not in row
            continue
        k = row[arrays.ids[i]]
        for name, values in compute_columns(one, FAMS).items():
            alone, in_full = np.asarray(values), np.asarray(cols[name])[k:k + 1]
            assert alone.dtype == in_full.dtype, name
            assert alone.tobytes() == in_full.tobytes(), (name, arrays.ids[i], alone, in_full)


# --- a synthetic shop ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synthetic() -> ck.Tables:
    tables, _ = ck.synth.generate(300, seed=11, start="2024-01-01", end="2025-01-01")
    return ck.validate(tables)


def _cutoffs(t: ck.Tables) -> list[pd.Timestamp]:
    """Plain dates, and cutoffs exactly at a status_at, a resolution, an open and a conversion
    (the moment the value becomes known: at as_of it is not known yet)."""
    out = [pd.Timestamp(d, tz="UTC") for d in ("2024-03-01", "2024-08-15", "2025-01-01")]
    for frame, column in ((t.orders, "status_at"), (t.tickets, "resolved_at"),
                          (t.contacts, "opened_at"), (t.contacts, "converted_at")):
        moments = frame[column].dropna().sort_values()
        out.append(moments.iloc[len(moments) // 2])
    return out


def test_synthetic_shop_covers_the_edge_cases(synthetic):
    t = synthetic
    assert (t.contacts["group"] == "control").any() and (t.contacts["group"] == "treatment").any()
    assert t.contacts["converted_at"].notna().any() and t.contacts["opened_at"].notna().any()
    assert t.tickets["resolved_at"].isna().any() and t.tickets["satisfaction"].isna().any()
    assert t.orders["status"].isin(["late", "lost", "not_delivered", "returned"]).any()


@pytest.mark.slow
def test_synthetic_shop_engine_is_oracle(synthetic):
    for as_of in _cutoffs(synthetic):
        known, cols = assert_engine_is_oracle(synthetic, as_of)
        assert known.n > 0
    # the columns measure something on this shop
    assert cols["returned_orders_lifetime"].sum() > 0 and cols["holdout_contacts"].sum() > 0
    assert np.isfinite(cols["days_since_contact_5"]).any()


@pytest.mark.slow
def test_synthetic_customer_alone_is_their_row(synthetic):
    for as_of in _cutoffs(synthetic)[1::3]:
        assert_alone_is_row(synthetic, as_of)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shops())
def test_random_shops_engine_is_oracle(case):
    tables, as_of = case
    assert_engine_is_oracle(tables, as_of)
    assert_alone_is_row(tables, as_of)


# --- hand-made edge cases -----------------------------------------------------------------------

US = pd.Timedelta(microseconds=1)


@pytest.fixture(scope="module")
def edges() -> ck.Tables:
    customers = {"customer_id": [1, 2, 3, 4, 5, 6, 7],
                 "signup_at": [ago(500), ago(300), ago(300), ago(300), ago(-1), ago(300), AS_OF]}
    orders = {
        "order_id": [1, 2, 3, 4, 5, 6, 7, 8],
        "customer_id": [1, 1, 1, 1, 1, 1, 3, 5],
        "ordered_at": [ago(40), ago(20), ago(50), AS_OF, ago(100), ago(5), ago(30), ago(-2)],
        "status": ["returned", "lost", "late", "delivered", "not_delivered", "delivered",
                   "delivered", "delivered"],
        # order 2's loss becomes known exactly at as_of: still in transit, its delay unknown
        "status_at": [ago(10), AS_OF, ago(45), AS_OF, ago(95), AS_OF - US, ago(29), ago(-3)],
        "delivery_delay_days": [None, 7.0, 3.0, None, None, 1.0, None, None],
        "amount": [10.0] * 8,
    }
    tickets = {
        "ticket_id": [1, 2, 3, 4, 5],
        "customer_id": [1, 1, 1, 1, 2],
        "opened_at": [ago(10), ago(60), AS_OF, ago(200), ago(3)],
        "topic": ["delivery", "quality", "price", "delivery", "service"],
        # ticket 1 is resolved exactly at as_of: open, no compensation, no rating yet
        "resolved_at": [AS_OF, ago(58), None, None, ago(1)],
        "compensation_amount": [25.0, 5.0, 0.0, 0.0, 0.0],
        "satisfaction": [4, None, None, None, 2],
    }
    sent6 = [ago(d) for d in (1, 2, 3, 4, 5, 6)] + [AS_OF]
    contacts = {
        "contact_id": list(range(1, 11)),
        "customer_id": [1, 4, 4] + [6] * 7,
        "sent_at": [ago(100), ago(30), ago(10), *sent6],
        "channel": ["email", "sms", "email", "email", "sms", "push", "email", "phone", "email",
                    "email"],
        "action": ["we_miss_you"] * 10,
        "group": ["treatment", "control", "control"] + ["treatment"] * 7,
        "opened_at": [ago(99), None, ago(9), None, AS_OF, ago(2.5), None, None, None, None],
        "converted_at": [AS_OF, ago(20), None, ago(0.5), None, None, None, None, None, None],
    }
    return shop(customers, orders, tickets=tickets, contacts=contacts)


def test_edge_cases_engine_is_oracle(edges):
    assert_engine_is_oracle(edges, AS_OF)
    for days in (0.5, 1, 2, 3, 10, 30, 95):  # just around the moments of the cases
        assert_engine_is_oracle(edges, AS_OF - pd.Timedelta(days=days))
        assert_engine_is_oracle(edges, AS_OF - pd.Timedelta(days=days) + US)


def test_edge_cases_alone_is_row(edges):
    assert_alone_is_row(edges, AS_OF)


def _rows(edges: ck.Tables) -> dict[int, dict[str, object]]:
    known, cols = _engine(edges, AS_OF)
    return {cid: {k: v[i] for k, v in cols.items()} for i, cid in enumerate(known.ids.tolist())}


def test_delivery_status_known_from_status_at(edges):
    r = _rows(edges)
    assert set(r) == {1, 2, 3, 4, 6}  # 5 and 7 sign up at or after as_of
    one = r[1]  # orders 1, 2, 3, 5, 6 (order 4 is placed at as_of)
    assert (one["returned_orders_30d"], one["returned_orders_lifetime"]) == (1, 1)
    assert one["lost_orders_lifetime"] == 0 and one["orders_in_transit"] == 1
    assert (one["late_orders_30d"], one["late_orders_90d"]) == (0, 1)
    assert (one["delivery_failures_90d"], one["delivery_failures_lifetime"]) == (1, 2)
    assert one["delivery_failure_share"] == pytest.approx(2 / 5)
    assert one["return_share"] == pytest.approx(1 / 5)
    assert one["days_since_last_failure"] == 45
    assert one["mean_delivery_delay_days"] == 2 and one["max_delivery_delay_days"] == 3
    assert one["paid_not_received"] and one["paid_not_received_orders"] == 1
    assert one["days_since_paid_not_received"] == 95
    two = r[2]  # no orders: counts 0, shares empty
    assert two["orders_in_transit"] == 0 and np.isnan(two["delivery_failure_share"])
    assert not two["paid_not_received"] and np.isnan(two["days_since_paid_not_received"])


def test_complaints_open_tickets_ratings_and_per_order_scores(edges):
    r = _rows(edges)
    one = r[1]  # tickets 1, 2, 4 (ticket 3 is opened at as_of)
    assert one["tickets_lifetime"] == 3 and one["tickets_delivery_lifetime"] == 2
    assert one["tickets_price_lifetime"] == 0 and one["tickets_30d"] == 1
    assert one["unresolved_tickets"] == 2 and one["oldest_unresolved_ticket_days"] == 200
    assert one["days_since_last_ticket"] == 10 and one["mean_resolution_days"] == 2
    assert np.isnan(one["mean_satisfaction"]) and np.isnan(one["min_satisfaction"])
    assert one["compensation_total"] == 5 and one["compensated_tickets"] == 1
    assert one["tickets_per_order"] == pytest.approx(3 / 5)
    assert one["compensation_per_order"] == pytest.approx(1.0)
    two = r[2]  # tickets but no orders
    assert two["tickets_lifetime"] == 1 and two["mean_satisfaction"] == 2
    assert np.isnan(two["tickets_per_order"]) and np.isnan(two["compensation_per_order"])
    three = r[3]  # orders but no tickets: a true zero per order
    assert three["tickets_lifetime"] == 0 and three["compensation_total"] == 0
    assert three["tickets_per_order"] == 0 and three["compensation_per_order"] == 0


def test_contacts_groups_opens_conversions_and_recent_ages(edges):
    r = _rows(edges)
    one = r[1]  # converted exactly at as_of: not yet
    assert one["contacts_email"] == 1 and one["opens_email"] == 1
    assert one["conversions_lifetime"] == 0 and np.isnan(one["days_since_last_comeback"])
    four = r[4]  # control group only: held out, never contacted
    assert four["contacts_lifetime"] == 0 and four["holdout_contacts"] == 2
    assert four["opens_lifetime"] == 0 and np.isnan(four["open_rate"])
    assert np.isnan(four["days_since_last_contact"])
    assert four["days_since_last_comeback"] == 20  # a comeback counts in either group
    six = r[6]  # six messages before as_of, one at it
    assert six["contacts_lifetime"] == 6 and six["contacts_90d"] == 6
    assert six["opens_lifetime"] == 1 and six["opens_push"] == 1  # the open at as_of is not known
    assert six["open_rate"] == pytest.approx(1 / 6)
    assert six["conversion_rate"] == pytest.approx(1 / 6)
    ages = [six[f"days_since_contact_{k}"] for k in range(2, 6)]
    assert six["days_since_last_contact"] == 1 and ages == [2, 3, 4, 5]
    assert six["days_since_last_comeback"] == 0.5
    three = r[3]  # no contacts at all
    assert three["holdout_contacts"] == 0 and np.isnan(three["days_since_contact_2"])
