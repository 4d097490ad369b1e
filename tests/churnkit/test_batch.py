"""The nightly batch job: one scoring path, resumable after a kill, atomic, honest summary."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import _batch_shop as shop_
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from rich.console import Console

import churnkit as ck
from churnkit.jobs import run_batch, score_shard, summary_path_for
from churnkit.scoring import OUTPUT_COLUMNS, read_scores

pytestmark = pytest.mark.slow  # trains a small bundle once per process (~10 s)
AS_OF = shop_.AS_OF


class Stop(Exception):
    pass


def cli(*args: str):
    """``churnkit ARGS`` in this process (exit code, stdout, stderr); the kill test below runs
    the real console script in a subprocess."""
    from typer.testing import CliRunner

    from churnkit.cli.app import app

    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(scope="module")
def bundle():
    return shop_.bundle()


@pytest.fixture(scope="module")
def tables():
    return shop_.shop()


@pytest.fixture(scope="module")
def clean_run(tables, bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "scores.parquet"
    result = run_batch(tables, model=bundle, as_of=AS_OF, out=out, shard_size=300,
                       progress=False)
    return out, result


def test_batch_rows_equal_ck_score_on_the_whole_base(clean_run, tables, bundle):
    out, _ = clean_run
    got = read_scores(out)
    want = ck.score(tables, as_of=AS_OF, bundle=bundle)
    assert list(got.index) == list(want.index)
    assert (got["as_of"] == pd.Timestamp(AS_OF, tz="UTC")).all()
    assert (got["model"] == bundle.metadata.name).all()
    assert (got["model_version"] == bundle.metadata.version).all()
    for column in want.columns:
        if column == "top_drivers":
            assert got[column].tolist() == want[column].tolist()
        elif pd.api.types.is_float_dtype(want[column].dtype):
            np.testing.assert_array_equal(got[column].to_numpy(), want[column].to_numpy())
        else:
            assert got[column].astype(str).tolist() == want[column].astype(str).tolist(), column
    # every column is documented, in the documented order
    written = list(pq.read_schema(out).names)
    assert written == [c for c in OUTPUT_COLUMNS if c in written]


def test_shard_size_does_not_change_the_rows(clean_run, tables, bundle, tmp_path):
    out, _ = clean_run
    other = run_batch(tables, model=bundle, as_of=AS_OF, out=tmp_path / "s.parquet",
                      shard_size=777, progress=False)
    assert other.summary["shards"] == 3
    pd.testing.assert_frame_equal(read_scores(tmp_path / "s.parquet"), read_scores(out))


def test_score_shard_is_per_customer(tables, bundle):
    shards = list(tables.iter_shards(n_shards=3))
    parts = [score_shard(s, as_of=AS_OF, bundle=bundle) for s in shards]
    whole = score_shard(tables, as_of=AS_OF, bundle=bundle)
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)
    assert isinstance(whole.loc[0, "top_drivers"], str)  # JSON text, as written
    json.loads(whole.loc[0, "top_drivers"])


def test_shards_of_customers_not_yet_signed_up_give_no_rows(tables, bundle, tmp_path):
    # synthetic ids follow signup order: at an earlier as_of the last shards are all future
    as_of = "2024-09-01"
    known = tables.customers["signup_at"] < pd.Timestamp(as_of, tz="UTC")
    assert 300 < known.sum() < len(tables.customers) - 600
    late = tables.customers.loc[~known, "customer_id"]
    assert len(score_shard(tables.for_customers(late), as_of=as_of, bundle=bundle)) == 0
    out = tmp_path / "s.parquet"
    result = run_batch(tables, model=bundle, as_of=as_of, out=out, shard_size=300,
                       progress=False)
    got = read_scores(out)
    want = ck.score(tables, as_of=as_of, bundle=bundle)
    assert result.summary["rows"] == len(got) == len(want) == known.sum()
    np.testing.assert_array_equal(got["churn_probability"].to_numpy(),
                                  want["churn_probability"].to_numpy())


def test_as_of_before_every_signup_is_refused_before_writing(tables, bundle, tmp_path):
    with pytest.raises(ValueError, match="no customer signed up before"):
        run_batch(tables, model=bundle, as_of="2020-01-01", out=tmp_path / "o" / "s.parquet",
                  progress=False)
    assert not (tmp_path / "o").exists()


def test_summary_json_matches_the_scored_rows(clean_run, tables, bundle):
    out, result = clean_run
    summary = json.loads(summary_path_for(out).read_text())
    assert summary == result.summary
    got = read_scores(out)
    assert summary["rows"] == len(got) == len(tables.customers)
    assert summary["as_of"] == pd.Timestamp(AS_OF, tz="UTC").isoformat()
    assert summary["model_version"] == bundle.metadata.version
    assert summary["shards"] == 7 and summary["shards_resumed"] == 0
    for column in ("risk_band", "segment"):
        assert summary["counts"][column] == got[column].value_counts().sort_index().to_dict()
    for column in ("action", "channel"):
        if column in got.columns:
            counts = got[column].fillna("none").value_counts().sort_index().to_dict()
            assert summary["counts"][column] == counts
        else:
            assert summary["counts"][column] is None
    assert summary["duration_seconds"] > 0
    assert set(summary["stage_seconds"]) >= {"load", "features", "models_and_policy",
                                             "write_parts", "assemble"}
    # drift summed over shards equals the PSI and the rate check of the whole base at once, the
    # sending cycle taken from the whole contacts table (not a shard's)
    features = ck.build_features(tables, as_of=AS_OF, population=bundle.population)
    send_age = ck.features.latest_send_age(tables.contacts, pd.Timestamp(AS_OF, tz="UTC"))
    assert send_age is not None and send_age > 0
    counts = bundle.drift.bin_counts(features, send_age=send_age)
    psi = bundle.drift.psi_from_counts(counts)
    drift = summary["drift"]
    assert drift["psi"] == pytest.approx({k: round(v, 6) for k, v in psi.items()}, abs=1e-6)
    assert drift["max_feature"] == psi.idxmax()
    assert set(drift["drifted"]) == set(psi[psi > drift["threshold"]].index)
    assert drift["rate_shifts"] == bundle.drift.rate_shifts_from_counts(counts)


def test_psi_threshold_sets_the_warning(tables, bundle, tmp_path):
    from io import StringIO

    from rich.console import Console

    buffer = StringIO()
    result = run_batch(tables, model=bundle, as_of=AS_OF, out=tmp_path / "s.parquet",
                       shard_size=1000, psi_threshold=1e-9, progress=False,
                       console=Console(file=buffer, width=200))
    drift = result.summary["drift"]
    assert drift["threshold"] == 1e-9
    assert len(drift["drifted"]) > 0
    assert "drifted from the training data" in buffer.getvalue()


def test_failure_mid_run_leaves_no_output_and_a_rerun_is_byte_identical(clean_run, tables,
                                                                        bundle, tmp_path):
    clean, _ = clean_run
    out = tmp_path / "scores.parquet"

    def die_after_two(index: int, done: int) -> None:
        if index == 2:
            raise Stop

    with pytest.raises(Stop):
        run_batch(tables, model=bundle, as_of=AS_OF, out=out, shard_size=300, progress=False,
                  on_shard=die_after_two, workers=1)
    assert not out.exists() and not summary_path_for(out).exists()
    work = tmp_path / ".scores.parquet.work"
    assert len(list(work.glob("part-*.parquet"))) == 3
    result = run_batch(tables, model=bundle, as_of=AS_OF, out=out, shard_size=300,
                       progress=False)
    assert result.summary["shards_resumed"] == 3
    assert out.read_bytes() == clean.read_bytes()
    assert not work.exists()  # cleaned up after success
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet",
                                                          "scores.summary.json"]


def test_parts_of_another_run_are_not_reused(tables, bundle, tmp_path, clean_run):
    clean, _ = clean_run
    out = tmp_path / "scores.parquet"
    with pytest.raises(Stop):
        run_batch(tables, model=bundle, as_of="2025-06-01", out=out, shard_size=300,
                  progress=False, on_shard=lambda i, n: (_ for _ in ()).throw(Stop()))
    result = run_batch(tables, model=bundle, as_of=AS_OF, out=out, shard_size=300,
                       progress=False)
    assert result.summary["shards_resumed"] == 0
    assert out.read_bytes() == clean.read_bytes()


def test_one_worker_and_several_write_the_same_bytes(clean_run, tables, bundle, tmp_path):
    clean, result = clean_run
    assert result.summary["workers"] == 2  # the fixture ran with the default: one per core
    one = run_batch(tables, model=bundle, as_of=AS_OF, out=tmp_path / "one.parquet",
                    shard_size=300, progress=False, workers=1)
    assert one.summary["workers"] == 1
    assert (tmp_path / "one.parquet").read_bytes() == clean.read_bytes()


def test_an_error_in_a_worker_stops_the_run_with_that_error(tables, bundle, tmp_path,
                                                             monkeypatch):
    import churnkit.jobs.batch as batch

    real = batch._score_flat
    third = tables.customers["customer_id"].iloc[600]

    def fails_on_the_third_shard(shard, **kwargs):
        if (shard.customers["customer_id"] == third).any():
            raise ValueError("boom in shard 3")
        return real(shard, **kwargs)

    monkeypatch.setattr(batch, "_score_flat", fails_on_the_third_shard)
    out = tmp_path / "scores.parquet"
    with pytest.raises(ValueError, match="boom in shard 3"):
        run_batch(tables, model=bundle, as_of=AS_OF, out=out, shard_size=300, progress=False,
                  workers=2)
    assert not out.exists() and not summary_path_for(out).exists()
    work = tmp_path / ".scores.parquet.work"
    assert not (work / "part-000002.parquet").exists()
    monkeypatch.setattr(batch, "_score_flat", real)
    result = run_batch(tables, model=bundle, as_of=AS_OF, out=out, shard_size=300,
                       progress=False, workers=2)
    assert result.summary["rows"] == shop_.N_CUSTOMERS


@pytest.fixture(scope="module")
def on_disk(tables, tmp_path_factory):
    root = tmp_path_factory.mktemp("disk")
    ck.save_tables(tables, root / "shop")
    return root / "shop", shop_.bundle_path()


def test_killed_process_then_rerun_gives_byte_identical_output(on_disk, tables, bundle,
                                                                tmp_path):
    data, model = on_disk
    clean = tmp_path / "clean.parquet"
    run_batch(tables, model=bundle, as_of=AS_OF, out=clean, shard_size=250, progress=False)
    out = tmp_path / "killed" / "scores.parquet"
    work = out.with_name(".scores.parquet.work")
    command = [sys.executable, "-m", "churnkit", "score", "--data", str(data), "--model",
               str(model), "--as-of", AS_OF, "--shard-size", "250", "--out", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300  # generous: the CI machine may be busy
    while (time.monotonic() < deadline and proc.poll() is None
           and len(list(work.glob("part-*.parquet"))) < 2):
        time.sleep(0.005)
    import psutil

    workers = psutil.Process(proc.pid).children()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # its worker processes die with it (none keeps writing parts behind the rerun's back)
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, f"worker processes outlived the killed job: {alive}"
    finished = len(list(work.glob("part-*.parquet")))
    assert 2 <= finished < 8, f"expected to kill mid-run, {finished} of 8 parts were done"
    assert not out.exists() and not summary_path_for(out).exists()
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming: {finished} of 8 shard(s)" in rerun.stderr, rerun.stderr
    assert out.read_bytes() == clean.read_bytes()
    assert summary_path_for(out).exists() and not work.exists()
    summary = json.loads(summary_path_for(out).read_text())
    assert summary["shards_resumed"] == finished and summary["rows"] == shop_.N_CUSTOMERS
    assert "Scored 2,000 customers" in rerun.stdout


def test_output_file_is_one_parquet_with_documented_metadata(clean_run):
    out, _ = clean_run
    file = pq.ParquetFile(out)
    meta = json.loads(file.schema_arrow.metadata[b"churnkit.scores"])
    assert meta["as_of"].startswith(AS_OF) and meta["format"] == 1
    assert file.metadata.num_row_groups == 7  # one per shard
    assert str(file.schema_arrow.field("as_of").type) == "timestamp[us, tz=UTC]"
    assert str(file.schema_arrow.field("top_drivers").type) == "string"


def _shop_dir(root: Path, tables: ck.Tables, *, drop_table: str | None = None,
              drop_column: tuple[str, str] | None = None) -> Path:
    ck.save_tables(tables, root)
    if drop_table:
        (root / f"{drop_table}.parquet").unlink()
    if drop_column:
        name, column = drop_column
        frame = pd.read_parquet(root / f"{name}.parquet").drop(columns=column)
        frame.to_parquet(root / f"{name}.parquet")
    return root


@pytest.mark.parametrize("problem, expected", [
    ({"drop_table": "orders"}, "orders"),
    ({"drop_column": ("orders", "amount")}, "amount"),
])
def test_bad_input_exits_1_naming_the_problem_and_writes_nothing(tmp_path, problem, expected):
    small = ck.synth.generate(200, seed=1, start="2024-01-01", end=AS_OF)[0]
    data = _shop_dir(tmp_path / "shop", small, **problem)
    out = tmp_path / "out" / "scores.parquet"
    result = cli("score", "--data", str(data), "--model", str(shop_.bundle_path()),
                 "--as-of", AS_OF, "--out", str(out))
    assert result.exit_code == 1, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("churnkit: error: the data breaks the contract")
    assert expected in result.stderr and "orders" in result.stderr
    assert not (tmp_path / "out").exists()


def test_bad_arguments_and_missing_model_exit_codes(tmp_path, on_disk):
    data, model = on_disk
    no_model = cli("score", "--data", str(data), "--model", str(tmp_path / "nope"),
                   "--as-of", AS_OF, "--out", str(tmp_path / "o" / "s.parquet"))
    assert no_model.exit_code == 3 and "no model bundle" in no_model.stderr
    assert len(no_model.stderr.strip().splitlines()) == 1
    not_parquet = cli("score", "--data", str(data), "--model", str(model), "--as-of", AS_OF,
                      "--out", str(tmp_path / "o" / "s.csv"))
    assert not_parquet.exit_code == 2 and ".parquet" in not_parquet.stderr
    bad_psi = cli("score", "--data", str(data), "--model", str(model), "--as-of", AS_OF,
                  "--out", str(tmp_path / "o" / "s.parquet"), "--psi-threshold", "-1")
    assert bad_psi.exit_code == 2 and "psi-threshold" in bad_psi.stderr
    assert not (tmp_path / "o").exists()


def test_a_corrected_export_with_the_same_row_counts_is_scored_afresh(tables, bundle, tmp_path):
    out = tmp_path / "scores.parquet"
    with pytest.raises(Stop):
        run_batch(tables, model=bundle, as_of=AS_OF, out=out, shard_size=300, progress=False,
                  workers=1, on_shard=lambda i, n: (_ for _ in ()).throw(Stop()))
    # One amount corrected in the first shard's rows, every row count unchanged (row 1: not
    # one of a sample of evenly spaced rows).
    orders = tables.orders.copy()
    row = 1
    orders.loc[orders.index[row], "amount"] = orders["amount"].iloc[row] * 10 + 1000
    corrected = tables.replace(orders=orders)
    said = io.StringIO()
    result = run_batch(corrected, model=bundle, as_of=AS_OF, out=out, shard_size=300,
                       progress=False, workers=1, console=Console(file=said, width=400))
    assert result.summary["shards_resumed"] == 0
    assert "holds parts of another run" in said.getvalue()
    customer = orders["customer_id"].iloc[row]
    got = read_scores(out).loc[[customer]]
    want = ck.score(corrected, as_of=AS_OF, bundle=bundle, customer_ids=[customer])
    assert got.loc[customer, "expected_value"] == want.loc[customer, "expected_value"]


def test_the_output_schema_follows_from_the_bundle_without_scoring(tables, bundle):
    from dataclasses import replace

    import pyarrow as pa

    from churnkit.scoring import schema_for, score_columns, to_arrow

    rows = tables.for_customers(tables.customers["customer_id"].iloc[:200])
    for b in (bundle, replace(bundle, timing=None, value=None, uplift=None)):
        scored = to_arrow(score_shard(rows, as_of=AS_OF, bundle=b))
        assert schema_for(score_columns(b), id_type=pa.int64()) == scored.schema


def test_no_customer_known_yet_gives_no_rows_with_every_column(tables, bundle):
    from churnkit.scoring import score_columns

    scored = ck.score(tables, as_of="2020-01-01", bundle=bundle)
    assert len(scored) == 0 and list(scored.columns) == score_columns(bundle)
    assert scored.index.name == "customer_id"


def test_both_sinks_say_what_they_wrote(clean_run):
    out, result = clean_run
    assert result.output == str(out)
    assert result.summary_path == str(summary_path_for(out))
    assert json.loads(summary_path_for(out).read_text()) == result.summary


def test_the_input_digest_reads_columns_in_several_arrow_chunks():
    # tables read from Parquet may hold a text column in several Arrow chunks
    import pyarrow as pa

    from churnkit.jobs.resume import content_digest

    whole = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([["a", None, "b"]])))
    one = ck.Tables(orders=pd.DataFrame({"category": whole}))
    chunked = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([["a", None], ["b"]])))
    other = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([["a", None], ["c"]])))
    assert content_digest(ck.Tables(orders=pd.DataFrame({"category": chunked}))) == \
        content_digest(one)
    assert content_digest(ck.Tables(orders=pd.DataFrame({"category": other}))) != \
        content_digest(one)
