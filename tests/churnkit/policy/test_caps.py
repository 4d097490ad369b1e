"""Contact caps: planted contact histories with hand-computed dates, and the synthetic shop checked
against its raw contacts table."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import churnkit as ck
from churnkit.errors import PolicyConfigError
from churnkit.policy import POLICY_COLUMNS, ContactCaps, PolicyConfig, decide
from churnkit.scoring import score_features

AS_OF = pd.Timestamp("2025-07-01", tz="UTC")
DNC = "do_not_contact"
CONFIG = PolicyConfig.default()  # 2 messages in 30 days, 7 days apart
OFF = replace(CONFIG, contact_caps=ContactCaps())


def ago(days: float) -> pd.Timestamp:
    return AS_OF - pd.Timedelta(days=days)


#: customer -> planted messages (days before as_of, channel, group)
HISTORIES = {
    1: [(20, "email", "treatment"), (10, "sms", "treatment")],  # 2 in 30 days, all channels
    2: [(3, "email", "treatment")],  # the gap: 3 days ago
    3: [(40, "email", "treatment")],  # uncapped
    4: [(0, "email", "treatment"), (20, "sms", "treatment")],  # one sent exactly at as_of
    5: [(2, "email", "control"), (1, "sms", "control")],  # held out: never sent
    6: [(2, "email", "treatment")],  # paid for an order never received, known 1 day ago
    7: [(21 + 10 / 24, "email", "treatment"), (9, "push", "treatment")],  # older at 10:00 UTC
    8: [(3, "email", "treatment")],  # no consent
    9: [(2, "email", "treatment")],  # paid for an order never received, known 50 days ago
}


def planted_shop() -> ck.Tables:
    """One order 60 days ago each (cause "forgotten", a reminder passes the gate); customer 6's
    order was lost (known 1 day ago), customer 9's too (known 50 days ago); customer 8 consents
    to nothing."""
    ids = list(HISTORIES)
    customers = pd.DataFrame({
        "customer_id": ids, "signup_at": [ago(400)] * len(ids), "timezone": ["UTC"] * len(ids),
        "consent_email": [i != 8 for i in ids], "consent_sms": [i != 8 for i in ids]})
    orders = pd.DataFrame({
        "order_id": ids, "customer_id": ids, "ordered_at": [ago(60)] * len(ids),
        "amount": [400.0] * len(ids),
        "status": ["lost" if i in (6, 9) else "delivered" for i in ids],
        "status_at": [ago(1 if i == 6 else 50) for i in ids]})
    rows = [(i, ago(d), ch, g) for i, h in HISTORIES.items() for d, ch, g in h]
    contacts = pd.DataFrame({
        "contact_id": range(1, len(rows) + 1), "customer_id": [r[0] for r in rows],
        "sent_at": [r[1] for r in rows], "channel": [r[2] for r in rows],
        "action": ["we_miss_you"] * len(rows), "group": [r[3] for r in rows],
        "opened_at": pd.Series([pd.NaT] * len(rows), dtype="datetime64[us, UTC]"),
        "converted_at": pd.Series([pd.NaT] * len(rows), dtype="datetime64[us, UTC]")})
    return ck.validate(ck.Tables(customers, orders, None, None, contacts))


@pytest.fixture(scope="module")
def planted():
    features = ck.build_features(planted_shop(), as_of=AS_OF)
    scored = pd.DataFrame({"churn_probability": 0.8, "risk_percentile": 90.0},
                          index=features.index)
    return scored, features


def test_capped_customers_wait_for_the_first_day_the_caps_allow(planted):
    scored, features = planted
    off = decide(scored, features, OFF, as_of=AS_OF)
    # without caps every customer who may be contacted gets the reminder (or the apology)
    assert (off.drop(index=8)["action"] != DNC).all() and off.loc[8, "action"] == DNC
    out = decide(scored, features, CONFIG, as_of=AS_OF)
    day = out["contact_date"]
    # 1: messages 20 and 10 days ago (email + sms): capped until the older leaves the window
    assert out.loc[1, "action"] == DNC
    assert day[1] == pd.Timestamp("2025-07-11", tz="UTC")
    assert out.loc[1, "action_reason"].endswith(
        "; capped: 2 messages in the last 30 days; next contact allowed on 2025-07-11")
    assert any(s.startswith("contact cap: 2 or more messages in the last 30 days")
               for s in out.loc[1, "policy_trace"])
    assert out.loc[1, "policy_trace"][-1] == f"action: {DNC}"
    # 2: a message 3 days ago: capped by the gap until day 7 after it
    assert out.loc[2, "action"] == DNC and day[2] == pd.Timestamp("2025-07-05", tz="UTC")
    assert out.loc[2, "action_reason"].endswith(
        "; capped: last message 3 days ago, at least 7 days between messages; next contact "
        "allowed on 2025-07-05")
    assert any(s.startswith("contact gap") for s in out.loc[2, "policy_trace"])
    # 7: the older message at 10:00 leaves the window at 10:00 on 2025-07-09: the first whole
    # day allowed is the 10th
    assert out.loc[7, "action"] == DNC and day[7] == pd.Timestamp("2025-07-10", tz="UTC")
    # 3 (40 days ago), 4 (one at as_of itself is not known yet), 5 (control group: never sent):
    # unchanged
    for i in (3, 4, 5):
        assert out.loc[i].drop("contact_date").equals(off.loc[i]), i
        assert pd.isna(day[i])
    assert features.loc[4, "days_since_last_contact"] == 20
    # 6: paid but not received, nothing sent since it became known: contacted now whatever
    # the caps ("contact immediately"), and the trace says so
    assert out.loc[6, "action"] == off.loc[6, "action"] == "apology_compensation"
    assert out.loc[6, "priority"] == off.loc[6, "priority"] > 1e9
    assert any("contact caps waived" in s for s in out.loc[6, "policy_trace"])
    # 9: known 50 days ago and messaged 2 days ago: the next apology keeps to the gap
    assert off.loc[9, "action"] == "apology_compensation"
    assert out.loc[9, "action"] == DNC and day[9] == pd.Timestamp("2025-07-06", tz="UTC")
    assert out.loc[9, "action_reason"].startswith("Paid for an order that never arrived")
    # 8: no consent is the reason, not the caps
    assert out.loc[8, "action_reason"].endswith("do not contact: no consent on any channel")
    assert pd.isna(day[8])
    capped = out.index.isin([1, 2, 7, 9])
    assert (out.loc[capped, ["priority", "action_cost"]] == 0).all().all()


def test_caps_off_leave_the_output_unchanged(planted):
    scored, features = planted
    off = decide(scored, features, OFF, as_of=AS_OF)
    assert list(off.columns) == [*scored.columns, *POLICY_COLUMNS]  # no contact_date added
    gap_only = decide(
        scored, features, replace(CONFIG, contact_caps=ContactCaps(0, 30, 7)), as_of=AS_OF)
    assert gap_only.loc[1, "action"] != DNC and gap_only.loc[2, "action"] == DNC
    count_only = decide(
        scored, features, replace(CONFIG, contact_caps=ContactCaps(2, 30, 0)), as_of=AS_OF)
    assert count_only.loc[1, "action"] == DNC and count_only.loc[2, "action"] != DNC
    # 3 in 30 days: two messages are allowed a third
    three = decide(
        scored, features, replace(CONFIG, contact_caps=ContactCaps(3, 30, 0)), as_of=AS_OF)
    assert three.loc[1, "action"] != DNC


def test_the_timing_models_later_day_stands_and_as_of_is_needed(planted):
    scored, features = planted
    timed = scored.assign(contact_date=pd.Series(
        [AS_OF + pd.Timedelta(days=20 if i == 2 else 0) for i in scored.index],
        index=scored.index))
    out = decide(timed, features, CONFIG, as_of=AS_OF)
    assert out.loc[2, "contact_date"] == AS_OF + pd.Timedelta(days=20)  # later than the cap
    assert out.loc[1, "contact_date"] == pd.Timestamp("2025-07-11", tz="UTC")
    assert out.loc[3, "contact_date"] == AS_OF
    with pytest.raises(TypeError, match="as_of"):
        decide(timed, features, CONFIG)  # as_of is an argument, never read from the frame
    with pytest.raises(ValueError, match="need as_of"):
        decide(timed, features, CONFIG, as_of=None)
    # without as_of and without a timing model: the wait in days, no date column
    days = decide(scored, features, CONFIG, as_of=None)
    assert "contact_date" not in days.columns
    assert days.loc[1, "action_reason"].endswith("next contact allowed in 10 days")


def test_the_uplift_choice_is_capped_too(planted):
    scored, features = planted
    uplift = pd.DataFrame(0.5, index=scored.index, columns=["we_miss_you", "promo_code"])
    out = decide(scored, features, CONFIG, uplift, as_of=AS_OF)
    assert (out.loc[[1, 2, 7], "action"] == DNC).all()
    assert (out.loc[[1, 2, 7], "expected_incremental_profit"] == 0).all()
    assert (out.loc[[3, 4, 5], "action"] != DNC).all()


@pytest.mark.parametrize(("caps", "message"), [
    ({"max_messages": 2, "window_days": 30, "gap_days": 7}, r"unknown key\(s\) \['gap_days'\]"),
    ({"max_messages": "two"}, "contact_caps.max_messages: expected a number"),
    ({"window_days": -1}, "contact_caps.window_days: expected a number >= 0"),
    ({"min_gap_days": True}, "contact_caps.min_gap_days: expected a number"),
    ({"max_messages": 2.5}, "contact_caps.max_messages: expected a whole number 0-5"),
    ({"max_messages": 6}, "contact_caps.max_messages: expected a whole number 0-5"),
    ([2, 30], "contact_caps: expected a mapping"),
])
def test_bad_caps_are_named(caps, message):
    data = CONFIG.to_dict()
    data["contact_caps"] = caps
    with pytest.raises(PolicyConfigError, match=message):
        PolicyConfig.from_dict(data)


def test_caps_defaults_round_trip_and_off_values():
    assert CONFIG.contact_caps == ContactCaps(2, 30.0, 7.0)
    data = CONFIG.to_dict()
    assert PolicyConfig.from_dict(data) == CONFIG
    data["contact_caps"] = {"max_messages": None, "window_days": 30, "min_gap_days": 0}
    assert not PolicyConfig.from_dict(data).contact_caps.active
    del data["contact_caps"]  # a config written before caps existed: no caps
    assert PolicyConfig.from_dict(data).contact_caps == ContactCaps()


def _violations(tables: ck.Tables, as_of: pd.Timestamp, decided: pd.DataFrame,
                caps: ContactCaps) -> pd.DataFrame:
    """Per customer, from the raw contacts table: messages sent in the window before as_of, days
    since the last, and the moment the caps next allow one (UTC)."""
    c = tables.contacts
    sent = c[(c["group"] == "treatment") & (c["sent_at"] < as_of)]
    sent = sent.assign(k=sent.groupby("customer_id")["sent_at"].rank(method="first",
                                                                     ascending=False))
    out = pd.DataFrame(index=decided.index)
    window = as_of - pd.Timedelta(days=caps.window_days)
    out["in_window"] = sent[sent["sent_at"] > window].groupby("customer_id").size()
    out["in_window"] = out["in_window"].fillna(0)
    out["last"] = sent[sent["k"] == 1].set_index("customer_id")["sent_at"]
    out["nth"] = sent[sent["k"] == caps.max_messages].set_index("customer_id")["sent_at"]
    gap_ok = out["last"] + pd.Timedelta(days=caps.min_gap_days)
    count_ok = out["nth"] + pd.Timedelta(days=caps.window_days)
    out["allowed"] = pd.concat([gap_ok, count_ok], axis=1).max(axis=1)
    out["forbidden"] = (out["in_window"] >= caps.max_messages) | (
        as_of - out["last"] < pd.Timedelta(days=caps.min_gap_days))
    return out


@pytest.mark.parametrize("window", [30, 65])
def test_no_send_on_the_synthetic_shop_breaks_the_caps(world, window):
    as_of = pd.Timestamp("2025-06-08", tz="UTC")  # 3-4 days after the June campaign
    population = ck.fit_population(world.tables, as_of=as_of)
    features = ck.build_features(world.tables, as_of=as_of, population=population)
    caps = ContactCaps(2, window, 7)
    bundle = replace(world.bundle, population=population,
                     policy=replace(CONFIG, contact_caps=caps))
    out = score_features(features, bundle, as_of=as_of, explain=False)
    check = _violations(world.tables, as_of, out, caps)
    # the one exception: an order paid for and never received, no message since it was known
    since = features["days_since_paid_not_received"].reindex(out.index)
    known = as_of - pd.to_timedelta(since, unit="D")
    waived = (since <= 365) & ~(check["last"] > known)
    send = out["action"] != DNC
    assert not (send & check["forbidden"] & ~waived).any()
    capped = out["policy_trace"].map(lambda t: any(s.startswith(("contact cap:", "contact gap:"))
                                                   for s in t))
    assert capped.sum() > 20
    assert (capped & (since <= 365)).sum() > 5  # apologies sent already: the next ones wait
    assert (check.loc[capped, "forbidden"]).all() and (out.loc[capped, "action"] == DNC).all()
    # the contact date is the first whole day on which the caps allow a message
    day, allowed = out.loc[capped, "contact_date"], check.loc[capped, "allowed"]
    assert (day >= allowed).all() and (day - pd.Timedelta(days=1) < allowed).all()
    without = score_features(features, replace(bundle, policy=OFF), as_of=as_of, explain=False)
    assert (without.loc[capped, "action"] != DNC).all()
    assert np.array_equal(without.loc[~capped, "action"], out.loc[~capped, "action"])
