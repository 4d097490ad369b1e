"""Feature frames as model inputs: the one check for missing columns and the two conversions
(LightGBM frames with categories, float64 matrices) that the models' inputs share."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

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
