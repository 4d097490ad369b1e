"""Which cutoffs train, validate and evaluate a model: point-in-time, no tuning on the test.

Given the end of the available data ``as_of`` and a horizon ``h`` (days)::

    ... t3  t2  t1  t0 ──h──► v ──h──► e ──h──► as_of
        training cutoffs      validation  evaluation

- the **evaluation** cutoff ``e = as_of - h`` is the latest whose label window closes by
  ``as_of``; nothing is tuned, calibrated or early-stopped on it;
- the **validation** cutoff ``v = e - h`` (its labels close when the evaluation features start)
  drives Optuna, early stopping and calibration;
- the **training** cutoffs ``t_i = v - h - i * step`` have label windows that close by ``v``.

Features at every cutoff use only what was known strictly before it; :func:`build_snapshots`
builds them (with the labels) for a plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

import churnkit as ck
from churnkit.data import as_utc_timestamp
from churnkit.features import build_features, model_features
from churnkit.labels import build_training_set

Progress = Callable[[str, int, int], None]  # (stage, done, total)


#: The shortest step between two training cutoffs a shortened plan uses (weekly snapshots).
MIN_STEP_DAYS = 7


@dataclass(frozen=True)
class Cutoffs:
    train: tuple[pd.Timestamp, ...]
    validation: pd.Timestamp
    evaluation: pd.Timestamp
    horizon_days: int
    #: What the plan changed to fit the history it has (empty for the plan asked for).
    notes: tuple[str, ...] = ()
    #: False when the history left no room for a held-out evaluation: the evaluation is then
    #: on the validation cutoff, which chose the settings (optimistic, and said so).
    independent: bool = True

    def describe(self) -> str:
        days = ", ".join(f"{t:%Y-%m-%d}" for t in self.train)
        evaluation = (f"evaluate at {self.evaluation:%Y-%m-%d}" if self.independent else
                      "no independent evaluation (the figures are the validation cutoff's)")
        return (f"train at {days}; validate at {self.validation:%Y-%m-%d}; {evaluation} "
                f"(horizon {self.horizon_days} days)")


def history_needed(*, horizon_days: int, n_train: int, step_days: int,
                   min_history_days: int | None = None, independent: bool = True) -> int:
    """Days of history a plan needs before ``as_of``: the history before the first training
    cutoff (``min_history_days``, default one horizon), the spread of the training cutoffs and
    the label windows (training, validation and, when ``independent``, the held-out
    evaluation)."""
    before = horizon_days if min_history_days is None else min_history_days
    return before + (n_train - 1) * step_days + (3 if independent else 2) * horizon_days


def plan_cutoffs(*, as_of: object, horizon_days: int, n_train: int, step_days: int,
                 data_start: object, min_history_days: int | None = None,
                 fold_evaluation: bool = True) -> Cutoffs:
    """The cutoffs for data available before ``as_of``.

    The first training cutoff needs ``min_history_days`` of data before it (default: one
    horizon). With less history than ``n_train`` cutoffs ``step_days`` apart need, the plan
    shrinks, and says so in :attr:`Cutoffs.notes`: first a shorter step (down to
    :data:`MIN_STEP_DAYS`), then fewer cutoffs; then (``fold_evaluation``) the held-out
    evaluation is given up: the evaluation is the validation cutoff's, marked not
    :attr:`~Cutoffs.independent`. Refused (``ValueError`` naming the minimum) when not even
    one training cutoff and the validation fit.
    """
    end = as_utc_timestamp(as_of)
    h = pd.Timedelta(days=horizon_days)
    start = as_utc_timestamp(data_start, name="data_start")
    before = horizon_days if min_history_days is None else min_history_days
    earliest = start + pd.Timedelta(days=before)
    covered = round((end - start) / pd.Timedelta(days=1))
    independent = end - 3 * h >= earliest or not fold_evaluation
    evaluation = end - h
    validation = evaluation - h if independent else evaluation
    latest = validation - h
    if latest < earliest:
        least = history_needed(horizon_days=horizon_days, n_train=1, step_days=step_days,
                               min_history_days=before, independent=not fold_evaluation)
        windows = ("three" if not fold_evaluation else "two")
        kinds = ("training, validation and the held-out evaluation" if not fold_evaluation
                 else "training and validation")
        raise ValueError(
            f"not enough history: a {horizon_days}-day model needs at least {least} days of "
            f"data before --as-of ({before} days before the first training cutoff, then "
            f"{windows} {horizon_days}-day label windows: {kinds}); the data start "
            f"{start:%Y-%m-%d}, {covered} days before {end:%Y-%m-%d}. Use a shorter "
            "--horizon or a later --as-of"
        )
    room = (latest - earliest).days  # days the training cutoffs may spread over
    n, step = n_train, step_days
    if (n - 1) * step > room:
        step = min(max(room // (n - 1), MIN_STEP_DAYS), step_days)
        n = min(n, 1 + room // step)
    notes: list[str] = []
    if (n, step) != (n_train, step_days):
        need = history_needed(horizon_days=horizon_days, n_train=n_train, step_days=step_days,
                              min_history_days=before)
        spread = f", {step} days apart" if n > 1 else ""
        notes.append(f"{n_train} training cutoffs {step_days} days apart need {need} days of "
                     f"history; the data cover {covered}: trained on {n} training "
                     f"cutoff{'s' if n > 1 else ''}{spread}")
    if not independent:
        need = history_needed(horizon_days=horizon_days, n_train=1, step_days=step_days,
                              min_history_days=before)
        notes.append(f"no independent evaluation: a held-out evaluation needs {need} days of "
                     f"history, the data cover {covered}; the figures are those of the "
                     "validation cutoff, which chose the settings, so they are optimistic")
    train = tuple(latest - pd.Timedelta(days=step * i) for i in range(n))
    return Cutoffs(tuple(sorted(train)), validation, evaluation, horizon_days, tuple(notes),
                   independent)


@dataclass(frozen=True)
class Snapshots:
    """Feature + label rows per role, and the population fit at each cutoff."""

    train: pd.DataFrame
    validation: pd.DataFrame
    evaluation: pd.DataFrame
    populations: dict[pd.Timestamp, object]
    feature_names: tuple[str, ...]


def build_snapshots(tables: ck.Tables, cutoffs: Cutoffs, *, data_end: pd.Timestamp,
                    progress: Progress | None = None) -> Snapshots:
    """Features and labels at every cutoff (each with the population as known then).

    ``data_end`` is where the data are complete (the training ``as_of``); label windows must
    close by then.
    """
    populations: dict[pd.Timestamp, object] = {}
    total = len(cutoffs.train) + 2
    done = 0

    def features(t: ck.Tables, *, as_of: object) -> pd.DataFrame:
        nonlocal done
        frame = build_features(t, as_of=as_of)
        # The population fit is an output of build_features (fitted from the same pass over the
        # data, handed back in attrs); the cutoff is the argument itself.
        populations[as_utc_timestamp(as_of, name="cutoff")] = frame.attrs["population"]
        done += 1
        if progress:
            progress("features", done, total)
        return frame

    h = cutoffs.horizon_days
    train = build_training_set(tables, cutoffs=list(cutoffs.train), horizon_days=h,
                               features=features, data_end=data_end)
    valid = build_training_set(tables, cutoffs=[cutoffs.validation], horizon_days=h,
                               features=features, data_end=data_end)
    evaluation = build_training_set(tables, cutoffs=[cutoffs.evaluation], horizon_days=h,
                                    features=features, data_end=data_end)
    names = model_features(train.columns)
    return Snapshots(train, valid, evaluation, populations, names)
