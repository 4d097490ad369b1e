"""What a feature is and how features are grouped: :class:`Feature` and :class:`Family`.

Each family module of :mod:`churnkit.features` defines one ``FAMILY``; the registry
(:mod:`churnkit.features.registry`) lists them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from churnkit.features.sql import ALL_WINDOWS, window_name, window_text

if TYPE_CHECKING:
    import numpy as np

    from churnkit.data.tables import Tables
    from churnkit.features.arrays import Known
    from churnkit.features.population import PopulationFit

#: Output kinds. ``count`` is int64 and ``total`` float64 (a sum of amounts), both 0 when a customer
#: has no rows (a true zero); ``float`` is float64 and NaN when undefined (nothing to measure);
#: ``flag`` is bool (False without rows); ``str`` is text (empty when undefined).
DTYPES = ("count", "total", "float", "flag", "str")
#: How a feature moves with the calendar by construction (:attr:`Feature.trend`): ``age`` grows
#: by one a day for every customer (tenure); ``cycle`` follows the shop's own sending calendar
#: (days since the last message: small after a campaign, large before the next one).
TRENDS = ("age", "cycle")

@dataclass(frozen=True)
class Feature:
    """One output column.

    Attributes
    ----------
    name
        Column name in the feature frame.
    family
        Name of the :class:`Family` that computes it.
    description
        What it measures, one sentence.
    unit
        ``days``, ``orders``, ``currency`` (the shop's), ``share`` (0-1), ``ratio``, ``flag``, ...
    source_tables
        Contract tables it reads.
    dtype
        One of :data:`DTYPES`; the engine casts and fills by it, so a column's dtype never
        depends on the data (one customer or a million give the same schema).
    python
        True when computed in the family's Python step (after the SQL), e.g. from population-fitted
        parameters.
    model_input
        False for a column that feeds one specific model rather than the general ones (the
        activity clock's 24 hour counts feed the timing model's hour profiles): the churn and
        value models leave it out (:func:`model_features`).
    trend
        One of :data:`TRENDS` for a feature that moves with the calendar whatever the customers
        do, or None. The nightly drift check compares such a feature in a way that does not
        fire on the calendar alone (:class:`churnkit.models.DriftReference`, docs/batch.md).
    """

    name: str
    family: str
    description: str
    unit: str
    source_tables: tuple[str, ...]
    dtype: str = "float"
    python: bool = False
    model_input: bool = True
    trend: str | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"feature {self.name}: dtype {self.dtype!r} not in {DTYPES}")
        if self.trend is not None and self.trend not in TRENDS:
            raise ValueError(f"feature {self.name}: trend {self.trend!r} not in {TRENDS}")


#: Feature columns by name, one value per customer.
Columns = dict[str, "np.ndarray"]
#: ``compute(known) -> {column: values}``: a family's features from what was known at as_of.
Computer = Callable[["Known"], Columns]
#: ``finish(columns, population) -> {column: values}``: the features that need the population
#: fit, from the family's computed columns.
Finisher = Callable[[Columns, "PopulationFit"], Columns]


@dataclass(frozen=True)
class Family:
    """Features computed together from the same tables.

    Attributes
    ----------
    name
        Family name (also the module name).
    description
        One paragraph for the docs.
    required_tables
        Contract tables that must be present; otherwise the family is not computed and its columns
        are absent from the frame.
    features
        Its columns, in output order.
    sql
        ``sql(present_tables) -> str``: a SELECT over the known views (``base``,
        ``known_orders``, ...), returning ``customer_id`` and every non-``python`` feature; it
        may use the parameter ``$as_of`` (TIMESTAMPTZ). ``present_tables`` lets a family use an
        optional table when it exists (the activity clock uses browsing when present).
    compute
        ``compute(known)``: every non-``python`` feature from the arrays of what was known at
        ``as_of`` (:class:`churnkit.features.arrays.Known`), one value per known customer, by
        the reductions of :mod:`churnkit.features.reduce`. This is what the engine runs; ``sql``
        is the same definition in SQL, kept as the tests' independent oracle.
    finish
        Optional step computing the ``python`` features from the computed columns and the
        population fit.
    optional_tables
        Tables used when present.
    required_columns
        ``"table.column"`` names the shop must have recorded: a column it left out, filled in
        by validation with its contract default (:attr:`Tables.defaulted`), is no evidence of
        what the family measures, so the family is not computed then.
    """

    name: str
    description: str
    required_tables: tuple[str, ...]
    features: tuple[Feature, ...]
    sql: Callable[[frozenset[str]], str]
    compute: Computer
    finish: Finisher | None = None
    optional_tables: tuple[str, ...] = field(default=())
    required_columns: tuple[str, ...] = field(default=())

    def sql_features(self) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if not f.python)

    @functools.cached_property
    def computed_names(self) -> tuple[str, ...]:
        """The names of :meth:`sql_features` (what ``compute`` returns), found once: the
        engine reads them on every call, one customer's included."""
        return tuple(f.name for f in self.sql_features())

    def python_features(self) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.python)

    def lacking(self, tables: Tables) -> tuple[str, ...]:
        """The required tables absent from ``tables`` and the required columns they did not
        record, in declaration order; empty when the family can be computed."""
        present = tables.present()
        return (*(t for t in self.required_tables if t not in present),
                *(c for c in self.required_columns if not tables.recorded(c)))


def description_of(module_doc: str | None) -> str:
    """A family's description: its module docstring without the first line (the title)."""
    return module_doc.split("\n\n", 1)[1].strip() if module_doc else ""


def windowed(stem: str, family: str, description: str, unit: str, source_tables: tuple[str, ...],
             dtype: str = "count", *, windows: tuple[int | None, ...] = ALL_WINDOWS
             ) -> list[Feature]:
    """One feature per window, named ``<stem>_30d`` ... ``<stem>_lifetime``, in ``windows`` order.

    ``description`` holds ``{window}`` where the window's words go ("in the 30 days before
    as_of", "ever (before as_of)").
    """
    return [Feature(window_name(stem, w), family, description.replace("{window}", window_text(w)),
                    unit, source_tables, dtype) for w in windows]
