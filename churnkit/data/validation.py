"""Checking tables against the contract, reporting every problem at once, and normalizing them.

:func:`validate` never stops at the first problem: it collects all of them (missing tables and
columns, wrong kinds, unparseable or impossible timestamps, negative amounts, unknown enum values,
duplicate ids, rows whose customer does not exist) and raises one :class:`DataValidationError`
that names, for each, the table, the column, how many rows and a few example ids.
"""

from __future__ import annotations

import functools
from zoneinfo import available_timezones

import numpy as np
import pandas as pd

from churnkit.data.contract import (
    CUSTOMERS,
    REQUIRED_TABLES,
    ROW_NUMBER,
    TABLES,
    Column,
    TableSpec,
)
from churnkit.data.tables import Tables
from churnkit.errors import DataValidationError, Problem

#: Timestamps outside these bounds are "impossible" rather than merely old or far ahead.
EARLIEST = pd.Timestamp("1990-01-01", tz="UTC")
LATEST = pd.Timestamp("2100-01-01", tz="UTC")
N_EXAMPLES = 5
#: Later-learned timestamps that may not precede the row's own event time.
ORDERING_RULES = {
    "orders": [("status_at", "ordered_at")],
    "tickets": [("resolved_at", "opened_at")],
    "contacts": [("opened_at", "sent_at"), ("converted_at", "sent_at")],
}


class _Checker:
    def __init__(self, spec: TableSpec, frame: pd.DataFrame) -> None:
        self.spec = spec
        self.frame = frame
        self.problems: list[Problem] = []
        #: Optional columns absent from ``frame`` (filled with their default).
        self.absent: list[str] = []
        self.id_column = spec.key if spec.key in frame.columns else None

    def report(self, column: str | None, mask: np.ndarray | pd.Series, message: str) -> None:
        mask = np.asarray(mask, dtype=bool)
        n = int(mask.sum())
        if n == 0:
            return
        examples: list = []
        if self.id_column is not None:
            flagged = self.frame[self.id_column].to_numpy()[mask][: 4 * N_EXAMPLES].tolist()
            examples = list(dict.fromkeys(flagged))[:N_EXAMPLES]
        else:
            examples = np.flatnonzero(mask)[:N_EXAMPLES].tolist()
        self.problems.append(
            Problem(self.spec.name, column, n, examples, message, self.id_column or "row")
        )


def _coerce_timestamp(raw: pd.Series) -> pd.Series:
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        return raw.dt.tz_localize("UTC").astype("datetime64[us, UTC]")
    # Text: ISO 8601 with or without an offset; naive values are read as UTC (documented).
    parsed = pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601")
    return parsed.astype("datetime64[us, UTC]")


