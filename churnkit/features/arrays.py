"""The shop as NumPy arrays, and the time-travel rule applied to them.

:class:`ShopArrays` holds validated :class:`~churnkit.data.tables.Tables` as plain arrays: times
as int64 microseconds since the epoch (UTC; :data:`NAT` when empty), amounts as float64, enum
columns as small integer codes into their contract values, and every event table's rows grouped
by customer in the customers' order (``starts`` gives each customer's row range). Converting
costs one pass over the tables; after that :meth:`ShopArrays.take` cuts any set of customers out
by slicing, so the service prepares its store once and slices one customer per call.

:func:`known_at` is the time-travel rule of :mod:`churnkit.data.timetravel` on these arrays, the
one place the feature engine applies it: only what was known strictly before ``as_of`` remains.
Every family computes from the :class:`Known` it returns, never from the raw arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from churnkit.data.contract import (
    BROWSING_EVENTS,
    CHANNELS,
    CONTACT_GROUPS,
    ORDER_STATUSES,
    TABLES,
    TICKET_TOPICS,
)
from churnkit.data.tables import Tables
from churnkit.features.local_time import DAY_US, local_parts
from churnkit.features.table_arrays import TableColumns, categories_of, codes

#: An empty time (NaT) as int64 microseconds.
NAT = np.iinfo(np.int64).min

#: Enum columns held as codes: (table, column) -> values (code i is values[i], -1 is empty).
ENUMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("orders", "status"): ORDER_STATUSES,
    ("browsing", "event"): BROWSING_EVENTS,
    ("tickets", "topic"): TICKET_TOPICS,
    ("contacts", "channel"): CHANNELS,
    ("contacts", "group"): CONTACT_GROUPS,
}
#: The columns each event table keeps (its time column first).
COLUMNS: dict[str, tuple[str, ...]] = {
    "orders": ("ordered_at", "order_id", "amount", "discount_amount", "delivery_cost", "n_items",
               "category", "status", "status_at", "delivery_delay_days"),
    "browsing": ("ts", "event"),
    "tickets": ("opened_at", "topic", "resolved_at", "compensation_amount", "satisfaction"),
    "contacts": ("sent_at", "channel", "group", "opened_at", "converted_at"),
}


@dataclass(frozen=True)
class Rows:
    """One event table's rows as arrays, grouped by customer.

    ``cust`` is each row's customer position (0 .. ``n`` - 1, non-decreasing); ``cols`` holds the
    columns by name, all of the same length.
    """

    n: int
    cust: np.ndarray
    cols: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.cust)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]

    def where(self, mask: np.ndarray) -> Rows:
        """The rows where ``mask`` holds (same customers)."""
        return Rows(self.n, self.cust[mask], {k: v[mask] for k, v in self.cols.items()})


@dataclass(frozen=True)
class ShopArrays:
    """Validated tables as arrays (see the module docstring).

    ``ids`` are the customer ids in order; ``customers`` their columns; ``events`` each present
    event table's columns, its rows in customer order, with ``starts[table]`` (length
    ``len(ids) + 1``) the first row of each customer. Browsing rows are ordered by customer,
    session and time, and ``session`` numbers their sessions (consecutive within a customer);
    ``local`` holds :data:`~churnkit.features.local_time.LOCAL_PARTS` of each order's time and
    of each browsing row's time (filled for a session's first row only, -1 elsewhere).
    """

    ids: np.ndarray
    customers: dict[str, np.ndarray]
    events: dict[str, dict[str, np.ndarray]]
    starts: dict[str, np.ndarray]
    local: dict[str, dict[str, np.ndarray]]
    categories: tuple[str, ...]
    tables: Tables = field(repr=False)

    @classmethod
    def of(cls, tables: Tables, plain: Mapping[str, Mapping[str, np.ndarray] | None] | None = None
           ) -> ShopArrays:
        """Convert validated ``tables`` (normalized: sorted by customer, then time).

        ``plain``: the same tables' columns already as NumPy arrays, row for row (what
        :func:`churnkit.data.validate_columns` gives with ``with_arrays``); a column read from
        there gives the array its frame column would (one small request then pays no pandas
        column access per column).
        """
        if not tables.normalized:
            raise ValueError("ShopArrays need validated tables (churnkit.validate)")
        plain = plain or {}
        cust = TableColumns(tables.customers, plain.get("customers"))
        ids = cust.values("customer_id")
        zone_codes, zone_names = pd.factorize(cust.texts("timezone", fill="UTC"))
        zones = tuple(str(z) for z in zone_names)
        row_zone = zone_codes.astype(np.min_scalar_type(max(len(zones) - 1, 0)))
        customers = {
            "signup_at": cust.micros("signup_at"),
            "unsubscribed_at": cust.micros("unsubscribed_at"),
            **{f"consent_{ch}": cust.flags(f"consent_{ch}") for ch in CHANNELS},
        }
        events: dict[str, dict[str, np.ndarray]] = {}
        starts: dict[str, np.ndarray] = {}
        local: dict[str, dict[str, np.ndarray]] = {}
        categories: tuple[str, ...] = ()
        for name, frame in tables.items():
            if name == "customers":
                continue
            table = TableColumns(frame, plain.get(name))
            row_ids = table.values("customer_id")
            owned, counts = _runs(row_ids, ids)
            if owned is not None:  # rows of no customer (e.g. before a signup, tables cut early)
                table, row_ids = table.where(owned), row_ids[owned]
            order = None
            if name == "browsing":  # by customer, session, time: sessions become row ranges
                raw = table.values("session_id")
                session = (raw.astype(np.int64) if pd.api.types.is_integer_dtype(raw.dtype)
                           else pd.factorize(raw)[0])
                order = _session_order(row_ids, session)
            cols: dict[str, np.ndarray] = {}
            for column in COLUMNS[name]:
                if (name, column) in ENUMS:
                    cols[column] = codes(table.texts(column), ENUMS[name, column])
                elif column == "category":
                    cats, categories = categories_of(table.texts(column))
                    cols[column] = cats
                elif column == "order_id":
                    cols[column] = table.values(column)
                elif column in TABLES[name].timestamp_columns:  # by the contract
                    cols[column] = table.micros(column)
                else:
                    cols[column] = table.floats(column)
            if order is not None:  # rows regrouped by session (columns first: cheaper)
                cols = {k: v[order] for k, v in cols.items()}
                session = session[order]
            starts[name] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            zone_of_row = np.repeat(row_zone, counts) if name in ("browsing", "orders") else None
            if name == "browsing":
                sess = session
                first = np.empty(len(sess), dtype=bool)
                first[:1] = True
                np.not_equal(sess[1:], sess[:-1], out=first[1:])
                first[starts[name][:-1][counts > 0]] = True  # a customer's first row
                cols["session"] = np.cumsum(first, dtype=np.int64)
                cols["session"] -= 1
                local[name] = local_parts(cols["ts"], zone_of_row, zones, first)
            elif name == "orders":
                local[name] = local_parts(cols["ordered_at"], zone_of_row, zones, None)
            events[name] = cols
        return cls(ids, customers, events, starts, local, categories, tables)

    def take(self, positions: np.ndarray) -> ShopArrays:
        """The customers at ``positions`` (sorted, distinct), with their rows only."""
        positions = np.asarray(positions, dtype=np.int64)
        contiguous = len(positions) > 0 and positions[-1] - positions[0] == len(positions) - 1
        if contiguous:
            lo, hi = int(positions[0]), int(positions[-1]) + 1
            pick = slice(lo, hi)
        else:
            pick = positions
        events, starts, local = {}, {}, {}
        for name, cols in self.events.items():
            st = self.starts[name]
            if contiguous:
                rows = slice(int(st[lo]), int(st[hi]))
                starts[name] = st[lo:hi + 1] - st[lo]
            else:
                lengths = st[positions + 1] - st[positions]
                rows = np.concatenate([np.arange(a, b) for a, b in
                                       zip(st[positions].tolist(), st[positions + 1].tolist(),
                                           strict=True)]) if len(positions) else np.arange(0)
                starts[name] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            events[name] = {k: v[rows] for k, v in cols.items()}
            local[name] = {k: v[rows] for k, v in self.local[name].items()} if name in self.local \
                else None
        local = {k: v for k, v in local.items() if v is not None}
        return ShopArrays(self.ids[pick], {k: v[pick] for k, v in self.customers.items()},
                          events, starts, local, self.categories, self.tables)

    def positions_of(self, customer_ids: object) -> np.ndarray:
        """Sorted positions of the ids among :attr:`ids` (unknown ids are left out)."""
        wanted = np.asarray(list(customer_ids), dtype=object)
        if len(wanted) > 1:  # one id (a service call) is unique already
            wanted = pd.unique(wanted)  # type: ignore[call-overload]
        try:
            keys = np.asarray(wanted, dtype=self.ids.dtype)
        except (TypeError, ValueError):  # ids of another kind match nothing
            return np.arange(0)
        at = np.searchsorted(self.ids, keys)
        found = at < len(self.ids)
        at = at[found]
        return np.unique(at[self.ids[at] == keys[found]])


def _runs(row_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """Which rows (grouped by customer id, in the order of ``ids``, sorted) belong to a customer
    of ``ids`` (None when all do), and each customer's number of rows. One look-up per run of
    rows of one id, not per row."""
    if len(ids) == 1:  # one customer (a /score_events body): its rows are one run, or none
        owned = row_ids == ids[0]
        n = int(np.count_nonzero(owned))
        return (None if n == len(row_ids) else owned), np.array([n], dtype=np.int64)
    heads = np.empty(len(row_ids), dtype=bool)
    heads[:1] = True
    np.not_equal(row_ids[1:], row_ids[:-1], out=heads[1:])
    heads = np.flatnonzero(heads)
    lengths = np.diff(np.append(heads, len(row_ids)))
    head_ids = row_ids[heads]
    at = np.minimum(np.searchsorted(ids, head_ids), max(len(ids) - 1, 0))
    owned = ids[at] == head_ids if len(ids) else np.zeros(len(heads), dtype=bool)
    counts = np.zeros(len(ids), dtype=np.int64)
    counts[at[owned]] = lengths[owned]
    return (None if owned.all() else np.repeat(owned, lengths)), counts


def _session_order(row_ids: np.ndarray, session: np.ndarray) -> np.ndarray | None:
    """The row order grouping browsing events by customer and session, keeping time order
    within a session (rows come sorted by customer, then time); None when already grouped.

    ``session`` holds integer session keys. Rows are grouped when, within each customer, every
    run of one session has a larger key than the run before: then no session comes back.
    """
    m = len(row_ids)
    if m < 2:
        return None
    same = row_ids[1:] == row_ids[:-1]
    back = np.flatnonzero(same & (session[1:] < session[:-1])) + 1  # a session key drops
    if not len(back):
        return None
    # only the customers whose sessions interleave are reordered (a few in a thousand): a
    # stable sort of their rows by session, the others' rows staying where they are
    heads = np.flatnonzero(np.concatenate([[True], ~same]))
    which = np.unique(np.searchsorted(heads, back, "right") - 1)
    lo, lengths = heads[which], np.append(heads[1:], m)[which] - heads[which]
    idx = np.arange(int(lengths.sum())) + np.repeat(lo - (np.cumsum(lengths) - lengths), lengths)
    group = np.repeat(np.arange(len(which)), lengths)
    order = np.arange(m)
    order[idx] = idx[np.lexsort((session[idx], group))]
    return order


@dataclass(frozen=True)
class Known:
    """What was known strictly before ``as_of`` (int64 microseconds), as arrays.

    ``ids``: the customers signed up before ``as_of``, in order (``n`` of them); ``customers``
    their columns, with an unsubscribe at or after ``as_of`` emptied. ``tables``: each present
    event table's rows before ``as_of``, grouped by customer position, with values learned at or
    after ``as_of`` rolled back (an order's status to ``placed`` at its ``ordered_at`` with no
    delay; a ticket's resolution, compensation 0 and satisfaction; a contact's open and
    conversion), and ``local`` parts where the shop arrays have them. ``age`` of a time is
    ``(as_of - time) / 1 day`` as float64 days.
    """

    as_of: int
    ids: np.ndarray
    customers: dict[str, np.ndarray]
    tables: dict[str, Rows]
    categories: tuple[str, ...]
    present: frozenset[str]

    @property
    def n(self) -> int:
        return len(self.ids)

    def age(self, us: np.ndarray) -> np.ndarray:
        """Days from ``us`` to ``as_of`` (NaN for :data:`NAT`)."""
        # (as_of - us) / DAY_US, the division written over the difference's memory (one array
        # of a table's length instead of three)
        diff = np.subtract(self.as_of, us)
        out = np.true_divide(diff, DAY_US, out=diff.view(np.float64))
        empty = us == NAT
        if empty.any():
            out[empty] = np.nan
        return out


def known_at(shop: ShopArrays, as_of_us: int) -> Known:
    """The time-travel rule (see :mod:`churnkit.data.timetravel`) applied to ``shop``."""
    signup = shop.customers["signup_at"]
    alive = signup < as_of_us
    customers = {k: v[alive] for k, v in shop.customers.items()}
    unsub = customers["unsubscribed_at"]
    customers["unsubscribed_at"] = np.where(unsub < as_of_us, unsub, NAT)
    tables: dict[str, Rows] = {}
    n_alive = int(alive.sum())
    everyone = n_alive == len(alive)
    for name, cols in shop.events.items():
        st = shop.starts[name]
        counts = np.diff(st)
        times = cols[COLUMNS[name][0]]
        keep = times < as_of_us
        keep &= times != NAT
        if not everyone:
            keep &= np.repeat(alive, counts)
        # each customer's kept rows, summed over their row range (no per-row customer array)
        kept = np.zeros(len(counts), dtype=np.int64)
        some = counts > 0
        if len(keep):
            kept[some] = np.add.reduceat(keep, st[:-1][some], dtype=np.int64)
        picked = {k: v[keep] for k, v in cols.items()}
        picked.update({f"local_{k}": v[keep] for k, v in shop.local.get(name, {}).items()})
        _roll_back(name, picked, as_of_us)
        tables[name] = Rows(n_alive, np.repeat(np.arange(n_alive), kept[alive]), picked)
    return Known(as_of_us, shop.ids[alive], customers, tables, shop.categories,
                 frozenset(shop.tables.present()))


def _learned(times: np.ndarray, as_of_us: int) -> np.ndarray:
    """Which of ``times`` were known before ``as_of`` (empty times never are)."""
    return (times < as_of_us) & (times != NAT)


def _roll_back(name: str, cols: dict[str, np.ndarray], as_of_us: int) -> None:
    """Values learned at or after ``as_of`` become not-yet-known, in place."""
    if name == "orders":
        done = _learned(cols["status_at"], as_of_us)
        cols["status"] = np.where(done, cols["status"], np.int8(ORDER_STATUSES.index("placed")))
        cols["status_at"] = np.where(done, cols["status_at"], cols["ordered_at"])
        cols["delivery_delay_days"] = np.where(done, cols["delivery_delay_days"], np.nan)
    elif name == "tickets":
        done = _learned(cols["resolved_at"], as_of_us)
        # a ticket resolved later is open now: no compensation (0) and no rating yet; one never
        # resolved keeps what the shop recorded
        later = (cols["resolved_at"] != NAT) & ~done
        cols["resolved_at"] = np.where(done, cols["resolved_at"], NAT)
        cols["compensation_amount"] = np.where(later, 0.0, cols["compensation_amount"])
        cols["satisfaction"] = np.where(later, np.nan, cols["satisfaction"])
    elif name == "contacts":
        for column in ("opened_at", "converted_at"):
            cols[column] = np.where(_learned(cols[column], as_of_us), cols[column], NAT)
