"""One customer scored alone gets, column by column and bit for bit, their row of a call that
scores the whole base (score_features works on arrays, so a row depends on its own features
only: one customer, a shard of the batch job and the service share one function)."""

from __future__ import annotations

import _batch_shop as shop_
import numpy as np
import pandas as pd
import pytest

import churnkit as ck
from churnkit.data.columns import FeatureColumns
from churnkit.scoring import Scores, score_columns, score_features

pytestmark = pytest.mark.slow  # trains a small bundle once per process (~10 s)
AS_OF = pd.Timestamp(shop_.AS_OF, tz="UTC")


@pytest.fixture(scope="module")
def bundle() -> ck.ModelBundle:
    return shop_.bundle()


@pytest.fixture(scope="module")
def features(bundle) -> pd.DataFrame:
    return ck.build_features(shop_.shop(), as_of=AS_OF, population=bundle.population)


def assert_same_rows(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Same columns, dtypes and index; floats equal to the bit (NaN where NaN), everything else
    equal value by value (lists of drivers and rules included) and of the same type."""
    assert list(got.columns) == list(want.columns)
    assert got.index.equals(want.index)
    for column in want.columns:
        a, b = got[column], want[column]
        assert a.dtype == b.dtype, column
        if a.dtype == np.float64:
            np.testing.assert_array_equal(a.to_numpy().view(np.int64),
                                          b.to_numpy().view(np.int64), err_msg=column)
            continue
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            assert type(x) is type(y), (column, x, y)
            assert x == y or (x != x and y != y), (column, x, y)


def pick(scored: pd.DataFrame, features: pd.DataFrame, n: int = 60) -> list[int]:
    """Row positions covering every (cause, action) pair, prospects, capped and
    paid-not-received customers, then random ones up to ``n``."""
    rng = np.random.default_rng(3)
    keys = scored["cause"].astype(str) + "/" + scored["action"].astype(str)
    chosen = {int(np.flatnonzero(keys.to_numpy() == k)[0]) for k in keys.unique()}
    special = [features["orders_lifetime"].to_numpy() == 0,
               scored["action_reason"].str.contains("capped").to_numpy(),
               scored["action_reason"].str.startswith("Paid for").to_numpy()]
    if "top_drivers" in scored.columns:
        special.append(scored["top_drivers"].map(len).to_numpy() == 0)
    for mask in special:
        chosen.update(np.flatnonzero(mask)[:2].tolist())
    rest = rng.permutation(len(scored))
    for i in rest.tolist():
        if len(chosen) >= n:
            break
        chosen.add(i)
    return sorted(chosen)


@pytest.mark.parametrize("explain", ["at_risk", True, False])
def test_one_customer_alone_gets_its_row_of_the_whole_base(bundle, features, explain):
    whole = score_features(features, bundle, as_of=AS_OF, explain=explain)
    assert list(whole.columns) == score_columns(bundle, explain=explain)
    rows = pick(whole, features)
    assert len(rows) >= 40
    for i in rows:
        alone = score_features(features.iloc[[i]], bundle, as_of=AS_OF, explain=explain)
        assert_same_rows(alone, whole.iloc[[i]])


def test_a_few_customers_together_get_their_rows_of_the_whole_base(bundle, features):
    # a small call (Python strings, LightGBM on one thread) against the whole base (Arrow
    # kernels, every thread)
    whole = score_features(features, bundle, as_of=AS_OF)
    rows = pick(whole, features, n=20)
    assert_same_rows(score_features(features.iloc[rows], bundle, as_of=AS_OF),
                     whole.iloc[rows])


def test_the_shop_exercises_the_rules_the_parity_covers(bundle, features):
    whole = score_features(features, bundle, as_of=AS_OF)
    assert bundle.timing is not None and bundle.value is not None
    assert whole["action"].nunique() >= 3 and whole["cause"].nunique() >= 4
    assert whole["top_drivers"].map(len).gt(0).any()


def test_feature_columns_score_like_the_frame(bundle, features):
    part = features.iloc[100:400]
    assert_same_rows(score_features(FeatureColumns.from_frame(part), bundle, as_of=AS_OF),
                     score_features(part, bundle, as_of=AS_OF))


def test_warm_up_leaves_the_scores_unchanged(bundle, features):
    part = features.iloc[:50]
    before = score_features(part, bundle, as_of=AS_OF)
    bundle.warm_up()
    assert_same_rows(score_features(part, bundle, as_of=AS_OF), before)


def test_scores_as_columns_hold_the_frame(bundle, features):
    # as_frame=False: the columns the frame is built from (what the HTTP service answers from)
    whole = score_features(features, bundle, as_of=AS_OF)
    columns = score_features(features, bundle, as_of=AS_OF, as_frame=False)
    assert isinstance(columns, Scores) and len(columns) == len(whole)
    assert_same_rows(columns.frame(), whole)
    values = columns.values()
    assert list(values) == list(whole.columns)
    for name, got in values.items():
        for x, y in zip(got, whole[name].tolist(), strict=True):
            missing = x is None or x is pd.NaT or (isinstance(x, float) and x != x)
            assert (x == y) or (missing and pd.isna(y)), (name, x, y)
    rows = pick(whole, features, n=20)[::-1]  # an order of their own
    ids = whole.index[rows].tolist()
    assert_same_rows(columns.select(ids).frame(), whole.loc[ids])
    with pytest.raises(KeyError, match="not among the scored customers"):
        columns.select([ids[0], "no such customer"])


def test_one_customer_as_columns_is_its_row(bundle):
    tables = shop_.shop()
    whole = ck.score(tables, as_of=AS_OF, bundle=bundle)
    cid = whole.index[7]
    alone = ck.score(tables, as_of=AS_OF, bundle=bundle, customer_ids=[cid], as_frame=False)
    assert_same_rows(alone.frame(), whole.loc[[cid]])
    nobody = ck.score(tables, as_of=pd.Timestamp("2000-01-01", tz="UTC"), bundle=bundle,
                      as_frame=False)
    assert len(nobody) == 0 and list(nobody.values()) == score_columns(bundle)
