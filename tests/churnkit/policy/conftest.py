"""One small synthetic shop, a small churn model and its scores, shared by the policy tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

import churnkit as ck
from churnkit.data.frames import model_matrix
from churnkit.features.registry import model_features
from churnkit.models.churn import ChurnModel
from churnkit.policy import POLICY_COLUMNS
from churnkit.scoring.bundle import FeatureSpec, ModelBundle, TrainingMetadata, reference_quantiles

AS_OF = pd.Timestamp("2025-07-01", tz="UTC")


@dataclass(frozen=True)
class World:
    tables: ck.Tables
    truth: object
    features: pd.DataFrame
    bundle: ModelBundle
    contributions: pd.DataFrame
    true_cause: pd.Series  # the generator's cause of a leave decision in force at AS_OF


@pytest.fixture(scope="session")
def world() -> World:
    tables, truth = ck.synth.generate(3000, seed=21, start="2023-01-01", end="2025-07-01")
    train = ck.build_training_set(tables, cutoffs=["2025-01-01"], horizon_days=90)
    names = list(model_features(train.columns))
    model = ChurnModel(n_estimators=60, learning_rate=0.1, n_jobs=1, random_state=0).fit(
        model_matrix(train, names), train["churned"].to_numpy())
    population = ck.fit_population(tables, as_of=AS_OF)
    features = ck.build_features(tables, as_of=AS_OF, population=population)
    X = model_matrix(features, names)
    metadata = TrainingMetadata("policy-test", "1", "2025-07-01T00:00:00+00:00",
                                AS_OF.isoformat(), 90, {}, len(train), ck.__version__)
    bundle = ModelBundle(model, FeatureSpec.from_names(names), population, metadata,
                         reference_quantiles(model.predict_proba(X)[:, 1]))
    leaving = truth.leaving
    live = leaving[(leaving["decided_at"] < AS_OF) & ~(leaving["reversed_at"] < AS_OF)]
    live = live.sort_values("decided_at").groupby("customer_id").tail(1).set_index("customer_id")
    cause = live["cause"].astype(str).reindex(features.index).fillna("stays")
    return World(tables, truth, features, bundle, model.contributions(X), cause)


@pytest.fixture(scope="session")
def scored(world) -> pd.DataFrame:
    """The churn scores without the policy's columns (what ``decide`` receives)."""
    from churnkit.scoring import score_features

    out = score_features(world.features, world.bundle, as_of=AS_OF, explain=False)
    return out.drop(columns=[c for c in POLICY_COLUMNS if c in out.columns])


def tile(frame: pd.DataFrame, times: int) -> pd.DataFrame:
    """``frame`` repeated ``times`` times with fresh customer ids (for speed checks)."""
    out = pd.concat([frame] * times, ignore_index=True)
    out.index = pd.Index(np.arange(len(out)), name="customer_id")
    return out
