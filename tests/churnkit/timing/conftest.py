"""A small synthetic shop with training snapshots and one fitted timing model, shared by the
timing tests (session-scoped: the shop and the fit are the slow part)."""

from __future__ import annotations

import pandas as pd
import pytest

import churnkit as ck
from churnkit.labels import build_training_set
from churnkit.models.timing import TimingConfig, TimingModel

END = pd.Timestamp("2025-07-01", tz="UTC")
HORIZON = 90
EVAL_CUTOFF = END - pd.Timedelta(days=HORIZON)  # labels close at END
TRAIN_CUTOFFS = [EVAL_CUTOFF - pd.Timedelta(days=HORIZON + 30 * i) for i in range(3)]
#: Small LightGBM models: the tests check behaviour, not the last point of accuracy.
SMALL = dict(n_estimators=40, slot_n_estimators=30, learning_rate=0.1)


@pytest.fixture(scope="session")
def timing_shop():
    tables, truth = ck.synth.generate(2500, seed=5, start="2023-01-01", end="2025-07-01")
    tables = ck.validate(tables)
    train = build_training_set(tables, cutoffs=TRAIN_CUTOFFS, horizon_days=HORIZON,
                               data_end=END)
    evaluation = build_training_set(tables, cutoffs=[EVAL_CUTOFF], horizon_days=HORIZON,
                                    data_end=END).set_index("customer_id")
    return tables, truth, train, evaluation


@pytest.fixture(scope="session")
def timing_model(timing_shop):
    _, _, train, _ = timing_shop
    return TimingModel(TimingConfig.load(**SMALL), horizon_days=HORIZON, random_state=0,
                       n_jobs=1).fit(train)
