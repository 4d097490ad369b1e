"""The win-back policy config: docs/domain.md's rules as data, parsed once and checked on load.

The packaged defaults live in ``churnkit/config/policy.yaml``; a shop edits a copy and loads it
with :meth:`PolicyConfig.from_yaml`. A bundle carries the config it scores with (``policy/``).
The config's parts (actions, the postpone rule, the contact caps, the causes and segments it
names, the gross margin) are in :mod:`churnkit.policy.specs`, the checks of a YAML file in
:mod:`churnkit.policy.loading`; their names are importable from here too.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from churnkit.errors import PolicyConfigError
from churnkit.policy.loading import config_fields
from churnkit.policy.specs import (
    CAUSES,
    CONFIG_FILE,
    EVIDENCE_CAUSES,
    SEGMENTS,
    ActionSpec,
    ContactCaps,
    GrossMargin,
    PostponeRule,
    ReferenceFunnel,
)


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
    postpone: PostponeRule = field(default_factory=PostponeRule)
    contact_caps: ContactCaps = field(default_factory=ContactCaps)  # frequency caps (none)
    gross_margin: GrossMargin = field(default_factory=GrossMargin)  # share of revenue kept
    #: the funnel shops run today, the evaluation's alternative to beat (never scores)
    reference_funnel: ReferenceFunnel = field(default_factory=ReferenceFunnel)

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
        """Build and check a config from parsed YAML (every problem names its key; see
        :func:`churnkit.policy.loading.config_fields`)."""
        return cls(**config_fields(data, source=source))

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
            "paid_not_received": {k: (bool(v) if k == "waive_gate" else v)
                                  for k, v in self.paid_not_received.items()},
            "discount_hunter": dict(self.discount_hunter),
            "postpone": self.postpone.to_dict(),
            "contact_caps": self.contact_caps.to_dict(),
            "gross_margin": self.gross_margin.to_dict(),
            "reference_funnel": self.reference_funnel.to_dict(),
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


__all__ = [
    "CAUSES",
    "CONFIG_FILE",
    "EVIDENCE_CAUSES",
    "SEGMENTS",
    "ActionSpec",
    "ContactCaps",
    "GrossMargin",
    "PolicyConfig",
    "PostponeRule",
]
