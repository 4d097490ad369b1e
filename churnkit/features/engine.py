"""The feature engine: every family's reductions on the shop's arrays, one row per customer.

One engine at every size. The tables become :class:`~churnkit.features.arrays.ShopArrays` (once
per tables object: a converted shop is kept while the tables live), the customers asked for are
cut out by slicing, the time-travel rule is applied once
(:func:`~churnkit.features.arrays.known_at`) and each family's ``compute`` reduces the known rows
per customer
(:mod:`churnkit.features.reduce`). The same code runs for one customer and for the whole base,
so a customer's row does not depend on who else is computed. The SQL definitions
(:mod:`churnkit.features.oracle`) are the tests' independent check of every column.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from churnkit.data.columns import FeatureColumns
from churnkit.data.contract import as_utc_timestamp
from churnkit.data.frames import text_array
from churnkit.data.tables import Tables
from churnkit.data.validation import validated
from churnkit.features.arrays import Known, ShopArrays, known_at
from churnkit.features.family import Columns, Family
from churnkit.features.margin import known_margin_shares
from churnkit.features.population import (
    POPULATION_INPUTS,
    PopulationFit,
    population_from_columns,
)
from churnkit.features.registry import families, family

_LOCK = threading.Lock()
#: Converted shops by the id of their tables; an entry goes when its tables are collected.
_CONVERTED: dict[int, ShopArrays] = {}


def shop_arrays(tables: Tables) -> ShopArrays:
    """``tables`` (validated) as arrays, converted once per tables object and kept while it lives.

    The service scores one customer at a time from the same loaded tables: the conversion (one
    pass over every table) is paid on the first call, each later call only slices.
    """
    key = id(tables)
    with _LOCK:
        shop = _CONVERTED.get(key)
    if shop is not None and shop.tables is tables:
        return shop
    shop = ShopArrays.of(tables)
    with _LOCK:
        _CONVERTED[key] = shop
    weakref.finalize(tables, _CONVERTED.pop, key, None)
    return shop


def _cutoff(as_of: object) -> pd.Timestamp:
    # Tables hold microseconds; rounding a finer as_of *up* keeps "time < as_of" unchanged.
    try:
        return _cached_cutoff(as_of)
    except TypeError:  # unhashable
        return as_utc_timestamp(as_of).ceil("us")


@functools.lru_cache(maxsize=64)
def _cached_cutoff(as_of: object) -> pd.Timestamp:
    return as_utc_timestamp(as_of).ceil("us")


def _micros(cutoff: pd.Timestamp) -> int:
    return int(cutoff.value) // 1000  # Timestamp.value is in nanoseconds


def compute_columns(known: Known, fams: Sequence[Family]) -> Columns:
    """The families' computed (non-population) columns for the customers of ``known``."""
    out: Columns = {}
    for fam in fams:
        values = fam.compute(known)
        out.update({name: values[name] for name in fam.computed_names})
    return out


#: The frame dtype of each registered kind (see :data:`~churnkit.features.family.DTYPES`).
_DTYPES = {"count": np.dtype(np.int64), "flag": np.dtype(bool), "total": np.dtype(np.float64),
           "float": np.dtype(np.float64), "str": pd.StringDtype(na_value=np.nan)}


_LAYOUTS: dict[tuple[int, ...], tuple[tuple[Family, ...], tuple[str, ...], tuple, tuple]] = {}


def _found_layout(fams: tuple[Family, ...]) -> tuple[tuple[Family, ...], tuple[str, ...], tuple,
                                                     tuple]:
    """The families, their feature names in output order, each one's frame dtype and each
    one's (name, NumPy dtype, its kind; None for text) (kept per set of families, found by
    identity: hashing a family hashes all its features)."""
    key = tuple(map(id, fams))
    found = _LAYOUTS.get(key)
    if found is None:
        features = [f for fam in fams for f in fam.features]
        dtypes = tuple(_DTYPES[f.dtype] for f in features)
        kinds = tuple((f.name, d, d.kind if isinstance(d, np.dtype) else None)
                      for f, d in zip(features, dtypes, strict=True))
        found = (fams, tuple(f.name for f in features), dtypes, kinds)
        if len(_LAYOUTS) >= 16:
            _LAYOUTS.clear()
        _LAYOUTS[key] = found  # holds the families: their ids stay theirs
    return found


