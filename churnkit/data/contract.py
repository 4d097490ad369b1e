"""The data contract: the five tables a shop hands to churnkit, column by column.

The smallest shop is one ``orders`` table with ``customer_id``, ``ordered_at`` and ``amount``:
every other column has a default filled in when it is absent, and an absent ``customers`` table is
derived from the orders (:data:`CUSTOMERS`' description says how).

This module is the single source of truth for table and column names, kinds, enums and which
columns record something learned later (the time-travel columns). The loader, the validator, the
synthetic shop, the feature builders and the generated documentation all read it.

Kinds
-----
``id``        integer or string identifier; one kind per column across all tables.
``timestamp`` timezone-aware UTC inside churnkit; naive inputs are read as UTC.
``float``     a real number (currency amounts are in the shop's currency).
``int``       a whole number.
``bool``      true/false.
``str``       free text.
``enum``      one of ``Column.values``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

CHANNELS = ("email", "sms", "messenger", "push", "phone")
ORDER_STATUSES = ("placed", "delivered", "late", "lost", "not_delivered", "cancelled", "returned")
#: Statuses that are the shop's failure to deliver (docs/domain.md: logistics failures).
DELIVERY_FAILURES = ("late", "lost", "not_delivered")
#: Statuses of an order paid for whose goods never reached the customer (docs/domain.md: top
#: priority).
PAID_NOT_RECEIVED = ("lost", "not_delivered")
BROWSING_EVENTS = ("view", "product_view", "search", "add_to_cart", "checkout", "wishlist")
TICKET_TOPICS = ("delivery", "quality", "price", "service", "payment", "other")
#: The win-back action catalogue of docs/domain.md.
ACTIONS = (
    "apology_compensation",
    "free_delivery",
    "promo_code",
    "loyalty_points",
    "vip_gift",
    "we_miss_you",
    "do_not_contact",
)
CONTACT_GROUPS = ("treatment", "control")
#: Actions a campaign can send (the catalogue minus ``do_not_contact``).
SEND_ACTIONS = tuple(a for a in ACTIONS if a != "do_not_contact")
#: ``Column.default_from`` of an id that, when absent, is the row's position in the given table.
ROW_NUMBER = "row number"
#: The randomized holdout's group (contacts with ``group == "control"``), also its arm's name.
CONTROL = "control"


@dataclass(frozen=True)
class Column:
    """One column of a contract table.

    ``learned_later`` marks columns whose value becomes known at its own timestamp, later than the
    row's event time (e.g. an order's final ``status`` is known from ``status_at``). Features as of
    a date treat a value learned at or after that date as not yet known.
    """

    name: str
    kind: str
    description: str
    nullable: bool = False
    values: tuple[str, ...] = ()
    min_value: float | None = None
    max_value: float | None = None
    default: object | None = None  # filled in when the column is absent (optional columns only)
    optional: bool = False  # the column may be missing from the input
    learned_later: bool = False
    #: When absent, the column takes the value of this column of the same row, or (for
    #: :data:`ROW_NUMBER`) the row's position in the table as given (0, 1, ...).
    default_from: str | None = None
    #: The column may be absent only when this column is absent too.
    absent_with: str | None = None


@dataclass(frozen=True)
class TableSpec:
    """One contract table: its columns, key, time column and whether a shop must provide it."""

    name: str
    description: str
    columns: tuple[Column, ...]
    key: str
    time_column: str
    required: bool
    customer_column: str = "customer_id"
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @functools.cached_property
    def timestamp_columns(self) -> frozenset[str]:
        """The names of its timestamp columns (validated tables hold them as
        ``datetime64[us, UTC]``)."""
        return frozenset(c.name for c in self.columns if c.kind == "timestamp")

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name!r} has no column {name!r}")


def _consent(channel: str) -> Column:
    agreed = f"The customer agreed to be contacted by {channel}."
    return Column(f"consent_{channel}", "bool", agreed, optional=True, default=False)


def _event_table(name: str, description: str, *, required: bool, key: tuple[str, str], who: str,
                 time: tuple[str, str], columns: tuple[Column, ...],
                 optional_key: bool = False) -> TableSpec:
    """A table whose first columns are its key, the customer it belongs to and its time column.

    ``key`` and ``time`` are (column name, description); ``who`` starts the customer column's
    description ("Who placed the order"). An ``optional_key`` may be absent: then each row's
    position in the table as given is its id.
    """
    opening = (
        Column(key[0], "id", key[1], optional=optional_key,
               default_from=ROW_NUMBER if optional_key else None),
        Column("customer_id", "id", f"{who} (must exist in customers)."),
        Column(time[0], "timestamp", time[1]),
    )
    return TableSpec(name=name, description=description, columns=(*opening, *columns),
                     key=key[0], time_column=time[0], required=required)


CUSTOMERS = TableSpec(
    name="customers", key="customer_id", time_column="signup_at", required=False,
    description="One row per customer. When the table is absent it is derived from the orders: "
    "one row per `customer_id` of `orders`, the customer's first `ordered_at` as `signup_at`, "
    "every other column at its default (no consent recorded means no channel may be used).",
    columns=(
        Column("customer_id", "id", "Customer identifier, unique."),
        Column("signup_at", "timestamp", "When the customer registered (UTC)."),
        Column("region", "str", "Region or city.", nullable=True, optional=True),
        Column("timezone", "str", "IANA time zone of the customer, e.g. Europe/Moscow; missing or "
               "empty means UTC.", nullable=True, optional=True, default="UTC"),
        *(_consent(ch) for ch in CHANNELS),
        Column("unsubscribed_at", "timestamp", "When the customer unsubscribed from all marketing "
               "(UTC); empty if never.", nullable=True, optional=True, learned_later=True),
    ),
)

ORDERS = _event_table(
    "orders", "One row per order, with its latest status.", required=True,
    key=("order_id", "Order identifier, unique."), who="Who placed the order",
    time=("ordered_at", "When the order was placed (UTC)."), optional_key=True,
    columns=(
        Column("amount", "float", "Amount paid for the goods, after discount.", min_value=0),
        Column("discount_amount", "float", "Discount granted on the order.", min_value=0,
               optional=True, default=0.0),
        Column("delivery_cost", "float", "Delivery fee paid by the customer.", min_value=0,
               optional=True, default=0.0),
        Column("n_items", "int", "Number of items.", min_value=1, optional=True, default=1),
        Column("category", "str", "Main product category.", nullable=True, optional=True),
        Column("status", "enum", "Latest status of the order. When absent, every order counts "
               "as delivered when placed, and the delivery features are left out (a status never "
               "recorded is no evidence of a delivery).", values=ORDER_STATUSES, optional=True,
               default="delivered", learned_later=True),
        Column("status_at", "timestamp", "When the latest status was set (UTC); not before "
               "ordered_at. Before this moment the order counts as 'placed' (in transit).",
               optional=True, default_from="ordered_at", absent_with="status"),
        Column("delivery_delay_days", "float", "Days the delivery was late against its promise; "
               "empty if not delivered or unknown. Known from status_at.", nullable=True,
               optional=True, min_value=0, learned_later=True),
    ),
)

BROWSING = TableSpec(
    name="browsing", description="Site and app events, one row per event.", required=False,
    key="session_id", time_column="ts",
    columns=(
        Column("customer_id", "id", "Who browsed (must exist in customers)."),
        Column("session_id", "id", "Browsing session; several events share one."),
        Column("ts", "timestamp", "When the event happened (UTC)."),
        Column("event", "enum", "What the customer did.", values=BROWSING_EVENTS),
        Column("category", "str", "Product category viewed, if any.", nullable=True, optional=True),
    ),
)

TICKETS = _event_table(
    "tickets", "Complaints and support requests, one row per ticket.", required=False,
    key=("ticket_id", "Ticket identifier, unique."), who="Who opened it",
    time=("opened_at", "When the ticket was opened (UTC)."),
    columns=(
        Column("topic", "enum", "What the ticket is about.", values=TICKET_TOPICS),
        Column("resolved_at", "timestamp", "When the ticket was resolved (UTC); empty while "
               "unresolved. Not before opened_at.", nullable=True, learned_later=True),
        Column("compensation_amount", "float", "Compensation granted; known once the ticket is "
               "resolved.", min_value=0, optional=True, default=0.0, learned_later=True),
        Column("satisfaction", "int", "Customer's rating of the resolution, 1-5; known once "
               "resolved.", nullable=True, optional=True, min_value=1, max_value=5,
               learned_later=True),
    ),
)

CONTACTS = _event_table(
    "contacts", "Past win-back messages, including the randomized control group (not sent).",
    required=False, key=("contact_id", "Contact identifier, unique."), who="Who was targeted",
    time=("sent_at", "When the message was sent (UTC); for the control group, when it would "
          "have been."),
    columns=(
        Column("channel", "enum", "Channel used.", values=CHANNELS),
        Column("action", "enum", "Win-back action offered.", values=ACTIONS),
        Column("group", "enum", "treatment (sent) or control (held out at random).",
               values=CONTACT_GROUPS),
        Column("opened_at", "timestamp", "When the message was opened (UTC); empty if never.",
               nullable=True, learned_later=True),
        Column("converted_at", "timestamp", "When the customer ordered again, attributed to this "
               "contact (UTC); empty if not.", nullable=True, learned_later=True),
        Column("campaign", "str", "Campaign name.", nullable=True, optional=True),
    ),
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec for spec in (CUSTOMERS, ORDERS, BROWSING, TICKETS, CONTACTS)
}
#: The tables a shop must provide, in contract order.
REQUIRED_TABLES = tuple(name for name, spec in TABLES.items() if spec.required)


def missing_tables(present: Iterable[str]) -> list[str]:
    """The required tables, in contract order, that are not among the ``present`` table names."""
    have = set(present)
    return [name for name in REQUIRED_TABLES if name not in have]


def as_utc_timestamp(value: object, *, name: str = "as_of") -> pd.Timestamp:
    """Parse ``value`` as a UTC timestamp; a naive value is read as UTC.

    Raises ``ValueError`` naming ``name`` when the value is missing or unparseable, so that a
    forgotten ``as_of`` never silently becomes "now".
    """
    if value is None:
        raise ValueError(f"{name} is required (a date or timestamp); churnkit never assumes 'now'")
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}={value!r} is not a date or timestamp") from exc
    if ts is pd.NaT:
        raise ValueError(f"{name} is required (got NaT)")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
