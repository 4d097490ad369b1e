"""The feature registry: every feature churnkit computes, grouped in families, in one list.

A :class:`Feature` says what a column means, in which unit and from which tables; a
:class:`Family` holds the features computed together by one SQL statement over the
*known-at-as_of* views of :mod:`churnkit.features.views` (plus, for a few, a Python step that
needs population-level quantities). :func:`families` is the single list the engine builds from,
the bundle's feature spec is read from, and :func:`feature_reference_markdown` documents.

Every feature at ``as_of`` uses only what was known strictly before ``as_of`` (UTC): the rule of
:mod:`churnkit.data.timetravel`, applied once, in the engine's known views.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from churnkit.features.population import PopulationFit

#: Rolling windows, in days before ``as_of``: a window of ``w`` days holds events with
#: ``as_of - w days <= time < as_of``.
WINDOWS = (30, 90, 180, 365)
#: Output kinds. ``count`` is int64 and ``total`` float64 (a sum of amounts), both 0 when a customer
#: has no rows (a true zero); ``float`` is float64 and NaN when undefined (nothing to measure);
#: ``flag`` is bool (False without rows); ``str`` is text (empty when undefined).
DTYPES = ("count", "total", "float", "flag", "str")
#: Family modules of ``churnkit.features``, in output column order.
FAMILY_MODULES = (
    "purchases",
    "delivery",
    "browsing",
    "complaints",
    "contacts",
    "clock",
    "btyd",
    "consent",
)


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
    """

    name: str
    family: str
    description: str
    unit: str
    source_tables: tuple[str, ...]
    dtype: str = "float"
    python: bool = False
    model_input: bool = True

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"feature {self.name}: dtype {self.dtype!r} not in {DTYPES}")


#: ``finish(frame, population) -> {column: values}``: a family's Python step.
Finisher = Callable[["pd.DataFrame", "PopulationFit"], "dict[str, np.ndarray]"]


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
    finish
        Optional Python step computing the ``python`` features from the SQL columns and the
        population fit.
    optional_tables
        Tables used when present.
    """

    name: str
    description: str
    required_tables: tuple[str, ...]
    features: tuple[Feature, ...]
    sql: Callable[[frozenset[str]], str]
    finish: Finisher | None = None
    optional_tables: tuple[str, ...] = field(default=())

    def sql_features(self) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if not f.python)

    def python_features(self) -> tuple[Feature, ...]:
        return tuple(f for f in self.features if f.python)

    def available(self, present: Iterable[str]) -> bool:
        """True when every required table is present."""
        return set(self.required_tables) <= set(present)


def window_name(stem: str, window: int | None) -> str:
    """``orders_30d`` for a window of 30 days, ``orders_lifetime`` for ``None``."""
    return f"{stem}_lifetime" if window is None else f"{stem}_{window}d"


def window_text(window: int | None) -> str:
    return "ever (before as_of)" if window is None else f"in the {window} days before as_of"


def window_sql(window: int | None, age: str = "age_days") -> str:
    """SQL condition "the row is inside the window", given its age in days before as_of."""
    return "TRUE" if window is None else f"{age} <= {window}"


@cache
def families() -> tuple[Family, ...]:
    """Every feature family, in output column order (imported lazily: no import-time work)."""
    out = []
    for module in FAMILY_MODULES:
        out.append(importlib.import_module(f"churnkit.features.{module}").FAMILY)
    names = [f.name for fam in out for f in fam.features]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:  # a programming error: two families claim one column
        raise RuntimeError(f"duplicate feature names: {duplicated}")
    return tuple(out)


def family(name: str) -> Family:
    """The family called ``name``."""
    for fam in families():
        if fam.name == name:
            return fam
    raise KeyError(f"unknown feature family {name!r}; known: {[f.name for f in families()]}")


def all_features() -> tuple[Feature, ...]:
    """Every feature of every family, in output column order."""
    return tuple(f for fam in families() for f in fam.features)


def model_features(columns: Iterable[str]) -> tuple[str, ...]:
    """The general models' inputs among ``columns``, in registry order (see
    :attr:`Feature.model_input`)."""
    present = set(columns)
    return tuple(f.name for f in all_features() if f.model_input and f.name in present)


def feature_reference_markdown() -> str:
    """The feature reference as Markdown: one section and table per family.

    Columns: name, description, unit, source tables, dtype. Generated from the registry, so the
    docs cannot drift from the code.
    """
    lines = [
        "# Feature reference",
        "",
        "Generated from `churnkit.features.registry`. Every feature at `as_of` uses only what was "
        "known strictly before `as_of` (UTC): rows at or after it do not exist, and values learned "
        "at or after it (an order's final status, a ticket's resolution, an open, a conversion, an "
        "unsubscribe) are not yet known. Windows of `w` days hold events with "
        "`as_of - w days <= time < as_of`. Counts are 0 when a customer has no rows; other "
        "values are empty (NaN) when there is nothing to measure. A family whose table is absent "
        "is not computed and its columns are absent.",
        "",
    ]
    for fam in families():
        tables = ", ".join(fam.required_tables)
        if fam.optional_tables:
            tables += f" (and {', '.join(fam.optional_tables)} when present)"
        lines += [
            f"## {fam.name} ({len(fam.features)} features)",
            "",
            fam.description,
            "",
            f"Needs: {tables}.",
            "",
            "| name | description | unit | source | dtype |",
            "|---|---|---|---|---|",
        ]
        for f in fam.features:
            desc = f.description.replace("|", "\\|")
            lines.append(
                f"| `{f.name}` | {desc} | {f.unit} | {', '.join(f.source_tables)} | {f.dtype} |"
            )
        lines.append("")
    return "\n".join(lines)
