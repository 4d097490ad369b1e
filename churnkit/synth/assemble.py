"""From the simulation's arrays to the five contract tables, as known at ``end``.

The simulation knows the whole future of every order and ticket; the tables are a snapshot taken
at ``end``, so (the time-travel rule of ``churnkit.data.timetravel``) a status, resolution, open,
conversion or unsubscribe that happens at or after ``end`` is not in them yet: orders still in
transit at ``end`` are ``placed`` with ``status_at = ordered_at``; tickets opened at or after
``end`` do not exist. The ground truth keeps the latent future.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from churnkit.data.contract import (
    ACTIONS,
    CHANNELS,
    CONTACT_GROUPS,
    ORDER_STATUSES,
    SEND_ACTIONS,
    TICKET_TOPICS,
)
from churnkit.synth.params import SynthParams
from churnkit.synth.population import Population
from churnkit.synth.simulate import SimResult
from churnkit.synth.timegrid import DayGrid

#: Sort keys pack (customer row, milliseconds): row << 37 | ms (ms < 2^37 ≈ 4.3 years).
_MS_BITS = 37
_STR = pd.StringDtype("pyarrow", na_value=np.nan)  # what validation turns text columns into


def ms_of(sec: np.ndarray) -> np.ndarray:
    """Seconds since the origin to whole milliseconds (int64; NaN becomes -1)."""
    sec = np.asarray(sec, dtype=np.float64)
    out = np.full(sec.shape, -1, dtype=np.int64)
    ok = np.isfinite(sec)
    out[ok] = np.round(sec[ok] * 1000.0).astype(np.int64)
    return out


def ts_column(grid: DayGrid, ms: np.ndarray) -> pd.Series:
    """Milliseconds since the origin (-1 = missing) to a ``datetime64[us, UTC]`` column."""
    us = grid.origin.value // 1000 + ms * 1000
    values = us.astype("datetime64[us]")
    values[ms < 0] = np.datetime64("NaT")
    return pd.Series(values).dt.tz_localize("UTC")


def text_column(codes: np.ndarray, values: tuple[str, ...]) -> pd.Series:
    """Codes (-1 = missing) to a text column, built through Arrow (fast, no Python strings)."""
    codes = np.asarray(codes)
    arr = pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32), mask=codes < 0),
                                         pa.array(list(values), type=pa.large_string()))
    return pd.Series(arr.cast(pa.large_string()), dtype=_STR)


def order_by(rows: np.ndarray, ms: np.ndarray) -> np.ndarray:
    """Order by (customer, time): one int64 key, so validation's stable sort keeps it as is."""
    if len(rows) and ms.max() >= (1 << _MS_BITS):
        raise ValueError("the period is too long for the synthetic shop's sort keys (~4 years)")
    return np.argsort((rows.astype(np.int64) << _MS_BITS) | ms)


