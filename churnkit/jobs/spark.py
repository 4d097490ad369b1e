"""Scoring beyond one machine: the same churnkit code per customer shard on Apache Spark.

Features and scores are per customer, so the whole base splits into customer shards that are
scored independently. :func:`score` puts every row of a customer -- in every contract table --
into the same Spark partition (hash of ``customer_id``), and each partition runs
:func:`churnkit.jobs.batch.score_shard` on its rows through ``mapInArrow``: the same calls, the same
flat rows and the same column kinds as the single-machine nightly job (``churnkit score``). The
model bundle travels once, as the bytes of its saved directory in a Spark broadcast; each Python
worker unpacks and loads it once and caches it. LightGBM (OpenMP) and DuckDB in a task use
``spark.task.cpus`` threads, so the cores Spark hands out are the cores the task uses.

Needs the ``spark`` extra (``pip install 'churnkit[spark]'``) and Java 17 or newer. Command line::

    python -m churnkit.jobs.spark --data DIR --model URI --as-of DATE --out DIR [--master local[2]]

Nothing here runs at import; pyspark is imported when this module is.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

try:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql import functions as F
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "churnkit.jobs.spark needs PySpark (and Java 17+): pip install 'churnkit[spark]'"
    ) from exc

from churnkit.data.contract import REQUIRED_TABLES, TABLES, as_utc_timestamp, missing_tables
from churnkit.errors import DataSourceError

if TYPE_CHECKING:
    from churnkit.scoring.bundle import ModelBundle

#: Customers per shard (one Spark partition each) by default: the single-machine job's shard
#: size, about 0.5 GB of working set per task.
DEFAULT_SHARD_SIZE = 50_000
#: Customers of the synthetic shop scored on the driver to learn the output schema.
SCHEMA_PROBE_CUSTOMERS = 100
_KEY, _TABLE = "_ck_key", "_ck_table"


# -- session and input -------------------------------------------------------------------------
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
    from churnkit.io.files import find_table_file

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


def _check_tables(tables: Mapping[str, DataFrame]) -> dict[str, DataFrame]:
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
        clash = [c for c in frame.columns if c in (_KEY, _TABLE)]
        if clash:
            raise ValueError(f"table {name}: column name(s) {clash} are reserved by "
                             "churnkit.jobs.spark")
    return present


def _routed(tables: Mapping[str, DataFrame]) -> DataFrame:
    """All tables in one DataFrame: the customer key, the table name and that table's row as a
    struct column (null in the other tables' rows), so one repartition co-locates a customer's
    rows of every table."""
    parts = []
    for name, frame in tables.items():
        column = TABLES[name].customer_column
        row = F.struct(*[F.col(f"`{c}`") for c in frame.columns]).alias(name)
        parts.append(frame.select(F.col(f"`{column}`").cast("string").alias(_KEY),
                                  F.lit(name).alias(_TABLE), row))
    routed = parts[0]
    for part in parts[1:]:
        routed = routed.unionByName(part, allowMissingColumns=True)
    return routed


# -- the bundle, broadcast once ----------------------------------------------------------------
def _bundle_bytes(bundle: ModelBundle) -> bytes:
    """The bundle's saved directory as gzip'd tar bytes (what the broadcast carries)."""
    with tempfile.TemporaryDirectory(prefix="churnkit-spark-") as tmp:
        saved = bundle.save(Path(tmp) / "bundle")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
            for path in sorted(saved.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(saved)), recursive=False)
        return buffer.getvalue()


#: Bundles a Python worker already unpacked, by digest of their bytes (workers are reused across
#: tasks, so each loads a bundle once).
_WORKER_BUNDLES: dict[str, ModelBundle] = {}


def _worker_bundle(digest: str, broadcast) -> ModelBundle:
    bundle = _WORKER_BUNDLES.get(digest)
    if bundle is None:
        from churnkit.scoring.bundle import ModelBundle

        with tempfile.TemporaryDirectory(prefix="churnkit-bundle-") as tmp:
            with tarfile.open(fileobj=io.BytesIO(broadcast.value), mode="r:gz") as tar:
                tar.extractall(tmp, filter="data")
            bundle = ModelBundle.load(tmp)
        _WORKER_BUNDLES.clear()  # one job's bundle at a time per worker
        _WORKER_BUNDLES[digest] = bundle
    return bundle


# -- the per-shard function --------------------------------------------------------------------
def _shard_tables(batch: pa.Table, present: tuple[str, ...]):
    """The partition's rows as churnkit ``Tables`` (not yet validated)."""
    from churnkit.data.tables import Tables

    frames = {}
    for name in present:
        rows = batch.filter(pc.equal(batch[_TABLE], name))[name]
        if len(rows) == 0:  # none of this shard's customers has rows in this table
            table = pa.schema(list(rows.type)).empty_table()
        else:
            table = pa.Table.from_struct_array(rows.combine_chunks())
        frames[name] = table.to_pandas()
    return Tables(**frames)


def score_partition(batches: Iterator[pa.RecordBatch], *, as_of: str, present: tuple[str, ...],
                    digest: str, broadcast, cores: int,
                    schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Score the customers of one partition (a shard): the ``mapInArrow`` function.

    Gathers the partition's routed rows, rebuilds the contract tables, and returns
    :func:`churnkit.jobs.batch.score_shard`'s flat rows as Arrow batches of ``schema``.
    """
    from threadpoolctl import threadpool_limits

    from churnkit.features.engine import engine
    from churnkit.jobs.batch import score_shard, to_arrow

    gathered = list(batches)
    if not gathered or sum(b.num_rows for b in gathered) == 0:
        return
    batch = pa.Table.from_batches(gathered)
    tables = _shard_tables(batch, present)
    if len(tables.customers) == 0:
        # Only events of customers the customers table lacks: the contract check reports them
        # (as on one machine); with nothing to score the shard is done.
        from churnkit.data.validation import validate

        validate(tables)
        return
    bundle = _worker_bundle(digest, broadcast)
    # The task's cores, no more: LightGBM's OpenMP pool and this thread's DuckDB connection.
    engine().con.execute(f"SET threads = {int(cores)}")
    with threadpool_limits(limits=int(cores), user_api="openmp"):
        flat = score_shard(tables, as_of=as_of, bundle=bundle)
    if pa.types.is_string(schema.field("customer_id").type):
        # Text ids that happen to be plain integers in this shard were read as int64 by
        # validation; the job's output keeps the input's text kind in every shard.
        flat["customer_id"] = flat["customer_id"].astype("str")
    table = to_arrow(flat, schema)
    yield from table.to_batches(max_chunksize=10_000)


# -- the job -----------------------------------------------------------------------------------
def score(
    tables: Mapping[str, DataFrame] | str | Path,
    *,
    as_of: object,
    bundle: ModelBundle | str | Path,
    spark: SparkSession | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    n_shards: int | None = None,
) -> DataFrame:
    """Score every customer on Spark: a DataFrame of the single-machine job's flat rows.

    Parameters
    ----------
    tables
        Spark DataFrames by contract table name (``customers`` and ``orders`` required), or a
        directory/URI that :func:`read_tables` reads.
    as_of
        The scoring cutoff (required; naive = UTC). Features use only what was known before it.
    bundle
        A loaded :class:`churnkit.ModelBundle`, a bundle directory or an MLflow URI; loaded
        (and checked) on the driver, then broadcast once.
    spark
        The session (default: the active one, else :func:`session`).
    shard_size, n_shards
        Customers per shard (one Spark partition and task each), or the number of shards.

    Returns
    -------
    pyspark.sql.DataFrame
        One row per customer with the columns and kinds of
        :data:`churnkit.scoring.OUTPUT_COLUMNS`
        (``as_of``, ``customer_id``, scores, drivers as JSON text, ..., ``model_version``), in
        no particular order. Lazy: the job runs when the frame is written or collected. A shard
        whose data break the contract fails the job with churnkit's validation message.
    """
    from churnkit.scoring.bundle import ModelBundle

    cutoff = as_utc_timestamp(as_of, name="as_of")
    if n_shards is None and shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    if n_shards is not None and n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    spark = spark or SparkSession.getActiveSession() or session()
    frames = _check_tables(read_tables(spark, tables) if isinstance(tables, (str, Path))
                           else tables)
    if not isinstance(bundle, ModelBundle):
        bundle = ModelBundle.load(bundle)
    present = tuple(name for name in TABLES if name in frames)
    payload = _bundle_bytes(bundle)
    digest = hashlib.sha256(payload).hexdigest()
    broadcast = spark.sparkContext.broadcast(payload)
    cores = int(spark.sparkContext.getConf().get("spark.task.cpus", "1"))

    routed = _routed(frames)
    if n_shards is None:  # one small Spark job (Parquet answers it from the footers)
        n_shards = max(1, math.ceil(frames["customers"].count() / shard_size))
    arrow_schema = _output_schema(bundle, cutoff, frames["customers"])
    spark_schema = _spark_schema(arrow_schema)
    return (routed.repartition(n_shards, _KEY)
            .mapInArrow(functools.partial(score_partition, as_of=cutoff.isoformat(),
                                          present=present, digest=digest, broadcast=broadcast,
                                          cores=cores, schema=arrow_schema), spark_schema))


def _output_schema(bundle: ModelBundle, as_of, customers: DataFrame) -> pa.Schema:
    """The flat rows' Arrow schema, known before the job runs (``mapInArrow`` needs it).

    The columns and their kinds depend on the bundle and the code, not on the data (see
    :func:`churnkit.jobs.batch.output_schema`), so they are read off the same scoring of a tiny
    synthetic shop on the driver; ``customer_id`` keeps the input's kind (integer or text).
    """
    from pyspark.sql.types import IntegralType

    from churnkit.jobs.batch import output_schema, score_shard
    from churnkit.synth import generate

    probe, _ = generate(SCHEMA_PROBE_CUSTOMERS, seed=0, start=as_of - pd.Timedelta(days=365),
                        end=as_of)
    schema = output_schema(score_shard(probe, as_of=as_of, bundle=bundle))
    id_type = customers.schema["customer_id"].dataType
    kind = pa.int64() if isinstance(id_type, IntegralType) else pa.string()
    return schema.set(schema.get_field_index("customer_id"),
                      pa.field("customer_id", kind, nullable=False))


def _spark_schema(schema: pa.Schema):
    from pyspark.sql.pandas.types import from_arrow_schema

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
        from churnkit.io.atomic import atomic_directory

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


# -- python -m churnkit.jobs.spark ----------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``python -m churnkit.jobs.spark``: score a directory of tables on Spark, write Parquet."""
    import argparse
    import time

    parser = argparse.ArgumentParser(
        prog="python -m churnkit.jobs.spark",
        description="Score every customer on Apache Spark (the same rows as `churnkit score`).")
    parser.add_argument("--data", required=True, help="directory/URI of the contract's tables")
    parser.add_argument("--model", required=True, help="bundle directory or MLflow URI")
    parser.add_argument("--as-of", required=True, help="scoring cutoff, e.g. 2025-07-01 (UTC)")
    parser.add_argument("--out", required=True, help="output Parquet directory")
    parser.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    parser.add_argument("--task-cpus", type=int, default=1, help="cores per scoring task")
    parser.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE,
                        help=f"customers per shard/task (default {DEFAULT_SHARD_SIZE})")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    import warnings

    from churnkit.errors import DataValidationError
    from churnkit.scoring.bundle import ModelBundle

    # PySpark 4 warns on pandas 3 wherever it checks versions; this job hands Spark Arrow only.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas",
                            category=FutureWarning)
    started = time.perf_counter()
    try:
        # Arguments, model and a local data directory are checked before the JVM starts.
        as_utc_timestamp(args.as_of, name="--as-of")
        data = args.data
        if "://" not in data and not Path(data).is_dir():
            raise DataSourceError(f"data directory {data} does not exist")
        bundle = ModelBundle.load(args.model)
        spark = session(args.master, task_cpus=args.task_cpus)
        frame = score(data, as_of=args.as_of, bundle=bundle, spark=spark,
                      shard_size=args.shard_size)
        written = write_scores(frame, args.out, overwrite=args.force)
        rows = spark.read.parquet(written).count()
    except DataValidationError as exc:
        print(f"churnkit: error: {exc}", file=sys.stderr)
        return 1
    except (DataSourceError, FileExistsError, FileNotFoundError, PermissionError) as exc:
        print(f"churnkit: error: {exc}", file=sys.stderr)
        return 3
    except ValueError as exc:
        print(f"churnkit: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a failed Spark job: say which churnkit error a task raised
        line = task_error(exc)
        print(f"churnkit: error: the Spark job failed: {line}", file=sys.stderr)
        return 1 if "DataValidationError" in line.splitlines()[0] else 3
    seconds = time.perf_counter() - started
    print(f"churnkit: scored {rows:,} customers as of {args.as_of} on {args.master} in "
          f"{seconds:.1f} s -> {written}")
    return 0


def task_error(exc: BaseException) -> str:
    """The churnkit error inside a failed Spark job, from the task's traceback text: the
    exception line (``churnkit.data.validation.DataValidationError: 2 data problem(s):``) and, for a
    contract failure, its problem lines."""
    lines = str(exc).splitlines()
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i].strip()
        if "Error:" in line or "Exception:" in line:
            problems = []
            for follow in lines[i + 1:]:
                if not follow.startswith("  - "):
                    break
                problems.append(follow.rstrip())
            return "\n".join([line, *problems])
    return lines[0] if lines else type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
