"""Cutoff planning: the evaluation cutoff is never seen by tuning, windows do not overlap."""

from __future__ import annotations

import pandas as pd
import pytest

from training.config import TrainConfig
from training.snapshots import plan_cutoffs


def test_cutoffs_are_ordered_and_label_windows_close_in_time():
    c = plan_cutoffs(as_of="2025-07-01", horizon_days=90, n_train=3, step_days=30,
                     data_start="2023-01-01")
    h = pd.Timedelta(days=90)
    assert c.evaluation + h == pd.Timestamp("2025-07-01", tz="UTC")
    assert c.validation + h == c.evaluation
    assert max(c.train) + h == c.validation
    assert list(c.train) == sorted(c.train) and len(set(c.train)) == 3
    assert "evaluate at 2025-04-02" in c.describe()


def test_not_enough_history_is_refused_naming_the_minimum():
    # 214 days of data; one training cutoff needs 90 days before it, then the training and the
    # validation windows (the held-out evaluation given up): 270 days.
    with pytest.raises(ValueError, match=r"needs at least 270 days .* 214 days before"):
        plan_cutoffs(as_of="2024-01-01", horizon_days=90, n_train=4, step_days=30,
                     data_start="2023-06-01")
    with pytest.raises(ValueError, match="at least 150 days"):  # a 30-day model needs less
        plan_cutoffs(as_of="2024-01-01", horizon_days=30, n_train=1, step_days=30,
                     data_start="2023-09-01", min_history_days=60, fold_evaluation=False)
    # Without folding, the held-out evaluation is required: 360 days.
    with pytest.raises(ValueError, match=r"at least 360 days .* held-out evaluation"):
        plan_cutoffs(as_of="2025-07-01", horizon_days=90, n_train=3, step_days=30,
                     data_start="2024-09-01", fold_evaluation=False)


@pytest.mark.parametrize("days", [273, 300, 359])
def test_under_a_year_the_evaluation_is_folded_and_said_not_independent(days):
    as_of = pd.Timestamp("2025-07-01", tz="UTC")
    c = plan_cutoffs(as_of=as_of, horizon_days=90, n_train=3, step_days=30,
                     data_start=as_of - pd.Timedelta(days=days))
    h = pd.Timedelta(days=90)
    assert not c.independent and c.evaluation == c.validation == as_of - h
    assert max(c.train) + h == c.validation
    assert min(c.train) >= as_of - pd.Timedelta(days=days) + h
    assert any("no independent evaluation" in note and "optimistic" in note for note in c.notes)
    assert "no independent evaluation" in c.describe()


@pytest.mark.parametrize(("days", "n", "step"), [
    (420, 3, 30),  # the plan asked for: 90 + 2 x 30 + 3 x 90
    (400, 3, 20),  # a shorter step first
    (374, 3, 7),   # down to weekly snapshots
    (370, 2, 7),   # then fewer cutoffs
    (365, 1, 30),  # twelve months: one training cutoff
    (360, 1, 30),  # the minimum
])
def test_a_short_history_shrinks_the_plan_and_says_so(days, n, step):
    as_of = pd.Timestamp("2025-07-01", tz="UTC")
    c = plan_cutoffs(as_of=as_of, horizon_days=90, n_train=3, step_days=30,
                     data_start=as_of - pd.Timedelta(days=days))
    assert len(c.train) == n
    if n > 1:
        gaps = {b - a for a, b in zip(c.train[:-1], c.train[1:], strict=True)}
        assert gaps == {pd.Timedelta(days=step)}
    assert min(c.train) >= as_of - pd.Timedelta(days=days - 90)  # 90 days of history first
    assert max(c.train) + pd.Timedelta(days=90) == c.validation  # windows still close in time
    assert c.evaluation == as_of - pd.Timedelta(days=90) and c.independent
    if days == 420:
        assert c.notes == ()
    else:
        (note,) = c.notes
        assert "3 training cutoffs 30 days apart need 420 days" in note
        assert f"the data cover {days}" in note and f"{n} training cutoff" in note


def test_config_defaults_and_overrides():
    cfg = TrainConfig.load(trials=5, horizon_days=None)
    assert cfg.trials == 5 and cfg.horizon_days == 90
    with pytest.raises(ValueError):
        TrainConfig.load(unknown_key=1)
