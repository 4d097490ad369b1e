"""``churnkit train``, ``churnkit evaluate`` and ``churnkit promote``.

These commands live with the training code and join the ``churnkit`` command line through the
``churnkit.commands`` entry-point group (see pyproject.toml), so the library never imports the
training pipeline. MLflow is imported only where it is used, so ``churnkit --help`` does not
load it; the libraries print warnings only unless ``CHURNKIT_VERBOSE=1``
(:mod:`training.verbosity`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from churnkit.cli import DataOption, ModelOption, cli_errors, err, out
from churnkit.io import progress_bar
from training.config import TrainConfig
from training.run import run_evaluation, run_training
from training.tracking import promote as promote_champion
from training.verbosity import set_library_verbosity, verbose_requested

ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML config (default: "
                                                   "training/configs/default.yaml).")]
DataEndOption = Annotated[str, typer.Option("--as-of", help="End of the data to use (UTC); the "
                                            "evaluation cutoff is as-of minus the horizon.")]
TrackingUriOption = Annotated[str | None, typer.Option("--tracking-uri", help="MLflow tracking "
                                                       "URI (default: the training config's).")]
ExperimentOption = Annotated[str | None, typer.Option("--experiment", help="MLflow "
                                                      "experiment.")]


def train(
    data: DataOption,
    as_of: DataEndOption,
    horizon: Annotated[int | None, typer.Option("--horizon", help="Days of the churn label "
                                                "window.")] = None,
    trials: Annotated[int | None, typer.Option("--trials", help="Optuna trials.")] = None,
    train_cutoffs: Annotated[int | None, typer.Option("--train-cutoffs")] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    experiment: ExperimentOption = None,
    register: Annotated[str | None, typer.Option("--register", help="Register the bundle "
                                                 "under this name as 'challenger'.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Bundle name.")] = None,
    models_dir: Annotated[Path | None, typer.Option("--models-dir")] = None,
    tracking_uri: TrackingUriOption = None,
    config: ConfigOption = None,
) -> None:
    """Train, tune and evaluate a churn model; save the bundle, the report, log to MLflow."""
    set_library_verbosity(verbose_requested())
    with cli_errors():
        run_training(
            data=data, as_of=as_of, register=register, progress=progress_bar(err),
            config_path=config,
            overrides={"horizon_days": horizon, "trials": trials, "train_cutoffs": train_cutoffs,
                       "seed": seed, "experiment": experiment, "name": name or register,
                       "models_dir": models_dir, "tracking_uri": tracking_uri},
            console=out,
        )


def evaluate(
    data: DataOption,
    model: ModelOption,
    as_of: DataEndOption,
    report: Annotated[Path, typer.Option("--report", help="HTML report to write.")] = Path(
        "evaluation.html"),
    tracking_uri: TrackingUriOption = None,
    experiment: ExperimentOption = None,
) -> None:
    """Evaluate a saved bundle against the baselines at a later cutoff; write the report."""
    set_library_verbosity(verbose_requested())
    with cli_errors():
        run_evaluation(data=data, model=model, as_of=as_of, report=report, console=out,
                       tracking_uri=tracking_uri, experiment=experiment)


def promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    tracking_uri: TrackingUriOption = None,
) -> None:
    """Move the 'champion' alias to the 'challenger' if it is better on the same cutoff."""
    set_library_verbosity(verbose_requested())
    with cli_errors():
        uri = tracking_uri or TrainConfig.load().tracking_uri
        result = promote_champion(name, tracking_uri=uri)
    if result.promoted:
        out.print(f"promoted: {result.reason}")
        return
    err.print(f"churnkit: not promoted: {result.reason}")
    raise typer.Exit(4)
