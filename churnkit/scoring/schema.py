"""The flat output rows of the batch job: their columns, kinds and Arrow schema.

:data:`OUTPUT_COLUMNS` documents every column (``make docs`` renders it into docs/batch.md);
:func:`flatten` turns ``ck.score``'s frame into those rows (lists as JSON text, timestamps UTC),
:func:`to_arrow` gives them a schema that every shard shares, and :func:`read_scores` reads an
output file back. :mod:`churnkit.jobs.batch` (one machine) and :mod:`churnkit.jobs.spark` write
these rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

#: Version of the flat output schema (written into the Parquet metadata and the summary).
OUTPUT_FORMAT = 1
#: Columns whose values are lists/dicts in ``ck.score`` and JSON text in the output.
JSON_COLUMNS = ("top_drivers", "policy_trace")

_F, _S, _I, _T, _J = "float", "str", "int", "timestamp", "json"
#: The flat output, in order: column -> (kind, description in Markdown). Columns of components a
#: bundle lacks (timing, value, policy) are absent; any other column scoring adds is kept after
#: these, as float (numbers), timestamp, or text (JSON for lists/dicts). The one description of
#: each column: docs/batch.md's table is rendered from it (``make docs``).
OUTPUT_COLUMNS: dict[str, tuple[str, str]] = {
    "as_of": (_T, "The scoring cutoff: features used only what was known before it."),
    "customer_id": ("id", "Customer identifier (the kind of the input's `customer_id`)."),
    "churn_probability": (_F, "Calibrated probability of no order within the bundle horizon."),
    "risk_percentile": (_F, "Percent (0-100) of the bundle's reference population with a lower "
                            "churn probability."),
    "risk_band": (_S, "critical / high / medium / low, by risk percentile."),
    "segment": (_S, "Lifecycle: prospect (no order), new (1), repeat (2-4), vip (5+)."),
    "activity": (_S, "active (< 30 days since last order), sleeping (30-90), lapsed (90+)."),
    "top_drivers": (_J, "List of up to 3 `{feature, value, contribution[, text]}`: the "
                        "features pushing churn up the most (SHAP, log-odds); computed for "
                        "customers at risk (the policy's at-risk percentile or a paid order "
                        "never received), `[]` for the others."),
    "contact_date": (_T, "UTC midnight of the day to contact the customer."),
    "contact_date_confidence": (_F, "Confidence (0-1) in `contact_date`."),
    "contact_weekday": (_I, "Weekday to contact, 0 = Monday, customer's local time."),
    "contact_hour_local": (_I, "Hour (0-23) to contact, customer's local time."),
    "contact_slot_confidence": (_F, "Confidence (0-1) in weekday and hour."),
    "channel": (_S, "Channel to use (one of `ck.CHANNELS`); empty when no consented channel."),
    "channel_confidence": (_F, "Confidence (0-1) in `channel`."),
    "expected_days_to_next_order": (_F, "Expected days until the customer's next order."),
    "expected_value": (_F, "Expected revenue over the bundle horizon (shop currency; revenue, "
                           "not margin: × `margin_share` for the margin)."),
    "value_if_returned": (_F, "Revenue the customer brings if they come back (shop currency); "
                              "× `margin_share` it backs the economic gate and uplift x value "
                              "- cost."),
    "cause": (_S, "Likely cause of leaving: delivery_failure, unresolved_complaint, price, "
                  "forgotten, natural or none."),
    "action": (_S, "Win-back action (one of `ck.ACTIONS`)."),
    "action_reason": (_S, "Why this action, in plain words."),
    "policy_trace": (_J, "List of the policy rules that fired, in order."),
    "priority": (_F, "Higher = act first (paid-but-not-delivered at the front)."),
    "action_cost": (_F, "Cost of the action (shop currency)."),
    "expected_incremental_profit": (_F, "Expected profit from acting versus not, in margin: "
                                        "uplift x value x `margin_share` - cost (empty "
                                        "without an uplift model)."),
    "margin_share": (_F, "The customer's gross-margin share (0-1] the policy values revenue "
                         "at: their revenue-weighted category mix under the policy's "
                         "`gross_margin`, else its default."),
    "model": (_S, "Bundle name."),
    "model_version": (_S, "Bundle version."),
}
_ARROW = {_F: pa.float64(), _S: pa.string(), _I: pa.int32(), _J: pa.string(),
          _T: pa.timestamp("us", tz="UTC")}


# -- the flat rows of one shard ----------------------------------------------------------------
def _json_ready(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) or math.isinf(value) else float(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    return value


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def to_json_text(value: object) -> str | None:
    """A list/dict cell as compact JSON (NaN -> null); a missing cell stays missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:  # fast path: plain Python values, as scoring builds them
        return _ENCODER.encode(value)
    except (TypeError, ValueError):  # numpy scalars, NaN, timestamps
        return _ENCODER.encode(_json_ready(value))


