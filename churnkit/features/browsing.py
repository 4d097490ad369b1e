"""Browsing: sessions, product views, carts and checkouts, abandoned carts, browsing trend.

docs/domain.md: browsing drops off before purchases stop, and carts abandoned at checkout point at
price or delivery cost. A session counts in a window by its first event before ``as_of``. A cart
is *abandoned* when no order followed its last cart event (``add_to_cart`` or ``checkout``)
within :data:`ABANDON_HOURS`; a cart younger than that at ``as_of`` is still open and not counted
(whether it will be abandoned is not known yet).
"""

from __future__ import annotations

import numpy as np

from churnkit.data.contract import BROWSING_EVENTS
from churnkit.features import reduce as r
from churnkit.features.arrays import NAT, Known, Rows
from churnkit.features.family import Columns, Family, Feature, description_of, windowed
from churnkit.features.sql import (
    ALL_WINDOWS,
    age_days,
    window_counts,
    window_name,
    window_sql,
    window_text,
)

NAME = "browsing"
_B = ("browsing",)
_BO = ("browsing", "orders")
#: Hours after the last cart event within which an order means the cart was not abandoned.
ABANDON_HOURS = 24
#: Event-count stems -> browsing event.
EVENTS = {"product_views": "product_view", "cart_adds": "add_to_cart", "checkouts": "checkout"}
_CART_WINDOWS = (30, 90, 365, None)
_CHECKOUT_WINDOWS = (90, None)
_CART = BROWSING_EVENTS.index("add_to_cart")
_CHECKOUT = BROWSING_EVENTS.index("checkout")
#: Browsing event code -> its position in :data:`EVENTS` (-1: not counted).
_EVENT_KEY = np.array([list(EVENTS.values()).index(e) if e in EVENTS.values() else -1
                       for e in BROWSING_EVENTS], dtype=np.int8)
#: The session count windows and the 60 and 180 days the trends compare with (ascending).
_SESSION_WINDOWS = (30, 60, 90, 180, 365, None)


def _features() -> tuple[Feature, ...]:
    out = []
    for w in ALL_WINDOWS:
        out.append(Feature(window_name("sessions", w), NAME, f"Browsing sessions started "
                           f"{window_text(w)}.", "sessions", _B, "count"))
        for stem, event in EVENTS.items():
            out.append(Feature(window_name(stem, w), NAME, f"'{event}' events {window_text(w)}.",
                               "events", _B, "count"))
    out += windowed("abandoned_carts", NAME, "Sessions with a cart event {window} and no order "
                    f"within {ABANDON_HOURS} h after it.", "sessions", _BO, windows=_CART_WINDOWS)
    out += windowed("abandoned_checkouts", NAME, "Abandoned carts that reached checkout, {window}.",
                    "sessions", _BO, windows=_CHECKOUT_WINDOWS)
    out += [
        Feature("days_since_last_session", NAME, "Days since the last browsing event; empty "
                "without browsing.", "days", _B),
        Feature("sessions_trend_30d", NAME, "(sessions in the last 30 days - sessions in the 30 "
                "before) / their sum, in [-1, 1]; empty when both are 0.", "ratio", _B),
        Feature("sessions_trend_90d", NAME, "(sessions in the last 90 days - sessions in the 90 "
                "before) / their sum, in [-1, 1]; empty when both are 0.", "ratio", _B),
        Feature("sessions_since_last_order", NAME, "Sessions started after the last order (all "
                "sessions without orders): browsing without buying.", "sessions", _BO, "count"),
    ]
    return tuple(out)


def _sql(present: frozenset[str]) -> str:
    events = []
    for w in ALL_WINDOWS:
        for stem, event in EVENTS.items():
            events.append(f"count_if(event = '{event}' AND {window_sql(w)}) AS "
                          f"{window_name(stem, w)}")
    sessions = window_counts("sessions")
    carts = window_counts("abandoned_carts", "abandoned", windows=_CART_WINDOWS,
                          age="cart_age_days")
    carts += window_counts("abandoned_checkouts", "abandoned AND has_checkout",
                           windows=_CHECKOUT_WINDOWS, age="cart_age_days")
    abandon_us = ABANDON_HOURS * 3_600_000_000
    sep = ",\n               "
    return f"""
    SELECT sa.*, ev.* EXCLUDE (customer_id)
    FROM (
    SELECT s.customer_id,
           {sep.join(sessions)},
           {sep.join(carts)},
           min(s.last_age_days) AS days_since_last_session,
           (count_if(s.age_days <= 30) - count_if(s.age_days > 30 AND s.age_days <= 60))
               / nullif(count_if(s.age_days <= 60), 0) AS sessions_trend_30d,
           (count_if(s.age_days <= 90) - count_if(s.age_days > 90 AND s.age_days <= 180))
               / nullif(count_if(s.age_days <= 180), 0) AS sessions_trend_90d,
           count_if(lo.last_order_at IS NULL OR s.started_at > lo.last_order_at)
               AS sessions_since_last_order
    FROM (
        -- the first order at or after each session's last cart event
        SELECT k.*, o.ordered_at AS next_order_at,
               k.last_cart_at IS NOT NULL
               AND epoch_us($as_of) - epoch_us(k.last_cart_at) >= {abandon_us}
               AND (o.ordered_at IS NULL
                    OR epoch_us(o.ordered_at) - epoch_us(k.last_cart_at) >= {abandon_us})
                   AS abandoned,
               {age_days("k.last_cart_at")} AS cart_age_days
        FROM known_sessions AS k
        ASOF LEFT JOIN known_orders AS o
            ON k.customer_id = o.customer_id AND k.last_cart_at <= o.ordered_at
    ) AS s
    LEFT JOIN (
        SELECT customer_id, max(ordered_at) AS last_order_at
        FROM known_orders GROUP BY customer_id
    ) AS lo ON lo.customer_id = s.customer_id
    GROUP BY s.customer_id
    ) AS sa
    LEFT JOIN (
        SELECT customer_id,
               {sep.join(events)}
        FROM known_browsing
        GROUP BY customer_id
    ) AS ev ON ev.customer_id = sa.customer_id
    """


