"""Drivers in plain words with numbers (churnkit.scoring.drivers)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import churnkit as ck
from churnkit.features.registry import all_features
from churnkit.scoring.drivers import driver_texts, explain


def frame(**columns) -> pd.DataFrame:
    return pd.DataFrame(columns, index=pd.Index(range(len(next(iter(columns.values())))),
                                                name="customer_id"))


def test_counts_with_windows_and_plurals():
    f = frame(late_orders_90d=[2, 1, 0], lost_orders_lifetime=[1, 3, 0],
              tickets_delivery_365d=[1, 2, 0], abandoned_checkouts_90d=[4, 1, 0])
    assert list(driver_texts("late_orders_90d", f)) == [
        "2 late deliveries in the last 90 days", "1 late delivery in the last 90 days",
        "0 late deliveries in the last 90 days"]
    assert driver_texts("lost_orders_lifetime", f)[1] == "3 lost parcels ever"
    assert driver_texts("tickets_delivery_365d", f)[0] == \
        "1 complaint about delivery in the last 365 days"
    assert driver_texts("abandoned_checkouts_90d", f)[1] == \
        "1 cart abandoned at checkout in the last 90 days"


def test_recency_reads_the_customers_own_rhythm():
    f = frame(days_since_last_order=[41.2, 41.2, np.nan], gap_mean_days=[12.4, np.nan, np.nan],
              overdue_ratio=[3.32, np.nan, np.nan], days_since_last_session=[41.0, np.nan, 3.0])
    assert list(driver_texts("days_since_last_order", f)) == [
        "no order for 41 days, usually every 12", "no order for 41 days", "no order yet"]
    assert driver_texts("overdue_ratio", f)[0] == \
        "overdue: 41 days since the last order, usually every 12 (3.3x)"
    assert list(driver_texts("days_since_last_session", f)) == [
        "no visit for 41 days", "never visited the site", "no visit for 3 days"]


def test_shares_flags_and_probabilities():
    f = frame(delivery_cost_share=[0.234], paid_not_received=[True], p_alive=[0.07],
              unsubscribed=[False], can_contact_sms=[True], min_satisfaction=[2.0])
    assert driver_texts("delivery_cost_share", f)[0] == "delivery cost 23% of what they paid"
    assert driver_texts("paid_not_received", f)[0] == "paid for an order that never arrived"
    assert driver_texts("p_alive", f)[0] == \
        "7% chance of still being an active buyer (BG/NBD)"
    assert driver_texts("unsubscribed", f)[0] == "subscribed to marketing"
    pnbd = frame(pnbd_p_alive=[0.42], pnbd_p_no_purchase_90d=[0.996])
    assert driver_texts("pnbd_p_alive", pnbd)[0] == \
        "42% chance of still being an active buyer (Pareto/NBD)"
    assert driver_texts("pnbd_p_no_purchase_90d", pnbd)[0] == \
        "100% chance of no purchase in the next 90 days (Pareto/NBD)"
    assert driver_texts("can_contact_sms", f)[0] == "reachable by sms"
    assert driver_texts("min_satisfaction", f)[0] == "complaint handling rated 2.0/5"


def test_generic_text_from_the_registry_and_unknown_feature():
    f = frame(cart_adds_90d=[3], top_category=["books"])
    assert driver_texts("cart_adds_90d", f)[0] == \
        "'add_to_cart' events in the last 90 days: 3"
    assert driver_texts("top_category", f)[0].endswith(": books")
    with pytest.raises(KeyError, match="not_a_feature"):
        driver_texts("not_a_feature", f)


@pytest.mark.slow
def test_every_feature_reads_on_a_real_shop():
    tables, _ = ck.synth.generate(600, seed=3, start="2024-01-01", end="2025-01-01")
    f = ck.build_features(tables, as_of="2025-01-01")
    for feature in all_features():
        if feature.name not in f.columns:
            continue
        texts = driver_texts(feature.name, f)
        assert len(texts) == len(f), feature.name
        assert all(isinstance(t, str) and t and not re.search(r"\bnan\b", t) for t in texts), \
            (feature.name, texts[:3])
    # explain(): a matrix of picked drivers gets the same texts, row by row
    names = np.array(["late_orders_90d", "days_since_last_order", "p_alive"])
    picked = np.tile([0, 1, 2], (len(f), 1))
    picked[::2] = [2, 0, 1]
    out = explain(picked, names, f)
    assert out.shape == picked.shape
    for i in (0, 1, len(f) - 1):
        for k in range(3):
            assert out[i, k] == driver_texts(names[picked[i, k]], f.iloc[[i]])[0]
