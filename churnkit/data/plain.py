"""A table given as Python columns (one small request's rows), read into NumPy arrays the way
pandas would read the same rows, so that :mod:`churnkit.data.validation` can check it without
building a pandas object per check.

A column is *plain* when pandas would give its values one NumPy kind: all ints (int64), ints
and floats or missing values among floats (float64), texts with missing values (text), all
bools, only ``None`` (an object column), ``datetime`` objects with missing values (timestamps,
read as their ISO text would be), or no rows at all. Any other column (mixed kinds, numbers
as text, ...) is read through :meth:`PlainTable.series`, exactly as ``DataFrame.from_records``
of the rows reads it, and coerced by the pandas path; so the answer never depends on which
path a column took.

Missing values: a row that does not give a column holds NaN there (as ``from_records`` fills
it); an explicit ``None`` is a null.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from churnkit.data.frames import text_array

#: Datetimes outside these years are read as their ISO text by pandas (which cannot hold most
#: of them in nanoseconds: they come out unparseable), not converted here.
_SAFE_YEARS = (1700, 2200)
_UTC_MICROS = pd.DatetimeTZDtype("us", "UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
_INT64 = (-(2**63), 2**63 - 1)


def columns_of_records(records: Sequence[Mapping[str, object]]) -> dict[str, list]:
    """Records (one dict per row) as columns: the keys in order of first appearance, NaN where
    a row leaves a key out (what ``DataFrame.from_records`` does)."""
    names = list(dict.fromkeys(k for r in records for k in r))
    return {n: [r.get(n, math.nan) for r in records] for n in names}


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and value != value


def _timestamps(values: list) -> np.ndarray | None:
    """``datetime`` objects (or None / NaN) as datetime64[us] in UTC (naive ones read as UTC),
    None when one is outside the safe years or has an offset that is not whole minutes."""
    out = np.empty(len(values), dtype=np.int64)
    nat = np.iinfo(np.int64).min
    zones: dict[object, bool] = {}
    for i, v in enumerate(values):
        if v is None or _is_nan(v):
            out[i] = nat
            continue
        if not isinstance(v, datetime) or isinstance(v, pd.Timestamp):
            return None
        if not _SAFE_YEARS[0] <= v.year < _SAFE_YEARS[1]:
            return None
        zone = v.tzinfo
        if zone is None:
            out[i] = (v - _EPOCH_NAIVE) // _MICROSECOND
            continue
        whole = zones.get(zone)
        if whole is None:
            offset = v.utcoffset()
            whole = zones[zone] = offset is not None and offset % timedelta(minutes=1) == \
                timedelta(0)
        if not whole:
            return None
        out[i] = (v - _EPOCH) // _MICROSECOND
    return out.view("datetime64[us]")


def plain_array(values: list) -> np.ndarray | None:
    """The NumPy array pandas would hold these values in (see the module docstring), None when
    the column is not plain. Text comes as an object array of str with NaN for missing values;
    timestamps as datetime64[us] (UTC); no rows as an empty object array."""
    if not values:
        return np.empty(0, dtype=object)
    kinds = set(map(type, values))
    if kinds == {int}:
        if min(values) < _INT64[0] or max(values) > _INT64[1]:
            return None
        return np.array(values, dtype=np.int64)
    if kinds == {bool}:
        return np.array(values, dtype=bool)
    if kinds <= {str, float, type(None)} and str in kinds:
        if float in kinds and not all(_is_nan(v) for v in values if isinstance(v, float)):
            return None
        return np.array([math.nan if v is None else v for v in values], dtype=object)
    if kinds <= {int, float, type(None)} and (float in kinds or type(None) in kinds) \
            and kinds != {type(None)}:
        if int in kinds and not all(_INT64[0] <= v <= _INT64[1] for v in values
                                    if type(v) is int):
            return None
        return np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    if kinds == {type(None)}:  # pandas keeps the Nones in an object column
        return np.array(values, dtype=object)
    if any(issubclass(k, datetime) for k in kinds):
        return _timestamps(values)
    return None


def all_missing(values: np.ndarray) -> bool:
    """Whether a plain object array holds rows, every one of them missing (None or NaN)."""
    return values.dtype == object and len(values) > 0 and bool(pd.isna(values).all())


class PlainTable:
    """One table given as columns of Python values (see :func:`columns_of_records`)."""

    def __init__(self, columns: Mapping[str, list]) -> None:
        self.columns = columns
        self.names = list(columns)
        self.n = len(next(iter(columns.values()))) if columns else 0
        self._arrays: dict[str, np.ndarray | None] = {}
        self._frame: pd.DataFrame | None = None

    def array(self, name: str) -> np.ndarray | None:
        """Column ``name`` as its plain array, None when it is not plain."""
        if name not in self._arrays:
            self._arrays[name] = plain_array(self.columns[name])
        return self._arrays[name]

    def series(self, name: str) -> pd.Series:
        """Column ``name`` as ``DataFrame.from_records`` of the rows holds it (timestamps as
        their ISO text)."""
        if self._frame is None:
            self._frame = self.frame()
        return self._frame[name]

    def keys(self, name: str) -> np.ndarray:
        """Column ``name``'s values as the pandas column's ``to_numpy()`` gives them."""
        plain = self.array(name)
        if plain is not None and plain.dtype.kind != "M":
            return plain
        return self.series(name).to_numpy()

    def frame(self) -> pd.DataFrame:
        """The rows as ``DataFrame.from_records`` reads them (datetimes as ISO text)."""
        columns = {n: [v.isoformat() if isinstance(v, datetime) else v for v in values]
                   for n, values in self.columns.items()}
        records = [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(),
                                                                         strict=True)]
        return pd.DataFrame.from_records(records, columns=self.names)


def numpy_form(values: pd.Series) -> np.ndarray:
    """A column normalized by the pandas path in the form the plain path holds it: timestamps
    datetime64[us] (UTC), text an object array (NaN for missing), the rest as they are."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_localize(None).to_numpy()
    if pd.api.types.is_string_dtype(values.dtype) or values.dtype == object:
        return values.to_numpy(dtype=object)
    return values.to_numpy()


def frame_array(values: np.ndarray | pd.api.extensions.ExtensionArray) -> object:
    """A plain column as the pandas path's frame holds it: timestamps ``datetime64[us, UTC]``,
    text the ``str`` dtype."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "M":
            return pd.array(values, dtype=_UTC_MICROS)
        if values.dtype == object:
            return text_array(values)
    return values
