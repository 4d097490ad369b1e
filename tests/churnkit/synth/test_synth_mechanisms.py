"""The mechanisms of docs/domain.md leave real (imperfect) traces in the synthetic shop's tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

END = pd.Timestamp("2025-01-01", tz="UTC")  # the conftest shops' end
DAY = pd.Timedelta(days=1)


def _count_in_windows(events: pd.DataFrame, col: str, ids, lo: pd.Series,
                      hi: pd.Series) -> np.ndarray:
    """Number of ``events`` of customer ``ids[k]`` with ``lo[k] <= col < hi[k]``, per k."""
    win = pd.DataFrame({"customer_id": np.asarray(ids), "lo": lo.to_numpy(),
                        "hi": hi.to_numpy(), "k": np.arange(len(lo))})
    x = events[["customer_id", col]].merge(win, on="customer_id")
    x = x[(x[col] >= x["lo"]) & (x[col] < x["hi"])]
    return x.groupby("k").size().reindex(np.arange(len(lo)), fill_value=0).to_numpy()


def _no_order_within(orders: pd.DataFrame, after: pd.DataFrame, days: int) -> pd.Series:
    """For each row of ``after`` (customer_id, t): no order in (t, t + days)."""
    nxt = pd.merge_asof(
        after.sort_values("t"),
        orders[["customer_id", "ordered_at"]].sort_values("ordered_at"),
        left_on="t", right_on="ordered_at", by="customer_id", direction="forward",
        allow_exact_matches=False,
    )
    return ~(nxt["ordered_at"] < nxt["t"] + pd.Timedelta(days=days))


def test_lost_parcel_with_ignored_complaint_makes_customers_leave(shop):
    tables, _ = shop
    orders = tables.orders.copy()
    orders["prior"] = orders.groupby("customer_id").cumcount()
    tickets = tables.tickets[tables.tickets["topic"] == "delivery"]
    m = pd.merge_asof(
        orders.sort_values("status_at"),
        tickets[["customer_id", "opened_at", "resolved_at"]].sort_values("opened_at"),
        left_on="status_at", right_on="opened_at", by="customer_id", direction="forward",
        tolerance=pd.Timedelta(days=3),
    )
    m = m[m["status_at"] + 90 * DAY < END].rename(columns={"status_at": "t"})
    m["left"] = _no_order_within(orders, m[["customer_id", "t"]], 90).to_numpy()
    m["bin"] = pd.cut(m["prior"], [-1, 0, 1, 4, 10**6], labels=["1", "2", "3-5", "6+"])
    hurt = m[m["status"].isin(["lost", "not_delivered"]) & m["opened_at"].notna()
             & m["resolved_at"].isna()]
    fine = m[m["status"] == "delivered"]
    # matched on the number of earlier orders (a proxy for loyalty)
    rate_hurt = hurt.groupby("bin", observed=True)["left"].mean()
    rate_fine = fine.groupby("bin", observed=True)["left"].mean()
    weights = hurt["bin"].value_counts().reindex(rate_hurt.index)
    diff = ((rate_hurt - rate_fine) * weights).sum() / weights.sum()
    assert len(hurt) > 200
    assert diff > 0.08, (rate_hurt, rate_fine)
    assert (rate_hurt > rate_fine).all()


def test_browsing_fades_before_buying_after_the_decision(shop):
    tables, truth = shop
    lv = truth.leaving.dropna(subset=["decided_at"])
    # forgotten one-time buyers decide right after their only order, which would inflate the
    # "before" window; the fade itself is the same for every cause
    lv = lv[(lv["cause"] != "forgotten")
            & (lv["decided_at"] > pd.Timestamp("2023-03-01", tz="UTC"))
            & (lv["decided_at"] < END - 120 * DAY)
            & ~(lv["reversed_at"] < lv["decided_at"] + 120 * DAY)].reset_index(drop=True)
    d, ids = lv["decided_at"], lv["customer_id"]
    lag = pd.to_timedelta(lv["order_lag_days"], unit="D")
    browse = tables.browsing[tables.browsing["event"].isin(["view", "product_view", "search"])]

    def rates(frame, col):
        before = _count_in_windows(frame, col, ids, d - 42 * DAY, d - 14 * DAY).sum() / 28
        during = _count_in_windows(frame, col, ids, d, d + lag).sum() / lv["order_lag_days"].mean()
        gone = _count_in_windows(frame, col, ids, d + lag + 30 * DAY, d + lag + 60 * DAY).sum() / 30
        return during / before, gone / before

    b_during, b_gone = rates(browse, "ts")
    o_during, o_gone = rates(tables.orders, "ordered_at")
    assert len(lv) > 1000
    # during the lag buying goes on while browsing already fades (docs/domain.md leading indicator)
    assert b_during < 0.7
    assert o_during > b_during + 0.15
    assert o_gone < 0.15 and b_gone < 0.15


def test_browsing_declines_before_a_churners_last_order(shop):
    tables, _ = shop
    orders = tables.orders
    n = orders.groupby("customer_id").size()
    last = orders.groupby("customer_id")["ordered_at"].max()
    early = pd.Timestamp("2023-06-01", tz="UTC")
    cutoff = END - 120 * DAY
    churners = last[(last < cutoff) & (last > early) & (n >= 3)]
    # stayers: still buying at the end; reference = their last order before the cutoff
    stay_ids = last.index[(last > END - 60 * DAY) & (n >= 3)]
    ref = orders[orders["customer_id"].isin(stay_ids) & (orders["ordered_at"] < cutoff)
                 & (orders["ordered_at"] > early)]
    stayers = ref.groupby("customer_id")["ordered_at"].max()
    # sessions of their own (checkout sessions have no 'view' or 'search'): the visits
    browse = tables.browsing[tables.browsing["event"].isin(["view", "search"])]

    def decline(t: pd.Series) -> float:
        ts = t.reset_index(drop=True)
        recent = _count_in_windows(browse, "ts", t.index, ts - 30 * DAY, ts).sum()
        earlier = _count_in_windows(browse, "ts", t.index, ts - 60 * DAY, ts - 30 * DAY).sum()
        return recent / earlier

    assert len(churners) > 500 and len(stayers) > 500
    assert decline(churners) < decline(stayers) - 0.1


def test_opens_cluster_in_the_customers_active_hours(shop):
    tables, truth = shop
    c = tables.contacts[tables.contacts["opened_at"].notna()]
    offset = truth.customers["utc_offset_hours"].loc[c["customer_id"]].to_numpy()
    local = c["opened_at"] + pd.to_timedelta(offset, unit="h")
    slot = (local.dt.day_of_week * 24 + local.dt.hour).to_numpy()
    sent_local = c["sent_at"] + pd.to_timedelta(offset, unit="h")
    sent_slot = (sent_local.dt.day_of_week * 24 + sent_local.dt.hour).to_numpy()
    pos = truth.customers.index.get_indexer(c["customer_id"])
    rank = np.argsort(np.argsort(-truth.active_slots[pos], axis=1), axis=1)
    rows = np.arange(len(pos))
    top_open = (rank[rows, slot] < 24).mean()  # chance: 24 / 168 = 14%
    top_sent = (rank[rows, sent_slot] < 24).mean()
    assert len(c) > 1000
    assert top_open > 0.4
    assert top_open > top_sent + 0.1


def test_orders_happen_in_local_active_hours(shop):
    tables, truth = shop
    o = tables.orders.sample(20_000, random_state=0)
    offset = truth.customers["utc_offset_hours"].loc[o["customer_id"]].to_numpy()
    local = o["ordered_at"] + pd.to_timedelta(offset, unit="h")
    slot = (local.dt.day_of_week * 24 + local.dt.hour).to_numpy()
    pos = truth.customers.index.get_indexer(o["customer_id"])
    w = truth.active_slots[pos]
    # the weight of the slot an order falls in, relative to a uniform profile (1/168)
    assert np.mean(w[np.arange(len(pos)), slot]) * 168 > 3


def test_open_rates_depend_on_the_channel(shop):
    tables, _ = shop
    sent = tables.contacts[tables.contacts["group"] == "treatment"]
    rate = sent.groupby("channel")["opened_at"].apply(lambda s: s.notna().mean())
    assert rate["messenger"] > rate["sms"] > rate["email"]
    assert rate["messenger"] > rate["push"] > rate["email"]
    control = tables.contacts[tables.contacts["group"] == "control"]
    assert control["opened_at"].isna().all()


def test_seasonality_and_paydays(shop):
    tables, _ = shop
    year = tables.orders[tables.orders["ordered_at"].dt.year == 2024]
    daily = year.groupby(year["ordered_at"].dt.floor("D")).size()
    # divide by the customers signed up by then: the base grows over the period
    signed = tables.customers["signup_at"].sort_values().to_numpy()
    base = np.searchsorted(signed, daily.index.to_numpy())
    rate = pd.Series(daily.to_numpy() / base, index=daily.index)
    month = rate.index.month
    assert rate[month >= 11].mean() > 1.15 * rate.mean()
    dom = rate.index.day
    payday = np.isin(dom, [1, 2, 3, 15, 16, 17])
    assert rate[payday].mean() > 1.15 * rate[~payday].mean()


def test_serial_complainers_open_many_tickets_and_get_compensation(shop):
    tables, truth = shop
    per = tables.tickets.groupby("customer_id").size()
    orders = tables.orders.groupby("customer_id").size()
    serial = truth.customers.index[truth.customers["is_serial_complainer"]]
    others = truth.customers.index[~truth.customers["is_serial_complainer"]]
    ratio_serial = per.reindex(serial, fill_value=0).sum() / orders.reindex(serial).sum()
    ratio_other = per.reindex(others, fill_value=0).sum() / orders.reindex(others).sum()
    assert ratio_serial > 4 * ratio_other
    t = tables.tickets.merge(truth.customers["is_serial_complainer"], left_on="customer_id",
                             right_index=True)
    comp = t.groupby("is_serial_complainer")["compensation_amount"].apply(lambda s: (s > 0).mean())
    assert comp[True] > comp[False]


def test_delivery_cost_shocks_lead_to_abandoned_carts(shop):
    tables, truth = shop
    o = tables.orders
    shock = o[o["delivery_cost"] > 1000][["customer_id", "ordered_at"]]
    sens = truth.customers["price_sensitivity"]
    sensitive = shock[shock["customer_id"].map(sens) > 0.5].reset_index(drop=True)
    carts = tables.browsing[tables.browsing["event"] == "add_to_cart"]
    # add_to_cart per day in the two weeks after the shock vs the two weeks before it (orders
    # bring their own add_to_cart, so compare with the orders in the same windows)
    t = sensitive["ordered_at"]
    ids = sensitive["customer_id"]
    cart_after = _count_in_windows(carts, "ts", ids, t + DAY, t + 15 * DAY).sum()
    ord_after = _count_in_windows(o, "ordered_at", ids, t + DAY, t + 15 * DAY).sum()
    cart_before = _count_in_windows(carts, "ts", ids, t - 15 * DAY, t - DAY).sum()
    ord_before = _count_in_windows(o, "ordered_at", ids, t - 15 * DAY, t - DAY).sum()
    assert len(sensitive) > 50
    assert (cart_after - ord_after) > 1.3 * (cart_before - ord_before)
