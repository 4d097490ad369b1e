"""Contact history: past win-back messages, opens and conversions per channel.

Only the treatment group was contacted: a control-group row records a message held out at
random, so it counts as neither a contact nor an open. A conversion (the customer ordered again,
attributed to a contact) is a *comeback*; DOMAIN.md gives a customer who just came back 30 quiet
days without promotions, which the policy applies to ``days_since_last_comeback``. Opens and
conversions at or after ``as_of`` have not happened yet.
"""

from __future__ import annotations

from churnkit.data.contract import CHANNELS
from churnkit.features.registry import Family, Feature, window_name, window_sql, window_text

NAME = "contacts"
_C = ("contacts",)
_TREATED = "\"group\" = 'treatment'"


def _features() -> tuple[Feature, ...]:
    out = []
    for ch in CHANNELS:
        out += [
            Feature(f"contacts_{ch}", NAME, f"Win-back messages sent by {ch}.", "messages", _C,
                    "count"),
            Feature(f"opens_{ch}", NAME, f"Messages sent by {ch} and opened.", "messages", _C,
                    "count"),
            Feature(f"conversions_{ch}", NAME, f"Messages sent by {ch} that led to an order.",
                    "messages", _C, "count"),
        ]
    for w in (90, 365, None):
        out.append(Feature(window_name("contacts", w), NAME, f"Win-back messages sent "
                           f"{window_text(w)}.", "messages", _C, "count"))
    out += [
        Feature("opens_lifetime", NAME, "Messages opened (any channel).", "messages", _C,
                "count"),
        Feature("conversions_lifetime", NAME, "Messages that led to an order.", "messages", _C,
                "count"),
        Feature("open_rate", NAME, "Opened / sent; empty if never contacted.", "share", _C),
        Feature("conversion_rate", NAME, "Converted / sent; empty if never contacted.", "share",
                _C),
        Feature("days_since_last_contact", NAME, "Days since the last message sent; empty if "
                "never contacted.", "days", _C),
        Feature("days_since_last_comeback", NAME, "Days since the last attributed conversion "
                "(either group); empty if none.", "days", _C),
        Feature("holdout_contacts", NAME, "Times drawn into a control group (not sent).",
                "messages", _C, "count"),
    ]
    return tuple(out)


def _sql(present: frozenset[str]) -> str:
    cols = []
    for ch in CHANNELS:
        sent = f"{_TREATED} AND channel = '{ch}'"
        cols += [
            f"count_if({sent}) AS contacts_{ch}",
            f"count_if({sent} AND opened_at IS NOT NULL) AS opens_{ch}",
            f"count_if({sent} AND converted_at IS NOT NULL) AS conversions_{ch}",
        ]
    for w in (90, 365, None):
        cols.append(f"count_if({_TREATED} AND {window_sql(w)}) AS {window_name('contacts', w)}")
    sep = ",\n           "
    return f"""
    SELECT customer_id,
           {sep.join(cols)},
           count_if({_TREATED} AND opened_at IS NOT NULL) AS opens_lifetime,
           count_if({_TREATED} AND converted_at IS NOT NULL) AS conversions_lifetime,
           count_if({_TREATED} AND opened_at IS NOT NULL) / nullif(count_if({_TREATED}), 0)
               AS open_rate,
           count_if({_TREATED} AND converted_at IS NOT NULL) / nullif(count_if({_TREATED}), 0)
               AS conversion_rate,
           min(age_days) FILTER (WHERE {_TREATED}) AS days_since_last_contact,
           (epoch_us($as_of) - epoch_us(max(converted_at))) / 86400000000.0
               AS days_since_last_comeback,
           count_if(NOT ({_TREATED})) AS holdout_contacts
    FROM known_contacts
    GROUP BY customer_id
    """


FAMILY = Family(
    name=NAME,
    description=__doc__.split("\n\n", 1)[1].strip() if __doc__ else "",
    required_tables=("customers", "contacts"),
    features=_features(),
    sql=_sql,
)
