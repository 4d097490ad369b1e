"""The synthetic shop's tables: deterministic, valid against the contract, inside the period."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnkit import synth, validate
from churnkit.data.contract import TABLES
from churnkit.synth.params import CAUSES

START, END = "2023-01-01", "2025-01-01"  # the period of the conftest shops

T0, T1 = pd.Timestamp(START, tz="UTC"), pd.Timestamp(END, tz="UTC")


def _small(seed: int):
    return synth.generate(1500, seed=seed, start="2024-01-01", end="2024-07-01")


def test_same_seed_gives_identical_tables_and_truth():
    (t1, g1), (t2, g2) = _small(5), _small(5)
    for name in TABLES:
        pd.testing.assert_frame_equal(t1.get(name), t2.get(name))
    pd.testing.assert_frame_equal(g1.customers, g2.customers)
    pd.testing.assert_frame_equal(g1.leaving, g2.leaving)
    pd.testing.assert_frame_equal(g1.action_response, g2.action_response)
    np.testing.assert_array_equal(g1.active_slots, g2.active_slots)
    pd.testing.assert_series_equal(g1.churn_probability("2024-04-01"),
                                   g2.churn_probability("2024-04-01"))


def test_different_seed_differs():
    (t1, _), (t2, _) = _small(5), _small(6)
    assert not t1.orders["ordered_at"].equals(t2.orders["ordered_at"])
    assert not t1.customers["signup_at"].equals(t2.customers["signup_at"])


def test_tables_are_validated_with_exactly_the_contract_columns(shop):
    tables, _ = shop
    assert tables.normalized
    assert tables.present() == tuple(TABLES)
    for name, frame in tables.items():
        assert tuple(frame.columns) == TABLES[name].column_names, name
        assert len(frame) > 0, name
    for name, key in [("customers", "customer_id"), ("orders", "order_id"),
                      ("browsing", "session_id"), ("tickets", "ticket_id"),
                      ("contacts", "contact_id")]:
        assert tables.get(name)[key].dtype == np.int64
        assert tables.get(name)["customer_id"].dtype == np.int64
    assert str(tables.orders["ordered_at"].dtype) == "datetime64[us, UTC]"


def test_tables_are_exactly_what_validation_returns(shop):
    """generate() builds normalized frames itself; validating them must change nothing."""
    tables, _ = shop
    again = validate(tables)
    for name in TABLES:
        pd.testing.assert_frame_equal(again.get(name), tables.get(name), check_exact=True)


def test_every_timestamp_is_inside_the_period(shop):
    tables, _ = shop
    for name, frame in tables.items():
        for col in TABLES[name].columns:
            if col.kind != "timestamp":
                continue
            values = frame[col.name].dropna()
            assert values.min() >= T0, (name, col.name)
            assert values.max() < T1, (name, col.name)


def test_enums_hold_only_contract_values(shop):
    tables, _ = shop
    for name, frame in tables.items():
        for col in TABLES[name].columns:
            if col.kind == "enum":
                assert set(frame[col.name].unique()) <= set(col.values), (name, col.name)
    # the realistic mix of outcomes (docs/domain.md logistics failures are a minority)
    share = tables.orders["status"].value_counts(normalize=True)
    assert 0.05 < share["late"] < 0.10
    assert 0.005 < share["lost"] < 0.02
    assert 0.005 < share["not_delivered"] < 0.02
    assert 0.03 < share["returned"] < 0.07
    assert 0.01 < share["cancelled"] < 0.03
    assert share["delivered"] > 0.75


def test_signups_spread_over_the_period_and_events_follow_signup(shop):
    tables, _ = shop
    signup = tables.customers["signup_at"]
    quarters = pd.cut(signup, pd.date_range(T0, T1, periods=9)).value_counts()
    assert quarters.min() > 0.07 * len(signup)
    first = tables.orders.groupby("customer_id")["ordered_at"].min()
    joined = tables.customers.set_index("customer_id")["signup_at"].loc[first.index]
    assert (first > joined).all()
    # most customers order shortly after signing up
    assert ((first - joined) < pd.Timedelta(days=21)).mean() > 0.7


def test_values_learned_after_end_are_not_known_yet(shop):
    tables, _ = shop
    placed = tables.orders[tables.orders["status"] == "placed"]
    assert len(placed) > 0
    assert (placed["status_at"] == placed["ordered_at"]).all()
    assert (placed["ordered_at"] > T1 - pd.Timedelta(days=40)).all()
    late = tables.orders[tables.orders["status"] == "late"]
    assert late["delivery_delay_days"].notna().all() and (late["delivery_delay_days"] > 0).all()
    assert tables.orders.loc[tables.orders["status"] != "late", "delivery_delay_days"].isna().all()


def test_timezones_consents_and_unsubscribes(shop):
    tables, truth = shop
    tz = tables.customers["timezone"].value_counts(normalize=True)
    assert tz.index[0] == "Europe/Moscow"
    assert len(tz) == 9
    consent = tables.customers[[c for c in tables.customers.columns if c.startswith("consent_")]]
    rates = consent.mean()
    assert rates.idxmax() == "consent_email" and rates.idxmin() == "consent_phone"
    assert 0.01 < tables.customers["unsubscribed_at"].notna().mean() < 0.3
    assert (truth.customers["timezone"].to_numpy() == tables.customers["timezone"].to_numpy()).all()


def test_segments_are_present_in_their_shares(shop):
    _, truth = shop
    c = truth.customers
    assert 0.035 < c["is_vip"].mean() < 0.065
    assert 0.02 < c["is_serial_complainer"].mean() < 0.04
    assert 0.06 < c["is_discount_hunter"].mean() < 0.10
    assert set(c["segment"].unique()) == {"vip", "serial_complainer", "discount_hunter",
                                          "one_time", "regular"}
    vip = c[c["is_vip"]]
    assert vip["base_rate"].mean() > 2 * c["base_rate"].mean()
    assert vip["mean_basket"].mean() > 1.8 * c["mean_basket"].mean()


def test_truth_shapes(shop):
    tables, truth = shop
    n = len(tables.customers)
    assert truth.active_slots.shape == (n, 168)
    np.testing.assert_allclose(truth.active_slots.sum(axis=1), 1.0, atol=1e-5)
    assert (truth.customers.index.to_numpy() == tables.customers["customer_id"].to_numpy()).all()
    leaving = truth.leaving
    assert set(leaving["customer_id"]) == set(tables.customers["customer_id"])
    decided = leaving.dropna(subset=["decided_at"])
    assert set(decided["cause"].unique()) == set(CAUSES)
    rev = decided.dropna(subset=["reversed_at"])
    assert (rev["reversed_at"] > rev["decided_at"]).all()
    ar = truth.action_response
    assert list(ar.columns) == ["apology_compensation", "free_delivery", "promo_code",
                                "loyalty_points", "vip_gift", "we_miss_you", "none"]
    assert ((ar >= 0) & (ar <= 1)).all().all()
    assert (ar.drop(columns="none").ge(ar["none"] - 1e-12, axis=0)).all().all()


def test_start_and_end_must_be_dates():
    with pytest.raises(ValueError, match="midnight"):
        synth.generate(10, seed=1, start="2024-01-01 12:00", end="2024-02-01")
    with pytest.raises(ValueError, match="after"):
        synth.generate(10, seed=1, start="2024-02-01", end="2024-01-01")
    with pytest.raises(ValueError, match="required"):
        synth.generate(10, seed=1, start=None, end="2024-01-01")
