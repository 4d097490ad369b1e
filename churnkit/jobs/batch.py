"""The nightly batch job: score the whole customer base, shard by shard, resumably and atomically.

``churnkit score --data SRC --model URI --as-of DATE --out DEST`` runs :func:`run_batch`:

1. load and validate the tables (a directory of Parquet/CSV files or a PostgreSQL URL);
2. cut them into consecutive customer shards (:meth:`churnkit.data.tables.Tables.iter_shards`) and
   score each with :func:`score_shard` -- the same ``build_features`` + ``score_features`` calls
   as :func:`churnkit.score`, so the rows equal ``ck.score`` on the whole base;
3. write each shard's flat rows as a Parquet part into a work directory (each part written under
   a temporary name and renamed: a part that exists is complete). A rerun after a crash skips the
   parts already there, so the job resumes where it died and gives byte-identical output;
4. assemble: Parquet -- stream the parts into one file under a temporary name, then rename it
   onto DEST (no DEST until complete); PostgreSQL -- in one transaction, delete the rows of this
   ``as_of`` and COPY the new ones in (an idempotent upsert; other nights are kept);
5. write the run summary (counts by action, risk band and channel, duration per stage, model
   version, drift) beside the output and remove the work directory.

The flat output schema (one row per customer; :data:`OUTPUT_COLUMNS` documents each column):
lists and dicts (``top_drivers``, ``policy_trace``) are JSON strings, timestamps are UTC.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnkit.data.contract import as_utc_timestamp
from churnkit.io.atomic import atomic_file
from churnkit.jobs.workers import default_workers, run_tasks
from churnkit.scoring.schema import (
    JSON_COLUMNS,
    OUTPUT_COLUMNS,
    OUTPUT_FORMAT,
    flatten,
    output_schema,
    read_scores,
    to_arrow,
    to_json_text,
)

#: The output-row names live in churnkit.scoring.schema; they are re-exported here, the module the
#: Spark job and users import them from.
__all__ = [
    "DEFAULT_SHARD_SIZE",
    "JSON_COLUMNS",
    "OUTPUT_COLUMNS",
    "OUTPUT_FORMAT",
    "BatchResult",
    "flatten",
    "output_schema",
    "print_summary",
    "read_scores",
    "run_batch",
    "score_shard",
    "to_arrow",
    "to_json_text",
]

if TYPE_CHECKING:
    from rich.console import Console

    from churnkit.data.tables import Tables
    from churnkit.scoring.bundle import ModelBundle

#: Customers per shard by default: bounded memory (about 0.5 GB of working set per 50k customers)
#: and a resume granularity of well under a minute of work.
DEFAULT_SHARD_SIZE = 50_000


def _score_with_features(tables: Tables, *, as_of: pd.Timestamp,
                         bundle: ModelBundle) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The scoring path of :func:`churnkit.score` for one shard, keeping its features (for the
    drift counts) and the seconds spent per stage."""
    from churnkit.features import build_features
    from churnkit.scoring.score import score_features

    t0 = time.perf_counter()
    # The same two calls as churnkit.scoring.score (the one scoring path); tests check equality.
    features = build_features(tables, as_of=as_of, population=bundle.population)
    t1 = time.perf_counter()
    if len(features) == 0:
        # No customer of this shard exists yet at as_of (ids given out in signup order and an
        # as_of in the past): no rows. The models refuse empty input, so they are not called.
        t2 = time.perf_counter()
        flat = pd.DataFrame({"as_of": pd.Series([], dtype="datetime64[us, UTC]"),
                             "customer_id": features.index.to_series(index=None)})
        return flat, features, {"features": t1 - t0, "models_and_policy": 0.0, "flatten": 0.0}
    scored = score_features(features, bundle)
    t2 = time.perf_counter()
    flat = flatten(scored, as_of=as_of, model=bundle.metadata.name,
                   model_version=bundle.metadata.version)
    t3 = time.perf_counter()
    return flat, features, {"features": t1 - t0, "models_and_policy": t2 - t1,
                            "flatten": t3 - t2}


