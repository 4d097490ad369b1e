"""Rich renderings of churnkit results for the terminal (the CLI and ``make demo``)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from rich.console import Console
from rich.table import Table

from churnkit.data.contract import CHANNELS
from churnkit.data.summary import ShopSummary


def _day(ts: pd.Timestamp | None) -> str:
    return "-" if ts is None or pd.isna(ts) else ts.strftime("%Y-%m-%d")


def _count(value: int | None) -> str:
    return "not recorded" if value is None else f"{value:,}"


def _lack(name: str) -> str:
    return f"no {name}" if "." in name else f"no {name} table"


def data_gaps(summary: ShopSummary, left_out: Mapping[str, tuple[str, ...]]) -> str | None:
    """One line on what the shop's data leave out and what churnkit filled in, or None.

    ``left_out`` maps each feature family not computed to what it lacks (as
    :func:`churnkit.features.left_out_families` gives it).
    """
    parts = []
    if left_out:
        parts.append(", ".join(f"{fam} ({', '.join(map(_lack, lacks))})"
                               for fam, lacks in left_out.items()) + " families left out")
    defaulted = set(summary.defaulted)
    if "customers" in defaulted:
        parts.append("customers derived from the first order")
    if "customers" in defaulted or {f"customers.consent_{ch}" for ch in CHANNELS} <= defaulted:
        parts.append("no consent: no channel")
    columns = sorted(d for d in defaulted if "." in d)
    if columns:
        parts.append("defaults for " + ", ".join(columns))
    if not parts:
        return None
    scope = "orders only" if summary.given == ("orders",) else "data gaps"
    return f"{scope}: " + "; ".join(parts)


def print_shop_summary(console: Console, summary: ShopSummary,
                       left_out: Mapping[str, tuple[str, ...]] | None = None) -> None:
    """The tables, the churn-relevant counts and (given ``left_out``) :func:`data_gaps`."""
    table = Table(title=f"Tables known before {_day(summary.as_of)}", title_justify="left")
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column("first", justify="right")
    table.add_column("last", justify="right")
    for t in summary.tables:
        table.add_row(t.name, f"{t.rows:,}", _day(t.first), _day(t.last))
    console.print(table)

    facts = Table(title="What matters for churn", title_justify="left", show_header=False)
    facts.add_column("what")
    facts.add_column("count", justify="right")
    facts.add_row("customers", f"{summary.customers:,}")
    facts.add_row("customers who never ordered", f"{summary.customers_without_orders:,}")
    facts.add_row("orders", f"{summary.orders:,}")
    facts.add_row("late deliveries", _count(summary.late_orders))
    facts.add_row("paid but never received (lost / not delivered)",
                  _count(summary.paid_not_received_orders))
    if summary.unresolved_tickets is not None:
        facts.add_row("unresolved complaints", f"{summary.unresolved_tickets:,}")
    facts.add_row("customers sleeping (no order for 30-90 days)", f"{summary.inactive_30_90d:,}")
    facts.add_row("customers lapsed (no order for 90+ days)", f"{summary.inactive_90d:,}")
    console.print(facts)
    gaps = None if left_out is None else data_gaps(summary, left_out)
    if gaps is not None:
        console.print(gaps, markup=False, highlight=False)


def print_frame(console: Console, frame: pd.DataFrame, *, title: str, float_format: str = "{:.2f}",
                index_name: str | None = None) -> None:
    """A small DataFrame as a Rich table (floats formatted, missing values as '-')."""
    table = Table(title=title, title_justify="left")
    table.add_column(index_name or str(frame.index.name or ""))
    for column in frame.columns:
        table.add_column(str(column), justify="right")
    for idx, row in frame.iterrows():
        cells = []
        for value in row:
            if value is None or (not isinstance(value, str) and pd.isna(value)):
                cells.append("-")
            elif isinstance(value, float) and value.is_integer():
                cells.append(f"{value:,.0f}")
            elif isinstance(value, float):
                cells.append(float_format.format(value))
            else:
                cells.append(str(value))
        table.add_row(str(idx), *cells)
    console.print(table)
