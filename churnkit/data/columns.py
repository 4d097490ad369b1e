"""A feature frame's columns as NumPy arrays, converted once: what the scoring stages read.

:class:`FeatureColumns` holds every number and flag of a feature frame in one float64 matrix
(flags 0/1, missing values NaN) and every other column (text) as an object array, with the
frame's index. The scoring stages (models, policy, drivers) read columns and sub-matrices from
it instead of from the frame, so a call for one customer pays for one conversion, not for one
pandas operation per column read. The values are those of ``frame[name].to_numpy(dtype=float,
na_value=np.nan)`` for numbers and flags, whatever the number of rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

#: Frames up to this many rows are converted through one object matrix (a fixed cost of a few
#: microseconds per column); larger ones block by block (vectorized, a higher fixed cost).
SMALL_FRAME_ROWS = 64


def clipped(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``np.clip(values, lo, hi)`` by two ufuncs, without its Python wrapper's cost on the few
    values of one customer: the same values, NaN kept (a -0.0 clipped at 0 becomes 0.0, which
    ``np.clip`` would keep)."""
    return np.minimum(np.maximum(values, lo), hi)


def nan_to_zero(values: object) -> np.ndarray:
    """``np.nan_to_num(values, nan=0.0)`` as float64 (a copy; infinities become the largest
    finite numbers), checking for non-finite values first: several times cheaper on the few
    values of one customer, where ``nan_to_num``'s own checks dominate."""
    out = np.array(values, dtype=np.float64)
    if not np.isfinite(out).all():
        np.nan_to_num(out, copy=False, nan=0.0)
    return out


