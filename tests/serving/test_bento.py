"""``bentoml build`` packs the service with the library it imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bentoml_build_packs_service_and_library(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path), "BENTOML_DO_NOT_TRACK": "true"}
    result = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "-f", "serving/bentofile.yaml", "."],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (bento,) = [p for p in (tmp_path / "bentos" / "churnkit").iterdir() if p.name != "latest"]
    src = bento / "src"
    for path in ("serving/service.py", "serving/guard.py", "serving/merging.py",
                 "serving/parsing.py", "serving/store.py", "churnkit/scoring/score.py",
                 "churnkit/features/engine.py"):
        assert (src / path).is_file(), path
    assert not list(src.rglob("test_*.py"))
    meta = yaml.safe_load((bento / "bento.yaml").read_text())
    assert meta["service"] == "serving.service:ChurnService"
    routes = {r["route"] for r in meta["schema"]["routes"]}
    assert {"/score", "/score_events"} <= routes
