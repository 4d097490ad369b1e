"""The policy config: docs/domain.md defaults, clear errors, round trip, value-scaled
compensation."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import yaml

from churnkit.data.contract import ACTIONS
from churnkit.errors import PolicyConfigError
from churnkit.policy import PolicyConfig


def test_defaults_are_domain_rules():
    c = PolicyConfig.default()
    assert c.economic_gate_multiple == 3.0
    assert c.quiet_period_days == 30
    assert set(c.actions) == set(ACTIONS)
    assert c.actions["do_not_contact"].cost == 0
    assert all(a.cost > 0 for n, a in c.actions.items() if n != "do_not_contact")
    assert c.playbook["natural"] == ("do_not_contact",)
    assert c.playbook["delivery_failure"][0] == "apology_compensation"
    assert c.candidates("vip", "price")[0] == "vip_gift"
    assert c.candidates("new", "price") == c.playbook["price"]


def test_compensation_scales_with_value_not_damage():
    c = PolicyConfig.default()
    a = c.actions["apology_compensation"]
    low, mid, high = c.action_cost("apology_compensation", [0.0, 5_000.0, 1e9])
    assert low == a.min_cost and high == a.max_cost
    assert mid == pytest.approx(a.cost + a.value_share * 5_000.0)
    assert c.action_cost("apology_compensation", 5_000.0) == pytest.approx(mid)
    # flat-cost actions do not depend on value
    assert c.action_cost("free_delivery", 10.0) == c.action_cost("free_delivery", 1e6)
    with pytest.raises(KeyError, match="not in the policy's catalogue"):
        c.action_cost("free_money", 1.0)


def test_round_trip_through_yaml(tmp_path):
    c = PolicyConfig.default()
    assert not c.postpone.active  # packaged: no averages until training fills them
    c.save(tmp_path)
    again = PolicyConfig.load(tmp_path)
    assert again == c
    trained = replace(c, postpone=replace(c.postpone, reference_value=812.5,
                                          reference_return_probability=0.31))
    trained.save(tmp_path)
    assert PolicyConfig.load(tmp_path) == trained and trained.postpone.active
    assert again.action_cost("promo_code", 1234.0) == c.action_cost("promo_code", 1234.0)


def test_edited_copy_changes_the_rules(tmp_path):
    data = PolicyConfig.default().to_dict()
    data["economic_gate_multiple"] = 5
    data["actions"]["free_delivery"]["cost"] = 99
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    c = PolicyConfig.from_yaml(path)
    assert c.economic_gate_multiple == 5 and c.actions["free_delivery"].cost == 99
    assert math.isinf(c.actions["free_delivery"].max_cost)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["actions"].update(free_money={"cost": 1}), "actions.free_money"),
    (lambda d: d["playbook"].update(price=["free_money"]), "playbook.price"),
    (lambda d: d["playbook"].pop("natural"), "playbook.natural"),
    (lambda d: d["causes"]["price"].pop("min_delivery_cost_share"),
     "causes.price.min_delivery_cost_share"),
    (lambda d: d.update(economic_gate_multiple=0.5), "economic_gate_multiple"),
    (lambda d: d["serial_complainer"].update(min_tickets="many"), "serial_complainer.min_tickets"),
    (lambda d: d["segment_playbook"].update(whales={}), "segment_playbook.whales"),
    (lambda d: d["postpone"].update(below_average_needed=4), "postpone.below_average_needed"),
    (lambda d: d["postpone"].update(weak_causes=["boredom"]), "postpone.weak_causes"),
    (lambda d: d["postpone"].update(reference_value="high"), "postpone.reference_value"),
    (lambda d: d["postpone"].update(reference_value=float("nan")), "postpone.reference_value"),
    (lambda d: d["postpone"].update(weak_causes=None), "postpone.weak_causes"),
    (lambda d: d["postpone"].update(weak_causes="price"), "postpone.weak_causes"),
    (lambda d: d["postpone"].update(below_average_needed=2.9),
     "postpone.below_average_needed"),
    (lambda d: d["postpone"].update(below_average_needed=True),
     "postpone.below_average_needed"),
    (lambda d: d["postpone"].update(when="later"), "postpone: unknown key"),
])
def test_bad_config_names_the_key(tmp_path, edit, message):
    data = PolicyConfig.default().to_dict()
    edit(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PolicyConfigError, match=message.replace(".", r"\.")) as err:
        PolicyConfig.from_yaml(path)
    assert str(path) in str(err.value)


def test_not_yaml_is_a_clear_error(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("actions: [unclosed")
    with pytest.raises(PolicyConfigError, match="not valid YAML"):
        PolicyConfig.from_yaml(path)


def test_costs_vectorized():
    c = PolicyConfig.default()
    v = np.array([0.0, np.nan, 2_000.0])
    out = c.action_cost("promo_code", v)
    assert out.shape == (3,) and out[0] == out[1] == c.actions["promo_code"].cost
