"""The *known-at-as_of* views and the one statement composed from them.

Leakage safety lives here, in one place. The raw tables are registered as ``raw_<table>``; the
views below apply the time-travel rule of :mod:`churnkit.data.timetravel` (its SQL twin) and every
family reads only these views, never a raw table:

- ``known_customers`` / ``base``: customers signed up before ``as_of``; an unsubscribe at or after
  ``as_of`` has not happened. ``base`` is the output's customer list.
- ``known_orders``: orders placed before ``as_of``; a status set at or after ``as_of`` is still
  ``placed`` (``status_at`` = ``ordered_at``) with no delivery delay known.
- ``known_browsing`` and ``known_sessions``: events before ``as_of``, and their sessions.
- ``known_tickets``: tickets opened before ``as_of``; one resolved at or after ``as_of`` is
  unresolved, with no compensation (0) or satisfaction known.
- ``known_contacts``: contacts sent before ``as_of``; opens and conversions at or after it have
  not happened.

Each view carries ``age_days``: days from the row's time to ``as_of`` (> 0), so a window of ``w``
days is ``age_days <= w``. Every family is a CTE over these views; the families are LEFT JOINed
onto ``base`` in one statement, and the engine casts and fills each column by its registered
dtype (counts 0, others NULL), so the schema never depends on the data.
"""

from __future__ import annotations

from functools import cache

from churnkit.data.contract import CHANNELS
from churnkit.features.family import Family, Feature
from churnkit.features.registry import family
from churnkit.features.sql import age_days

_CONSENTS = ", ".join(f"consent_{ch}" for ch in CHANNELS)

#: view name -> (table it needs, SQL). The time-travel rule, once.
KNOWN_VIEWS: dict[str, tuple[str, str]] = {
    "known_customers": (
        "customers",
        f"""
        SELECT customer_id, signup_at,
               coalesce(nullif(timezone, ''), 'UTC') AS timezone,
               {_CONSENTS},
               CASE WHEN unsubscribed_at < $as_of THEN unsubscribed_at END AS unsubscribed_at
        FROM raw_customers
        WHERE signup_at < $as_of
        """,
    ),
    "base": ("customers", "SELECT customer_id, signup_at, timezone FROM known_customers"),
    "known_orders": (
        "orders",
        f"""
        SELECT customer_id, order_id, ordered_at, amount, discount_amount, delivery_cost,
               n_items, category,
               CASE WHEN status_at < $as_of THEN status ELSE 'placed' END AS status,
               CASE WHEN status_at < $as_of THEN status_at ELSE ordered_at END AS status_at,
               CASE WHEN status_at < $as_of THEN delivery_delay_days END AS delivery_delay_days,
               {age_days("ordered_at")} AS age_days,
               {age_days("CASE WHEN status_at < $as_of THEN status_at ELSE ordered_at END")}
                   AS status_age_days
        FROM raw_orders
        WHERE ordered_at < $as_of
        """,
    ),
    "known_browsing": (
        "browsing",
        f"""
        SELECT customer_id, session_id, ts, event, {age_days("ts")} AS age_days
        FROM raw_browsing
        WHERE ts < $as_of
        """,
    ),
    # A session is known by its events before as_of; one straddling as_of is cut there.
    "known_sessions": (
        "browsing",
        """
        SELECT customer_id, session_id,
               min(ts) AS started_at,
               max(age_days) AS age_days,
               min(age_days) AS last_age_days,
               max(ts) FILTER (WHERE event IN ('add_to_cart', 'checkout')) AS last_cart_at,
               bool_or(event = 'checkout') AS has_checkout
        FROM known_browsing
        GROUP BY customer_id, session_id
        """,
    ),
    "known_tickets": (
        "tickets",
        f"""
        SELECT customer_id, ticket_id, opened_at, topic,
               CASE WHEN resolved_at < $as_of THEN resolved_at END AS resolved_at,
               CASE WHEN resolved_at >= $as_of THEN 0.0 ELSE compensation_amount END
                   AS compensation_amount,
               CASE WHEN resolved_at >= $as_of THEN NULL ELSE satisfaction END AS satisfaction,
               {age_days("opened_at")} AS age_days
        FROM raw_tickets
        WHERE opened_at < $as_of
        """,
    ),
    "known_contacts": (
        "contacts",
        f"""
        SELECT customer_id, contact_id, sent_at, channel, action, "group",
               CASE WHEN opened_at < $as_of THEN opened_at END AS opened_at,
               CASE WHEN converted_at < $as_of THEN converted_at END AS converted_at,
               {age_days("sent_at")} AS age_days
        FROM raw_contacts
        WHERE sent_at < $as_of
        """,
    ),
}

_CAST = {
    "count": "BIGINT", "total": "DOUBLE", "float": "DOUBLE", "flag": "BOOLEAN", "str": "VARCHAR",
}
_FILL = {"count": "0", "total": "0.0", "flag": "FALSE"}


def _column_sql(fam: Family, feature: Feature) -> str:
    if feature.python:  # filled by the family's Python step
        return f"NULL::{_CAST[feature.dtype]} AS {feature.name}"
    value = f"fam_{fam.name}.{feature.name}"
    if feature.dtype in _FILL:  # a customer without rows has a true zero / false
        value = f"coalesce({value}, {_FILL[feature.dtype]})"
    return f"{value}::{_CAST[feature.dtype]} AS {feature.name}"


@cache
def compose_sql(family_names: tuple[str, ...], present: frozenset[str]) -> str:
    """The single statement computing ``family_names`` on the ``present`` tables.

    Parameters: ``$as_of`` (TIMESTAMPTZ). Output: ``customer_id`` and every feature of the
    families in registry order, one row per customer of ``base``, sorted by ``customer_id``.
    """
    fams = [family(name) for name in family_names]
    views = [
        f"{name} AS ({sql.strip()})"
        for name, (table, sql) in KNOWN_VIEWS.items()
        if table in present
    ]
    ctes = views + [f"fam_{fam.name} AS ({fam.sql(present).strip()})" for fam in fams]
    columns = ["base.customer_id"] + [_column_sql(fam, f) for fam in fams for f in fam.features]
    joins = [
        f"LEFT JOIN fam_{fam.name} ON fam_{fam.name}.customer_id = base.customer_id"
        for fam in fams
    ]
    return (
        "WITH " + ",\n".join(ctes)
        + "\nSELECT " + ",\n  ".join(columns)
        + "\nFROM base\n" + "\n".join(joins)
        + "\nORDER BY base.customer_id"
    )


__all__ = ["KNOWN_VIEWS", "age_days", "compose_sql"]
