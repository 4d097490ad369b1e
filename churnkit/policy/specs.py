"""The parts of a win-back policy config: the causes and segments it names, the catalogue
actions' costs, the gross margin, the decision filter (postpone) and the contact caps.

:class:`churnkit.policy.PolicyConfig` holds them; :mod:`churnkit.policy.loading` builds them from
YAML, checking every key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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


@dataclass(frozen=True)
class GrossMargin:
    """The share of revenue the shop keeps after the cost of goods (docs/policy.md "Money in
    margin"): what a customer's revenue is worth to the shop.

    ``default`` applies to revenue of any category not in ``by_category`` and to orders without
    a category; ``by_category`` maps an order category (the orders table's ``category``) to its
    share. Every share is in (0, 1]. 1.0 everywhere values customers at their revenue: what a
    config written without a ``gross_margin`` section means (the packaged config sets 0.30).
    """

    default: float = 1.0
    by_category: dict[str, float] = field(default_factory=dict)

    @property
    def uniform(self) -> bool:
        """True when every category has the default share (no per-customer mix to compute)."""
        return all(s == self.default for s in self.by_category.values())

    def share_of(self, category: object) -> float:
        """The share of ``category`` (the default for None, missing or unlisted ones)."""
        if isinstance(category, str):
            return self.by_category.get(category, self.default)
        return self.default

    def to_dict(self) -> dict:
        return {"default": self.default, "by_category": dict(self.by_category)}


@dataclass(frozen=True)
class FunnelStage:
    """One message of the reference funnel: ``action`` by ``channel`` on day ``days`` since the
    customer's last order."""

    days: float
    action: str
    channel: str

    def to_dict(self) -> dict:
        return {"days": self.days, "action": self.action, "channel": self.channel}


@dataclass(frozen=True)
class ReferenceFunnel:
    """docs/domain.md's reference automated sequence (days 30, 45, 60, 90 since the last
    purchase): the funnel shops run today, which the policy evaluation compares against
    (:mod:`churnkit.policy.funnel`); scoring never uses it. A stage is in progress from its day
    until the next stage's, the last one for ``last_stage_days`` days. No stages: no funnel."""

    stages: tuple[FunnelStage, ...] = ()
    last_stage_days: float = 30.0

    def to_dict(self) -> dict:
        return {"stages": [s.to_dict() for s in self.stages],
                "last_stage_days": self.last_stage_days}