def sessions(known: Known) -> Rows:
    """The known browsing sessions, one row each, grouped by customer (the ``known_sessions``
    view): ``started_at`` and ``ended_at`` (first and last event before as_of, int64 µs),
    ``last_cart_at`` (last ``add_to_cart`` or ``checkout``, :data:`NAT` when none) and
    ``has_checkout`` (bool). A session straddling as_of is cut there: only its known events
    count."""
    b = known.tables["browsing"]
    ts, event = b["ts"], b["event"]
    first = r.starts_of(b["session"])
    last = np.append(first[1:], len(ts)) - 1 if len(first) else first
    cart = event == _CART
    cart |= event == _CHECKOUT
    if len(first):
        # rows are in time order within a session: the latest cart event is its last one
        carts = np.flatnonzero(cart)
        of = np.searchsorted(first, carts, "right") - 1  # their sessions, non-decreasing
        final = np.empty(len(carts), dtype=bool)
        np.not_equal(of[1:], of[:-1], out=final[:-1])
        final[-1:] = True
        last_cart = np.full(len(first), NAT, dtype=np.int64)
        last_cart[of[final]] = ts[carts[final]]
        checkout = np.logical_or.reduceat(event == _CHECKOUT, first)
    else:
        last_cart, checkout = ts[:0], np.zeros(0, dtype=bool)
    return Rows(known.n, b.cust[first], {"started_at": ts[first], "ended_at": ts[last],
                                         "last_cart_at": last_cart, "has_checkout": checkout})


def _abandoned(known: Known, sess: Rows) -> np.ndarray:
    """Which sessions' carts were abandoned: a last cart event at least :data:`ABANDON_HOURS`
    before as_of, and no known order within that many hours at or after it (the first order at
    or after the cart, found by the ASOF join of :func:`reduce.first_at_or_after`)."""
    orders = known.tables["orders"]
    limit = ABANDON_HOURS * 3_600_000_000
    cart_at = sess["last_cart_at"]
    out = np.zeros(len(cart_at), dtype=bool)
    due = np.flatnonzero(cart_at != NAT)
    due = due[known.as_of - cart_at[due] >= limit]
    if not len(due):
        return out
    at = cart_at[due]
    nxt = r.first_at_or_after(orders, orders["ordered_at"], sess.cust[due], at)
    found = nxt >= 0
    late = np.ones(len(due), dtype=bool)
    late[found] = orders["ordered_at"][nxt[found]] - at[found] >= limit
    out[due] = late
    return out


def _compute(known: Known) -> Columns:
    b = known.tables["browsing"]
    out: Columns = {}
    events = r.windowed(b, lambda rows: known.age(b["ts"][rows]), ALL_WINDOWS,
                        group=_EVENT_KEY[b["event"]], n_groups=len(EVENTS))
    for k, w in enumerate(ALL_WINDOWS):
        for g, stem in enumerate(EVENTS):
            out[window_name(stem, w)] = events[:, g, k]
    sess = sessions(known)
    started = r.windowed(sess, known.age(sess["started_at"]), _SESSION_WINDOWS)[:, 0, :]
    for w in ALL_WINDOWS:
        out[window_name("sessions", w)] = started[:, _SESSION_WINDOWS.index(w)]
    for days in (30, 90):  # this period against the one before, over both
        recent = started[:, _SESSION_WINDOWS.index(days)]
        both = started[:, _SESSION_WINDOWS.index(2 * days)]
        out[f"sessions_trend_{days}d"] = r.ratio(recent - (both - recent), both)
    # abandoned carts by the age of their last cart event; group 1: the session reached checkout
    carts = r.windowed(sess, known.age(sess["last_cart_at"]), _CART_WINDOWS,
                       group=sess["has_checkout"].astype(np.int64), n_groups=2,
                       mask=_abandoned(known, sess))
    for k, w in enumerate(_CART_WINDOWS):
        out[window_name("abandoned_carts", w)] = carts[:, 0, k] + carts[:, 1, k]
    for w in _CHECKOUT_WINDOWS:
        out[window_name("abandoned_checkouts", w)] = carts[:, 1, _CART_WINDOWS.index(w)]
    out["days_since_last_session"] = r.minimum(sess, known.age(sess["ended_at"]))
    orders = known.tables["orders"]
    last_order = r.latest(orders, orders["ordered_at"])[sess.cust]
    out["sessions_since_last_order"] = r.count(
        sess, (last_order == NAT) | (sess["started_at"] > last_order))
    return out


FAMILY = Family(name=NAME, description=description_of(__doc__),
                required_tables=("customers", "orders", "browsing"), features=_features(), sql=_sql,
                compute=_compute)
