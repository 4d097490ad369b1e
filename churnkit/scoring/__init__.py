"""Scoring: the model bundle, the one scoring call, the drivers in plain words and the output
schema that the batch job, Spark and the service share."""

from churnkit.scoring.bundle import (
    FeatureSpec,
    ModelBundle,
    TrainingMetadata,
    reference_quantiles,
    version_stamp,
)
from churnkit.scoring.drivers import explain
from churnkit.scoring.schema import JSON_COLUMNS, OUTPUT_COLUMNS, flatten, read_scores, to_arrow
from churnkit.scoring.score import score, score_features, top_drivers

__all__ = [
    "JSON_COLUMNS",
    "OUTPUT_COLUMNS",
    "FeatureSpec",
    "ModelBundle",
    "TrainingMetadata",
    "explain",
    "flatten",
    "read_scores",
    "reference_quantiles",
    "score",
    "score_features",
    "to_arrow",
    "top_drivers",
    "version_stamp",
]
