"""The training commands keep Optuna to warnings unless verbose, whenever optuna is imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Quiet first, optuna imported after (the order a lazily imported tuner would give), then a
#: two-trial study: Optuna logs one INFO line per trial unless held at WARNING.
SCRIPT = """
import sys
from training.verbosity import set_library_verbosity
set_library_verbosity(sys.argv[1] == "verbose")
import optuna
optuna.create_study().optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_optuna_prints_its_trials_only_when_verbose(verbose):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNKIT_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", SCRIPT, "verbose" if verbose else "quiet"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert ("Trial 1 finished" in done.stderr) == verbose, done.stderr
