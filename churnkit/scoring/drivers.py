"""Plain words for the churn model's drivers: "2 late deliveries in the last 90 days".

:func:`driver_texts` turns one feature's values into sentences with numbers for many customers at
once (vectorized per feature: formatting runs over the rows that have that driver only), reading
companion features where a number alone would not speak ("no order for 41 days, usually every
12"). Features without a template of their own read from the feature registry's description.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

import numpy as np
import pandas as pd

from churnkit.data.columns import FeatureColumns, nan_to_zero
from churnkit.features.registry import all_features

_WINDOW = r"(?P<w>\d+d|lifetime)"
#: Features some sentences read besides the driver itself.
COMPANIONS = ("gap_mean_days", "days_since_last_order")
Texts = np.ndarray  # object array of str, one per row


def _num(frame: pd.DataFrame | FeatureColumns, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    if isinstance(frame, FeatureColumns):
        return frame.number(name)
    col = frame[name]
    if pd.api.types.is_bool_dtype(col.dtype):
        col = col.astype("float64")
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _fmt(x: np.ndarray, pattern: str = "%d", scale: float = 1.0) -> Texts:
    x = np.asarray(x, dtype=float) * scale
    missing = np.isnan(x)
    filled = nan_to_zero(x)
    if pattern == "%d":
        out = np.char.mod("%d", np.round(filled).astype(np.int64)).astype(object)
    else:
        out = np.char.mod(pattern, filled).astype(object)
    out[missing] = "unknown"
    return out


def _count(x: np.ndarray, one: str, many: str) -> Texts:
    return _fmt(x) + np.where(np.round(x) == 1, " " + one, " " + many)  # NaN: never 1


def _window(w: str) -> str:
    return "ever" if w == "lifetime" else f"in the last {w[:-1]} days"


_STATUS = {"late": ("late delivery", "late deliveries"), "lost": ("lost parcel", "lost parcels"),
           "not_delivered": ("order never delivered", "orders never delivered"),
           "returned": ("returned order", "returned orders"),
           "cancelled": ("cancelled order", "cancelled orders")}


_DAYS = {"mon": "Mondays", "tue": "Tuesdays", "wed": "Wednesdays", "thu": "Thursdays",
         "fri": "Fridays", "sat": "Saturdays", "sun": "Sundays"}


def _status(m, f, x):
    one, many = _STATUS[m["s"]]
    return _count(x, one, many) + " " + _window(m["w"])


def _days_since_order(m, f, x):
    text = "no order for " + _fmt(x) + " days"
    gap = _num(f, "gap_mean_days")
    has = ~np.isnan(gap)
    text[has] = text[has] + ", usually every " + _fmt(gap[has])
    text[np.isnan(x)] = "no order yet"
    return text


def _overdue(m, f, x):
    return ("overdue: " + _fmt(_num(f, "days_since_last_order")) + " days since the last order, "
            "usually every " + _fmt(_num(f, "gap_mean_days")) + " (" + _fmt(x, "%.1f") + "x)")


def _trend(what: str, span: str):
    def text(m, f, x):
        out = np.where(x < 0, f"fewer {what}", f"more {what}").astype(object)
        out[np.isnan(x)] = f"no {what}"
        return out + f" in the last {span} days than in the {span} before"
    return text


def _tickets(m, f, x):
    topic = m["t"]
    what = ("complaint", "complaints") if topic is None else (f"complaint about {topic}",
                                                              f"complaints about {topic}")
    return _count(x, *what) + " " + _window(m["w"])


def _flag(yes: str, no: str):
    def text(m, f, x):
        return np.where(x > 0, yes, no).astype(object)  # NaN compares False
    return text


def _simple(prefix: str, suffix: str = "", pattern: str = "%d", scale: float = 1.0):
    def text(m, f, x):
        return prefix + _fmt(x, pattern, scale) + suffix
    return text


#: (pattern, text(match, features, values)) in order; the first match describes the feature.
TEMPLATES: tuple[tuple[re.Pattern, Callable], ...] = tuple(
    (re.compile(p), fn) for p, fn in (
        (rf"^(?P<s>late|lost|not_delivered|returned|cancelled)_orders_{_WINDOW}$", _status),
        (rf"^delivery_failures_{_WINDOW}$", lambda m, f, x: _count(
            x, "late, lost or undelivered order", "late, lost or undelivered orders")
            + " " + _window(m["w"])),
        (r"^days_since_last_order$", _days_since_order),
        (r"^overdue_ratio$", _overdue),
        (rf"^orders_{_WINDOW}$", lambda m, f, x: _count(x, "order", "orders") + " "
            + _window(m["w"])),
        (rf"^revenue_{_WINDOW}$", lambda m, f, x: "spent " + _fmt(x) + " " + _window(m["w"])),
        (r"^orders_trend_90d$", _trend("orders", "90")),
        (r"^revenue_trend_90d$", _trend("spending", "90")),
        (r"^sessions_trend_(?P<d>\d+)d$", lambda m, f, x: _trend("visits", m["d"])(m, f, x)),
        (rf"^sessions_{_WINDOW}$", lambda m, f, x: _count(x, "visit", "visits") + " "
            + _window(m["w"])),
        (r"^days_since_last_session$", lambda m, f, x: np.where(
            np.isnan(x), "never visited the site", "no visit for " + _fmt(x) + " days")),
        (r"^sessions_since_last_order$", lambda m, f, x: _count(x, "visit", "visits")
            + " since the last order"),
        (rf"^abandoned_carts_{_WINDOW}$", lambda m, f, x: _count(
            x, "cart abandoned", "carts abandoned") + " " + _window(m["w"])),
        (rf"^abandoned_checkouts_{_WINDOW}$", lambda m, f, x: _count(
            x, "cart abandoned at checkout", "carts abandoned at checkout") + " "
            + _window(m["w"])),
        (rf"^tickets_(?:(?P<t>delivery|quality|price|service|payment|other)_)?{_WINDOW}$",
         _tickets),
        (r"^unresolved_tickets$", lambda m, f, x: _count(
            x, "complaint still unanswered", "complaints still unanswered")),
        (r"^oldest_unresolved_ticket_days$", _simple("a complaint unanswered for ", " days")),
        (r"^(min|mean)_satisfaction$", _simple("complaint handling rated ", "/5", "%.1f")),
        (r"^days_since_last_failure$", _simple("a delivery failure ", " days ago")),
        (r"^(max|mean)_delivery_delay_days$", _simple("deliveries up to ", " days late")),
        (r"^paid_not_received$", _flag("paid for an order that never arrived",
                                       "every paid order arrived")),
        (r"^days_since_paid_not_received$", _simple("paid for an order that never arrived, "
                                                    "known ", " days ago")),
        (r"^paid_not_received_orders$", lambda m, f, x: _count(
            x, "paid order never received", "paid orders never received")),
        (r"^delivery_cost_share$", lambda m, f, x: "delivery cost " + _fmt(x, "%d", 100.0)
            + "% of what they paid"),
        (r"^discounted_order_share$", lambda m, f, x: _fmt(x, "%d", 100.0)
            + "% of orders bought with a discount"),
        (r"^discount_share$", lambda m, f, x: "discounts took " + _fmt(x, "%d", 100.0)
            + "% off the list price"),
        (r"^(delivery_failure|return)_share$", lambda m, f, x: _fmt(x, "%d", 100.0)
            + ("% of orders late, lost or undelivered" if m[1] == "delivery_failure"
               else "% of orders returned")),
        (r"^mean_basket$", _simple("average basket ")),
        (r"^basket_vs_population$", _simple("basket ", "x the shop's average", "%.1f")),
        (r"^p_alive$", _simple("", "% chance of still being an active buyer (BG/NBD)", "%d",
                               100.0)),
        (r"^p_no_purchase_90d$", _simple("", "% chance of no purchase in the next 90 days "
                                         "(BG/NBD)", "%d", 100.0)),
        (r"^expected_purchases_90d$", _simple("", " purchases expected in the next 90 days "
                                              "(BG/NBD)", "%.1f")),
        (r"^pnbd_p_alive$", _simple("", "% chance of still being an active buyer (Pareto/NBD)",
                                    "%d", 100.0)),
        (r"^pnbd_p_no_purchase_90d$", _simple("", "% chance of no purchase in the next 90 days "
                                              "(Pareto/NBD)", "%d", 100.0)),
        (r"^days_since_(signup|first_order)$", lambda m, f, x: (
            "customer for " if m[1] == "signup" else "first order ") + _fmt(x)
            + (" days" if m[1] == "signup" else " days ago")),
        (r"^days_since_last_contact$", _simple("last win-back message ", " days ago")),
        (r"^days_since_last_comeback$", _simple("came back after a message ", " days ago")),
        (r"^days_since_last_ticket$", _simple("last complaint ", " days ago")),
        (r"^contacts_(?P<w>\d+d|lifetime)$", lambda m, f, x: _count(
            x, "win-back message", "win-back messages") + " " + _window(m["w"])),
        (r"^(open|conversion)_rate$", lambda m, f, x: _fmt(x, "%d", 100.0)
            + ("% of messages opened" if m[1] == "open" else "% of messages led to an order")),
        (r"^can_contact_(?P<c>\w+)$", lambda m, f, x: np.where(
            x > 0, f"reachable by {m['c']}", f"no consent for {m['c']}")),
        (r"^activity_share_h(?P<a>\d\d)_(?P<b>\d\d)$", lambda m, f, x: _fmt(x, "%d", 100.0)
            + f"% of their activity between {m['a']}:00 and {m['b']}:00 local time"),
        (r"^activity_share_(?P<d>mon|tue|wed|thu|fri|sat|sun)$", lambda m, f, x: _fmt(
            x, "%d", 100.0) + f"% of their activity on {_DAYS[m['d']]}"),
        (r"^allowed_channels$", lambda m, f, x: _count(x, "channel allowed", "channels allowed")),
        (r"^unsubscribed$", _flag("unsubscribed from marketing", "subscribed to marketing")),
    )
)


@cache
def _registry() -> dict[str, tuple[str, str]]:
    return {f.name: (f.description, f.unit) for f in all_features()}


@cache
def _generic_head(name: str) -> tuple[str, str]:
    """The start of a feature's generic sentence (from its registry description) and unit."""
    description, unit = _registry().get(name, (name.replace("_", " "), ""))
    head = description.split(";")[0].rstrip(".")
    head = head[:1].lower() + head[1:]
    head = re.sub(r"in the (\d+) days before as_of", r"in the last \1 days", head)
    head = head.replace(" ever (before as_of)", " ever").replace(" before as_of", "")
    return head, unit