def _layout(fams: tuple[Family, ...]) -> tuple[tuple[str, ...], tuple]:
    """The families' feature names in output order and each one's frame dtype."""
    found = _found_layout(fams)
    return found[1], found[2]


def _ordered(columns: Columns, fams: tuple[Family, ...]) -> dict[str, np.ndarray]:
    """The families' columns in output order, each of its dtype's kind (cast where it is
    not)."""
    out = {}
    ndarray = np.ndarray
    for name, dtype, kind in _found_layout(fams)[3]:
        values = columns[name]
        if kind is not None and (not isinstance(values, ndarray) or values.dtype.kind != kind):
            values = np.asarray(values, dtype=dtype)
        out[name] = values
    return out


def _index(known: Known) -> pd.Index:
    ids = known.ids
    # text ids from Arrow directly: pd.Index(ids, dtype="str")'s index at a fraction of its cost
    return pd.Index(text_array(ids) if ids.dtype == object else ids, name="customer_id")


def _frame(index: pd.Index, columns: dict[str, np.ndarray], dtypes: tuple) -> pd.DataFrame:
    """The feature frame, each column of its registered dtype: one block per dtype
    (consolidated), as a frame read from Parquet would be."""
    data = {name: pd.array(values, dtype=dtype) if not isinstance(dtype, np.dtype)
            else np.asarray(values, dtype=dtype)
            for (name, values), dtype in zip(columns.items(), dtypes, strict=True)}
    return pd.DataFrame(data, index=index, copy=True)


def fit_population(tables: Tables | ShopArrays, *, as_of: object) -> PopulationFit:
    """Fit the population quantities on every customer of ``tables`` known before ``as_of``.

    Uses only data known strictly before ``as_of`` (UTC). See
    :class:`churnkit.features.population.PopulationFit`.
    """
    cutoff = _cutoff(as_of)
    shop = tables if isinstance(tables, ShopArrays) else shop_arrays(validated(tables))
    known = known_at(shop, _micros(cutoff))
    columns = compute_columns(known, [family("purchases"), family("btyd")])
    return population_from_columns({k: columns[k] for k in POPULATION_INPUTS}, cutoff)


def computed_families(tables: Tables) -> list[Family]:
    """The families computed on ``tables``: those lacking none of their required tables and
    recorded columns (see :meth:`Family.lacking`)."""
    return [fam for fam in families() if not fam.lacking(tables)]


def left_out_families(tables: Tables) -> dict[str, tuple[str, ...]]:
    """The families not computed on ``tables``, each with what it lacks (table names, or
    ``"table.column"`` for a column the shop did not record), in registry order."""
    return {fam.name: lacks for fam in families() if (lacks := fam.lacking(tables))}


def build_features(
    tables: Tables | ShopArrays,
    *,
    as_of: object,
    customer_ids: Iterable[object] | None = None,
    population: PopulationFit | None = None,
) -> pd.DataFrame:
    """Point-in-time features: one row per customer known at ``as_of``, from data before it.

    Parameters
    ----------
    tables
        The shop's tables, normalized by :func:`churnkit.validate` (validated here otherwise),
        or the same converted to :class:`~churnkit.features.arrays.ShopArrays`.
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

    Returns
    -------
    pandas.DataFrame
        Index ``customer_id`` (sorted), one column per feature of each computed family (see
        :func:`churnkit.features.feature_reference_markdown`). A family whose required table is
        absent is not computed and its columns are absent. ``attrs``: ``families`` (names
        computed), ``population`` (the :class:`PopulationFit` used), ``as_of``.
    """
    known, data, fams, population, cutoff = _computed(tables, as_of, customer_ids, population)
    frame = _frame(_index(known), data, _layout(fams)[1])
    frame.attrs = {"families": [f.name for f in fams], "population": population, "as_of": cutoff}
    return frame


