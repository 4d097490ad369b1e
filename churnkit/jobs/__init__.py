"""Jobs over the whole customer base: the nightly batch (shards, worker processes, sinks, resume,
drift check) and the same scoring on Apache Spark."""

from churnkit.jobs.batch import (
    DEFAULT_SHARD_SIZE,
    BatchResult,
    print_summary,
    run_batch,
    score_shard,
)

__all__ = ["DEFAULT_SHARD_SIZE", "BatchResult", "print_summary", "run_batch", "score_shard"]
