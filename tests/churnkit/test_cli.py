"""The command line: real exit codes, one clear line on failure, nothing partial left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import churnkit as ck


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "churnkit", *args], capture_output=True, text=True, cwd=cwd,
        timeout=300,
    )


def _write_shop(directory: Path, *, plant_errors: bool) -> None:
    directory.mkdir(parents=True)
    customers = pd.DataFrame(
        {"customer_id": [1, 2, 3], "signup_at": ["2024-01-01", "2024-01-02", "2024-01-03"],
         "timezone": ["Europe/Moscow", "Asia/Omsk", "UTC"]}
    )
    orders = pd.DataFrame(
        {
            "order_id": [10, 11, 12],
            "customer_id": [1, 2, 3],
            "ordered_at": ["2024-02-01", "2024-02-02", "2024-02-03"],
            "amount": [10.0, 20.0, 30.0],
            "status": ["delivered", "lost", "late"],
            "status_at": ["2024-02-03", "2024-02-10", "2024-02-09"],
        }
    )
    if plant_errors:
        orders.loc[0, "amount"] = -1.0
        orders.loc[1, "status"] = "vanished"
        orders.loc[2, "customer_id"] = 77
        customers.loc[2, "signup_at"] = "yesterday"
    customers.to_csv(directory / "customers.csv", index=False)
    orders.to_csv(directory / "orders.csv", index=False)


def test_validate_lists_every_planted_problem_and_exits_1(tmp_path):
    _write_shop(tmp_path / "bad", plant_errors=True)
    result = run("validate", str(tmp_path / "bad"))
    assert result.returncode == 1
    first, *rest = result.stderr.strip().splitlines()
    assert first.startswith("churnkit: error: the data breaks the contract (4 problem(s))")
    text = "\n".join(rest)
    assert "orders.amount: 1 row: negative values" in text and "order_id 10" in text
    assert "orders.status: 1 row: unknown values ['vanished']" in text
    assert "orders.customer_id: 1 row: customer_id not in customers" in text
    assert "customers.signup_at: 1 row: unparseable timestamp" in text


def test_validate_good_data_prints_summary_and_exits_0(tmp_path):
    _write_shop(tmp_path / "good", plant_errors=False)
    result = run("validate", str(tmp_path / "good"))
    assert result.returncode == 0, result.stderr
    assert "satisfies the data contract" in result.stdout
    assert "paid but never received" in result.stdout


def test_missing_directory_is_one_line_and_exit_3(tmp_path):
    result = run("validate", str(tmp_path / "nowhere"))
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        f"churnkit: error: data directory {tmp_path / 'nowhere'} does not exist"
    ]


def test_features_refuses_bad_as_of_and_writes_nothing(tmp_path):
    _write_shop(tmp_path / "good", plant_errors=False)
    out = tmp_path / "features.parquet"
    result = run("features", "--data", str(tmp_path / "good"), "--as-of", "someday",
                 "--out", str(out))
    assert result.returncode == 2
    assert "--as-of='someday' is not a date" in result.stderr
    assert not out.exists() and list(tmp_path.glob("*.tmp")) == []


@pytest.mark.slow
def test_generate_then_validate_and_features(tmp_path):
    shop = tmp_path / "shop"
    result = run("generate", "--customers", "300", "--seed", "3", "--out", str(shop))
    assert result.returncode == 0, result.stderr
    assert ck.synth.read_recipe(shop) == {"n_customers": 300, "seed": 3, "start": "2023-01-01",
                                          "end": "2025-07-01",
                                          "generator": ck.synth.GENERATOR_VERSION}
    assert ck.synth.is_current(ck.synth.read_recipe(shop))
    assert not ck.synth.is_current({"n_customers": 300, "seed": 3})  # before versions: 1
    assert run("validate", str(shop)).returncode == 0
    again = run("generate", "--customers", "300", "--out", str(shop))
    assert again.returncode == 3 and "already exists" in again.stderr
    out = tmp_path / "f.parquet"
    result = run("features", "--data", str(shop), "--as-of", "2025-01-01", "--out", str(out))
    assert result.returncode == 0, result.stderr
    frame = pd.read_parquet(out)
    expected = ck.build_features(ck.load_tables(shop), as_of="2025-01-01")
    assert len(frame) == len(expected) > 0