def _generic(name: str, values: pd.Series | FeatureColumns) -> Texts:
    head, unit = _generic_head(name)
    if isinstance(values, FeatureColumns):
        arr = None if values.is_text(name) else values.number(name)
        if arr is None:
            shown = np.array(["unknown" if pd.isna(v) else str(v)
                              for v in values.text(name).tolist()], dtype=object)
    else:
        x = pd.to_numeric(values, errors="coerce") if values.dtype != object and not \
            pd.api.types.is_string_dtype(values.dtype) else None
        arr = None if x is None else x.to_numpy(dtype=float, na_value=np.nan)
        if x is None:
            shown = values.astype(object).where(values.notna(), "unknown").astype(str).to_numpy(
                dtype=object)
    if arr is not None:
        shown = (_fmt(arr, "%d", 100.0) + "%" if unit == "share"
                 else _fmt(arr, "%.2f") if unit in ("ratio", "probability")
                 else _fmt(arr) + (f" {unit}" if unit in ("days", "orders", "hour") else ""))
    return head + ": " + shown


@cache
def _template(name: str) -> tuple[re.Match, Callable] | None:
    """The first template matching feature ``name`` (None: the generic sentence)."""
    for pattern, fn in TEMPLATES:
        m = pattern.match(name)
        if m:
            return m, fn
    return None


