"""Scoring: the model bundle, the one scoring call, the drivers in plain words and the output
schema that the batch job, Spark and the service share."""

from churnkit.scoring.bundle import (
    FeatureSpec,
    ModelBundle,
    TrainingMetadata,
    compile_bundle,
    reference_quantiles,
    version_stamp,
)
from churnkit.scoring.drivers import explain
from churnkit.scoring.schema import (
    JSON_COLUMNS,
    OUTPUT_COLUMNS,
    OUTPUT_FORMAT,
    flatten,
    output_schema,
    read_scores,
    schema_for,
    to_arrow,
    to_json_text,
)
from churnkit.scoring.score import (
    Scores,
    customer_margin_shares,
    score,
    score_columns,
    score_features,
    top_drivers,
)

__all__ = [
    "JSON_COLUMNS",
    "OUTPUT_COLUMNS",
    "OUTPUT_FORMAT",
    "FeatureSpec",
    "ModelBundle",
    "Scores",
    "TrainingMetadata",
    "compile_bundle",
    "customer_margin_shares",
    "explain",
    "flatten",
    "output_schema",
    "read_scores",
    "reference_quantiles",
    "schema_for",
    "score",
    "score_columns",
    "score_features",
    "to_arrow",
    "to_json_text",
    "top_drivers",
    "version_stamp",
]
