"""The win-back policy, its config and decisions: docs/domain.md ("Whom to win back, and whom
not", "What to do").

``PolicyConfig.default()`` reads the packaged defaults (``churnkit/config/policy.yaml``);
``decide(scored, features, config, uplift=None)`` is the pure function that scoring, the batch
job, the HTTP service and the offline evaluation all call. See docs/policy.md.
"""

from churnkit.policy.causes import at_risk_rows, cause_evidence, feature_cause, infer_causes
from churnkit.policy.config import CAUSES, ActionSpec, ContactCaps, GrossMargin, PolicyConfig
from churnkit.policy.funnel import funnel_decisions
from churnkit.policy.rules import (
    POLICY_COLUMNS,
    customer_revenue,
    customer_value,
    decide,
    margin_share,
    postpone_references,
)
from churnkit.policy.segments import activity_state, lifecycle_segment
from churnkit.policy.uplift_choice import choose_by_uplift, cost_frame, cost_function

__all__ = [
    "CAUSES",
    "POLICY_COLUMNS",
    "ActionSpec",
    "ContactCaps",
    "GrossMargin",
    "PolicyConfig",
    "activity_state",
    "at_risk_rows",
    "cause_evidence",
    "choose_by_uplift",
    "cost_frame",
    "cost_function",
    "customer_revenue",
    "customer_value",
    "decide",
    "feature_cause",
    "funnel_decisions",
    "infer_causes",
    "lifecycle_segment",
    "margin_share",
    "postpone_references",
]
