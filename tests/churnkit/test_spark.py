"""churnkit.jobs.spark in Spark local mode (local[2]): the same rows as the single-machine job.

Needs the ``spark`` extra and a Java runtime; without either, every test here skips and says
which one is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pandas as pd
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow


def _java_problem() -> str | None:
    java = shutil.which("java", path=os.path.join(os.environ["JAVA_HOME"], "bin")
                        if os.environ.get("JAVA_HOME") else None)
    if java is None:
        return "no Java runtime (java on PATH or JAVA_HOME): PySpark needs Java 17+"
    try:
        subprocess.run([java, "-version"], capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"Java at {java} does not run ({exc}): PySpark needs Java 17+"
    return None


pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e '.[spark]'")
if (_problem := _java_problem()) is not None:
    pytest.skip(_problem, allow_module_level=True)

from _batch_shop import AS_OF, N_CUSTOMERS, bundle, bundle_path, shop  # noqa: E402

import churnkit as ck  # noqa: E402
from churnkit.jobs import run_batch, score_shard  # noqa: E402
from churnkit.jobs import spark as cks  # noqa: E402
from churnkit.scoring import read_scores, to_arrow  # noqa: E402

SHARD_SIZE = 600  # 2,000 customers -> 4 shards: 4 tasks on 2 cores


@pytest.fixture(scope="module")
def spark():
    session = cks.session("local[2]", config={"spark.sql.shuffle.partitions": "4",
                                              "spark.driver.memory": "1g"})
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def on_disk(tmp_path_factory):
    root = tmp_path_factory.mktemp("spark-shop")
    ck.save_tables(shop(), root / "shop")
    return root / "shop"


@pytest.fixture(scope="module")
def single_machine(tmp_path_factory, on_disk):
    """The nightly job's output (churnkit score) on one machine, read back as flat rows."""
    out = tmp_path_factory.mktemp("batch") / "scores.parquet"
    run_batch(on_disk, model=bundle_path(), as_of=AS_OF, out=out, progress=False)
    return pq.read_table(out).to_pandas()


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("customer_id", kind="stable").reset_index(drop=True)


