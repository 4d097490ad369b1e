"""The feature registry: every feature churnkit computes, grouped in families, in one list.

A :class:`~churnkit.features.family.Feature` says what a column means, in which unit and from
which tables; a :class:`~churnkit.features.family.Family` holds the features computed together,
each defined once as reductions over the known rows (:mod:`churnkit.features.reduce`; plus, for
a few, a step that needs population-level quantities) and once in SQL, the tests' oracle.
:func:`families` is the single list the engine builds from, the bundle's feature spec is read
from, and :func:`feature_reference_markdown` documents.

Every feature at ``as_of`` uses only what was known strictly before ``as_of`` (UTC): the rule of
:mod:`churnkit.data.timetravel`, applied once, by :func:`churnkit.features.arrays.known_at`.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from churnkit.features import (
    browsing,
    btyd,
    clock,
    complaints,
    consent,
    contacts,
    delivery,
    purchases,
)
from churnkit.features.family import Family, Feature

#: The family modules, in output column order.
_MODULES = (purchases, delivery, browsing, complaints, contacts, clock, btyd, consent)


@cache
def families() -> tuple[Family, ...]:
    """Every feature family, in output column order."""
    out = [module.FAMILY for module in _MODULES]
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


#: The feature reference's note on a feature marked with a trend (:attr:`Feature.trend`).
_TREND_NOTES = {
    "age": " *Drift check: grows with the calendar; only its young part is compared.*",
    "cycle": " *Drift check: follows the shop's sending calendar; compared relative to the "
             "shop's latest send.*",
}


def feature_reference_markdown() -> str:
    """The feature reference as Markdown: one section and table per family.

    Columns: name, description, unit, source tables, dtype. Generated from the registry, so the
    docs cannot drift from the code.
    """
    lines = [
        "# Feature reference",
        "",
        "Generated from `churnkit.features.registry`. One engine computes every feature for one "
        "customer or the whole base: NumPy reductions over each customer's known rows "
        "(`churnkit/features/reduce.py`), so a customer scored alone gets bitwise the row of the "
        "nightly run; each family's SQL definition is kept as the tests' independent oracle. "
        "Every feature at `as_of` uses only what was "
        "known strictly before `as_of` (UTC): rows at or after it do not exist, and values learned "
        "at or after it (an order's final status, a ticket's resolution, an open, a conversion, an "
        "unsubscribe) are not yet known. Windows of `w` days hold events with "
        "`as_of - w days <= time < as_of`. Counts are 0 when a customer has no rows; other "
        "values are empty (NaN) when there is nothing to measure. A family whose table is absent, "
        "or whose recorded column the shop left out (filled in with its contract default), is "
        "not computed and its columns are absent.",
        "",
    ]
    for fam in families():
        tables = ", ".join(fam.required_tables)
        if fam.optional_tables:
            tables += f" (and {', '.join(fam.optional_tables)} when present)"
        if fam.required_columns:
            tables += f", with {', '.join(f'`{c}`' for c in fam.required_columns)} recorded"
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
            desc = f.description.replace("|", "\\|") + _TREND_NOTES.get(f.trend, "")
            lines.append(
                f"| `{f.name}` | {desc} | {f.unit} | {', '.join(f.source_tables)} | {f.dtype} |"
            )
        lines.append("")
    return "\n".join(lines)
