"""Request and response models of the scoring service (they make its OpenAPI spec).

Requests refuse unknown fields and timestamps without a zone. The rows of ``/score_events`` have
one model per table of the data contract (:data:`churnkit.data.TABLES`), built from it: its
columns, which are required, their kinds, enums and bounds; what a row alone cannot show (ids
unique, rows of the one customer, ``status_at`` not before ``ordered_at``) is left to
:func:`churnkit.validate`. A response row is filled generically from the columns
:func:`churnkit.score` returns: a field whose column the bundle does not produce (no timing or
policy component) is ``null``.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

import pandas as pd
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    create_model,
)

from churnkit.data import EARLIEST, LATEST, TABLES
from churnkit.scoring import Scores


def _whole(value: object) -> object:
    """A float without a fractional part as its int: JSON Schema counts ``5.0`` an integer."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def whole_number(ge: float | None = None, le: float | None = None) -> Any:
    """An integer as JSON Schema means it (``5`` or ``5.0``, never ``true`` or ``"5"``), within
    ``[ge, le]``."""
    return Annotated[int, Field(strict=True, ge=ge, le=le), BeforeValidator(_whole)]


#: An identifier: a non-negative 64-bit integer or a non-empty string.
CustomerId = Annotated[
    Annotated[int, Field(strict=True, ge=0, le=2**63 - 1)]
    | Annotated[str, Field(strict=True, min_length=1, max_length=128)],
    BeforeValidator(_whole),
]


class ScoreRequest(BaseModel):
    """Score customers from the event store."""

    model_config = ConfigDict(extra="forbid", strict=True)

    customer_ids: list[CustomerId] = Field(
        min_length=1,
        description="Customers to score (integers or strings, as in the shop's data); at most "
                    "the service's configured maximum (CHURNKIT_MAX_IDS, default 1000). Ids "
                    "unknown at as_of come back in not_found.",
    )
    as_of: AwareDatetime | None = Field(
        default=None,
        description="The moment to score at, ISO 8601 with a zone (e.g. 2025-07-01T00:00:00Z). "
                    "Only events strictly before it are used. Default: the time of scoring.",
    )


