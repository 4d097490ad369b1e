"""Scoring: features -> churn probability, risk band and percentile, segment, drivers, timing,
value and the win-back policy's decision.

:func:`score` is the one scoring entry: the batch job, Spark, the HTTP service and the training
evaluations call it (training's evaluations, which hold feature frames already, call
:func:`score_features`, its second half). Features are built with the bundle's population fit,
so one customer scored alone gets exactly the numbers of the full run.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnkit.data.columns import FeatureColumns
from churnkit.data.contract import as_utc_timestamp
from churnkit.data.frames import frame_of_arrays, model_matrix, require_columns
from churnkit.data.tables import Tables
from churnkit.features import feature_columns, margin_shares
from churnkit.features.registry import all_features
from churnkit.models.timing import OUTPUT_COLUMNS as TIMING_COLUMNS
from churnkit.policy import POLICY_COLUMNS, PolicyConfig, at_risk_rows
from churnkit.policy.causes import RowContributions
from churnkit.policy.rules import REQUIRED_FEATURES, decide_columns
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
    return _top_drivers(values.to_numpy(), np.asarray(values.columns),
                        FeatureColumns.from_frame(features), n)


def _top_drivers(matrix: np.ndarray, names: np.ndarray, features: FeatureColumns,
                 n: int = N_DRIVERS) -> list[list[dict]]:
    """:func:`top_drivers` of SHAP values ``matrix`` (rows × features ``names``, no bias)."""
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
        for j in np.unique(picked[:, k]).tolist():
            hit = np.flatnonzero(picked[:, k] == j)
            name = str(names[j])
            if features.is_text(name):
                vals = features.text(name)[hit].astype(object)
                vals[pd.isna(vals)] = None
            else:
                num = features.number(name)[hit]
                vals = np.empty(len(num), dtype=object)
                vals[:] = num.tolist()
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


def score_features(features: pd.DataFrame | FeatureColumns, bundle: ModelBundle, *,
                   as_of: object, explain: bool | str = "at_risk",
                   margin_share: np.ndarray | pd.Series | None = None,
                   as_frame: bool = True) -> pd.DataFrame | Scores:
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

    ``margin_share``: each row's gross-margin share (aligned with ``features``; see
    :func:`customer_margin_shares`), what the policy multiplies revenue by (docs/policy.md
    "Money in margin"); None: the policy config's default share for everyone.

    The frame is read once into arrays (:class:`churnkit.data.columns.FeatureColumns`, which
    may also be passed instead of it); every stage works on those, and the result is built once
    at the end, so one customer costs little more than the models' own work. Each row depends
    only on its own features: a customer scored alone gets the bits of the full run.
    ``as_frame=False`` returns those columns as :class:`Scores` instead of the frame.
    """
    if explain not in (True, False, "at_risk"):
        raise ValueError(f"explain={explain!r}; expected True, False or 'at_risk'")
    config = bundle.policy or PolicyConfig.default()
    columns = FeatureColumns.from_frame(features)
    model = bundle.churn_model
    require_columns(columns, bundle.feature_spec.names, needed_by="the churn model")
    design = model.design(columns)
    if design is None:  # a frame LightGBM reads otherwise (see ChurnModel.design)
        frame = model_matrix(columns.frame, bundle.feature_spec.names)
        probability = model.predict_proba(frame)[:, 1]
    else:
        probability = model.predict_proba_design(design)
    raw_percentile = bundle.risk_percentile(probability)
    percentile = np.round(raw_percentile, 1)
    scored: dict[str, object] = {
        "churn_probability": probability,
        "risk_percentile": percentile,
        "risk_band": bundle.risk_band(raw_percentile),
        "segment": lifecycle_segment(columns),
        "activity": activity_state(columns),
    }
    contributions = None
    n = len(columns)
    if explain:
        rows = (np.arange(n) if explain is True
                else np.flatnonzero(at_risk_rows(percentile, columns, config)))
        every = len(rows) == n
        drivers: list[list[dict]] = [[] for _ in range(n)]
        if len(rows):
            if design is not None:
                values = model.contributions_design(design if every else design[rows])
            else:
                values = model.contributions(frame if every else frame.iloc[rows]).to_numpy()
            names = np.asarray(model.feature_names_in_)
            explained = _top_drivers(values[:, :-1], names,
                                     columns if every else columns.take(rows))
            for row, listed in zip(rows.tolist(), explained, strict=True):
                drivers[row] = listed
            contributions = RowContributions(values, rows, tuple(model.feature_names_in_))
        scored["top_drivers"] = drivers
    # The bundle's optional stages, in order; each adds columns (see ModelBundle.components).
    if bundle.timing is not None:
        scored.update(bundle.timing.predict_columns(columns, as_of=as_utc_timestamp(as_of)))
    # value_if_returned (what a customer who comes back is worth) backs the economic gate and
    # uplift x value - cost; without a value model the policy falls back to past spend.
    if bundle.value is not None:
        value = bundle.value.predict_columns(columns)
        scored["expected_value"] = value["expected_value"]
        scored["value_if_returned"] = value["value_if_returned"]
    if margin_share is not None:
        scored["margin_share"] = np.asarray(margin_share, dtype=float)
    uplift = bundle.uplift.predict_columns(columns) if bundle.uplift is not None else None
    # What decide checks of its inputs (the scores are complete here, the rows aligned).
    require_columns(columns, REQUIRED_FEATURES, needed_by="the policy (purchases, consent)")
    if config.contact_caps.active and as_of is None and "contact_date" in scored:
        raise ValueError("decide: the contact caps move contact_date and need as_of (the "
                         "features' cutoff)")
    scored.update(decide_columns(scored, columns, config, uplift, contributions=contributions,
                                 as_of=as_of))
    result = Scores(columns.index, scored)
    return result.frame() if as_frame else result


