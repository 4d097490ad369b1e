"""`Tables`: the five contract tables held together, and reading them from files.

Validated tables (see :func:`churnkit.data.validation.validate`) are normalized: timestamps are
``datetime64[us, UTC]``, ids share one kind across tables, absent optional columns carry their
contract default, and every event table is sorted by ``customer_id`` then its time column, so that
:meth:`Tables.for_customers` can slice one customer out of millions of rows in microseconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd

from churnkit.data.contract import TABLES, as_utc_timestamp
from churnkit.data.timetravel import tables_until


@dataclass(frozen=True)
class Tables:
    """The shop's tables. ``orders`` is required; the rest may be ``None``.

    Validated tables always hold ``customers``: the shop's, or one derived from the orders (see
    :data:`churnkit.data.contract.CUSTOMERS`).
    """

    customers: pd.DataFrame | None = None
    orders: pd.DataFrame | None = None
    browsing: pd.DataFrame | None = None
    tickets: pd.DataFrame | None = None
    contacts: pd.DataFrame | None = None
    #: True once the tables went through validation: normalized kinds, sorted by customer.
    normalized: bool = field(default=False, compare=False)
    #: What validation filled in rather than read: ``"orders.status"``-style names of columns
    #: that were absent and took their contract default, and ``"customers"`` when that table was
    #: derived from the orders.
    defaulted: frozenset[str] = field(default=frozenset(), compare=False)

    def get(self, name: str) -> pd.DataFrame | None:
        """The table called ``name`` (a contract table name), or None when absent."""
        if name not in TABLES:
            raise KeyError(f"unknown table {name!r}; the contract has {', '.join(TABLES)}")
        return getattr(self, name)

    def present(self) -> tuple[str, ...]:
        """Names of the tables that exist, in contract order."""
        return tuple(name for name in TABLES if self.get(name) is not None)

    def items(self) -> Iterator[tuple[str, pd.DataFrame]]:
        for name in self.present():
            yield name, self.get(name)  # type: ignore[misc]

    def recorded(self, name: str) -> bool:
        """True when the shop's data hold ``name`` (a table, or ``"table.column"``): present and
        not filled in by validation."""
        table = name.split(".", 1)[0]
        return (self.get(table) is not None and table not in self.defaulted
                and name not in self.defaulted)

    def n_rows(self) -> dict[str, int]:
        return {name: len(frame) for name, frame in self.items()}

    def replace(self, *, keep_normalized: bool = False, **frames: pd.DataFrame | None
                ) -> Tables:
        """A copy with some tables replaced (keeps the ``defaulted`` record).

        The copy counts as normalized when tables are only removed (None), or with
        ``keep_normalized=True``: a caller that only filtered rows of normalized tables (order and
        kinds kept, as time travel does) says so. Any other frame (rows appended, re-read, built
        by hand) is validated again where it is used, since the feature engine reads rows as
        sorted by customer, then time.
        """
        kept = keep_normalized or all(frame is None for frame in frames.values())
        return replace(self, **frames, normalized=self.normalized and kept)

    def for_customers(self, customer_ids: Iterable[object]) -> Tables:
        """The rows of these customers only, in every table.

        On normalized tables this is a binary search per customer on the sorted ``customer_id``
        columns, so one customer out of millions costs microseconds; when the customers' rows form
        few contiguous runs (one customer, or neighbours), the result is made of zero-copy
        ``iloc`` slices rather than a row gather, which would copy every column (a gather on
        Arrow-backed text columns costs tens of milliseconds). Ids that do not exist are ignored
        (the customers table then simply lacks them).
        """
        ids = pd.unique(np.asarray(list(customer_ids), dtype=object))
        out: dict[str, pd.DataFrame | None] = {}
        for name in (f.name for f in fields(self) if f.name in TABLES):
            frame = self.get(name)
            out[name] = None if frame is None else _rows_of(frame, ids, sorted_=self.normalized)
        return Tables(**out, normalized=self.normalized, defaulted=self.defaulted)

    def iter_shards(
        self, *, shard_size: int | None = None, n_shards: int | None = None
    ) -> Iterator[Tables]:
        """The tables cut into consecutive ranges of customers, in ``customer_id`` order.

        Give ``shard_size`` (customers per shard) or ``n_shards``. Each shard holds, in every
        table, the rows of its customers as a zero-copy row range: the tables are sorted by
        ``customer_id``, so the cuts are one binary search per table and shard. Every row falls
        in exactly one shard (the first and last ranges are open-ended). Features are per
        customer, so computing them shard by shard and concatenating gives the whole base with a
        fraction of the working memory; the nightly batch job scores the same way.
        """
        if not self.normalized:
            raise ValueError("shards need normalized tables (sorted by customer_id); "
                             "validate them first")
        ids = self.customers["customer_id"].to_numpy()
        if (shard_size is None) == (n_shards is None):
            raise ValueError("give exactly one of shard_size and n_shards")
        if n_shards is not None:
            if n_shards < 1:
                raise ValueError(f"n_shards must be >= 1, got {n_shards}")
            shard_size = -(-len(ids) // n_shards)
        if shard_size is None or shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        # the first customer of each shard but the first; a customer listed twice stays whole
        keys = pd.unique(ids[shard_size::shard_size])
        cuts = {}
        for name, frame in self.items():
            values = frame["customer_id"].to_numpy()
            inner = np.searchsorted(values, keys.astype(values.dtype), "left").tolist()
            cuts[name] = [0, *inner, len(frame)]
        for i in range(len(keys) + 1):
            yield Tables(
                **{name: frame.iloc[cuts[name][i]:cuts[name][i + 1]]
                   for name, frame in self.items()},
                normalized=True, defaulted=self.defaulted,
            )

    def until(self, as_of: object) -> Tables:
        """The tables as they were known just before ``as_of`` (UTC): the time-travel rule.

        Rows whose event time is at or after ``as_of`` are dropped; customers who sign up at or
        after it do not exist yet; values learned at or after it (an order's final status, a
        resolution, an open, a conversion, an unsubscribe) are rolled back to "not yet known".
        Used by tests to check that features never see the future; the feature builders apply the
        same rule in SQL.
        """
        return tables_until(self, as_utc_timestamp(as_of))


#: Above this many contiguous runs of rows, one gather beats concatenating the slices.
_MAX_SLICED_RUNS = 32


def _rows_of(frame: pd.DataFrame, ids: np.ndarray, *, sorted_: bool) -> pd.DataFrame:
    col = frame["customer_id"]
    if len(ids) == 0:
        return frame.iloc[0:0]
    if not sorted_:
        return frame[col.isin(ids)]
    values = col.to_numpy()
    try:
        keys = np.asarray(ids, dtype=values.dtype)
    except (TypeError, ValueError):  # an id of another kind matches nothing
        return frame.iloc[0:0]
    keys = np.sort(keys)
    left = np.searchsorted(values, keys, side="left")
    right = np.searchsorted(values, keys, side="right")
    runs: list[list[int]] = []
    for lo, hi in zip(left.tolist(), right.tolist(), strict=True):
        if hi <= lo:
            continue
        if runs and runs[-1][1] == lo:  # neighbours in the table: one run
            runs[-1][1] = hi
        else:
            runs.append([lo, hi])
    if not runs:
        return frame.iloc[0:0]
    if len(runs) == 1:
        return frame.iloc[runs[0][0]:runs[0][1]]
    if len(runs) <= _MAX_SLICED_RUNS:
        return pd.concat([frame.iloc[lo:hi] for lo, hi in runs])
    return frame.iloc[np.concatenate([np.arange(lo, hi) for lo, hi in runs])]
