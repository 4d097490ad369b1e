"""Contact history: past win-back messages, opens and conversions per channel.

Only the treatment group was contacted: a control-group row records a message held out at
random, so it counts as neither a contact nor an open. A conversion (the customer ordered again,
attributed to a contact) is a *comeback*; docs/domain.md gives a customer who just came back 30
quiet days without promotions, which the policy applies to ``days_since_last_comeback``. Opens and
conversions at or after ``as_of`` have not happened yet. The ages of the few most recent messages
back the policy's contact caps (at most N messages in D days needs the N-th most recent); the
general models leave them out.
"""

from __future__ import annotations

import pandas as pd

from churnkit.data.contract import CHANNELS, CONTACT_GROUPS
from churnkit.features import reduce as r
from churnkit.features.arrays import NAT, Known
from churnkit.features.family import Columns, Family, Feature, description_of, windowed
from churnkit.features.sql import age_days, window_counts, window_name

NAME = "contacts"
_C = ("contacts",)
_TREATED = "\"group\" = 'treatment'"
_CONTACT_WINDOWS = (90, 365, None)
#: How many of the most recent messages have their age as a feature (``days_since_last_contact``
#: is the first): the largest ``contact_caps.max_messages`` the policy can enforce.
RECENT_CONTACTS = 5


def recent_contact_age(k: int) -> str:
    """The feature holding the age in days of the ``k``-th most recent message (1 = the last)."""
    return "days_since_last_contact" if k == 1 else f"days_since_contact_{k}"


def latest_send_age(contacts: pd.DataFrame | None, as_of: pd.Timestamp) -> float | None:
    """Days from the shop's most recent message sent (treatment group) strictly before ``as_of``
    to ``as_of``: the smallest ``days_since_last_contact`` over the whole base, where the shop's
    sending calendar stands. None when nothing was sent before ``as_of`` (or no contacts table).
    """
    if contacts is None or contacts.empty:
        return None
    sent = contacts["sent_at"][(contacts["group"] == "treatment") & (contacts["sent_at"] < as_of)]
    if sent.empty:
        return None
    return float((as_of - sent.max()) / pd.Timedelta(days=1))


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
    out += windowed("contacts", NAME, "Win-back messages sent {window}.", "messages", _C,
                    windows=_CONTACT_WINDOWS)
    out += [
        Feature("opens_lifetime", NAME, "Messages opened (any channel).", "messages", _C,
                "count"),
        Feature("conversions_lifetime", NAME, "Messages that led to an order.", "messages", _C,
                "count"),
        Feature("open_rate", NAME, "Opened / sent; empty if never contacted.", "share", _C),
        Feature("conversion_rate", NAME, "Converted / sent; empty if never contacted.", "share",
                _C),
        Feature("days_since_last_contact", NAME, "Days since the last message sent; empty if "
                "never contacted.", "days", _C, trend="cycle"),
        *(Feature(recent_contact_age(k), NAME, f"Days since message number {k} counted back "
                  "from the last one sent (any channel); empty with fewer messages.",
                  "days", _C, model_input=False, trend="cycle")
          for k in range(2, RECENT_CONTACTS + 1)),
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
    cols += window_counts("contacts", _TREATED, windows=_CONTACT_WINDOWS)
    # the RECENT_CONTACTS smallest ages, ascending: the k-th is the k-th most recent message
    recent = [f"(min(age_days, {RECENT_CONTACTS}) FILTER (WHERE {_TREATED}))[{k}] AS "
              f"{recent_contact_age(k)}" for k in range(2, RECENT_CONTACTS + 1)]
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
           {sep.join(recent)},
           {age_days("max(converted_at)")} AS days_since_last_comeback,
           count_if(NOT ({_TREATED})) AS holdout_contacts
    FROM known_contacts
    GROUP BY customer_id
    """


def _compute(known: Known) -> Columns:
    contacts = known.tables["contacts"]
    age = known.age(contacts["sent_at"])
    group = contacts["group"]
    treated = group == CONTACT_GROUPS.index("treatment")  # only these were sent
    opened = treated & (contacts["opened_at"] != NAT)  # opens and conversions before as_of
    converted = treated & (contacts["converted_at"] != NAT)
    channel = contacts["channel"]
    out: Columns = {}
    for code, ch in enumerate(CHANNELS):
        on = channel == code
        out[f"contacts_{ch}"] = r.count(contacts, treated, on)
        out[f"opens_{ch}"] = r.count(contacts, opened, on)
        out[f"conversions_{ch}"] = r.count(contacts, converted, on)
    sent_in = r.windowed(contacts, age, _CONTACT_WINDOWS, mask=treated)
    for k, w in enumerate(_CONTACT_WINDOWS):
        out[window_name("contacts", w)] = sent_in[:, 0, k]
    sent = out["contacts_lifetime"]
    out["opens_lifetime"] = r.count(contacts, opened)
    out["conversions_lifetime"] = r.count(contacts, converted)
    out["open_rate"] = r.ratio(out["opens_lifetime"], sent)
    out["conversion_rate"] = r.ratio(out["conversions_lifetime"], sent)
    recent = r.smallest_k(contacts, age, RECENT_CONTACTS, treated).T.copy()  # ascending
    for k in range(1, RECENT_CONTACTS + 1):
        out[recent_contact_age(k)] = recent[k - 1]
    out["days_since_last_comeback"] = known.age(r.latest(contacts, contacts["converted_at"]))
    out["holdout_contacts"] = r.count(contacts, group == CONTACT_GROUPS.index("control"))
    return out


FAMILY = Family(name=NAME, description=description_of(__doc__),
                required_tables=("customers", "contacts"), features=_features(), sql=_sql,
                compute=_compute)
