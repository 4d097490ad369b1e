"""The simulation's day grid, its calendar effects and local-time arithmetic.

The shop is simulated on UTC days ``k = 0 .. n_days-1``; day ``k`` covers
``[start + k days, start + k+1 days)``. Within a day, events are placed at UTC hours drawn from
the customer's local hour-of-week profile, shifted by the customer's UTC offset (looked up from
``zoneinfo`` for the period; the Russian zones used have no DST, which is checked).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from churnkit.data.contract import as_utc_timestamp
from churnkit.synth.params import SynthParams

SECONDS_PER_DAY = 86_400.0
HOURS_PER_WEEK = 168


@dataclass(frozen=True)
class DayGrid:
    """UTC day grid from ``origin`` (midnight UTC) for ``n_days`` days."""

    origin: pd.Timestamp
    n_days: int

    @property
    def end(self) -> pd.Timestamp:
        return self.origin + pd.Timedelta(days=self.n_days)

    @property
    def end_ms(self) -> int:
        """Milliseconds from the origin to the end of the grid."""
        return self.n_days * 86_400_000

    def weekday(self, days: np.ndarray | int) -> np.ndarray:
        """Weekday (Monday = 0) of UTC day index ``days``."""
        return (np.asarray(days) + self.origin.day_of_week) % 7

    def dates(self, days: np.ndarray) -> pd.DatetimeIndex:
        return self.origin + pd.to_timedelta(np.asarray(days), unit="D")


def make_grid(start: object, end: object) -> DayGrid:
    """The day grid for ``[start, end)``; both must be midnight UTC (dates)."""
    t0 = as_utc_timestamp(start, name="start")
    t1 = as_utc_timestamp(end, name="end")
    if t0 != t0.normalize() or t1 != t1.normalize():
        raise ValueError(f"start and end must be dates (midnight UTC), got {t0} and {t1}")
    if t1 <= t0:
        raise ValueError(f"end ({t1}) must be after start ({t0})")
    return DayGrid(origin=t0, n_days=int((t1 - t0) / pd.Timedelta(days=1)))


def season_factor(days: np.ndarray, grid: DayGrid, params: SynthParams) -> np.ndarray:
    """Order-rate multiplier of UTC day ``days``: month of year × payday.

    docs/domain.md "Channels, timing and consent": paydays (start and middle of the month) and the
    pre-holiday November-December peak raise order rates. Defined for any day index, also past the
    grid.
    """
    dates = grid.dates(np.asarray(days))
    month = np.asarray(params.month_multipliers, dtype=np.float64)[dates.month.to_numpy() - 1]
    payday = np.isin(dates.day.to_numpy(), params.payday_days)
    return month * np.where(payday, params.payday_multiplier, 1.0)


def utc_offset_hours(zones: tuple[str, ...], grid: DayGrid) -> np.ndarray:
    """Whole-hour UTC offset of each zone over the grid's period.

    Raises
    ------
    ValueError
        If a zone's offset changes inside the period (DST) or is not a whole number of hours:
        the day-grid simulation assumes one fixed offset per customer.
    """
    probes = pd.date_range(grid.origin, grid.end, periods=min(grid.n_days + 1, 60))
    out = np.empty(len(zones), dtype=np.int64)
    for i, name in enumerate(zones):
        zone = ZoneInfo(name)
        offsets = {p.to_pydatetime().astimezone(zone).utcoffset() for p in probes}
        if len(offsets) != 1:
            raise ValueError(f"time zone {name} changes its UTC offset inside the period")
        offset = offsets.pop() or timedelta(0)
        hours = offset.total_seconds() / 3600
        if hours != int(hours):
            raise ValueError(f"time zone {name} has a non-whole-hour offset {offset}")
        out[i] = int(hours)
    return out


def prefix_at(prefix: np.ndarray, rows: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """Share of the weekly activity before local slot ``slot`` (may run into next week: +1)."""
    slot = np.asarray(slot)
    return prefix[rows, slot % HOURS_PER_WEEK].astype(np.float64) + (slot >= HOURS_PER_WEEK)


def daily_weight(prefix: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Share of each customer's weekly activity in each UTC weekday × 7: shape (7, n), mean 1.

    ``prefix`` is the (n, 169) cumulative local profile; a UTC weekday's 24 hours are the local
    slots ``[24·d + offset, 24·d + offset + 24)``. Multiplying a daily rate by this spreads it
    over the week like the customer does.
    """
    rows = np.arange(prefix.shape[0])
    out = np.empty((7, len(rows)), dtype=np.float32)
    for d in range(7):
        b = d * 24 + offsets
        out[d] = 7.0 * (prefix_at(prefix, rows, b + 24) - prefix_at(prefix, rows, b))
    return out


def place_in_utc_day(
    day: int,
    rows: np.ndarray,
    prefix: np.ndarray,
    offsets: np.ndarray,
    grid: DayGrid,
    rng: np.random.Generator,
) -> np.ndarray:
    """Seconds since the grid origin of events on UTC day ``day`` for customers ``rows``.

    The UTC hour is drawn in proportion to the customer's local slot weight at that hour (an
    inverse-CDF binary search on the cumulative profile ``prefix``), so events land in the
    customer's own active hours (docs/domain.md: active hours and days).
    """
    m = len(rows)
    if m == 0:
        return np.empty(0, dtype=np.float64)
    b = int(grid.weekday(day)) * 24 + offsets[rows]
    lo_v = prefix_at(prefix, rows, b)
    target = lo_v + rng.random(m) * (prefix_at(prefix, rows, b + 24) - lo_v)
    lo = np.zeros(m, dtype=np.int64)
    hi = np.full(m, 24, dtype=np.int64)
    for _ in range(5):  # 24 hours: five halvings
        mid = (lo + hi) >> 1
        go = prefix_at(prefix, rows, b + mid) <= target
        lo = np.where(go, mid, lo)
        hi = np.where(go, hi, mid)
    # Stay a little inside the hour so rounding to milliseconds never reaches the next day.
    return (day * 24 + lo + 0.9999 * rng.random(m)) * 3600.0
