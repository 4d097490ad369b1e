"""The ``churnkit`` command line: the commands, and what the commands joining it from
``training/`` and ``serving/`` share: one line on stderr per failure, Rich tables, the options
several commands take."""

from churnkit.cli.app import (
    AsOfOrTodayOption,
    DataOption,
    ModelOption,
    SeedOption,
    app,
    cli_errors,
    err,
    main,
    out,
)
from churnkit.cli.console import print_frame, print_shop_summary

__all__ = [
    "AsOfOrTodayOption",
    "DataOption",
    "ModelOption",
    "SeedOption",
    "app",
    "cli_errors",
    "err",
    "main",
    "out",
    "print_frame",
    "print_shop_summary",
]
