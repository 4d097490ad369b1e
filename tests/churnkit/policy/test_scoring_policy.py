"""One scoring path: a bundle with a value model and a policy scores, saves, loads, explains."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

import churnkit as ck
from churnkit.policy import POLICY_COLUMNS, PolicyConfig
from training.value import fit_value

pytestmark = pytest.mark.slow
AS_OF = "2025-07-01"


@pytest.fixture(scope="module")
def bundle_path(world, tmp_path_factory):
    rows = ck.build_training_set(world.tables, cutoffs=["2025-01-01"], horizon_days=90)
    value = fit_value(world.tables, rows, horizon_days=90, seed=0, threads=1, n_estimators=80)
    policy = replace(PolicyConfig.default(), at_risk_percentile=40.0)
    bundle = replace(world.bundle, value=value, policy=policy)
    return bundle.save(tmp_path_factory.mktemp("bundle") / "b")


def test_bundle_scores_with_value_policy_and_reasons(world, bundle_path):
    bundle = ck.ModelBundle.load(bundle_path)
    assert bundle.policy.at_risk_percentile == 40.0  # the bundle's own config, not the default
    full = ck.score(world.tables, as_of=AS_OF, bundle=bundle)
    assert {"expected_value", "value_if_returned", *POLICY_COLUMNS} <= set(full.columns)
    assert (full["expected_value"] >= 0).all()
    # the gate used the model's value: every contacted customer not owed an apology is worth
    # more than 3x the action's cost
    f = world.features
    pnr = f["days_since_paid_not_received"] <= 365
    c = full[(full["action"] != "do_not_contact") & ~pnr.reindex(full.index)]
    assert len(c) > 20
    assert (c["value_if_returned"] > 3 * c["action_cost"] - 0.01).all()
    # not-at-risk now means below the 40th percentile
    none = full["cause"] == "none"
    assert (full.loc[none, "risk_percentile"] < 40).all()
    assert (full.loc[~none & ~pnr.reindex(full.index), "risk_percentile"] >= 40).all()
    # every driver reads in plain words
    drivers = full.loc[full["churn_probability"].idxmax(), "top_drivers"]
    assert drivers and all(isinstance(d["text"], str) and d["text"] for d in drivers)
    # one customer scored alone gets the decision of the full run
    some = full.index[[3, 99]]
    alone = ck.score(world.tables, as_of=AS_OF, bundle=bundle, customer_ids=list(some))
    pd.testing.assert_frame_equal(alone, full.loc[list(some)])
