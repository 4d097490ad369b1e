"""Hyper-parameter search for the churn model: Optuna TPE, seeded, pruned on the validation fold.

The objective is the validation log-loss of the uncalibrated model (a proper scoring rule, so it
rewards ranking and probability quality alike). Trials run one after another in this process:
with a seeded sampler and LightGBM's deterministic mode, the same seed gives the same trials and
so the same model. The evaluation cutoff is never touched here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import optuna
import pandas as pd

from churnkit.models import ChurnModel

#: Report the validation loss to the pruner every this many boosting rounds.
REPORT_EVERY = 10


def _pruning_callback(trial: optuna.Trial) -> Callable:
    """A LightGBM callback that reports validation log-loss and stops pruned trials."""

    def callback(env) -> None:
        if env.iteration % REPORT_EVERY:
            return
        for _, metric, value, _ in env.evaluation_result_list:
            if metric == "binary_logloss":
                trial.report(value, step=env.iteration)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at round {env.iteration}")

    callback.order = 30  # after LightGBM's own evaluation callbacks
    return callback


#: Deepest tree the search may pick. TreeSHAP (the drivers of every scored customer) costs
#: trees x leaves x depth^2, and deeper trees did not rank better on the demo shop's held-out
#: cutoff (benchmarks/RESULTS.md, nightly batch).
MAX_DEPTH = 5


def search_space(trial: optuna.Trial) -> dict:
    """The tuned parameters of :class:`ChurnModel` and their ranges (as Optuna records them;
    :func:`model_params` turns them into the model's)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "max_depth": trial.suggest_int("max_depth", 3, MAX_DEPTH),
        "num_leaves": trial.suggest_int("num_leaves", 8, 2 ** MAX_DEPTH, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 20, 1000, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30.0, log=True),
    }


def model_params(params: dict) -> dict:
    """:class:`ChurnModel` parameters from searched ones: a tree of depth ``d`` has at most
    ``2**d`` leaves, so ``num_leaves`` is capped there (what LightGBM would grow anyway)."""
    out = dict(params)
    if "max_depth" in out and "num_leaves" in out and out["max_depth"] > 0:
        out["num_leaves"] = min(out["num_leaves"], 2 ** out["max_depth"])
    return out


def tune(
    X: pd.DataFrame,
    y: np.ndarray,
    X_valid: pd.DataFrame,
    y_valid: np.ndarray,
    *,
    trials: int,
    seed: int,
    n_jobs: int | None = None,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
) -> optuna.Study:
    """Run the search; ``study.best_params`` (plus ``best_iteration`` in the best trial's user
    attributes) define the final model."""
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, trials)),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=50),
        study_name="churn",
    )

    def objective(trial: optuna.Trial) -> float:
        model = ChurnModel(**model_params(search_space(trial)), calibration="none",
                           random_state=seed, n_jobs=n_jobs)
        model.fit(X, y, eval_set=(X_valid, y_valid), callbacks=[_pruning_callback(trial)])
        trial.set_user_attr("best_iteration", int(model.best_iteration_))
        return float(model.booster_.best_score["validation"]["binary_logloss"])

    study.optimize(objective, n_trials=trials, callbacks=[on_trial] if on_trial else None)
    return study
