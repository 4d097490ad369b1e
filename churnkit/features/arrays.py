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

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from churnkit.data.contract import (
    BROWSING_EVENTS,
    CHANNELS,
    CONTACT_GROUPS,
    ORDER_STATUSES,
    TICKET_TOPICS,
)
from churnkit.data.tables import Tables

#: An empty time (NaT) as int64 microseconds.
NAT = np.iinfo(np.int64).min
#: Microseconds per day.
DAY_US = 86_400_000_000

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
#: Local-time parts of an activity time in the customer's time zone, kept per order and per
#: browsing session start: hour 0-23, ISO weekday 1-7 (Monday 1), day of month, month.
LOCAL_PARTS = ("hour", "isodow", "day", "month")


def micros(column: pd.Series) -> np.ndarray:
    """A timestamp column as int64 microseconds since the epoch (UTC), :data:`NAT` when empty."""
    values = column.array
    if getattr(values, "unit", "us") != "us":
        values = values.as_unit("us")
    return np.asarray(values.asi8, dtype=np.int64)


def codes(column: pd.Series, values: tuple[str, ...]) -> np.ndarray:
    """An enum column as int8 codes into ``values`` (-1 when empty)."""
    return pd.Categorical(column, categories=values).codes.astype(np.int8)


def _floats(column: pd.Series) -> np.ndarray:
    return column.to_numpy(dtype="float64", na_value=np.nan)


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
    ``local`` holds :data:`LOCAL_PARTS` of each order's time and of each browsing row's time
    (filled for a session's first row only, -1 elsewhere).
    """

    ids: np.ndarray
    customers: dict[str, np.ndarray]
    events: dict[str, dict[str, np.ndarray]]
    starts: dict[str, np.ndarray]
    local: dict[str, dict[str, np.ndarray]]
    categories: tuple[str, ...]
    tables: Tables = field(repr=False)

    @classmethod
    def of(cls, tables: Tables) -> ShopArrays:
        """Convert validated ``tables`` (normalized: sorted by customer, then time)."""
        if not tables.normalized:
            raise ValueError("ShopArrays need validated tables (churnkit.validate)")
        cust = tables.customers
        ids = cust["customer_id"].to_numpy()
        zones = cust["timezone"].to_numpy(dtype=object, na_value="UTC")
        customers = {
            "signup_at": micros(cust["signup_at"]),
            "unsubscribed_at": micros(cust["unsubscribed_at"]),
            **{f"consent_{ch}": cust[f"consent_{ch}"].to_numpy(dtype=bool) for ch in CHANNELS},
        }
        events: dict[str, dict[str, np.ndarray]] = {}
        starts: dict[str, np.ndarray] = {}
        local: dict[str, dict[str, np.ndarray]] = {}
        categories: tuple[str, ...] = ()
        for name, frame in tables.items():
            if name == "customers":
                continue
            row_ids = frame["customer_id"].to_numpy()
            order = None
            if name == "browsing":  # by customer, session, time: sessions become row ranges
                session = pd.factorize(frame["session_id"])[0]
                order = np.lexsort((micros(frame["ts"]), session, row_ids))
                frame = frame.iloc[order]
                row_ids = row_ids[order]
            cols: dict[str, np.ndarray] = {}
            for column in COLUMNS[name]:
                series = frame[column]
                if (name, column) in ENUMS:
                    cols[column] = codes(series, ENUMS[name, column])
                elif column == "category":
                    cats, categories = _categories(series)
                    cols[column] = cats
                elif column == "order_id":
                    cols[column] = series.to_numpy()
                elif pd.api.types.is_datetime64_any_dtype(series.dtype):
                    cols[column] = micros(series)
                else:
                    cols[column] = _floats(series)
            bounds = np.searchsorted(row_ids, ids, "left")
            starts[name] = np.append(bounds, len(row_ids)).astype(np.int64)
            positions = np.repeat(np.arange(len(ids)), np.diff(starts[name]))
            if name == "browsing":
                sess = session[order]
                first = np.ones(len(sess), dtype=bool)
                first[1:] = (sess[1:] != sess[:-1]) | (positions[1:] != positions[:-1])
                cols["session"] = np.cumsum(first) - 1
                local[name] = _local_parts(cols["ts"], zones[positions], first)
            elif name == "orders":
                local[name] = _local_parts(cols["ordered_at"], zones[positions], None)
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
        wanted = pd.unique(np.asarray(list(customer_ids), dtype=object))  # type: ignore[call-overload]
        try:
            keys = np.asarray(wanted, dtype=self.ids.dtype)
        except (TypeError, ValueError):  # ids of another kind match nothing
            return np.arange(0)
        at = np.searchsorted(self.ids, keys)
        found = at < len(self.ids)
        at = at[found]
        return np.unique(at[self.ids[at] == keys[found]])


def _categories(series: pd.Series) -> tuple[np.ndarray, tuple[str, ...]]:
    """Free-text categories as int32 codes into their sorted distinct values (-1 when empty)."""
    values, uniques = pd.factorize(series, sort=True)
    return values.astype(np.int32), tuple(str(v) for v in uniques)


def _local_parts(utc_us: np.ndarray, zones: np.ndarray, only: np.ndarray | None
                 ) -> dict[str, np.ndarray]:
    """:data:`LOCAL_PARTS` of ``utc_us`` in each row's time zone (rows of ``only``, -1 for the
    others)."""
    out = {part: np.full(len(utc_us), -1, dtype=np.int8) for part in LOCAL_PARTS}
    rows = np.arange(len(utc_us)) if only is None else np.flatnonzero(only)
    if not len(rows):
        return out
    row_zones = zones[rows]
    for zone in pd.unique(row_zones):
        hit = rows[row_zones == zone] if len(rows) > 1 else rows
        stamps = pd.DatetimeIndex(utc_us[hit].view("datetime64[us]"), tz="UTC").tz_convert(zone)
        out["hour"][hit] = stamps.hour
        out["isodow"][hit] = stamps.dayofweek + 1
        out["day"][hit] = stamps.day
        out["month"][hit] = stamps.month
    return out


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
        out = (self.as_of - us) / DAY_US
        return np.where(us == NAT, np.nan, out) if (us == NAT).any() else out


def known_at(shop: ShopArrays, as_of_us: int) -> Known:
    """The time-travel rule (see :mod:`churnkit.data.timetravel`) applied to ``shop``."""
    signup = shop.customers["signup_at"]
    alive = signup < as_of_us
    position = np.cumsum(alive) - 1  # new position of each known customer
    customers = {k: v[alive] for k, v in shop.customers.items()}
    unsub = customers["unsubscribed_at"]
    customers["unsubscribed_at"] = np.where(unsub < as_of_us, unsub, NAT)
    tables: dict[str, Rows] = {}
    for name, cols in shop.events.items():
        st = shop.starts[name]
        owner = np.repeat(np.arange(len(shop.ids)), np.diff(st))
        time_col = COLUMNS[name][0]
        keep = (cols[time_col] < as_of_us) & (cols[time_col] != NAT) & alive[owner]
        picked = {k: v[keep] for k, v in cols.items()}
        picked.update({f"local_{k}": v[keep] for k, v in shop.local.get(name, {}).items()})
        _roll_back(name, picked, as_of_us)
        tables[name] = Rows(int(alive.sum()), position[owner[keep]], picked)
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