def assert_same_rows(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Same customers, columns, kinds and values, bitwise (the JSON columns as text): every
    shard runs the single machine's engine, whose sums do not depend on the shard or thread."""
    pd.testing.assert_frame_equal(_sorted(got), _sorted(expected), check_exact=True)


def test_spark_job_rows_equal_the_single_machine_job(spark, on_disk, single_machine, tmp_path,
                                                     capsys):
    """python -m churnkit.jobs.spark on the shop's Parquet files: one part per shard, and the same
    rows as `churnkit score` on one machine, value for value and kind for kind."""
    out = tmp_path / "scores"
    code = cks.main(["--data", str(on_disk), "--model", str(bundle_path()), "--as-of", AS_OF,
                     "--out", str(out), "--shard-size", str(SHARD_SIZE)])
    assert code == 0, capsys.readouterr().err
    assert f"scored {N_CUSTOMERS:,} customers" in capsys.readouterr().out
    assert len(list(out.glob("part-*.parquet"))) == -(-N_CUSTOMERS // SHARD_SIZE)
    got = _sorted(pq.read_table(out).to_pandas())
    expected = _sorted(single_machine)
    assert len(got) == len(expected) == got["customer_id"].nunique() == N_CUSTOMERS
    assert list(got.columns) == list(expected.columns)
    assert_same_rows(got, expected)  # same values, same kinds
    # and they are churnkit's scores: ck.score on the whole base gives the same probabilities
    direct = ck.score(shop(), as_of=AS_OF, bundle=bundle())
    probs = got.set_index("customer_id")["churn_probability"]
    pd.testing.assert_series_equal(probs.loc[direct.index], direct["churn_probability"],
                                   check_names=False, check_index_type=False,
                                   check_exact=True)
    assert got["risk_band"].nunique() > 1
    # the batch job's reader takes the Spark output directory too (JSON columns parsed)
    back = read_scores(out)
    drivers = back.loc[back["churn_probability"].idxmax(), "top_drivers"]
    assert isinstance(drivers, list) and drivers[0]["contribution"] > 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temp left"
    # an existing output is not replaced without --force
    again = cks.main(["--data", str(on_disk), "--model", str(bundle_path()), "--as-of", AS_OF,
                      "--out", str(out)])
    assert again == 3 and "already exists" in capsys.readouterr().err


def test_text_ids_from_spark_dataframes_keep_their_kind(spark):
    """Spark DataFrames in (not files), string customer ids: routed by id, one row per customer,
    equal to the single-machine scoring of the same tables; customer_id stays text. Only one
    customer has tickets, so most shards hold none (an empty table, not an absent one)."""
    tables = shop()
    renamed = {}
    for name, frame in tables.items():
        frame = frame.copy()
        if name == "tickets":
            frame = frame[frame["customer_id"] == frame["customer_id"].iloc[0]]
        frame["customer_id"] = "c" + frame["customer_id"].astype("str")
        renamed[name] = frame
    text_tables = ck.Tables(**renamed)
    frames = {name: spark.createDataFrame(frame) for name, frame in renamed.items()}
    frame = cks.score(frames, as_of=AS_OF, bundle=bundle(), spark=spark, n_shards=3)
    got = frame.toArrow().to_pandas()
    flat = score_shard(text_tables, as_of=AS_OF, bundle=bundle())
    expected = to_arrow(flat).to_pandas()  # through Arrow, as the Spark rows came
    assert frame.schema["customer_id"].dataType.simpleString() == "string"
    assert_same_rows(got, expected)


def test_missing_key_column_and_tables_are_refused_before_any_job(spark):
    orders = spark.createDataFrame(pd.DataFrame({"order_id": [1], "buyer": [7]}))
    customers = spark.createDataFrame(pd.DataFrame({"customer_id": [7]}))
    with pytest.raises(ValueError, match=r"table orders: column 'customer_id' is missing"):
        cks.score({"customers": customers, "orders": orders}, as_of=AS_OF, bundle=bundle(),
                  spark=spark)
    with pytest.raises(ValueError, match=r"required table\(s\) missing: orders"):
        cks.score({"customers": customers}, as_of=AS_OF, bundle=bundle(), spark=spark)
    with pytest.raises(ValueError, match=r"unknown table\(s\) 'ordrs'"):
        cks.score({"customers": customers, "orders": orders, "ordrs": orders}, as_of=AS_OF,
                  bundle=bundle(), spark=spark)


def test_bad_data_fails_the_job_with_the_problem_and_writes_nothing(spark, tmp_path, capsys):
    # one order with a status outside the contract, deep inside one shard
    bad_dir = tmp_path / "bad"
    orders = shop().orders.copy()
    orders.loc[orders.index[len(orders) // 2], "status"] = "teleported"
    ck.save_tables(shop().replace(orders=orders), bad_dir)
    bad_out = tmp_path / "bad-scores"
    code = cks.main(["--data", str(bad_dir), "--model", str(bundle_path()), "--as-of", AS_OF,
                     "--out", str(bad_out)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "DataValidationError" in err and "orders.status" in err and "teleported" in err
    assert not bad_out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bad-scores")]


def test_the_row_comparison_sees_a_changed_score_a_band_or_a_driver(single_machine):
    """The comparison above is bitwise: even a change in the last digits fails it."""
    rows = _sorted(single_machine)
    assert_same_rows(rows.copy(), rows)
    nudged = rows.copy()
    nudged["churn_probability"] = nudged["churn_probability"] * (1 + 1e-15)
    with pytest.raises(AssertionError):
        assert_same_rows(nudged, rows)
    changed = rows.copy()
    changed.loc[7, "churn_probability"] += 1e-6
    with pytest.raises(AssertionError):
        assert_same_rows(changed, rows)
    changed = rows.copy()
    changed.loc[7, "risk_band"] = "low" if rows.loc[7, "risk_band"] != "low" else "high"
    with pytest.raises(AssertionError):
        assert_same_rows(changed, rows)
    changed = rows.copy()
    drivers = json.loads(rows.loc[7, "top_drivers"])
    drivers[0]["contribution"] += 0.01
    changed.loc[7, "top_drivers"] = json.dumps(drivers)
    with pytest.raises(AssertionError):
        assert_same_rows(changed, rows)
