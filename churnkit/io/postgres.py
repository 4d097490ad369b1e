"""PostgreSQL: connections, the contract's tables read and written, and the pieces a writer of
other tables shares (column types, COPY from Arrow, quoted names).

``ck.load_tables("postgresql://user@host:5432/db")`` reads the tables named as in the contract
(``customers``, ``orders``, and optionally ``browsing``, ``tickets``, ``contacts``; a
``?options=-csearch_path=shop`` in the URL picks another schema) and validates them like files.
The nightly job's score table is written by :mod:`churnkit.jobs.sinks` with these pieces.

psycopg 3 (the ``postgres`` extra) is imported only when a database URL is used.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from churnkit.data.contract import TABLES, missing_tables
from churnkit.data.tables import Tables
from churnkit.data.validation import validate as validate_tables
from churnkit.errors import DataSourceError, DataValidationError, Problem

DEFAULT_SCORES_TABLE = "churn_scores"
CONNECT_TIMEOUT_S = 10
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def is_database_url(text: str) -> bool:
    """Whether ``text`` names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    return str(text).startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages and summaries)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def split_destination(url: str) -> tuple[str, str]:
    """``postgresql://...#schema.table`` -> (connection URL, table name)."""
    base, _, table = url.partition("#")
    table = table or DEFAULT_SCORES_TABLE
    if not _IDENT.match(table):
        raise ValueError(f"--out table name {table!r} is not a plain [schema.]table identifier")
    return base, table


def connect(url: str, *, autocommit: bool = False):
    """A psycopg connection, or :class:`DataSourceError` naming the (redacted) URL."""
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - psycopg is in the postgres extra
        raise DataSourceError("PostgreSQL needs psycopg 3: pip install 'churnkit[postgres]'"
                              ) from exc
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataSourceError(f"cannot connect to {redact(url)}: {reason}") from exc


def quoted_name(name: str):
    """``[schema.]table`` as a psycopg SQL identifier."""
    from psycopg import sql

    return sql.Identifier(*name.split("."))


# -- source ------------------------------------------------------------------------------------
def _read_table(conn, name: str) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {name}")  # name is a contract table name, not user input
        names = [d.name for d in cur.description]
        numeric = [d.name for d in cur.description if d.type_code == 1700]  # NUMERIC -> float
        rows = cur.fetchall()
    frame = pd.DataFrame.from_records(rows, columns=names) if rows else pd.DataFrame(
        {n: pd.Series([], dtype=object) for n in names})
    for column in numeric:
        frame[column] = frame[column].map(lambda v: float(v) if isinstance(v, Decimal) else v)
    return frame


def load_tables_from_db(url: str, *, validate: bool = True) -> Tables:
    """Read the contract's tables from PostgreSQL (see the module docstring).

    Raises
    ------
    DataSourceError
        The server cannot be reached or a table cannot be read.
    churnkit.DataValidationError
        A required table is missing, or (``validate``) the data break the contract.
    """
    frames: dict[str, pd.DataFrame | None] = {}
    with connect(url) as conn:
        for name in TABLES:
            found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]
            if not found:
                frames[name] = None
                continue
            try:
                frames[name] = _read_table(conn, name)
            except Exception as exc:
                raise DataSourceError(f"cannot read table {name} from {redact(url)}: {exc}"
                                      ) from exc
    missing = missing_tables(n for n, frame in frames.items() if frame is not None)
    if missing:
        raise DataValidationError([
            Problem(name, None, 0, [], f"required table is missing (no table {name} in "
                    f"{redact(url)})") for name in missing])
    tables = Tables(**frames)  # type: ignore[arg-type]
    if not validate:
        return tables
    return validate_tables(tables)


_PG_TYPES = {
    pa.float64(): "double precision", pa.string(): "text", pa.int32(): "integer",
    pa.int64(): "bigint", pa.bool_(): "boolean", pa.timestamp("us", tz="UTC"): "timestamptz",
}


def pg_type(field: pa.Field, *, json_columns: Iterable[str] = ()) -> str:
    """The PostgreSQL column type of an Arrow field (``jsonb`` for the named JSON columns)."""
    if field.name in json_columns:
        return "jsonb"
    if pa.types.is_timestamp(field.type):
        return "timestamptz"
    try:
        return _PG_TYPES[field.type]
    except KeyError:
        raise ValueError(f"no PostgreSQL type for column {field.name} ({field.type})") from None


def copy_arrow(cur, table_name: str, table: pa.Table) -> None:
    """COPY an Arrow table into ``table_name`` as CSV (nulls unquoted, values quoted)."""
    from psycopg import sql

    columns = sql.SQL(", ").join(sql.Identifier(c) for c in table.column_names)
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
        quoted_name(table_name), columns)
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False,
                                                      quoting_style="all_valid"))
    with cur.copy(statement) as copy:
        view = buffer.getbuffer()
        step = 1 << 20
        for start in range(0, len(view), step):
            copy.write(view[start:start + step])


def _frame_to_arrow(frame: pd.DataFrame) -> pa.Table:
    arrays, names = [], []
    for name in frame.columns:
        series = frame[name]
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            values = series.dt.tz_convert(None).to_numpy(dtype="datetime64[us]")
            arrays.append(pa.array(values, type=pa.timestamp("us", tz="UTC"),
                                   mask=series.isna().to_numpy()))
        else:
            arrays.append(pa.array(series, from_pandas=True))
        names.append(str(name))
    return pa.Table.from_arrays(arrays, names=names)


def write_tables(tables: Tables, url: str, *, replace: bool = True) -> None:
    """Write every present table of ``tables`` to PostgreSQL under its contract name (for
    loading a shop into a database: tests, demos), each with an index on ``customer_id`` (what
    the service's store looks customers up by) and fresh planner statistics. ``replace`` drops
    existing tables first."""
    from psycopg import sql

    with connect(url) as conn, conn.cursor() as cur:
        for name, frame in tables.items():
            arrow = _frame_to_arrow(frame)
            columns = []
            for f in arrow.schema:
                kind = ("text" if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
                        else pg_type(pa.field(f.name, f.type)))
                columns.append(sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(kind)))
            if replace:
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(quoted_name(name)))
            cur.execute(sql.SQL("CREATE TABLE {} ({})").format(
                quoted_name(name), sql.SQL(", ").join(columns)))
            arrow = arrow.cast(pa.schema([
                pa.field(f.name, pa.string()) if pa.types.is_large_string(f.type) else f
                for f in arrow.schema]))
            copy_arrow(cur, name, arrow)
            if "customer_id" in arrow.schema.names:  # the service's per-customer lookups
                cur.execute(sql.SQL("CREATE INDEX ON {} (customer_id)").format(quoted_name(name)))
            cur.execute(sql.SQL("ANALYZE {}").format(quoted_name(name)))
