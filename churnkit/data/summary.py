"""Readable summaries of a shop's tables: what ``churnkit validate`` and ``make demo`` print."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from churnkit.data.contract import PAID_NOT_RECEIVED, TABLES, as_utc_timestamp
from churnkit.data.tables import Tables


@dataclass(frozen=True)
class TableSummary:
    name: str
    rows: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None


@dataclass(frozen=True)
class ShopSummary:
    """Row counts and date ranges per table, and the churn-relevant counts at ``as_of``.

    ``given`` names the tables the shop provided, ``defaulted`` what validation filled in
    (:attr:`Tables.defaulted`); counts that need a column the shop did not record are None.
    """

    as_of: pd.Timestamp
    tables: list[TableSummary]
    customers: int
    customers_without_orders: int
    orders: int
    late_orders: int | None
    paid_not_received_orders: int | None
    unresolved_tickets: int | None
    inactive_90d: int
    inactive_30_90d: int
    given: tuple[str, ...] = ()
    defaulted: tuple[str, ...] = ()


def summarize(tables: Tables, *, as_of: object) -> ShopSummary:
    """Summarize normalized ``tables`` as known just before ``as_of`` (UTC).

    Counts only what was known before ``as_of`` (the time-travel rule): a ticket resolved later
    counts as unresolved, a customer who signed up later is not counted.
    """
    cutoff = as_utc_timestamp(as_of)
    known = tables.until(cutoff)
    per_table = []
    for name, frame in known.items():
        times = frame[TABLES[name].time_column]
        per_table.append(
            TableSummary(name, len(frame), times.min() if len(frame) else None,
                         times.max() if len(frame) else None)
        )
    orders = known.orders
    last_order = orders.groupby("customer_id")["ordered_at"].max()
    idle_days = (cutoff - last_order).dt.total_seconds() / 86400
    buyers = set(last_order.index)
    unresolved = late = paid_not_received = None
    if known.tickets is not None:
        unresolved = int(known.tickets["resolved_at"].isna().sum())
    if tables.recorded("orders.status"):
        late = int((orders["status"] == "late").sum())
        paid_not_received = int(orders["status"].isin(PAID_NOT_RECEIVED).sum())
    return ShopSummary(
        as_of=cutoff,
        tables=per_table,
        customers=len(known.customers),
        customers_without_orders=int((~known.customers["customer_id"].isin(buyers)).sum()),
        orders=len(orders),
        late_orders=late,
        paid_not_received_orders=paid_not_received,
        unresolved_tickets=unresolved,
        inactive_90d=int((idle_days >= 90).sum()),
        inactive_30_90d=int(((idle_days >= 30) & (idle_days < 90)).sum()),
        given=tuple(name for name in tables.present() if tables.recorded(name)),
        defaulted=tuple(sorted(tables.defaulted)),
    )


def data_end(tables: Tables) -> pd.Timestamp:
    """The latest event time in any table: where a complete history ends.

    Only for describing data and for refusing label windows that run past it; never used as an
    implicit ``as_of``.
    """
    ends = [
        frame[TABLES[name].time_column].max() for name, frame in tables.items() if len(frame)
    ]
    if not ends:
        raise ValueError("the tables are empty: no data end")
    return max(ends)
