"""The pieces of SQL the feature families share: ages in days and rolling windows.

Every family reads the *known-at-as_of* views (:mod:`churnkit.features.views`), whose rows carry
``age_days``, the days from the row's time to ``$as_of``; a rolling window is a condition on it.
"""

from __future__ import annotations

#: Rolling windows, in days before ``as_of``: a window of ``w`` days holds events with
#: ``as_of - w days <= time < as_of``.
WINDOWS = (30, 90, 180, 365)
#: The rolling windows and the whole past before ``as_of`` (``None``, named ``lifetime``).
ALL_WINDOWS = (*WINDOWS, None)


def age_days(column: str) -> str:
    """SQL: days from ``column`` (TIMESTAMPTZ) to ``$as_of``, as DOUBLE (exact microseconds)."""
    return f"(epoch_us($as_of) - epoch_us({column})) / 86400000000.0"


def window_name(stem: str, window: int | None) -> str:
    """``orders_30d`` for a window of 30 days, ``orders_lifetime`` for ``None``."""
    return f"{stem}_lifetime" if window is None else f"{stem}_{window}d"


def window_text(window: int | None) -> str:
    """Words for the window in a feature description: "in the 30 days before as_of"."""
    return "ever (before as_of)" if window is None else f"in the {window} days before as_of"


def window_sql(window: int | None, age: str = "age_days") -> str:
    """SQL condition "the row is inside the window", given its age in days before as_of."""
    return "TRUE" if window is None else f"{age} <= {window}"


def window_counts(stem: str, condition: str | None = None, *,
                  windows: tuple[int | None, ...] = ALL_WINDOWS, age: str = "age_days"
                  ) -> list[str]:
    """SQL columns counting the rows that meet ``condition`` inside each window.

    One ``count_if(condition AND in window) AS <stem>_<window>`` per window, in ``windows`` order;
    ``age`` is the column holding each row's age in days before ``as_of``.
    """
    out = []
    for w in windows:
        inside = window_sql(w, age)
        test = inside if condition is None else f"{condition} AND {inside}"
        out.append(f"count_if({test}) AS {window_name(stem, w)}")
    return out
