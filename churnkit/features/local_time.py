"""Local times of the shop's events: the parts of a UTC time on the customer's wall clock.

:class:`~churnkit.features.arrays.ShopArrays` keeps :data:`LOCAL_PARTS` of every order and of
every browsing session's start in the customer's IANA time zone (the clock family reads them,
docs/domain.md: timing matters). Converted with pandas' time-zone rules, each zone's rows at
once.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

#: Microseconds per day.
DAY_US = 86_400_000_000
#: Local-time parts of an activity time in the customer's time zone, kept per order and per
#: browsing session start: hour 0-23, ISO weekday 1-7 (Monday 1), day of month, month.
LOCAL_PARTS = ("hour", "isodow", "day", "month")


def local_parts(utc_us: np.ndarray, zone_of_row: np.ndarray, zones: tuple[str, ...],
                only: np.ndarray | None) -> dict[str, np.ndarray]:
    """:data:`LOCAL_PARTS` of ``utc_us`` in each row's time zone (``zones[zone_of_row]``), for
    the rows of ``only`` (all when None; -1 for the others)."""
    rows = None if only is None else np.flatnonzero(only)
    stamps = utc_us if rows is None else utc_us[rows]
    if not len(stamps):
        return {part: np.full(len(utc_us), -1, dtype=np.int8) for part in LOCAL_PARTS}
    row_zone = zone_of_row if rows is None else zone_of_row[rows]
    local = _wall_times(stamps, row_zone, zones)
    # in place where it can be, and int8 tables of the days: few arrays of the rows' length
    days = np.floor_divide(local, DAY_US)
    hour = np.floor_divide(np.remainder(local, DAY_US, out=local), 3_600_000_000, out=local)
    first_day = int(days.min())
    span = np.arange(first_day, int(days.max()) + 1)
    day_of_month, month = civil(span)
    days -= first_day  # each row's day as a position in span
    parts = {"hour": hour.astype(np.int8),
             # 1970-01-01 was a Thursday (ISO 4)
             "isodow": ((span + 3) % 7 + 1).astype(np.int8)[days],
             "day": day_of_month.astype(np.int8)[days], "month": month.astype(np.int8)[days]}
    if rows is None:
        return parts
    out = {part: np.full(len(utc_us), -1, dtype=np.int8) for part in LOCAL_PARTS}
    for part, values in parts.items():
        out[part][rows] = values
    return out


def _wall_times(utc_us: np.ndarray, zone_of_row: np.ndarray, zones: tuple[str, ...]
                ) -> np.ndarray:
    """Local wall-clock times (int64 µs) of ``utc_us`` in the rows' time zones: the rows grouped
    by zone once (one stable sort of the small zone codes), then one conversion per zone."""
    def wall(stamps: np.ndarray, zone: str) -> np.ndarray:
        if len(stamps) <= _FEW_STAMPS:
            few = _few_wall_times(stamps, zone)
            if few is not None:
                return few
        index = pd.DatetimeIndex(stamps.view("datetime64[us]"), tz="UTC", copy=False)
        local = index.tz_convert(zone).tz_localize(None).as_unit("us").asi8
        # a fresh array, written in place by the caller (UTC's wall times may be the input's)
        fresh = local.flags.writeable and not np.shares_memory(local, stamps)
        return local if fresh else local.copy()

    counts = np.bincount(zone_of_row, minlength=len(zones))
    present = np.flatnonzero(counts)
    if len(present) == 1:  # one zone: no grouping
        return wall(utc_us, zones[present[0]])
    by_zone = np.argsort(zone_of_row, kind="stable")
    ends = np.cumsum(counts)
    local = np.empty(len(utc_us), dtype=np.int64)
    for code in present.tolist():
        rows = by_zone[ends[code] - counts[code]:ends[code]]
        local[rows] = wall(utc_us[rows], zones[code])
    return local


#: Up to this many rows of one zone are converted one by one (a /score_events body's).
_FEW_STAMPS = 32
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@functools.lru_cache(maxsize=512)
def _zone(name: str) -> tzinfo:
    """The zone pandas converts to for ``name``: UTC as ``datetime.timezone.utc``, the others
    as :class:`zoneinfo.ZoneInfo` (what ``tz_convert`` of a zone name uses)."""
    return UTC if name == "UTC" else ZoneInfo(name)


def _few_wall_times(stamps: np.ndarray, zone: str) -> np.ndarray | None:
    """The wall times of a few UTC stamps (int64 µs) in ``zone``, by the zone's own rules one
    stamp at a time (the offsets pandas applies, without a DatetimeIndex per call); None when
    the zone or a stamp is one to leave to pandas."""
    try:
        tz = _zone(zone)
    except (ValueError, KeyError, OSError):  # not a zone name zoneinfo knows
        return None
    out = np.empty(len(stamps), dtype=np.int64)
    for i, us in enumerate(stamps.tolist()):
        try:
            utc = _EPOCH + timedelta(microseconds=us)
        except OverflowError:  # NaT or beyond datetime's years
            return None
        out[i] = us + utc.astimezone(tz).utcoffset() // _MICROSECOND
    return out


def civil(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(day of month, month) of days since 1970-01-01 in the proleptic Gregorian calendar
    (H. Hinnant's ``civil_from_days``)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    return doy - (153 * mp + 2) // 5 + 1, np.where(mp < 10, mp + 3, mp - 9)


__all__ = ["DAY_US", "LOCAL_PARTS", "civil", "local_parts"]
