"""Browsing sessions to browsing events.

Three kinds of session (docs/domain.md leading indicators: browsing, abandoned carts):

- a **checkout session** before every order: product views, ``add_to_cart``, ``checkout``, ending
  shortly before ``ordered_at``;
- an **abandoned cart**: ``view``, ``product_view``, ``add_to_cart`` and sometimes ``checkout``
  with no order (more frequent for price-sensitive customers after a delivery-cost shock);
- a plain **browsing session**: a ``view`` then a few ``product_view`` / ``search`` /
  ``wishlist`` / ``view`` events.

Events in a session are a few seconds to minutes apart. A session has one product category drawn
from the customer's preferences (the order's category for checkout sessions); ``search`` and
``checkout`` events carry no category.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnkit.data.contract import BROWSING_EVENTS
from churnkit.synth.assemble import ms_of, order_by, text_column, ts_column
from churnkit.synth.params import SynthParams
from churnkit.synth.population import Population
from churnkit.synth.timegrid import DayGrid

EV = {name: i for i, name in enumerate(BROWSING_EVENTS)}
#: Event mix of the extra events of a plain browsing session.
_BROWSE_MIX = (("product_view", 0.5), ("search", 0.3), ("wishlist", 0.1), ("view", 0.1))
_NO_CATEGORY = (EV["search"], EV["checkout"])
MEAN_GAP_SECONDS = 75.0


def _positions(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Session index and position within the session of every event."""
    session = np.repeat(np.arange(len(sizes), dtype=np.int32), sizes)
    starts = np.cumsum(sizes) - sizes
    return session, np.arange(len(session)) - starts[session]


def expand_sessions(
    sessions: dict[str, np.ndarray],
    orders: dict[str, np.ndarray],
    pop: Population,
    params: SynthParams,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Events of all sessions: columns row, sec, event (BROWSING_EVENTS index), category
    (index into ``params.categories``, -1 = none), session (a session number); and per session
    number: session_row, session_start (seconds of its first event)."""
    # Plain and abandoned-cart sessions start at their sampled time.
    cart = sessions["cart"]
    n_s = len(cart)
    extra = rng.poisson(params.browse_extra_events_mean, n_s)
    sizes_s = np.where(cart, 3 + (rng.random(n_s) < 0.5), 1 + extra)
    sess_s, pos_s = _positions(sizes_s)
    mix = np.array([EV[e] for e, _ in _BROWSE_MIX])
    mix_p = np.array([w for _, w in _BROWSE_MIX])
    plain = mix[rng.choice(len(mix), size=len(sess_s), p=mix_p / mix_p.sum())]
    cart_seq = np.array([EV["view"], EV["product_view"], EV["add_to_cart"], EV["checkout"]])
    event_s = np.where(cart[sess_s], cart_seq[np.minimum(pos_s, 3)],
                       np.where(pos_s == 0, EV["view"], plain))
    gaps = rng.exponential(MEAN_GAP_SECONDS, len(sess_s))
    gaps[pos_s == 0] = 0.0
    offs = np.cumsum(gaps)
    offs -= np.repeat(offs[np.cumsum(sizes_s) - sizes_s], sizes_s)
    sec_s = sessions["sec"][sess_s] + offs
    cum = pop.category_cum[sessions["row"]]
    cat_sess = np.minimum((cum < rng.random(n_s)[:, None] * cum[:, -1:]).sum(axis=1),
                          len(params.categories) - 1)
    cat_s = cat_sess[sess_s]

    # Checkout sessions end just before their order.
    n_o = len(orders["row"])
    sizes_o = 2 + rng.poisson(params.checkout_extra_views_mean, n_o)
    sess_o, pos_o = _positions(sizes_o)
    last = sizes_o[sess_o] - 1
    event_o = np.where(pos_o == last, EV["checkout"],
                       np.where(pos_o == last - 1, EV["add_to_cart"], EV["product_view"]))
    gaps = rng.exponential(MEAN_GAP_SECONDS, len(sess_o))
    # Seconds before the order: reverse cumulative gaps inside the session, plus a short pause.
    rev = np.cumsum(gaps[::-1])[::-1]
    ends = np.cumsum(sizes_o) - 1
    before = rev - np.repeat(rev[ends], sizes_o) + np.repeat(gaps[ends], sizes_o)
    sec_o = orders["sec"][sess_o] - before
    cat_o = orders["category"][sess_o]

    first_o = np.cumsum(sizes_o) - sizes_o
    event = np.concatenate([event_s, event_o]).astype(np.int8)
    category = np.concatenate([cat_s, cat_o]).astype(np.int8)
    category[np.isin(event, _NO_CATEGORY)] = -1
    return {
        "row": np.concatenate([sessions["row"][sess_s], orders["row"][sess_o]]),
        "sec": np.concatenate([sec_s, sec_o]),
        "event": event,
        "category": category,
        "session": np.concatenate([sess_s, n_s + sess_o]).astype(np.int64),
        "session_row": np.concatenate([sessions["row"], orders["row"]]),
        "session_start": np.concatenate([sessions["sec"], sec_o[first_o]]),
    }


def browsing_frame(
    pop: Population,
    sessions: dict[str, np.ndarray],
    orders: dict[str, np.ndarray],
    grid: DayGrid,
    params: SynthParams,
    rng: np.random.Generator,
    chunk_customers: int = 100_000,
) -> pd.DataFrame:
    """The browsing table: events in ``[start, end)``, sorted by customer then time.

    Built by chunks of customers (events of different customers are independent), which keeps
    the peak memory of tens of millions of events low. Session ids are numbered by (customer,
    session start); sessions entirely outside the period leave gaps in the numbering.
    """
    end_ms = grid.end_ms
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("row", "ms", "event", "category",
                                                         "session")}
    n_sessions = 0
    for lo in range(0, pop.n, chunk_customers):
        hi = lo + chunk_customers
        s_sel = (sessions["row"] >= lo) & (sessions["row"] < hi)
        o_sel = (orders["row"] >= lo) & (orders["row"] < hi)
        ev = expand_sessions({k: v[s_sel] for k, v in sessions.items()},
                             {k: orders[k][o_sel] for k in ("row", "sec", "category")},
                             pop, params, rng)
        ms = ms_of(ev["sec"])
        keep = np.flatnonzero((ms >= 0) & (ms < end_ms))
        keep = keep[order_by(ev["row"][keep], ms[keep])]
        rank = np.empty(len(ev["session_row"]), dtype=np.int64)
        rank[order_by(ev["session_row"], ms_of(ev["session_start"]))] = np.arange(
            n_sessions + 1, n_sessions + len(rank) + 1)
        n_sessions += len(rank)
        parts["row"].append(ev["row"][keep].astype(np.int32))
        parts["ms"].append(ms[keep])
        parts["event"].append(ev["event"][keep])
        parts["category"].append(ev["category"][keep])
        parts["session"].append(rank[ev["session"][keep]])
        del ev, ms, keep, rank
    cols = {k: np.concatenate(v) for k, v in parts.items()}
    del parts
    return pd.DataFrame({
        "customer_id": pop.customer_id[cols.pop("row")],
        "session_id": cols.pop("session"),
        "ts": ts_column(grid, cols.pop("ms")),
        "event": text_column(cols.pop("event"), BROWSING_EVENTS),
        "category": text_column(cols.pop("category"), params.categories),
    })
