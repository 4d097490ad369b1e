"""Activity clock: when, in the customer's own time zone, they shop and browse.

docs/domain.md: timing matters (the customer's own active hours and days, payday at the start of the
month, pre-holiday peaks). Activity is every order plus every browsing *session* (by its first
event; counting sessions rather than events keeps one long visit from outweighing many short
ones), or orders only when browsing is absent. Local times use the customer's IANA ``timezone``.
Payday and season affinities compare the share of *orders* on those days with the share of
calendar days they cover (1.0 = no preference). The 24 local-hour counts are the raw activity
histogram the timing model reads its hour profiles from; the general models leave them out.
"""

from __future__ import annotations

import numpy as np

from churnkit.features import reduce as r
from churnkit.features.arrays import Known, Rows
from churnkit.features.family import Columns, Family, Feature, description_of

NAME = "clock"
#: Local hour bands [start, end).
HOUR_BANDS = ((0, 6), (6, 9), (9, 12), (12, 15), (15, 18), (18, 21), (21, 24))
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Paydays: the first days of the month (docs/domain.md) and of its second half (twice-monthly pay).
PAYDAYS = (1, 2, 3, 15, 16, 17)
#: Share of calendar days that are paydays (6 of a mean month of 365.2425 / 12 days).
PAYDAY_CHANCE = len(PAYDAYS) / (365.2425 / 12)
#: Share of calendar days in November-December (61 of a mean year).
SEASON_CHANCE = 61 / 365.2425
_SRC = ("customers", "orders", "browsing")


def _features() -> tuple[Feature, ...]:
    out = [
        Feature("activity_events", NAME, "Orders plus browsing sessions used for the clock.",
                "events", _SRC, "count"),
    ]
    for lo, hi in HOUR_BANDS:
        out.append(Feature(f"activity_share_h{lo:02d}_{hi:02d}", NAME, f"Share of activity "
                           f"between {lo:02d}:00 and {hi:02d}:00 local time; empty without "
                           "activity.", "share", _SRC))
    for i, day in enumerate(WEEKDAYS):
        out.append(Feature(f"activity_share_{day}", NAME, f"Share of activity on local "
                           f"weekday {i + 1} ({day}).", "share", _SRC))
    for h in range(24):
        out.append(Feature(f"activity_hour_{h:02d}", NAME, f"Orders plus browsing sessions "
                           f"starting in local hour {h:02d} (the timing model's hour histogram).",
                           "events", _SRC, "count", model_input=False))
    out += [
        Feature("modal_local_hour", NAME, "Local hour (0-23) with the most activity (ties: the "
                "earliest).", "hour", _SRC),
        Feature("payday_affinity", NAME, "Share of orders on local days 1-3 and 15-17 of the "
                "month / the share of such days (1 = no preference).", "ratio",
                ("customers", "orders")),
        Feature("season_affinity", NAME, "Share of orders in local November-December / the "
                "share of such days (1 = no preference).", "ratio", ("customers", "orders")),
    ]
    return tuple(out)


def _sql(present: frozenset[str]) -> str:
    sessions = ""
    if "browsing" in present:
        sessions = """
            UNION ALL
            SELECT customer_id, started_at AS ts, FALSE AS is_order FROM known_sessions"""
    bands = [f"count_if(h >= {lo} AND h < {hi}) / count(*) AS activity_share_h{lo:02d}_{hi:02d}"
             for lo, hi in HOUR_BANDS]
    days = [f"count_if(dow = {i + 1}) / count(*) AS activity_share_{day}"
            for i, day in enumerate(WEEKDAYS)]
    hours = [f"count_if(h = {h}) AS activity_hour_{h:02d}" for h in range(24)]
    paydays = ", ".join(str(d) for d in PAYDAYS)
    sep = ",\n               "
    return f"""
    WITH local_activity AS (
        SELECT customer_id, is_order,
               hour(t) AS h, isodow(t) AS dow, day(t) AS dom, month(t) AS mon
        FROM (
            SELECT a.customer_id, a.is_order, timezone(base.timezone, a.ts) AS t
            FROM (
                SELECT customer_id, ordered_at AS ts, TRUE AS is_order FROM known_orders{sessions}
            ) AS a
            JOIN base ON base.customer_id = a.customer_id
        )
    )
    SELECT agg.*, modal.modal_local_hour
    FROM (
        SELECT customer_id,
               count(*) AS activity_events,
               {sep.join(bands)},
               {sep.join(days)},
               {sep.join(hours)},
               (count_if(is_order AND dom IN ({paydays})) / nullif(count_if(is_order), 0))
                   / {PAYDAY_CHANCE!r} AS payday_affinity,
               (count_if(is_order AND mon IN (11, 12)) / nullif(count_if(is_order), 0))
                   / {SEASON_CHANCE!r} AS season_affinity
        FROM local_activity
        GROUP BY customer_id
    ) AS agg
    LEFT JOIN (
        -- the modal hour; ties go to the earliest hour
        SELECT customer_id, arg_max(h, n * 24 + (23 - h)) AS modal_local_hour
        FROM (SELECT customer_id, h, count(*) AS n FROM local_activity GROUP BY ALL)
        GROUP BY customer_id
    ) AS modal ON modal.customer_id = agg.customer_id
    """