#: RFC 3339 with a zone, in the years the contract accepts (from EARLIEST to before LATEST).
TIMESTAMP_PATTERN = (
    f"^({'|'.join(str(year) for year in range(EARLIEST.year, LATEST.year))})"
    r"-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
Timestamp = Annotated[AwareDatetime, WithJsonSchema(
    {"type": "string", "format": "date-time", "pattern": TIMESTAMP_PATTERN})]

_KINDS: dict[str, Any] = {"id": CustomerId, "timestamp": Timestamp, "float": float,
                          "bool": bool, "str": str}


def _column_type(column) -> Any:
    """The pydantic type of a contract column: its kind, enum values and bounds."""
    if column.name == "timezone":  # the contract accepts known IANA zones; empty means UTC
        kind: Any = Literal[tuple(sorted(available_timezones() | {"UTC", ""}))]
    elif column.kind == "enum":
        kind = Literal[column.values]
    elif column.kind == "int":
        kind = whole_number(column.min_value, column.max_value)
    else:
        kind = _KINDS[column.kind]
    if column.kind == "float" and (column.min_value, column.max_value) != (None, None):
        kind = Annotated[kind, Field(ge=column.min_value, le=column.max_value)]
    return kind | None if column.nullable else kind


def _row_model(spec) -> type[BaseModel]:
    """One row of a contract table: optional columns may be left out (the contract's default
    fills them), nullable ones may be ``null``."""
    fields: dict[str, Any] = {}
    for column in spec.columns:
        text = f"{column.description} ({column.kind})"
        default = column.default if column.optional else ...
        fields[column.name] = (_column_type(column), Field(default, description=text))
    return create_model(f"{spec.name.capitalize()}Row", __doc__=spec.description,
                        __config__=ConfigDict(extra="forbid", strict=True), **fields)


#: One model per contract table, by table name.
ROW_MODELS: dict[str, type[BaseModel]] = {name: _row_model(spec) for name, spec in TABLES.items()}
CustomersRow = ROW_MODELS["customers"]
OrdersRow = ROW_MODELS["orders"]
BrowsingRow = ROW_MODELS["browsing"]
TicketsRow = ROW_MODELS["tickets"]
ContactsRow = ROW_MODELS["contacts"]


class ScoreEventsRequest(BaseModel):
    """Score one customer from raw rows given in the request (the data contract's tables)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    customers: list[CustomersRow] = Field(  # type: ignore[valid-type]
        min_length=1, max_length=1,
        description="Exactly one row of the customers table (customer_id, signup_at, ...).")
    orders: list[OrdersRow] = Field(  # type: ignore[valid-type]
        default_factory=list, description="The customer's orders.")
    browsing: list[BrowsingRow] | None = Field(  # type: ignore[valid-type]
        default=None, description="Browsing events; absent = the shop has no browsing table.")
    tickets: list[TicketsRow] | None = Field(  # type: ignore[valid-type]
        default=None, description="Support tickets; absent = no tickets table.")
    contacts: list[ContactsRow] | None = Field(  # type: ignore[valid-type]
        default=None, description="Past win-back contacts; absent = no contacts table.")
    as_of: AwareDatetime | None = Field(
        default=None, description="As in /score: ISO 8601 with a zone; default now.")


class Driver(BaseModel):
    feature: str = Field(description="Feature name (see docs/features.md).")
    value: float | str | None = Field(description="The customer's value of the feature.")
    contribution: float = Field(description="Push towards churn, in log-odds (SHAP).")
    text: str | None = Field(default=None, description="The driver in plain words, when the "
                                                       "bundle provides it.")


class CustomerScore(BaseModel):
    customer_id: int | str
    churn_probability: float = Field(description="Calibrated probability of no order within "
                                                 "the bundle's horizon (0-1).")
    risk_percentile: float = Field(description="0-100 against the training population.")
    risk_band: str = Field(description="critical, high, medium or low.")
    segment: str = Field(description="prospect, new, repeat or vip.")
    activity: str | None = Field(default=None, description="active, sleeping or lapsed.")
    top_drivers: list[Driver] = Field(default_factory=list,
                                      description="Features pushing churn up the most "
                                      "(computed for customers at risk; empty otherwise).")
    # policy (null when the bundle has no policy component)
    cause: str | None = None
    action: str | None = Field(default=None, description="Win-back action to take.")
    action_reason: str | None = Field(default=None, description="Why, in plain words.")
    policy_trace: list[str] | None = None
    priority: float | None = Field(default=None, description="Higher = act first.")
    action_cost: float | None = None
    expected_incremental_profit: float | None = Field(
        default=None, description="Expected profit from acting versus not, in margin: uplift x "
                                  "value_if_returned x margin_share - cost (currency; null "
                                  "without an uplift model).")
    margin_share: float | None = Field(default=None, description="Gross-margin share (0-1] "
                                       "the policy values this customer's revenue at.")
    expected_value: float | None = Field(default=None, description="Expected revenue over the "
                                         "horizon (currency; revenue, not margin).")
    value_if_returned: float | None = Field(default=None, description="Revenue the customer "
                                            "brings if they come back (currency; x "
                                            "margin_share for the margin the policy weighs).")
    # timing (null when the bundle has no timing component)
    contact_date: datetime | None = Field(default=None, description="Day to contact (UTC).")
    contact_date_confidence: float | None = None
    contact_weekday: int | None = Field(default=None, description="0 = Monday, local time.")
    contact_hour_local: int | None = Field(default=None, description="0-23, local time.")
    contact_slot_confidence: float | None = None
    channel: str | None = Field(default=None, description="Channel to use; null when none "
                                                          "is consented.")
    channel_confidence: float | None = None
    expected_days_to_next_order: float | None = None


class ScoreResponse(BaseModel):
    model: str = Field(description="Bundle name.")
    model_version: str = Field(description="Bundle version.")
    as_of: datetime = Field(description="The moment scored at (UTC).")
    customers: list[CustomerScore]
    not_found: list[int | str] = Field(
        default_factory=list, description="Requested ids unknown at as_of (no such customer, "
                                          "or signed up at or after as_of).")


_FIELDS = [name for name in CustomerScore.model_fields if name not in ("customer_id",
                                                                        "top_drivers")]
_NAMES = frozenset((*_FIELDS, "top_drivers"))


def _plain(value: object) -> object:
    """A JSON-ready value: NaN/NaT -> None, NumPy scalars -> Python, Timestamps -> datetime."""
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.to_pydatetime()
    if isinstance(value, (list, tuple)):
        return list(value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # NumPy scalar
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def rows_from_frame(scored: pd.DataFrame | Scores) -> list[CustomerScore]:
    """One :class:`CustomerScore` per row of a :func:`churnkit.score` frame, or of its columns
    (:class:`churnkit.scoring.Scores`, the same answer without building the frame)."""
    if isinstance(scored, Scores):
        columns = scored.values()
    else:
        columns = {name: scored[name].tolist() for name in scored.columns
                   if name in _NAMES}
    present = [name for name in _FIELDS if name in columns]
    drivers = columns.get("top_drivers")
    out = []
    for i, customer_id in enumerate(scored.index.tolist()):
        row: dict[str, object] = {name: _plain(columns[name][i]) for name in present}
        row["customer_id"] = _plain(customer_id)
        if drivers is not None:
            row["top_drivers"] = [Driver(**{k: _plain(v) for k, v in d.items()
                                            if k in Driver.model_fields})
                                  for d in drivers[i]]
        out.append(CustomerScore.model_validate(row))
    return out
