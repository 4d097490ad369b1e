"""A small trained bundle built directly (no tuning), for tests of what uses a bundle."""

from __future__ import annotations

import pandas as pd

import churnkit as ck


def small_bundle(tables: ck.Tables, *, as_of: str, train_cutoff: str,
                 name: str = "churn-test") -> ck.ModelBundle:
    """A 60-tree churn model fitted at ``train_cutoff`` (90-day labels), its population and
    risk reference at ``as_of``; no timing, value or uplift stage."""
    train = ck.build_training_set(tables, cutoffs=[train_cutoff], horizon_days=90)
    names = list(ck.features.model_features(train.columns))
    model = ck.models.ChurnModel(n_estimators=60, learning_rate=0.1, n_jobs=1, random_state=0)
    model.fit(ck.data.model_matrix(train, names), train["churned"].to_numpy())
    cutoff = ck.as_utc_timestamp(as_of)
    population = ck.fit_population(tables, as_of=cutoff)
    features = ck.build_features(tables, as_of=cutoff, population=population)
    p = model.predict_proba(ck.data.model_matrix(features, names))[:, 1]
    metadata = ck.scoring.TrainingMetadata(
        name, "1", cutoff.isoformat(), cutoff.isoformat(), 90,
        {"train": [train_cutoff], "validation": train_cutoff,
         "evaluation": (cutoff - pd.Timedelta(days=90)).isoformat()},
        len(train), ck.__version__)
    return ck.scoring.ModelBundle(model, ck.scoring.FeatureSpec.from_names(names), population,
                                  metadata, ck.scoring.reference_quantiles(p))
