"""Reading a request into what :func:`churnkit.score` takes: ``as_of`` as a UTC Timestamp, the
customer ids in the event store's kind, and the rows of a ``/score_events`` body as validated
:class:`churnkit.Tables`. Whatever cannot be read raises :class:`churnkit.errors.RequestError`,
whose status and message the endpoint answers with."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import pandas as pd
from pydantic import BaseModel

import churnkit as ck
from churnkit.data import columns_of_records, validate_columns
from churnkit.errors import RequestError
from serving.settings import Settings


def parse_as_of(value: datetime | None, settings: Settings, now: pd.Timestamp) -> pd.Timestamp:
    """The request's ``as_of`` as a UTC Timestamp (``now`` when not given).

    Refuses (422: the schema cannot state these limits) a date before 1900, one pandas cannot
    hold, and one more than ``settings.max_future_seconds`` seconds after ``now``: events after
    now are not known yet.
    """
    if value is None:
        return now
    try:
        as_of = pd.Timestamp(value).tz_convert("UTC")
    except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime):
        raise RequestError(f"as_of {value.isoformat()} is out of range; give a date between "
                           "1900 and the present", status=422) from None
    if as_of.year < 1900:
        raise RequestError(f"as_of {value.isoformat()} is before 1900; give a date the shop "
                           "has data for", status=422)
    limit = now + pd.Timedelta(seconds=settings.max_future_seconds)
    if as_of > limit:
        raise RequestError(
            f"as_of {as_of.isoformat()} is in the future (server time {now.isoformat()}; at most "
            f"{settings.max_future_seconds:g} s ahead allowed): events after now are not known, "
            "so scores at that date would be wrong; leave as_of out to score now", status=422)
    return as_of


def parse_ids(ids: Sequence[object], kind: str) -> tuple[list[object], list[object]]:
    """(the distinct ids as the store holds them, the ids that cannot be one of its ids).

    ``kind`` is the store's ``id_kind``: for ``"int"`` a string of digits becomes its integer
    (so ``"7"`` and ``7`` are one customer) and any other string cannot be an id; for ``"str"``
    every id becomes its string. Order is that of first appearance.
    """
    ok, bad = [], []
    for i in dict.fromkeys(ids):
        if kind != "int":
            ok.append(str(i))
        elif isinstance(i, int) and not isinstance(i, bool):
            ok.append(i)
        elif isinstance(i, str) and i.strip().lstrip("-").isdigit():
            ok.append(int(i.strip()))
        else:
            bad.append(i)
    return list(dict.fromkeys(ok)), bad


def records_of(rows: Sequence[BaseModel] | None) -> list[dict] | None:
    """The rows of one table of a ``/score_events`` body as JSON records: the columns sent, a
    left-out optional column absent (so the contract's default fills it)."""
    if rows is None:
        return None
    return [row.model_dump(mode="json", exclude_unset=True) for row in rows]


def columns_of(rows: Sequence[BaseModel] | None) -> dict[str, list] | None:
    """The rows of one table of a ``/score_events`` body as columns (column -> its values), as
    ``churnkit.data.columns_of_records`` makes them from :func:`records_of`'s records, without
    a dump per row: the columns sent in order of first appearance, NaN where a row left one out;
    timestamps stay ``datetime`` (the contract reads them as their ISO text) and a float that
    is not finite is ``None``, as in the JSON dump."""
    if rows is None:
        return None
    if not rows:
        return {}
    fields = list(type(rows[0]).model_fields)
    sets = [row.model_fields_set for row in rows]
    first = sets[0]
    if all(s == first for s in sets):
        names = [f for f in fields if f in first]
        dicts = [row.__dict__ for row in rows]
        columns = {n: [d[n] for d in dicts] for n in names}
        for values in columns.values():
            if any(type(v) is float and not math.isfinite(v) for v in values):
                values[:] = [_as_dumped(v) for v in values]
    else:
        names = list(dict.fromkeys(f for s in sets for f in fields if f in s))
        columns = {n: [_as_dumped(row.__dict__[n]) if n in s else math.nan
                       for row, s in zip(rows, sets, strict=True)] for n in names}
    return columns


def _as_dumped(value: object) -> object:
    """A value as the JSON dump holds it: a float that is not finite is ``null``."""
    return None if type(value) is float and not math.isfinite(value) else value


def tables_from_rows(rows: dict[str, list | dict | None], *, with_arrays: bool = False
                     ) -> ck.Tables | tuple[ck.Tables, dict | None]:
    """Validated tables from a ``/score_events`` body: table name -> its rows as records (a list
    of dicts) or as :func:`columns_of` columns (``None``: the table is absent). A table given
    with no rows has the contract's columns and no rows. With ``with_arrays``, also the
    validation's own arrays of those tables (``churnkit.data.validate_columns``), which
    ``ShopArrays.of(tables, arrays)`` reads instead of the frames.

    Raises :class:`RequestError` (422) listing every contract problem, or when the customers
    table does not hold exactly one customer.
    """
    columns = {name: given if given is None or isinstance(given, dict)
               else columns_of_records(given) for name, given in rows.items()}
    try:
        tables, plain = validate_columns(columns, with_arrays=True)
    except ck.DataValidationError as exc:
        raise RequestError(
            f"the rows break the data contract ({len(exc.problems)} problem(s)); fix them and "
            "resend (see docs/data-contract.md)",
            status=422, detail=[str(p) for p in exc.problems]) from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise RequestError(f"the rows cannot be read as the contract's tables: {exc}",
                           status=422) from None
    if len(pd.unique(tables.customers["customer_id"])) != 1:
        raise RequestError("customers must hold exactly one customer", status=422)
    return (tables, plain) if with_arrays else tables


def customer_id_of(tables: ck.Tables) -> object:
    """The one customer's id of :func:`tables_from_rows`' tables, as a Python int or str."""
    customer_id = tables.customers["customer_id"].iloc[0]
    return customer_id.item() if hasattr(customer_id, "item") else customer_id
