"""The win-back policy: a pure, vectorized function from scores and features to decisions.

:func:`decide` applies docs/domain.md's rules as configured in a :class:`PolicyConfig`:

1. **Cause** of risk per customer (:mod:`churnkit.policy.causes`).
2. **Do not contact**: no consent on any channel, unsubscribed, serial complainer, came back
   less than ``quiet_period_days`` ago (these hold whatever else is true).
3. **Paid but not received** (known within the lookback): front of the queue, no economic gate.
4. **Action**: the playbook's candidates for the customer's segment and cause, in order; the
   first whose cost passes the **economic gate** (value > ``economic_gate_multiple`` × cost;
   compensation scales with value) is chosen, else no contact (value below cost, or the gate).
5. With an **uplift** model, among the actions allowed by rules 2 and the gate, the one with the
   highest ``uplift × value − cost``; no contact when none is positive.
6. **Contact caps** (:mod:`churnkit.policy.caps`): a customer rules 4-5 would contact now but
   who had ``max_messages`` messages in the last ``window_days`` days, or one less than
   ``min_gap_days`` ago, gets no contact now and ``contact_date`` on the first day the caps
   allow (the timing model's day when that is later). A paid order never received is answered
   at once: the caps do not hold back the first message after it became known.

Each row gets ``cause``, ``action``, ``action_reason`` (plain words with numbers),
``policy_trace`` (the rules that fired), ``priority``, ``action_cost``,
``expected_incremental_profit`` and ``margin_share``. The customer's value is in margin
(docs/policy.md "Money in margin"): revenue (``value_if_returned`` from the bundle's value
model when scoring has it, else the mean basket × the orders expected in the config's horizon
at last year's pace, at least one basket) × the customer's gross-margin share (``margin_share``
of ``scored`` when present, else the config's default). Actions' value-scaled costs read the
revenue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import pandas as pd

from churnkit.data.columns import FeatureColumns, nan_to_zero
from churnkit.data.contract import CHANNELS, as_utc_timestamp
from churnkit.data.frames import require_columns
from churnkit.policy.caps import cap_waits, first_allowed_day, messages_in_window
from churnkit.policy.causes import RowContributions, at_risk_rows, column, infer_causes
from churnkit.policy.config import CAUSES, EVIDENCE_CAUSES, PolicyConfig
from churnkit.policy.playbook import DNC, playbook, segment_codes
from churnkit.policy.segments import lifecycle_segment
from churnkit.policy.text import action_reasons, cap_texts, traces

POLICY_COLUMNS = ("cause", "action", "action_reason", "policy_trace", "priority", "action_cost",
                  "expected_incremental_profit", "margin_share")
#: Feature columns the policy cannot work without (consent and purchases families).
REQUIRED_FEATURES = ("orders_lifetime", "days_since_last_order", "mean_basket", "unsubscribed")
#: What docs/domain.md's decision filter compares with the average (see :func:`_postponed`).
BELOW_AVERAGE = ("value", "cause", "return")


def customer_revenue(scored: pd.DataFrame | Mapping[str, np.ndarray],
                     features: pd.DataFrame | FeatureColumns, config: PolicyConfig) -> np.ndarray:
    """Revenue (currency) of a customer who comes back, over the horizon.

    ``value_if_returned`` from the bundle's value model when present; else the mean basket ×
    max(1, orders in the last 365 days × horizon / 365). The actions' value-scaled costs read
    this (compensation is sized against what the customer spends).
    """
    if "value_if_returned" in scored:  # a column of the frame, or a key of the mapping
        return nan_to_zero(_floats(scored["value_if_returned"]))
    basket = nan_to_zero(column(features, "mean_basket"))
    pace = column(features, "orders_365d", 0.0) * config.horizon_days / 365.0
    return basket * np.maximum(1.0, nan_to_zero(pace))


def margin_share(scored: pd.DataFrame | Mapping[str, np.ndarray], n: int,
                 config: PolicyConfig) -> np.ndarray:
    """Each customer's gross-margin share (0-1]: ``scored["margin_share"]`` when scoring
    computed it (the revenue-weighted category mix, :func:`churnkit.features.margin_shares`),
    else, and where it is missing, the config's ``gross_margin.default``."""
    default = config.gross_margin.default
    if "margin_share" in scored:
        share = _floats(scored["margin_share"])
        return np.where(np.isnan(share), default, share)
    return np.full(n, default)