def _kind_of(name: str, series: pd.Series) -> str:
    if name in OUTPUT_COLUMNS:
        return OUTPUT_COLUMNS[name][0]
    dtype = series.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return _T
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        return _F
    if series.map(lambda v: isinstance(v, (list, dict, tuple, np.ndarray))).any():
        return _J
    return _S


def _column(kind: str, series: pd.Series) -> pd.Series:
    if kind == _F:
        return pd.Series(series.to_numpy(dtype=float, na_value=np.nan), index=series.index,
                         dtype="float64")
    if kind == _I:
        return series.astype("Int32")
    if kind == _T:
        return pd.to_datetime(series, utc=True).astype("datetime64[us, UTC]")
    if kind == _J:
        return pd.Series([to_json_text(v) for v in series.to_numpy(dtype=object)],
                         index=series.index, dtype="str")
    return series.astype("str")


def flatten(scored: pd.DataFrame, *, as_of: pd.Timestamp, model: str,
            model_version: str) -> pd.DataFrame:
    """``ck.score``'s frame as flat output rows: ``as_of`` and ``customer_id`` first, every
    known column in :data:`OUTPUT_COLUMNS` order and kind, lists as JSON, model last."""
    frame = scored.reset_index()
    frame.insert(0, "as_of", pd.Series([as_of] * len(frame), dtype="datetime64[us, UTC]"))
    frame["model"] = model
    frame["model_version"] = model_version
    known = [c for c in OUTPUT_COLUMNS if c in frame.columns and c not in ("model",
                                                                          "model_version")]
    extra = [c for c in frame.columns if c not in OUTPUT_COLUMNS]
    order = [*known, *extra, "model", "model_version"]
    out = {}
    for name in order:
        series = frame[name]
        out[name] = series if name == "customer_id" else _column(_kind_of(name, series), series)
    return pd.DataFrame(out)


def output_schema(flat: pd.DataFrame) -> pa.Schema:
    """The Arrow schema of flat rows (fixed by column kind, so every shard agrees)."""
    fields = []
    for name in flat.columns:
        if name == "customer_id":
            id_type = (pa.string() if pd.api.types.is_string_dtype(flat[name].dtype)
                       or pd.api.types.is_object_dtype(flat[name].dtype) else pa.int64())
            fields.append(pa.field(name, id_type, nullable=False))
        else:
            fields.append(pa.field(name, _ARROW[_kind_of(name, flat[name])]))
    return pa.schema(fields)


def schema_for(columns: Sequence[str], *, id_type: pa.DataType) -> pa.Schema:
    """The Arrow schema of the flat rows of scores with ``columns`` (``ck.score``'s columns, e.g.
    :func:`churnkit.scoring.score.score_columns`), known before any row is scored: the order and
    kinds of :func:`flatten` and :func:`output_schema`, ``customer_id`` of ``id_type``.

    Raises ``ValueError`` for a column :data:`OUTPUT_COLUMNS` does not document (its kind would
    depend on its values)."""
    given = {*columns, "as_of", "customer_id"}
    unknown = sorted(given - set(OUTPUT_COLUMNS))
    if unknown:
        raise ValueError(f"no documented output kind for column(s) {unknown}")
    fields = [pa.field("customer_id", id_type, nullable=False) if name == "customer_id"
              else pa.field(name, _ARROW[OUTPUT_COLUMNS[name][0]])
              for name in OUTPUT_COLUMNS if name in given
              and name not in ("model", "model_version")]
    fields += [pa.field(name, _ARROW[OUTPUT_COLUMNS[name][0]]) for name in ("model",
                                                                              "model_version")]
    return pa.schema(fields)


def to_arrow(flat: pd.DataFrame, schema: pa.Schema | None = None) -> pa.Table:
    """Flat rows as an Arrow table of :func:`output_schema` (no pandas metadata)."""
    if schema is not None and len(flat) == 0:
        return schema.empty_table()  # a shard with no customer known at as_of
    schema = schema or output_schema(flat)
    arrays = []
    for f in schema:
        series = flat[f.name]
        if pa.types.is_timestamp(f.type):
            # naive UTC values (pyarrow reads datetime64 as UTC for a UTC-typed field)
            values = series.dt.tz_convert(None).to_numpy(dtype="datetime64[us]")
            arrays.append(pa.array(values, type=f.type, mask=series.isna().to_numpy()))
        else:
            arrays.append(pa.array(series, type=f.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=schema)


def read_scores(path: str | Path) -> pd.DataFrame:
    """Read a batch output file back as a frame (index ``customer_id``), JSON columns parsed."""
    frame = pd.read_parquet(path).set_index("customer_id")
    for name in JSON_COLUMNS:
        if name in frame.columns:
            frame[name] = [None if v is None or (isinstance(v, float) and math.isnan(v))
                           else json.loads(v) for v in frame[name]]
    return frame
