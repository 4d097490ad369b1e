"""Plain words for the policy's decisions: ``action_reason`` and ``policy_trace``.

Built column-wise: each sentence piece is formatted for the rows it concerns only, and traces are
built once per distinct combination of rules (a handful) and shared by the rows that have it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churnkit.features.contacts import RECENT_CONTACTS
from churnkit.policy.causes import column
from churnkit.policy.config import CAUSES, EVIDENCE_CAUSES, SEGMENTS, PolicyConfig
from churnkit.policy.wording import SMALL_TEXT_ROWS, Text, _int, _pct, _plural, _present

DNC = "do_not_contact"
def cause_texts(f: pd.DataFrame, cause: np.ndarray, pnr: np.ndarray, risk_percentile: np.ndarray,
                config: PolicyConfig) -> Text:
    """Why the customer is at risk, in plain words with numbers (one string per row)."""
    n = len(f)
    out = Text.full(n, "")
    code = {c: k for k, c in enumerate(CAUSES)}
    present = _present(cause)

    if code["delivery_failure"] in present:
        m = cause == code["delivery_failure"]
        failures = column(f, "delivery_failures_lifetime")[m]
        last = column(f, "days_since_last_failure")[m]
        text = (_int(failures) + _plural(failures, " late, lost or undelivered order",
                                         " late, lost or undelivered orders")
                + ", the last known " + _int(last) + " days ago")
        paid = pnr[m]
        since = column(f, "days_since_paid_not_received")[m]
        text[paid] = ("Paid for an order that never arrived (known " + _int(since[paid])
                      + " days ago)")
        out[m] = text
    if code["unresolved_complaint"] in present:
        m = cause == code["unresolved_complaint"]
        open_ = column(f, "unresolved_tickets", 0.0)[m]
        oldest = column(f, "oldest_unresolved_ticket_days")[m]
        rating = column(f, "min_satisfaction")[m]
        text = "A complaint rated " + _int(rating) + "/5"
        has_open = open_ > 0
        text[has_open] = (_int(open_[has_open])
                          + _plural(open_[has_open], " complaint", " complaints")
                          + " still unanswered, the oldest for " + _int(oldest[has_open])
                          + " days")
        out[m] = text
    if code["price"] in present:
        m = cause == code["price"]
        p = config.causes["price"]
        checkouts = column(f, "abandoned_checkouts_90d", 0.0)[m]
        share = column(f, "delivery_cost_share")[m]
        disc = column(f, "discounted_order_share")[m]
        tickets = column(f, "tickets_price_365d", 0.0)[m]
        text = (_int(tickets) + _plural(tickets, " complaint", " complaints")
                + " about price in the last 365 days")
        with np.errstate(invalid="ignore"):
            k = disc >= p["min_discounted_order_share"]
            text[k] = _int(100 * disc[k]) + "% of their orders bought with a discount"
            k = share >= p["min_delivery_cost_share"]
            text[k] = "Delivery cost " + _int(100 * share[k]) + "% of what they paid"
            k = checkouts >= p["min_abandoned_checkouts_90d"]
        text[k] = (_int(checkouts[k]) + _plural(checkouts[k], " cart", " carts")
                   + " abandoned at checkout in the last 90 days")
        out[m] = text
    if code["forgotten"] in present:
        m = cause == code["forgotten"]
        out[m] = ("One order " + _int(column(f, "days_since_last_order")[m])
                  + " days ago and no visit since")
    if code["natural"] in present:
        m = cause == code["natural"]
        days = column(f, "days_since_last_order")[m]
        text = ("Activity fading with no incident (" + _int(days)
                + " days since the last order)")
        text[np.isnan(days)] = "No order yet"
        out[m] = text
    if code["none"] in present:
        m = cause == code["none"]
        out[m] = ("Not at risk (risk percentile " + _int(risk_percentile[m]) + ", below "
                  + f"{config.at_risk_percentile:g})")
    return out


def action_reasons(f: pd.DataFrame, cause: np.ndarray, action: np.ndarray,
                   risk_percentile: np.ndarray, flags: dict[str, np.ndarray],
                   value: np.ndarray, action_cost: np.ndarray, config: PolicyConfig,
                   names: list[str], cheapest: np.ndarray, p_churn: np.ndarray,
                   cap_reason: Text) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """``action_reason``: the cause in plain words, then what to do or why not to contact.

    ``cause`` holds indices into :data:`CAUSES`, ``action`` the action names; ``cap_reason``
    one string per row of ``flags["capped"]`` (:func:`cap_texts`).
    """
    why = cause_texts(f, cause, flags["paid_not_received"], risk_percentile, config)
    what = Text.full(len(f), "")
    present = _present(action)
    for name in names:
        if name not in present or name == DNC:
            continue
        m = action == name
        template = config.actions[name].text
        if "{cost}" in template:
            head, _, tail = template.partition("{cost}")
            what[m] = "offer " + head + _int(action_cost[m]) + tail
        else:
            what[m] = "offer " + template
        if flags["uplift_choice"].any():
            u = m & flags["uplift_choice"]
            what[u] = what[u] + " (the best expected incremental profit)"
    # Do-not-contact reasons, the first that holds wins (most binding first).
    q = config.quiet_period_days
    dnc = action == DNC
    reasons = [
        ("unsubscribed", "do not contact: unsubscribed"),
        ("no_consent", "do not contact: no consent on any channel"),
        ("serial", "do not contact: serial complainer (regular compensation demands)"),
        ("quiet", f"do not contact: came back less than {q:g} days ago (quiet period)"),
    ]
    left = dnc.copy()
    for flag, text in reasons:
        k = left & flags[flag]
        what[k] = text
        left &= ~k
    what[flags["capped"]] = cap_reason
    left &= ~flags["capped"]
    k = left & flags["value_below_cost"]
    if k.any():
        what[k] = ("do not contact: margin value " + _int(value[k]) + " is below the cost "
                   + _int(cheapest[k]) + " of the cheapest fitting action")
    left &= ~k
    k = left & flags["gate"]
    if k.any():
        what[k] = ("do not contact: margin value " + _int(value[k]) + " is under "
                   + f"{config.economic_gate_multiple:g}× the cost " + _int(cheapest[k])
                   + " of the cheapest fitting action")
    left &= ~k
    k = left & flags.get("postponed", np.zeros(len(f), dtype=bool))
    if k.any():
        what[k] = _postponed_text(k, flags, value, p_churn, cause, config)
    left &= ~k
    k = left & flags["uplift_none"]
    what[k] = "do not contact: no action is expected to pay for itself"
    left &= ~k
    k = left & (cause == CAUSES.index("natural"))
    what[k] = "do not contact: natural churn is rarely worth fighting"
    left &= ~k
    what[left] = "do not contact"
    # Every cause text starts with a capital or a number.
    return (why + "; " + what).column()


def cap_texts(capped: np.ndarray, count_binds: np.ndarray, messages: np.ndarray,
              last_age: np.ndarray, wait: np.ndarray, day: pd.DatetimeIndex | None,
              config: PolicyConfig) -> Text:
    """Why the contact caps hold a customer back, one string per row of ``capped``.

    "capped: 2 messages in the last 30 days; next contact allowed on 2025-07-09" where the
    count cap binds (``count_binds``; ``messages`` in the window), else "capped: last message 3
    days ago, at least 7 days between messages; ..." (``last_age`` in days). ``day``: the
    first allowed day of each capped row (UTC); without it, "next contact allowed in 4 days"
    (``wait`` in days, rounded up).
    """
    caps = config.contact_caps
    n = int(np.count_nonzero(capped))
    if not n:
        return Text.full(0, "")
    m = messages[capped]
    by_count = count_binds[capped]
    text = ("capped: last message " + _int(last_age[capped]) + " days ago, at least "
            + f"{caps.min_gap_days:g} days between messages")
    counted = ("capped: " + _int(m) + _plural(m, " message", " messages")
               + f" in the last {caps.window_days:g} days")
    counted[m >= RECENT_CONTACTS] = (f"capped: {RECENT_CONTACTS} or more messages in the last "
                                     f"{caps.window_days:g} days")
    text[by_count] = counted[by_count]
    if day is None:
        return text + "; next contact allowed in " + _int(np.ceil(wait[capped])) + " days"
    if len(day) <= SMALL_TEXT_ROWS:
        return text + "; next contact allowed on " + Text([d.strftime("%Y-%m-%d")
                                                             for d in day.tz_convert("UTC")])
    return text + "; next contact allowed on " + Text(pc.strftime(
        pa.array(day.as_unit("us").asi8, pa.timestamp("us", tz="UTC")), "%Y-%m-%d"))


def _postponed_text(k: np.ndarray, flags: dict[str, np.ndarray], value: np.ndarray,
                    p_churn: np.ndarray, cause: np.ndarray,
                    config: PolicyConfig) -> Text:
    """'postpone: value 120 below the average 340, return chance 18% below the average 31%'
    (only the parts that were below average), for the rows of ``k``."""
    rule = config.postpone
    n = int(k.sum())
    parts = Text.full(n, "")
    sep = Text.full(n, "")
    ret = 1.0 - np.asarray(p_churn, dtype=float)
    pieces = (
        ("value", lambda m: "value " + _int(value[m]) + " below the average "
         + _int(np.full(int(m.sum()), rule.reference_value))),
        ("cause", lambda m: Text.full(int(m.sum()), "a weak cause to act on (")
         + Text.of(np.asarray(CAUSES, dtype=object)[cause[m]].tolist()) + ")"),
        ("return", lambda m: "return chance " + _pct(ret[m]) + " below the average "
         + _pct(np.full(int(m.sum()), rule.reference_return_probability))),
    )
    for key, text in pieces:
        hit = flags[f"below_average:{key}"][k]
        if hit.any():
            parts[hit] = parts[hit] + sep[hit] + text(k & flags[f"below_average:{key}"])
            sep[hit] = ", "
    return "postpone (do not contact now): " + parts


def _trace_texts(config: PolicyConfig, names: list[str]) -> dict[str, str]:
    s, pnr, h = config.serial_complainer, config.paid_not_received, config.discount_hunter
    rule, caps = config.postpone, config.contact_caps
    ref_value, ref_return = rule.reference_value or 0.0, rule.reference_return_probability or 0.0
    texts = {
        "at_risk": f"at risk: risk percentile >= {config.at_risk_percentile:g}",
        "not_at_risk": f"not at risk: risk percentile < {config.at_risk_percentile:g}",
        "paid_not_received": (f"paid but not received in the last {pnr['lookback_days']:g} "
                              "days: front of the queue, no economic gate"),
        "no_consent": "no consent on any channel: do not contact",
        "unsubscribed": "unsubscribed: do not contact",
        "serial": (f"serial complainer (>= {s['min_tickets']:g} tickets, >= "
                   f"{s['min_tickets_per_order']:g} per order, >= "
                   f"{s['min_compensated_tickets']:g} compensated): do not contact"),
        "quiet": (f"came back less than {config.quiet_period_days:g} days ago: quiet period, "
                  "do not contact"),
        "hunter": (f"discount hunter (>= {100 * h['min_discounted_order_share']:g}% discounted "
                   f"orders): priority x {h['priority_factor']:g}"),
        "value_below_cost": "margin value below the cost of every fitting action: do not "
                            "contact",
        "gate": (f"economic gate: margin value not above {config.economic_gate_multiple:g}x the "
                 "cost of any fitting action: do not contact"),
        "uplift_choice": ("uplift: highest expected incremental profit (uplift x margin value - "
                          "cost)"),
        "uplift_none": "uplift: no allowed action has a positive uplift x margin value - cost",
        "uplift_missing": "uplift: no prediction for this customer, the rules decided",
        "postponed": (f"postpone: {rule.below_average_needed} or more of value, cause and "
                      "probability of return below average (docs/domain.md's decision filter)"),
        "below_average:value": f"value below the average {ref_value:.0f}",
        "below_average:cause": f"weak cause ({', '.join(rule.weak_causes)})",
        "below_average:return": f"probability of return below the average {100 * ref_return:.0f}%",
        **{f"evidence:{c}": f"evidence of {c.replace('_', ' ')}" for c in EVIDENCE_CAUSES},
        "cap_count": (f"contact cap: {caps.max_messages} or more messages in the last "
                      f"{caps.window_days:g} days: do not contact until one leaves the window"),
        "cap_gap": (f"contact gap: a message less than {caps.min_gap_days:g} days ago: do not "
                    "contact until the gap has passed"),
        "cap_waived": ("contact caps waived: an order paid for and never received, no message "
                       "since it became known (contact immediately)"),
    }
    for a in names:
        texts[f"gate_failed:{a}"] = (f"economic gate: {a} costs more than margin value / "
                                     f"{config.economic_gate_multiple:g}")
    return texts


_TRACE_TEXTS: dict[int, tuple[PolicyConfig, tuple[str, ...], dict[str, str]]] = {}


def _cached_trace_texts(config: PolicyConfig, names: tuple[str, ...]) -> dict[str, str]:
    """:func:`_trace_texts`, computed once per config object and action names (the entry
    holds its config, so an id is not reused while cached)."""
    hit = _TRACE_TEXTS.get(id(config))
    if hit is None or hit[0] is not config or hit[1] != names:
        if len(_TRACE_TEXTS) >= 16:
            _TRACE_TEXTS.clear()
        hit = _TRACE_TEXTS[id(config)] = (config, names, _trace_texts(config, list(names)))
    return hit[2]


def _unique(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(key, return_index=True, return_inverse=True)`` (a dictionary for a few
    rows, where sorting costs more than the rows)."""
    if len(key) > SMALL_TEXT_ROWS:
        return np.unique(key, return_index=True, return_inverse=True)
    at: dict[int, int] = {}
    inverse = [at.setdefault(k, len(at)) for k in key.tolist()]
    order = sorted(at, key=int)
    rank = np.empty(len(order), dtype=np.int64)
    rank[[at[k] for k in order]] = np.arange(len(order))
    first = np.zeros(len(order), dtype=np.int64)
    for i, code in reversed(list(enumerate(inverse))):
        first[rank[code]] = i
    return (np.asarray(order, dtype=np.int64), first,
            rank[np.asarray(inverse, dtype=np.int64)])


