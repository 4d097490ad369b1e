"""Consent: which channels may be used at ``as_of``.

docs/domain.md: contact only through channels the customer consented to; unsubscribed customers are
excluded. An unsubscribe at or after ``as_of`` has not happened yet at ``as_of``; consent flags
are the customer's standing choices.
"""

from __future__ import annotations

import numpy as np

from churnkit.data.contract import CHANNELS
from churnkit.features.arrays import NAT, Known
from churnkit.features.family import Columns, Family, Feature, description_of

NAME = "consent"
_C = ("customers",)


def _features() -> tuple[Feature, ...]:
    out = [
        Feature(f"can_contact_{ch}", NAME, f"Consented to {ch} and not unsubscribed before "
                "as_of.", "flag", _C, "flag")
        for ch in CHANNELS
    ]
    out += [
        Feature("allowed_channels", NAME, "Channels that may be used at as_of.", "channels", _C,
                "count"),
        Feature("unsubscribed", NAME, "Unsubscribed from all marketing before as_of.", "flag",
                _C, "flag"),
        Feature("days_since_unsubscribed", NAME, "Days since the unsubscribe; empty if "
                "subscribed.", "days", _C),
    ]
    return tuple(out)


def _sql(present: frozenset[str]) -> str:
    allowed = [f"(consent_{ch} AND unsubscribed_at IS NULL) AS can_contact_{ch}"
               for ch in CHANNELS]
    n_allowed = " + ".join(f"(consent_{ch} AND unsubscribed_at IS NULL)::INTEGER"
                           for ch in CHANNELS)
    sep = ",\n           "
    return f"""
    SELECT customer_id,
           {sep.join(allowed)},
           {n_allowed} AS allowed_channels,
           unsubscribed_at IS NOT NULL AS unsubscribed,
           (epoch_us($as_of) - epoch_us(unsubscribed_at)) / 86400000000.0
               AS days_since_unsubscribed
    FROM known_customers
    """


def _compute(known: Known) -> Columns:
    unsub = known.customers["unsubscribed_at"]
    subscribed = unsub == NAT
    out: Columns = {f"can_contact_{ch}": known.customers[f"consent_{ch}"] & subscribed
                    for ch in CHANNELS}
    out["allowed_channels"] = sum(out[f"can_contact_{ch}"].astype(np.int64) for ch in CHANNELS)
    out["unsubscribed"] = ~subscribed
    out["days_since_unsubscribed"] = known.age(unsub)
    return out


FAMILY = Family(name=NAME, description=description_of(__doc__), required_tables=("customers",),
                features=_features(), sql=_sql, compute=_compute)
