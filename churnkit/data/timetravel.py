"""The time-travel rule in pandas: the tables exactly as they were known just before ``as_of``.

Anything learned at or after ``as_of`` is unknown at ``as_of``:

- a customer who signed up at or after ``as_of`` does not exist yet; an unsubscribe at or after it
  has not happened;
- an order placed at or after it does not exist; an order whose ``status_at`` is at or after it is
  still ``placed`` (in transit), with no delivery delay known;
- a ticket opened at or after it does not exist; one resolved at or after it is unresolved, with no
  compensation or satisfaction known yet;
- a contact sent at or after it does not exist; an open or conversion at or after it has not
  happened.

The feature builders apply this rule in SQL; this module is its readable reference, used by the
leakage tests (features of ``tables`` at ``as_of`` must equal features of
``tables_until(tables, as_of)`` at ``as_of``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from churnkit.data.tables import Tables


def _unknown_from(frame: pd.DataFrame, column: str, as_of: pd.Timestamp) -> pd.Series:
    """Rows whose ``column`` was learned at or after ``as_of`` (null stays unknown anyway)."""
    return frame[column].notna() & (frame[column] >= as_of)


def tables_until(tables: Tables, as_of: pd.Timestamp) -> Tables:
    """See the module docstring. ``tables`` must be normalized (validated)."""
    customers = tables.customers[tables.customers["signup_at"] < as_of].copy()
    later = _unknown_from(customers, "unsubscribed_at", as_of)
    customers.loc[later, "unsubscribed_at"] = pd.NaT

    orders = tables.orders[tables.orders["ordered_at"] < as_of].copy()
    pending = orders["status_at"] >= as_of
    orders.loc[pending, "status"] = "placed"
    orders.loc[pending, "status_at"] = orders.loc[pending, "ordered_at"]
    orders.loc[pending, "delivery_delay_days"] = np.nan

    frames: dict[str, pd.DataFrame | None] = {"customers": customers, "orders": orders}

    if tables.browsing is not None:
        frames["browsing"] = tables.browsing[tables.browsing["ts"] < as_of].copy()

    if tables.tickets is not None:
        tickets = tables.tickets[tables.tickets["opened_at"] < as_of].copy()
        open_then = _unknown_from(tickets, "resolved_at", as_of)
        tickets.loc[open_then, "resolved_at"] = pd.NaT
        tickets.loc[open_then, "compensation_amount"] = 0.0
        tickets.loc[open_then, "satisfaction"] = pd.NA
        frames["tickets"] = tickets

    if tables.contacts is not None:
        contacts = tables.contacts[tables.contacts["sent_at"] < as_of].copy()
        for column in ("opened_at", "converted_at"):
            contacts.loc[_unknown_from(contacts, column, as_of), column] = pd.NaT
        frames["contacts"] = contacts

    return tables.replace(keep_normalized=True, **frames)  # rows filtered, order kept
