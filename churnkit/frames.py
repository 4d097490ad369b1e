"""Feature frames as NumPy matrices: the one conversion the models' inputs share."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def numeric_matrix(frame: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    """``frame``'s columns ``names`` as a float64 matrix: flags 0/1, missing values and absent
    columns NaN, anything non-numeric coerced to NaN.

    Numeric and flag columns are converted as one block (a third of a millisecond for one
    customer, against ~0.1 ms per column one by one); a frame holding another kind falls back
    to column-by-column coercion. Each row's values do not depend on the other rows.
    """
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
