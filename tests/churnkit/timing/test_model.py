"""TimingModel: the scoring contract's columns, the day rules, config, persistence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from churnkit.data.contract import CHANNELS
from churnkit.models.timing import OUTPUT_COLUMNS, TimingConfig, TimingModel


@pytest.fixture(scope="module")
def plan(timing_model, timing_shop):
    _, _, _, evaluation = timing_shop
    return timing_model.plan(evaluation, as_of=evaluation["cutoff"].iloc[0])


@pytest.mark.slow  # the shared shop and fit (session fixture)
def test_contract_columns_and_ranges(timing_model, timing_shop):
    _, _, _, evaluation = timing_shop
    as_of = evaluation["cutoff"].iloc[0]
    out = timing_model.predict(evaluation, as_of=as_of)
    assert tuple(out.columns) == OUTPUT_COLUMNS and out.index.equals(evaluation.index)
    lo, hi = TimingConfig.load().allowed_hours
    assert out["contact_hour_local"].between(lo, hi - 1).all()  # never in quiet hours
    assert out["contact_weekday"].between(0, 6).all()
    assert (out["contact_date"].dt.day_of_week == out["contact_weekday"]).all()
    assert (out["contact_date"] == out["contact_date"].dt.normalize()).all()
    assert (out["contact_date"] >= as_of.normalize()).all()
    for col in ("contact_date_confidence", "contact_slot_confidence"):
        assert out[col].between(0, 1).all(), col
    conf = out["channel_confidence"].dropna()
    assert conf.between(0, 1).all()
    assert set(out["channel"].dropna()) <= set(CHANNELS)
    assert (out["expected_days_to_next_order"] > 0).all()


@pytest.mark.slow  # the shared shop and fit (session fixture)
def test_incidents_mean_contact_today(plan, timing_shop):
    # docs/domain.md: paid but never received / unresolved complaint -> contact now.
    _, _, _, evaluation = timing_shop
    as_of = evaluation["cutoff"].iloc[0]
    cfg = TimingConfig.load()
    incident = ((evaluation["days_since_paid_not_received"] <= cfg.incident_recent_days)
                .fillna(False) | (evaluation["unresolved_tickets"].fillna(0) > 0)).to_numpy()
    assert incident.any()
    assert (plan["contact_rule"].to_numpy()[incident] == "incident").all()
    assert (plan["contact_date"].to_numpy()[incident] == as_of.normalize()).all()
    assert (plan["contact_date_confidence"].to_numpy()[incident] == 1.0).all()


@pytest.mark.slow  # the shared shop and fit (session fixture)
def test_rhythm_waits_and_drift_does_not(plan):
    cfg = TimingConfig.load()
    rhythm = plan[plan["contact_rule"] == "rhythm"]
    drift = plan[plan["contact_rule"] == "drift"]
    assert len(rhythm) and len(drift)
    assert (drift["p_order_within_horizon"] < cfg.drift_probability).all()
    assert (drift["contact_day_offset"] < cfg.drift_search_days).all()
    assert (rhythm["contact_day_offset"] <= cfg.max_wait_days + cfg.rhythm_search_days - 1).all()
    # likely buyers are given time to buy on their own before we pay to reach them
    assert rhythm["contact_day_offset"].mean() > drift["contact_day_offset"].mean() + 3


@pytest.mark.slow  # the shared shop and fit (session fixture)
def test_rules_come_from_config(timing_model, timing_shop):
    _, _, _, evaluation = timing_shop
    as_of = evaluation["cutoff"].iloc[0]
    strict = TimingModel.__new__(TimingModel)
    strict.__dict__.update(timing_model.__dict__)
    strict.config = timing_model.config.model_copy(update={"allowed_hours": (12, 14),
                                                          "max_wait_days": 0})
    out = strict.plan(evaluation, as_of=as_of)
    assert out["contact_hour_local"].isin([12, 13]).all()
    assert (out["contact_day_offset"] < strict.config.rhythm_search_days).all()


@pytest.mark.slow  # the shared shop and fit (session fixture)
def test_save_load_round_trip(timing_model, timing_shop, tmp_path):
    _, _, _, evaluation = timing_shop
    as_of = evaluation["cutoff"].iloc[0]
    timing_model.save(tmp_path)
    loaded = TimingModel.load(tmp_path)
    pd.testing.assert_frame_equal(loaded.predict(evaluation, as_of=as_of),
                                  timing_model.predict(evaluation, as_of=as_of))


@pytest.mark.slow  # the shared shop and fit (session fixture)
def test_one_customer_alone_gets_the_same_answer(timing_model, timing_shop):
    _, _, _, evaluation = timing_shop
    as_of = evaluation["cutoff"].iloc[0]
    full = timing_model.predict(evaluation, as_of=as_of)
    one = timing_model.predict(evaluation.iloc[[7]], as_of=as_of)
    pd.testing.assert_frame_equal(one, full.iloc[[7]])


@pytest.mark.slow  # the shared shop and fit (session fixture)
def test_as_of_is_an_explicit_argument(timing_model, timing_shop):
    _, _, _, evaluation = timing_shop
    frame = evaluation.copy()
    frame.attrs = {"as_of": pd.Timestamp("2025-04-02", tz="UTC")}
    with pytest.raises(TypeError, match="as_of"):
        timing_model.predict(frame)
    # The argument decides the dates, not the frame's attrs or its cutoff column.
    later = pd.Timestamp("2025-05-02", tz="UTC")
    at_cutoff = timing_model.predict(frame, as_of=evaluation["cutoff"].iloc[0])
    moved = timing_model.predict(frame, as_of=later)
    shift = (moved["contact_date"] - at_cutoff["contact_date"]).dt.days
    assert (shift >= 20).mean() > 0.9


def test_bad_training_frames_are_refused():
    with pytest.raises(ValueError, match="next_engagement_slot"):
        TimingModel().fit(pd.DataFrame({"days_to_next_order": [1.0], "censored": [False]}))
    with pytest.raises(ValueError, match="empty"):
        TimingModel().fit(pd.DataFrame(columns=["days_to_next_order", "censored",
                                                "next_engagement_slot"]))


def test_config_defaults_and_validation(tmp_path):
    cfg = TimingConfig.load()
    assert cfg.allowed_hours == (9, 21)  # no messages 21:00-09:00 local
    assert cfg.bin_edges(90)[-1] == 90 and cfg.bin_edges(30) == (0, 3, 7, 14, 21, 30)
    with pytest.raises(ValidationError, match="allowed_hours"):
        TimingConfig.load(allowed_hours=[21, 9])
    with pytest.raises(ValidationError, match="day_bins"):
        TimingConfig.load(day_bins=[3, 7])
    path = tmp_path / "t.yaml"
    path.write_text("max_wait_days: 10\n")
    assert TimingConfig.load(path).max_wait_days == 10
    assert np.isfinite(cfg.return_quantile)


@pytest.mark.slow  # the shared shop and fit (session fixture)
def test_chunked_planning_gives_the_same_rows(timing_model, timing_shop, monkeypatch):
    import churnkit.models.timing.model as model_module

    _, _, _, evaluation = timing_shop
    as_of = evaluation["cutoff"].iloc[0]
    whole = timing_model.predict(evaluation, as_of=as_of)
    monkeypatch.setattr(model_module, "PLAN_CHUNK", 97)
    pd.testing.assert_frame_equal(timing_model.predict(evaluation, as_of=as_of), whole)


def test_config_reads_the_flat_size_keys_of_older_configs():
    flat = TimingConfig(n_estimators=40, learning_rate=0.1, slot_n_estimators=30,
                        slot_num_leaves=5, min_child_samples=20)
    assert flat.hazard_trees.model_dump() == {"n_estimators": 40, "learning_rate": 0.1,
                                              "num_leaves": 31, "min_child_samples": 20}
    assert flat.slot_trees.model_dump() == {"n_estimators": 30, "learning_rate": 0.15,
                                            "num_leaves": 5, "min_child_samples": 20}
    # an override of one key of a group keeps the group's other keys
    assert TimingConfig.load(slot_trees={"n_estimators": 5}).slot_trees.num_leaves == 7
