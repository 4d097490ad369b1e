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


@dataclass(frozen=True)
class Cutoffs:
    train: tuple[pd.Timestamp, ...]
    validation: pd.Timestamp
    evaluation: pd.Timestamp
    horizon_days: int

    def describe(self) -> str:
        days = ", ".join(f"{t:%Y-%m-%d}" for t in self.train)
        return (f"train at {days}; validate at {self.validation:%Y-%m-%d}; evaluate at "
                f"{self.evaluation:%Y-%m-%d} (horizon {self.horizon_days} days)")


def plan_cutoffs(*, as_of: object, horizon_days: int, n_train: int, step_days: int,
                 data_start: object) -> Cutoffs:
    """The cutoffs for data available before ``as_of``; refuses plans that start before
    ``data_start`` plus one horizon of history (a first snapshot needs some past)."""
    end = as_utc_timestamp(as_of)
    h = pd.Timedelta(days=horizon_days)
    evaluation = end - h
    validation = evaluation - h
    train = tuple(validation - h - pd.Timedelta(days=step_days * i) for i in range(n_train))
    earliest = as_utc_timestamp(data_start, name="data_start") + h
    if min(train) < earliest:
        raise ValueError(
            f"not enough history: the earliest training cutoff {min(train):%Y-%m-%d} is less "
            f"than {horizon_days} days after the data starts ({earliest - h:%Y-%m-%d}); use a "
            "later --as-of, fewer --train-cutoffs or a shorter --horizon"
        )
    return Cutoffs(tuple(sorted(train)), validation, evaluation, horizon_days)


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
