"""Checking tables against the contract, reporting every problem at once, and normalizing them.

:func:`validate` never stops at the first problem: it collects all of them (missing tables and
columns, wrong kinds, unparseable or impossible timestamps, negative amounts, unknown enum values,
duplicate ids, rows whose customer does not exist) and raises one :class:`DataValidationError`
that names, for each, the table, the column, how many rows and a few example ids.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from zoneinfo import available_timezones

import numpy as np
import pandas as pd

from churnkit.data.coercion import coerced
from churnkit.data.contract import (
    CUSTOMERS,
    REQUIRED_TABLES,
    ROW_NUMBER,
    TABLES,
    Column,
    TableSpec,
)
from churnkit.data.frames import frame_of_arrays
from churnkit.data.plain import PlainTable, frame_array, plain_array
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
    def __init__(self, spec: TableSpec, keys: Callable[[], np.ndarray] | None) -> None:
        self.spec = spec
        #: The table's key column as given (its examples name the rows), None when absent.
        self.keys = keys
        self.problems: list[Problem] = []
        #: Optional columns absent from the table (filled with their default).
        self.absent: list[str] = []
        self.id_column = spec.key if keys is not None else None

    def report(self, column: str | None, mask: np.ndarray | pd.Series, message: str) -> None:
        mask = np.asarray(mask, dtype=bool)
        n = int(mask.sum())
        if n == 0:
            return
        examples: list = []
        if self.keys is not None:
            flagged = self.keys()[mask][: 4 * N_EXAMPLES].tolist()
            examples = list(dict.fromkeys(flagged))[:N_EXAMPLES]
        else:
            examples = np.flatnonzero(mask)[:N_EXAMPLES].tolist()
        self.problems.append(
            Problem(self.spec.name, column, n, examples, message, self.id_column or "row")
        )


class _Frame:
    """A table given as a DataFrame: every check runs on its pandas columns."""

    plain = False

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame, self.names, self.n = frame, list(frame.columns), len(frame)

    def raw(self, name: str) -> pd.Series:
        return self.frame[name]

    def keys(self, name: str) -> Callable[[], np.ndarray]:
        return lambda: self.frame[name].to_numpy()


class _Plain:
    """A table given as Python columns (:class:`PlainTable`): checks run on NumPy arrays; a
    column that is not plain is coerced by the pandas path, then held as an array too."""

    plain = True

    def __init__(self, table: PlainTable) -> None:
        self.table, self.names, self.n = table, table.names, table.n

    def raw(self, name: str) -> np.ndarray | pd.Series:
        plain = self.table.array(name)
        return self.table.series(name) if plain is None else plain

    def keys(self, name: str) -> Callable[[], np.ndarray]:
        return lambda: self.table.keys(name)


# --- the rules: one definition, on pandas columns or NumPy arrays ---------------------------

def _isin(values: pd.Series | np.ndarray, allowed) -> pd.Series | np.ndarray:
    if isinstance(values, pd.Series):
        return values.isin(allowed)
    if values.dtype != object:
        return np.isin(values, list(allowed))
    allowed = allowed if isinstance(allowed, (set, frozenset)) else set(allowed)
    return np.fromiter((v in allowed for v in values.tolist()), dtype=bool, count=len(values))


def _duplicated(values: pd.Series | np.ndarray) -> np.ndarray:
    if isinstance(values, pd.Series):
        return values.duplicated(keep=False).to_numpy()
    if values.dtype == object:  # NaN equals NaN here, as in a pandas column
        return pd.Series(values, dtype=object).duplicated(keep=False).to_numpy()
    _, at, counts = np.unique(values, return_inverse=True, return_counts=True)
    return counts[at] > 1


def _time_bounds(values: pd.Series | np.ndarray) -> tuple[object, object]:
    if isinstance(values, pd.Series):
        return EARLIEST, LATEST
    return (EARLIEST.tz_convert(None).to_datetime64().astype("datetime64[us]"),
            LATEST.tz_convert(None).to_datetime64().astype("datetime64[us]"))


def _absent_column(chk: _Checker, col: Column, columns: dict, source) -> object | None:
    """What an absent column stands for (its default, as if given), or None and a problem."""
    spec, n = chk.spec, source.n
    paired = col.absent_with is not None and col.absent_with in source.names
    if not col.optional or paired:
        alone = f" (it may be absent only together with {col.absent_with})" if paired else ""
        chk.problems.append(Problem(spec.name, col.name, 0, [], f"required column is missing"
                                    f"{alone} (expected {col.kind}: {col.description})"))
        return None
    chk.absent.append(col.name)
    if col.default_from == ROW_NUMBER:
        values = np.arange(n, dtype="int64")
        return values if source.plain else pd.Series(values, index=source.frame.index)
    if col.default_from is not None:
        return columns.get(col.default_from)
    if source.plain:
        if col.kind == "timestamp":
            return np.full(n, np.datetime64("NaT", "us"))
        if col.default is None:
            return np.full(n, np.nan, dtype=np.float64 if col.kind in ("float", "int")
                           else object)
        return plain_array([col.default] * n)
    index = source.frame.index
    if col.kind == "timestamp":
        return pd.Series(pd.NaT, index=index, dtype="datetime64[us, UTC]")
    if col.default is None:
        return pd.Series(pd.NA if col.kind != "float" else np.nan, index=index,
                         dtype={"float": "float64", "int": "Int64"}.get(col.kind, "str"))
    return pd.Series(col.default, index=index)


def _check_column(chk: _Checker, col: Column, columns: dict, source) -> object | None:
    """The column normalized by its kind; an absent optional column is checked as its default
    would be if given, so it gets the same dtype. On a plain table the column is a NumPy array
    (see :func:`churnkit.data.plain.frame_array` for its frame dtype)."""
    if col.name in source.names:
        raw = source.raw(col.name)
    else:
        raw = _absent_column(chk, col, columns, source)
        if raw is None:
            return None
    null_in = pd.isna(raw)
    if source.plain and isinstance(raw, pd.Series):  # not plain: the pandas column's form
        null_in = null_in.to_numpy()
    out, bad = coerced(col, raw, null_in, source)
    if col.kind == "timestamp":
        bad = pd.isna(out) & ~null_in
        if bad.any():
            chk.report(col.name, bad, "unparseable timestamp (expected ISO 8601, e.g. "
                       "2024-03-01T12:00:00Z; naive values are read as UTC)")
        earliest, latest = _time_bounds(out)
        impossible = pd.notna(out) & ((out < earliest) | (out >= latest))
        chk.report(col.name, impossible, f"impossible timestamp (outside {EARLIEST.year}-"
                   f"{LATEST.year})")
    elif col.kind in ("float", "int"):
        bad = pd.isna(out) & ~null_in
        chk.report(col.name, bad, f"not a number (expected {col.kind})")
        if col.kind == "int":
            fractional = pd.notna(out) & (out != np.floor(out))
            chk.report(col.name, fractional, "not a whole number")
        if col.min_value is not None:
            chk.report(col.name, out < col.min_value,
                       f"{'negative ' if col.min_value == 0 else ''}values below "
                       f"{col.min_value:g} (expected >= {col.min_value:g})")
        if col.max_value is not None:
            chk.report(col.name, out > col.max_value, f"values above {col.max_value:g} "
                       f"(expected <= {col.max_value:g})")
        if col.kind == "int":
            out = _whole_numbers(out, col.nullable)
    elif col.kind == "bool":
        chk.report(col.name, bad, "not a boolean (expected true/false)")
    elif col.kind == "enum":
        bad = pd.notna(out) & ~_isin(out, col.values)
        if bad.any():
            unknown = sorted(map(str, pd.unique(out[bad])))[:N_EXAMPLES]
            chk.report(col.name, bad, f"unknown values {unknown} (expected one of "
                       f"{', '.join(col.values)})")
    if not col.nullable:
        chk.report(col.name, null_in, "empty values (the column may not be empty)")
    if col.name == "timezone":
        if isinstance(out, pd.Series):
            out = out.fillna("UTC").replace("", "UTC")
        else:
            out = np.array(["UTC" if v == "" or _missing(v) else v for v in out.tolist()],
                           dtype=object)
        chk.report(col.name, ~_isin(out, _known_zones()),
                   "unknown IANA time zone (e.g. Europe/Moscow)")
    return out


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _whole_numbers(out, nullable: bool):
    """An int column's checked numbers in its dtype: Int64 when nullable, else int64 (float64
    while values are missing: a problem was reported)."""
    if isinstance(out, pd.Series):
        out = out.round().astype("Int64" if nullable else "float64")
        if not nullable and out.notna().all():
            out = out.astype("int64")
        return out
    out = np.round(out)
    if nullable:
        return pd.array(out, dtype="Int64")
    return out.astype(np.int64) if not np.isnan(out).any() else out


def _check_table(spec: TableSpec, given: pd.DataFrame | PlainTable
                 ) -> tuple[pd.DataFrame | dict, _Checker]:
    """The table normalized (a frame; for a :class:`PlainTable` its columns as arrays), and
    its checker (the problems found, the absent columns)."""
    source = _Plain(given) if isinstance(given, PlainTable) else _Frame(given)
    chk = _Checker(spec, source.keys(spec.key) if spec.key in source.names else None)
    columns: dict = {}
    for col in spec.columns:
        out = _check_column(chk, col, columns, source)
        if out is not None:
            columns[col.name] = out
    if spec.name != "browsing" and spec.key in columns:
        chk.report(spec.key, _duplicated(columns[spec.key]), "duplicate ids (expected unique)")
    for later, earlier in ORDERING_RULES.get(spec.name, []):
        if later in columns and earlier in columns:
            chk.report(later, columns[later] < columns[earlier], f"{later} before {earlier}")
    if source.plain:
        return columns, chk
    frame = source.frame
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
        frames[name], chk = _check_table(spec, frame.reset_index(drop=True))  # type: ignore
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
            chk = _Checker(spec, (lambda f=frame, k=spec.key: f[k].to_numpy())
                           if spec.key in frame.columns else None)
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


def validate_columns(tables: Mapping[str, Mapping[str, list] | None], *,
                     with_arrays: bool = False) -> Tables | tuple[Tables, dict | None]:
    """:func:`validate` of tables given as Python columns: table name -> column name -> its
    values, one per row (None: the table is absent; no columns: the contract's, no rows), as
    :func:`churnkit.data.plain.columns_of_records` makes them from records.

    With ``with_arrays``, also the checked columns as NumPy arrays, row for row with the
    returned frames (table -> column -> array, in :func:`churnkit.data.plain.numpy_form`'s
    form; None for an absent table, or for all when the tables went through ``validate``):
    what :meth:`churnkit.features.arrays.ShopArrays.of` reads instead of the frames' columns.

    The same checks (one definition of each rule), the same problems in the same order and the
    same normalized :class:`Tables` as ``validate`` of the frames ``DataFrame.from_records``
    makes of those rows (``datetime`` values read as their ISO text), but on NumPy arrays: a
    one-customer request costs about a millisecond instead of one pandas operation per check.
    Tables without ``customers`` or with columns outside the contract go through ``validate``.
    """
    given = {name: tables.get(name) for name in TABLES}
    if given["customers"] is None or any(
            c is not None and not set(c) <= set(TABLES[n].column_names)
            for n, c in given.items()):
        checked = validate(Tables(**{n: None if c is None else PlainTable(_filled(n, c)).frame()
                                     for n, c in given.items()}))
        return (checked, None) if with_arrays else checked
    problems: list[Problem] = []
    arrays: dict[str, dict | None] = {}
    defaulted: set[str] = set()
    for name, spec in TABLES.items():
        columns = given[name]
        if columns is None:
            if name in REQUIRED_TABLES:
                problems.append(Problem(name, None, 0, [], "required table is missing"))
            arrays[name] = None
            continue
        arrays[name], chk = _check_table(spec, PlainTable(_filled(name, columns)))
        problems.extend(chk.problems)
        defaulted.update(f"{name}.{column}" for column in chk.absent)

    present = {n: a for n, a in arrays.items() if a is not None and "customer_id" in a}
    if any(a["customer_id"].dtype != np.int64 for a in present.values()):
        for a in present.values():
            if a["customer_id"].dtype == np.int64:
                a["customer_id"] = np.array([str(v) for v in a["customer_id"].tolist()],
                                            dtype=object)
    customers = arrays["customers"]
    if customers is not None and "customer_id" in customers:
        known = customers["customer_id"]
        for name, a in present.items():
            if name == "customers":
                continue
            spec = TABLES[name]
            keys = a.get(spec.key)
            chk = _Checker(spec, None if keys is None else (lambda k=keys: k))
            chk.report("customer_id", ~_known_ids(a["customer_id"], known),
                       "customer_id not in customers")
            problems.extend(chk.problems)

    if problems:
        raise DataValidationError(problems)

    frames: dict[str, pd.DataFrame | None] = {}
    for name, a in arrays.items():
        if a is None:
            frames[name] = None
            continue
        order = _order(a["customer_id"], a[TABLES[name].time_column])
        if order is not None:
            a = arrays[name] = {c: v[order] for c, v in a.items()}
        # block by block: a request's few rows cost a fraction of pd.DataFrame's constructor
        frames[name] = frame_of_arrays({c: frame_array(v) for c, v in a.items()},
                                       pd.RangeIndex(len(a["customer_id"])))
    checked = Tables(**frames, normalized=True, defaulted=frozenset(defaulted))
    return (checked, arrays) if with_arrays else checked


def _filled(name: str, columns: Mapping[str, list]) -> Mapping[str, list]:
    """A table's columns; no columns at all: the contract's, with no rows."""
    return columns if columns else {c: [] for c in TABLES[name].column_names}


def _known_ids(ids: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Which ``ids`` are among ``known`` (both one kind), as a pandas ``isin`` says."""
    if ids.dtype == object and (pd.isna(ids).any() or pd.isna(known).any()):
        return pd.Series(pd.array(ids, dtype="str")).isin(
            pd.Series(pd.array(known, dtype="str"))).to_numpy()
    return np.asarray(_isin(ids, set(known.tolist()) if known.dtype == object else known))


def _order(ids: np.ndarray, times: np.ndarray) -> np.ndarray | None:
    """The stable order by customer, then time (None: already in it), as ``sort_values``."""
    codes = np.unique(ids, return_inverse=True)[1] if ids.dtype == object else ids
    order = np.lexsort((times, codes))
    return None if np.array_equal(order, np.arange(len(order))) else order
