"""Leakage: features at as_of never see anything known at or after as_of, for every family."""

from __future__ import annotations

import pandas as pd
import pandas.testing as pdt
import pytest
from _shops import AS_OF, POPULATION, ago, orders_only, shop, shops
from hypothesis import HealthCheck, given, settings

from churnkit.features import build_features
from churnkit.features.registry import families

ALL_FAMILIES = [f.name for f in families()]


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shops())
def test_features_equal_those_of_the_tables_cut_at_as_of(case):
    tables, as_of = case
    full = build_features(tables, as_of=as_of, population=POPULATION)
    cut = build_features(tables.until(as_of), as_of=as_of, population=POPULATION)
    assert full.attrs["families"] == ALL_FAMILIES
    pdt.assert_frame_equal(full, cut)
    # and the tables cut at as_of hold no row from as_of on: nothing to leak
    assert (tables.until(as_of).orders["ordered_at"] < as_of).all()


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shops())
def test_orders_only_features_equal_those_of_the_tables_cut_at_as_of(case):
    tables, as_of = case
    bare = orders_only(tables)
    full = build_features(bare, as_of=as_of, population=POPULATION)
    cut = build_features(bare.until(as_of), as_of=as_of, population=POPULATION)
    assert full.attrs["families"] == ["purchases", "clock", "btyd", "consent"]
    pdt.assert_frame_equal(full, cut)


def _customer(**extra) -> dict:
    return {"customer_id": [1], "signup_at": [ago(300)], **extra}


def test_an_order_exactly_at_as_of_is_invisible():
    before = shop(_customer(), {"order_id": [1], "customer_id": [1], "ordered_at": [ago(10)],
                                "amount": [20.0], "status": ["delivered"],
                                "status_at": [ago(8)]})
    with_now = shop(_customer(), {"order_id": [1, 2], "customer_id": [1, 1],
                                  "ordered_at": [ago(10), AS_OF], "amount": [20.0, 99.0],
                                  "status": ["delivered", "lost"],
                                  "status_at": [ago(8), AS_OF]})
    a = build_features(before, as_of=AS_OF, population=POPULATION)
    b = build_features(with_now, as_of=AS_OF, population=POPULATION)
    pdt.assert_frame_equal(a, b)
    assert b.loc[1, "orders_lifetime"] == 1
    assert b.loc[1, "days_since_last_order"] == 10


def test_a_status_learned_at_as_of_is_not_known():
    t = shop(_customer(), {"order_id": [1], "customer_id": [1], "ordered_at": [ago(10)],
                           "amount": [20.0], "status": ["lost"], "status_at": [AS_OF],
                           "delivery_delay_days": [None]})
    f = build_features(t, as_of=AS_OF, population=POPULATION)
    assert f.loc[1, "lost_orders_lifetime"] == 0
    assert not f.loc[1, "paid_not_received"]
    assert f.loc[1, "orders_in_transit"] == 1
    g = build_features(t, as_of=AS_OF + pd.Timedelta(microseconds=1), population=POPULATION)
    assert g.loc[1, "paid_not_received"]
    assert g.loc[1, "orders_in_transit"] == 0


def test_a_ticket_resolved_exactly_at_as_of_is_unresolved():
    t = shop(_customer(), {}, tickets={
        "ticket_id": [1], "customer_id": [1], "opened_at": [ago(5)], "topic": ["delivery"],
        "resolved_at": [AS_OF], "compensation_amount": [30.0], "satisfaction": [2]})
    f = build_features(t, as_of=AS_OF, population=POPULATION)
    row = f.loc[1]
    assert row["unresolved_tickets"] == 1
    assert row["oldest_unresolved_ticket_days"] == 5
    assert row["compensation_total"] == 0
    assert pd.isna(row["mean_satisfaction"])
    assert pd.isna(row["mean_resolution_days"])
    later = build_features(t, as_of=AS_OF + pd.Timedelta(days=1), population=POPULATION).loc[1]
    assert later["unresolved_tickets"] == 0
    assert later["compensation_total"] == 30
    assert later["mean_satisfaction"] == 2
    assert later["mean_resolution_days"] == 5


def test_opens_conversions_and_unsubscribes_at_as_of_have_not_happened():
    t = shop(_customer(consent_email=[True], unsubscribed_at=[AS_OF]), {}, contacts={
        "contact_id": [1], "customer_id": [1], "sent_at": [ago(3)], "channel": ["email"],
        "action": ["promo_code"], "group": ["treatment"], "opened_at": [AS_OF],
        "converted_at": [AS_OF]})
    row = build_features(t, as_of=AS_OF, population=POPULATION).loc[1]
    assert row["contacts_email"] == 1
    assert row["opens_email"] == 0 and row["conversions_email"] == 0
    assert pd.isna(row["days_since_last_comeback"])
    assert row["can_contact_email"] and not row["unsubscribed"]
    row = build_features(t, as_of=AS_OF + pd.Timedelta(hours=1), population=POPULATION).loc[1]
    assert row["opens_email"] == 1 and row["conversions_email"] == 1
    assert not row["can_contact_email"] and row["unsubscribed"]


def test_customers_signing_up_at_or_after_as_of_do_not_exist():
    t = shop({"customer_id": [1, 2], "signup_at": [ago(1), AS_OF]}, {})
    f = build_features(t, as_of=AS_OF, population=POPULATION)
    assert list(f.index) == [1]


def test_as_of_is_required_and_naive_means_utc():
    t = shop(_customer(), {})
    with pytest.raises(ValueError, match="as_of"):
        build_features(t, as_of=None)
    naive = build_features(t, as_of="2024-06-01 00:00", population=POPULATION)
    aware = build_features(t, as_of=AS_OF, population=POPULATION)
    pdt.assert_frame_equal(naive, aware)
