"""Scale paths give the same frames: shards, the small-scope connection, zero-copy row slices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest
from _shops import POPULATION, shops
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnkit import synth
from churnkit.features import build_features
from churnkit.features.engine import FeatureEngine, _cutoff, computed_families, fit_population

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def synth_shop():
    tables, _ = synth.generate(300, seed=3, start="2023-01-01", end="2024-01-01")
    return tables, pd.Timestamp("2023-10-01", tz="UTC")


@pytest.mark.slow
@FAST
@given(shops(), st.integers(1, 4))
def test_sharded_run_equals_the_unsharded_run(case, shard_size):
    tables, as_of = case
    whole = build_features(tables, as_of=as_of, population=POPULATION)
    sharded = build_features(tables, as_of=as_of, population=POPULATION, shard_size=shard_size)
    pdt.assert_frame_equal(sharded, whole, check_exact=True)


@pytest.mark.parametrize("shard_size", [25, 128, 299])
def test_sharded_run_equals_the_unsharded_run_on_a_synthetic_shop(synth_shop, shard_size):
    tables, as_of = synth_shop
    whole = build_features(tables, as_of=as_of)
    sharded = build_features(tables, as_of=as_of, shard_size=shard_size)
    pdt.assert_frame_equal(sharded, whole, check_exact=True)
    assert sharded.attrs["population"] == whole.attrs["population"]


def test_population_is_fitted_once_on_every_shard(synth_shop):
    tables, as_of = synth_shop
    ids = tables.customers["customer_id"].to_numpy()[:3]
    expected = build_features(tables, as_of=as_of).loc[ids]
    part = build_features(tables, as_of=as_of, customer_ids=ids, shard_size=64)
    assert part.attrs["population"] == fit_population(tables, as_of=as_of)
    pdt.assert_frame_equal(part, expected, check_exact=True)


@pytest.mark.slow
@FAST
@given(shops())
def test_small_scope_connection_gives_the_same_frame(case):
    tables, as_of = case
    eng, fams = FeatureEngine(), computed_families(tables)
    cutoff = _cutoff(as_of)
    pdt.assert_frame_equal(eng.run(tables, cutoff, fams, small=True),
                           eng.run(tables, cutoff, fams, small=False), check_exact=True)


def test_small_scope_connection_on_a_synthetic_shop(synth_shop):
    tables, as_of = synth_shop
    eng, fams = FeatureEngine(), computed_families(tables)
    cutoff = _cutoff(as_of)
    ids = tables.customers["customer_id"].to_numpy()
    for scope in (tables, tables.for_customers(ids[:1]), tables.for_customers(ids[5:9]),
                  tables.for_customers([])):
        pdt.assert_frame_equal(eng.run(scope, cutoff, fams, small=True),
                               eng.run(scope, cutoff, fams, small=False), check_exact=True)


def test_shards_partition_every_table(synth_shop):
    tables, _ = synth_shop
    for kwargs in ({"shard_size": 70}, {"n_shards": 3}, {"shard_size": 10_000}):
        shards = list(tables.iter_shards(**kwargs))
        for name, frame in tables.items():
            pdt.assert_frame_equal(pd.concat([s.get(name) for s in shards]), frame)
        firsts = [s.customers["customer_id"].iloc[0] for s in shards]
        assert firsts == sorted(firsts)
    assert [len(s.customers) for s in tables.iter_shards(n_shards=3)] == [100, 100, 100]
    with pytest.raises(ValueError, match="exactly one"):
        next(tables.iter_shards())


@pytest.mark.parametrize("pick", [[5], [5, 6, 7], [5, 100, 7], list(range(0, 300, 3)), []])
def test_for_customers_slices_match_a_filter(synth_shop, pick):
    tables, _ = synth_shop
    ids = tables.customers["customer_id"].to_numpy()
    wanted = [ids[i] for i in pick] + [10**12]  # an unknown id is ignored
    part = tables.for_customers(wanted)
    for name, frame in tables.items():
        pdt.assert_frame_equal(part.get(name), frame[frame["customer_id"].isin(wanted)])
    assert np.shares_memory(tables.for_customers(wanted[:1]).orders["amount"].to_numpy(),
                            tables.orders["amount"].to_numpy()) or not pick
