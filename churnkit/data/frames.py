"""Frames: feature frames as model inputs (the one check for missing columns and the two
conversions, LightGBM frames with categories and float64 matrices, that the models' inputs
share), and frames of a few rows built from arrays without pandas' per-column cost (the scores,
a request's validated tables)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.api.internals import create_dataframe_from_blocks

from churnkit.data.columns import FeatureColumns


def numeric_matrix(frame: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    """``frame``'s columns ``names`` as a float64 matrix: flags 0/1, missing values and absent
    columns NaN, anything non-numeric coerced to NaN.

    Numeric and flag columns are converted as one block (far cheaper for one customer than
    column by column); a frame holding another kind falls back to column-by-column coercion.
    Each row's values do not depend on the other rows. ``frame`` may be a
    :class:`~churnkit.data.columns.FeatureColumns` (the same values, without pandas).
    """
    if isinstance(frame, FeatureColumns):
        return frame.matrix(names)
    names = list(names)
    present = [n for n in names if n in frame.columns]
    if not names:
        return np.empty((len(frame), 0))
    try:
        block = frame.loc[:, present].to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError):
        block = np.column_stack([
            pd.to_numeric(frame[n].astype("float64") if frame[n].dtype == bool else frame[n],
                          errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            for n in present
        ]) if present else np.empty((len(frame), 0))
    if len(present) == len(names):
        return block
    out = np.full((len(frame), len(names)), np.nan)
    where = {n: i for i, n in enumerate(names)}
    out[:, [where[n] for n in present]] = block
    return out


def require_columns(frame: pd.DataFrame, names: Sequence[str], *, needed_by: str) -> None:
    """Raise ``ValueError`` naming the columns of ``names`` that ``frame`` lacks (at most 8, then
    how many more), e.g. a table the model was trained with is absent now."""
    columns = frame.columns  # read once: a property of FeatureColumns, an Index of a frame
    missing = [n for n in names if n not in columns]
    if missing:
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise ValueError(f"{needed_by} needs features this frame lacks: "
                         f"{', '.join(missing[:8])}{more} (was it trained with tables that are "
                         "absent here?)")


def model_matrix(features: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """The model's input columns: text as categories, flags as 0/1, everything else as is.

    Raises ``ValueError`` naming the features the frame lacks (e.g. a table the model was
    trained with is absent now).
    """
    require_columns(features, names, needed_by="the churn model")
    X = features.loc[:, list(names)].copy()
    dtypes = X.dtypes  # read once: a dtype lookup per feature is slow on a one-row frame
    flags = [c for c, d in dtypes.items() if pd.api.types.is_bool_dtype(d)]
    if flags:
        X[flags] = X[flags].astype("float64")
    for column, dtype in dtypes.items():
        if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
            X[column] = X[column].astype("category")
    return X


#: The dtype pandas gives a column of Python strings (and a NumPy array of strings).
_TEXT_DTYPES = {"O": pd.Series(np.array(["a"], dtype=object)).dtype,
                "U": pd.Series(np.array(["a"])).dtype}
_STR = pd.api.types.pandas_dtype("str")  # resolved once: the lookup costs more than a row


def text_array(values: np.ndarray | list | pa.Array, dtype: object = _STR
               ) -> pd.api.extensions.ExtensionArray:
    """``pd.array(values, dtype=dtype)`` of strings (missing: None or NaN); for Arrow-backed
    strings built from the Arrow array directly (what pandas stores: large strings, missing
    values null), a fraction of its cost for a few rows."""
    if not (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"):
        return pd.array(values, dtype=dtype)
    if isinstance(values, pa.Array):
        return pd.arrays.ArrowStringArray(values.cast(pa.large_string()), dtype=dtype)
    try:
        strings = pa.array(values, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all strings: pandas converts them
        return pd.array(values, dtype=dtype)
    return pd.arrays.ArrowStringArray(strings, dtype=dtype)


def utc_datetime_array(values: np.ndarray, dtype: pd.DatetimeTZDtype
                       ) -> pd.api.extensions.ExtensionArray:
    """``pd.array(values, dtype=dtype)`` of ``datetime64`` values already in ``dtype``'s unit
    (UTC wall times), without pandas' conversion of them: the array wraps ``values`` as they
    are (a few rows cost a fraction of the conversion; the same array, tests)."""
    if values.dtype != np.dtype(f"M8[{dtype.unit}]") or str(dtype.tz) != "UTC":
        return pd.array(values, dtype=dtype)
    make = getattr(pd.arrays.DatetimeArray, "_simple_new", None)  # pandas' own constructor
    if make is None:  # a pandas without it: its public conversion
        return pd.array(values, dtype=dtype)
    return make(values, dtype=dtype)


def frame_of_arrays(columns: Mapping[str, object], index: pd.Index, *,
                    object_columns: Sequence[str] = ()) -> pd.DataFrame:
    """``pd.DataFrame(columns, index=index)`` built block by block (numbers of one dtype
    together, each text or datetime column an extension array): each column of the dtype the
    constructor would give it (with ``object_columns`` kept as objects), at a fraction of its
    cost for a few rows. Columns are arrays, Series, Index or lists of ``len(index)`` values."""
    n = len(index)
    numeric: dict[np.dtype, list[tuple[int, np.ndarray]]] = {}
    blocks: list[tuple[object, np.ndarray]] = []
    for k, (name, values) in enumerate(columns.items()):
        if isinstance(values, pd.Index | pd.Series):
            values = values.array if isinstance(values.dtype, pd.api.extensions.ExtensionDtype) \
                else values.to_numpy()
        if isinstance(values, list):
            values = np.fromiter(values, dtype=object, count=len(values))
        if isinstance(values, np.ndarray) and values.dtype.kind in "mM":
            values = pd.array(values)
        if isinstance(values, pd.api.extensions.ExtensionArray):
            blocks.append((values, np.array([k])))
            continue
        if not isinstance(values, np.ndarray) or values.ndim != 1 or len(values) != n:
            return pd.DataFrame(_with_objects(columns, index, object_columns), index=index)
        kind = values.dtype.kind
        if kind in "OU" and name not in object_columns and (
                kind == "U" or pd.api.types.infer_dtype(values, skipna=True) == "string"):
            text = _TEXT_DTYPES[kind]
            if isinstance(text, pd.api.extensions.ExtensionDtype):
                blocks.append((text_array(values, text), np.array([k])))
                continue
            values = values.astype(object)
        numeric.setdefault(values.dtype, []).append((k, values))
    for dtype, group in numeric.items():
        block = np.empty((len(group), n), dtype=dtype)
        for row, (_, values) in enumerate(group):
            block[row] = values
        blocks.append((block, np.array([k for k, _ in group])))
    return create_dataframe_from_blocks(blocks, index=index, columns=_columns(tuple(columns)))


def _with_objects(columns: Mapping[str, object], index: pd.Index,
                  object_columns: Sequence[str]) -> dict[str, object]:
    return {name: pd.Series(values, index=index, dtype=object)
            if name in object_columns and not isinstance(values, pd.Series) else values
            for name, values in columns.items()}


@functools.lru_cache(maxsize=64)
def _columns(names: tuple[str, ...]) -> pd.Index:
    """The column index of a frame of these names (one per set of names, shared: an Index is
    immutable)."""
    return pd.Index(list(names))
