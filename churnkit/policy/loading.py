"""A policy config from parsed YAML: every key checked, every problem named with its key.

:func:`config_fields` turns the mapping of ``churnkit/config/policy.yaml`` (or a shop's copy) into
the fields of a :class:`churnkit.policy.PolicyConfig`; the config's ``from_dict`` and
``from_yaml`` call it and raise :class:`~churnkit.errors.PolicyConfigError` listing every
problem at once.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from churnkit.data.contract import ACTIONS, CHANNELS, SEND_ACTIONS
from churnkit.errors import PolicyConfigError
from churnkit.features.contacts import RECENT_CONTACTS
from churnkit.policy.specs import (
    CAUSES,
    EVIDENCE_CAUSES,
    SEGMENTS,
    ActionSpec,
    ContactCaps,
    FunnelStage,
    GrossMargin,
    PostponeRule,
    ReferenceFunnel,
)


def _section(data: Any, name: str, keys: Any, problems: list[str]) -> dict | None:
    """The optional mapping ``name`` of the config (None when absent or not a mapping, which is
    a problem), its keys outside ``keys`` noted as problems."""
    if data is None:
        return None
    if not isinstance(data, dict):
        problems.append(f"{name}: expected a mapping")
        return None
    unknown = set(data) - set(keys)
    if unknown:
        problems.append(f"{name}: unknown key(s) {sorted(unknown)}")
    return data


def _postpone_rule(data: Any, problems: list[str]) -> PostponeRule:
    data = _section(data, "postpone", PostponeRule().to_dict(), problems)
    if data is None:
        return PostponeRule()
    weak = data.get("weak_causes", list(PostponeRule.weak_causes))
    if not isinstance(weak, list) or not all(isinstance(c, str) for c in weak):
        problems.append(f"postpone.weak_causes: expected a list of causes, got {weak!r}")
        weak = []
    for c in weak:
        if c not in CAUSES:
            problems.append(f"postpone.weak_causes: unknown cause {c!r} (one of {list(CAUSES)})")
    needed = data.get("below_average_needed", 2)
    if isinstance(needed, bool) or not isinstance(needed, int) or not 0 <= needed <= 3:
        problems.append(f"postpone.below_average_needed: expected an integer 0-3 (of value, "
                        f"cause and probability of return), got {needed!r}")
        needed = 0
    refs: list[float | None] = []
    for key in ("reference_value", "reference_return_probability"):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not math.isfinite(value)):
            problems.append(f"postpone.{key}: expected a finite number or null, got {value!r}")
            value = None
        refs.append(None if value is None else float(value))
    return PostponeRule(needed, tuple(weak), refs[0], refs[1])


def _contact_caps(data: Any, problems: list[str]) -> ContactCaps:
    """The ``contact_caps`` section: absent = no caps (a config written before them scores as
    it did), null = a rule off; each problem, naming its key, goes to ``problems``."""
    data = _section(data, "contact_caps", ContactCaps().to_dict(), problems)
    if data is None:
        return ContactCaps()
    values: dict[str, float] = {}
    for key in ContactCaps().to_dict():
        value = data.get(key)
        value = 0 if value is None else value
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value) or value < 0:
            problems.append(f"contact_caps.{key}: expected a number >= 0 or null (off), got "
                            f"{value!r}")
            value = 0
        values[key] = value
    n = values["max_messages"]
    if n != int(n) or n > RECENT_CONTACTS:
        problems.append(f"contact_caps.max_messages: expected a whole number 0-{RECENT_CONTACTS} "
                        f"(the contacts features keep the {RECENT_CONTACTS} most recent "
                        f"messages), got {n!r}")
        n = 0
    return ContactCaps(int(n), float(values["window_days"]), float(values["min_gap_days"]))


def _share(value: Any, key: str, problems: list[str]) -> float | None:
    """A margin share in (0, 1], or None after noting the problem under ``key``."""
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or not 0 < value <= 1:
        problems.append(f"{key}: expected a share of revenue in (0, 1], got {value!r}")
        return None
    return float(value)


def _gross_margin(data: Any, problems: list[str]) -> GrossMargin:
    """The ``gross_margin`` section: absent = 1.0 (value in revenue, as a config written before
    margins scored); each problem, naming its key, goes to ``problems``."""
    data = _section(data, "gross_margin", ("default", "by_category"), problems)
    if data is None:
        return GrossMargin()
    default = _share(data.get("default", GrossMargin.default), "gross_margin.default", problems)
    table = data.get("by_category") or {}
    if not isinstance(table, dict):
        problems.append(f"gross_margin.by_category: expected a mapping category -> share, got "
                        f"{table!r}")
        table = {}
    by_category: dict[str, float] = {}
    for category, value in table.items():
        share = _share(value, f"gross_margin.by_category.{category}", problems)
        if share is not None:
            by_category[str(category)] = share
    return GrossMargin(default if default is not None else GrossMargin.default, by_category)


def _number(value: Any, key: str, problems: list[str], *, low: float = 0.0) -> float | None:
    """A finite number >= ``low``, or None after noting the problem under ``key``."""
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value < low:
        problems.append(f"{key}: expected a number >= {low:g}, got {value!r}")
        return None
    return float(value)


def _reference_funnel(data: Any, problems: list[str]) -> ReferenceFunnel:
    """The ``reference_funnel`` section: absent = no funnel to compare against; stages need a
    day, a sending action and a channel, in increasing days."""
    data = _section(data, "reference_funnel", ("stages", "last_stage_days"), problems)
    if data is None:
        return ReferenceFunnel()
    raw = data.get("stages") or []
    if not isinstance(raw, list):
        problems.append(f"reference_funnel.stages: expected a list, got {raw!r}")
        raw = []
    stages = []
    for i, stage in enumerate(raw):
        key = f"reference_funnel.stages[{i}]"
        if not isinstance(stage, dict) or set(stage) != {"days", "action", "channel"}:
            problems.append(f"{key}: expected a mapping with days, action and channel, got "
                            f"{stage!r}")
            continue
        days = _number(stage["days"], f"{key}.days", problems)
        if stage["action"] not in SEND_ACTIONS:
            problems.append(f"{key}.action: expected a sending action of {list(SEND_ACTIONS)}, "
                            f"got {stage['action']!r}")
        if stage["channel"] not in CHANNELS:
            problems.append(f"{key}.channel: expected one of {list(CHANNELS)}, got "
                            f"{stage['channel']!r}")
        if days is not None:
            stages.append(FunnelStage(days, str(stage["action"]), str(stage["channel"])))
    if any(a.days >= b.days for a, b in itertools.pairwise(stages)):
        problems.append("reference_funnel.stages: days must increase from stage to stage")
    last = _number(data.get("last_stage_days", 30.0), "reference_funnel.last_stage_days",
                   problems)
    return ReferenceFunnel(tuple(stages), 30.0 if last is None else last)


def config_fields(data: Any, *, source: str = "policy config") -> dict[str, Any]:
    """The checked fields of a :class:`~churnkit.policy.PolicyConfig` from parsed YAML; raises
    :class:`PolicyConfigError` naming ``source`` and every bad key."""
    if not isinstance(data, dict):
        raise PolicyConfigError(f"{source}: expected a mapping at the top level")
    problems: list[str] = []

    def need(key: str) -> Any:
        if key not in data:
            problems.append(f"missing key '{key}'")
            return {}
        return data[key]

    actions: dict[str, ActionSpec] = {}
    for name, spec in (need("actions") or {}).items():
        if name not in ACTIONS:
            problems.append(f"actions.{name}: not a catalogue action (one of {list(ACTIONS)})")
            continue
        if not isinstance(spec, dict) or "cost" not in spec:
            problems.append(f"actions.{name}: expected a mapping with 'cost'")
            continue
        try:
            actions[name] = ActionSpec(
                name=name, cost=float(spec["cost"]),
                value_share=float(spec.get("value_share", 0.0)),
                min_cost=float(spec.get("min_cost", 0.0)),
                max_cost=float(spec.get("max_cost", math.inf)),
                text=str(spec.get("text", name.replace("_", " "))))
        except (TypeError, ValueError):
            problems.append(f"actions.{name}: cost, value_share, min_cost, max_cost must be "
                            "numbers")
            continue
        a = actions[name]
        if a.cost < 0 or a.value_share < 0 or a.min_cost > a.max_cost:
            problems.append(f"actions.{name}: costs must be >= 0 and min_cost <= max_cost")
    if "do_not_contact" not in actions:
        actions["do_not_contact"] = ActionSpec("do_not_contact", 0.0, text="no contact")

    def action_list(key: str, value: Any) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else list(value or [])
        for a in items:
            if a not in actions:
                problems.append(f"{key}: action {a!r} is not in 'actions'")
        return tuple(items) or ("do_not_contact",)

    playbook = {c: action_list(f"playbook.{c}", v) for c, v in (need("playbook") or {}).items()}
    for cause in CAUSES:
        if cause not in playbook:
            problems.append(f"playbook.{cause}: missing (every cause needs its actions)")
    for c in playbook:
        if c not in CAUSES:
            problems.append(f"playbook.{c}: unknown cause (one of {list(CAUSES)})")
    segment_playbook: dict[str, dict[str, tuple[str, ...]]] = {}
    for seg, table in (data.get("segment_playbook") or {}).items():
        if seg not in SEGMENTS:
            problems.append(f"segment_playbook.{seg}: unknown segment (one of "
                            f"{list(SEGMENTS)})")
            continue
        segment_playbook[seg] = {}
        for c, v in (table or {}).items():
            if c not in CAUSES:
                problems.append(f"segment_playbook.{seg}.{c}: unknown cause")
            segment_playbook[seg][c] = action_list(f"segment_playbook.{seg}.{c}", v)
    cause_order = tuple(data.get("cause_order", EVIDENCE_CAUSES))
    if sorted(cause_order) != sorted(EVIDENCE_CAUSES):
        problems.append(f"cause_order: expected each of {list(EVIDENCE_CAUSES)} once")

    def numbers(key: str, required: tuple[str, ...]) -> dict[str, float]:
        table = need(key) or {}
        out = {}
        for k in required:
            if k not in table:
                problems.append(f"{key}.{k}: missing")
                continue
            try:
                out[k] = float(table[k])
            except (TypeError, ValueError):
                problems.append(f"{key}.{k}: expected a number, got {table[k]!r}")
        return out

    causes_raw = need("causes") or {}
    causes = {}
    required = {
        "delivery_failure": ("lookback_days",),
        "unresolved_complaint": ("min_unresolved", "low_satisfaction", "lookback_days"),
        "price": ("min_abandoned_checkouts_90d", "min_delivery_cost_share",
                  "min_discounted_order_share", "min_price_tickets_365d"),
        "forgotten": ("max_orders", "min_days_since_last_order"),
    }
    for cause, keys in required.items():
        table = causes_raw.get(cause)
        if not isinstance(table, dict):
            problems.append(f"causes.{cause}: missing")
            continue
        causes[cause] = {}
        for k in keys:
            try:
                causes[cause][k] = float(table[k])
            except KeyError:
                problems.append(f"causes.{cause}.{k}: missing")
            except (TypeError, ValueError):
                problems.append(f"causes.{cause}.{k}: expected a number")
    serial = numbers("serial_complainer",
                     ("min_tickets", "min_tickets_per_order", "min_compensated_tickets"))
    pnr = numbers("paid_not_received", ("lookback_days", "priority_boost"))
    waive = (data.get("paid_not_received") or {}).get("waive_gate", True)
    if not isinstance(waive, bool):
        problems.append(f"paid_not_received.waive_gate: expected true or false, got {waive!r}")
        waive = True
    pnr["waive_gate"] = float(waive)
    hunter = numbers("discount_hunter",
                     ("min_discounted_order_share", "min_orders", "priority_factor"))
    scalars = {}
    for key, default in (("economic_gate_multiple", 3.0), ("quiet_period_days", 30.0),
                         ("comeback_gap_days", 90.0), ("at_risk_percentile", 50.0),
                         ("horizon_days", 90)):
        try:
            scalars[key] = float(data.get(key, default))
        except (TypeError, ValueError):
            problems.append(f"{key}: expected a number, got {data.get(key)!r}")
    if scalars.get("economic_gate_multiple", 1.0) < 1.0:
        problems.append("economic_gate_multiple: must be >= 1 (docs/domain.md: never act "
                        "when value < cost)")
    postpone = _postpone_rule(data.get("postpone"), problems)
    contact_caps = _contact_caps(data.get("contact_caps"), problems)
    gross_margin = _gross_margin(data.get("gross_margin"), problems)
    funnel = _reference_funnel(data.get("reference_funnel"), problems)
    if problems:
        raise PolicyConfigError(f"{source}: " + "; ".join(problems))
    return dict(
        actions=actions, playbook=playbook, segment_playbook=segment_playbook,
        causes=causes, cause_order=cause_order, serial_complainer=serial,
        paid_not_received=pnr, discount_hunter=hunter,
        economic_gate_multiple=scalars["economic_gate_multiple"],
        quiet_period_days=scalars["quiet_period_days"],
        comeback_gap_days=scalars["comeback_gap_days"],
        at_risk_percentile=scalars["at_risk_percentile"],
        horizon_days=int(scalars["horizon_days"]), version=int(data.get("version", 1)),
        postpone=postpone, contact_caps=contact_caps, gross_margin=gross_margin,
        reference_funnel=funnel,
    )
