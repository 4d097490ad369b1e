"""Statistics the features and the evaluations share: the BG/NBD model of repeat purchases
(P(alive), expected purchases), the Pareto/NBD model (:mod:`churnkit.stats.pareto_nbd`, a
baseline), the one bootstrap (resamples, percentile intervals) and the
classification metrics with bootstrap intervals."""

from churnkit.stats.bootstrap import percentile_interval, resample_counts, resamples
from churnkit.stats.btyd import (
    BGNBDParams,
    expected_purchases,
    fit_bgnbd,
    log_likelihood,
    p_alive,
    p_no_purchase,
)
from churnkit.stats.btyd_data import simulate_bgnbd, summarize_purchases
from churnkit.stats.metrics import (
    METRICS,
    Estimate,
    average_precision,
    bootstrap_draws,
    brier,
    evaluate_scores,
    log_loss,
    paired_difference,
    roc_auc,
    top_decile_lift,
)
from churnkit.stats.pareto_nbd import ParetoNBDParams, fit_pareto_nbd
from churnkit.stats.pareto_nbd import p_alive as pareto_p_alive
from churnkit.stats.pareto_nbd import p_no_purchase as pareto_p_no_purchase

__all__ = [
    "METRICS",
    "BGNBDParams",
    "Estimate",
    "ParetoNBDParams",
    "average_precision",
    "bootstrap_draws",
    "brier",
    "evaluate_scores",
    "expected_purchases",
    "fit_bgnbd",
    "fit_pareto_nbd",
    "log_likelihood",
    "log_loss",
    "p_alive",
    "p_no_purchase",
    "paired_difference",
    "pareto_p_alive",
    "pareto_p_no_purchase",
    "percentile_interval",
    "resample_counts",
    "resamples",
    "roc_auc",
    "simulate_bgnbd",
    "summarize_purchases",
    "top_decile_lift",
]
