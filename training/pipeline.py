"""The retraining pipeline: snapshots -> Optuna search -> calibrated model -> honest evaluation.

``train`` is what ``churnkit train`` runs and what data scientists call from notebooks. It is
point-in-time throughout: features at each cutoff use only what was known before it, the search
and the calibration see the validation cutoff only, and the evaluation cutoff is scored once, at
the end, beside the baselines (and, on synthetic data, the generator's oracle).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

import churnkit as ck
from churnkit.data import model_matrix
from churnkit.features import fit_population, latest_send_age
from churnkit.labels import LABEL_COLUMNS, latest_timestamp
from churnkit.models import ChurnModel, DriftReference
from churnkit.policy import PolicyConfig, lifecycle_segment, postpone_references
from churnkit.scoring import (
    FeatureSpec,
    ModelBundle,
    TrainingMetadata,
    customer_margin_shares,
    reference_quantiles,
    score_features,
    version_stamp,
)
from training.baselines import Baselines
from training.config import TrainConfig
from training.evaluation import Evaluation, evaluate
from training.snapshots import Cutoffs, Progress, build_snapshots, plan_cutoffs
from training.timing import TimingEvaluation, evaluate_timing, fit_timing
from training.tuning import model_params, tune
from training.uplift import UpliftEvaluation
from training.uplift_pooled import PooledUplift, fit_and_evaluate_pooled
from training.value import ValueEvaluation, evaluate_value, fit_value

#: Rows of the evaluation cutoff whose SHAP values feed the global importance plot.
SHAP_SAMPLE = 5000
#: ``as_of`` may lie at most this far after the last event in the data (a quiet last day).
MAX_DATA_LAG_DAYS = 1


@dataclass(frozen=True)
class TrainResult:
    bundle: ModelBundle
    evaluation: Evaluation
    cutoffs: Cutoffs
    study: optuna.Study
    eval_frame: pd.DataFrame  # the evaluation rows: features, labels and every score
    timing_evaluation: TimingEvaluation | None = None  # the timing model at the evaluation cutoff
    value_evaluation: ValueEvaluation | None = None  # value vs realized revenue, same cutoff
    uplift_evaluation: UpliftEvaluation | None = None  # policies on the held-out campaign
    uplift_pooled: PooledUplift | None = None  # the same over the last campaigns, pooled
    uplift_skipped: str | None = None  # why the bundle has no uplift model (config or data)


def evaluation_segments(frame: pd.DataFrame) -> pd.DataFrame:
    """The groups the evaluation reports metrics by: lifecycle segment, browsing, complaints."""
    seg = pd.DataFrame({"segment": lifecycle_segment(frame)}, index=frame.index)
    none = pd.Series(False, index=frame.index)
    seg["has_browsing"] = frame["sessions_lifetime"] > 0 if "sessions_lifetime" in frame else none
    seg["has_complaints"] = frame["tickets_lifetime"] > 0 if "tickets_lifetime" in frame else none
    return seg


def activity_groups(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The evaluation's headline groups (:data:`training.evaluation.ACTIVE_GROUPS`): customers
    whose last order before the cutoff is at most 30 and 90 days old, the ones a campaign can
    still keep (long-lapsed customers are ranked easily by every method and inflate the
    overall figures)."""
    if "days_since_last_order" not in frame.columns:
        return {}
    days = pd.to_numeric(frame["days_since_last_order"], errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):  # no order: NaN, in neither group
        return {f"active_{w}d": days <= w for w in (30, 90)}


def send_ages(tables: ck.Tables, cutoffs: pd.Series) -> np.ndarray:
    """Per row, the age of the shop's latest message at the row's cutoff
    (:func:`churnkit.features.latest_send_age`; NaN: nothing sent yet), for the drift reference's
    sending-cycle features."""
    contacts = tables.get("contacts")
    cut = pd.to_datetime(cutoffs, utc=True)
    ages = {c: latest_send_age(contacts, c) for c in cut.unique()}
    return np.array([np.nan if ages[c] is None else ages[c] for c in cut], dtype=float)