def traces(flags: dict[str, np.ndarray], cause: np.ndarray, seg_code: np.ndarray,
           chosen: np.ndarray, gate_failed: np.ndarray, names: list[str],
           config: PolicyConfig) -> np.ndarray:
    """``policy_trace``: the rules that fired, in the order they apply (a list per row)."""
    n = len(cause)
    order = ["at_risk", "not_at_risk", *(f"evidence:{c}" for c in EVIDENCE_CAUSES),
             "paid_not_received", "no_consent", "unsubscribed", "serial", "quiet",
             "segment_playbook", *(f"gate_failed:{a}" for a in names), "value_below_cost",
             "gate", "below_average:value", "below_average:cause", "below_average:return",
             "postponed", "uplift_choice", "uplift_none", "uplift_missing", "cap_count",
             "cap_gap", "cap_waived", "hunter"]
    columns = [flags[k] if k in flags else gate_failed[:, names.index(k.split(":", 1)[1])]
               for k in order]
    fired_bits = np.array(columns, dtype=bool).reshape(len(columns), n).astype(np.int64)
    bits = (fired_bits << np.arange(len(columns), dtype=np.int64)[:, None]).sum(axis=0)
    key = ((bits * len(CAUSES) + cause) * len(SEGMENTS) + seg_code) * len(names) + chosen
    uniq, first, inverse = _unique(key)
    texts = dict(_cached_trace_texts(config, tuple(names)))
    lists = np.empty(len(uniq), dtype=object)
    for u, i in enumerate(first):
        texts["segment_playbook"] = f"playbook for {SEGMENTS[seg_code[i]]} customers"
        row_bits = int(bits[i])  # a Python int: NumPy scalars' shifts cost more
        fired = [texts[k] for b, k in enumerate(order) if (row_bits >> b) & 1]
        # The cause goes right after its evidence (the first six rules are risk and evidence).
        where = sum(1 for b in range(6) if (row_bits >> b) & 1)
        fired.insert(where, f"cause: {CAUSES[cause[i]].replace('_', ' ')}")
        fired.append(f"action: {names[chosen[i]]}")
        lists[u] = fired
    return lists[inverse.ravel()] if n else np.empty(0, dtype=object)
