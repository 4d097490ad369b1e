"""Browsing: sessions, product views, carts and checkouts, abandoned carts, browsing trend.

docs/domain.md: browsing drops off before purchases stop, and carts abandoned at checkout point at
price or delivery cost. A session counts in a window by its first event before ``as_of``. A cart
is *abandoned* when no order followed its last cart event (``add_to_cart`` or ``checkout``)
within :data:`ABANDON_HOURS`; a cart younger than that at ``as_of`` is still open and not counted
(whether it will be abandoned is not known yet).
"""

from __future__ import annotations

from churnkit.features.family import Family, Feature, description_of, windowed
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


FAMILY = Family(name=NAME, description=description_of(__doc__),
                required_tables=("customers", "orders", "browsing"), features=_features(), sql=_sql)
