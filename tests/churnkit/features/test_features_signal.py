"""Signal on the synthetic shop: each family moves in the direction docs/domain.md says."""

from __future__ import annotations

import pandas as pd
import pytest

from churnkit import synth
from churnkit.features import build_features

AS_OF = pd.Timestamp("2024-03-01", tz="UTC")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    tables, _ = synth.generate(4000, seed=7, start="2023-01-01", end="2024-07-01")
    f = build_features(tables, as_of=AS_OF)
    o = tables.orders
    horizon = (o["ordered_at"] >= AS_OF) & (o["ordered_at"] < AS_OF + pd.Timedelta(days=90))
    # churned: a buyer before as_of with no order in the 90 days after it
    churned = ~f.index.isin(o.loc[horizon, "customer_id"].unique())
    return f.assign(churned=churned)[f["orders_lifetime"] > 0]


@pytest.mark.parametrize(
    ("feature", "churners_have_more"),
    [
        ("days_since_last_order", True),  # purchases: recency
        ("overdue_ratio", True),  # purchases: gap beyond their own rhythm
        ("orders_90d", False),
        ("paid_not_received_orders", True),  # delivery: lost / not delivered
        ("sessions_30d", False),  # browsing fades first
        ("sessions_trend_90d", False),
        ("days_since_last_session", True),
        ("unresolved_tickets", True),  # complaints left open
        ("open_rate", False),  # contacts: engaged customers open
        ("p_alive", False),  # btyd
        ("expected_purchases_90d", False),
    ],
)
def test_churners_differ_in_the_expected_direction(frame, feature, churners_have_more):
    means = frame.groupby("churned")[feature].mean()
    assert (means[True] > means[False]) == churners_have_more, means


def test_clock_and_consent_are_populated(frame):
    shares = frame.filter(like="activity_share_h").sum(axis=1)
    assert shares.round(9).eq(1).all()
    assert frame["modal_local_hour"].between(0, 23).all()
    assert (frame["allowed_channels"] > 0).any()
    assert frame["payday_affinity"].mean() > 1  # the synthetic shop has payday peaks
