"""The nightly batch job: score the whole customer base, shard by shard, resumably and atomically.

``churnkit score --data SRC --model URI --as-of DATE --out DEST`` runs :func:`run_batch`:

1. load and validate the tables (a directory of Parquet/CSV files or a PostgreSQL URL);
2. cut them into consecutive customer shards (:meth:`churnkit.data.tables.Tables.iter_shards`) and
   score each with :func:`churnkit.score` (:func:`score_shard`), so the rows equal ``ck.score``
   on the whole base;
3. write each shard's flat rows as a Parquet part into a work directory (each part written under
   a temporary name and renamed: a part that exists is complete). A rerun after a crash skips the
   parts already there (:mod:`churnkit.jobs.resume`), so the job resumes where it died and gives
   byte-identical output;
4. assemble the parts into the destination (:mod:`churnkit.jobs.sinks`): one Parquet file, or
   one transaction on a PostgreSQL table;
5. write the run summary (counts by action, risk band and channel, duration per stage, model
   version, drift) beside the output and remove the work directory.

The flat output schema (one row per customer; :data:`churnkit.scoring.OUTPUT_COLUMNS` documents
each column):
lists and dicts (``top_drivers``, ``policy_trace``) are JSON strings, timestamps are UTC.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from rich.console import Console

from churnkit.data import Tables, as_utc_timestamp, validated
from churnkit.errors import DataSourceError
from churnkit.features import latest_send_age
from churnkit.io import atomic_file, load_tables, progress_bar
from churnkit.jobs.resume import default_work_dir, fingerprint, part_path, prepare_work_dir
from churnkit.jobs.sinks import open_sink
from churnkit.jobs.summary import BatchResult, finish_summary, read_parts
from churnkit.jobs.workers import default_workers, run_tasks
from churnkit.models.drift import DEFAULT_THRESHOLD, RATE_RATIO, rate_shift_text
from churnkit.scoring import ModelBundle, flatten, score, to_arrow
from churnkit.scoring.schema import OUTPUT_FORMAT

#: Customers per shard by default (the batch job, Spark and the CLI): bounded memory (about
#: 0.5 GB of working set per 50k customers) and a resume granularity of well under a minute.
DEFAULT_SHARD_SIZE = 50_000


def _score_flat(tables: Tables, *, as_of: pd.Timestamp, bundle: ModelBundle
                ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """One shard through :func:`churnkit.score`: its flat rows, its features (for the drift
    counts) and the seconds per stage."""
    seconds: dict[str, float] = {}
    scored, features = score(tables, as_of=as_of, bundle=bundle, timings=seconds,
                             with_features=True)
    t0 = time.perf_counter()
    flat = flatten(scored, as_of=as_of, model=bundle.metadata.name,
                   model_version=bundle.metadata.version)
    seconds["flatten"] = time.perf_counter() - t0
    return flat, features, seconds


def score_shard(tables: Tables, *, as_of: object, bundle: ModelBundle) -> pd.DataFrame:
    """The flat output rows of the customers in ``tables`` (one shard), as the batch job writes
    them (see :data:`churnkit.scoring.OUTPUT_COLUMNS`). Per customer, so shards can be scored
    anywhere (one process, or a Spark task) and concatenated; ``as_of`` is required
    (naive = UTC)."""
    flat, _, _ = _score_flat(tables, as_of=as_utc_timestamp(as_of), bundle=bundle)
    return flat


def _shard(tables: Tables, shard_size: int, index: int) -> Tables:
    """Shard ``index`` of ``tables.iter_shards(shard_size=...)`` (the cuts are views: cheap)."""
    for k, shard in enumerate(tables.iter_shards(shard_size=shard_size)):
        if k == index:
            return shard
    raise IndexError(f"no shard {index} of {shard_size:,} customers")


def _write_part(path: Path, flat: pd.DataFrame, drift_counts: dict | None,
                seconds: dict) -> None:
    table = to_arrow(flat)
    meta: dict = {"seconds": seconds}
    if drift_counts is not None:
        meta["drift_counts"] = {k: v.tolist() for k, v in drift_counts.items()}
    table = table.replace_schema_metadata({"churnkit.part": json.dumps(meta)})
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def run_batch(
    data: str | Path | Tables,
    *,
    model: str | Path | ModelBundle,
    as_of: object,
    out: str | Path,
    shard_size: int = DEFAULT_SHARD_SIZE,
    psi_threshold: float | None = None,
    work_dir: str | Path | None = None,
    console: Console | None = None,
    progress: bool = True,
    on_shard: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> BatchResult:
    """Score every customer of ``data`` as of ``as_of`` with ``model`` and write them to ``out``.

    Parameters
    ----------
    data
        A directory of the contract's tables, a PostgreSQL URL, or loaded :class:`Tables`.
    model
        A bundle directory, an MLflow URI (``models:/NAME@champion``) or a loaded bundle.
    as_of
        The scoring cutoff (required; naive = UTC).
    out
        A Parquet file path, or ``postgresql://...#table`` (table default ``churn_scores``).
    shard_size
        Customers per shard: bounds memory and is the unit of resumption.
    psi_threshold
        Warn about features whose PSI against the training data exceeds it (default
        :data:`churnkit.models.drift.DEFAULT_THRESHOLD`); needs a bundle with a ``drift`` component.
    work_dir
        Where finished shard parts wait (default: ``.NAME.work`` beside a Parquet output, or the
        temp folder for PostgreSQL). Kept when the run fails, so a rerun resumes; removed after
        success.
    on_shard
        Called as ``on_shard(index, n_done)`` after each newly scored shard (for tests and
        schedulers; an exception stops the run, leaving the finished parts for a rerun).
    workers
        Processes scoring shards at once (default: one per core; see :mod:`churnkit.jobs.workers`).
        Each holds one shard's working set; the loaded tables are shared. Stage seconds in the
        summary are summed over the workers.

    Raises
    ------
    churnkit.DataValidationError
        The data break the contract (nothing is written).
    churnkit.DataSourceError, FileNotFoundError
        The data, the model or the output cannot be read or written.
    """
    console = console or Console(stderr=True, highlight=False)
    say = lambda text: console.print(f"churnkit: {text}", markup=False, highlight=False)  # noqa: E731
    started = pd.Timestamp.now(tz="UTC")
    t_start = time.perf_counter()
    stages = {"load": 0.0, "features": 0.0, "models_and_policy": 0.0, "flatten": 0.0,
              "write_parts": 0.0, "drift": 0.0, "assemble": 0.0}
    cutoff = as_utc_timestamp(as_of, name="as_of")
    if shard_size < 1:
        raise ValueError(f"--shard-size must be >= 1, got {shard_size}")
    threshold = DEFAULT_THRESHOLD if psi_threshold is None else float(psi_threshold)
    if not threshold > 0:
        raise ValueError(f"--psi-threshold must be > 0, got {psi_threshold}")
    out_text = str(out)
    sink = open_sink(out_text)  # checks the destination's form before any work

    t0 = time.perf_counter()
    bundle = model if isinstance(model, ModelBundle) else ModelBundle.load(model)
    tables = validated(data if isinstance(data, Tables) else load_tables(data))
    stages["load"] = time.perf_counter() - t0
    if not (tables.customers["signup_at"] < cutoff).any():
        raise ValueError(f"no customer signed up before --as-of {cutoff:%Y-%m-%d}: nothing to "
                         "score")
    sink.check()

    work = Path(work_dir) if work_dir is not None else default_work_dir(out_text, cutoff)
    try:
        prepare_work_dir(work, fingerprint(tables, as_of=cutoff, bundle=bundle,
                                           shard_size=shard_size), say)
    except OSError as exc:
        raise DataSourceError(f"cannot write the work directory {work}: {exc}") from exc
    drift = bundle.drift
    # where the shop's sending calendar stands, from the whole contacts table (a shard's own
    # contacts would not know the base's latest send)
    send_age = latest_send_age(tables.get("contacts"), cutoff)
    n_customers = len(tables.customers)
    shards = -(-n_customers // shard_size) if n_customers else 1
    done_before = [i for i in range(shards) if part_path(work, i).exists()]
    if done_before:
        say(f"resuming: {len(done_before)} of {shards} shard(s) already scored in {work}")

    pending = sorted(set(range(shards)) - set(done_before))
    n_workers = min(default_workers() if workers is None else workers, max(len(pending), 1))
    sizes = [len(s.customers) for s in tables.iter_shards(shard_size=shard_size)]

    def score_part(index: int) -> dict:
        """Score shard ``index`` and write its part (in a worker process when there are
        several); returns the seconds per stage."""
        shard = _shard(tables, shard_size, index)
        flat, features, seconds = _score_flat(shard, as_of=cutoff, bundle=bundle)
        t1 = time.perf_counter()
        counts = (drift.bin_counts(features, send_age=send_age) if drift is not None
                  else None)
        t2 = time.perf_counter()
        seconds["drift"] = t2 - t1
        _write_part(part_path(work, index), flat, counts, seconds)
        seconds["write_parts"] = time.perf_counter() - t2
        return seconds

    with progress_bar(console, unit="customers", with_rate=True, enabled=progress) as bar:
        task = bar.add_task(f"Scoring as of {cutoff:%Y-%m-%d}"
                            + (f" ({n_workers} workers)" if n_workers > 1 else ""),
                            total=n_customers, rate="")
        bar.update(task, advance=sum(sizes[i] for i in done_before))
        t_loop = time.perf_counter()
        n_scored = 0

        def finished(index: int, seconds: dict) -> None:
            nonlocal n_scored
            for key, value in seconds.items():
                stages[key] += value
            n_scored += sizes[index]
            rate = n_scored / max(time.perf_counter() - t_loop, 1e-9)
            bar.update(task, advance=sizes[index], rate=f"{rate:,.0f}/s")
            if on_shard is not None:
                on_shard(index, n_scored)

        run_tasks(pending, score_part, workers=n_workers, on_result=finished)

    t0 = time.perf_counter()
    parts = sorted(work.glob("part-*.parquet"))
    if len(parts) != shards:  # pragma: no cover - iter_shards and the count agree
        raise RuntimeError(f"expected {shards} shard parts in {work}, found {len(parts)}")
    schema, counts, drift_counts = read_parts(parts, drift)
    report = None
    if drift is not None:
        report = drift.check(drift_counts, threshold=threshold)
    summary = {
        "format": OUTPUT_FORMAT,
        "as_of": cutoff.isoformat(),
        "model": bundle.metadata.name,
        "model_version": bundle.metadata.version,
        "output": sink.describe(),
        "rows": counts["rows"],
        "customers_in_data": n_customers,
        "shards": shards,
        "shard_size": shard_size,
        "shards_resumed": len(done_before),
        "workers": n_workers,
        "counts": {"action": counts["action"], "risk_band": counts["risk_band"],
                   "channel": counts["channel"], "segment": counts["segment"]},
        "drift": report,
        "started_at": started.isoformat(),
    }
    committed = sink.commit(parts, schema, summary,
                            lambda s: finish_summary(s, stages, t_start, t0))
    shutil.rmtree(work, ignore_errors=True)
    if report is not None and report["drifted"]:
        listed = ", ".join(f"{k} {v:.2f}" for k, v in list(report["drifted"].items())[:5])
        say(f"warning: {len(report['drifted'])} feature(s) drifted from the training data "
            f"(PSI > {threshold:g}): {listed}")
    if report is not None and report["rate_shifts"]:
        say(f"warning: {len(report['rate_shifts'])} event rate(s) moved ×{RATE_RATIO:g} or more "
            f"from the training data: {rate_shift_text(report['rate_shifts'])}")
    return BatchResult(committed.output, committed.summary, committed.summary_location, stages)
