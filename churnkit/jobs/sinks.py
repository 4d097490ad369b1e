"""Where the nightly job's rows go: a Parquet file or a PostgreSQL table, both written whole.

A sink is told the destination when it is made, checked before any scoring, and committed once
every shard part exists: :class:`ParquetSink` streams the parts into one file under a temporary
name and renames it onto the destination (the summary lands beside it first);
:class:`PostgresSink` replaces that ``as_of``'s rows in one transaction (other nights are kept)
and records the summary in ``<table>_runs``. Both return a :class:`Committed`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnkit.data.contract import as_utc_timestamp
from churnkit.errors import DataSourceError
from churnkit.io import atomic_file, connect, copy_arrow, is_database_url, pg_type, redact
from churnkit.io.postgres import quoted_name, split_destination
from churnkit.scoring.schema import JSON_COLUMNS, OUTPUT_FORMAT

#: ``finish(summary) -> summary``: stamps the summary's end time and stage seconds; a sink calls
#: it at the moment its output becomes complete.
Finish = Callable[[dict], dict]


@dataclass(frozen=True)
class Committed:
    """What a sink wrote: the output (as :meth:`Sink.describe` names it), the finished run
    summary, and where the summary went (a ``.summary.json`` file or ``<table>_runs``)."""

    output: str
    summary: dict
    summary_location: str


class Sink(Protocol):
    def describe(self) -> str:
        """The destination, credentials redacted."""

    def check(self) -> None:
        """Fail before any scoring when the destination cannot be written."""

    def commit(self, parts: Sequence[Path], schema: pa.Schema, summary: dict,
               finish: Finish) -> Committed:
        """Write every part's rows as one output, atomically."""


def open_sink(out: str) -> Sink:
    """The sink for ``--out``: ``postgresql://...#table`` or a ``.parquet`` path."""
    return PostgresSink(out) if is_database_url(out) else ParquetSink(out)


def summary_path_for(out: Path) -> Path:
    """``scores.parquet`` -> ``scores.summary.json`` beside it."""
    return out.with_name(f"{out.stem}.summary.json")


def _readable(path: Path) -> None:
    """Give the output the permissions of a normally created file (the CRM reads it), not the
    owner-only ones of a temporary file."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


class ParquetSink:
    """One Parquet file, with its run summary as ``NAME.summary.json`` beside it."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        if self.path.suffix != ".parquet":
            raise ValueError(f"--out must be a .parquet file or a postgresql:// URL, got {path!r}")

    def describe(self) -> str:
        return str(self.path)

    def check(self) -> None:
        if self.path.is_dir():
            raise DataSourceError(f"--out {self.path} is a directory; give a .parquet file path")

    def commit(self, parts: Sequence[Path], schema: pa.Schema, summary: dict,
               finish: Finish) -> Committed:
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
            finished = finish(summary)
            # The summary goes first, then the scores: a visible scores file always has its
            # summary beside it.
            with atomic_file(summary_file) as stmp:
                stmp.write_text(json.dumps(finished, indent=1))
                _readable(stmp)
        return Committed(self.describe(), finished, str(summary_file))


class PostgresSink:
    """A PostgreSQL table keyed by ``(as_of, customer_id)``, and ``<table>_runs`` for the
    summaries; one transaction replaces one ``as_of``."""

    def __init__(self, url: str) -> None:
        self.url, self.table = split_destination(url)

    def describe(self) -> str:
        return f"{redact(self.url)}#{self.table}"

    def check(self) -> None:
        connect(self.url).close()

    def commit(self, parts: Sequence[Path], schema: pa.Schema, summary: dict,
               finish: Finish) -> Committed:
        from psycopg import sql

        runs = f"{self.table}_runs"
        table = quoted_name(self.table)

        def kind(f: pa.Field) -> sql.SQL:
            return sql.SQL(pg_type(f, json_columns=JSON_COLUMNS))

        try:
            with connect(self.url) as conn, conn.cursor() as cur:
                columns = [sql.SQL("{} {}").format(sql.Identifier(f.name), kind(f))
                           for f in schema]
                cur.execute(sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY (as_of, customer_id))"
                ).format(table, sql.SQL(", ").join(columns)))
                # A bundle with more components adds columns; older nights keep NULL there.
                for f in schema:
                    cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                        table, sql.Identifier(f.name), kind(f)))
                cur.execute(sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (as_of timestamptz PRIMARY KEY, model text, "
                    "model_version text, finished_at timestamptz, summary jsonb)"
                ).format(quoted_name(runs)))
                as_of = pd.Timestamp(summary["as_of"])
                cur.execute(sql.SQL("DELETE FROM {} WHERE as_of = %s").format(table), (as_of,))
                for part in parts:
                    rows = pq.read_table(part)
                    if rows.num_rows:  # an empty part is a shard with no customer yet
                        copy_arrow(cur, self.table, rows.replace_schema_metadata(None))
                finished = finish(summary)
                cur.execute(sql.SQL(
                    "INSERT INTO {} (as_of, model, model_version, finished_at, summary) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (as_of) DO UPDATE SET "
                    "model = EXCLUDED.model, model_version = EXCLUDED.model_version, "
                    "finished_at = EXCLUDED.finished_at, summary = EXCLUDED.summary"
                ).format(quoted_name(runs)), (as_of, summary["model"], summary["model_version"],
                                              pd.Timestamp(finished["finished_at"]),
                                              json.dumps(finished)))
        except DataSourceError:
            raise
        except Exception as exc:  # psycopg errors: one line naming the table, nothing committed
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataSourceError(f"cannot write scores to {self.describe()}: {reason} "
                                  "(nothing was committed)") from exc
        return Committed(self.describe(), finished, f"{redact(self.url)}#{runs}")


def read_database_scores(url: str, *, as_of: object | None = None) -> pd.DataFrame:
    """The scores in ``postgresql://...#table`` (one ``as_of``, or all), ordered by as_of and
    customer_id."""
    from psycopg import sql

    base, table = split_destination(url)
    query = sql.SQL("SELECT * FROM {}").format(quoted_name(table))
    params: tuple = ()
    if as_of is not None:
        query = query + sql.SQL(" WHERE as_of = %s")
        params = (as_utc_timestamp(as_of),)
    query = query + sql.SQL(" ORDER BY as_of, customer_id")
    with connect(base) as conn, conn.cursor() as cur:
        cur.execute(query, params)
        names = [d.name for d in cur.description]
        return pd.DataFrame.from_records(cur.fetchall(), columns=names)
