"""Scale paths give the same frames: shards, slices of the shop arrays, zero-copy row slices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest
from _shops import POPULATION, shops
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnkit import synth
from churnkit.features import build_features, fit_population, shop_arrays

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def synth_shop():
    tables, _ = synth.generate(300, seed=3, start="2023-01-01", end="2024-01-01")
    return tables, pd.Timestamp("2023-10-01", tz="UTC")


@pytest.mark.slow
@FAST
@given(shops(), st.integers(1, 4))
def test_shard_by_shard_equals_the_whole_base(case, shard_size):
    # the batch job computes shard by shard; every shard's rows are the whole run's, bitwise
    tables, as_of = case
    whole = build_features(tables, as_of=as_of, population=POPULATION)
    parts = [build_features(shard, as_of=as_of, population=POPULATION)
             for shard in tables.iter_shards(shard_size=shard_size)]
    pdt.assert_frame_equal(pd.concat(parts), whole, check_exact=True)


def test_population_is_fitted_on_the_whole_base_before_selecting(synth_shop):
    tables, as_of = synth_shop
    ids = tables.customers["customer_id"].to_numpy()[:3]
    whole = build_features(tables, as_of=as_of)
    part = build_features(tables, as_of=as_of, customer_ids=ids)
    assert part.attrs["population"] == fit_population(tables, as_of=as_of)
    assert part.attrs["population"] == whole.attrs["population"]
    pdt.assert_frame_equal(part, whole.loc[ids], check_exact=True)


@pytest.mark.parametrize("pick", [[0], [5, 6, 7], [5, 100, 7], list(range(0, 300, 3)), []])
def test_slices_of_the_shop_arrays_give_the_rows_of_the_full_run(synth_shop, pick):
    tables, as_of = synth_shop
    shop = shop_arrays(tables)
    assert shop_arrays(tables) is shop  # converted once per tables object
    ids = tables.customers["customer_id"].to_numpy()
    wanted = [ids[i] for i in pick] + [10**12]  # an unknown id is ignored
    whole = build_features(shop, as_of=as_of)
    part = build_features(shop.take(shop.positions_of(wanted)), as_of=as_of,
                          population=whole.attrs["population"])
    known = [i for i in sorted(set(wanted)) if i in whole.index]
    pdt.assert_frame_equal(part, whole.loc[known], check_exact=True)


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


def test_text_columns_in_several_arrow_chunks_convert_like_one():
    # columns read from Parquet may hold several Arrow chunks
    import pyarrow as pa

    from churnkit.features.table_arrays import categories_of, codes

    chunked = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([["b", None], ["a", "b"]])))
    whole = pd.Series(["b", None, "a", "b"], dtype="str")
    for series in (chunked, whole):
        values, names = categories_of(series)
        assert names == ("a", "b") and values.tolist() == [1, -1, 0, 1]
    long = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([["late"] * 70, ["lost"] * 70])))
    assert codes(long, ("placed", "late", "lost")).tolist() == [1] * 70 + [2] * 70
