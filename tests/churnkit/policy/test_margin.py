"""Money in margin: the gross-margin config, a customer's category-mix share, and the economic
gate, uplift and scoring valuing customers at revenue x their share (docs/policy.md)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import AS_OF

import churnkit as ck
from churnkit.errors import PolicyConfigError
from churnkit.features import margin_shares
from churnkit.policy import (
    GrossMargin,
    PolicyConfig,
    choose_by_uplift,
    cost_function,
    customer_revenue,
    customer_value,
    decide,
)

CONFIG = PolicyConfig.default()


def _with_margin(section: object) -> dict:
    data = CONFIG.to_dict()
    data["gross_margin"] = section
    return data


# -- the config --------------------------------------------------------------------------------
def test_packaged_share_and_round_trip():
    assert CONFIG.gross_margin == GrossMargin(0.30, {})
    data = _with_margin({"default": 0.25, "by_category": {"books": 0.5, "toys": 1}})
    c = PolicyConfig.from_dict(data)
    assert c.gross_margin == GrossMargin(0.25, {"books": 0.5, "toys": 1.0})
    assert PolicyConfig.from_dict(c.to_dict()) == c
    assert c.gross_margin.share_of("books") == 0.5
    assert c.gross_margin.share_of("garden") == c.gross_margin.share_of(None) == 0.25
    # a config written before margins values customers at their revenue, as it did
    old = CONFIG.to_dict()
    del old["gross_margin"]
    assert PolicyConfig.from_dict(old).gross_margin == GrossMargin(1.0, {})


@pytest.mark.parametrize(("section", "key"), [
    ({"default": 0}, "gross_margin.default"),
    ({"default": 1.5}, "gross_margin.default"),
    ({"default": "a third"}, "gross_margin.default"),
    ({"default": True}, "gross_margin.default"),
    ({"by_category": {"books": -0.1}}, "gross_margin.by_category.books"),
    ({"by_category": {"toys": float("nan")}}, "gross_margin.by_category.toys"),
    ({"by_category": [0.3]}, "gross_margin.by_category"),
    ({"margin": 0.3}, "gross_margin: unknown key"),
    (0.3, "gross_margin: expected a mapping"),
])
def test_bad_shares_name_their_key(section, key):
    with pytest.raises(PolicyConfigError, match=key.replace(".", r"\.")):
        PolicyConfig.from_dict(_with_margin(section))


# -- a customer's share ------------------------------------------------------------------------
def test_share_is_the_revenue_weighted_category_mix():
    t = pd.Timestamp
    orders = pd.DataFrame({
        "customer_id": [1, 1, 1, 1, 2, 3],
        "ordered_at": [t("2024-01-10", tz="UTC"), t("2024-02-10", tz="UTC"),
                       t("2024-03-10", tz="UTC"), t("2024-07-01", tz="UTC"),
                       t("2024-03-01", tz="UTC"), t("2024-04-01", tz="UTC")],
        "amount": [100.0, 300.0, 100.0, 1000.0, 200.0, 0.0],
        "category": ["books", "toys", None, "books", "garden", "books"]})
    tables = ck.validate(ck.Tables(orders=orders))
    shares = margin_shares(tables, as_of="2024-06-01", default=0.3,
                           by_category={"books": 0.5, "toys": 0.2})
    # customer 1: (100 x 0.5 + 300 x 0.2 + 100 x 0.3) / 500 = 0.28 (the July order is not
    # known yet); 2: an unlisted category, the default; 3: no revenue, the default
    assert shares.to_dict() == pytest.approx({1: 0.28, 2: 0.3, 3: 0.3})
    one = margin_shares(tables, as_of="2024-06-01", default=0.3, customer_ids=[1],
                        by_category={"books": 0.5, "toys": 0.2})
    assert one.to_dict() == pytest.approx({1: 0.28})
    # without a category column everyone has the default
    bare = ck.validate(ck.Tables(orders=orders.drop(columns="category")))
    assert (margin_shares(bare, as_of="2024-06-01", default=0.3,
                          by_category={"books": 0.5}) == 0.3).all()


# -- the economic gate and uplift in margin ----------------------------------------------------
@pytest.fixture(scope="module")
def reminders(world, scored):
    """New customers whose risk is 'forgotten' (playbook: we_miss_you, cost 5), worth a revenue
    of 40 each, whom the policy reminds when valued at their revenue (margin share 1)."""
    s = scored.assign(value_if_returned=40.0)
    revenue = replace(CONFIG, gross_margin=GrossMargin(1.0))
    out = decide(s, world.features, revenue, contributions=world.contributions, as_of=AS_OF)
    rows = out.index[(out["action"] == "we_miss_you") & (out["segment"] == "new")
                     & (out["cause"] == "forgotten")]
    assert len(rows) >= 5
    return s.loc[rows], world.features.loc[rows], world.contributions.loc[rows]


def test_the_gate_flips_when_margin_brings_value_under_three_costs(reminders):
    s, f, contributions = reminders
    assert CONFIG.action_cost("we_miss_you", 40.0) == 5.0  # gate: value must exceed 15
    # at the packaged 30%: margin 12 < 3 x 5, no contact, and the reason says so
    out = decide(s, f, CONFIG, contributions=contributions, as_of=AS_OF)
    assert (out["action"] == "do_not_contact").all()
    assert (out["margin_share"] == 0.3).all()
    assert out["action_reason"].str.contains("margin value 12 is under 3× the cost 5",
                                             regex=False).all()
    # a customer whose mix keeps half: margin 20 > 15, reminded again
    half = decide(s.assign(margin_share=0.5), f, CONFIG, contributions=contributions,
                  as_of=AS_OF)
    assert (half["action"] == "we_miss_you").all()
    assert (half["margin_share"] == 0.5).all()


def test_uplift_profit_is_in_margin(world, scored):
    rows = scored.index[:50]
    s, f = scored.loc[rows].assign(value_if_returned=1000.0, margin_share=0.25), \
        world.features.loc[rows]
    assert customer_revenue(s, f, CONFIG) == pytest.approx(np.full(50, 1000.0))
    assert customer_value(s, f, CONFIG) == pytest.approx(np.full(50, 250.0))
    uplift = pd.DataFrame({"promo_code": 0.2, "we_miss_you": 0.1}, index=rows)
    # promo_code costs 20 + 5% of the revenue 1000 = 70: 0.2 x 250 - 70 < 0;
    # we_miss_you costs 5: 0.1 x 250 - 5 = 20 (in revenue it would be promo: 0.2 x 1000 - 70)
    chosen = choose_by_uplift(uplift, pd.Series(250.0, index=rows), cost_function(CONFIG),
                              cost_basis=pd.Series(1000.0, index=rows))
    assert (chosen["action"] == "we_miss_you").all()
    assert chosen["expected_incremental_profit"].tolist() == pytest.approx([20.0] * 50)
    out = decide(s, f, CONFIG, uplift, as_of=AS_OF)
    free = out["policy_trace"].map(lambda t: any(x.startswith("uplift: highest") for x in t))
    assert free.sum() > 0
    assert (out.loc[free, "action"] == "we_miss_you").all()
    assert out.loc[free, "expected_incremental_profit"].tolist() == pytest.approx(
        [20.0] * int(free.sum()))


def test_scoring_uses_each_customers_category_mix(world):
    categories = sorted(world.tables.orders["category"].dropna().unique())
    assert len(categories) >= 3
    by_category = {categories[0]: 0.6, categories[1]: 0.1}
    config = replace(CONFIG, gross_margin=GrossMargin(0.3, by_category))
    bundle = replace(world.bundle, policy=config)
    ids = world.features.index[:300]
    scored = ck.score(world.tables, as_of=AS_OF, bundle=bundle, customer_ids=ids,
                      explain=False)
    want = margin_shares(world.tables, as_of=AS_OF, default=0.3, by_category=by_category,
                         customer_ids=ids)
    np.testing.assert_allclose(scored["margin_share"], want.reindex(scored.index))
    assert scored["margin_share"].nunique() > 10
    assert scored["margin_share"].between(0.1 - 1e-12, 0.6 + 1e-12).all()
    # one customer scored alone gets the share of the full run
    one = ck.score(world.tables, as_of=AS_OF, bundle=bundle, customer_ids=ids[:1],
                   explain=False)
    assert one["margin_share"].iloc[0] == scored["margin_share"].iloc[0]
    # the packaged config: everyone at the default share
    plain = ck.score(world.tables, as_of=AS_OF, bundle=world.bundle, customer_ids=ids,
                     explain=False)
    assert (plain["margin_share"] == 0.3).all()
