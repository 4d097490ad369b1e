"""Delivery and returns: late, lost and undelivered orders, returns and cancellations.

docs/domain.md: logistics failures are a main cause of leaving, and a customer who paid but never
received the goods is the top win-back priority. An order's status is known from its
``status_at``: before that moment the order is in transit (``placed``), so windows here count an
outcome by when it became known (``status_at``), e.g. "returned in the last 30 days".
"""

from __future__ import annotations

import numpy as np

from churnkit.data.contract import DELIVERY_FAILURES, ORDER_STATUSES, PAID_NOT_RECEIVED
from churnkit.features import reduce as r
from churnkit.features.arrays import Known
from churnkit.features.family import Columns, Family, Feature, description_of, windowed
from churnkit.features.sql import ALL_WINDOWS, window_counts, window_name

NAME = "delivery"
_O = ("orders",)
#: Outcome statuses counted per window (stem of the column name -> status).
OUTCOMES = {
    "late_orders": "late",
    "lost_orders": "lost",
    "not_delivered_orders": "not_delivered",
    "returned_orders": "returned",
    "cancelled_orders": "cancelled",
}


def _in(statuses: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")"


_FAILED = _in(DELIVERY_FAILURES)
_PNR = _in(PAID_NOT_RECEIVED)
_FAILURE_WINDOWS = (90, None)


def _features() -> tuple[Feature, ...]:
    out = []
    for stem, status in OUTCOMES.items():
        out += windowed(stem, NAME, f"Orders whose status '{status}' became known {{window}}.",
                        "orders", _O)
    out += windowed("delivery_failures", NAME, "Orders late, lost or not delivered, known "
                    "{window}.", "orders", _O, windows=_FAILURE_WINDOWS)
    out += [
        Feature("delivery_failure_share", NAME, "Delivery failures (late, lost, not delivered) / "
                "orders placed; empty without orders.", "share", _O),
        Feature("return_share", NAME, "Returned orders / orders placed; empty without orders.",
                "share", _O),
        Feature("days_since_last_failure", NAME, "Days since the last delivery failure became "
                "known; empty if none.", "days", _O),
        Feature("mean_delivery_delay_days", NAME, "Mean known delivery delay over orders with "
                "one.", "days", _O),
        Feature("max_delivery_delay_days", NAME, "Largest known delivery delay.", "days", _O),
        Feature("paid_not_received_orders", NAME, "Orders known lost or not delivered (paid, "
                "goods never received).", "orders", _O, "count"),
        Feature("paid_not_received", NAME, "At least one order known lost or not delivered "
                "(docs/domain.md: contact immediately, top priority).", "flag", _O, "flag"),
        Feature("days_since_paid_not_received", NAME, "Days since the last lost or undelivered "
                "order became known; empty if none.", "days", _O),
        Feature("orders_in_transit", NAME,
                "Orders still 'placed' (no outcome known) at as_of.", "orders", _O, "count"),
    ]
    return tuple(out)


def _sql(present: frozenset[str]) -> str:
    cols = [col for stem, status in OUTCOMES.items()
            for col in window_counts(stem, f"status = '{status}'", age="status_age_days")]
    cols += window_counts("delivery_failures", _FAILED, windows=_FAILURE_WINDOWS,
                          age="status_age_days")
    counts = ",\n           ".join(cols)
    return f"""
    SELECT customer_id,
           {counts},
           count_if({_FAILED}) / count(*) AS delivery_failure_share,
           count_if(status = 'returned') / count(*) AS return_share,
           min(status_age_days) FILTER (WHERE {_FAILED}) AS days_since_last_failure,
           avg(delivery_delay_days) AS mean_delivery_delay_days,
           max(delivery_delay_days) AS max_delivery_delay_days,
           count_if({_PNR}) AS paid_not_received_orders,
           bool_or({_PNR}) AS paid_not_received,
           min(status_age_days) FILTER (WHERE {_PNR}) AS days_since_paid_not_received,
           count_if(status = 'placed') AS orders_in_transit
    FROM known_orders
    GROUP BY customer_id
    """


def _is(status: np.ndarray, statuses: tuple[str, ...]) -> np.ndarray:
    """Rows whose status code is one of ``statuses`` (a status is never empty)."""
    flags = np.zeros(len(ORDER_STATUSES), dtype=bool)
    flags[[ORDER_STATUSES.index(s) for s in statuses]] = True
    return flags[status]


def _compute(known: Known) -> Columns:
    orders = known.tables["orders"]
    status = orders["status"]
    # an outcome counts by when it became known: the age of the (rolled back) status_at
    status_age = known.age(orders["status_at"])
    out: Columns = {}
    # every outcome's windows in one pass, grouped by status code
    counts = r.windowed(orders, status_age, ALL_WINDOWS, group=status,
                        n_groups=len(ORDER_STATUSES))
    for stem, name in OUTCOMES.items():
        for k, w in enumerate(ALL_WINDOWS):
            out[window_name(stem, w)] = counts[:, ORDER_STATUSES.index(name), k]
    failed, pnr = _is(status, DELIVERY_FAILURES), _is(status, PAID_NOT_RECEIVED)
    failures = r.windowed(orders, status_age, _FAILURE_WINDOWS, mask=failed)
    for k, w in enumerate(_FAILURE_WINDOWS):
        out[window_name("delivery_failures", w)] = failures[:, 0, k]
    n = r.count(orders)
    out["delivery_failure_share"] = r.ratio(out["delivery_failures_lifetime"], n)
    out["return_share"] = r.ratio(out["returned_orders_lifetime"], n)
    out["days_since_last_failure"] = r.minimum(orders, status_age, failed)
    delay = orders["delivery_delay_days"]
    out["mean_delivery_delay_days"] = r.mean(orders, delay)
    out["max_delivery_delay_days"] = r.maximum(orders, delay)
    out["paid_not_received_orders"] = r.count(orders, pnr)
    out["paid_not_received"] = out["paid_not_received_orders"] > 0
    out["days_since_paid_not_received"] = r.minimum(orders, status_age, pnr)
    out["orders_in_transit"] = r.count(orders, _is(status, ("placed",)))
    return out


# Without a recorded status every order is "delivered" by default: zeros here would read as a
# clean delivery record, so the family is left out instead.
FAMILY = Family(name=NAME, description=description_of(__doc__),
                required_tables=("customers", "orders"), required_columns=("orders.status",),
                features=_features(), sql=_sql, compute=_compute)
