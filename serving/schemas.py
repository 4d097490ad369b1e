"""Request and response models of the scoring service (they make its OpenAPI spec).

Requests refuse unknown fields and timestamps without a zone. A response row is filled generically
from the columns :func:`churnkit.score` returns: a field whose column the bundle does not produce
(no timing or policy component) is ``null``.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated

import pandas as pd
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

CustomerId = Annotated[int, Field(strict=True, ge=0, le=2**63 - 1)] | Annotated[
    str, Field(strict=True, min_length=1, max_length=128)]


class ScoreRequest(BaseModel):
    """Score customers from the event store."""

    model_config = ConfigDict(extra="forbid")

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


Row = dict[str, str | int | float | bool | None]


class ScoreEventsRequest(BaseModel):
    """Score one customer from raw rows given in the request (the data contract's tables)."""

    model_config = ConfigDict(extra="forbid")

    customers: list[Row] = Field(
        min_length=1, max_length=1,
        description="Exactly one row of the customers table (customer_id, signup_at, ...).")
    orders: list[Row] = Field(default_factory=list, description="The customer's orders.")
    browsing: list[Row] | None = Field(
        default=None, description="Browsing events; absent = the shop has no browsing table.")
    tickets: list[Row] | None = Field(
        default=None, description="Support tickets; absent = no tickets table.")
    contacts: list[Row] | None = Field(
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
    expected_incremental_profit: float | None = None
    expected_value: float | None = Field(default=None, description="Expected revenue over the "
                                                                   "horizon (currency).")
    value_if_returned: float | None = Field(default=None, description="What the customer is "
                                            "worth if they come back (currency).")
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


def rows_from_frame(scored: pd.DataFrame) -> list[CustomerScore]:
    """One :class:`CustomerScore` per row of a :func:`churnkit.score` frame."""
    present = [name for name in _FIELDS if name in scored.columns]
    drivers = scored["top_drivers"].tolist() if "top_drivers" in scored.columns else None
    columns = {name: scored[name].tolist() for name in present}
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
