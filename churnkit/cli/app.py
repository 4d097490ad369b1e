"""The ``churnkit`` command line.

Every command that fails prints one clear line on stderr (``churnkit: error: ...``; a data
validation failure is followed by the list of every problem) and exits non-zero; outputs are
written to a temporary name and renamed when complete, so nothing partial is left behind.

Exit codes: 0 success; 1 the data breaks the contract; 2 bad usage or arguments; 3 a source or
output cannot be read or written; 4 a model was not promoted (``promote``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console

from churnkit import synth
from churnkit.campaigns import campaign_report_command
from churnkit.cli.console import print_shop_summary
from churnkit.data import as_utc_timestamp, data_end, summarize, validate
from churnkit.errors import DataSourceError, DataValidationError
from churnkit.features import build_features, left_out_families
from churnkit.io import atomic_directory, atomic_file, load_tables, save_tables
from churnkit.jobs import DEFAULT_SHARD_SIZE, print_summary, run_batch

EXIT_DATA, EXIT_USAGE, EXIT_IO = 1, 2, 3
_ONE_MICROSECOND = pd.Timedelta(microseconds=1)

app = typer.Typer(
    name="churnkit",
    help="Which customers are about to leave, when and how to reach them, and what to offer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output (CI logs, `make demo | tee`) gets a wide page rather than Rich's 80 columns.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True, highlight=False)


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn churnkit's errors into one line on stderr and an exit code a scheduler can act on."""
    try:
        yield
    except DataValidationError as exc:
        err.print(f"churnkit: error: the data breaks the contract ({len(exc.problems)} "
                  "problem(s)):", markup=False, highlight=False)
        for problem in exc.problems:
            err.print(f"  - {problem}", markup=False, highlight=False)
        raise typer.Exit(EXIT_DATA) from None
    except (DataSourceError, FileExistsError, FileNotFoundError, PermissionError) as exc:
        err.print(f"churnkit: error: {exc}", markup=False, highlight=False)
        raise typer.Exit(EXIT_IO) from None
    except ValueError as exc:
        err.print(f"churnkit: error: {exc}", markup=False, highlight=False)
        raise typer.Exit(EXIT_USAGE) from None


def _as_of_or_today(value: str | None) -> object:
    if value is not None:
        return as_utc_timestamp(value, name="--as-of")
    today = date.today().isoformat()
    err.print(f"churnkit: --as-of not given; using today, {today} (UTC)")
    return as_utc_timestamp(today, name="--as-of")


# The options several commands share (here and in the commands of training/ and serving/).
DataOption = Annotated[Path, typer.Option("--data", help="Directory of the shop's tables "
                                          "(NAME.parquet or NAME.csv).")]
ModelOption = Annotated[str, typer.Option("--model", help="Bundle directory or MLflow URI "
                                          "(models:/NAME@alias, e.g. models:/churn@champion).")]
AsOfOrTodayOption = Annotated[str | None, typer.Option(
    "--as-of", help="Use only what was known strictly before this date (UTC). Default: today.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives the "
                                         "same result.")]


@app.command()
def generate(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write the tables to.")],
    customers: Annotated[int, typer.Option("--customers", min=1)] = 20_000,
    seed: SeedOption = 7,
    start: Annotated[str, typer.Option("--start", help="First day of the simulated history.")] = (
        "2023-01-01"
    ),
    end: Annotated[str, typer.Option("--end", help="Day the simulated history stops.")] = (
        "2025-07-01"
    ),
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty --out.")] = False,
) -> None:
    """Generate a synthetic shop (Parquet tables) with known ground truth."""
    with cli_errors():
        with err.status(f"Simulating {customers:,} customers from {start} to {end}..."):
            tables, _truth = synth.generate(customers, seed=seed, start=start, end=end)
        with err.status(f"Writing tables to {out_dir}..."), atomic_directory(
            out_dir, overwrite=force
        ) as tmp:
            save_tables(tables, tmp)
            # The ground truth is not written out: it is regenerated from these arguments.
            synth.write_recipe(tmp, n_customers=customers, seed=seed, start=start, end=end)
    rows = ", ".join(f"{name} {n:,}" for name, n in tables.n_rows().items())
    out.print(f"Wrote {out_dir}: {rows}")


@app.command("validate")
def validate_command(
    data: Annotated[Path, typer.Argument(help="Directory of the shop's tables.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="Summarize the data as known "
                                              "before this date (default: its last event).")]
    = None,
) -> None:
    """Check a shop's tables against the data contract; print a summary or every problem."""
    with cli_errors():
        tables = validate(load_tables(data, validate=False))
        cutoff = as_utc_timestamp(as_of, name="--as-of") if as_of else (
            data_end(tables) + _ONE_MICROSECOND
        )
        print_shop_summary(out, summarize(tables, as_of=cutoff), left_out_families(tables))
    out.print(f"[green]OK[/green]: {data} satisfies the data contract.")


