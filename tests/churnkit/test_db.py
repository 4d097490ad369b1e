"""PostgreSQL as source and sink, against a real server (CHURNKIT_TEST_PG_URL, default
postgresql://postgres@127.0.0.1:5432/test). Without a reachable server every test here is
skipped, saying so."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pandas as pd
import pytest
from _pg import PG_URL, requires_pg

import churnkit as ck
from churnkit.io import connect
from churnkit.jobs import read_database_scores as read_scores
from churnkit.jobs import run_batch
from churnkit.scoring import read_scores as read_parquet_scores

pytestmark = [pytest.mark.postgres, pytest.mark.slow, requires_pg()]
import _batch_shop as shop_  # noqa: E402

AS_OF = shop_.AS_OF


@pytest.fixture(scope="module")
def schema():
    """A private schema per test module run (tests of several workers share the database)."""
    import psycopg

    name = f"ck_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    yield name
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {name} CASCADE")


def in_schema(schema: str) -> str:
    """The test URL with the schema first on the search path."""
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture(scope="module")
def pg_shop(schema):
    from churnkit.io.postgres import write_tables

    url = in_schema(schema)
    write_tables(shop_.shop(), url)
    return url


def test_load_tables_from_postgres_scores_like_the_files(pg_shop):
    tables = ck.load_tables(pg_shop)
    original = shop_.shop()
    assert tables.n_rows() == original.n_rows()
    bundle = shop_.bundle()
    from_db = ck.score(tables, as_of=AS_OF, bundle=bundle)
    from_memory = ck.score(original, as_of=AS_OF, bundle=bundle)
    pd.testing.assert_frame_equal(from_db, from_memory)


def test_missing_table_is_a_contract_error_naming_it(schema):
    from churnkit.io.postgres import write_tables

    url = in_schema(f"{schema}_empty")
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}_empty")
    try:
        small = ck.synth.generate(50, seed=1, start="2024-01-01", end=AS_OF)[0]
        write_tables(small.replace(orders=None), url)  # customers, browsing, ... but no orders
        with pytest.raises(ck.DataValidationError, match="orders"):
            ck.load_tables(url)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema}_empty CASCADE")


def test_unreachable_server_is_one_clear_line_and_exit_3(tmp_path):
    from typer.testing import CliRunner

    from churnkit.cli.app import app

    result = CliRunner().invoke(app, [
        "score", "--data", "postgresql://postgres@127.0.0.1:1/test", "--model",
        str(shop_.bundle_path()), "--as-of", AS_OF, "--out", str(tmp_path / "s.parquet")])
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("churnkit: error: cannot connect to")
    assert not any(tmp_path.iterdir())


def test_pg_sink_upsert_is_idempotent_and_keeps_other_nights(pg_shop, schema, tmp_path):

    out = f"{in_schema(schema)}#scores"
    bundle = shop_.bundle()
    first = run_batch(pg_shop, model=bundle, as_of=AS_OF, out=out, shard_size=700,
                      progress=False, work_dir=tmp_path / "w1")
    rows1 = read_scores(out, as_of=AS_OF)
    assert len(rows1) == rows1["customer_id"].nunique() == first.summary["rows"]
    again = run_batch(pg_shop, model=bundle, as_of=AS_OF, out=out, shard_size=700,
                      progress=False, work_dir=tmp_path / "w2")
    rows2 = read_scores(out, as_of=AS_OF)
    pd.testing.assert_frame_equal(rows1, rows2)  # same rows, no duplicates
    assert not (tmp_path / "w1").exists() and not (tmp_path / "w2").exists()
    other = "2025-06-01"
    run_batch(pg_shop, model=bundle, as_of=other, out=out, shard_size=700, progress=False,
              work_dir=tmp_path / "w3")
    everything = read_scores(out)
    assert everything.groupby("as_of").size().to_dict() == {
        pd.Timestamp(other, tz="UTC"): len(read_scores(out, as_of=other)),
        pd.Timestamp(AS_OF, tz="UTC"): len(rows1)}
    pd.testing.assert_frame_equal(read_scores(out, as_of=AS_OF), rows1)
    # the run summaries sit beside the scores, one per night, the latest run's
    with connect(in_schema(schema)) as conn:
        runs = conn.execute("SELECT as_of, model_version, summary FROM scores_runs "
                            "ORDER BY as_of").fetchall()
    assert [r[0] for r in runs] == [pd.Timestamp(other, tz="UTC"), pd.Timestamp(AS_OF, tz="UTC")]
    assert runs[1][2] == again.summary and runs[1][1] == bundle.metadata.version
    # like the Parquet sink, it says what it wrote and where the summary went
    assert again.output == f"{in_schema(schema)}#scores"
    assert again.summary_path == f"{in_schema(schema)}#scores_runs"
    # the same values as the Parquet output of the same night
    parquet = tmp_path / "s.parquet"
    run_batch(pg_shop, model=bundle, as_of=AS_OF, out=parquet, shard_size=700, progress=False)
    want = read_parquet_scores(parquet)
    got = rows1.set_index("customer_id")
    np.testing.assert_array_equal(got["churn_probability"].to_numpy(),
                                  want["churn_probability"].to_numpy())
    assert got["risk_band"].tolist() == want["risk_band"].tolist()
    assert got["top_drivers"].tolist() == want["top_drivers"].tolist()  # jsonb -> lists
    assert json.loads(json.dumps(first.summary))["counts"]["risk_band"] == (
        rows1["risk_band"].value_counts().sort_index().to_dict())


def test_failed_write_commits_nothing(pg_shop, schema, tmp_path):
    """A COPY that fails half way (a column of another type) rolls the whole night back."""
    import psycopg


    table = "scores_broken"
    with psycopg.connect(in_schema(schema), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (as_of timestamptz, customer_id bigint, "
                     "churn_probability double precision, risk_band integer, "
                     "PRIMARY KEY (as_of, customer_id))")
        conn.execute(f"INSERT INTO {table} VALUES ('{AS_OF}', 1, 0.5, 7)")
    with pytest.raises(ck.DataSourceError, match="nothing was committed"):
        run_batch(pg_shop, model=shop_.bundle(), as_of=AS_OF,
                  out=f"{in_schema(schema)}#{table}", shard_size=700, progress=False,
                  work_dir=tmp_path / "w")
    rows = read_scores(f"{in_schema(schema)}#{table}")
    assert len(rows) == 1 and rows.loc[0, "risk_band"] == 7  # last night's row untouched