_BAND_STARTS = [lo for lo, _ in HOUR_BANDS]
#: The local parts every activity row needs (days and months matter for orders only).
_PARTS = ("hour", "isodow")
#: Local day of month (index 0-31) -> is a payday.
_IS_PAYDAY = np.isin(np.arange(32), PAYDAYS)


def _activity(known: Known) -> tuple[Rows, list[Rows]]:
    """The orders, and the activity: the orders and every known browsing session by its first
    event (each with ``cust`` and the ``hour`` and ``isodow`` local parts; the sessions after
    the orders, counted with them by :func:`reduce.tally`)."""
    orders = known.tables["orders"]
    activity = [Rows(known.n, orders.cust, {p: orders[f"local_{p}"] for p in _PARTS})]
    browsing = known.tables.get("browsing")
    if browsing is not None:
        # a known session's first event is its first row: a session is cut at as_of
        first = r.starts_of(browsing["session"])
        activity.append(Rows(known.n, browsing.cust[first],
                             {p: browsing[f"local_{p}"][first] for p in _PARTS}))
    return orders, activity


def _compute(known: Known) -> Columns:
    orders, activity = _activity(known)
    # (n, 24) and (n, 7), views of (24, n) and (7, n)
    hours = r.tally(activity[0], activity[0]["hour"], 24,
                    *((a, a["hour"]) for a in activity[1:]))
    days = r.tally(activity[0], activity[0]["isodow"] - np.int8(1), 7,
                   *((a, a["isodow"] - np.int8(1)) for a in activity[1:]))
    events = hours.sum(axis=1)
    out: Columns = {"activity_events": events}
    # shares laid out (share, customer): each feature's column is contiguous
    counts = np.concatenate([np.add.reduceat(hours.T, _BAND_STARTS, axis=0), days.T])
    shares = np.full(counts.shape, np.nan)
    np.divide(counts, events, out=shares, where=events > 0)
    for i, (lo, hi) in enumerate(HOUR_BANDS):
        out[f"activity_share_h{lo:02d}_{hi:02d}"] = shares[i]
    for i, day in enumerate(WEEKDAYS):
        out[f"activity_share_{day}"] = shares[len(HOUR_BANDS) + i]
    for h in range(24):
        out[f"activity_hour_{h:02d}"] = hours[:, h]
    # the first of equal counts: ties go to the earliest hour
    out["modal_local_hour"] = np.where(events > 0, r.first_max(hours), np.nan)
    n_orders = r.count(orders)
    paid = r.count(orders, _IS_PAYDAY[orders["local_day"]])
    season = r.count(orders, orders["local_month"] >= 11)
    out["payday_affinity"] = r.ratio(paid, n_orders) / PAYDAY_CHANCE
    out["season_affinity"] = r.ratio(season, n_orders) / SEASON_CHANCE
    return out


FAMILY = Family(name=NAME, description=description_of(__doc__),
                required_tables=("customers", "orders"), optional_tables=("browsing",),
                features=_features(), sql=_sql, compute=_compute)
