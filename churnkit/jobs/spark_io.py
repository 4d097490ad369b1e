"""Spark's side of the job: a session set up for churnkit, the contract tables as Spark
DataFrames routed by customer, and the scores written as Parquet.

Needs the ``spark`` extra (``pip install 'churnkit[spark]'``) and Java 17 or newer.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa

try:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.sql.types import IntegralType
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "churnkit.jobs.spark needs PySpark (and Java 17+): pip install 'churnkit[spark]'"
    ) from exc

from churnkit.data.contract import REQUIRED_TABLES, TABLES, missing_tables
from churnkit.errors import DataSourceError
from churnkit.io import atomic_directory, find_table_file

__all__ = ["KEY", "TABLE", "DataFrame", "IntegralType", "SparkSession", "check_tables",
           "read_tables", "routed", "session", "spark_schema", "write_scores"]

#: Columns the routed frame adds; no table may have them.
KEY, TABLE = "_ck_key", "_ck_table"


def session(master: str = "local[2]", *, app_name: str = "churnkit", task_cpus: int = 1,
            config: Mapping[str, str] | None = None) -> SparkSession:
    """A Spark session set up for churnkit (or the active one with these settings applied).

    Session time zone UTC (churnkit's timestamps are UTC), Spark UI off, and Python workers on
    this interpreter unless ``PYSPARK_PYTHON`` says otherwise (the workers need churnkit and its
    dependencies). ``task_cpus`` is the cores each scoring task gets (and uses: LightGBM and
    DuckDB threads). On a cluster, pass ``master`` and ``config`` as your platform needs.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (SparkSession.builder.master(master).appName(app_name)
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.ui.enabled", "false")
               .config("spark.task.cpus", str(int(task_cpus)))
               .config("spark.sql.execution.arrow.pyspark.enabled", "true"))
    for key, value in (config or {}).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def read_tables(spark: SparkSession, source: str | Path) -> dict[str, DataFrame]:
    """The contract tables under ``source`` as Spark DataFrames, by table name.

    Each table is ``NAME.parquet``, a ``NAME/`` directory of Parquet parts or ``NAME.csv`` (with
    a header; read as text, churnkit's validation gives the kinds), as for ``churnkit score``.
    Any Spark-readable path works (``hdfs://``, ``s3a://``, ...) for Parquet directories.

    Raises
    ------
    DataSourceError
        A local ``source`` does not exist, or a required table is missing.
    """
    text = str(source)
    local = "://" not in text or text.startswith("file://")
    frames: dict[str, DataFrame] = {}
    if local:
        directory = Path(text.removeprefix("file://"))
        if not directory.is_dir():
            raise DataSourceError(f"data directory {directory} does not exist")
        for name in TABLES:
            path = find_table_file(directory, name)
            if path is None:
                continue
            if path.suffix == ".csv":
                frames[name] = spark.read.option("header", True).csv(str(path))
            else:
                frames[name] = spark.read.parquet(str(path))
    else:
        # Remote file systems: NAME/ directories of Parquet parts (no listing beforehand).
        for name in TABLES:
            try:
                frames[name] = spark.read.parquet(f"{text.rstrip('/')}/{name}")
            except Exception as exc:  # Spark's AnalysisException: path does not exist
                if name in REQUIRED_TABLES:
                    raise DataSourceError(f"cannot read table {name} under {text}: "
                                          f"{str(exc).splitlines()[0]}") from exc
    missing = missing_tables(frames)
    if missing:
        raise DataSourceError(f"required table(s) missing under {text}: {', '.join(missing)} "
                              "(expected NAME.parquet, a NAME/ directory or NAME.csv)")
    return frames


def check_tables(tables: Mapping[str, DataFrame]) -> dict[str, DataFrame]:
    unknown = [name for name in tables if name not in TABLES]
    if unknown:
        raise ValueError(f"unknown table(s) {', '.join(map(repr, unknown))}; the contract has "
                         f"{', '.join(TABLES)}")
    present = {name: frame for name, frame in tables.items() if frame is not None}
    missing = missing_tables(present)
    if missing:
        raise ValueError(f"required table(s) missing: {', '.join(missing)}")
    for name, frame in present.items():
        if not isinstance(frame, DataFrame):
            raise TypeError(f"table {name}: expected a Spark DataFrame, got "
                            f"{type(frame).__name__}")
        column = TABLES[name].customer_column
        if column not in frame.columns:
            raise ValueError(f"table {name}: column {column!r} is missing (every row is routed "
                             f"to its customer's shard by it); columns: {', '.join(frame.columns)}")
        clash = [c for c in frame.columns if c in (KEY, TABLE)]
        if clash:
            raise ValueError(f"table {name}: column name(s) {clash} are reserved by "
                             "churnkit.jobs.spark")
    return present


def routed(tables: Mapping[str, DataFrame]) -> DataFrame:
    """All tables in one DataFrame: the customer key, the table name and that table's row as a
    struct column (null in the other tables' rows), so one repartition co-locates a customer's
    rows of every table."""
    parts = []
    for name, frame in tables.items():
        column = TABLES[name].customer_column
        row = F.struct(*[F.col(f"`{c}`") for c in frame.columns]).alias(name)
        parts.append(frame.select(F.col(f"`{column}`").cast("string").alias(KEY),
                                  F.lit(name).alias(TABLE), row))
    routed = parts[0]
    for part in parts[1:]:
        routed = routed.unionByName(part, allowMissingColumns=True)
    return routed


def spark_schema(schema: pa.Schema):
    """The Spark schema of an Arrow schema, timestamps as UTC instants."""
    # TIMESTAMP (with the session's time zone), not TIMESTAMP_NTZ: the output's times are UTC
    # instants, as in the single-machine job's Parquet.
    return from_arrow_schema(schema, prefer_timestamp_ntz=False)


def write_scores(frame: DataFrame, out: str | Path, *, overwrite: bool = False) -> str:
    """Write the scores as a Parquet directory (one part per shard).

    A local ``out`` appears only when complete: Spark writes a temporary sibling that is renamed
    onto ``out`` (an existing ``out`` is refused unless ``overwrite``). Elsewhere (``hdfs://``,
    ``s3a://``) Spark's own output committer applies.
    """
    text = str(out)
    conf = frame.sparkSession.conf
    # Timestamps as Parquet TIMESTAMP(MICROS, UTC) like the single-machine job's file, not
    # Spark's legacy INT96 (which other readers see as naive nanoseconds).
    previous = conf.get(_TIMESTAMP_TYPE, None)
    conf.set(_TIMESTAMP_TYPE, "TIMESTAMP_MICROS")
    try:
        if "://" in text and not text.startswith("file://"):
            frame.write.mode("overwrite" if overwrite else "errorifexists").parquet(text)
            return text
        target = Path(text.removeprefix("file://"))
        with atomic_directory(target, overwrite=overwrite) as tmp:
            frame.write.mode("overwrite").parquet(str(tmp))
        return str(target)
    finally:
        if previous is None:
            conf.unset(_TIMESTAMP_TYPE)
        else:
            conf.set(_TIMESTAMP_TYPE, previous)


_TIMESTAMP_TYPE = "spark.sql.parquet.outputTimestampType"
