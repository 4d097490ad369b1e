"""The reference funnel (docs/domain.md's sequence of days 30/45/60/90) on planted customers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from churnkit.errors import PolicyConfigError
from churnkit.policy import ContactCaps, PolicyConfig, funnel_decisions
from churnkit.policy.funnel import CAPPED, NO_CONSENT, NOT_IN_A_STAGE


def customers(days, **extra) -> pd.DataFrame:
    n = len(days)
    frame = {"days_since_last_order": days, **{f"can_contact_{ch}": [True] * n
                                               for ch in ("email", "sms", "messenger")}}
    frame.update(extra)
    return pd.DataFrame(frame, index=pd.Index(range(n), name="customer_id"))


def test_each_stage_from_its_day_to_the_next():
    f = customers([10.0, 30.0, 44.9, 45.0, 59.0, 60.0, 89.5, 90.0, 119.9, 120.0, np.nan])
    got = funnel_decisions(f, PolicyConfig.default())
    assert got["action"].tolist() == [
        "do_not_contact", "we_miss_you", "we_miss_you", "promo_code", "promo_code", "vip_gift",
        "vip_gift", "promo_code", "promo_code", "do_not_contact", "do_not_contact"]
    assert got["channel"].tolist()[1:9] == ["email", "email", "sms", "sms", "messenger",
                                            "messenger", "email", "email"]
    assert got.loc[0, "reason"] == NOT_IN_A_STAGE and got.loc[9, "reason"] == NOT_IN_A_STAGE
    assert got.loc[3, "reason"] == "day 45 of the funnel: promo_code by sms"
    assert got["stage_day"].tolist()[1:9] == [30, 30, 45, 45, 60, 60, 90, 90]


def test_no_consent_to_the_stages_channel_and_the_caps_send_nothing():
    f = customers([50.0, 50.0, 50.0, 35.0], can_contact_sms=[False, True, True, True],
                  days_since_last_contact=[np.nan, 2.0, 20.0, np.nan])
    config = replace(PolicyConfig.default(), contact_caps=ContactCaps(0, 0.0, 7.0))
    got = funnel_decisions(f, config)
    assert got["action"].tolist() == ["do_not_contact", "do_not_contact", "promo_code",
                                      "we_miss_you"]
    assert got["reason"].tolist()[:2] == [NO_CONSENT, CAPPED]
    # without the consent column at all (no consent table): nothing is sent
    assert (funnel_decisions(f.drop(columns="can_contact_email"), config)
            .loc[3, "action"] == "do_not_contact")


def test_a_config_without_a_funnel_sends_nothing_and_bad_stages_are_named():
    data = PolicyConfig.default().to_dict()
    data.pop("reference_funnel")
    bare = PolicyConfig.from_dict(data)
    assert (funnel_decisions(customers([50.0]), bare)["action"] == "do_not_contact").all()
    data["reference_funnel"] = {"stages": [{"days": 45, "action": "promo_code", "channel": "fax"},
                                           {"days": 30, "action": "do_not_contact",
                                            "channel": "email"}]}
    with pytest.raises(PolicyConfigError) as err:
        PolicyConfig.from_dict(data)
    message = str(err.value)
    assert "reference_funnel.stages[0].channel" in message and "'fax'" in message
    assert "reference_funnel.stages[1].action" in message
    assert "days must increase" in message
    assert PolicyConfig.from_dict(PolicyConfig.default().to_dict()).reference_funnel == \
        PolicyConfig.default().reference_funnel
