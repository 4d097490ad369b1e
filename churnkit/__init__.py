"""churnkit: which customers of an online shop are about to leave, when and how to reach them,
and what to offer them.

The public API is re-exported here; ``training/``, ``serving/`` and notebooks import only these
names (``import churnkit as ck``). Importing churnkit has no side effects.
"""

from churnkit import features, scoring, synth
from churnkit.bundle import BundleMismatchError, FeatureSpec, ModelBundle
from churnkit.churn_model import ChurnModel
from churnkit.contracts import ACTIONS, CHANNELS, TABLES, as_utc_timestamp
from churnkit.features import PopulationFit, build_features, fit_population
from churnkit.labels import build_labels, build_training_set
from churnkit.policy import PolicyConfig, decide
from churnkit.scoring import score
from churnkit.tables import DataSourceError, Tables, load_tables, save_tables
from churnkit.timing import TimingConfig, TimingModel
from churnkit.validation import DataValidationError, Problem, validate

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
    "ModelBundle",
    "PolicyConfig",
    "PopulationFit",
    "Problem",
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
    "synth",
    "validate",
]
