"""The funnel shops run today (docs/domain.md "What to do": the reference automated sequence), as
the alternative the policy evaluation compares churnkit's policies with.

By days since the customer's last order ``d`` (``days_since_last_order``), the stage in progress
is the last one whose day is at most ``d``, until the next stage's day (the last stage for
``last_stage_days``): e.g. ``d`` = 50 is day 45's SMS with a 15% code. It sends that stage's
action by that stage's channel when the customer consented to the channel
(``can_contact_<channel>``: consented and not unsubscribed) and the contact caps allow a message
now (:func:`churnkit.policy.caps.cap_waits`); otherwise, and before the first stage, after the
last, or without an order, it sends nothing. It reads no model: that is the point of it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnkit.data.frames import require_columns
from churnkit.policy.caps import cap_waits
from churnkit.policy.config import PolicyConfig

#: Why the funnel sent nothing, per row (``funnel_decisions``' ``reason``).
NOT_IN_A_STAGE = "not in a funnel stage"
NO_CONSENT = "no consent to the stage's channel"
CAPPED = "contact caps"


def funnel_decisions(features: pd.DataFrame, config: PolicyConfig) -> pd.DataFrame:
    """Per customer (``features``' index): the funnel's ``action`` (``do_not_contact`` when it
    sends nothing), ``channel``, ``stage_day`` and ``reason`` (the stage, or why nothing)."""
    stages = config.reference_funnel.stages
    n = len(features)
    action = np.full(n, "do_not_contact", dtype=object)
    channel = np.full(n, None, dtype=object)
    stage_day = np.full(n, np.nan)
    reason = np.full(n, NOT_IN_A_STAGE, dtype=object)
    if not stages or n == 0:
        return _frame(features.index, action, channel, stage_day, reason)
    require_columns(features, ("days_since_last_order",), needed_by="the reference funnel")
    d = pd.to_numeric(features["days_since_last_order"], errors="coerce").to_numpy(dtype=float)
    starts = np.array([s.days for s in stages])
    ends = np.r_[starts[1:], starts[-1] + config.reference_funnel.last_stage_days]
    with np.errstate(invalid="ignore"):
        k = np.searchsorted(starts, d, side="right") - 1  # the last stage started by d
        inside = (k >= 0) & ~np.isnan(d) & (d < ends[np.clip(k, 0, len(stages) - 1)])
    count_wait, gap_wait = cap_waits(features, config.contact_caps)
    capped = (count_wait > 0) | (gap_wait > 0)
    for i, stage in enumerate(stages):
        rows = inside & (k == i)
        consent = f"can_contact_{stage.channel}"
        allowed = (features[consent].fillna(False).to_numpy(dtype=bool)
                   if consent in features.columns else np.zeros(n, dtype=bool))
        send = rows & allowed & ~capped
        action[send], channel[send], stage_day[rows] = stage.action, stage.channel, stage.days
        reason[send] = f"day {stage.days:g} of the funnel: {stage.action} by {stage.channel}"
        reason[rows & ~allowed] = NO_CONSENT
        reason[rows & allowed & capped] = CAPPED
    return _frame(features.index, action, channel, stage_day, reason)


def _frame(index: pd.Index, action, channel, stage_day, reason) -> pd.DataFrame:
    return pd.DataFrame({"action": action, "channel": channel, "stage_day": stage_day,
                         "reason": reason}, index=index)
