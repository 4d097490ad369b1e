"""The win-back policy config: docs/domain.md's rules as data, parsed once and checked on load.

The packaged defaults live in ``churnkit/config/policy.yaml``; a shop edits a copy and loads it
with :meth:`PolicyConfig.from_yaml`. A bundle carries the config it scores with (``policy/``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from churnkit.data.contract import ACTIONS
from churnkit.errors import PolicyConfigError
from churnkit.features.contacts import RECENT_CONTACTS

#: Causes of risk the policy names (``cause`` column), in the order used by its arrays.
CAUSES = ("delivery_failure", "unresolved_complaint", "price", "forgotten", "natural", "none")
#: Causes read from evidence (the others are what remains: natural fading, or not at risk).
EVIDENCE_CAUSES = ("delivery_failure", "unresolved_complaint", "price", "forgotten")
SEGMENTS = ("prospect", "new", "repeat", "vip")
CONFIG_FILE = "policy.yaml"


@dataclass(frozen=True)
class ActionSpec:
    """One catalogue action: what contacting a customer with it costs, and how it reads.

    ``cost`` is the fixed cost per contacted customer (currency); ``value_share`` of the
    customer's value is added (compensation scales with value) and the sum clipped to
    ``[min_cost, max_cost]``.
    """

    name: str
    cost: float
    value_share: float = 0.0
    min_cost: float = 0.0
    max_cost: float = math.inf
    text: str = ""

    def cost_for(self, value: Any) -> Any:
        """Cost (currency) of contacting customers worth ``value`` (scalar or array)."""
        v = np.nan_to_num(np.asarray(value, dtype=float), nan=0.0)
        c = np.clip(self.cost + self.value_share * np.maximum(v, 0.0), self.min_cost,
                    self.max_cost)
        return float(c) if np.ndim(c) == 0 else c


@dataclass(frozen=True)
class PostponeRule:
    """docs/domain.md's decision filter: weigh value, the cause of leaving and the chance of a
    return; "When two of the three are below average, postpone."

    A cause in ``weak_causes`` counts as below average (others do not); value and P(return)
    (1 - churn probability) are compared with the averages over the at-risk customers of the
    bundle's reference population, which training fills in (``reference_value``,
    ``reference_return_probability``): fixed numbers, so a customer scored alone is decided as
    in the full run. Without them (a config not yet trained with) the rule does not apply.
    ``below_average_needed`` 0 turns it off.
    """

    below_average_needed: int = 2
    weak_causes: tuple[str, ...] = ("price", "natural")
    reference_value: float | None = None
    reference_return_probability: float | None = None

    @property
    def active(self) -> bool:
        return (self.below_average_needed > 0 and self.reference_value is not None
                and self.reference_return_probability is not None)

    def to_dict(self) -> dict:
        return {"below_average_needed": self.below_average_needed,
                "weak_causes": list(self.weak_causes), "reference_value": self.reference_value,
                "reference_return_probability": self.reference_return_probability}


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


@dataclass(frozen=True)
class ContactCaps:
    """At most ``max_messages`` messages (any channel) per customer in ``window_days`` days,
    at least ``min_gap_days`` days apart (0 turns a rule off; see :mod:`churnkit.policy.caps`)."""

    max_messages: int = 0
    window_days: float = 0.0
    min_gap_days: float = 0.0

    @property
    def counts(self) -> bool:  # the "N messages in D days" rule is on
        return self.max_messages > 0 and self.window_days > 0

    @property
    def active(self) -> bool:
        return self.counts or self.min_gap_days > 0

    def to_dict(self) -> dict:
        return {"max_messages": self.max_messages, "window_days": self.window_days,
                "min_gap_days": self.min_gap_days}


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


@dataclass(frozen=True)
class PolicyConfig:
    """The win-back policy's parameters (see ``churnkit/config/policy.yaml`` for each rule)."""

    FORMAT = 1  # the bundle part's on-disk format (churnkit.models.part.ModelPart)
    actions: dict[str, ActionSpec]
    playbook: dict[str, tuple[str, ...]]
    segment_playbook: dict[str, dict[str, tuple[str, ...]]]
    causes: dict[str, dict[str, float]]
    cause_order: tuple[str, ...]
    serial_complainer: dict[str, float]
    paid_not_received: dict[str, float]
    discount_hunter: dict[str, float]
    economic_gate_multiple: float = 3.0  # win back when value > this x the action's cost
    quiet_period_days: float = 30.0  # days without promotions after a comeback
    comeback_gap_days: float = 90.0  # an order ending a gap this long (days) is a comeback
    at_risk_percentile: float = 50.0  # below this risk percentile: not at risk, no contact
    horizon_days: int = 90  # days of value behind the economic rules without a value model
    version: int = 1  # of the config format
    postpone: PostponeRule = PostponeRule()
    contact_caps: ContactCaps = field(default_factory=ContactCaps)  # frequency caps (none)

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def default(cls) -> PolicyConfig:
        """The packaged defaults (docs/domain.md), from ``churnkit/config/policy.yaml``.

        Read once per process and shared (scoring calls this on every request): treat it as
        read-only.
        """
        return _packaged_default()

    @classmethod
    def from_yaml(cls, path: str | Path) -> PolicyConfig:
        """Read a policy config file; raises :class:`PolicyConfigError` naming a bad key."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise PolicyConfigError(f"{path}: not valid YAML ({exc})") from exc
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "policy config") -> PolicyConfig:
        """Build and check a config from parsed YAML (every problem names its key)."""
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
        if problems:
            raise PolicyConfigError(f"{source}: " + "; ".join(problems))
        return cls(
            actions=actions, playbook=playbook, segment_playbook=segment_playbook,
            causes=causes, cause_order=cause_order, serial_complainer=serial,
            paid_not_received=pnr, discount_hunter=hunter,
            economic_gate_multiple=scalars["economic_gate_multiple"],
            quiet_period_days=scalars["quiet_period_days"],
            comeback_gap_days=scalars["comeback_gap_days"],
            at_risk_percentile=scalars["at_risk_percentile"],
            horizon_days=int(scalars["horizon_days"]), version=int(data.get("version", 1)),
            postpone=postpone, contact_caps=contact_caps,
        )

    # -- use -----------------------------------------------------------------------------------
    def action_cost(self, action: str, value: Any) -> Any:
        """Cost (currency) of contacting a customer worth ``value`` with ``action``.

        ``value`` may be a scalar or an array (then an array comes back).
        """
        if action not in self.actions:
            raise KeyError(f"action {action!r} is not in the policy's catalogue "
                           f"({', '.join(self.actions)})")
        return self.actions[action].cost_for(value)

    def costs(self) -> dict[str, float]:
        """The fixed cost per contacted customer of every action (currency)."""
        return {name: a.cost for name, a in self.actions.items()}

    def candidates(self, segment: str, cause: str) -> tuple[str, ...]:
        """Actions to try, in order, for a customer of ``segment`` whose risk has ``cause``."""
        return self.segment_playbook.get(segment, {}).get(cause) or self.playbook[cause]

    # -- persistence (a bundle component) ------------------------------------------------------
    def to_dict(self) -> dict:
        """The config as plain data (what :meth:`from_dict` reads back)."""
        def action(a: ActionSpec) -> dict:
            d = {"cost": a.cost, "value_share": a.value_share, "min_cost": a.min_cost,
                 "text": a.text}
            if math.isfinite(a.max_cost):
                d["max_cost"] = a.max_cost
            return d

        return {
            "version": self.version, "horizon_days": self.horizon_days,
            "economic_gate_multiple": self.economic_gate_multiple,
            "quiet_period_days": self.quiet_period_days,
            "comeback_gap_days": self.comeback_gap_days,
            "at_risk_percentile": self.at_risk_percentile,
            "actions": {n: action(a) for n, a in self.actions.items()},
            "causes": {c: dict(v) for c, v in self.causes.items()},
            "cause_order": list(self.cause_order),
            "playbook": {c: list(v) for c, v in self.playbook.items()},
            "segment_playbook": {s: {c: list(v) for c, v in t.items()}
                                 for s, t in self.segment_playbook.items()},
            "serial_complainer": dict(self.serial_complainer),
            "paid_not_received": dict(self.paid_not_received),
            "discount_hunter": dict(self.discount_hunter),
            "postpone": self.postpone.to_dict(),
            "contact_caps": self.contact_caps.to_dict(),
        }

    def save(self, directory: Path) -> None:
        """Write ``policy.yaml`` into ``directory`` (this config, re-readable by :meth:`load`)."""
        Path(directory, CONFIG_FILE).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, directory: Path) -> PolicyConfig:
        return cls.from_yaml(Path(directory, CONFIG_FILE))


@functools.cache
def _packaged_default() -> PolicyConfig:
    text = resources.files("churnkit").joinpath("config", CONFIG_FILE).read_text()
    return PolicyConfig.from_dict(yaml.safe_load(text), source="churnkit/config/policy.yaml")
