"""Scoring: features -> churn probability, risk band and percentile, segment, drivers.

:func:`score` is the one scoring path: training evaluates its model through
:func:`score_features`, and the batch job and the HTTP service call :func:`score`. Features are
built with the bundle's population fit, so one customer scored alone gets exactly the numbers of
the full run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from churnkit.contracts import as_utc_timestamp

if TYPE_CHECKING:
    from churnkit.bundle import ModelBundle
    from churnkit.tables import Tables

#: DOMAIN.md lifecycle: new = first purchase only, repeat = 2-4, VIP = 5+ purchases.
VIP_MIN_ORDERS = 5
#: DOMAIN.md activity: sleeping = no purchase for 30-90 days, lapsed = 90+ days.
SLEEPING_DAYS, LAPSED_DAYS = 30, 90
N_DRIVERS = 3


def model_matrix(features: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """The model's input columns: text as categories, flags as 0/1, everything else as is.

    Raises ``ValueError`` naming the features the frame lacks (e.g. a table the model was
    trained with is absent now).
    """
    missing = [n for n in names if n not in features.columns]
    if missing:
        raise ValueError(
            f"the model needs features this data does not give: {', '.join(missing[:8])}"
            + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
            + " (was it trained with tables that are absent here?)"
        )
    X = features.loc[:, list(names)].copy()
    for column in X.columns:
        dtype = X[column].dtype
        if pd.api.types.is_bool_dtype(dtype):
            X[column] = X[column].astype("float64")
        elif pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
            X[column] = X[column].astype("category")
    return X


def lifecycle_segment(features: pd.DataFrame) -> np.ndarray:
    """``prospect`` (no order yet), ``new`` (1 order), ``repeat`` (2-4) or ``vip`` (5+)."""
    orders = features["orders_lifetime"].to_numpy()
    return np.select(
        [orders == 0, orders == 1, orders < VIP_MIN_ORDERS],
        ["prospect", "new", "repeat"],
        default="vip",
    )


def activity_state(features: pd.DataFrame) -> np.ndarray:
    """``active`` (< 30 days since the last order), ``sleeping`` (30-90) or ``lapsed`` (90+, or
    never ordered)."""
    days = features["days_since_last_order"].to_numpy(dtype=float)
    return np.select(
        [np.isnan(days) | (days >= LAPSED_DAYS), days >= SLEEPING_DAYS],
        ["lapsed", "sleeping"],
        default="active",
    )


def top_drivers(contributions: pd.DataFrame, features: pd.DataFrame,
                n: int = N_DRIVERS) -> list[list[dict]]:
    """Per row, the ``n`` features pushing churn up the most (largest positive SHAP values),
    each as ``{"feature", "value", "contribution"}`` (contribution in log-odds)."""
    values = contributions.drop(columns="bias")
    names = np.asarray(values.columns)
    matrix = values.to_numpy()
    picked = np.argsort(-matrix, axis=1)[:, :n]
    rows = np.arange(len(matrix))
    shown = np.empty(picked.shape, dtype=object)
    # Gather the picked features' values column by column, not row by row.
    for k in range(picked.shape[1]):
        for j in np.unique(picked[:, k]):
            hit = picked[:, k] == j
            shown[hit, k] = features[names[j]].to_numpy(dtype=object)[hit]
    out = []
    for i in rows:
        drivers = []
        for k, j in enumerate(picked[i]):
            contribution = matrix[i, j]
            if contribution <= 0:
                break
            value = shown[i, k]
            drivers.append({
                "feature": str(names[j]),
                "value": None if pd.isna(value) else (value if isinstance(value, str)
                                                      else float(value)),
                "contribution": round(float(contribution), 4),
            })
        out.append(drivers)
    return out


def score_features(features: pd.DataFrame, bundle: ModelBundle, *,
                   explain: bool = True) -> pd.DataFrame:
    """Score a feature frame (index ``customer_id``) with ``bundle``.

    Returns one row per customer: ``churn_probability``, ``risk_percentile`` (0-100, against the
    bundle's reference population), ``risk_band``, ``segment``, ``activity`` and, with
    ``explain``, ``top_drivers`` (from LightGBM's SHAP values).
    """
    X = model_matrix(features, bundle.feature_spec.names)
    probability = bundle.churn_model.predict_proba(X)[:, 1]
    percentile = bundle.risk_percentile(probability)
    out = pd.DataFrame(
        {
            "churn_probability": probability,
            "risk_percentile": np.round(percentile, 1),
            "risk_band": bundle.risk_band(percentile),
            "segment": lifecycle_segment(features),
            "activity": activity_state(features),
        },
        index=features.index,
    )
    if explain:
        contributions = bundle.churn_model.contributions(X)
        out["top_drivers"] = top_drivers(contributions, features) if len(X) else []
    # The bundle's optional stages, in order; each adds columns (see ModelBundle.components).
    as_of = features.attrs.get("as_of")
    if bundle.timing is not None:
        out = out.join(bundle.timing.predict(features, as_of=as_of))
    if bundle.value is not None:
        out["expected_value"] = bundle.value.predict(features)
    return out


def score(tables: Tables, *, as_of: object, bundle: ModelBundle,
          customer_ids: Iterable[object] | None = None) -> pd.DataFrame:
    """Score customers as of ``as_of`` (required; naive = UTC) with ``bundle``.

    Features use only what was known strictly before ``as_of`` and the bundle's population fit.
    ``customer_ids`` limits the rows (ids unknown at ``as_of`` are absent from the result).
    """
    from churnkit.features import build_features

    cutoff = as_utc_timestamp(as_of)
    features = build_features(tables, as_of=cutoff, customer_ids=customer_ids,
                              population=bundle.population)
    scored = score_features(features, bundle)
    scored.attrs = {"as_of": cutoff, "model": bundle.metadata.name,
                    "model_version": bundle.metadata.version}
    return scored