def train(
    tables: ck.Tables,
    *,
    as_of: object,
    config: TrainConfig,
    created_at: pd.Timestamp,
    truth: object | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train, calibrate and evaluate a churn model on data known before ``as_of``.

    Parameters
    ----------
    tables
        The shop's validated tables.
    as_of
        End of the data used (UTC; required). The evaluation cutoff is ``as_of - horizon``.
    config
        Horizon, snapshots, trials, seed (see training/configs/default.yaml).
    created_at
        The bundle's creation time (its version stamp); passed in, never read from a clock here.
    truth
        The synthetic shop's ``GroundTruth``; adds the oracle to the evaluation.
    progress
        Called as ``progress(stage, done, total)`` for features and trials.
    """
    cutoff = ck.as_utc_timestamp(as_of)
    cutoffs = plan_cutoffs(
        as_of=cutoff, horizon_days=config.horizon_days, n_train=config.train_cutoffs,
        step_days=config.cutoff_step_days, data_start=tables.customers["signup_at"].min(),
    )
    last_event = latest_timestamp(tables)
    if last_event < cutoff - pd.Timedelta(days=MAX_DATA_LAG_DAYS):
        raise ValueError(
            f"the data end at {last_event:%Y-%m-%d %H:%M} UTC, more than {MAX_DATA_LAG_DAYS} "
            f"day(s) before --as-of {cutoff:%Y-%m-%d}: the last label window would not be "
            "observed; use an --as-of at or before the end of the data"
        )
    snaps = build_snapshots(tables, cutoffs, data_end=cutoff, progress=progress)
    names = snaps.feature_names
    X, y = model_matrix(snaps.train, names), snaps.train["churned"].to_numpy()
    Xv, yv = model_matrix(snaps.validation, names), snaps.validation["churned"].to_numpy()

    def on_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if progress:
            progress("trials", trial.number + 1, config.trials)

    rows = _sample(len(X), config.tune_rows, config.seed)
    vrows = _sample(len(Xv), config.tune_valid_rows, config.seed + 1)
    study = tune(X.iloc[rows], y[rows], Xv.iloc[vrows], yv[vrows], trials=config.trials,
                 seed=config.seed, n_jobs=config.threads, on_trial=on_trial)
    params = model_params(study.best_params)
    model = ChurnModel(**params, calibration="sigmoid", random_state=config.seed,
                       n_jobs=config.threads)
    model.fit(X, y, eval_set=(Xv, yv))

    baselines = Baselines(horizon_days=config.horizon_days).fit(snaps.train, y)
    ev = snaps.evaluation.set_index("customer_id")
    ye = ev["churned"].to_numpy()
    population_at_eval = snaps.populations[cutoffs.evaluation]
    scores = baselines.score(ev, population_at_eval)
    bundle = _bundle(model, names, tables, cutoff, cutoffs, config, created_at,
                     n_rows=len(X), params=params)
    scored = score_features(ev, _with_reference(bundle, model, ev, names),
                            as_of=cutoffs.evaluation, explain=False)
    scores = {"model": scored["churn_probability"].to_numpy(), **scores}
    oracle = None
    if truth is not None:
        oracle_p = truth.churn_probability(cutoffs.evaluation, horizon_days=config.horizon_days,
                                           customer_ids=ev.index)
        scores["oracle"] = oracle_p.reindex(ev.index).to_numpy()
        oracle = "oracle"
    sample = ev.sample(min(SHAP_SAMPLE, len(ev)), random_state=config.seed)
    contributions = model.contributions(model_matrix(sample, names))
    evaluation = evaluate(
        ye, scores, model="model", oracle=oracle, segments=evaluation_segments(ev),
        groups=activity_groups(ev), contributions=contributions, cutoff=cutoffs.evaluation,
        horizon_days=config.horizon_days, n_boot=config.bootstrap, random_state=config.seed,
    )
    # Timing: fitted on the training and validation snapshots (their label windows close by the
    # evaluation cutoff), evaluated once on the held-out evaluation cutoff.
    timing = fit_timing(pd.concat([snaps.train, snaps.validation], ignore_index=True),
                        horizon_days=config.horizon_days, seed=config.seed,
                        n_jobs=config.threads)
    timing_ev = evaluate_timing(timing, ev, cutoff=cutoffs.evaluation, truth=truth,
                                contacts=tables.get("contacts"))
    bundle = replace(bundle, timing=timing)
    # Value: expected revenue over the horizon, fitted on the same snapshots and
    # judged against the revenue realized after the evaluation cutoff.
    value = fit_value(tables, pd.concat([snaps.train, snaps.validation], ignore_index=True),
                      horizon_days=config.horizon_days, seed=config.seed, threads=config.threads)
    value_ev = evaluate_value(value, tables, snaps.evaluation, horizon_days=config.horizon_days)
    policy = PolicyConfig.from_yaml(config.policy) if config.policy else PolicyConfig.default()
    # Drift: the training features' distributions, for the nightly job's PSI check.
    drift = DriftReference().fit(snaps.train[list(names)],
                                 send_age=send_ages(tables, snaps.train["cutoff"]))
    bundle = replace(bundle, value=value, policy=policy, drift=drift)
    # The decision filter's averages (value, P(return) of the at-risk customers), fixed now
    # on the same reference population as the risk percentiles.
    reference = _reference_rows(ev)
    scored_ref = score_features(
        reference, _with_reference(bundle, model, ev, names), as_of=cutoffs.evaluation,
        explain=False, margin_share=customer_margin_shares(
            tables, as_of=cutoffs.evaluation, config=policy, index=reference.index))
    bundle = replace(bundle, policy=postpone_references(scored_ref, reference, policy))
    metrics = evaluation.flat_metrics() | timing_ev.flat_metrics() | value_ev.flat_metrics()
    # Uplift: which action pays, learned from the randomized campaign holdouts closed
    # by as_of; evaluated on the latest of them with a model fitted on the earlier ones.
    # Pooled: the same over the last campaigns, each held out in turn (one control group is
    # too small to judge a policy).
    uplift_ev, uplift_pooled, uplift_skipped = None, None, None
    if config.uplift:
        try:
            uplift, uplift_ev, uplift_pooled = fit_and_evaluate_pooled(
                tables, as_of=cutoff, truth=truth, bundle=_with_reference(bundle, model, ev, names),
                last=config.uplift_campaigns, n_boot=config.bootstrap, seed=config.seed,
                n_jobs=config.threads or 1)
        except ValueError as exc:  # no contacts table, too few closed campaigns or controls
            uplift_skipped = str(exc)
        else:
            bundle = replace(bundle, uplift=uplift)
            metrics |= uplift_ev.flat_metrics() | uplift_pooled.flat_metrics()
    bundle = _with_reference(bundle, model, ev, names, metrics=metrics)
    eval_frame = ev.drop(columns=[c for c in LABEL_COLUMNS if c != "churned"]).assign(
        **{f"score_{k}": v for k, v in scores.items()}
    )
    return TrainResult(bundle, evaluation, cutoffs, study, eval_frame,
                       timing_evaluation=timing_ev, value_evaluation=value_ev,
                       uplift_evaluation=uplift_ev, uplift_pooled=uplift_pooled,
                       uplift_skipped=uplift_skipped)


def _sample(n: int, limit: int, seed: int) -> np.ndarray:
    """Sorted positions of a seeded random sample of at most ``limit`` of ``n`` rows."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def _bundle(model, names, tables, as_of, cutoffs, config, created_at, *, n_rows, params):
    metadata = TrainingMetadata(
        name=config.name,
        version=version_stamp(created_at),
        created_at=created_at.isoformat(),
        as_of=as_of.isoformat(),
        horizon_days=config.horizon_days,
        cutoffs={"train": [c.isoformat() for c in cutoffs.train],
                 "validation": cutoffs.validation.isoformat(),
                 "evaluation": cutoffs.evaluation.isoformat(),
                 **({"plan_shortened": list(cutoffs.notes)} if cutoffs.notes else {}),
                 **({} if cutoffs.independent else {"independent": False})},
        n_train_rows=int(n_rows),
        code_version=ck.__version__,
        params={k: (float(v) if isinstance(v, float) else v) for k, v in params.items()},
    )
    # Scoring after training uses the population as known at as_of (the newest data).
    return ModelBundle(
        churn_model=model,
        feature_spec=FeatureSpec.from_names(list(names)),
        population=fit_population(tables, as_of=as_of),
        metadata=metadata,
        risk_reference=np.linspace(0, 1, 1001),
    )


def _reference_rows(ev: pd.DataFrame) -> pd.DataFrame:
    """The reference population: customers who bought in the year before the cutoff."""
    return ev[ev["orders_365d"] > 0] if (ev["orders_365d"] > 0).any() else ev


def _with_reference(bundle: ModelBundle, model: ChurnModel, ev: pd.DataFrame, names,
                    metrics: dict | None = None) -> ModelBundle:
    """The bundle with its risk reference set from the evaluation cutoff's probabilities.

    The reference is the customers who bought in the year before the cutoff: percentiles and
    bands then rank risk within the base a CRM still works with, not against customers long gone.
    """
    current = _reference_rows(ev)
    p = model.predict_proba(model_matrix(current, names))[:, 1]
    metadata = bundle.metadata if metrics is None else replace(bundle.metadata, metrics=metrics)
    return replace(bundle, risk_reference=reference_quantiles(p), metadata=metadata)


def bundle_dir(config: TrainConfig, bundle: ModelBundle) -> Path:
    """Where a bundle lands locally: models/<name>/<version>/."""
    return Path(config.models_dir) / bundle.metadata.name / bundle.metadata.version
