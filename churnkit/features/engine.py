"""The feature engine: runs the statement of :mod:`churnkit.features.views`, one row per customer.

Leakage safety lives in the views (:mod:`churnkit.features.views`): every family reads only the
*known-at-as_of* views, never a raw table. This module runs the composed statement on a reused
per-thread DuckDB connection (a one-thread, unoptimized one for a few customers), shard by shard
for large scopes, and adds the families' Python steps with the population fit.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Sequence

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from churnkit.data.contract import as_utc_timestamp
from churnkit.data.tables import Tables
from churnkit.data.validation import validated
from churnkit.features.family import Family
from churnkit.features.population import PopulationFit, population_from_frame
from churnkit.features.registry import families, family
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


def _cutoff(as_of: object) -> pd.Timestamp:
    # Tables hold microseconds; rounding a finer as_of *up* keeps "time < as_of" unchanged.
    return as_utc_timestamp(as_of).ceil("us")


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


def fit_population(
    tables: Tables, *, as_of: object, shard_size: int = SHARD_SIZE
) -> PopulationFit:
    """Fit the population quantities on every customer of ``tables`` known before ``as_of``.

    Uses only data known strictly before ``as_of`` (UTC). See
    :class:`churnkit.features.population.PopulationFit`.
    """
    cutoff = _cutoff(as_of)
    tables = validated(tables)
    frame = sql_features(tables, cutoff, [family("purchases"), family("btyd")],
                         shard_size=shard_size)
    return population_from_frame(frame, cutoff)


def computed_families(tables: Tables) -> list[Family]:
    """The families computed on ``tables``: those lacking none of their required tables and
    recorded columns (see :meth:`Family.lacking`)."""
    return [fam for fam in families() if not fam.lacking(tables)]


def left_out_families(tables: Tables) -> dict[str, tuple[str, ...]]:
    """The families not computed on ``tables``, each with what it lacks (table names, or
    ``"table.column"`` for a column the shop did not record), in registry order."""
    return {fam.name: lacks for fam in families() if (lacks := fam.lacking(tables))}


def build_features(
    tables: Tables,
    *,
    as_of: object,
    customer_ids: Iterable[object] | None = None,
    population: PopulationFit | None = None,
    shard_size: int = SHARD_SIZE,
) -> pd.DataFrame:
    """Point-in-time features: one row per customer known at ``as_of``, from data before it.

    Parameters
    ----------
    tables
        The shop's tables, normalized by :func:`churnkit.validate` (validated here otherwise).
    as_of
        Required cutoff (parsed by :func:`churnkit.data.contract.as_utc_timestamp`; naive = UTC).
        Only what was known strictly before it is used: rows at or after it do not exist, and
        values learned at or after it (order status and delay, ticket resolution, compensation
        and satisfaction, opens, conversions, unsubscribes) are not yet known. Customers who
        sign up at or after it are absent.
    customer_ids
        Only these customers (unknown ids and customers not yet signed up are absent). Their
        rows equal those of the full run given the same ``population``.
    population
        Population-level fit to use (BG/NBD parameters, mean order value). ``None`` fits it on
        every customer of ``tables`` before ``as_of`` (before selecting ``customer_ids``).
    shard_size
        Customers per shard when the scope is larger: the SQL runs shard by shard (consecutive
        customer-id ranges) and the results are concatenated, which bounds the working memory;
        the frame is the same whatever the shard size. The population is fitted once, on the
        whole concatenated frame.

    Returns
    -------
    pandas.DataFrame
        Index ``customer_id`` (sorted), one column per feature of each computed family (see
        :func:`churnkit.features.feature_reference_markdown`). A family whose required table is
        absent is not computed and its columns are absent. ``attrs``: ``families`` (names
        computed), ``population`` (the :class:`PopulationFit` used), ``as_of``.
    """
    cutoff = _cutoff(as_of)
    tables = validated(tables)
    fams = computed_families(tables)
    scope = tables
    if customer_ids is not None:
        if population is None:
            population = fit_population(tables, as_of=cutoff, shard_size=shard_size)
        scope = tables.for_customers(customer_ids)
    frame = sql_features(scope, cutoff, fams, shard_size=shard_size)
    if population is None:
        population = population_from_frame(frame, cutoff)
    for fam in fams:
        if fam.finish is not None:
            for name, values in fam.finish(frame, population).items():
                frame[name] = np.asarray(values, dtype="float64")
    frame.attrs = {"families": [f.name for f in fams], "population": population, "as_of": cutoff}
    return frame


__all__ = [
    "KNOWN_VIEWS",
    "FeatureEngine",
    "build_features",
    "compose_sql",
    "computed_families",
    "engine",
    "fit_population",
    "left_out_families",
    "sql_features",
]
