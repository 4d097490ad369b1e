"""The ``churnkit`` command line: the commands, and the console helpers that the commands joining
it from ``training/`` and ``serving/`` share (one line on stderr per failure, Rich tables)."""

from churnkit.cli.app import DataOption, app, cli_errors, err, main, out
from churnkit.cli.console import print_frame, print_shop_summary

__all__ = [
    "DataOption",
    "app",
    "cli_errors",
    "err",
    "main",
    "out",
    "print_frame",
    "print_shop_summary",
]
