"""The win-back policy (DOMAIN.md "Whom to win back", "What to do"): config and decisions.

``PolicyConfig.default()`` reads the packaged defaults (``churnkit/config/policy.yaml``);
``decide(scored, features, config, uplift=None)`` is the pure function that scoring, the batch
job, the HTTP service and the offline evaluation all call. See docs/policy.md.
"""

from churnkit.policy.causes import cause_evidence, feature_cause, infer_causes
from churnkit.policy.config import (
    CAUSES,
    ActionSpec,
    PolicyConfig,
    PolicyConfigError,
)
from churnkit.policy.rules import POLICY_COLUMNS, customer_value, decide, postpone_references

__all__ = [
    "CAUSES",
    "POLICY_COLUMNS",
    "ActionSpec",
    "PolicyConfig",
    "PolicyConfigError",
    "cause_evidence",
    "customer_value",
    "decide",
    "feature_cause",
    "infer_causes",
    "postpone_references",
]
