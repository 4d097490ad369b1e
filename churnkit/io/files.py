"""Reading and writing the contract tables: a directory of Parquet/CSV files or a database URL.

Files are written under a temporary name and renamed when complete (:mod:`churnkit.io.atomic`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from churnkit.data.contract import TABLES, missing_tables
from churnkit.data.tables import Tables
from churnkit.data.validation import validate as validate_tables
from churnkit.errors import DataSourceError, DataValidationError, Problem
from churnkit.io.atomic import atomic_file
from churnkit.io.postgres import is_database_url, load_tables_from_db


def read_table_file(path: Path) -> pd.DataFrame:
    """Read one table file (``.parquet`` or ``.csv``) as it is; kinds are fixed by validation."""
    try:
        if path.suffix == ".parquet" or path.is_dir():
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except Exception as exc:  # the library's own message says what is wrong with the file
        raise DataSourceError(f"cannot read {path}: {exc}") from exc


def find_table_file(directory: Path, name: str) -> Path | None:
    """``name.parquet``, a ``name/`` directory of Parquet parts, or ``name.csv``; else None."""
    for candidate in (directory / f"{name}.parquet", directory / name, directory / f"{name}.csv"):
        if candidate.exists():
            return candidate
    return None


def load_tables(source: str | Path, *, validate: bool = True) -> Tables:
    """Read the contract tables from ``source``.

    Parameters
    ----------
    source
        A directory holding ``orders`` and optionally ``customers`` (derived from the orders when
        absent), ``browsing``, ``tickets``, ``contacts``, each as ``NAME.parquet``, a ``NAME/``
        directory of Parquet files, or ``NAME.csv``; or a ``postgresql://`` URL whose database
        holds tables of those names (see :mod:`churnkit.io.postgres`).
    validate
        Validate and normalize (the default). With ``False`` the tables come back as read, for
        :func:`churnkit.validate` to report on.

    Raises
    ------
    DataSourceError
        The source does not exist or a file cannot be read.
    churnkit.DataValidationError
        ``validate=True`` and the data breaks the contract; the error lists every problem.
    """
    text = str(source)
    if is_database_url(text):
        return load_tables_from_db(text, validate=validate)
    if "://" in text:
        raise DataSourceError(
            f"cannot read {text!r}: database sources are not supported yet; "
            "export the tables to a directory of Parquet or CSV files"
        )
    directory = Path(source)
    if not directory.is_dir():
        raise DataSourceError(f"data directory {directory} does not exist")
    frames: dict[str, pd.DataFrame | None] = {}
    for name in TABLES:
        path = find_table_file(directory, name)
        frames[name] = None if path is None else read_table_file(path)
    missing_required = missing_tables(n for n, frame in frames.items() if frame is not None)
    if missing_required:
        raise DataValidationError(
            [
                Problem(name, None, 0, [], f"required table is missing (no {name}.parquet or "
                        f"{name}.csv in {directory})")
                for name in missing_required
            ]
        )
    tables = Tables(**frames)  # type: ignore[arg-type]
    if not validate:
        return tables
    return validate_tables(tables)


def save_tables(tables: Tables, directory: str | Path) -> list[Path]:
    """Write every present table as ``NAME.parquet`` into ``directory`` (created if needed).

    What validation filled in (:attr:`Tables.defaulted`: a derived ``customers`` table, absent
    columns at their default) is not written, so loading the directory again gives the same
    tables and the same record of what the shop did not provide. Each file is written to a
    temporary name first and renamed when complete, so a crash never leaves a half-written table
    behind.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, given in tables.items():
        if not tables.recorded(name):
            continue
        frame = given.drop(columns=[c for c in given.columns if not tables.recorded(f"{name}.{c}")])
        target = out / f"{name}.parquet"
        with atomic_file(target) as tmp:
            frame.to_parquet(tmp, index=False, row_group_size=256_000)
        written.append(target)
    return written
