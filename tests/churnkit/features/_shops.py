"""Small readable shops for the feature tests, and a hypothesis strategy for random ones."""

from __future__ import annotations

import pandas as pd
from hypothesis import strategies as st

import churnkit as ck
from churnkit.data.contract import ACTIONS, BROWSING_EVENTS, CHANNELS, ORDER_STATUSES, TICKET_TOPICS
from churnkit.features import PopulationFit
from churnkit.stats.btyd import BGNBDParams

AS_OF = pd.Timestamp("2024-06-01", tz="UTC")
#: A fixed population fit, so that per-customer logic is tested in isolation from fitting.
POPULATION = PopulationFit(
    as_of=AS_OF, n_customers=100, n_buyers=80, mean_order_value=50.0,
    bgnbd=BGNBDParams(r=0.6, alpha=40.0, a=0.7, b=2.5),
)


def ago(days: float, as_of: pd.Timestamp = AS_OF) -> pd.Timestamp:
    """The moment ``days`` days before ``as_of`` (negative: after)."""
    return as_of - pd.Timedelta(days=days)


def shop(
    customers: dict,
    orders: dict | None = None,
    browsing: dict | None = None,
    tickets: dict | None = None,
    contacts: dict | None = None,
) -> ck.Tables:
    """Validated tables from column dicts (absent tables stay absent; empty dict = no orders)."""
    def frame(d: dict | None) -> pd.DataFrame | None:
        return None if d is None else pd.DataFrame(d)

    orders_frame = frame(orders) if orders else pd.DataFrame(
        {"order_id": pd.Series([], dtype="int64"), "customer_id": pd.Series([], dtype="int64"),
         "ordered_at": pd.Series([], dtype="datetime64[us, UTC]"),
         "amount": pd.Series([], dtype="float64"), "status": pd.Series([], dtype="str"),
         "status_at": pd.Series([], dtype="datetime64[us, UTC]")})
    return ck.validate(ck.Tables(frame(customers), orders_frame, frame(browsing),  # type: ignore[arg-type]
                                 frame(tickets), frame(contacts)))


def orders_only(tables: ck.Tables) -> ck.Tables:
    """The shop as a bare purchase export would give it: orders' customer, time and amount."""
    return ck.validate(ck.Tables(orders=tables.orders[["customer_id", "ordered_at", "amount"]]))


# --- random shops -----------------------------------------------------------------------------

T0 = pd.Timestamp("2023-01-01", tz="UTC")
STEP = pd.Timedelta(hours=6)  # a coarse grid, so that events often fall exactly on as_of
N_STEPS = 4 * 600


def _t(k: int) -> pd.Timestamp:
    return T0 + k * STEP


steps = st.integers(0, N_STEPS)
later = st.one_of(st.none(), st.integers(0, 3), st.integers(0, 400))  # steps after; None: never


