"""The shop's data as churnkit holds it: the contract, the tables, their validation, what was
known at ``as_of`` (time travel) and the conversions of feature frames into model inputs."""

from churnkit.data.contract import (
    ACTIONS,
    CHANNELS,
    CONTROL,
    REQUIRED_TABLES,
    SEND_ACTIONS,
    TABLES,
    as_utc_timestamp,
    missing_tables,
)
from churnkit.data.frames import model_matrix, numeric_matrix, require_columns
from churnkit.data.plain import columns_of_records
from churnkit.data.summary import ShopSummary, data_end, summarize
from churnkit.data.tables import Tables
from churnkit.data.timetravel import tables_until
from churnkit.data.validation import EARLIEST, LATEST, validate, validate_columns, validated

__all__ = [
    "ACTIONS",
    "CHANNELS",
    "CONTROL",
    "EARLIEST",
    "LATEST",
    "REQUIRED_TABLES",
    "SEND_ACTIONS",
    "TABLES",
    "ShopSummary",
    "Tables",
    "as_utc_timestamp",
    "columns_of_records",
    "data_end",
    "missing_tables",
    "model_matrix",
    "numeric_matrix",
    "require_columns",
    "summarize",
    "tables_until",
    "validate",
    "validate_columns",
    "validated",
]
