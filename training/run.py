"""What the ``train`` and ``evaluate`` commands do, step by step, with progress and a summary."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.progress import Progress

import churnkit as ck
from churnkit.cli import print_frame
from churnkit.labels import build_training_set
from training.baselines import Baselines
from training.config import TrainConfig
from training.evaluation import evaluate
from training.pipeline import activity_groups, bundle_dir, evaluation_segments, train
from training.report import write_report
from training.timing import evaluate_timing, summary_lines
from training.tracking import log_training_run, pyfunc_example
from training.uplift_pooled import VERDICT_PAIRS, pooled_uplift

REPORT_NAME = "evaluation.html"


def _truth_for(data: Path):
    """The ground truth of a synthetic shop (regenerated from its recipe), else None (also for
    a shop written by another generator version: its recipe would give other data)."""
    recipe = ck.synth.read_recipe(data)
    if not ck.synth.is_current(recipe):
        return None
    _, truth = ck.synth.generate(recipe["n_customers"], seed=recipe["seed"],
                                 start=recipe["start"], end=recipe["end"])
    return truth


def print_evaluation(console: Console, evaluation) -> None:
    print_frame(console, evaluation.summary_table(), index_name="score",
                title=f"Held-out evaluation at {evaluation.cutoff:%Y-%m-%d} "
                      f"({evaluation.n_customers:,} customers, churn rate "
                      f"{evaluation.churn_rate:.1%}); 95% bootstrap intervals")
    diff = evaluation.versus_best_baseline["roc_auc"]
    console.print(f"model - {evaluation.best_baseline} (best baseline), ROC-AUC: "
                  f"{diff.value:+.4f} [{diff.low:+.4f}, {diff.high:+.4f}]")
    for group in evaluation.groups.values():
        console.print("among customers who " + group.line(evaluation.model))
    if evaluation.oracle_margin_share is not None:
        console.print(f"share of the oracle's margin above 0.5 reached: "
                      f"{evaluation.oracle_margin_share:.1%}")


def run_training(*, data: Path, as_of: str, register: str | None, progress: Progress,
                 config_path: Path | None, overrides: dict, console: Console):
    config = TrainConfig.load(config_path, **overrides)
    with progress:
        task = progress.add_task(f"Loading {data}", total=None)
        tables = ck.load_tables(data)
        truth = _truth_for(data)
        progress.update(task, description=f"Loaded {data}", total=1, completed=1)
        tasks: dict[str, int] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                label = {"features": "Features per cutoff", "trials": "Optuna trials"}[stage]
                tasks[stage] = progress.add_task(label, total=total)
            progress.update(tasks[stage], completed=done)

        result = train(tables, as_of=as_of, config=config, truth=truth, progress=on_progress,
                       created_at=pd.Timestamp.now(tz="UTC"))
    target = bundle_dir(config, result.bundle)
    result.bundle.save(target)
    report = write_report(result.evaluation, target / REPORT_NAME,
                          title=f"churnkit: {config.name} {result.bundle.metadata.version}",
                          details=_details(data, result), timing=result.timing_evaluation,
                          pooled=result.uplift_pooled)
    logged = log_training_run(
        tracking_uri=config.tracking_uri, experiment=config.experiment, bundle_path=target,
        params={**result.bundle.metadata.params, "horizon_days": config.horizon_days,
                "train_cutoffs": len(result.cutoffs.train), "trials": config.trials,
                "plan_shortened": "; ".join(result.cutoffs.notes) or None,
                "seed": config.seed, "as_of": result.bundle.metadata.as_of},
        # churn, timing, value and uplift figures, as the bundle's metadata holds them
        metrics={**result.bundle.metadata.metrics,
                 "independent_evaluation": float(result.cutoffs.independent)},
        artifacts=[report],
        evaluation=result.evaluation.to_dict(), example=pyfunc_example(tables, result.bundle),
        register_as=register,
    )
    for note in result.cutoffs.notes:
        console.print(f"[yellow]training plan shortened to the history there is:[/] {note}")
    print_evaluation(console, result.evaluation)
    if result.timing_evaluation is not None:
        for line in summary_lines(result.timing_evaluation):
            console.print(line)
    print_winback_evaluation(console, result)
    console.print(f"bundle: {target}\nreport: {report}\nMLflow run: {logged.run_id}"
                  + (f"\nregistered: {register} v{logged.registered_version} @challenger"
                     if register else ""))
    return result, target, logged


def print_winback_evaluation(console: Console, result) -> None:
    """The value model against realized revenue, and the policies on the held-out campaign."""
    if result.value_evaluation is not None:
        v = result.value_evaluation
        print_frame(console, v.table(), index_name="predictor", float_format="{:.3f}",
                    title=f"Customer value vs revenue realized in the {v.horizon_days} days after "
                          f"{v.cutoff:%Y-%m-%d} ({v.n_customers:,} customers)")
    if result.uplift_skipped:
        console.print(f"No uplift model: {result.uplift_skipped}")
    if result.uplift_evaluation is not None:
        u = result.uplift_evaluation
        shown = [c for c in ("contacted_share", "profit_per_1000_true", "profit_per_1000_ipw",
                             "profit_per_1000_ipw_low", "profit_per_1000_ipw_high")
                 if c in u.policies]
        print_frame(console, u.policies[shown], index_name="policy", float_format="{:,.2f}",
                    title=f"Incremental profit per 1000 customers on the held-out campaign "
                          f"{u.holdout} (trained on {len(u.train_campaigns)} earlier ones)")
        r = u.ratios()
        ratio = r["vs_best_alternative"]
        line = (f"uplift policy vs the best alternative ({r['best_alternative']}): "
                f"{r['minus_best_alternative']:+,.0f} per 1000"
                + (f" ({ratio:.2f}x)" if ratio == ratio else ""))
        if "vs_oracle" in r:
            line += f"; vs the oracle: {r['vs_oracle']:.0%}"
        console.print(line)
    pooled = getattr(result, "uplift_pooled", None)
    if pooled is not None:
        print_pooled(console, pooled)
    rule = getattr(result.bundle.policy, "postpone", None)
    if rule is not None and rule.active:
        console.print(
            f"decision filter (docs/domain.md: postpone when {rule.below_average_needed} of value, "
            f"cause and P(return) are below average): at-risk averages value "
            f"{rule.reference_value:,.0f}, P(return) {rule.reference_return_probability:.0%}; "
            "applied where the rules decide"
            + (" (row rules_postponing above)" if result.uplift_evaluation is not None else ""))


def print_pooled(console: Console, pooled) -> None:
    """The policies over the last campaigns (:class:`training.uplift_pooled.PooledUplift`):
    pooled estimates with intervals, the paired differences, and what had no estimate."""
    shown = [c for c in ("contacted_share", "profit_per_1000_true", "profit_per_1000_dr",
                         "profit_per_1000_dr_low", "profit_per_1000_dr_high",
                         "profit_per_1000_ipw", "profit_per_1000_ipw_low",
                         "profit_per_1000_ipw_high") if c in pooled.policies]
    print_frame(console, pooled.policies[shown], index_name="policy", float_format="{:,.0f}",
                title=f"Pooled over the last {len(pooled.campaigns)} campaigns "
                      f"({pooled.campaigns[0]} .. {pooled.campaigns[-1]}, "
                      f"{pooled.n_contacts:,} contacts; each held out with a model fitted on "
                      "the campaigns before it): incremental profit per 1000 contacts")
    print_frame(console, pooled.differences, index_name="pair", float_format="{:,.0f}",
                title="Paired differences per 1000 contacts (same resamples), 95% intervals")
    for pair in VERDICT_PAIRS:
        console.print(pooled.verdict(*pair))
    if len(pooled.dropped):
        by_policy = pooled.dropped.groupby("policy")["contacts"].sum()
        console.print("strata without an estimate (nobody randomized to the action or to "
                      "control there; counted as 0): " + ", ".join(
                          f"{k} {v:,} contacts" for k, v in by_policy.items()))


def _details(data: Path, result) -> dict:
    meta = result.bundle.metadata
    return {
        "data": str(data),
        "model": f"{meta.name} {meta.version}",
        "cutoffs": result.cutoffs.describe(),
        **({"training plan shortened": "; ".join(result.cutoffs.notes)}
           if result.cutoffs.notes else {}),
        "training rows": f"{meta.n_train_rows:,}",
        "best parameters": ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in meta.params.items()),
        "features": f"{len(result.bundle.feature_spec.names)} "
                    f"({', '.join(result.bundle.feature_spec.families)})",
    }


def run_evaluation(*, data: Path, model: str, as_of: str, report: Path, console: Console,
                   tracking_uri: str | None, experiment: str | None):
    """Evaluate a bundle at ``as_of - horizon``, with baselines fitted one horizon earlier."""
    import mlflow

    bundle = ck.ModelBundle.load(model)
    tables = ck.load_tables(data)
    h = bundle.metadata.horizon_days
    # --as-of is the end of the data: the label windows may run up to it (not only to the
    # last event, which is earlier).
    end = ck.as_utc_timestamp(as_of, name="--as-of")
    cutoff = end - pd.Timedelta(days=h)
    fit_at = cutoff - pd.Timedelta(days=h)
    base_rows = build_training_set(tables, cutoffs=[fit_at], horizon_days=h, data_end=end)
    ev = build_training_set(tables, cutoffs=[cutoff], horizon_days=h, data_end=end) \
        .set_index("customer_id")
    baselines = Baselines(horizon_days=h).fit(base_rows, base_rows["churned"].to_numpy())
    scored = ck.scoring.score_features(ev, bundle, as_of=cutoff, explain=False)
    scores = {"model": scored["churn_probability"].to_numpy(),
              **baselines.score(ev, ck.features.fit_population(tables, as_of=cutoff))}
    truth = _truth_for(data)
    if truth is not None:
        scores["oracle"] = truth.churn_probability(cutoff, horizon_days=h,
                                                   customer_ids=ev.index).reindex(ev.index)\
            .to_numpy()
    evaluation = evaluate(ev["churned"].to_numpy(), scores, model="model",
                          oracle="oracle" if truth is not None else None,
                          segments=evaluation_segments(ev), groups=activity_groups(ev),
                          cutoff=cutoff, horizon_days=h)
    timing_ev = None  # the bundle's timing model at the same held-out cutoff
    if bundle.timing is not None:
        timing_ev = evaluate_timing(bundle.timing, ev, cutoff=cutoff, truth=truth,
                                    contacts=tables.get("contacts"))
    pooled = None  # the bundle's policy over the last campaigns (its uplift refitted per origin)
    if bundle.uplift is not None and tables.get("contacts") is not None:
        try:
            pooled = pooled_uplift(tables, as_of=end, truth=truth, bundle=bundle)
        except ValueError as exc:
            console.print(f"No pooled policy evaluation: {exc}")
    path = write_report(evaluation, report, title=f"churnkit evaluation: {model}",
                        details={"data": str(data), "model": model}, timing=timing_ev,
                        pooled=pooled)
    config = TrainConfig.load(tracking_uri=tracking_uri, experiment=experiment)
    mlflow.set_tracking_uri(config.tracking_uri)
    mlflow.set_experiment(config.experiment)
    with mlflow.start_run(run_name=f"evaluate {bundle.metadata.name} "
                                   f"{bundle.metadata.version} at {cutoff:%Y-%m-%d}"):
        mlflow.log_metrics(evaluation.flat_metrics()
                           | (timing_ev.flat_metrics() if timing_ev is not None else {})
                           | (pooled.flat_metrics() if pooled is not None else {}))
        mlflow.log_artifact(str(path))
    print_evaluation(console, evaluation)
    if timing_ev is not None:
        for line in summary_lines(timing_ev):
            console.print(line)
    if pooled is not None:
        print_pooled(console, pooled)
    console.print(f"report: {path}")
    return evaluation
