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

Nothing here runs at import; pyspark is imported when this module is (by
:mod:`churnkit.jobs.spark_io`, which holds the session, the routed input and the writer).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import math
import sys
import tarfile
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from threadpoolctl import threadpool_limits

from churnkit.data import TABLES, Tables, as_utc_timestamp, validate
from churnkit.errors import DataSourceError, DataValidationError
from churnkit.jobs.batch import DEFAULT_SHARD_SIZE, score_shard
from churnkit.jobs.spark_io import (
    KEY,
    TABLE,
    DataFrame,
    IntegralType,
    SparkSession,
    check_tables,
    read_tables,
    routed,
    session,
    spark_schema,
    write_scores,
)
from churnkit.scoring import ModelBundle, schema_for, score_columns, to_arrow

__all__ = ["DEFAULT_SHARD_SIZE", "check_tables", "read_tables", "score", "score_partition",
           "session", "task_error", "write_scores"]


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
    frames = {}
    for name in present:
        rows = batch.filter(pc.equal(batch[TABLE], name))[name]
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
    gathered = list(batches)
    if not gathered or sum(b.num_rows for b in gathered) == 0:
        return
    batch = pa.Table.from_batches(gathered)
    tables = _shard_tables(batch, present)
    if len(tables.customers) == 0:
        # Only events of customers the customers table lacks: the contract check reports them
        # (as on one machine); with nothing to score the shard is done.
        validate(tables)
        return
    bundle = _worker_bundle(digest, broadcast)
    # The task's cores, no more: LightGBM's OpenMP pool (the feature engine is one thread).
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
    cutoff = as_utc_timestamp(as_of, name="as_of")
    if n_shards is None and shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    if n_shards is not None and n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    spark = spark or SparkSession.getActiveSession() or session()
    frames = check_tables(read_tables(spark, tables) if isinstance(tables, (str, Path))
                           else tables)
    if not isinstance(bundle, ModelBundle):
        bundle = ModelBundle.load(bundle)
    present = tuple(name for name in TABLES if name in frames)
    payload = _bundle_bytes(bundle)
    digest = hashlib.sha256(payload).hexdigest()
    broadcast = spark.sparkContext.broadcast(payload)
    cores = int(spark.sparkContext.getConf().get("spark.task.cpus", "1"))

    rows = routed(frames)
    if n_shards is None:  # one small Spark job (Parquet answers it from the footers)
        n_shards = max(1, math.ceil(frames["customers"].count() / shard_size))
    arrow_schema = _output_schema(bundle, frames["customers"])
    return (rows.repartition(n_shards, KEY)
            .mapInArrow(functools.partial(score_partition, as_of=cutoff.isoformat(),
                                          present=present, digest=digest, broadcast=broadcast,
                                          cores=cores, schema=arrow_schema),
                        spark_schema(arrow_schema)))


def _output_schema(bundle: ModelBundle, customers: DataFrame) -> pa.Schema:
    """The flat rows' Arrow schema, known before the job runs (``mapInArrow`` needs it): the
    columns the bundle's scores have (:func:`churnkit.scoring.score_columns`), in the output's
    order and kinds; ``customer_id`` keeps the input's kind (integer or text)."""
    id_type = customers.schema["customer_id"].dataType
    kind = pa.int64() if isinstance(id_type, IntegralType) else pa.string()
    return schema_for(score_columns(bundle), id_type=kind)


# -- python -m churnkit.jobs.spark ----------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``python -m churnkit.jobs.spark``: score a directory of tables on Spark, write Parquet."""
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