@app.command()
def features(
    data: DataOption,
    output: Annotated[Path, typer.Option("--out", help="Parquet file to write.")],
    as_of: AsOfOrTodayOption = None,
) -> None:
    """Build point-in-time features for every customer and write them as Parquet."""
    with cli_errors():
        cutoff = _as_of_or_today(as_of)
        with err.status(f"Loading {data}..."):
            tables = load_tables(data)
        with err.status(f"Building features as of {cutoff:%Y-%m-%d}..."):
            frame = build_features(tables, as_of=cutoff)
        # Parquet keeps JSON-ready attrs: the cutoff, the families and the population fit.
        frame.attrs = {"as_of": cutoff.isoformat(), "families": frame.attrs["families"],
                       "population": frame.attrs["population"].to_dict()}
        with atomic_file(output) as tmp:
            frame.to_parquet(tmp)
    out.print(f"Wrote {output}: {len(frame):,} customers x {frame.shape[1]} features "
              f"as of {cutoff:%Y-%m-%d %H:%M} UTC")


# --- score: the nightly batch job (churnkit.jobs) ---------------------------------------------
@app.command("score")
def score_command(
    data: Annotated[str, typer.Option("--data", help="Directory of the shop's tables, or a "
                                      "postgresql:// URL holding them.")],
    model: ModelOption,
    output: Annotated[str, typer.Option("--out", help="Parquet file to write, or "
                                        "postgresql://...#table (default table churn_scores).")],
    as_of: AsOfOrTodayOption = None,
    shard_size: Annotated[int, typer.Option("--shard-size", min=1, help="Customers per shard "
                                            "(memory bound and unit of resumption).")]
    = DEFAULT_SHARD_SIZE,
    psi_threshold: Annotated[float | None, typer.Option(
        "--psi-threshold", help="Warn about features whose PSI against the training data "
        "exceeds this (default 0.25).")] = None,
    work_dir: Annotated[Path | None, typer.Option("--work-dir", help="Where finished shards "
                                                  "wait for a resume (default: beside --out).")]
    = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Processes scoring "
                                                "shards at once (default: one per core).")]
    = None,
) -> None:
    """Score every customer (resumable, atomic) and write the scores and a run summary."""
    with cli_errors():
        cutoff = _as_of_or_today(as_of)
        result = run_batch(data, model=model, as_of=cutoff, out=output, shard_size=shard_size,
                           psi_threshold=psi_threshold, work_dir=work_dir, console=err,
                           workers=workers)
    print_summary(out, result)


# --- compile: a bundle's trees as machine code (churnkit.models.compiled) ----------------------
@app.command("compile")
def compile_command(
    model: Annotated[Path, typer.Option("--model", help="Bundle directory to compile in place "
                                        "(its forests go to DIR/compiled/).")],
) -> None:
    """Compile a bundle's LightGBM forests to machine code: every later load of the bundle
    (batch job, service, Spark) predicts through them, 4-8x faster on many rows."""
    import time

    from churnkit.scoring import compile_bundle

    with cli_errors(), err.status(f"Compiling the forests of {model}..."):
        t0 = time.perf_counter()
        n = compile_bundle(model)
    out.print(f"Compiled {n} forests of {model} in {time.perf_counter() - t0:.1f} s "
              f"-> {model / 'compiled'}")


# --- report: one win-back campaign against its control group (churnkit.campaigns) ------------
@app.command("report")
def report_command(
    data: DataOption,
    campaign: Annotated[str, typer.Option("--campaign", help="Campaign id: the contacts' "
                                          "'campaign' value, or the send month YYYY-MM.")],
    output: Annotated[Path | None, typer.Option("--out", help="HTML file to write (default "
                                                "campaign-ID.html).")] = None,
    window: Annotated[int, typer.Option("--window-days", min=1, help="Days after the send "
                                        "that count for revenue and repeat orders.")] = 90,
    n_boot: Annotated[int, typer.Option("--bootstrap", min=100)] = 1000,
    seed: SeedOption = 0,
) -> None:
    """Campaign metrics against the control group, with confidence intervals, as HTML."""
    with cli_errors(), err.status(f"Measuring campaign {campaign}..."):
        metrics, path = campaign_report_command(data, campaign, output, window_days=window,
                                                n_boot=n_boot, seed=seed)
    r = metrics.table.loc["winback_rate"]
    out.print(f"Wrote {path}: campaign {metrics.campaign}, {metrics.n_treatment:,} contacted, "
              f"{metrics.n_control:,} held out; win-back rate {100 * r['treatment']:.1f}% vs "
              f"{100 * r['control']:.1f}% (increment {100 * r['difference']:+.1f} pp "
              f"[{100 * r['difference_low']:+.1f}, {100 * r['difference_high']:+.1f}])")


_plugins_added = False


def _add_plugin_commands() -> None:
    """Commands from other packages (``training``, ``serving``) registered under the
    ``churnkit.commands`` entry-point group; the library itself never imports them. Loaded when
    the command line runs, not at import, so those packages may import this module freely."""
    global _plugins_added
    if _plugins_added:
        return
    from importlib.metadata import entry_points

    for entry in sorted(entry_points(group="churnkit.commands"), key=lambda e: e.name):
        app.command(entry.name)(entry.load())
    _plugins_added = True


def main() -> None:
    """The ``churnkit`` console script (and ``python -m churnkit``)."""
    _add_plugin_commands()
    app()
