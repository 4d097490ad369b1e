"""Scoring: features -> churn probability, risk band and percentile, segment, drivers, timing,
value and the win-back policy's decision.

:func:`score` is the one scoring entry: the batch job, Spark, the HTTP service and the training
evaluations call it (training's evaluations, which hold feature frames already, call
:func:`score_features`, its second half). Features are built with the bundle's population fit,
so one customer scored alone gets exactly the numbers of the full run.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np
import pandas as pd

from churnkit.data.contract import as_utc_timestamp
from churnkit.data.frames import model_matrix
from churnkit.data.tables import Tables
from churnkit.features import build_features
from churnkit.models.timing import OUTPUT_COLUMNS as TIMING_COLUMNS
from churnkit.policy import POLICY_COLUMNS, PolicyConfig, at_risk_rows, decide
from churnkit.policy.segments import activity_state, lifecycle_segment
from churnkit.scoring.bundle import ModelBundle
from churnkit.scoring.drivers import explain as driver_texts

#: What every bundle's scores hold before the optional stages (see :func:`score_columns`).
BASE_COLUMNS = ("churn_probability", "risk_percentile", "risk_band", "segment", "activity",
                "top_drivers")
VALUE_COLUMNS = ("expected_value", "value_if_returned")

N_DRIVERS = 3


def top_drivers(contributions: pd.DataFrame, features: pd.DataFrame,
                n: int = N_DRIVERS) -> list[list[dict]]:
    """Per row, the ``n`` features pushing churn up the most (largest positive SHAP values),
    each as ``{"feature", "value", "contribution", "text"}`` (contribution in log-odds; text:
    plain words with numbers, from :mod:`churnkit.scoring.drivers`)."""
    values = contributions.drop(columns="bias")
    names = np.asarray(values.columns)
    matrix = values.to_numpy()
    rows = np.arange(len(matrix))
    # The n largest per row (argpartition, then order those n): no full sort of every row.
    n = min(n, matrix.shape[1])
    top = np.argpartition(-matrix, n - 1, axis=1)[:, :n] if n else np.zeros((len(rows), 0), int)
    picked = np.take_along_axis(top, np.argsort(-np.take_along_axis(matrix, top, axis=1),
                                                 axis=1, kind="stable"), axis=1)
    texts = driver_texts(picked, names, features)
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
    # Contributions are sorted, so the positive ones come first (a driver pushes churn up).
    return [
        [{"feature": f, "value": v, "contribution": c, "text": t}
         for f, v, c, t, ok in zip(fr, vr, cr, tr, kr, strict=True) if ok]
        for fr, vr, cr, tr, kr in zip(feature_names, shown.tolist(), contribution.tolist(),
                                      texts.tolist(), keep, strict=True)
    ]


def score_columns(bundle: ModelBundle, *, explain: bool | str = "at_risk") -> list[str]:
    """The columns of ``bundle``'s scores, in order (what :func:`score` returns, also when no
    customer is known yet): the base columns, then each optional stage's, then the policy's."""
    columns = [c for c in BASE_COLUMNS if explain or c != "top_drivers"]
    if bundle.timing is not None:
        columns += TIMING_COLUMNS
    if bundle.value is not None:
        columns += VALUE_COLUMNS
    columns += POLICY_COLUMNS
    # Contact caps date the customers they hold back, with or without a timing model.
    if bundle.timing is None and (bundle.policy or PolicyConfig.default()).contact_caps.active:
        columns.append("contact_date")
    return columns


def score_features(features: pd.DataFrame, bundle: ModelBundle, *, as_of: object,
                   explain: bool | str = "at_risk") -> pd.DataFrame:
    """Score a feature frame (index ``customer_id``, built as of ``as_of``) with ``bundle``.

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
    if bundle.timing is not None:
        out = out.join(bundle.timing.predict(features, as_of=as_utc_timestamp(as_of)))
    # value_if_returned (what a customer who comes back is worth) backs the economic gate and
    # uplift x value - cost; without a value model the policy falls back to past spend.
    if bundle.value is not None:
        value = bundle.value.predict_frame(features)
        out["expected_value"] = value["expected_value"]
        out["value_if_returned"] = value["value_if_returned"]
    uplift = bundle.uplift.predict(features) if bundle.uplift is not None else None
    return decide(out, features, config, uplift, contributions=contributions, as_of=as_of)


def score(tables: Tables, *, as_of: object, bundle: ModelBundle,
          customer_ids: Iterable[object] | None = None, explain: bool | str = "at_risk",
          timings: dict[str, float] | None = None,
          with_features: bool = False) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Score customers as of ``as_of`` (required; naive = UTC) with ``bundle``.

    Parameters
    ----------
    tables
        The shop's tables (validated or not).
    as_of
        The cutoff: features use only what was known strictly before it, with the bundle's
        population fit.
    customer_ids
        Limit the rows to these customers; ids unknown at ``as_of`` are absent from the result.
    explain
        Whose drivers to compute (see :func:`score_features`).
    timings
        When given, receives the seconds spent in ``features`` and ``models_and_policy``.
    with_features
        Also return the feature frame the scores were computed from.

    Returns
    -------
    pd.DataFrame
        Index ``customer_id``, the columns of :func:`score_columns`; no rows (same columns)
        when no customer is known at ``as_of``. With ``with_features``, ``(scores, features)``.
    """
    cutoff = as_utc_timestamp(as_of)
    t0 = time.perf_counter()
    features = build_features(tables, as_of=cutoff, customer_ids=customer_ids,
                              population=bundle.population)
    # pandas deep-copies ``attrs`` on every operation; scoring needs none of them.
    features.attrs = {}
    t1 = time.perf_counter()
    if len(features):
        scored = score_features(features, bundle, as_of=cutoff, explain=explain)
    else:  # nobody signed up before as_of: the models refuse empty input
        scored = pd.DataFrame({c: pd.Series([], dtype=object)
                               for c in score_columns(bundle, explain=explain)},
                              index=features.index)
    if timings is not None:
        timings["features"] = t1 - t0
        timings["models_and_policy"] = time.perf_counter() - t1
    return (scored, features) if with_features else scored