def _coerce_number(raw: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(raw.dtype):
        return raw.astype("float64")
    return pd.to_numeric(raw, errors="coerce").astype("float64")


def _coerce_bool(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_bool_dtype(raw.dtype) and not raw.hasnans:
        return raw.astype(bool), pd.Series(False, index=raw.index)
    text = raw.astype("str").str.strip().str.lower()
    truth = text.isin(["true", "1", "yes", "t", "y", "1.0"])
    falsity = text.isin(["false", "0", "no", "f", "n", "0.0"])
    bad = raw.notna() & ~(truth | falsity)
    return truth, bad


def _absent_column(chk: _Checker, col: Column, columns: dict[str, pd.Series]) -> pd.Series | None:
    """What an absent column stands for (its default, as if given), or None and a problem."""
    spec, frame = chk.spec, chk.frame
    paired = col.absent_with is not None and col.absent_with in frame.columns
    if not col.optional or paired:
        alone = f" (it may be absent only together with {col.absent_with})" if paired else ""
        chk.problems.append(Problem(spec.name, col.name, 0, [], f"required column is missing"
                                    f"{alone} (expected {col.kind}: {col.description})"))
        return None
    chk.absent.append(col.name)
    if col.default_from == ROW_NUMBER:
        return pd.Series(np.arange(len(frame), dtype="int64"), index=frame.index)
    if col.default_from is not None:
        return columns.get(col.default_from)
    if col.kind == "timestamp":
        return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us, UTC]")
    if col.default is None:
        return pd.Series(pd.NA if col.kind != "float" else np.nan, index=frame.index,
                         dtype={"float": "float64", "int": "Int64"}.get(col.kind, "str"))
    return pd.Series(col.default, index=frame.index)


def _check_column(chk: _Checker, col: Column, columns: dict[str, pd.Series]) -> pd.Series | None:
    """The column normalized by its kind; an absent optional column is checked as its default
    would be if given, so it gets the same dtype."""
    frame = chk.frame
    if col.name in frame.columns:
        raw = frame[col.name]
    else:
        raw = _absent_column(chk, col, columns)
        if raw is None:
            return None
    null_in = raw.isna()
    if col.kind == "id":
        if pd.api.types.is_integer_dtype(raw.dtype) and not null_in.any():
            out = raw.astype("int64")
        elif pd.api.types.is_float_dtype(raw.dtype):
            whole = raw.dropna() == np.floor(raw.dropna())
            if whole.all() and not null_in.any():
                out = raw.astype("int64")
            else:
                out = raw.astype("str")
        else:
            out = raw.astype("str")
            # Text ids that are plain integers (as CSV files hold them) become int64, so that a
            # CSV and a Parquet export of the same shop agree; "007" stays text.
            if not null_in.any() and out.str.fullmatch(r"0|[1-9][0-9]{0,17}").all():
                out = out.astype("int64")
        bad = pd.Series(False, index=raw.index)
    elif col.kind == "timestamp":
        out = _coerce_timestamp(raw)
        bad = out.isna() & ~null_in
        if bad.any():
            chk.report(col.name, bad, "unparseable timestamp (expected ISO 8601, e.g. "
                       "2024-03-01T12:00:00Z; naive values are read as UTC)")
        impossible = out.notna() & ((out < EARLIEST) | (out >= LATEST))
        chk.report(col.name, impossible, f"impossible timestamp (outside {EARLIEST.year}-"
                   f"{LATEST.year})")
    elif col.kind in ("float", "int"):
        out = _coerce_number(raw)
        bad = out.isna() & ~null_in
        chk.report(col.name, bad, f"not a number (expected {col.kind})")
        if col.kind == "int":
            fractional = out.notna() & (out != np.floor(out))
            chk.report(col.name, fractional, "not a whole number")
        if col.min_value is not None:
            chk.report(col.name, out < col.min_value,
                       f"{'negative ' if col.min_value == 0 else ''}values below "
                       f"{col.min_value:g} (expected >= {col.min_value:g})")
        if col.max_value is not None:
            chk.report(col.name, out > col.max_value, f"values above {col.max_value:g} "
                       f"(expected <= {col.max_value:g})")
        if col.kind == "int":
            out = out.round().astype("Int64" if col.nullable else "float64")
            if not col.nullable and out.notna().all():
                out = out.astype("int64")
    elif col.kind == "bool":
        out, bad = _coerce_bool(raw)
        chk.report(col.name, bad, "not a boolean (expected true/false)")
        out = out.astype(bool)
    elif col.kind == "enum":
        out = raw.astype("str")
        bad = out.notna() & ~out.isin(col.values)
        if bad.any():
            unknown = sorted(map(str, pd.unique(out[bad])))[:N_EXAMPLES]
            chk.report(col.name, bad, f"unknown values {unknown} (expected one of "
                       f"{', '.join(col.values)})")
    else:  # str
        out = raw.astype("str")
    if not col.nullable:
        chk.report(col.name, null_in, "empty values (the column may not be empty)")
    if col.name == "timezone":
        out = out.fillna("UTC").replace("", "UTC")
        known = _known_zones()
        chk.report(col.name, ~out.isin(known), "unknown IANA time zone (e.g. Europe/Moscow)")
    return out


def _check_table(spec: TableSpec, frame: pd.DataFrame) -> tuple[pd.DataFrame, _Checker]:
    """The table normalized, and its checker (the problems found, the absent columns)."""
    chk = _Checker(spec, frame)
    columns: dict[str, pd.Series] = {}
    for col in spec.columns:
        out = _check_column(chk, col, columns)
        if out is not None:
            columns[col.name] = out
    if spec.name != "browsing" and spec.key in columns:
        key = columns[spec.key]
        dup = key.duplicated(keep=False).to_numpy()
        chk.report(spec.key, dup, "duplicate ids (expected unique)")
    for later, earlier in ORDERING_RULES.get(spec.name, []):
        if later in columns and earlier in columns:
            chk.report(later, columns[later] < columns[earlier], f"{later} before {earlier}")
    extra = [c for c in frame.columns if c not in spec.column_names]
    normalized = pd.DataFrame(columns, index=frame.index)
    for name in extra:
        normalized[name] = frame[name]
    return normalized, chk


def _derived_customers(orders: pd.DataFrame) -> pd.DataFrame:
    """The customers table the contract derives from normalized ``orders`` (see
    :data:`churnkit.data.contract.CUSTOMERS`), normalized as a given table would be."""
    first = orders.groupby("customer_id", sort=True)["ordered_at"].min()
    given = pd.DataFrame({"customer_id": first.index.to_numpy(), "signup_at": first.to_numpy()})
    customers, _ = _check_table(CUSTOMERS, given)
    return customers


@functools.cache
def _known_zones() -> frozenset[str]:
    """IANA zone names (read once: listing them walks the whole zoneinfo tree, which costs more
    than validating one customer's rows)."""
    return frozenset(available_timezones() | {"UTC"})


def validate(tables: Tables) -> Tables:
    """Check ``tables`` against the contract and return them normalized.

    Normalized means: timestamps ``datetime64[us, UTC]`` (naive input read as UTC); ids of one
    kind (int64, or text if any table has text ids); absent optional columns filled with their
    contract default; an absent ``customers`` table derived from the orders (one row per
    customer, the first order as the signup); event tables sorted by ``customer_id`` and time.
    What was filled in is recorded in :attr:`Tables.defaulted`.

    Raises
    ------
    DataValidationError
        Listing every problem found, each with table, column, row count and example ids.
    """
    problems: list[Problem] = []
    frames: dict[str, pd.DataFrame | None] = {}
    defaulted: set[str] = set()
    orders_ok = False
    for name, spec in TABLES.items():
        frame = tables.get(name)
        if frame is None:
            if name in REQUIRED_TABLES:
                problems.append(Problem(name, None, 0, [], "required table is missing"))
            frames[name] = None
            continue
        frames[name], chk = _check_table(spec, frame.reset_index(drop=True))
        problems.extend(chk.problems)
        defaulted.update(f"{name}.{column}" for column in chk.absent)
        orders_ok = orders_ok or (name == "orders" and not chk.problems)

    if frames["customers"] is None and orders_ok:
        frames["customers"] = _derived_customers(frames["orders"])
        defaulted.add("customers")
    # a customer who never ordered has no row in a table derived from the orders
    unknown = ("customer_id not in orders (customers are derived from the orders)"
               if "customers" in defaulted else "customer_id not in customers")

    present = {n: f for n, f in frames.items() if f is not None and "customer_id" in f.columns}
    if any(not pd.api.types.is_integer_dtype(f["customer_id"].dtype) for f in present.values()):
        for f in present.values():
            f["customer_id"] = f["customer_id"].astype("str")

    customers = frames.get("customers")
    if customers is not None and "customer_id" in customers.columns:
        known = customers["customer_id"]
        for name, frame in present.items():
            if name == "customers":
                continue
            spec = TABLES[name]
            chk = _Checker(spec, frame)
            chk.report("customer_id", ~frame["customer_id"].isin(known), unknown)
            problems.extend(chk.problems)

    if problems:
        raise DataValidationError(problems)

    for name, frame in list(frames.items()):
        if frame is None:
            continue
        spec = TABLES[name]
        by = ["customer_id", spec.time_column]
        frames[name] = frame.sort_values(by, kind="stable").reset_index(drop=True)
    return Tables(**frames, normalized=True, defaulted=frozenset(defaulted))


def validated(tables: Tables) -> Tables:
    """``tables`` themselves when already validated (normalized), else :func:`validate` of them."""
    return tables if tables.normalized else validate(tables)