@st.composite
def shops(draw, *, tables: tuple[str, ...] = ("browsing", "tickets", "contacts")):
    """(Tables, as_of): a random small shop and a cutoff on the same 6-hour grid."""
    n = draw(st.integers(1, 5))
    ids = list(range(1, n + 1))
    tz = st.sampled_from(["UTC", "Europe/Moscow", "America/New_York", "Asia/Kolkata"])
    cust = {
        "customer_id": ids,
        "signup_at": [_t(draw(st.integers(0, N_STEPS // 2))) for _ in ids],
        "timezone": [draw(tz) for _ in ids],
        "unsubscribed_at": [None if (k := draw(later)) is None else _t(N_STEPS // 2 + k)
                            for _ in ids],
    }
    for ch in CHANNELS:
        cust[f"consent_{ch}"] = [draw(st.booleans()) for _ in ids]
    rows = draw(st.lists(st.tuples(st.sampled_from(ids), steps, later,
                                   st.sampled_from(ORDER_STATUSES),
                                   st.sampled_from(["a", "b", None]),
                                   st.floats(0, 200).map(lambda x: round(x, 2)),
                                   st.booleans()), max_size=14))
    orders = {
        "order_id": list(range(1, len(rows) + 1)),
        "customer_id": [r[0] for r in rows],
        "ordered_at": [_t(r[1]) for r in rows],
        "status_at": [_t(r[1] + (r[2] or 0)) for r in rows],
        "status": [r[3] for r in rows],
        "category": [r[4] for r in rows],
        "amount": [r[5] for r in rows],
        "discount_amount": [5.0 if r[6] else 0.0 for r in rows],
        "delivery_cost": [3.0 if r[6] else 0.0 for r in rows],
        "n_items": [1 + (r[1] % 3) for r in rows],
        "delivery_delay_days": [float(r[2] % 5) if r[3] == "late" and r[2] else None
                                for r in rows],
    }
    frames: dict = {"customers": cust, "orders": orders}
    if "browsing" in tables:
        ev = draw(st.lists(st.tuples(st.sampled_from(ids), st.integers(1, 6), steps,
                                     st.sampled_from(BROWSING_EVENTS)), max_size=20))
        frames["browsing"] = {
            "customer_id": [e[0] for e in ev],
            "session_id": [e[0] * 100 + e[1] for e in ev],
            "ts": [_t(e[2]) for e in ev],
            "event": [e[3] for e in ev],
        }
    if "tickets" in tables:
        tk = draw(st.lists(st.tuples(st.sampled_from(ids), steps, later,
                                     st.sampled_from(TICKET_TOPICS), st.integers(1, 5)),
                           max_size=8))
        frames["tickets"] = {
            "ticket_id": list(range(1, len(tk) + 1)),
            "customer_id": [r[0] for r in tk],
            "opened_at": [_t(r[1]) for r in tk],
            "topic": [r[3] for r in tk],
            "resolved_at": [None if r[2] is None else _t(r[1] + r[2]) for r in tk],
            "compensation_amount": [float(r[4] * 3 % 7) if r[2] is not None else 0.0 for r in tk],
            "satisfaction": [r[4] if r[2] is not None else None for r in tk],
        }
    if "contacts" in tables:
        ct = draw(st.lists(st.tuples(st.sampled_from(ids), steps, later, later,
                                     st.sampled_from(CHANNELS), st.booleans()), max_size=8))
        frames["contacts"] = {
            "contact_id": list(range(1, len(ct) + 1)),
            "customer_id": [r[0] for r in ct],
            "sent_at": [_t(r[1]) for r in ct],
            "channel": [r[4] for r in ct],
            "action": [ACTIONS[r[1] % len(ACTIONS)] for r in ct],
            "group": ["treatment" if r[5] else "control" for r in ct],
            "opened_at": [None if r[2] is None else _t(r[1] + r[2]) for r in ct],
            "converted_at": [None if r[3] is None else _t(r[1] + r[3]) for r in ct],
        }
    raw = {name: pd.DataFrame(cols) for name, cols in frames.items()}
    for frame in raw.values():
        for col in frame.columns:
            if col.endswith("_at") or col == "ts":
                frame[col] = pd.to_datetime(frame[col], utc=True)
    tables_ = ck.validate(ck.Tables(**raw))
    # as_of where leaks would show: mostly at or just before a moment something became known
    # (a status, resolution, open, conversion, unsubscribe), so the row exists but the value is
    # not known yet; otherwise near any event, or anywhere
    learned = ("status_at", "resolved_at", "opened_at", "converted_at", "unsubscribed_at")
    def moments(cols: tuple[str, ...] | None) -> list[int]:
        return [int(k) for frame in raw.values() for col in frame.columns
                if (col in cols if cols else col.endswith("_at") or col == "ts")
                for k in ((frame[col].dropna() - T0) // STEP)]
    later_moments, any_moments = moments(learned), moments(None)
    how = draw(st.sampled_from(["learned", "learned", "learned", "any", "uniform"]))
    if how == "learned" and later_moments:
        step = draw(st.sampled_from(later_moments)) - draw(st.integers(0, 1))
    elif how != "uniform" and any_moments:
        step = draw(st.sampled_from(any_moments)) + draw(st.integers(-1, 1))
    else:
        step = draw(st.integers(0, N_STEPS))
    return tables_, _t(max(step, 0))
