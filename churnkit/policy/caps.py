"""Contact caps: at most N messages per customer in D days over all channels, and a minimum gap
between two win-back messages, counted from the shop's ``contacts`` table at ``as_of``.

docs/domain.md names no message frequency; the packaged numbers (``policy.yaml: contact_caps``) are
the shop's frequency-cap defaults. Only messages sent (the treatment group) strictly before
``as_of`` count, on every channel, read from the contacts features' ages of the most recent
messages (:data:`churnkit.features.contacts.RECENT_CONTACTS` of them). A message sent at ``s``
counts against the window for ``window_days`` days: from ``s + window_days`` on it no longer
does. After the last message sent at ``s``, the next may go from ``s + min_gap_days`` on. A
shop without a contacts table has sent nothing on record: nothing is capped. docs/domain.md's
"paid and never got their goods: reach them at once" passes the first message after the failure
became known (:func:`churnkit.policy.rules.decide`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnkit.data.columns import FeatureColumns
from churnkit.data.frames import require_columns
from churnkit.features.contacts import RECENT_CONTACTS, recent_contact_age
from churnkit.policy.causes import column
from churnkit.policy.config import ContactCaps

_MICROSECONDS_PER_DAY = 86_400_000_000


def _age(features: pd.DataFrame | FeatureColumns, k: int) -> np.ndarray:
    """Days since the ``k``-th most recent message sent (NaN: fewer messages)."""
    return column(features, recent_contact_age(k))


def cap_waits(features: pd.DataFrame, caps: ContactCaps) -> tuple[np.ndarray, np.ndarray]:
    """Days from ``as_of`` until the count cap, and the gap, allow a message (0: allowed now).

    The count cap waits for the ``max_messages``-th most recent message to leave the window
    (``window_days`` - its age, when it is younger than the window); the gap waits for
    ``min_gap_days`` - the age of the last message. Without the contacts family (no
    ``days_since_last_contact`` column) both are 0.
    """
    n = len(features)
    count_wait, gap_wait = np.zeros(n), np.zeros(n)
    if not caps.active or recent_contact_age(1) not in features.columns:
        return count_wait, gap_wait
    if caps.counts:
        name = recent_contact_age(caps.max_messages)
        require_columns(features, (name,), needed_by="the contact caps (contacts features)")
        age = _age(features, caps.max_messages)
        count_wait = np.where(age < caps.window_days, caps.window_days - age, 0.0)
    if caps.min_gap_days > 0:
        last = _age(features, 1)
        gap_wait = np.where(last < caps.min_gap_days, caps.min_gap_days - last, 0.0)
    return count_wait, gap_wait


def messages_in_window(features: pd.DataFrame, caps: ContactCaps) -> np.ndarray:
    """Messages sent in the last ``window_days`` days, counted up to :data:`RECENT_CONTACTS`."""
    with np.errstate(invalid="ignore"):
        return sum((_age(features, k) < caps.window_days).astype(np.int64)
                   for k in range(1, RECENT_CONTACTS + 1)
                   if recent_contact_age(k) in features.columns)


def first_allowed_day(as_of: pd.Timestamp, wait_days: np.ndarray) -> pd.DatetimeIndex:
    """UTC midnight of the first day on which every moment is ``wait_days`` or more after
    ``as_of`` (the moment rounded to the microsecond, so that whole days land on midnight)."""
    wait = pd.to_timedelta(np.round(np.asarray(wait_days, dtype=float) * _MICROSECONDS_PER_DAY),
                           unit="us")
    return (as_of + pd.TimedeltaIndex(wait)).ceil("D")