class _Layout:
    """Where each column of frames with the same columns and dtypes lands: its position in the
    number matrix or among the text columns. Shared by every :class:`FeatureColumns` of that
    layout, with the column positions of the sub-matrices asked for so far."""

    __slots__ = (
        "column_at",
        "columns",
        "dtypes",
        "memo",
        "names",
        "number_at",
        "numbers",
        "plan",
        "positions",
        "text_at",
        "texts",
    )

    def __init__(self, columns: pd.Index, dtypes: list) -> None:
        self.columns, self.dtypes = columns, dtypes
        self.names = tuple(str(c) for c in columns.tolist())
        numeric = [_is_number(d) for d in dtypes]
        self.numbers = np.flatnonzero(numeric)
        self.texts = np.flatnonzero(~np.asarray(numeric, dtype=bool))
        self.number_at = {self.names[j]: k for k, j in enumerate(self.numbers.tolist())}
        self.text_at = {self.names[j]: int(j) for j in self.texts.tolist()}
        self.column_at = {n: j for j, n in enumerate(self.names)}
        self.positions: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = {}
        self.memo: dict[object, object] = {}
        self.plan: list[tuple[str, object]] | None = None  # per storage block, see _read_blocks

    def matches(self, frame: pd.DataFrame, dtypes: list) -> bool:
        return dtypes == self.dtypes and frame.columns.equals(self.columns)

    def take(self, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Positions in the number matrix of the ``names`` held there, and where they go."""
        found = self.positions.get(names)
        if found is None:
            where = [(k, self.number_at[n]) for k, n in enumerate(names) if n in self.number_at]
            found = (np.asarray([w for _, w in where], dtype=np.intp),
                     np.asarray([k for k, _ in where], dtype=np.intp))
            if len(self.positions) < 64:  # a handful of models ask; bound it all the same
                self.positions[names] = found
        return found


_DTYPE_KIND: dict[object, bool] = {}
_LAYOUTS: list[_Layout] = []


def _is_number(dtype: object) -> bool:
    kind = _DTYPE_KIND.get(dtype)
    if kind is None:
        kind = bool(pd.api.types.is_bool_dtype(dtype) or (
            pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype)))
        _DTYPE_KIND[dtype] = kind
    return kind


def _blocks(frame: pd.DataFrame) -> tuple[tuple, list] | None:
    """The frame's storage blocks: a signature (each block's dtype and column positions) and
    their values; None when this pandas does not keep a frame as blocks.

    pandas holds a frame as blocks of same-dtype columns (the arrays
    :func:`pandas.api.internals.create_dataframe_from_blocks` takes); it has no public reader
    of them, and converting a frame of ~40 blocks through its public methods costs far more
    than a one-row customer's scoring. The values read here are those the public methods give
    (:class:`FeatureColumns` is tested against them).
    """
    try:
        blocks = frame._mgr.blocks
        signature, values = [], []
        for block in blocks:
            at = block.mgr_locs.indexer
            signature.append((block.dtype, (at.start, at.stop, at.step)
                              if isinstance(at, slice) else np.asarray(at).tobytes()))
            values.append(block.values)
    except AttributeError:
        return None
    return tuple(signature), values


_BLOCK_LAYOUTS: dict[tuple, list[_Layout]] = {}


def _block_layout(frame: pd.DataFrame, signature: tuple) -> _Layout:
    """The layout of frames with these blocks and columns, with its plan: per block, where its
    numbers go in the number matrix, or the names of its text columns."""
    found = _BLOCK_LAYOUTS.get(signature, [])
    for layout in found:
        if frame.columns is layout.columns or frame.columns.equals(layout.columns):
            return layout
    dtypes: list = [None] * len(frame.columns)
    spans = []
    for dtype, at in signature:
        positions = (np.arange(*at) if isinstance(at, tuple)
                     else np.frombuffer(at, dtype=np.intp))
        spans.append((dtype, positions))
        for j in positions.tolist():
            dtypes[j] = dtype
    layout = _Layout(frame.columns, dtypes)
    compact = np.full(len(dtypes), -1, dtype=np.intp)
    compact[layout.numbers] = np.arange(len(layout.numbers))
    plan: list[tuple[str, object]] = []
    for dtype, positions in spans:
        if not _is_number(dtype):
            plan.append(("text", [layout.names[j] for j in positions.tolist()]))
        else:
            target = compact[positions]
            start = int(target[0]) if len(target) else 0
            if np.array_equal(target, np.arange(start, start + len(target))):
                target = slice(start, start + len(target))
            plan.append(("numbers", target))
    layout.plan = plan
    if len(_BLOCK_LAYOUTS) >= 8:  # one layout per set of tables; keep a few
        _BLOCK_LAYOUTS.clear()
    _BLOCK_LAYOUTS[signature] = [layout, *found][:4]
    return layout


def _read_blocks(layout: _Layout, values: list, n: int
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """The number matrix and text columns from the blocks' values (None for a kind of block
    read otherwise: the caller converts the frame through its public methods)."""
    numbers = np.empty((n, len(layout.numbers)))
    texts: dict[str, np.ndarray] = {}
    for (kind, where), block in zip(layout.plan, values, strict=True):
        if isinstance(block, np.ndarray):
            if block.ndim != 2:
                return None
            if kind == "numbers":
                numbers[:, where] = block.T
            elif block.dtype == object:
                for name, column in zip(where, block, strict=True):
                    texts[name] = column
            else:  # e.g. timestamps: as the frame converts them
                return None
        elif kind == "numbers":  # an extension array: one column
            numbers[:, where] = block.to_numpy(dtype=np.float64, na_value=np.nan)[:, None]
        elif len(where) == 1 and pd.api.types.is_string_dtype(block.dtype):
            texts[where[0]] = block.to_numpy(dtype=object)
        else:
            return None
    return numbers, texts


_COLUMN_LAYOUTS: dict[tuple, _Layout] = {}


def _column_layout(names: tuple[str, ...], dtypes: tuple) -> _Layout:
    """The layout of frames with these column names and dtypes (see
    :meth:`FeatureColumns.from_columns`)."""
    key = (names, dtypes)
    layout = _COLUMN_LAYOUTS.get(key)
    if layout is None:
        layout = _Layout(pd.Index(list(names)), list(dtypes))
        if len(_COLUMN_LAYOUTS) >= 8:  # one layout per set of computed families; keep a few
            _COLUMN_LAYOUTS.clear()
        _COLUMN_LAYOUTS[key] = layout
    return layout


def _layout(frame: pd.DataFrame) -> _Layout:
    dtypes = frame.dtypes.tolist()
    for layout in _LAYOUTS:
        if layout.matches(frame, dtypes):
            return layout
    layout = _Layout(frame.columns, dtypes)
    _LAYOUTS.insert(0, layout)
    del _LAYOUTS[8:]  # the feature engine makes one layout per set of tables; keep a few
    return layout


class FeatureColumns:
    """The columns of a feature frame as arrays (see the module docstring).

    ``index`` is the frame's index; ``columns`` the column names (supports ``in``); ``len()``
    the number of rows. Arrays handed out are read-only views or fresh copies.
    """

    __slots__ = ("_derived", "_layout", "_make", "_numbers", "_rows", "_source", "_texts",
                 "columns", "index")

    def __init__(self, index: pd.Index, layout: _Layout, numbers: np.ndarray,
                 texts: dict[str, np.ndarray], source: pd.DataFrame | None,
                 rows: np.ndarray | None = None,
                 make: Callable[[], pd.DataFrame] | None = None) -> None:
        self.index = index
        #: Column name -> position in the frame, in the frame's order (``name in columns`` is
        #: a dictionary lookup).
        self.columns: dict[str, int] = layout.column_at
        self._source, self._rows, self._make = source, rows, make
        self._derived: dict[object, object] = {}
        self._layout = layout
        numbers.flags.writeable = False
        self._numbers = numbers
        self._texts = texts

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> FeatureColumns:
        """Convert ``frame`` (any index; numeric, flag and other columns)."""
        if isinstance(frame, FeatureColumns):
            return frame
        n = len(frame)
        blocks = _blocks(frame)
        if blocks is not None:
            layout = _block_layout(frame, blocks[0])
            read = _read_blocks(layout, blocks[1], n)
            if read is not None:
                return cls(frame.index, layout, read[0], read[1], frame)
        layout = _layout(frame)
        numbers = texts = None
        if 0 < n <= SMALL_FRAME_ROWS:
            values = frame.to_numpy(dtype=object)
            try:
                numbers = np.array(values[:, layout.numbers], dtype=np.float64)
            except (TypeError, ValueError):  # e.g. pd.NA of a nullable column: per block below
                numbers = None
            else:
                texts = {layout.names[j]: values[:, j] for j in layout.texts.tolist()}
        if numbers is None:
            numbers = frame.iloc[:, layout.numbers].to_numpy(dtype=np.float64, na_value=np.nan)
            texts = {layout.names[j]: frame.iloc[:, j].to_numpy(dtype=object)
                     for j in layout.texts.tolist()}
        return cls(frame.index, layout, np.ascontiguousarray(numbers), texts, frame)

    @classmethod
    def from_columns(cls, index: pd.Index, columns: Mapping[str, np.ndarray],
                     dtypes: tuple, make: Callable[[], pd.DataFrame]) -> FeatureColumns:
        """The columns of the frame ``make()`` would build, without building it (``make`` runs
        only when :attr:`frame` is read): ``index``, and ``columns`` in the frame's order with
        their frame ``dtypes``; a number or flag column's array is of its dtype's kind, a text
        column's anything :func:`pandas.array` takes for its dtype. The values equal
        :meth:`from_frame` of that frame."""
        layout = _column_layout(tuple(columns), dtypes)
        arrays = list(columns.values())
        # the cast the frame's to_numpy(float) makes, one column per row of the block
        numbers = np.array([arrays[j] for j in layout.numbers.tolist()], dtype=np.float64
                           ).reshape(len(layout.numbers), len(index))
        texts = {layout.names[j]: _text_objects(arrays[j], dtypes[j])
                 for j in layout.texts.tolist()}
        return cls(index, layout, np.ascontiguousarray(numbers.T), texts, None, make=make)

    @property
    def frame(self) -> pd.DataFrame:
        """The frame these columns came from (for the rare input a model reads as a frame, and
        for callers who want the features as a frame)."""
        if self._source is None:
            self._source = self._make()  # type: ignore[misc]
        return self._source if self._rows is None else self._source.iloc[self._rows]

    def __len__(self) -> int:
        return len(self._numbers)


    def number(self, name: str, default: float = np.nan) -> np.ndarray:
        """Column ``name`` as float64 (flags 0/1, missing and non-numeric text NaN), ``default``
        everywhere when the frame has no such column."""
        k = self._layout.number_at.get(name)
        if k is not None:
            return self._numbers[:, k]
        if name in self._texts:
            return pd.to_numeric(pd.Series(self._texts[name]), errors="coerce").to_numpy(
                dtype=float, na_value=np.nan)
        return np.full(len(self), default, dtype=float)

    def dtype(self, name: str) -> object:
        """The frame's dtype of column ``name``."""
        return self._layout.dtypes[self._layout.column_at[name]]

    def memo(self, key: object, make: object) -> object:
        """``make()``, computed once per layout (frames with these columns and dtypes) and
        ``key``: what a model derives from the layout alone (e.g. the kinds of its inputs)."""
        memo = self._layout.memo
        if key not in memo:
            if len(memo) >= 64:  # models come and go (tests, retraining): keep a few
                memo.clear()
            memo[key] = make()  # type: ignore[operator]
        return memo[key]

    def derived(self, key: object, make: object) -> object:
        """``make()``, computed once for these rows and ``key``: what several stages derive
        from the same columns (treat it as read-only)."""
        if key not in self._derived:
            self._derived[key] = make()  # type: ignore[operator]
        return self._derived[key]

    def is_text(self, name: str) -> bool:
        """Whether column ``name`` holds text (or anything but numbers and flags)."""
        return name in self._texts

    def text(self, name: str) -> np.ndarray:
        """Column ``name`` of a non-numeric kind as an object array (missing: NaN or None as
        the frame had it)."""
        return self._texts[name]

    def matrix(self, names: Sequence[str], *, text: bool = True) -> np.ndarray:
        """The columns ``names`` as a C-ordered float64 matrix (n, len(names)); absent columns
        NaN, text ones read as numbers where they are (as
        :func:`churnkit.data.frames.numeric_matrix` gives them; NaN without ``text``)."""
        names = tuple(names)
        source, target = self._layout.take(names)
        if len(source) == len(names):
            return self._numbers[:, source]
        out = np.full((len(self), len(names)), np.nan)
        out[:, target] = self._numbers[:, source]
        if text and self._texts:
            for k, name in enumerate(names):
                if name in self._texts:
                    out[:, k] = self.number(name)
        return out

    def take(self, rows: np.ndarray) -> FeatureColumns:
        """The rows at positions ``rows`` (an integer array)."""
        rows = np.asarray(rows, dtype=np.intp)
        texts = {k: v[rows] for k, v in self._texts.items()}
        if self._source is None:  # built from columns: its frame is made when asked for
            return FeatureColumns(self.index[rows], self._layout, self._numbers[rows], texts,
                                  None, make=lambda: self.frame.iloc[rows])
        source = rows if self._rows is None else self._rows[rows]
        return FeatureColumns(self.index[rows], self._layout, self._numbers[rows], texts,
                              self._source, source)


#: Up to this many rows a text column's objects are read value by value (see _text_objects).
_FEW_TEXTS = 16


def _text_objects(values: object, dtype: object) -> np.ndarray:
    """``pd.array(values, dtype=dtype).to_numpy(dtype=object)``: for a few strings and missing
    values (None, NaN) under a string dtype whose missing value is NaN, read value by value
    (the same objects: each string, NaN for a missing one) instead of through an array."""
    if (isinstance(values, np.ndarray) and values.dtype == object and len(values) <= _FEW_TEXTS
            and isinstance(dtype, pd.StringDtype) and dtype.na_value is np.nan):
        out = np.empty(len(values), dtype=object)
        for i, value in enumerate(values.tolist()):
            if type(value) is str:
                out[i] = value
            elif value is None or (type(value) is float and value != value):
                out[i] = np.nan
            else:  # anything else pandas converts to text its own way
                return pd.array(values, dtype=dtype).to_numpy(dtype=object)
        return out
    return pd.array(values, dtype=dtype).to_numpy(dtype=object)
