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


def test_not_enough_history_is_refused():
    with pytest.raises(ValueError, match="not enough history"):
        plan_cutoffs(as_of="2024-01-01", horizon_days=90, n_train=4, step_days=30,
                     data_start="2023-06-01")


def test_config_defaults_and_overrides():
    cfg = TrainConfig.load(trials=5, horizon_days=None)
    assert cfg.trials == 5 and cfg.horizon_days == 90
    with pytest.raises(ValueError):
        TrainConfig.load(unknown_key=1)
