"""The event store the service scores from: the rows of the requested customers, fresh per call.

:class:`ParquetStore` (the default) reads a directory of contract tables through one persistent
DuckDB connection. Every call re-reads the files, filtered to the requested customers, so rows
appended since the service started (a new Parquet part in ``tickets/``, a rewritten
``tickets.parquet``) are seen by the next request; files sorted by ``customer_id`` (as
:func:`churnkit.save_tables` writes them) let DuckDB skip every row group that cannot hold the
customers. :class:`DatabaseStore` does the same against PostgreSQL with one filtered query per
table. Both return :func:`churnkit.validate`-normalized :class:`churnkit.Tables`, so scoring sees
exactly the kinds the batch job sees.

A Parquet directory small enough (``memory_mb`` of files, ``CHURNKIT_STORE_MEMORY_MB``) is also
held in memory, validated and converted to the feature engine's arrays once, as a snapshot tagged
with the files' signature (path, size and modification time of every file). A call whose
signature equals the snapshot's slices its arrays (a binary search per table, no re-validation,
no conversion); a call that finds any file changed, added or removed reads the files through
DuckDB as above, and a background thread takes a new snapshot. Answers are therefore always
those of the files as they are at the call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Protocol

import duckdb
import pandas as pd

import churnkit as ck
from churnkit.data import REQUIRED_TABLES, TABLES, missing_tables
from churnkit.errors import StoreError
from churnkit.io import connect, find_table_file, redact

logger = logging.getLogger(__name__)


class EventStore(Protocol):
    #: "int" when customer ids are integers, else "str".
    id_kind: str

    def tables_for(self, customer_ids: Sequence[object]) -> ck.Tables: ...

    def data_for(self, customer_ids: Sequence[object]) -> ck.Tables | ck.ShopArrays: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


def open_store(source: str, *, memory_mb: float = 0) -> EventStore:
    """A :class:`DatabaseStore` for a URL (``postgresql://...``), else a :class:`ParquetStore`
    (held in memory while its files total at most ``memory_mb``)."""
    if "://" in source:
        return DatabaseStore(source)
    return ParquetStore(Path(source), memory_mb=memory_mb)


def _parts(path: Path) -> list[Path]:
    """The Parquet parts of a table directory, as pyarrow (and so :func:`churnkit.load_tables`)
    reads them: ``*.parquet`` files at any depth, skipping every file or folder whose name
    starts with ``.`` or ``_`` (writers' temporary and metadata files)."""
    out = []
    for file in path.rglob("*.parquet"):
        relative = file.relative_to(path).parts
        if not any(part.startswith((".", "_")) for part in relative):
            out.append(file)
    return sorted(out)


def _sql_literal(value: object) -> str:
    if isinstance(value, int):
        return str(int(value))
    return "'" + str(value).replace("'", "''") + "'"


class ParquetStore:
    """Contract tables in ``directory`` (``NAME.parquet``, ``NAME/`` parts, or ``NAME.csv``).

    Which files exist is looked up on every call, so a table created after the start (say the
    first ``tickets`` file) is picked up too. Thread-safe: one lock around the connection (the
    service scores one call at a time per worker anyway).
    """

    def __init__(self, directory: Path, *, memory_mb: float = 0) -> None:
        self.directory = Path(directory)
        self.memory_mb = memory_mb
        #: (signature, tables, the same as the feature engine's arrays)
        self._snapshot: tuple[tuple, ck.Tables, ck.ShopArrays] | None = None
        self._unusable: tuple | None = None  # the signature of files that failed to load
        self._refreshing = threading.Lock()
        self._next_refresh = 0.0  # monotonic time before which no new snapshot is started
        if not self.directory.is_dir():
            raise ck.DataSourceError(f"data directory {self.directory} does not exist")
        self._con = duckdb.connect(config={"threads": 1})
        self._con.sql("SET TimeZone = 'UTC'")
        self._lock = threading.Lock()
        missing = [n for n in REQUIRED_TABLES if find_table_file(self.directory, n) is None]
        if missing:
            raise ck.DataSourceError(f"data directory {self.directory} lacks the required "
                                     f"table(s) {', '.join(missing)} (NAME.parquet, NAME/ or "
                                     "NAME.csv)")
        self.id_kind = self._id_kind()
        if memory_mb > 0:
            self._take_snapshot()  # at start: the service is ready with its snapshot

    def _id_kind(self) -> str:
        """The kind :func:`churnkit.validate` gives the ids: ``"int"`` when every table holds
        integers, or text that is a plain integer (as CSV files hold them), else ``"str"``."""
        for name in TABLES:
            source = self._source(name)
            if source is None:
                continue
            ((kind, plain),) = self._con.sql(
                f"SELECT any_value(typeof(customer_id)), bool_and(regexp_full_match("
                f"CAST(customer_id AS VARCHAR), '0|[1-9][0-9]{{0,17}}')) FROM {source}"
            ).fetchall()
            if kind is None:  # no rows: says nothing
                continue
            if "INT" not in kind.upper() and not plain:
                return "str"
        return "int"

    def describe(self) -> str:
        held = "" if self._snapshot is None else ", held in memory"
        return f"parquet directory {self.directory}{held}"

    # -- the in-memory snapshot ------------------------------------------------------------------
    def signature(self) -> tuple:
        """(table, file, inode, size, mtime_ns, ctime_ns) of every file of every table: changes
        when a file is rewritten (in place or replaced), appended to, added or removed."""
        out = []
        for name in TABLES:
            path = find_table_file(self.directory, name)
            if path is None:
                continue
            for file in _parts(path) if path.is_dir() else [path]:
                try:
                    st = file.stat()
                except FileNotFoundError:  # removed while listing: a change
                    continue
                out.append((name, str(file), st.st_ino, st.st_size, st.st_mtime_ns,
                            st.st_ctime_ns))
        return tuple(out)

    def _take_snapshot(self) -> None:
        """Load, validate and keep the whole directory if it is small enough and did not change
        while being read; otherwise keep none (calls then read through DuckDB)."""
        if not self._refreshing.acquire(blocking=False):
            return  # one refresh at a time
        started = time.monotonic()
        try:
            before = self.signature()
            size_mb = sum(entry[3] for entry in before) / 2**20
            if size_mb > self.memory_mb:  # too big: not tried again in this process
                logger.info("event store: %.0f MB of files > CHURNKIT_STORE_MEMORY_MB=%g, "
                            "read through DuckDB on every call", size_mb, self.memory_mb)
                self._snapshot, self.memory_mb = None, 0
                return
            try:
                tables = ck.load_tables(self.directory)
            except Exception as exc:  # any failure: calls are served from the files
                # Not retried until a file changes; calls read (and validate) their rows only.
                lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
                logger.warning("event store: not held in memory (%s: %s); calls read the files",
                               type(exc).__name__, " ".join(lines[:3]))
                self._snapshot, self._unusable = None, before
                return
            shop = ck.shop_arrays(tables)  # converted once: a call then only slices
            if self.signature() == before:
                self._snapshot = (before, tables, shop)
        finally:
            # Files that change faster than a load: at most one load per load's duration
            # (at least a second), instead of loads back to back.
            self._next_refresh = time.monotonic() + max(1.0, time.monotonic() - started)
            self._refreshing.release()

    def _from_snapshot(self, ids: list[object], *, arrays: bool = False
                       ) -> ck.Tables | ck.ShopArrays | None:
        snapshot = self._snapshot
        if snapshot is None and self.memory_mb <= 0:
            return None
        now = self.signature()
        if snapshot is not None and snapshot[0] == now:
            if arrays:
                shop = snapshot[2]
                return shop.take(shop.positions_of(ids))
            return snapshot[1].for_customers(ids)
        if snapshot is not None and self._snapshot is snapshot:
            self._snapshot = None  # stale: free it now rather than hold two copies
        # Changed (or not taken yet): this call reads the files; a new snapshot follows.
        if (now != self._unusable and not self._refreshing.locked()
                and time.monotonic() >= self._next_refresh):
            threading.Thread(target=self._take_snapshot, name="churnkit-store-snapshot",
                             daemon=True).start()
        return None

    def _source(self, name: str) -> str | None:
        path = find_table_file(self.directory, name)
        if path is None:
            return None
        if path.is_dir():
            parts = _parts(path)
            if not parts:  # a directory with no part yet: the table is absent for now
                return None
            files = ", ".join(_sql_literal(str(f)) for f in parts)
            return f"read_parquet([{files}], union_by_name = true)"
        if path.suffix == ".csv":
            return f"read_csv({_sql_literal(str(path))}, header = true, all_varchar = true)"
        return f"read_parquet({_sql_literal(str(path))})"

    def data_for(self, customer_ids: Sequence[object]) -> ck.Tables | ck.ShopArrays:
        """What scoring reads for these customers: the snapshot's arrays sliced when it is
        held and current (no conversion per call), else :meth:`tables_for`."""
        held = self._from_snapshot(list(dict.fromkeys(customer_ids)), arrays=True)
        return held if held is not None else self.tables_for(customer_ids)

    def tables_for(self, customer_ids: Sequence[object]) -> ck.Tables:
        """The rows of these customers in every present table, validated and normalized."""
        ids = list(dict.fromkeys(customer_ids))
        held = self._from_snapshot(ids)
        if held is not None:
            return held  # type: ignore[return-value]
        frames: dict[str, pd.DataFrame | None] = {}
        with self._lock:
            for name in TABLES:
                source = self._source(name)
                if source is None:
                    frames[name] = None
                    continue
                if ids:
                    # Literal ids (not a list parameter) let DuckDB prune row groups by their
                    # customer_id statistics.
                    where = f"customer_id IN ({', '.join(_sql_literal(i) for i in ids)})"
                else:
                    where = "false"
                try:
                    frames[name] = self._con.sql(
                        f"SELECT * FROM {source} WHERE {where}").to_arrow_table().to_pandas()
                except duckdb.Error as exc:
                    raise StoreError(f"cannot read table {name} from {self.directory}: "
                                     f"{exc}") from exc
        return ck.validate(ck.Tables(**frames))  # type: ignore[arg-type]

    def close(self) -> None:
        with self._lock:
            self._con.close()


#: The query per table and call of :class:`DatabaseStore` (``table``: a contract table name).
CUSTOMER_ROWS = "SELECT * FROM {table} WHERE customer_id = ANY(%s)"


class DatabaseStore:
    """Contract tables in a PostgreSQL database (tables named as in the contract; a
    ``?options=-csearch_path=shop`` in the URL picks another schema, as for
    :func:`churnkit.load_tables`).

    One query per present table per call (:data:`CUSTOMER_ROWS`); the connection is opened once
    and re-opened after an error. Each query is an index lookup when the table has an index
    whose first column is ``customer_id`` (as :func:`churnkit.io.write_tables` creates); at
    start the store warns, naming them, about tables without one, which every call scans.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._redacted = redact(url)
        self._lock = threading.Lock()
        self._conn = None
        with self._lock:
            present = self._present()
        missing = missing_tables(present)
        if missing:
            raise ck.DataSourceError(f"{self.describe()} lacks the required table(s) "
                                     f"{', '.join(missing)}")
        ids = present.get("customers", present["orders"]).get("customer_id", "")
        self.id_kind = "int" if "int" in ids else "str"
        with self._lock:
            self.unindexed = self._unindexed(present)
        if self.unindexed:
            logger.warning(
                "%s: no index on customer_id in %s: every call scans these tables; create "
                "one per table (CREATE INDEX ON %s (customer_id))", self.describe(),
                ", ".join(self.unindexed), self.unindexed[0])

    def _unindexed(self, present: dict[str, dict[str, str]]) -> list[str]:
        """The present tables with a ``customer_id`` column but no index that starts with it."""
        rows = self._connection().execute(
            "SELECT t.relname FROM pg_index i "
            "JOIN pg_class t ON t.oid = i.indrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0] "
            "WHERE n.nspname = current_schema() AND a.attname = 'customer_id'").fetchall()
        indexed = {r[0] for r in rows}
        return [t for t in TABLES if "customer_id" in present.get(t, {}) and t not in indexed]

    def describe(self) -> str:
        return f"database {self._redacted}"  # never shows a password

    def _connection(self):
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.url, autocommit=True)
        return self._conn

    def _present(self) -> dict[str, dict[str, str]]:
        rows = self._connection().execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ANY(%s)",
            [list(TABLES)],
        ).fetchall()
        out: dict[str, dict[str, str]] = {}
        for table, column, kind in rows:
            out.setdefault(table, {})[column] = kind
        return out

    def tables_for(self, customer_ids: Sequence[object]) -> ck.Tables:
        """The rows of these customers in every present table, validated and normalized."""
        import psycopg

        ids = list(dict.fromkeys(customer_ids))
        frames: dict[str, pd.DataFrame | None] = {}
        with self._lock:
            try:
                present = self._present()
                for name in TABLES:
                    if name not in present:
                        frames[name] = None
                        continue
                    # name is a contract table name, not user input; the ids are a parameter
                    cur = self._connection().execute(CUSTOMER_ROWS.format(table=name), [ids])
                    columns = [d.name for d in cur.description or []]
                    numeric = [d.name for d in cur.description or [] if d.type_code == 1700]
                    rows = cur.fetchall()
                    frame = pd.DataFrame.from_records(rows, columns=columns) if rows else \
                        pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
                    for column in numeric:  # NUMERIC -> float, as ck.load_tables reads it
                        frame[column] = frame[column].map(
                            lambda v: float(v) if isinstance(v, Decimal) else v)
                    frames[name] = frame
            except (psycopg.Error, ck.DataSourceError) as exc:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                raise StoreError(f"cannot read {self.describe()}: {exc}") from exc
        return ck.validate(ck.Tables(**frames))  # type: ignore[arg-type]

    def data_for(self, customer_ids: Sequence[object]) -> ck.Tables:
        """What scoring reads for these customers: :meth:`tables_for`."""
        return self.tables_for(customer_ids)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