def driver_texts(name: str, features: pd.DataFrame | FeatureColumns) -> Texts:
    """One plain sentence per row of ``features`` describing feature ``name``'s value there."""
    if name not in features.columns:
        raise KeyError(f"feature {name!r} is not in the frame")
    found = _template(name)
    if found is not None:
        m, fn = found
        return np.asarray(fn(m, features, _num(features, name)), dtype=object)
    values = features if isinstance(features, FeatureColumns) else features[name]
    return np.asarray(_generic(name, values), dtype=object)


def explain(picked: np.ndarray, names: np.ndarray,
            features: pd.DataFrame | FeatureColumns) -> np.ndarray:
    """Texts for a matrix of picked feature positions (rows × k) into ``names``."""
    if isinstance(features, FeatureColumns):
        return _explain_columns(picked, names, features)
    out = np.empty(picked.shape, dtype=object)
    # Column arrays read once (reading a column of a frame with attrs deep-copies the attrs).
    arrays: dict[str, np.ndarray] = {}

    def array(name: str) -> np.ndarray:
        if name not in arrays:
            col = features[name]
            arrays[name] = (col.to_numpy(dtype=object) if pd.api.types.is_string_dtype(col.dtype)
                            or col.dtype == object else col.to_numpy(dtype=float,
                                                                      na_value=np.nan))
        return arrays[name]

    companions = [c for c in COMPANIONS if c in features.columns]
    for k in range(picked.shape[1]):
        for j in np.unique(picked[:, k]):
            hit = np.flatnonzero(picked[:, k] == j)
            name = str(names[j])
            cols = [name, *(c for c in companions if c != name)]
            out[hit, k] = driver_texts(name, pd.DataFrame({c: array(c)[hit] for c in cols}))
    return out


def _explain_columns(picked: np.ndarray, names: np.ndarray,
                     features: FeatureColumns) -> np.ndarray:
    """:func:`explain` on feature columns: each driver's sentences from the rows it drives."""
    out = np.empty(picked.shape, dtype=object)
    for k in range(picked.shape[1]):
        for j in np.unique(picked[:, k]).tolist():
            hit = np.flatnonzero(picked[:, k] == j)
            rows = features if len(hit) == len(features) else features.take(hit)
            out[hit, k] = driver_texts(str(names[j]), rows)
    return out
