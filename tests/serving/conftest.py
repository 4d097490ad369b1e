"""Session fixtures for the service tests: a small shop, a small bundle trained once, and the
service running as a separate process (started with ``churnkit serve``) on a free port."""

from __future__ import annotations

from pathlib import Path

import pytest
from _serving_helpers import (
    API_KEY,
    AS_OF,
    CREATED,
    MAX_IDS,
    start_ready,
    stop_service,
)

import churnkit as ck
from training.config import TrainConfig
from training.pipeline import bundle_dir, train


@pytest.fixture(scope="session")
def shop():
    return ck.synth.generate(2000, seed=11, start="2023-01-01", end="2025-07-01")


@pytest.fixture(scope="session")
def bundle_path(shop, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("serving-train")
    config = TrainConfig.load(trials=2, bootstrap=20, threads=1, train_cutoffs=2,
                              models_dir=root / "models",
                              tracking_uri=f"sqlite:///{root / 'mlruns.db'}",
                              name="churn-serving-test")
    tables, truth = shop
    result = train(tables, as_of=AS_OF, config=config, truth=truth, created_at=CREATED)
    return result.bundle.save(bundle_dir(config, result.bundle))


@pytest.fixture(scope="session")
def bundle(bundle_path):
    return ck.ModelBundle.load(bundle_path)


@pytest.fixture(scope="session")
def store_dir(shop, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("store")
    ck.save_tables(shop[0], directory)
    return directory


@pytest.fixture(scope="session")
def service(bundle_path, store_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("service")
    # two workers whatever the machine's cores: every HTTP test runs against several processes;
    # a 5 ms merge wait, so that the merging test's concurrent requests surely share calls (the
    # default, 0, merges only what queues while a call runs: a few-ms call may leave nothing)
    running = start_ready(tmp, {"CHURNKIT_API_KEY": API_KEY, "CHURNKIT_MAX_IDS": str(MAX_IDS),
                                "CHURNKIT_WORKERS": "2", "CHURNKIT_BATCH_WAIT_MS": "5"},
                          ["--model", str(bundle_path), "--data", str(store_dir)])
    try:
        yield running
    finally:
        stop_service(running)
