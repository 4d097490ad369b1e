"""churnkit: which customers of an online shop are about to leave, when and how to reach them,
and what to offer them.

The public API is re-exported here; ``training/``, ``serving/`` and notebooks import only these
names (``import churnkit as ck``).
"""

from churnkit.contracts import ACTIONS, CHANNELS, TABLES, as_utc_timestamp
from churnkit.tables import DataSourceError, Tables, load_tables, save_tables
from churnkit.validation import DataValidationError, Problem, validate

__version__ = "0.1.0"

__all__ = [
    "ACTIONS",
    "CHANNELS",
    "TABLES",
    "DataSourceError",
    "DataValidationError",
    "Problem",
    "Tables",
    "__version__",
    "as_utc_timestamp",
    "load_tables",
    "save_tables",
    "validate",
]
