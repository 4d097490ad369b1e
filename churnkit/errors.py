"""Every error churnkit raises on purpose, in one place.

Each names what is wrong and what was expected, so that the CLI can print it as one line (or the
problem list) and the service can turn it into a 4xx. The CLI's exit codes follow the class:
:class:`DataValidationError` 1, :class:`DataSourceError` 3, the rest 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class DataSourceError(ValueError):
    """The source cannot be read at all (missing directory, unreadable file, unknown scheme)."""


@dataclass(frozen=True)
class Problem:
    """One way in which the data breaks the contract: table, column, rows and what was expected."""

    table: str
    column: str | None
    n_rows: int
    examples: list = field(default_factory=list)
    message: str = ""
    id_column: str | None = None

    def __str__(self) -> str:
        where = self.table if self.column is None else f"{self.table}.{self.column}"
        rows = f" {self.n_rows} row{'s' if self.n_rows != 1 else ''}:" if self.n_rows else ""
        examples = ""
        if self.examples:
            shown = ", ".join(str(e) for e in self.examples)
            examples = f" (e.g. {self.id_column or 'row'} {shown})"
        return f"{where}:{rows} {self.message}{examples}"


class DataValidationError(ValueError):
    """The data breaks the contract; ``problems`` lists every way it does."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} data problem(s):\n{lines}")


class PolicyConfigError(ValueError):
    """A policy config that cannot be used, with the key and what was expected."""


class BundleMismatchError(ValueError):
    """The bundle was trained on features that this code no longer computes the same way."""


class StoreError(RuntimeError):
    """The service's event store cannot be read (a file vanished, the database is down)."""


class SettingsError(ValueError):
    """A service setting is missing or has a value that cannot be used."""


class RequestError(ValueError):
    """An HTTP request cannot be served as sent; the message says what to fix (-> 4xx)."""

    def __init__(self, message: str, status: int = 400, detail: list | None = None) -> None:
        super().__init__(message)
        self.status, self.detail = status, detail
