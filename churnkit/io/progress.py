"""The one Rich progress bar of churnkit's long commands (training stages, batch shards)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def progress_bar(console: Console | None = None, *, unit: str | None = None,
                 with_rate: bool = False, enabled: bool = True) -> Progress:
    """A progress bar: description, bar, done/total (``unit`` after it), an optional ``rate``
    task field, elapsed time and ETA, on ``console`` (stderr by default), kept when done."""
    columns = [TextColumn("[progress.description]{task.description}"), BarColumn(),
               MofNCompleteColumn()]
    if unit:
        columns.append(TextColumn(unit))
    if with_rate:
        columns.append(TextColumn("{task.fields[rate]}"))
    columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    return Progress(*columns, console=console or Console(stderr=True, highlight=False),
                    disable=not enabled, transient=False)
