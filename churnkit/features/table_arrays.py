"""A validated table's columns as the feature engine's arrays: times as int64 microseconds,
amounts as float64, enum columns as codes, free text as codes into its sorted values; read from
the frame, or from the NumPy arrays the validation made where those hold exactly what the frame
column would give (:class:`TableColumns`)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def micros(column: pd.Series) -> np.ndarray:
    """A timestamp column as int64 microseconds since the epoch (UTC), the int64 minimum (NaT)
    when empty."""
    values = column.array
    if getattr(values, "unit", "us") != "us":
        values = values.as_unit("us")
    return np.asarray(values.asi8, dtype=np.int64)


def codes(column: pd.Series, values: tuple[str, ...]) -> np.ndarray:
    """An enum column as int8 codes into ``values`` (-1 when empty)."""
    if len(column) <= _SMALL:
        lookup = {v: i for i, v in enumerate(values)}
        return np.array([lookup.get(v, -1) for v in column.tolist()], dtype=np.int8)
    found = pc.index_in(pa.array(column, from_pandas=True), value_set=pa.array(values))
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int8)


#: Up to this many rows a column is converted element by element (fixed costs dominate).
_SMALL = 64


def floats(column: pd.Series) -> np.ndarray:
    """A numeric or boolean column as float64 (missing: NaN)."""
    return column.to_numpy(dtype="float64", na_value=np.nan)


def categories_of(series: pd.Series | np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Free-text categories as int32 codes into their sorted distinct values (-1 when empty)."""
    if len(series) <= _SMALL:
        small = _few_categories(series)
        if small is not None:
            return small
    values = pa.array(series, from_pandas=True)
    if isinstance(values, pa.ChunkedArray):  # a column read from Parquet in several chunks
        values = values.combine_chunks()
    encoded = values.dictionary_encode()
    names = encoded.dictionary.to_pylist()
    rank = np.empty(len(names), dtype=np.int32)
    rank[np.argsort(np.array(names, dtype=object), kind="stable")] = np.arange(len(names))
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    out = np.where(indices >= 0, rank[np.maximum(indices, 0)] if len(rank) else -1, -1)
    return out.astype(np.int32), tuple(sorted(names))


def _few_categories(series: pd.Series | np.ndarray) -> tuple[np.ndarray, tuple[str, ...]] | None:
    """:func:`categories_of` of a few values, value by value: strings, and None or NaN for
    empty; None when some value is neither (the Arrow path reads it)."""
    items = series.tolist()
    if not all(type(v) is str or v is None or (type(v) is float and v != v) for v in items):
        return None
    names = tuple(sorted({v for v in items if type(v) is str}))
    code = {name: i for i, name in enumerate(names)}
    return np.array([code.get(v, -1) if type(v) is str else -1 for v in items],
                    dtype=np.int32), names


class TableColumns:
    """One validated table's columns as
    :meth:`churnkit.features.arrays.ShopArrays.of` reads them: from the NumPy
    arrays the validation made (``plain``) where a column's array holds exactly what its frame
    column would give, else from the frame."""

    def __init__(self, frame: pd.DataFrame, plain: Mapping[str, np.ndarray] | None,
                 owned: np.ndarray | None = None) -> None:
        self.frame, self.plain, self.owned = frame, plain, owned

    def where(self, owned: np.ndarray) -> TableColumns:
        """The rows where ``owned`` holds."""
        if self.plain is None:
            return TableColumns(self.frame[owned], None)
        return TableColumns(self.frame, self.plain, owned)

    def _array(self, column: str, kinds: str) -> np.ndarray | None:
        if self.plain is None:
            return None
        values = self.plain[column]
        if values.dtype.kind not in kinds:
            return None
        if values.dtype == object:
            items = values.tolist()  # text: str or NaN, at least one str (else the frame's)
            if not any(type(v) is str for v in items) or any(
                    type(v) is not str and v == v for v in items):
                return None
        return values if self.owned is None else values[self.owned]

    def _series(self, column: str) -> pd.Series:
        series = self.frame[column]
        return series if self.owned is None else series[self.owned]

    def values(self, column: str) -> np.ndarray:
        """Ids and other keys: the frame column's ``to_numpy()``."""
        got = self._array(column, "iO")
        return got if got is not None else self._series(column).to_numpy()

    def texts(self, column: str, fill: str | None = None) -> np.ndarray | pd.Series:
        """A text column (missing: NaN, or ``fill``)."""
        got = self._array(column, "O")
        if got is None:
            series = self._series(column)
            return series if fill is None else series.fillna(fill)
        return got if fill is None else np.where(pd.isna(got), fill, got)

    def micros(self, column: str) -> np.ndarray:
        got = self._array(column, "M")
        if got is None:
            return micros(self._series(column))
        return got.astype("datetime64[us]").view(np.int64)

    def flags(self, column: str) -> np.ndarray:
        got = self._array(column, "b")
        return got if got is not None else self._series(column).to_numpy(dtype=bool)

    def floats(self, column: str) -> np.ndarray:
        got = self._array(column, "ifb")
        return got.astype(np.float64) if got is not None else floats(self._series(column))
