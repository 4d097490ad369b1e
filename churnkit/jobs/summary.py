"""The nightly run's summary: counts by action, risk band, channel and segment over the shard
parts, the seconds per stage, and its printed form."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from churnkit.models.drift import RATE_RATIO, DriftReference, rate_shift_text

#: Columns the summary counts customers by.
COUNTED = ("action", "risk_band", "channel", "segment")


@dataclass
class BatchResult:
    """What a run did: the output, the summary (also written as JSON, or to ``<table>_runs``),
    where the summary went, and the seconds per stage."""

    output: str
    summary: dict
    summary_path: str | None
    stages: dict = field(default_factory=dict)


def _counts(column: pa.ChunkedArray) -> dict:
    out: dict[str, int] = {}
    for item in column.value_counts().to_pylist():
        key = "none" if item["values"] is None else str(item["values"])
        out[key] = out.get(key, 0) + int(item["counts"])
    return dict(sorted(out.items()))


def read_parts(parts: list[Path], drift: DriftReference | None
               ) -> tuple[pa.Schema, dict, dict | None]:
    """The parts' common schema, the counts for the summary (``rows`` and a tally per
    :data:`COUNTED` column, None for a column the output lacks) and the summed drift counts."""
    schema = None
    rows = 0
    tallies: dict[str, dict[str, int]] = {c: {} for c in COUNTED}
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
        cols = [c for c in COUNTED if c in part_schema.names]
        present.update(cols)
        if cols:
            table = file.read(columns=cols)
            for c in cols:
                for k, v in _counts(table[c]).items():
                    tallies[c][k] = tallies[c].get(k, 0) + v
    if schema is None:  # pragma: no cover - run_batch refuses an as_of before every signup
        raise RuntimeError("every shard part is empty")
    out: dict = {c: (dict(sorted(tallies[c].items())) if c in present else None)
                 for c in COUNTED}
    out["rows"] = rows
    return schema, out, drift_counts


def finish_summary(summary: dict, stages: dict, t_start: float, t_assemble: float) -> dict:
    """``summary`` stamped with its end: ``finished_at``, ``duration_seconds`` and
    ``stage_seconds`` (the ``assemble`` stage ending now)."""
    stages["assemble"] = time.perf_counter() - t_assemble
    summary["finished_at"] = pd.Timestamp.now(tz="UTC").isoformat()
    summary["duration_seconds"] = round(time.perf_counter() - t_start, 3)
    summary["stage_seconds"] = {k: round(v, 3) for k, v in stages.items()}
    return summary


def print_summary(console: Console, result: BatchResult) -> None:
    """The run summary as Rich tables: rows, duration, counts by band/action/channel, drift."""
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
        shifts = drift.get("rate_shifts") or {}
        console.print(f"Event rates: {len(shifts)} count feature(s) moved ×{RATE_RATIO:g} or more"
                      + (f": {rate_shift_text(shifts)}" if shifts else ""))
    if result.summary_path:
        console.print(f"Summary: {result.summary_path}")
