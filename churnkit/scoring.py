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
    dtypes = X.dtypes  # read once: a column lookup per feature costs ~4 ms for one customer
    flags = [c for c, d in dtypes.items() if pd.api.types.is_bool_dtype(d)]
    if flags:
        X[flags] = X[flags].astype("float64")
    for column, dtype in dtypes.items():
        if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
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
    each as ``{"feature", "value", "contribution", "text"}`` (contribution in log-odds; text:
    plain words with numbers, from :mod:`churnkit.reasons`)."""
    from churnkit.reasons import explain

    values = contributions.drop(columns="bias")
    names = np.asarray(values.columns)
    matrix = values.to_numpy()
    rows = np.arange(len(matrix))
    # The n largest per row (argpartition, then order those n): no full sort of every row.
    n = min(n, matrix.shape[1])
    top = np.argpartition(-matrix, n - 1, axis=1)[:, :n] if n else np.zeros((len(rows), 0), int)
    picked = np.take_along_axis(top, np.argsort(-np.take_along_axis(matrix, top, axis=1),
                                                 axis=1, kind="stable"), axis=1)
    texts = explain(picked, names, features)
    # Gather the picked features' values column by column, not row by row (only the hit rows
    # become Python objects: floats, str or None).
    shown = np.empty(picked.shape, dtype=object)
    for k in range(picked.shape[1]):
        for j in np.unique(picked[:, k]):
            hit = np.flatnonzero(picked[:, k] == j)
            col = features[names[j]].iloc[hit]
            if pd.api.types.is_string_dtype(col.dtype) or col.dtype == object:
                vals = col.to_numpy(dtype=object)
                vals[pd.isna(col).to_numpy()] = None
            else:
                num = col.to_numpy(dtype=float, na_value=np.nan)
                vals = np.array(num.tolist(), dtype=object)
                vals[np.isnan(num)] = None
            shown[hit, k] = vals
    contribution = np.round(np.take_along_axis(matrix, picked, axis=1), 4)
    keep = (np.take_along_axis(matrix, picked, axis=1) > 0).tolist()
    feature_names = names.astype(str)[picked].tolist()
    # Contributions are sorted, so the positive ones come first (DOMAIN: drivers push churn up).
    return [
        [{"feature": f, "value": v, "contribution": c, "text": t}
         for f, v, c, t, ok in zip(fr, vr, cr, tr, kr, strict=True) if ok]
        for fr, vr, cr, tr, kr in zip(feature_names, shown.tolist(), contribution.tolist(),
                                      texts.tolist(), keep, strict=True)
    ]


def score_features(features: pd.DataFrame, bundle: ModelBundle, *,
                   explain: bool | str = "at_risk", as_of: object | None = None) -> pd.DataFrame:
    """Score a feature frame (index ``customer_id``) with ``bundle``.

    Returns one row per customer: ``churn_probability``, ``risk_percentile`` (0-100, against the
    bundle's reference population), ``risk_band``, ``segment``, ``activity`` and, unless
    ``explain`` is False, ``top_drivers`` (from LightGBM's SHAP values); then the optional
    stages' columns (timing; ``expected_value`` and ``value_if_returned`` from a value model)
    and the win-back policy's (:data:`churnkit.policy.POLICY_COLUMNS`, with the bundle's policy
    config or the packaged defaults, and the uplift model's predictions when the bundle has
    one).

    ``explain``: ``"at_risk"`` (default) computes drivers for the customers the policy counts
    as at risk (:func:`churnkit.policy.causes.at_risk_rows`), the only ones whose cause it reads
    from SHAP values; the others get an empty list. TreeSHAP is the dearest step of scoring, and
    a low-risk customer has few features pushing churn up. ``True`` explains everyone.
    """
    from churnkit.policy import PolicyConfig, decide
    from churnkit.policy.causes import at_risk_rows

    if explain not in (True, False, "at_risk"):
        raise ValueError(f"explain={explain!r}; expected True, False or 'at_risk'")
    config = bundle.policy or PolicyConfig.default()
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
    contributions = None
    if explain:
        rows = (np.arange(len(X)) if explain is True
                else np.flatnonzero(at_risk_rows(out["risk_percentile"].to_numpy(), features,
                                                 config)))
        every = len(rows) == len(X)
        drivers: list[list[dict]] = [[] for _ in range(len(X))]
        if len(rows):
            contributions = bundle.churn_model.contributions(X if every else X.iloc[rows])
            explained = top_drivers(contributions, features if every else features.iloc[rows])
            for row, listed in zip(rows.tolist(), explained, strict=True):
                drivers[row] = listed
        out["top_drivers"] = drivers
    # The bundle's optional stages, in order; each adds columns (see ModelBundle.components).
    if as_of is None:
        as_of = features.attrs.get("as_of")
    if bundle.timing is not None:
        out = out.join(bundle.timing.predict(features, as_of=as_of))
    # value_if_returned (what a customer who comes back is worth) backs the economic gate and
    # uplift x value - cost; without a value model the policy falls back to past spend.
    if bundle.value is not None:
        value = bundle.value.predict_frame(features)
        out["expected_value"] = value["expected_value"]
        out["value_if_returned"] = value["value_if_returned"]
    uplift = bundle.uplift.predict(features) if bundle.uplift is not None else None
    return decide(out, features, config, uplift, contributions=contributions)


def score(tables: Tables, *, as_of: object, bundle: ModelBundle,
          customer_ids: Iterable[object] | None = None,
          explain: bool | str = "at_risk") -> pd.DataFrame:
    """Score customers as of ``as_of`` (required; naive = UTC) with ``bundle``.

    Features use only what was known strictly before ``as_of`` and the bundle's population fit.
    ``customer_ids`` limits the rows (ids unknown at ``as_of`` are absent from the result);
    ``explain`` says whose drivers to compute (see :func:`score_features`).
    """
    from churnkit.features import build_features

    cutoff = as_utc_timestamp(as_of)
    features = build_features(tables, as_of=cutoff, customer_ids=customer_ids,
                              population=bundle.population)
    # pandas deep-copies ``attrs`` on every operation; scoring needs none of them.
    features.attrs = {}
    scored = score_features(features, bundle, explain=explain, as_of=cutoff)
    scored.attrs = {"as_of": cutoff, "model": bundle.metadata.name,
                    "model_version": bundle.metadata.version}
    return scored
