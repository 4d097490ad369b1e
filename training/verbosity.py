"""How much the libraries under the training commands print: warnings only, unless asked.

The commands (``churnkit train``, ``evaluate``, ``promote``, ``demo``) call
:func:`set_library_verbosity` first; importing a churnkit or training module changes nothing.
``CHURNKIT_VERBOSE=1`` (or ``churnkit demo --verbose``) keeps the libraries' own output: MLflow's
INFO lines, its artifact download progress bars, Optuna's line per trial.
"""

from __future__ import annotations

import logging
import os

VERBOSE_ENV = "CHURNKIT_VERBOSE"
#: Loggers held at WARNING by default (alembic runs MLflow's SQLite migrations).
QUIET_LOGGERS = ("mlflow", "alembic", "optuna")


def verbose_requested(flag: bool = False) -> bool:
    """True when ``flag`` is set or ``CHURNKIT_VERBOSE`` is set to anything but 0/false."""
    return flag or os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false")


def set_library_verbosity(verbose: bool) -> None:
    """Unless ``verbose``: MLflow, alembic and Optuna log warnings and errors only, and MLflow
    shows no artifact progress bars (also in the processes this one starts, which inherit the
    environment)."""
    if verbose:
        return
    # Read by MLflow when it sets up its loggers at import, and by its artifact downloads.
    os.environ["MLFLOW_LOGGING_LEVEL"] = "WARNING"
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # Optuna sets its logger to INFO when it first configures it (at its import): through its own
    # switch, WARNING holds whether or not optuna was imported before this call.
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
