"""Jobs over the whole customer base: the nightly batch (shards, worker processes, sinks, resume,
drift check) and the same scoring on Apache Spark (``churnkit.jobs.spark``, needs pyspark)."""

from churnkit.jobs.batch import DEFAULT_SHARD_SIZE, run_batch, score_shard
from churnkit.jobs.sinks import (
    Committed,
    ParquetSink,
    PostgresSink,
    open_sink,
    read_database_scores,
    summary_path_for,
)
from churnkit.jobs.summary import BatchResult, print_summary

__all__ = [
    "DEFAULT_SHARD_SIZE",
    "BatchResult",
    "Committed",
    "ParquetSink",
    "PostgresSink",
    "open_sink",
    "print_summary",
    "read_database_scores",
    "run_batch",
    "score_shard",
    "summary_path_for",
]
