"""Held-out evaluation of a churn model against its baselines (and the oracle, on synthetic data).

One bootstrap (:func:`churnkit.stats.bootstrap_draws`) serves every score, so each
"model minus baseline" difference is a *paired* bootstrap: both sides are measured on the same
resampled customers, which is what makes the difference's interval tight and honest.

Everything here is a number or a small frame; :mod:`training.report` turns an
:class:`Evaluation` into HTML, and :meth:`Evaluation.flat_metrics` feeds MLflow.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from churnkit.stats import (
    METRICS,
    Estimate,
    bootstrap_draws,
    paired_difference,
    percentile_interval,
)
from training.evaluation_tables import (
    by_segment,
    calibration,
    gain,
    importance,
    unscored_note,
)

#: Display names of the metrics, for tables and verdicts.
METRIC_LABELS = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "brier": "Brier score",
                 "log_loss": "log loss", "top_decile_lift": "top-decile lift"}
LEVEL = 0.95
_MLFLOW_INVALID = re.compile(r"[^A-Za-z0-9_\-\. /]")


#: The headline groups :func:`training.pipeline.activity_groups` builds, with their labels.
ACTIVE_GROUPS = {"active_30d": "ordered in the last 30 days",
                 "active_90d": "ordered in the last 90 days"}


@dataclass(frozen=True)
class GroupEvaluation:
    """The evaluation among one group of the held-out customers (e.g. those who ordered in the
    last 90 days: the ones a campaign can still keep), with its own bootstrap.

    ``metrics`` per score (model, baselines, oracle) and metric; ``best_baseline`` the best
    baseline by ROC-AUC *in this group*; ``versus_best_baseline`` the paired differences model
    − that baseline. ``note`` says why a group is not scored (too few customers, one outcome);
    its metrics are then empty.
    """

    label: str
    n_customers: int
    churn_rate: float
    metrics: dict[str, dict[str, Estimate]]
    best_baseline: str | None
    versus_best_baseline: dict[str, Estimate]
    note: str = ""

    def line(self, model: str, metric: str = "roc_auc") -> str:
        """One line: the model's value and its paired difference from the group's best
        baseline, with intervals."""
        head = f"{self.label} ({self.n_customers:,} customers"
        if self.note:
            return f"{head}): not scored, {self.note}"
        est, diff = self.metrics[model][metric], self.versus_best_baseline[metric]
        label = METRIC_LABELS.get(metric, metric)
        return (f"{head}, churn rate {self.churn_rate:.1%}): {model} {label} "
                f"{est.value:.3f} [{est.low:.3f}, {est.high:.3f}]; − {self.best_baseline} "
                f"(best baseline here) {diff.value:+.3f} [{diff.low:+.3f}, {diff.high:+.3f}]")


@dataclass(frozen=True, eq=False)  # eq=False: frames and arrays have no boolean equality
class Evaluation:
    """The evaluation of one model at one held-out cutoff; see :func:`evaluate`."""

    cutoff: pd.Timestamp
    horizon_days: int
    n_customers: int
    churn_rate: float
    model: str
    metrics: dict[str, dict[str, Estimate]]
    best_baseline: str
    versus_best_baseline: dict[str, Estimate]
    versus_baselines: dict[str, dict[str, Estimate]]
    oracle: str | None
    oracle_margin_share: float | None
    by_segment: pd.DataFrame
    calibration: pd.DataFrame
    gain: pd.DataFrame
    importance: pd.Series
    score_distribution: dict[str, np.ndarray] = field(repr=False)
    #: Group name (e.g. ``active_90d``) -> its evaluation; see :func:`evaluate`'s ``groups``.
    groups: dict[str, GroupEvaluation] = field(default_factory=dict)

    @property
    def baselines(self) -> list[str]:
        """Names of the scores that are neither the model nor the oracle, in input order."""
        return [s for s in self.metrics if s not in (self.model, self.oracle)]

    @property
    def score_names(self) -> list[str]:
        """Model first, then the baselines, then the oracle (the order of every table)."""
        return [self.model, *self.baselines, *([self.oracle] if self.oracle else [])]

    def verdict(self, metric: str = "roc_auc", baseline: str | None = None) -> str:
        """One sentence on model − ``baseline`` (default: the best) for ``metric``.

        "Beats" needs the whole 95% interval of the improvement above zero, e.g. "model beats
        recency by 0.041 ROC-AUC [0.035, 0.047]"; otherwise it says the difference is unclear.
        """
        baseline = baseline or self.best_baseline
        diff = self.versus_baselines[baseline][metric]
        label = METRIC_LABELS.get(metric, metric)
        # The gain is model better by this much: the difference itself, or minus it for the
        # metrics where lower is better (Brier score, log loss).
        sign = 1.0 if METRICS[metric][1] else -1.0
        gain = sign * diff.value
        low, high = sorted([sign * diff.low, sign * diff.high])
        if low > 0:
            return f"{self.model} beats {baseline} by {gain:.3f} {label} [{low:.3f}, {high:.3f}]"
        if high < 0:
            return (f"{self.model} is worse than {baseline} by {-gain:.3f} {label} "
                    f"[{-high:.3f}, {-low:.3f}]")
        return (f"{self.model} is not clearly better than {baseline} on {label}: "
                f"{gain:+.3f} [{low:+.3f}, {high:+.3f}] includes 0")

    def to_dict(self) -> dict:
        """JSON-ready: Estimates as ``{value, low, high}``, frames as records, NaN as None.

        The score distribution is summarised as a 50-bin histogram over [min, max] rather than
        every customer's probability, so the JSON stays small for millions of customers.
        """
        both = np.concatenate(list(self.score_distribution.values()))
        edges = np.histogram_bin_edges(both, bins=50) if both.size else np.array([0.0, 1.0])
        histogram = {"edges": edges.tolist()} | {
            k: np.histogram(v, bins=edges)[0].tolist() for k, v in self.score_distribution.items()
        }
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out |= {"cutoff": self.cutoff.isoformat(), "importance": self.importance.to_dict(),
                "score_distribution": histogram,
                "groups": {k: {f.name: getattr(g, f.name) for f in fields(g)}
                           for k, g in self.groups.items()}}
        out |= {k: out[k].to_dict("records") for k in ("by_segment", "calibration", "gain")}
        return _jsonable(out)

    def flat_metrics(self) -> dict[str, float]:
        """Finite numbers keyed by valid MLflow metric names, for ``mlflow.log_metrics``.

        ``<score>.<metric>`` (+ ``_low``/``_high``), ``diff_best.<metric>``,
        ``diff.<baseline>.<metric>``, ``oracle_margin_share``, ``churn_rate``, ``n_customers``;
        per group ``<group>.<score>.<metric>``, ``<group>.diff_best.<metric>``,
        ``<group>.n_customers`` and ``<group>.churn_rate``.
        Characters MLflow refuses in score names become ``_``; NaN/inf values are left out.
        """
        out: dict[str, float] = {"churn_rate": self.churn_rate,
                                 "n_customers": float(self.n_customers)}

        def put(prefix: str, by_metric: Mapping[str, Estimate]) -> None:
            for metric, est in by_metric.items():
                out[f"{prefix}.{metric}"] = est.value
                out[f"{prefix}.{metric}_low"] = est.low
                out[f"{prefix}.{metric}_high"] = est.high

        for score, by_metric in self.metrics.items():
            put(_mlflow_name(score), by_metric)
        put("diff_best", self.versus_best_baseline)
        for baseline, by_metric in self.versus_baselines.items():
            put(f"diff.{_mlflow_name(baseline)}", by_metric)
        if self.oracle_margin_share is not None:
            out["oracle_margin_share"] = self.oracle_margin_share
        for name, group in self.groups.items():
            out[f"{name}.n_customers"] = float(group.n_customers)
            out[f"{name}.churn_rate"] = group.churn_rate
            for score, by_metric in group.metrics.items():
                put(f"{name}.{_mlflow_name(score)}", by_metric)
            put(f"{name}.diff_best", group.versus_best_baseline)
        return {k: float(v) for k, v in out.items() if math.isfinite(v)}

    def summary_table(self) -> pd.DataFrame:
        """Rows = scores (model first), columns = metrics as ``"0.812 [0.805, 0.819]"``."""
        rows = {
            score: {m: (_format(self.metrics[score][m]) if m in self.metrics[score] else "—")
                    for m in METRICS}
            for score in self.score_names
        }
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("score")


def evaluate(
    y,
    scores: Mapping[str, np.ndarray],
    *,
    model: str = "model",
    oracle: str | None = None,
    segments: pd.DataFrame | None = None,
    contributions: pd.DataFrame | None = None,
    groups: Mapping[str, np.ndarray] | None = None,
    cutoff,
    horizon_days: int,
    n_boot: int = 200,
    random_state: int = 0,
) -> Evaluation:
    """Evaluate ``scores[model]`` against every other score on the held-out customers.

    Parameters
    ----------
    y
        Whether each customer churned within ``horizon_days`` after ``cutoff`` (bool or 0/1).
    scores
        Score name -> array aligned with ``y`` (by position); higher means more likely to churn.
        Scores inside [0, 1] are treated as probabilities (calibration, Brier score, log loss);
        others (recency in days, say) get only the ranking metrics.
    model
        Name of the model's score; every other score except ``oracle`` is a baseline.
    oracle
        Name of the generator's true churn probability (synthetic data only), the upper bound.
    segments
        Aligned with ``y`` by position, with any of the columns ``segment``, ``has_browsing``,
        ``has_complaints``; metrics are reported per value of each for every score.
    contributions
        SHAP values (columns = features, plus ``bias`` which is ignored) for the evaluated rows
        or a sample of them; gives the global importance (mean absolute value, log-odds).
    groups
        Group name -> boolean mask aligned with ``y`` (e.g. :func:`training.pipeline.
        activity_groups`: customers who ordered in the last 30 and 90 days). Each gets the
        metrics of every score with intervals and the paired difference against its own best
        baseline, from its own bootstrap (``n_boot`` resamples of its customers); labels from
        :data:`ACTIVE_GROUPS` where the name is one of those.
    cutoff
        The evaluation cutoff (UTC; a naive timestamp is taken as UTC).
    horizon_days
        Length of the label window, days.
    n_boot, random_state
        Number of bootstrap resamples (shared by all scores) and their seed.

    Returns
    -------
    Evaluation
        Values with 95% percentile intervals; see the class for the fields.
    """
    y = _as_outcome(y)
    scores = _as_scores(scores, len(y))
    if model not in scores:
        raise ValueError(f"model score {model!r} is not among the scores {list(scores)}")
    if oracle is not None and oracle not in scores:
        raise ValueError(f"oracle score {oracle!r} is not among the scores {list(scores)}")
    baselines = [s for s in scores if s not in (model, oracle)]
    if not baselines:
        raise ValueError("evaluate needs at least one baseline score besides the model/oracle")

    draws = bootstrap_draws(y, scores, n_boot=n_boot, random_state=random_state)
    metrics = {s: {m: _estimate(point, sample) for m, (point, sample) in by_metric.items()}
               for s, by_metric in draws.items()}
    best = max(baselines, key=lambda s: metrics[s]["roc_auc"].value)
    # Only metrics both sides have: a recency-in-days baseline has no Brier score.
    versus = {b: {m: paired_difference(draws, model, b, m, level=LEVEL)
                  for m in draws[model] if m in draws[b]} for b in baselines}
    share = None
    if oracle is not None:
        oracle_margin = metrics[oracle]["roc_auc"].value - 0.5
        model_margin = metrics[model]["roc_auc"].value - 0.5
        share = model_margin / oracle_margin if oracle_margin > 0 else float("nan")
    probability_scores = [s for s in scores if "brier" in draws[s]]
    return Evaluation(
        cutoff=_utc(cutoff),
        horizon_days=int(horizon_days),
        n_customers=len(y),
        churn_rate=float(y.mean()),
        model=model,
        metrics=metrics,
        best_baseline=best,
        versus_best_baseline=versus[best],
        versus_baselines=versus,
        oracle=oracle,
        oracle_margin_share=share,
        by_segment=by_segment(y, scores, segments, probability_scores),
        calibration=calibration(y, {s: scores[s] for s in probability_scores}),
        gain=gain(y, scores),
        importance=importance(contributions),
        score_distribution={"churned": scores[model][y], "stayed": scores[model][~y]},
        groups={name: _group(name, np.asarray(mask, dtype=bool), y, scores, model, oracle,
                             n_boot, random_state)
                for name, mask in (groups or {}).items()},
    )


def _group(name: str, mask: np.ndarray, y: np.ndarray, scores: dict[str, np.ndarray],
           model: str, oracle: str | None, n_boot: int, random_state: int) -> GroupEvaluation:
    """:class:`GroupEvaluation` of the customers in ``mask``."""
    if len(mask) != len(y):
        raise ValueError(f"group {name!r} has {len(mask)} rows, y has {len(y)}")
    label = ACTIVE_GROUPS.get(name, name)
    y_in = y[mask]
    n = len(y_in)
    churn_rate = float(y_in.mean()) if n else float("nan")
    note = unscored_note(y_in)
    if note:
        return GroupEvaluation(label, n, churn_rate, {}, None, {}, note)
    draws = bootstrap_draws(y_in, {s: v[mask] for s, v in scores.items()}, n_boot=n_boot,
                            random_state=random_state)
    metrics = {s: {m: _estimate(point, sample) for m, (point, sample) in by_metric.items()}
               for s, by_metric in draws.items()}
    baselines = [s for s in scores if s not in (model, oracle)]
    best = max(baselines, key=lambda s: metrics[s]["roc_auc"].value)
    versus = {m: paired_difference(draws, model, best, m, level=LEVEL)
              for m in draws[model] if m in draws[best]}
    return GroupEvaluation(label, n, churn_rate, metrics, best, versus)


# -- helpers -----------------------------------------------------------------------------------
def _as_outcome(y) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"y must be a non-empty 1-D array, got shape {arr.shape}")
    if arr.dtype != bool:
        if not np.isin(arr, [0, 1]).all():
            raise ValueError("y must be bool (churned) or 0/1")
        arr = arr.astype(bool)
    if arr.all() or not arr.any():
        raise ValueError("y has only one outcome: no metric can rank churners above stayers")
    return arr


def _as_scores(scores: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    out = {}
    for name, values in scores.items():
        arr = np.asarray(values, dtype=float)
        if arr.shape != (n,):
            raise ValueError(f"score {name!r} has shape {arr.shape}, expected ({n},) like y")
        if not np.isfinite(arr).all():
            raise ValueError(f"score {name!r} has {int((~np.isfinite(arr)).sum())} "
                             "missing or infinite values")
        out[str(name)] = arr
    return out


def _estimate(point: float, sample: np.ndarray) -> Estimate:
    return Estimate(float(point), *percentile_interval(sample, LEVEL))


def _utc(cutoff) -> pd.Timestamp:
    ts = pd.Timestamp(cutoff)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _format(est: Estimate) -> str:
    return f"{est.value:.3f} [{est.low:.3f}, {est.high:.3f}]"


def _mlflow_name(name: str) -> str:
    return _MLFLOW_INVALID.sub("_", name)


def _jsonable(obj):
    if isinstance(obj, Estimate):
        return _jsonable({"value": obj.value, "low": obj.low, "high": obj.high})
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    return obj