def feature_columns(
    tables: Tables | ShopArrays,
    *,
    as_of: object,
    customer_ids: Iterable[object] | None = None,
    population: PopulationFit | None = None,
) -> FeatureColumns:
    """:func:`build_features` as the scoring stages read it: the same columns and values as
    :class:`~churnkit.data.columns.FeatureColumns`, without building the frame (it is built
    only if :attr:`FeatureColumns.frame` is read, with empty ``attrs``). For one customer the
    frame is most of the cost after the reductions."""
    known, data, fams, _, _ = _computed(tables, as_of, customer_ids, population)
    index, dtypes = _index(known), _layout(fams)[1]
    return FeatureColumns.from_columns(index, data, dtypes, lambda: _frame(index, data, dtypes))


def margin_shares(
    tables: Tables | ShopArrays,
    *,
    as_of: object,
    default: float,
    by_category: Mapping[str, float],
    customer_ids: Iterable[object] | None = None,
) -> pd.Series:
    """Each customer's gross-margin share (docs/policy.md "Money in margin"): their
    revenue-weighted category mix of ``by_category`` (``default`` for other categories,
    uncategorized orders and customers without revenue), from the orders known strictly before
    ``as_of``, as :func:`build_features` sees them.

    Index ``customer_id``: the rows of ``build_features`` with the same arguments, in its order;
    values in (0, 1] when the shares are. See
    :func:`churnkit.features.margin.known_margin_shares`.
    """
    cutoff = _cutoff(as_of)
    shop = tables if isinstance(tables, ShopArrays) else shop_arrays(validated(tables))
    # Only the orders matter: the other event tables are neither sliced nor rolled back.
    shop = replace(shop, events={k: v for k, v in shop.events.items() if k == "orders"},
                   starts={k: v for k, v in shop.starts.items() if k == "orders"},
                   local={k: v for k, v in shop.local.items() if k == "orders"})
    if customer_ids is not None:
        shop = shop.take(shop.positions_of(customer_ids))
    known = known_at(shop, _micros(cutoff))
    return pd.Series(known_margin_shares(known, default, by_category), index=_index(known),
                     name="margin_share")


def _computed(tables: Tables | ShopArrays, as_of: object, customer_ids: Iterable[object] | None,
              population: PopulationFit | None
              ) -> tuple[Known, dict[str, np.ndarray], tuple[Family, ...], PopulationFit,
                         pd.Timestamp]:
    """What :func:`build_features` computes: the known customers, the columns in output order,
    the families computed, the population fit used and the cutoff."""
    cutoff = _cutoff(as_of)
    shop = tables if isinstance(tables, ShopArrays) else shop_arrays(validated(tables))
    fams = tuple(computed_families(shop.tables))
    if customer_ids is not None:
        if population is None:
            population = fit_population(shop, as_of=cutoff)
        shop = shop.take(shop.positions_of(customer_ids))
    known = known_at(shop, _micros(cutoff))
    columns = compute_columns(known, fams)
    if population is None:  # the whole base is computed: fit on its columns
        population = population_from_columns({k: columns[k] for k in POPULATION_INPUTS}, cutoff)
    for fam in fams:
        if fam.finish is not None:
            columns.update(fam.finish(columns, population))
    return known, _ordered(columns, fams), fams, population, cutoff


__all__ = [
    "build_features",
    "compute_columns",
    "computed_families",
    "feature_columns",
    "fit_population",
    "left_out_families",
    "margin_shares",
    "shop_arrays",
]
