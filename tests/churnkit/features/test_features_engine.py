"""The engine: order invariance, customer subsets, absent tables, schema, registry, docs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pytest
from _shops import AS_OF, POPULATION, ago, orders_only, shop, shops
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import churnkit as ck
from churnkit.features import (
    PopulationFit,
    all_features,
    build_features,
    feature_reference_markdown,
    fit_population,
)

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.slow
@FAST
@given(shops(), st.randoms(use_true_random=False))
def test_shuffling_input_rows_changes_nothing(case, rnd):
    tables, as_of = case
    shuffled = {}
    for name, frame in tables.items():
        order = list(range(len(frame)))
        rnd.shuffle(order)
        shuffled[name] = frame.iloc[order].reset_index(drop=True)
    again = ck.validate(ck.Tables(**shuffled))
    pdt.assert_frame_equal(build_features(tables, as_of=as_of, population=POPULATION),
                           build_features(again, as_of=as_of, population=POPULATION))


@pytest.mark.slow
@FAST
@given(shops(), st.data())
def test_customer_ids_give_exactly_the_rows_of_the_full_run(case, data):
    tables, as_of = case
    full = build_features(tables, as_of=as_of)
    ids = data.draw(st.lists(st.integers(0, 6), max_size=4))
    part = build_features(tables, as_of=as_of, customer_ids=ids)  # population fitted on all
    expected = full.loc[sorted(set(ids) & set(full.index))]
    pdt.assert_frame_equal(part, expected, check_index_type=False)
    assert part.attrs["population"].to_dict() == full.attrs["population"].to_dict()


@pytest.mark.slow
@FAST
@given(shops(), st.data())
def test_orders_only_customer_ids_give_exactly_the_rows_of_the_full_run(case, data):
    tables, as_of = case
    bare = orders_only(tables)
    full = build_features(bare, as_of=as_of)
    ids = data.draw(st.lists(st.integers(0, 6), max_size=4))
    part = build_features(bare, as_of=as_of, customer_ids=ids)
    pdt.assert_frame_equal(part, full.loc[sorted(set(ids) & set(full.index))],
                           check_index_type=False)


def test_only_orders():
    t = ck.validate(ck.Tables(orders=pd.DataFrame(
        {"customer_id": [1, 1, 2], "ordered_at": [ago(30), ago(3), ago(10)],
         "amount": [5.0, 7.0, 1.0]})))
    f = build_features(t, as_of=AS_OF, population=POPULATION)
    assert f.attrs["families"] == ["purchases", "clock", "btyd", "consent"]
    assert list(f.index) == [1, 2]
    # the first order stands in for the signup; no consent recorded: no channel
    assert f.loc[1, "days_since_signup"] == f.loc[1, "days_since_first_order"] == 30
    assert (f["allowed_channels"] == 0).all()
    assert "late_orders_30d" not in f.columns and "orders_in_transit" not in f.columns
    assert f.loc[1, "orders_lifetime"] == 2


def test_only_customers_and_orders():
    t = shop({"customer_id": [1, 2], "signup_at": [ago(100), ago(100)]},
             {"order_id": [1], "customer_id": [1], "ordered_at": [ago(3)], "amount": [5.0],
              "status": ["delivered"], "status_at": [ago(2)]})
    f = build_features(t, as_of=AS_OF)
    assert f.attrs["families"] == ["purchases", "delivery", "clock", "btyd", "consent"]
    assert list(f.index) == [1, 2]
    assert not any(c.startswith(("sessions_", "tickets_", "contacts_")) for c in f.columns)
    assert f.loc[2, "orders_lifetime"] == 0
    assert f.loc[1, "activity_events"] == 1  # the clock falls back to orders only


def test_schema_follows_the_registry_whatever_the_data():
    dtypes = {"count": "int64", "total": "float64", "float": "float64", "flag": "bool",
              "str": "str"}
    t = shop({"customer_id": [1], "signup_at": [ago(1)]}, {}, browsing={
        "customer_id": [1], "session_id": [1], "ts": [ago(0.5)], "event": ["view"]})
    for frame in (build_features(t, as_of=AS_OF),
                  build_features(t, as_of=AS_OF, customer_ids=[]),
                  build_features(t, as_of=AS_OF, customer_ids=[99])):
        expected = [f for f in all_features() if f.family in frame.attrs["families"]]
        assert list(frame.columns) == [f.name for f in expected]
        assert [str(d) for d in frame.dtypes] == [dtypes[f.dtype] for f in expected]
        assert frame.index.name == "customer_id"


def test_population_round_trips_and_is_fitted_before_as_of():
    from churnkit import synth

    tables, _ = synth.generate(400, seed=3, start="2023-01-01", end="2024-01-01")
    as_of = pd.Timestamp("2023-10-01", tz="UTC")
    pop = fit_population(tables, as_of=as_of)
    assert pop.bgnbd is not None and pop.n_buyers > 50
    assert PopulationFit.from_dict(pop.to_dict()) == pop
    assert fit_population(tables.until(as_of), as_of=as_of) == pop
    full = build_features(tables, as_of=as_of)
    assert full.attrs["population"] == pop
    assert full["p_alive"].between(0, 1).all() == full["p_alive"].notna().all()


def test_reference_markdown_lists_every_feature():
    text = feature_reference_markdown()
    for f in all_features():
        assert f"`{f.name}`" in text
    assert "## btyd" in text


def test_family_modules_stay_small():
    folder = Path(ck.__file__).parent / "features"
    for path in folder.glob("*.py"):
        assert len(path.read_text().splitlines()) < 400, path.name


def test_unvalidated_tables_are_validated_first():
    raw = ck.Tables(pd.DataFrame({"customer_id": ["7"], "signup_at": ["2024-01-01"]}),
                    pd.DataFrame({"order_id": [1], "customer_id": ["7"],
                                  "ordered_at": ["2024-02-01"], "amount": [3.0],
                                  "status": ["placed"], "status_at": ["2024-02-01"]}))
    f = build_features(raw, as_of="2024-03-01")
    assert f.loc[7, "orders_lifetime"] == 1


@pytest.mark.parametrize("bad", [None, "not a date"])
def test_bad_as_of_is_refused(bad):
    t = shop({"customer_id": [1], "signup_at": [ago(1)]}, {})
    with pytest.raises(ValueError, match="as_of"):
        build_features(t, as_of=bad)
