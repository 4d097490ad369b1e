"""Short histories from the command line: the plan shrinks to the history there is and says so,
under a year without an independent evaluation (and then the bundle is not promoted); below the
minimum, training refuses and names it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2025-07-01"


def _churnkit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CHURNKIT_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env["COLUMNS"] = "200"  # one console line per message
    return subprocess.run([sys.executable, "-m", "churnkit", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def _train(tmp_path: Path, start: str, *extra: str) -> subprocess.CompletedProcess:
    shop = tmp_path / "shop"
    made = _churnkit("generate", "--out", str(shop), "--customers", "1500", "--seed", "5",
                     "--start", start, "--end", AS_OF, cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-2000:]
    return _churnkit("train", "--data", str(shop), "--as-of", AS_OF, "--trials", "1",
                     "--models-dir", str(tmp_path / "models"),
                     "--tracking-uri", f"sqlite:///{tmp_path / 'mlruns.db'}", *extra,
                     cwd=tmp_path)


def test_twelve_months_train_with_a_shortened_plan(tmp_path):
    done = _train(tmp_path, "2024-07-01")  # 365 days: the default plan needs 420
    assert done.returncode == 0, done.stderr[-3000:]
    out = " ".join(done.stdout.split())
    assert "training plan shortened" in out
    assert "3 training cutoffs 30 days apart need 420 days of history; the data cover 365" in out
    assert "trained on 1 training cutoff" in out
    (report,) = (tmp_path / "models").rglob("evaluation.html")
    assert "training plan shortened" in report.read_text(encoding="utf-8")


def test_nine_months_train_without_an_independent_evaluation_and_are_not_promoted(tmp_path):
    done = _train(tmp_path, "2024-10-01", "--register", "churn-short")  # 273 days
    assert done.returncode == 0, done.stderr[-3000:]
    out = " ".join(done.stdout.split())
    assert "no independent evaluation: a held-out evaluation needs 360 days of history, the " \
        "data cover 273" in out
    (report,) = (tmp_path / "models").rglob("evaluation.html")
    assert "no independent evaluation" in report.read_text(encoding="utf-8")
    promoted = _churnkit("promote", "churn-short", "--tracking-uri",
                         f"sqlite:///{tmp_path / 'mlruns.db'}", cwd=tmp_path)
    assert promoted.returncode != 0
    assert "has no independent evaluation" in " ".join((promoted.stdout + promoted.stderr).split())


def test_six_months_are_refused_naming_the_minimum(tmp_path):
    done = _train(tmp_path, "2025-01-01")  # 181 days
    assert done.returncode != 0
    message = " ".join((done.stdout + done.stderr).split())
    assert "needs at least 270 days of data before --as-of" in message, message[-2000:]
    assert "181 days before 2025-07-01" in message
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").rglob("*.json"))