def customer_value(scored: pd.DataFrame | Mapping[str, np.ndarray],
                   features: pd.DataFrame | FeatureColumns, config: PolicyConfig) -> np.ndarray:
    """Margin (currency) of a customer who comes back, over the horizon: :func:`customer_revenue`
    × :func:`margin_share`, what the gate, uplift and the decision filter weigh (docs/policy.md
    "Money in margin")."""
    revenue = customer_revenue(scored, features, config)
    return revenue * margin_share(scored, len(revenue), config)


def _floats(values: object) -> np.ndarray:
    """Numbers as float64 (anything else NaN)."""
    if isinstance(values, np.ndarray) and values.dtype == np.float64:
        return values
    return np.asarray(pd.to_numeric(values, errors="coerce"), dtype=float)


def postpone_references(scored: pd.DataFrame, features: pd.DataFrame,
                        config: PolicyConfig) -> PolicyConfig:
    """``config`` with the decision filter's averages taken from a reference population.

    ``scored`` (``churn_probability``, ``risk_percentile``, optionally ``value_if_returned``)
    and ``features`` are that population scored as of one date; the averages are the mean
    customer value and mean P(return) = 1 - churn probability of its at-risk customers (those the
    filter is applied to). Training calls it once and the bundle carries the result.
    """
    f = features.reindex(scored.index)
    at_risk = at_risk_rows(scored["risk_percentile"].to_numpy(dtype=float), f, config)
    if not at_risk.any():
        return config
    value = customer_value(scored, f, config)[at_risk]
    p_return = 1.0 - scored["churn_probability"].to_numpy(dtype=float)[at_risk]
    rule = replace(config.postpone, reference_value=round(float(np.mean(value)), 2),
                   reference_return_probability=round(float(np.mean(p_return)), 4))
    return replace(config, postpone=rule)


