"""Text columns for the policy's sentences: :class:`Text` and the pieces numbers become
(whole numbers, percentages, plurals)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churnkit.data.columns import nan_to_zero
from churnkit.data.frames import text_array

#: Up to this many rows a :class:`Text` holds Python strings rather than an Arrow array.
SMALL_TEXT_ROWS = 64


class Text:
    """A column of strings held as an Arrow array, so that sentences are assembled by Arrow's
    compute kernels instead of per-row Python string operations; or, up to
    :data:`SMALL_TEXT_ROWS` rows, as a list of Python strings (there one kernel call costs more
    than the strings). Both give the same strings.

    ``a + b`` joins element-wise (``b`` a :class:`Text` of the same length or a ``str``);
    ``t[mask]`` selects rows; ``t[mask] = value`` replaces them with a ``str`` or a
    :class:`Text` holding one string per selected row.
    """

    __slots__ = ("a",)

    def __init__(self, a: pa.Array | list[str]) -> None:
        self.a = a

    @classmethod
    def full(cls, n: int, value: str) -> Text:
        if n <= SMALL_TEXT_ROWS:
            return cls([value] * n)
        return cls(pc.fill_null(pa.nulls(n, pa.string()), value))

    @classmethod
    def of(cls, values: list[str]) -> Text:
        """These strings."""
        return cls(list(values) if len(values) <= SMALL_TEXT_ROWS
                   else pa.array(values, pa.string()))

    def strings(self) -> list[str]:
        return self.a if isinstance(self.a, list) else self.a.to_pylist()

    def _arrow(self) -> pa.Array:
        return pa.array(self.a, pa.string()) if isinstance(self.a, list) else self.a

    @staticmethod
    def _arg(x: Text | str) -> pa.Array | pa.Scalar:
        return x._arrow() if isinstance(x, Text) else pa.scalar(str(x), pa.string())

    def __add__(self, other: Text | str) -> Text:
        if isinstance(self.a, list):
            if isinstance(other, Text):
                return Text([x + y for x, y in zip(self.a, other.strings(), strict=True)])
            tail = str(other)
            return Text([x + tail for x in self.a])
        return Text(pc.binary_join_element_wise(self.a, self._arg(other), ""))

    def __radd__(self, other: str) -> Text:
        if isinstance(self.a, list):
            head = str(other)
            return Text([head + x for x in self.a])
        return Text(pc.binary_join_element_wise(self._arg(other), self.a, ""))

    def __len__(self) -> int:
        return len(self.a)

    def __getitem__(self, mask: np.ndarray) -> Text:
        mask = np.asarray(mask, dtype=bool)
        if isinstance(self.a, list):
            return Text([x for x, m in zip(self.a, mask.tolist(), strict=True) if m])
        return Text(self.a.filter(pa.array(mask)))

    def __setitem__(self, mask: np.ndarray, value: Text | str) -> None:
        mask = np.asarray(mask, dtype=bool)
        if isinstance(self.a, list):
            rows = np.flatnonzero(mask).tolist()
            if isinstance(value, Text):
                values = value.strings()
                if len(values) != len(rows):
                    raise ValueError(f"{len(values)} strings for {len(rows)} rows")
                for i, v in zip(rows, values, strict=True):
                    self.a[i] = v
            else:
                for i in rows:
                    self.a[i] = value
        elif isinstance(value, Text):
            self.a = pc.replace_with_mask(self.a, pa.array(mask), value._arrow())
        else:
            self.a = pc.if_else(pa.array(mask), pa.scalar(value, pa.string()), self.a)

    def to_pandas(self) -> pd.api.extensions.ExtensionArray:
        """``pd.array(strings, dtype="str")``."""
        return text_array(self.a)

    def column(self) -> np.ndarray | pd.api.extensions.ExtensionArray:
        """The strings as a column of scores: :meth:`to_pandas` for an Arrow array; for a few
        strings an object array of them, which a frame holds as the same ``str`` column
        (pandas infers it) and an answer reads back without converting from Arrow."""
        if isinstance(self.a, list) and self.a:  # (no strings: the str column itself)
            out = np.empty(len(self.a), dtype=object)
            out[:] = self.a
            return out
        return self.to_pandas()


def _present(values: np.ndarray) -> set:
    """The distinct values of ``values`` (a set of Python objects)."""
    if len(values) <= SMALL_TEXT_ROWS:
        return set(values.tolist())
    return set(np.unique(values).tolist())


def _int(x: np.ndarray) -> Text:
    """Whole numbers as text ('?' for missing)."""
    x = np.asarray(x, dtype=float)
    whole = np.round(nan_to_zero(x)).astype(np.int64)
    text = (Text([str(v) for v in whole.tolist()]) if len(whole) <= SMALL_TEXT_ROWS
            else Text(pc.cast(pa.array(whole), pa.string())))
    missing = np.isnan(x)
    if missing.any():
        text[missing] = "?"
    return text


def _plural(n: np.ndarray, one: str, many: str) -> Text:
    single = np.round(n) == 1  # NaN rounds to NaN, never 1 (as 0 would not)
    if len(single) <= SMALL_TEXT_ROWS:
        return Text([one if s else many for s in single.tolist()])
    return Text(pc.if_else(pa.array(single), pa.scalar(one), pa.scalar(many)))


def _pct(x: np.ndarray) -> Text:
    return _int(100 * np.asarray(x, dtype=float)) + "%"


__all__ = ["SMALL_TEXT_ROWS", "Text"]
