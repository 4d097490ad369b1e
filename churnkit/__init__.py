"""churnkit: which customers of an online shop are about to leave, when and how to reach them,
and what to offer them.

The public API is re-exported here; ``training/``, ``serving/`` and notebooks import only these
names (``import churnkit as ck``). Importing churnkit has no side effects.
"""

from churnkit import features, scoring, synth
from churnkit.data.contract import ACTIONS, CHANNELS, TABLES, as_utc_timestamp
from churnkit.data.tables import Tables
from churnkit.data.validation import validate
from churnkit.errors import BundleMismatchError, DataSourceError, DataValidationError, Problem
from churnkit.features import (
    PopulationFit,
    ShopArrays,
    build_features,
    fit_population,
    shop_arrays,
)
from churnkit.io.files import load_tables, save_tables
from churnkit.labels import build_labels, build_training_set
from churnkit.models.churn import ChurnModel
from churnkit.models.timing import TimingConfig, TimingModel
from churnkit.policy import GrossMargin, PolicyConfig, decide
from churnkit.scoring.bundle import FeatureSpec, ModelBundle
from churnkit.scoring.score import score

__version__ = "0.1.0"

__all__ = [
    "ACTIONS",
    "CHANNELS",
    "TABLES",
    "BundleMismatchError",
    "ChurnModel",
    "DataSourceError",
    "DataValidationError",
    "FeatureSpec",
    "GrossMargin",
    "ModelBundle",
    "PolicyConfig",
    "PopulationFit",
    "Problem",
    "ShopArrays",
    "Tables",
    "TimingConfig",
    "TimingModel",
    "__version__",
    "as_utc_timestamp",
    "build_features",
    "build_labels",
    "build_training_set",
    "decide",
    "features",
    "fit_population",
    "load_tables",
    "save_tables",
    "score",
    "scoring",
    "shop_arrays",
    "synth",
    "validate",
]