def _postponed(config: PolicyConfig, contact: np.ndarray, pnr: np.ndarray, value: np.ndarray,
               p_churn: np.ndarray, cause: np.ndarray
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """docs/domain.md's decision filter: rows the rules would contact where at least
    ``below_average_needed`` of value, cause and P(return) are below average; and which ones
    were below. Paid-not-received is never postponed."""
    rule = config.postpone
    n = len(contact)
    if not rule.active:
        return np.zeros(n, dtype=bool), {k: np.zeros(n, dtype=bool) for k in BELOW_AVERAGE}
    weak = (cause[:, None] == np.array([CAUSES.index(c) for c in rule.weak_causes],
                                       dtype=np.int64)[None, :]).any(axis=1)
    below = {"value": value < rule.reference_value, "cause": weak,
             "return": (1.0 - p_churn) < rule.reference_return_probability}
    count = sum(b.astype(np.int64) for b in below.values())
    return contact & ~pnr & (count >= rule.below_average_needed), below


def _check(scored: pd.DataFrame, features: pd.DataFrame) -> None:
    missing = [c for c in ("churn_probability", "risk_percentile") if c not in scored.columns]
    if missing:
        raise ValueError(f"decide: the scored frame lacks {missing} (expected the output of "
                         "churnkit.scoring.score.score_features)")
    require_columns(features, REQUIRED_FEATURES, needed_by="the policy (purchases, consent)")
    absent = scored.index.difference(features.index)
    if len(absent):
        raise ValueError(f"decide: {len(absent)} scored customers have no feature row, e.g. "
                         f"customer_id {list(absent[:5])}")


def decide(scored: pd.DataFrame, features: pd.DataFrame, config: PolicyConfig,
           uplift: pd.DataFrame | None = None, *,
           contributions: pd.DataFrame | None = None, as_of: object | None
           ) -> pd.DataFrame:
    """The win-back decision for every scored customer (pure: inputs are not modified).

    Parameters
    ----------
    scored
        Index ``customer_id``: ``churn_probability``, ``risk_percentile`` and, when present,
        ``segment``, ``value_if_returned`` (revenue over the horizon, currency) and
        ``margin_share`` (the customer's gross-margin share; default: the config's).
    features
        The feature frame the scores came from (index ``customer_id``; as of the same date).
    config
        The policy (:meth:`PolicyConfig.default` for docs/domain.md's defaults).
    uplift
        Optional, index ``customer_id``, one column per action: predicted increase in
        P(return within the horizon) if contacted with it rather than not.
    contributions
        Optional per-row SHAP values of the churn model (columns = features + ``bias``), used
        to pick the cause among several with evidence.
    as_of
        The scoring cutoff (required keyword; naive = UTC) the features were built at: the
        contact caps' dates count from it. ``None`` when it is not known: a capped customer's
        reason then gives the days to wait and ``contact_date`` is not set (an error when
        ``scored`` has one from a timing model).

    Returns
    -------
    pandas.DataFrame
        ``scored`` plus :data:`POLICY_COLUMNS`; with contact caps and a known ``as_of`` also
        ``contact_date`` (added as empty when ``scored`` has none), moved to the first day the
        caps allow for the customers they hold back.
    """
    _check(scored, features)
    caps = config.contact_caps
    if caps.active and as_of is None and "contact_date" in scored.columns:
        raise ValueError("decide: the contact caps move contact_date and need as_of (the "
                         "features' cutoff)")
    # Without ``attrs``: pandas deep-copies them (e.g. the population fit) on every column read.
    # A shallow copy shares the columns (rebuilding the frame is slow for one customer).
    f = features
    if f.attrs:
        f = f.copy(deep=False)
        f.attrs = {}
    if not f.index.equals(scored.index):
        f = f.reindex(scored.index)
    if uplift is not None:
        uplift = uplift.reindex(scored.index)
    columns = decide_columns(scored, FeatureColumns.from_frame(f), config, uplift,
                             contributions=contributions, as_of=as_of)
    out = scored.copy()
    for name, values in columns.items():
        out[name] = values
    return out


def decide_columns(scored: pd.DataFrame | Mapping[str, np.ndarray],
                   features: pd.DataFrame | FeatureColumns, config: PolicyConfig,
                   uplift: pd.DataFrame | Mapping[str, np.ndarray] | None = None, *,
                   contributions: pd.DataFrame | RowContributions | None = None,
                   as_of: object | None) -> dict[str, object]:
    """:func:`decide` on columns: the same decisions, as arrays, for rows already aligned.

    ``scored`` (a frame or a mapping of arrays) holds :func:`decide`'s inputs of the same
    name, ``features`` and ``uplift`` (one array per action) their rows in the same order;
    nothing is checked or re-aligned here. Returns :data:`POLICY_COLUMNS` (and, with contact
    caps and a known ``as_of``, ``contact_date`` first), each an array, a list per row or a
    pandas extension array, in :func:`decide`'s order and dtypes.
    """
    caps = config.contact_caps
    f = features
    n = len(f)
    rows = np.arange(n)
    revenue = customer_revenue(scored, f, config)
    share = margin_share(scored, n, config)
    value = revenue * share  # margin: what the gate, uplift and the filter weigh
    p_churn = np.asarray(scored["churn_probability"], dtype=float)
    pct = np.asarray(scored["risk_percentile"], dtype=float)
    if "segment" in scored:
        segment = np.asarray(scored["segment"], dtype=object)
    else:
        segment = lifecycle_segment(f)
    seg_code = segment_codes(segment)
    book = playbook(config)

    # -- who may not be contacted at all (docs/domain.md "What to do": no contact) ------------
    if "allowed_channels" in f.columns:
        allowed = column(f, "allowed_channels", 0.0)
    else:
        allowed = sum(column(f, f"can_contact_{ch}", 0.0) for ch in CHANNELS)
    no_consent = ~(allowed > 0)  # NaN compares False, as the 0 it stood for
    unsubscribed = column(f, "unsubscribed", 0.0) > 0
    s = config.serial_complainer
    with np.errstate(invalid="ignore"):
        serial = ((column(f, "tickets_lifetime", 0.0) >= s["min_tickets"])
                  & (column(f, "tickets_per_order", 0.0) >= s["min_tickets_per_order"])
                  & (column(f, "compensated_tickets", 0.0) >= s["min_compensated_tickets"]))
        q = config.quiet_period_days
        since_order = column(f, "days_since_last_order")
        quiet = ((column(f, "days_since_last_comeback") < q)
                 | ((column(f, "gap_last_days") >= config.comeback_gap_days) & (since_order < q)))
        pnr = column(f, "days_since_paid_not_received") <= config.paid_not_received["lookback_days"]
        h = config.discount_hunter
        hunter = ((column(f, "discounted_order_share") >= h["min_discounted_order_share"])
                  & (column(f, "orders_lifetime", 0.0) >= h["min_orders"]))
    quiet &= ~pnr  # an apology for a lost parcel is not a promotional mailing
    # docs/domain.md "Whom to win back, and whom not" puts them first: by default their apology
    # passes whatever it costs (waive_gate); a shop that prices it can let the gate, and the
    # uplift, decide for them too
    waive = pnr & bool(config.paid_not_received.get("waive_gate", 1.0))
    hard = no_consent | unsubscribed | serial | quiet
    at_risk = at_risk_rows(pct, f, config)
    cause, evidence = infer_causes(f, at_risk, config, contributions)

    # -- the rules' choice: playbook candidates through the economic gate ----------------------
    names = book.names
    dnc = book.dnc
    cost = book.costs(revenue)  # value-scaled offers are sized against revenue
    passes = value[:, None] > config.economic_gate_multiple * cost
    cand, by_segment = book.candidates(seg_code, cause)
    width = cand.shape[1]
    chosen = np.full(n, dnc, dtype=np.int64)
    decided = np.zeros(n, dtype=bool)
    gate_failed = np.zeros((n, len(names)), dtype=bool)
    cheapest = np.full(n, np.inf)
    for j in range(width):
        a = cand[:, j]
        live = (a >= 0) & ~decided
        stop = live & (a == dnc)
        decided |= stop
        real = live & ~stop
        a_ = np.maximum(a, 0)
        ok = real & (passes[rows, a_] | waive)
        chosen[ok] = a[ok]
        decided |= ok
        failed = real & ~ok
        gate_failed[rows[failed], a[failed]] = True
        cheapest[failed] = np.minimum(cheapest[failed], cost[rows[failed], a[failed]])
    gated = gate_failed.any(axis=1) & (chosen == dnc)
    below_cost = gated & (value < cheapest)
    chosen[hard] = dnc
    postponed, below_avg = _postponed(config, chosen != dnc, pnr, value, p_churn, cause)
    chosen[postponed] = dnc

    # -- the uplift choice: highest uplift × value − cost among allowed actions ---------------
    profit = np.full(n, np.nan)
    by_rules = np.ones(n, dtype=bool)  # rows whose action the rules (not uplift) chose
    uplift_choice = uplift_none = uplift_missing = np.zeros(n, dtype=bool)
    if uplift is not None:
        u = uplift
        offered = [a for a in names if a != DNC and a in u]
        if not offered:
            raise ValueError(f"decide: the uplift frame has no column for any action of the "
                             f"policy ({', '.join(a for a in names if a != DNC)}); it has "
                             f"{list(uplift)}")
        idx = np.array([names.index(a) for a in offered])
        U = np.column_stack([np.asarray(u[a], dtype=float) for a in offered])
        gain = U * value[:, None] - cost[:, idx]
        eligible = passes[:, idx] & ~np.isnan(U) & ~hard[:, None]
        masked = np.where(eligible, gain, -np.inf)
        best = np.argmax(masked, axis=1) if n else np.zeros(0, dtype=np.int64)
        best_gain = masked[rows, best] if n else np.zeros(0)
        uplift_missing = np.isnan(U).all(axis=1) & ~hard
        use = ~uplift_missing & ~waive
        by_rules = ~use
        pays = best_gain > 0
        chosen = np.where(use, np.where(pays, idx[best], dnc), chosen)
        uplift_choice = use & pays
        uplift_none = use & ~pays & ~hard
        # The expected incremental profit of what was chosen (0 for no contact).
        lookup = np.full(len(names), -1)
        lookup[idx] = np.arange(len(idx))
        col = lookup[chosen]
        has = (col >= 0) & (chosen != dnc)
        profit = np.zeros(n)
        profit[has] = gain[rows[has], col[has]]
        profit = np.where(np.isnan(profit), 0.0, profit)

    # -- the contact caps: what the rules or uplift would send now, the caps may hold back ------
    count_wait, gap_wait = cap_waits(f, caps)
    blocked = (chosen != dnc) & ((count_wait > 0) | (gap_wait > 0))
    # docs/domain.md: paid but not received, "reach them at once": the first message after the
    # failure became known goes out whatever the caps; later ones keep to them.
    with np.errstate(invalid="ignore"):
        told = column(f, "days_since_last_contact") < column(f, "days_since_paid_not_received")
    waived = blocked & pnr & ~told
    capped = blocked & ~waived
    chosen[capped] = dnc
    if uplift is not None:
        profit[capped] = 0.0
    wait = np.maximum(count_wait, gap_wait)

    contact = chosen != dnc
    action_cost = np.where(contact, cost[rows, chosen] if n else 0.0, 0.0)
    base = profit if uplift is not None else p_churn * value
    base = np.where(hunter, base * h["priority_factor"], base)
    priority = np.where(contact, np.maximum(base, 0.0)
                        + np.where(pnr, config.paid_not_received["priority_boost"], 0.0), 0.0)

    postponed &= by_rules  # where uplift decided, its expected profit replaces the filter
    flags = {
        "at_risk": at_risk, "not_at_risk": ~at_risk, "paid_not_received": pnr & ~hard,
        "no_consent": no_consent, "unsubscribed": unsubscribed, "serial": serial,
        "quiet": quiet, "hunter": hunter & contact, "segment_playbook": by_segment & ~hard,
        "value_below_cost": below_cost & ~hard & ~contact & by_rules,
        "gate": gated & ~below_cost & ~hard & ~contact & by_rules,
        "uplift_choice": uplift_choice,
        "uplift_none": uplift_none, "uplift_missing": uplift_missing,
        "postponed": postponed, "capped": capped, "cap_count": capped & (count_wait > 0),
        "cap_gap": capped & (gap_wait > 0), "cap_waived": waived,
        **{f"below_average:{k}": below_avg[k] & postponed for k in BELOW_AVERAGE},
        **{f"evidence:{c}": evidence[c] & at_risk for c in EVIDENCE_CAUSES},
    }
    out: dict[str, object] = {}
    day = None
    if caps.active and as_of is not None:
        planned = scored["contact_date"] if "contact_date" in scored else None
        if planned is None or capped.any():
            day = first_allowed_day(as_utc_timestamp(as_of), wait[capped])
        out["contact_date"] = _contact_dates(planned, capped, day)
    held = capped.any()  # the messages in the window are read for a reason only
    cap_reason = cap_texts(capped, count_wait >= gap_wait,
                           messages_in_window(f, caps) if held else np.zeros(n, np.int64),
                           column(f, "days_since_last_contact"), wait, day, config)
    out["cause"] = np.asarray(CAUSES, dtype=object)[cause]
    out["action"] = np.asarray(names, dtype=object)[chosen]
    out["action_reason"] = action_reasons(f, cause, out["action"], pct,
                                          flags, value, action_cost, config, names, cheapest,
                                          p_churn, cap_reason)
    out["policy_trace"] = traces(flags, cause, seg_code, chosen, gate_failed, names, config)
    out["priority"] = priority
    out["action_cost"] = np.round(action_cost, 2)
    out["expected_incremental_profit"] = profit
    out["margin_share"] = share
    return out


def _contact_dates(planned: object, capped: np.ndarray, day: pd.DatetimeIndex | None
                   ) -> pd.api.extensions.ExtensionArray:
    """``contact_date`` under the caps: for a capped row the later of the planned day and the
    caps' first allowed ``day`` (NaT compares False: the caps'), else the planned day (NaT
    without a plan; the dtype of the plan, or of ``day``: needed when nobody is capped only
    without a plan)."""
    n = len(capped)
    if planned is not None and not capped.any():
        return planned.array if isinstance(planned, pd.Series | pd.Index) else pd.array(planned)
    if planned is None:
        planned = pd.Series(pd.NaT, index=pd.RangeIndex(n), dtype=day.dtype)
    else:
        planned = pd.Series(pd.array(planned), index=pd.RangeIndex(n))
    allowed = pd.Series(pd.NaT, index=planned.index, dtype=planned.dtype)
    allowed.iloc[np.flatnonzero(capped)] = day
    return planned.where(~capped | (planned > allowed), allowed).array
