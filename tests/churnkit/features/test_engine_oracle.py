"""The engine against the SQL oracle: every column of every family, on random and synthetic shops.

The families state each feature twice: as NumPy reductions (the engine) and in SQL over the
known-at-as_of views (:mod:`churnkit.features.oracle`, run by DuckDB), with the time-travel rule
written independently in each. Counts, flags and text must be equal; floats within 1e-9
relative (the two sum in different orders).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _shops import POPULATION, orders_only, shops
from hypothesis import HealthCheck, given, settings

from churnkit import synth
from churnkit.features import build_features, families
from churnkit.features.oracle import oracle_features

DTYPES = {f.name: f.dtype for fam in families() for f in fam.features}


def assert_matches_oracle(frame: pd.DataFrame, oracle: pd.DataFrame) -> None:
    assert list(frame.columns) == list(oracle.columns)
    assert frame.index.equals(oracle.index)
    for name in frame.columns:
        got, want = frame[name], oracle[name]
        if DTYPES[name] in ("count", "flag", "str"):
            pd.testing.assert_series_equal(got, want.astype(got.dtype), check_exact=True,
                                           obj=name)
        else:
            a = got.to_numpy(dtype="float64")
            b = want.to_numpy(dtype="float64", na_value=np.nan)
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True,
                                       err_msg=name)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shops())
def test_engine_equals_the_sql_oracle_on_random_shops(case):
    tables, as_of = case
    frame = build_features(tables, as_of=as_of, population=POPULATION)
    assert_matches_oracle(frame, oracle_features(tables, as_of=as_of, population=POPULATION))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shops())
def test_engine_equals_the_sql_oracle_on_orders_only_shops(case):
    tables, as_of = case
    bare = orders_only(tables)
    frame = build_features(bare, as_of=as_of, population=POPULATION)
    assert_matches_oracle(frame, oracle_features(bare, as_of=as_of, population=POPULATION))


@pytest.mark.parametrize("as_of", ["2023-03-01", "2023-10-01", "2024-01-01T00:00:00"])
def test_engine_equals_the_sql_oracle_on_a_synthetic_shop(as_of):
    tables, _ = synth.generate(400, seed=5, start="2023-01-01", end="2024-01-01")
    frame = build_features(tables, as_of=as_of)
    oracle = oracle_features(tables, as_of=as_of, population=frame.attrs["population"])
    assert len(frame) > 0
    assert_matches_oracle(frame, oracle)
    # the population fitted by each side agrees too
    mine, theirs = frame.attrs["population"], oracle_features(tables, as_of=as_of).attrs[
        "population"]
    assert (mine.n_customers, mine.n_buyers) == (theirs.n_customers, theirs.n_buyers)
    assert mine.mean_order_value == pytest.approx(theirs.mean_order_value, rel=1e-12)
    if mine.bgnbd is not None:
        assert mine.bgnbd.to_dict() == pytest.approx(theirs.bgnbd.to_dict(), rel=1e-6)