@dataclass(frozen=True)
class Scores:
    """The scores as the stages made them, one array-like per column (``index`` the
    customers): the frame :func:`score` returns before it is built (``as_frame=False``). The
    HTTP service reads these into its answer: for a few rows, building a frame and reading its
    columns back costs more than the stages after the features."""

    index: pd.Index
    columns: Mapping[str, object]

    def __len__(self) -> int:
        return len(self.index)

    def frame(self) -> pd.DataFrame:
        """The scores frame (what :func:`score` returns)."""
        return _frame(dict(self.columns), self.index)

    def select(self, ids: list[object]) -> Scores:
        """The rows of these customer ids, in their order (each id must be in :attr:`index`)."""
        at = self.index.get_indexer(ids)
        if (at < 0).any():
            raise KeyError(f"not among the scored customers: {np.asarray(ids)[at < 0].tolist()}")
        columns = {}
        for name, values in self.columns.items():
            if isinstance(values, list):
                columns[name] = [values[i] for i in at.tolist()]
            elif isinstance(values, pd.Series | pd.Index):
                columns[name] = values.array.take(at)
            else:
                columns[name] = values.take(at) if hasattr(values, "take") else values[at]
        return Scores(self.index[at], columns)

    def values(self) -> dict[str, list[object]]:
        """Each column as a list of Python values, those the frame's columns' ``tolist()`` would
        give up to missing values (None or NaN where the frame's column holds NaN, NaT or
        None)."""
        n = len(self.index)
        out: dict[str, list[object]] = {}
        for name, values in self.columns.items():
            if isinstance(values, list) and len(values) == n:
                out[name] = values
            elif getattr(values, "ndim", None) == 1 and len(values) == n:  # arrays, Series
                out[name] = values.tolist()
            else:  # anything else the frame makes into a column (e.g. one value for all)
                frame = self.frame()
                return {c: frame[c].tolist() for c in frame.columns}
        return out


#: Score columns kept as objects whatever they hold: no channel stays None, not a missing string.
OBJECT_COLUMNS = ("channel",)


def _frame(columns: dict[str, object], index: pd.Index) -> pd.DataFrame:
    """The scores as one frame (:func:`churnkit.data.frames.frame_of_arrays`, the channel kept
    as objects)."""
    return frame_of_arrays(columns, index, object_columns=OBJECT_COLUMNS)


def warm_up(bundle: ModelBundle) -> None:
    """Score one made-up customer with every stage of ``bundle`` (drivers included), so that
    the first real call does not pay for LightGBM's and the stages' first-use set-up."""
    values = {"count": 1, "total": 1.0, "float": 1.0, "flag": False, "str": None}
    kinds = {"count": "int64", "total": "float64", "float": "float64", "flag": "bool",
             "str": "str"}
    row = pd.DataFrame({f.name: pd.Series([values[f.dtype]], dtype=kinds[f.dtype])
                        for f in all_features()},
                       index=pd.Index([0], name="customer_id"))
    score_features(row, bundle, as_of=bundle.metadata.as_of, explain=True)


def customer_margin_shares(tables: Tables, *, as_of: object, config: PolicyConfig,
                           index: pd.Index) -> np.ndarray | None:
    """The gross-margin share of the customers ``index`` (features built from ``tables`` as of
    ``as_of``): their revenue-weighted category mix under ``config.gross_margin``; None when
    every category has the default share (the policy then applies it to everyone)."""
    margin = config.gross_margin
    if margin.uniform:
        return None
    shares = margin_shares(tables, as_of=as_of, default=margin.default,
                           by_category=margin.by_category, customer_ids=index)
    return shares.reindex(index).to_numpy(dtype=float)


def score(tables: Tables, *, as_of: object, bundle: ModelBundle,
          customer_ids: Iterable[object] | None = None, explain: bool | str = "at_risk",
          timings: dict[str, float] | None = None, with_features: bool = False,
          as_frame: bool = True
          ) -> pd.DataFrame | Scores | tuple[pd.DataFrame | Scores, pd.DataFrame]:
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
    as_frame
        False: the scores as :class:`Scores` (their columns, the frame not built).

    Returns
    -------
    pd.DataFrame
        Index ``customer_id``, the columns of :func:`score_columns`; no rows (same columns)
        when no customer is known at ``as_of``. With ``with_features``, ``(scores, features)``.
    """
    cutoff = as_utc_timestamp(as_of)
    t0 = time.perf_counter()
    # The stages read the engine's arrays; the feature frame is built only when asked for.
    features = feature_columns(tables, as_of=cutoff, customer_ids=customer_ids,
                               population=bundle.population)
    t1 = time.perf_counter()
    if len(features):
        shares = customer_margin_shares(tables, as_of=cutoff, index=features.index,
                                        config=bundle.policy or PolicyConfig.default())
        scored = score_features(features, bundle, as_of=cutoff, explain=explain,
                                margin_share=shares, as_frame=as_frame)
    else:  # nobody signed up before as_of: the models refuse empty input
        scored = pd.DataFrame({c: pd.Series([], dtype=object)
                               for c in score_columns(bundle, explain=explain)},
                              index=features.index)
        if not as_frame:
            scored = Scores(scored.index, {c: [] for c in scored.columns})
    if timings is not None:
        timings["features"] = t1 - t0
        timings["models_and_policy"] = time.perf_counter() - t1
    return (scored, features.frame) if with_features else scored