def score_shard(tables: Tables, *, as_of: object, bundle: ModelBundle) -> pd.DataFrame:
    """The flat output rows of the customers in ``tables`` (one shard), as the batch job writes
    them (see :data:`OUTPUT_COLUMNS`). Per customer, so shards can be scored anywhere (one
    process, or a Spark task) and concatenated; ``as_of`` is required (naive = UTC)."""
    flat, _, _ = _score_with_features(tables, as_of=as_utc_timestamp(as_of), bundle=bundle)
    return flat


# -- the job -----------------------------------------------------------------------------------
@dataclass
class BatchResult:
    """What a run did: the output, the summary (also written as JSON) and its path."""

    output: str
    summary: dict
    summary_path: str | None
    stages: dict = field(default_factory=dict)


def is_database_url(text: str) -> bool:
    return text.startswith(("postgresql://", "postgres://"))


def summary_path_for(out: Path) -> Path:
    """``scores.parquet`` -> ``scores.summary.json`` beside it."""
    return out.with_name(f"{out.stem}.summary.json")


def default_work_dir(out: str, as_of: pd.Timestamp) -> Path:
    """Where shard parts wait: beside a Parquet output, else in the temp folder."""
    if not is_database_url(out):
        target = Path(out)
        return target.with_name(f".{target.name}.work")
    from churnkit.io.postgres import redact

    key = hashlib.sha256(f"{redact(out)}|{as_of.isoformat()}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "churnkit-batch" / key


def _fingerprint(tables: Tables, *, as_of: pd.Timestamp, bundle: ModelBundle,
                 shard_size: int) -> dict:
    """What must match for finished parts to be reused by a rerun."""
    ids = tables.customers["customer_id"]
    per_table = {name: len(frame) for name, frame in tables.items()}
    digest = hashlib.sha256()
    for name, frame in tables.items():
        digest.update(name.encode())
        # every column of ~1000 evenly spaced rows per table: milliseconds even at 1M
        # customers, and other data (or a corrected export) almost surely differ somewhere here
        sample = frame.iloc[:: max(1, len(frame) // 1000)]
        digest.update(pd.util.hash_pandas_object(sample, index=False).to_numpy().tobytes())
    return {
        "format": OUTPUT_FORMAT,
        "as_of": as_of.isoformat(),
        "model": bundle.metadata.name,
        "model_version": bundle.metadata.version,
        "model_created_at": bundle.metadata.created_at,
        "shard_size": int(shard_size),
        "customers": len(ids),
        "rows": per_table,
        "data_digest": digest.hexdigest(),
    }


def _prepare_work_dir(work: Path, fingerprint: dict, say: Callable[[str], None]) -> None:
    manifest = work / "manifest.json"
    if work.exists():
        old = json.loads(manifest.read_text()) if manifest.exists() else None
        if old == fingerprint:
            return
        say(f"the work directory {work} holds parts of another run (different data, model, "
            "as_of or shard size); starting afresh")
        shutil.rmtree(work)
    work.mkdir(parents=True)
    with atomic_file(manifest) as tmp:
        tmp.write_text(json.dumps(fingerprint, indent=1))


def _shard_sizes(tables: Tables, shard_size: int) -> list[int]:
    return [len(s.customers) for s in tables.iter_shards(shard_size=shard_size)]


def _shard(tables: Tables, shard_size: int, index: int) -> Tables:
    """Shard ``index`` of ``tables.iter_shards(shard_size=...)`` (the cuts are views: cheap)."""
    for k, shard in enumerate(tables.iter_shards(shard_size=shard_size)):
        if k == index:
            return shard
    raise IndexError(f"no shard {index} of {shard_size:,} customers")


def _part_path(work: Path, index: int) -> Path:
    return work / f"part-{index:06d}.parquet"


def _write_part(path: Path, flat: pd.DataFrame, drift_counts: dict | None,
                seconds: dict) -> None:
    table = to_arrow(flat)
    meta = {"seconds": seconds}
    if drift_counts is not None:
        meta["drift_counts"] = {k: v.tolist() for k, v in drift_counts.items()}
    table = table.replace_schema_metadata({"churnkit.part": json.dumps(meta)})
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def _progress(console: Console | None, enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("customers"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )


def _counts(column: pa.ChunkedArray | None) -> dict:
    if column is None:
        return {}
    out: dict[str, int] = {}
    for item in column.value_counts().to_pylist():
        key = "none" if item["values"] is None else str(item["values"])
        out[key] = out.get(key, 0) + int(item["counts"])
    return dict(sorted(out.items()))


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
    from rich.console import Console

    from churnkit.data.tables import Tables
    from churnkit.errors import DataSourceError
    from churnkit.io.files import load_tables
    from churnkit.models.drift import DEFAULT_THRESHOLD
    from churnkit.scoring.bundle import ModelBundle

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
    sink = _sink(out_text)  # checks the destination's form before any work

    t0 = time.perf_counter()
    bundle = model if isinstance(model, ModelBundle) else ModelBundle.load(model)
    tables = data if isinstance(data, Tables) else load_tables(data)
    if not tables.normalized:
        from churnkit.data.validation import validate

        tables = validate(tables)
    stages["load"] = time.perf_counter() - t0
    if not (tables.customers["signup_at"] < cutoff).any():
        raise ValueError(f"no customer signed up before --as-of {cutoff:%Y-%m-%d}: nothing to "
                         "score")
    sink.check()

    work = Path(work_dir) if work_dir is not None else default_work_dir(out_text, cutoff)
    fingerprint = _fingerprint(tables, as_of=cutoff, bundle=bundle, shard_size=shard_size)
    try:
        _prepare_work_dir(work, fingerprint, say)
    except OSError as exc:
        raise DataSourceError(f"cannot write the work directory {work}: {exc}") from exc
    drift = bundle.drift
    n_customers = len(tables.customers)
    shards = -(-n_customers // shard_size) if n_customers else 1
    done_before = [i for i in range(shards) if _part_path(work, i).exists()]
    if done_before:
        say(f"resuming: {len(done_before)} of {shards} shard(s) already scored in {work}")

    pending = sorted(set(range(shards)) - set(done_before))
    n_workers = min(default_workers() if workers is None else workers, max(len(pending), 1))
    sizes = _shard_sizes(tables, shard_size)

    def score_part(index: int) -> dict:
        """Score shard ``index`` and write its part (in a worker process when there are
        several); returns the seconds per stage."""
        shard = _shard(tables, shard_size, index)
        flat, features, seconds = _score_with_features(shard, as_of=cutoff, bundle=bundle)
        t1 = time.perf_counter()
        counts = drift.bin_counts(features) if drift is not None else None
        t2 = time.perf_counter()
        seconds["drift"] = t2 - t1
        _write_part(_part_path(work, index), flat, counts, seconds)
        seconds["write_parts"] = time.perf_counter() - t2
        return seconds

    with _progress(console, progress) as bar:
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
    schema, counts, drift_counts = _read_parts(parts, drift)
    report = None
    if drift is not None:
        report = drift.report(drift.psi_from_counts(drift_counts), threshold=threshold)
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
    summary_file = sink.commit(parts, schema, summary, stages, t_start, t0)
    shutil.rmtree(work, ignore_errors=True)
    if report is not None and report["drifted"]:
        listed = ", ".join(f"{k} {v:.2f}" for k, v in list(report["drifted"].items())[:5])
        say(f"warning: {len(report['drifted'])} feature(s) drifted from the training data "
            f"(PSI > {threshold:g}): {listed}")
    return BatchResult(sink.describe(), sink.summary, summary_file, stages)


def _read_parts(parts: list[Path], drift) -> tuple[pa.Schema, dict, dict | None]:
    """The common schema, the counts for the summary and the summed drift counts."""
    schema = None
    rows = 0
    tallies: dict[str, dict[str, int]] = {"action": {}, "risk_band": {}, "channel": {},
                                          "segment": {}}
    present: set[str] = set()
    drift_counts: dict[str, np.ndarray] | None = None
    for part in parts:
        file = pq.ParquetFile(part)
        meta = json.loads(file.schema_arrow.metadata[b"churnkit.part"])
        part_schema = file.schema_arrow.remove_metadata()
        if drift is not None:
            got = {k: np.asarray(v, dtype=np.int64) for k, v in meta["drift_counts"].items()}
            drift_counts = got if drift_counts is None else {
                k: drift_counts[k] + got[k] for k in drift_counts}
        if file.metadata.num_rows == 0:
            continue  # a shard with no customer known at as_of; not in the output
        if schema is None:
            schema = part_schema
        elif not part_schema.equals(schema):
            raise RuntimeError(f"shard part {part.name} has another schema than the first part")
        rows += file.metadata.num_rows
        cols = [c for c in tallies if c in part_schema.names]
        present.update(cols)
        if cols:
            table = file.read(columns=cols)
            for c in cols:
                for k, v in _counts(table[c]).items():
                    tallies[c][k] = tallies[c].get(k, 0) + v
    out = {c: (dict(sorted(tallies[c].items())) if c in present else None) for c in tallies}
    out["rows"] = rows
    if schema is None:
        raise ValueError("no customer exists before as_of: nothing to score (is --as-of before "
                         "the first signup?)")
    return schema, out, drift_counts


def _finish_summary(summary: dict, stages: dict, t_start: float, t_assemble: float) -> dict:
    stages["assemble"] = time.perf_counter() - t_assemble
    total = time.perf_counter() - t_start
    summary["finished_at"] = pd.Timestamp.now(tz="UTC").isoformat()
    summary["duration_seconds"] = round(total, 3)
    summary["stage_seconds"] = {k: round(v, 3) for k, v in stages.items()}
    return summary


def _readable(path: Path) -> None:
    """Give the output the permissions of a normally created file (the CRM reads it), not the
    owner-only ones of a temporary file."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


class _ParquetSink:
    def __init__(self, path: str) -> None:
        self.path = Path(path)
        if self.path.suffix != ".parquet":
            raise ValueError(f"--out must be a .parquet file or a postgresql:// URL, got {path!r}")
        self.summary: dict = {}

    def describe(self) -> str:
        return str(self.path)

    def check(self) -> None:
        from churnkit.errors import DataSourceError

        if self.path.is_dir():
            raise DataSourceError(f"--out {self.path} is a directory; give a .parquet file path")

    def commit(self, parts, schema, summary, stages, t_start, t0) -> str:
        meta = {b"churnkit.scores": json.dumps(
            {"format": OUTPUT_FORMAT, "as_of": summary["as_of"], "model": summary["model"],
             "model_version": summary["model_version"]}).encode()}
        summary_file = summary_path_for(self.path)
        with atomic_file(self.path) as tmp:
            with pq.ParquetWriter(tmp, schema.with_metadata(meta), compression="zstd") as writer:
                for part in parts:
                    table = pq.read_table(part)
                    if table.num_rows:
                        writer.write_table(table.replace_schema_metadata(meta))
            _readable(tmp)
            self.summary = _finish_summary(summary, stages, t_start, t0)
            # The summary goes first, then the scores: a visible scores file always has its
            # summary beside it.
            with atomic_file(summary_file) as stmp:
                stmp.write_text(json.dumps(self.summary, indent=1))
                _readable(stmp)
        return str(summary_file)


def _sink(out: str):
    if is_database_url(out):
        from churnkit.io.postgres import PostgresSink

        return PostgresSink(out)
    return _ParquetSink(out)



def print_summary(console: Console, result: BatchResult) -> None:
    """The run summary as Rich tables: rows, duration, counts by band/action/channel, drift."""
    from rich.table import Table

    s = result.summary
    console.print(
        f"Scored {s['rows']:,} customers as of {s['as_of'][:10]} with {s['model']} "
        f"{s['model_version']} in {s['duration_seconds']:.1f} s ({s['shards']} shard(s), "
        f"{s['shards_resumed']} resumed, {s.get('workers', 1)} worker process(es)) -> "
        f"{s['output']}"
    )
    counts = Table(title="Customers by", title_justify="left")
    counts.add_column("column")
    counts.add_column("value")
    counts.add_column("customers", justify="right")
    for column, tally in s["counts"].items():
        for value, n in (tally or {}).items():
            counts.add_row(column, value, f"{n:,}")
    console.print(counts)
    drift = s.get("drift")
    if drift is None:
        console.print("Drift: not checked (the bundle has no drift reference).")
    else:
        console.print(f"Drift: max PSI {drift['max_psi']} ({drift['max_feature']}); "
                      f"{len(drift['drifted'])} feature(s) above {drift['threshold']:g}: "
                      + (", ".join(f"{k} {v:.2f}" for k, v in drift["drifted"].items())
                         or "none"))
    if result.summary_path:
        console.print(f"Summary: {result.summary_path}")
