"""Reading a raw column into its contract kind, for :mod:`churnkit.data.validation`.

Each coercion takes a pandas Series (a table given as a DataFrame) or a plain NumPy array (a
request's rows, see :mod:`churnkit.data.plain`) and returns None when it cannot read that array;
:func:`coerced` then reads the column through pandas, so the answer never depends on the path.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from churnkit.data.contract import Column
from churnkit.data.plain import all_missing, numpy_form

_WHOLE_ID = r"0|[1-9][0-9]{0,17}"


def _coerce_id(raw: pd.Series | np.ndarray, null_in) -> pd.Series | np.ndarray | None:
    if not isinstance(raw, pd.Series):
        if raw.dtype == np.int64:
            return raw
        if raw.dtype != object:
            return None
        if all_missing(raw):
            return np.full(len(raw), np.nan, dtype=object)
        if not null_in.any() and all(re.fullmatch(_WHOLE_ID, v) for v in raw.tolist()):
            return raw.astype(np.int64) if len(raw) else np.empty(0, dtype=np.int64)
        return raw
    if pd.api.types.is_integer_dtype(raw.dtype) and not null_in.any():
        return raw.astype("int64")
    if pd.api.types.is_float_dtype(raw.dtype):
        whole = raw.dropna() == np.floor(raw.dropna())
        if whole.all() and not null_in.any():
            return raw.astype("int64")
        return raw.astype("str")
    out = raw.astype("str")
    # Text ids that are plain integers (as CSV files hold them) become int64, so that a
    # CSV and a Parquet export of the same shop agree; "007" stays text.
    if not null_in.any() and out.str.fullmatch(_WHOLE_ID).all():
        out = out.astype("int64")
    return out


def _coerce_timestamp(raw: pd.Series | np.ndarray) -> pd.Series | np.ndarray | None:
    if not isinstance(raw, pd.Series):
        if raw.dtype.kind == "M":
            return raw
        if all_missing(raw):
            return np.full(len(raw), np.datetime64("NaT", "us"))
        return np.empty(0, dtype="datetime64[us]") if len(raw) == 0 else None
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    if pd.api.types.is_datetime64_dtype(raw.dtype):
        return raw.dt.tz_localize("UTC").astype("datetime64[us, UTC]")
    # Text: ISO 8601 with or without an offset; naive values are read as UTC (documented).
    parsed = pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601")
    return parsed.astype("datetime64[us, UTC]")


def _coerce_number(raw: pd.Series | np.ndarray) -> pd.Series | np.ndarray | None:
    if not isinstance(raw, pd.Series):
        if raw.dtype.kind in "bif":
            return raw.astype(np.float64)
        if all_missing(raw):
            return np.full(len(raw), np.nan)
        return np.empty(0, dtype=np.float64) if len(raw) == 0 else None
    if pd.api.types.is_bool_dtype(raw.dtype):
        return raw.astype("float64")
    return pd.to_numeric(raw, errors="coerce").astype("float64")


def _coerce_bool(raw: pd.Series | np.ndarray) -> tuple[object, object] | None:
    if not isinstance(raw, pd.Series):
        if raw.dtype == bool or len(raw) == 0 or all_missing(raw):
            return raw.astype(bool), np.zeros(len(raw), dtype=bool)
        return None
    if pd.api.types.is_bool_dtype(raw.dtype) and not raw.hasnans:
        return raw.astype(bool), pd.Series(False, index=raw.index)
    text = raw.astype("str").str.strip().str.lower()
    truth = text.isin(["true", "1", "yes", "t", "y", "1.0"])
    falsity = text.isin(["false", "0", "no", "f", "n", "0.0"])
    bad = raw.notna() & ~(truth | falsity)
    return truth.astype(bool), bad


def _coerce_text(raw: pd.Series | np.ndarray) -> pd.Series | np.ndarray | None:
    if not isinstance(raw, pd.Series):
        if all_missing(raw):
            return np.full(len(raw), np.nan, dtype=object)
        return raw if raw.dtype == object else None
    return raw.astype("str")


_COERCIONS = {"id": None, "timestamp": _coerce_timestamp, "float": _coerce_number,
              "int": _coerce_number, "bool": _coerce_bool, "enum": _coerce_text,
              "str": _coerce_text}


def coerced(col: Column, raw, null_in, source) -> tuple[object, object]:
    """(the column in its kind, its unreadable values: a mask, or None when computed later)."""
    def run(values, nulls):
        if col.kind == "id":
            return _coerce_id(values, nulls)
        return _COERCIONS[col.kind](values)

    out = run(raw, null_in)
    if out is None:  # a plain array this kind cannot read: the pandas column
        raw = source.table.series(col.name)
        out = run(raw, raw.isna())
    bad = None
    if col.kind == "bool":
        out, bad = out
    if source.plain and isinstance(out, pd.Series):  # held as an array, as plain columns are
        out = numpy_form(out)
        bad = None if bad is None else np.asarray(bad)
    return out, bad
