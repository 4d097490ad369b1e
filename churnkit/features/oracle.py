"""The SQL oracle: every family's definition in SQL, run by DuckDB, for the tests to compare with.

The engine (:mod:`churnkit.features.engine`) computes features with NumPy reductions; each
family also states its features in SQL over the *known-at-as_of* views of
:mod:`churnkit.features.views` (the time-travel rule written a second time, independently).
:func:`oracle_features` runs that statement, on a reused per-thread DuckDB connection, shard by
shard for large scopes, and adds the families' population steps: the property tests require the
engine to give the same frame. It is not a production path.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from churnkit.data.contract import as_utc_timestamp
from churnkit.data.tables import Tables
from churnkit.data.validation import validated
from churnkit.features.family import Family
from churnkit.features.population import (
    POPULATION_INPUTS,
    PopulationFit,
    population_from_columns,
)
from churnkit.features.registry import families
from churnkit.features.views import KNOWN_VIEWS, compose_sql

#: A scope with at most this many rows over all its tables (a few customers) runs on the
#: small-scope connection: one thread and no optimizer. For a handful of rows the statement's
#: fixed costs dominate (thread hand-offs, optimizer passes over a thousand-odd expressions),
#: while the unoptimized plan gives the same rows (tested) at no noticeable execution cost.
SMALL_SCOPE_ROWS = 20_000
#: Customers per shard of a large scope: the whole base is computed shard by shard (see
#: :meth:`churnkit.data.tables.Tables.iter_shards`), which bounds DuckDB's working memory and the
#: result's intermediate copies to one shard's worth.
SHARD_SIZE = 100_000


def _connect(threads: int, *, optimize: bool = True) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"threads": threads})
    # No DuckDB progress bar: long runs (the nightly job) show churnkit's own. (In Jupyter
    # without ipywidgets DuckDB refuses to change the setting at all; its bar is off there.)
    with contextlib.suppress(duckdb.InvalidInputException):
        con.execute("SET enable_progress_bar = false")
    # Session time zone UTC: date parts and day truncation of TIMESTAMPTZ are then UTC; local
    # times are computed explicitly with timezone(customer_tz, ts).
    con.execute("SET TimeZone = 'UTC'")
    # Output order comes from ORDER BY; not preserving scan order saves memory on big runs.
    con.execute("SET preserve_insertion_order = false")
    if not optimize:
        con.execute("PRAGMA disable_optimizer")
    return con


class FeatureEngine:
    """DuckDB connections set up for feature queries, reused across calls.

    Not thread-safe; :func:`engine` hands each thread its own. ``con`` (all cores) runs large
    scopes; a second one-thread connection without optimizer runs small scopes (see
    :data:`SMALL_SCOPE_ROWS`). Tables are registered for the duration of one query and released
    afterwards, so the engine never pins a shop's data.
    """

    def __init__(self, threads: int | None = None) -> None:
        self.con = _connect(threads or os.cpu_count() or 1)
        self._small: duckdb.DuckDBPyConnection | None = None
        #: Parsed statements of the small-scope connection, by SQL text (parsing the whole
        #: statement is a large part of a one-customer call).
        self._parsed: dict[str, duckdb.Statement] = {}

    @property
    def small(self) -> duckdb.DuckDBPyConnection:
        if self._small is None:
            self._small = _connect(1, optimize=False)
        return self._small

    def run(
        self,
        tables: Tables,
        as_of: pd.Timestamp,
        fams: Sequence[Family],
        *,
        small: bool | None = None,
    ) -> pd.DataFrame:
        """Run the families' statement; a frame indexed by ``customer_id`` (no Python steps).

        ``small`` picks the connection (default: by the scope's row count); both give the same
        frame.
        """
        if small is None:
            small = sum(tables.n_rows().values()) <= SMALL_SCOPE_ROWS
        if small:
            return self._run_small(tables, as_of, fams)
        return _to_frame(self.run_arrow(tables, as_of, fams))

    def run_arrow(self, tables: Tables, as_of: pd.Timestamp, fams: Sequence[Family]) -> pa.Table:
        """The families' statement on the large-scope connection, as an Arrow table."""
        sql = compose_sql(tuple(f.name for f in fams), frozenset(tables.present()))
        with _registered(self.con, tables):
            return self.con.sql(sql, params={"as_of": as_of.to_pydatetime()}).to_arrow_table()

    def _run_small(
        self, tables: Tables, as_of: pd.Timestamp, fams: Sequence[Family]
    ) -> pd.DataFrame:
        # execute() binds the cached parsed statement once (a relation parses and binds twice);
        # its NumPy result is typed here from the registry, as Arrow would type it.
        con = self.small
        sql = compose_sql(tuple(f.name for f in fams), frozenset(tables.present()))
        statement = self._parsed.get(sql)
        if statement is None:
            statement = self._parsed[sql] = con.extract_statements(sql)[0]
        with _registered(con, tables):
            columns = con.execute(statement, {"as_of": as_of.to_pydatetime()}).fetchnumpy()
        return _numpy_frame(columns, fams)


class _registered:
    """Context: ``tables`` registered as ``raw_<name>`` on ``con``; a failure aborts the query."""

    def __init__(self, con: duckdb.DuckDBPyConnection, tables: Tables) -> None:
        self.con, self.tables, self.names = con, tables, []

    def __enter__(self) -> None:
        for name, frame in self.tables.items():
            self.con.register(f"raw_{name}", frame)
            self.names.append(f"raw_{name}")

    def __exit__(self, kind, exc, tb) -> None:
        if exc is not None:
            self.con.abort()  # a half-read result would block the connection's next use
        for view in self.names:
            self.con.unregister(view)


def _to_frame(table: pa.Table) -> pd.DataFrame:
    # Each Arrow column is freed once converted, so the result never exists twice in full (Arrow
    # and pandas), which matters for memory on large shops.
    frame = table.to_pandas(self_destruct=True)
    return frame.set_index("customer_id")


def _numpy_frame(columns: dict[str, np.ndarray], fams: Sequence[Family]) -> pd.DataFrame:
    """The frame Arrow's conversion would give, from ``fetchnumpy`` columns (masked = NULL)."""
    out: dict[str, object] = {}
    for fam in fams:
        for feature in fam.features:
            values = columns[feature.name]
            if feature.dtype == "str":
                values = pd.array(np.ma.filled(values, np.nan) if np.ma.isMaskedArray(values)
                                  else values, dtype="str")
            elif np.ma.isMaskedArray(values):
                values = np.ma.filled(values.astype("float64"), np.nan)
            out[feature.name] = values
    ids = columns["customer_id"]
    index = pd.Index(ids, dtype="str" if ids.dtype == object else ids.dtype, name="customer_id")
    return pd.DataFrame(out, index=index)


_LOCAL = threading.local()
_REPLACED: list[FeatureEngine] = []  # see use_engine


def engine() -> FeatureEngine:
    """This thread's engine (created on first use, never at import)."""
    eng = getattr(_LOCAL, "engine", None)
    if eng is None:
        eng = _LOCAL.engine = FeatureEngine()
    return eng


def use_engine(*, threads: int | None = None) -> FeatureEngine:
    """Give this thread a new engine with ``threads`` DuckDB threads (default: every core).

    A forked worker process calls it first: a DuckDB connection must not cross a fork, and N
    workers on N cores each want one thread. The engine it replaces is kept, never closed:
    after a fork, closing the parent's connection (its threads are gone) crashes the process.
    """
    old = getattr(_LOCAL, "engine", None)
    if old is not None:
        _REPLACED.append(old)
    _LOCAL.engine = FeatureEngine(threads)
    return _LOCAL.engine


def sql_features(
    tables: Tables, as_of: pd.Timestamp, fams: Sequence[Family], *, shard_size: int = SHARD_SIZE
) -> pd.DataFrame:
    """The families' SQL columns for every customer of ``tables``, shard by shard if large.

    Shards are consecutive customer ranges (:meth:`Tables.iter_shards`); each gives its
    customers' rows, sorted, so their concatenation is the unsharded result.
    """
    eng = engine()
    if len(tables.customers) <= shard_size:
        return eng.run(tables, as_of, fams)
    parts = [eng.run_arrow(shard, as_of, fams)
             for shard in tables.iter_shards(shard_size=shard_size)]
    table = pa.concat_tables(parts)
    del parts  # the concatenation holds the only reference, so conversion can free as it goes
    return _to_frame(table)


def oracle_features(tables: Tables, *, as_of: object, population: PopulationFit | None = None
                    ) -> pd.DataFrame:
    """Every computable feature by the SQL definitions: what :func:`build_features` must equal.

    The population fit, when not given, is fitted from the SQL columns of the whole base.
    """
    cutoff = as_utc_timestamp(as_of).ceil("us")
    tables = validated(tables)
    fams = [fam for fam in families() if not fam.lacking(tables)]
    frame = sql_features(tables, cutoff, fams)
    if population is None:
        population = population_from_columns(
            {name: frame[name].to_numpy(dtype="float64", na_value=np.nan)
             for name in POPULATION_INPUTS}, cutoff)
    for fam in fams:
        if fam.finish is not None:
            columns = {f.name: frame[f.name].to_numpy() for f in fam.sql_features()}
            for name, values in fam.finish(columns, population).items():
                frame[name] = np.asarray(values, dtype="float64")
    frame.attrs = {"population": population}
    return frame


__all__ = ["KNOWN_VIEWS", "FeatureEngine", "compose_sql", "engine", "oracle_features",
           "sql_features", "use_engine"]
