"""Hand-computed expectations for each family on small readable shops."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _shops import AS_OF, POPULATION, ago, shop

from churnkit.features import build_features
from churnkit.features.registry import model_features
from churnkit.stats.btyd import expected_purchases, p_alive
from churnkit.stats.btyd_data import summarize_purchases


def orders(times, **cols) -> dict:
    n = len(times)
    base = {"order_id": list(range(1, n + 1)), "customer_id": [1] * n, "ordered_at": times,
            "amount": [10.0] * n, "status": ["delivered"] * n, "status_at": times}
    base.update(cols)
    return base


ONE = {"customer_id": [1], "signup_at": [ago(500)], "timezone": ["Europe/Moscow"]}


def test_purchases_recency_gaps_overdue_trend_and_basket():
    t = shop(ONE, orders([ago(100), ago(40), ago(10)], amount=[60.0, 30.0, 30.0],
                         discount_amount=[0.0, 10.0, 10.0], delivery_cost=[0.0, 0.0, 30.0],
                         n_items=[1, 2, 3], category=["shoes", "hats", "shoes"]))
    r = build_features(t, as_of=AS_OF, population=POPULATION).loc[1]
    assert r["days_since_signup"] == 500
    assert r["days_since_first_order"] == 100
    assert r["days_since_last_order"] == 10
    counts = (r["orders_30d"], r["orders_90d"], r["orders_180d"], r["orders_lifetime"])
    assert counts == (1, 2, 3, 3)
    assert r["revenue_90d"] == 60 and r["revenue_lifetime"] == 120
    assert r["gap_mean_days"] == 45  # gaps 60 and 30
    assert r["gap_median_days"] == 45
    assert r["gap_std_days"] == pytest.approx(np.std([60, 30], ddof=1))
    assert r["gap_last_days"] == 30  # between the two most recent orders
    assert r["overdue_ratio"] == pytest.approx(10 / 45)
    assert r["orders_trend_90d"] == pytest.approx((2 - 1) / 3)
    assert r["revenue_trend_90d"] == pytest.approx((60 - 60) / 120)
    assert r["mean_basket"] == 40 and r["mean_items"] == 2
    assert r["discount_share"] == pytest.approx(20 / 140)
    assert r["discounted_order_share"] == pytest.approx(2 / 3)
    assert r["delivery_cost_share"] == pytest.approx(30 / 150)
    assert r["n_categories"] == 2 and r["top_category"] == "shoes"
    assert r["basket_vs_population"] == pytest.approx(40 / POPULATION.mean_order_value)


def test_thin_histories_get_features_not_crashes():
    t = shop({"customer_id": [1, 2], "signup_at": [ago(50), ago(20)]},
             orders([ago(5)]))
    f = build_features(t, as_of=AS_OF, population=POPULATION)
    one, none = f.loc[1], f.loc[2]
    assert one["orders_lifetime"] == 1 and np.isnan(one["gap_mean_days"])
    assert np.isnan(one["overdue_ratio"]) and one["btyd_frequency"] == 0
    assert one["p_alive"] == 1.0  # BG/NBD: no repeat purchase, no chance to have dropped out
    assert none["orders_lifetime"] == 0 and none["revenue_lifetime"] == 0
    assert np.isnan(none["days_since_last_order"]) and np.isnan(none["p_alive"])
    assert pd.isna(none["top_category"])


def test_delivery_failures_and_paid_not_received():
    t = shop(ONE, orders(
        [ago(200), ago(100), ago(50), ago(20), ago(5)],
        status=["late", "lost", "returned", "not_delivered", "cancelled"],
        status_at=[ago(190), ago(80), ago(45), ago(2), ago(4)],
        delivery_delay_days=[3.0, None, None, None, None]))
    r = build_features(t, as_of=AS_OF, population=POPULATION).loc[1]
    assert r["late_orders_lifetime"] == 1 and r["late_orders_180d"] == 0
    assert r["lost_orders_90d"] == 1 and r["lost_orders_30d"] == 0
    assert r["not_delivered_orders_30d"] == 1
    assert r["returned_orders_90d"] == 1 and r["returned_orders_30d"] == 0
    assert r["cancelled_orders_30d"] == 1
    assert r["delivery_failures_lifetime"] == 3 and r["delivery_failures_90d"] == 2
    assert r["delivery_failure_share"] == pytest.approx(3 / 5)
    assert r["return_share"] == pytest.approx(1 / 5)
    assert r["days_since_last_failure"] == 2
    assert r["mean_delivery_delay_days"] == 3
    assert r["paid_not_received"] and r["paid_not_received_orders"] == 2
    assert r["days_since_paid_not_received"] == 2
    assert r["orders_in_transit"] == 0


def test_browsing_sessions_carts_and_trend():
    t = shop(ONE, orders([ago(40)]), browsing={
        "customer_id": [1] * 8,
        "session_id": [1, 1, 2, 2, 3, 4, 5, 5],
        # session 1 (41 d): cart, bought 1 d later -> not abandoned; session 2 (20 d): checkout,
        # no order -> abandoned checkout; 3 (45 d) view; 4 (10 d) view; 5 (0.5 d): cart still open
        "ts": [ago(41), ago(41) + pd.Timedelta(hours=1), ago(20), ago(20) + pd.Timedelta(hours=1),
               ago(45), ago(10), ago(0.5), ago(0.4)],
        "event": ["product_view", "add_to_cart", "add_to_cart", "checkout", "view",
                  "product_view", "add_to_cart", "checkout"],
    })
    r = build_features(t, as_of=AS_OF, population=POPULATION).loc[1]
    assert (r["sessions_30d"], r["sessions_90d"], r["sessions_lifetime"]) == (3, 5, 5)
    assert r["product_views_90d"] == 2 and r["cart_adds_30d"] == 2 and r["checkouts_30d"] == 2
    assert r["abandoned_carts_lifetime"] == 1 and r["abandoned_checkouts_90d"] == 1
    assert r["days_since_last_session"] == pytest.approx(0.4)
    assert r["sessions_trend_30d"] == pytest.approx((3 - 2) / 5)
    assert r["sessions_since_last_order"] == 3


def test_complaints_topics_unresolved_and_serial_scores():
    t = shop(ONE, orders([ago(100), ago(50)]), tickets={
        "ticket_id": [1, 2, 3], "customer_id": [1, 1, 1],
        "opened_at": [ago(90), ago(40), ago(7)], "topic": ["delivery", "quality", "delivery"],
        "resolved_at": [ago(86), ago(38), None], "compensation_amount": [10.0, 20.0, 0.0],
        "satisfaction": [5, 2, None]})
    r = build_features(t, as_of=AS_OF, population=POPULATION).loc[1]
    assert r["tickets_lifetime"] == 3 and r["tickets_30d"] == 1
    assert r["tickets_delivery_lifetime"] == 2 and r["tickets_delivery_30d"] == 1
    assert r["tickets_quality_90d"] == 1 and r["tickets_price_lifetime"] == 0
    assert r["unresolved_tickets"] == 1 and r["oldest_unresolved_ticket_days"] == 7
    assert r["days_since_last_ticket"] == 7
    assert r["mean_resolution_days"] == 3
    assert r["mean_satisfaction"] == 3.5 and r["min_satisfaction"] == 2
    assert r["compensation_total"] == 30 and r["compensated_tickets"] == 2
    assert r["tickets_per_order"] == 1.5 and r["compensation_per_order"] == 15


def test_contacts_count_only_the_treatment_group():
    t = shop(ONE, orders([ago(30)]), contacts={
        "contact_id": [1, 2, 3], "customer_id": [1, 1, 1],
        "sent_at": [ago(100), ago(35), ago(20)], "channel": ["email", "sms", "email"],
        "action": ["we_miss_you", "promo_code", "promo_code"],
        "group": ["treatment", "treatment", "control"],
        "opened_at": [ago(99), None, None], "converted_at": [None, ago(30), ago(15)]})
    r = build_features(t, as_of=AS_OF, population=POPULATION).loc[1]
    assert (r["contacts_email"], r["opens_email"], r["conversions_email"]) == (1, 1, 0)
    assert (r["contacts_sms"], r["opens_sms"], r["conversions_sms"]) == (1, 0, 1)
    assert r["contacts_lifetime"] == 2 and r["contacts_90d"] == 1
    assert r["open_rate"] == 0.5 and r["conversion_rate"] == 0.5
    assert r["days_since_last_contact"] == 35
    assert r["days_since_last_comeback"] == 15  # a comeback counts whichever group
    assert r["holdout_contacts"] == 1


def test_recent_contact_ages_count_sent_messages_strictly_before_as_of():
    t = shop(ONE, orders([ago(30)]), contacts={
        "contact_id": [1, 2, 3, 4, 5], "customer_id": [1] * 5,
        "sent_at": [ago(40), ago(3), ago(10), ago(1), AS_OF],
        "channel": ["email", "sms", "messenger", "email", "email"],
        "action": ["we_miss_you"] * 5,
        "group": ["treatment", "treatment", "treatment", "control", "treatment"],
        "opened_at": [None] * 5, "converted_at": [None] * 5})
    f = build_features(t, as_of=AS_OF, population=POPULATION)
    r = f.loc[1]
    # the control row (1 day ago) was not sent; the message at as_of is not known yet
    assert r["days_since_last_contact"] == 3
    assert (r["days_since_contact_2"], r["days_since_contact_3"]) == (10, 40)
    assert pd.isna(r["days_since_contact_4"]) and pd.isna(r["days_since_contact_5"])
    assert not any(c.startswith("days_since_contact_") for c in model_features(f.columns))


def test_clock_uses_local_time():
    # Moscow is UTC+3: 22:00 UTC on Sunday 2024-05-26 is 01:00 local on Monday the 27th
    moscow = pd.Timestamp("2024-05-26 22:00", tz="UTC")
    t = shop(ONE, orders([moscow, pd.Timestamp("2024-05-16 07:00", tz="UTC")]))
    r = build_features(t, as_of=AS_OF, population=POPULATION).loc[1]
    assert r["activity_events"] == 2
    assert r["activity_share_h00_06"] == 0.5 and r["activity_share_h09_12"] == 0.5  # 10:00 local
    assert r["activity_share_mon"] == 0.5 and r["activity_share_thu"] == 0.5
    assert r["modal_local_hour"] == 1  # tie between 01 and 10: the earliest
    hours = {h: r[f"activity_hour_{h:02d}"] for h in range(24)}
    assert hours == {h: int(h in (1, 10)) for h in range(24)}
    from churnkit.features.clock import PAYDAY_CHANCE, SEASON_CHANCE

    assert r["payday_affinity"] == pytest.approx(0.5 / PAYDAY_CHANCE)  # the 16th local
    assert r["season_affinity"] == 0
    assert SEASON_CHANCE == pytest.approx(61 / 365.2425)


def test_btyd_inputs_match_summarize_purchases_and_the_model():
    times = [ago(300.2), ago(300.1), ago(120.5), ago(33.7)]
    t = shop(ONE, orders(times))
    r = build_features(t, as_of=AS_OF, population=POPULATION).loc[1]
    s = summarize_purchases(t.orders, as_of=AS_OF).loc[1]
    assert r["btyd_frequency"] == s["frequency"] == 2
    assert r["btyd_recency_days"] == pytest.approx(s["recency"])
    assert r["btyd_T_days"] == pytest.approx(s["T"])
    p = POPULATION.bgnbd
    assert r["p_alive"] == pytest.approx(p_alive(p, 2, s["recency"], s["T"]))
    assert r["expected_purchases_90d"] == pytest.approx(
        expected_purchases(p, 90, 2, s["recency"], s["T"]))
    assert 0 < r["p_no_purchase_90d"] < 1


def test_consent_and_unsubscribe():
    t = shop({"customer_id": [1, 2], "signup_at": [ago(50), ago(50)],
              "consent_email": [True, True], "consent_sms": [True, False],
              "unsubscribed_at": [None, ago(4)]}, {})
    f = build_features(t, as_of=AS_OF, population=POPULATION)
    assert f.loc[1, "can_contact_email"] and f.loc[1, "can_contact_sms"]
    assert not f.loc[1, "can_contact_phone"] and f.loc[1, "allowed_channels"] == 2
    assert not f.loc[2, "can_contact_email"] and f.loc[2, "allowed_channels"] == 0
    assert f.loc[2, "unsubscribed"] and f.loc[2, "days_since_unsubscribed"] == 4
