"""Complaints: tickets per topic, unresolved tickets, resolution, satisfaction, compensation.

docs/domain.md: service neglect (unanswered or unresolved complaints) is the most cited cause of
leaving, and customers who complained gave the shop a chance to fix it; serial complainers
(regular compensation demands) are not worth winning back, hence the per-order scores. A ticket
resolved at or after ``as_of`` is still open at ``as_of``, with no compensation or satisfaction
known.
"""

from __future__ import annotations

import numpy as np

from churnkit.data.contract import TICKET_TOPICS
from churnkit.features import reduce as r
from churnkit.features.arrays import DAY_US, NAT, Known
from churnkit.features.family import Columns, Family, Feature, description_of, windowed
from churnkit.features.sql import ALL_WINDOWS, window_counts, window_name

NAME = "complaints"
_T = ("tickets",)
_TO = ("tickets", "orders")


def _features() -> tuple[Feature, ...]:
    out = windowed("tickets", NAME, "Tickets opened {window}.", "tickets", _T)
    for topic in TICKET_TOPICS:
        out += windowed(f"tickets_{topic}", NAME, f"'{topic}' tickets opened {{window}}.",
                        "tickets", _T)
    out += [
        Feature("unresolved_tickets", NAME, "Tickets open at as_of (not resolved before it).",
                "tickets", _T, "count"),
        Feature("oldest_unresolved_ticket_days", NAME, "Days the oldest ticket open at as_of has "
                "waited; empty if none.", "days", _T),
        Feature("days_since_last_ticket", NAME, "Days since the last ticket was opened; empty "
                "without tickets.", "days", _T),
        Feature("mean_resolution_days", NAME, "Mean days from opening to resolution, over "
                "tickets resolved before as_of.", "days", _T),
        Feature("mean_satisfaction", NAME, "Mean known satisfaction rating (1-5).", "rating", _T),
        Feature("min_satisfaction", NAME, "Lowest known satisfaction rating (1-5).", "rating",
                _T),
        Feature("compensation_total", NAME, "Compensation granted on tickets resolved before "
                "as_of.", "currency", _T, "total"),
        Feature("compensated_tickets", NAME, "Tickets with compensation known before as_of.",
                "tickets", _T, "count"),
        Feature("tickets_per_order", NAME, "Tickets / orders placed (serial-complainer score); "
                "empty without orders.", "ratio", _TO),
        Feature("compensation_per_order", NAME, "Compensation / orders placed (serial-complainer "
                "score); empty without orders.", "currency", _TO),
    ]
    return tuple(out)


def _sql(present: frozenset[str]) -> str:
    cols = window_counts("tickets")
    for topic in TICKET_TOPICS:
        cols += window_counts(f"tickets_{topic}", f"topic = '{topic}'")
    counts = ",\n               ".join(cols)
    # per known order for every customer with orders (0 without tickets: a true zero)
    return f"""
    SELECT base.customer_id, t.* EXCLUDE (customer_id),
           coalesce(t.tickets_lifetime, 0) / nullif(o.n_orders, 0) AS tickets_per_order,
           coalesce(t.compensation_total, 0) / nullif(o.n_orders, 0) AS compensation_per_order
    FROM base
    LEFT JOIN (
        SELECT customer_id,
               {counts},
               count_if(resolved_at IS NULL) AS unresolved_tickets,
               max(age_days) FILTER (WHERE resolved_at IS NULL) AS oldest_unresolved_ticket_days,
               min(age_days) AS days_since_last_ticket,
               avg((epoch_us(resolved_at) - epoch_us(opened_at)) / 86400000000.0)
                   AS mean_resolution_days,
               avg(satisfaction) AS mean_satisfaction,
               min(satisfaction) AS min_satisfaction,
               coalesce(sum(compensation_amount), 0) AS compensation_total,
               count_if(compensation_amount > 0) AS compensated_tickets
        FROM known_tickets
        GROUP BY customer_id
    ) AS t ON t.customer_id = base.customer_id
    LEFT JOIN (
        SELECT customer_id, count(*) AS n_orders FROM known_orders GROUP BY customer_id
    ) AS o ON o.customer_id = base.customer_id
    """


def _compute(known: Known) -> Columns:
    tickets = known.tables["tickets"]
    age = known.age(tickets["opened_at"])
    out: Columns = {}
    every = r.windowed(tickets, age, ALL_WINDOWS)
    by_topic = r.windowed(tickets, age, ALL_WINDOWS, group=tickets["topic"].astype(np.int64),
                          n_groups=len(TICKET_TOPICS))
    for k, w in enumerate(ALL_WINDOWS):
        out[window_name("tickets", w)] = every[:, 0, k]
        for code, name in enumerate(TICKET_TOPICS):
            out[window_name(f"tickets_{name}", w)] = by_topic[:, code, k]
    resolved_at = tickets["resolved_at"]  # empty for a ticket open at as_of
    open_ = resolved_at == NAT
    out["unresolved_tickets"] = r.count(tickets, open_)
    out["oldest_unresolved_ticket_days"] = r.maximum(tickets, age, open_)
    out["days_since_last_ticket"] = r.minimum(tickets, age)
    took = np.full(len(tickets), np.nan)
    took[~open_] = (resolved_at[~open_] - tickets["opened_at"][~open_]) / DAY_US
    out["mean_resolution_days"] = r.mean(tickets, took)
    satisfaction = tickets["satisfaction"]
    out["mean_satisfaction"] = r.mean(tickets, satisfaction)
    out["min_satisfaction"] = r.minimum(tickets, satisfaction)
    compensation = tickets["compensation_amount"]
    out["compensation_total"] = r.total(tickets, compensation)
    out["compensated_tickets"] = r.count(tickets, compensation > 0)
    # per known order (0 for a customer with orders and no tickets; empty without orders)
    n_orders = r.count(known.tables["orders"])
    out["tickets_per_order"] = r.ratio(out["tickets_lifetime"], n_orders)
    out["compensation_per_order"] = r.ratio(out["compensation_total"], n_orders)
    return out


FAMILY = Family(name=NAME, description=description_of(__doc__),
                required_tables=("customers", "orders", "tickets"), features=_features(), sql=_sql,
                compute=_compute)
