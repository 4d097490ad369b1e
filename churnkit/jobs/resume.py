"""Resuming a killed nightly run: the work directory of shard parts and the fingerprint that
says whether its parts belong to this run.

A part is reused only when everything that went into it is the same: the output format, as_of,
the model (name, version, creation time, compiled forests or not), the shard size, and the
**whole** input, hashed column by column from the loaded tables (so a corrected export with
the same row counts, read from files or from PostgreSQL, is scored afresh).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa

from churnkit.data.tables import Tables
from churnkit.io import atomic_file, is_database_url, redact
from churnkit.scoring.bundle import ModelBundle
from churnkit.scoring.schema import OUTPUT_FORMAT


def default_work_dir(out: str, as_of: pd.Timestamp) -> Path:
    """Where shard parts wait: beside a Parquet output, else in the temp folder."""
    if not is_database_url(out):
        target = Path(out)
        return target.with_name(f".{target.name}.work")
    key = hashlib.sha256(f"{redact(out)}|{as_of.isoformat()}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "churnkit-batch" / key


def _column_buffers(series: pd.Series) -> list:
    """The bytes that hold ``series``' values (times as UTC microseconds)."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return [series.dt.tz_convert(None).to_numpy(dtype="datetime64[us]").view("int64")]
    array = pa.array(series, from_pandas=True)
    if isinstance(array, pa.ChunkedArray):  # a column read from Parquet in several chunks
        array = array.combine_chunks()
    # An array may view a larger buffer: copy it out so that only its own values count.
    array = pa.concat_arrays([array]) if array.offset else array
    return [b for b in array.buffers() if b is not None]


def content_digest(tables: Tables) -> str:
    """A BLAKE2b digest of every value of every present table (names, columns, kinds, data):
    equal only for equal contents."""
    digest = hashlib.blake2b(digest_size=32)
    for name, frame in tables.items():
        digest.update(f"table {name} {len(frame)}".encode())
        for column, series in frame.items():
            digest.update(f"column {column} {series.dtype}".encode())
            for buffer in _column_buffers(series):
                digest.update(memoryview(buffer))
    return digest.hexdigest()


def fingerprint(tables: Tables, *, as_of: pd.Timestamp, bundle: ModelBundle,
                shard_size: int) -> dict:
    """What must match for finished parts to be reused by a rerun."""
    return {
        "format": OUTPUT_FORMAT,
        "as_of": as_of.isoformat(),
        "model": bundle.metadata.name,
        "model_version": bundle.metadata.version,
        "model_created_at": bundle.metadata.created_at,
        # compiled forests agree with LightGBM's to the last few bits only: parts of one kind
        "model_compiled": bundle.is_compiled(),
        "shard_size": int(shard_size),
        "rows": tables.n_rows(),
        "data_digest": content_digest(tables),
    }


def prepare_work_dir(work: Path, fingerprint: dict, say: Callable[[str], None]) -> None:
    """Keep ``work`` when its manifest matches ``fingerprint``; else start it afresh."""
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


def part_path(work: Path, index: int) -> Path:
    """Shard ``index``'s part (a part that exists is complete: parts are renamed into place)."""
    return work / f"part-{index:06d}.parquet"
