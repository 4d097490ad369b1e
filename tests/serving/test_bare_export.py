"""A bare purchase export (customer, time, amount) through every command: validate, train, the
nightly scoring and the service."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from _serving_helpers import API_KEY, start_ready, stop_service

import churnkit as ck

pytestmark = pytest.mark.slow
AS_OF = "2025-07-01"


def _churnkit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "churnkit", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_a_bare_purchase_export_is_validated_trained_scored_and_served(tmp_path):
    tables, _ = ck.synth.generate(1500, seed=8, start="2023-07-01", end=AS_OF)
    export = tmp_path / "export"
    export.mkdir()
    tables.orders[["customer_id", "ordered_at", "amount"]].sample(frac=1.0, random_state=1) \
        .to_csv(export / "orders.csv", index=False)

    checked = _churnkit("validate", str(export), cwd=tmp_path)
    assert checked.returncode == 0 and "orders only" in checked.stdout, checked.stderr[-2000:]
    trained = _churnkit("train", "--data", str(export), "--as-of", AS_OF, "--trials", "1",
                        "--models-dir", str(tmp_path / "models"),
                        "--tracking-uri", f"sqlite:///{tmp_path / 'mlruns.db'}", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    (bundle,) = {p.parent for p in (tmp_path / "models").rglob("bundle.json")}
    scores = tmp_path / "scores.parquet"
    scored = _churnkit("score", "--data", str(export), "--model", str(bundle), "--as-of", AS_OF,
                       "--out", str(scores), cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr[-3000:]
    nightly = pd.read_parquet(scores)
    assert len(nightly) == tables.orders["customer_id"].nunique()
    assert nightly["churn_probability"].between(0, 1).all()
    # No consent recorded: nobody may be messaged, and the reason says so.
    assert (nightly["action"] == "do_not_contact").all()

    running = start_ready(tmp_path, {"CHURNKIT_API_KEY": API_KEY},
                          ["--model", str(bundle), "--data", str(export)])
    try:
        ids = [int(i) for i in nightly["customer_id"].iloc[[0, 7, 99]]]
        with running.client() as client:
            answer = client.post("/score", json={"customer_ids": ids,
                                                 "as_of": f"{AS_OF}T00:00:00Z"})
        assert answer.status_code == 200, answer.text
        got = {c["customer_id"]: c for c in answer.json()["customers"]}
        assert set(got) == set(ids)
        by_id = nightly.set_index("customer_id")
        for cid in ids:  # the service answers what the nightly job wrote
            assert got[cid]["churn_probability"] == pytest.approx(
                by_id.loc[cid, "churn_probability"], abs=1e-12)
            assert got[cid]["action"] == by_id.loc[cid, "action"]
    finally:
        stop_service(running)