def in_time_order(rows: np.ndarray, sec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The order by (customer, time) of events at ``sec`` (seconds since the origin), and their
    milliseconds in that order."""
    ms = ms_of(sec)
    idx = order_by(rows, ms)
    return idx, ms[idx]


def customers_frame(pop: Population, res: SimResult, grid: DayGrid,
                    params: SynthParams) -> pd.DataFrame:
    end_ms = grid.end_ms
    unsub = ms_of(res.unsub_sec)
    unsub[unsub >= end_ms] = -1
    frame = pd.DataFrame({
        "customer_id": pop.customer_id,
        "signup_at": ts_column(grid, ms_of(pop.signup_sec)),
        "region": text_column(pop.tz_index, tuple(z[2] for z in params.timezones)),
        "timezone": text_column(pop.tz_index, tuple(z[0] for z in params.timezones)),
    })
    for j, ch in enumerate(CHANNELS):
        frame[f"consent_{ch}"] = pop.consent[:, j]
    frame["unsubscribed_at"] = ts_column(grid, unsub)
    return frame


def orders_frame(pop: Population, res: SimResult, grid: DayGrid,
                 params: SynthParams) -> pd.DataFrame:
    o = res.orders
    idx, ms = in_time_order(o["row"], o["sec"])
    status = o["status"][idx]
    status_ms = np.maximum(ms_of(o["status_sec"][idx]), ms)
    delay = o["delay"][idx]
    pending = status_ms >= grid.end_ms
    status[pending] = ORDER_STATUSES.index("placed")
    status_ms[pending] = ms[pending]
    delay[pending] = np.nan
    return pd.DataFrame({
        "order_id": np.arange(1, len(idx) + 1, dtype=np.int64),
        "customer_id": pop.customer_id[o["row"][idx]],
        "ordered_at": ts_column(grid, ms),
        "amount": np.round(o["amount"][idx], 2),
        "discount_amount": np.round(o["discount"][idx], 2),
        "delivery_cost": np.round(o["delivery_cost"][idx], 2),
        "n_items": o["n_items"][idx].astype(np.int64),
        "category": text_column(o["category"][idx], params.categories),
        "status": text_column(status, ORDER_STATUSES),
        "status_at": ts_column(grid, status_ms),
        "delivery_delay_days": np.round(delay, 2),
    })


def tickets_frame(pop: Population, res: SimResult, grid: DayGrid) -> pd.DataFrame:
    t = res.tickets
    end_ms = grid.end_ms
    opened = ms_of(t["opened_sec"])
    keep = np.flatnonzero(opened < end_ms)
    keep = keep[order_by(t["row"][keep], opened[keep])]
    opened = opened[keep]
    resolved = np.maximum(ms_of(t["resolved_sec"][keep]), opened)
    later = (ms_of(t["resolved_sec"][keep]) < 0) | (resolved >= end_ms)  # not resolved yet
    resolved[later] = -1
    comp = np.where(later, 0.0, t["compensation"][keep])
    sat = t["satisfaction"][keep].astype("float64")
    sat[later | (sat < 1)] = np.nan
    return pd.DataFrame({
        "ticket_id": np.arange(1, len(keep) + 1, dtype=np.int64),
        "customer_id": pop.customer_id[t["row"][keep]],
        "opened_at": ts_column(grid, opened),
        "topic": text_column(t["topic"][keep], TICKET_TOPICS),
        "resolved_at": ts_column(grid, resolved),
        "compensation_amount": np.round(comp, 2),
        "satisfaction": pd.array(sat, dtype="Int64"),
    })


def first_order_after(res: SimResult, rows: np.ndarray, ms: np.ndarray, within_ms: int,
                      end_ms: int) -> np.ndarray:
    """Milliseconds of each (row, ms)'s first order in ``[ms, ms + within)`` before end, else -1."""
    okey = np.sort((res.orders["row"].astype(np.int64) << _MS_BITS) | ms_of(res.orders["sec"]))
    key = (rows.astype(np.int64) << _MS_BITS) | ms
    pos = np.minimum(np.searchsorted(okey, key, side="left"), max(len(okey) - 1, 0))
    if not len(okey):
        return np.full(len(rows), -1, dtype=np.int64)
    found = okey[pos] - (rows.astype(np.int64) << _MS_BITS)
    ok = (found >= ms) & (found < ms + within_ms) & (found < end_ms)
    return np.where(ok, found, -1)


def contacts_frame(pop: Population, res: SimResult, grid: DayGrid,
                   params: SynthParams) -> pd.DataFrame:
    c = res.contacts
    end_ms = grid.end_ms
    idx, sent = in_time_order(c["row"], c["sent_sec"])
    rows = c["row"][idx]
    opened = ms_of(c["opened_sec"][idx])
    opened[opened >= end_ms] = -1
    # Attribution (campaigns.py): first order within attribution_days of sent_at, both groups.
    converted = first_order_after(res, rows, sent, params.attribution_days * 86_400_000, end_ms)
    action_codes = np.array([ACTIONS.index(a) for a in SEND_ACTIONS])[c["action"][idx]]
    campaigns, campaign_codes = np.unique(c["campaign"][idx], return_inverse=True)
    return pd.DataFrame({
        "contact_id": np.arange(1, len(idx) + 1, dtype=np.int64),
        "customer_id": pop.customer_id[rows],
        "sent_at": ts_column(grid, sent),
        "channel": text_column(c["channel"][idx], CHANNELS),
        "action": text_column(action_codes, ACTIONS),
        "group": text_column(c["control"][idx].astype(np.int64), CONTACT_GROUPS),
        "opened_at": ts_column(grid, opened),
        "converted_at": ts_column(grid, converted),
        "campaign": text_column(campaign_codes, tuple(str(x) for x in campaigns)),
    })
