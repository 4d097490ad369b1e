"""Fit the customer value model on training snapshots and evaluate it at a held-out cutoff.

Realized value is the revenue a customer brought in ``[cutoff, cutoff + horizon)``: the amount
of orders placed in the window, cancelled and returned orders excluded (their final status as
known at the end of the data). The evaluation compares the model with the baselines a CRM team
would use otherwise: last year's revenue scaled to the horizon, BG/NBD expected purchases × the
customer's mean basket, and the last ``horizon`` days' revenue.

Wiring into :func:`training.pipeline.train` (after the snapshots are built)::

    value = fit_value(tables, snaps.train, horizon_days=h, seed=config.seed,
                      threads=config.threads)
    value_eval = evaluate_value(value, tables, snaps.evaluation, horizon_days=h)
    bundle = replace(bundle, value=value, policy=PolicyConfig.default())
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

import churnkit as ck
from churnkit.models import ValueModel
from training.snapshots import build_snapshots, plan_cutoffs

#: Order statuses that bring no revenue once known.
NO_REVENUE = ("cancelled", "returned")


def realized_revenue(tables: ck.Tables, rows: pd.DataFrame, *, horizon_days: int) -> np.ndarray:
    """Revenue (currency) of each ``(customer_id, cutoff)`` row in ``[cutoff, cutoff + h)``."""
    orders = tables.orders
    keep = ~orders["status"].isin(NO_REVENUE).to_numpy()
    o = pd.DataFrame({"customer_id": orders["customer_id"].to_numpy()[keep],
                      "t": orders["ordered_at"].to_numpy()[keep],
                      "amount": orders["amount"].to_numpy(dtype=float)[keep]})
    h = pd.Timedelta(days=horizon_days)
    out = np.zeros(len(rows))
    ids = rows["customer_id"].to_numpy()
    cut = pd.to_datetime(rows["cutoff"], utc=True)
    for cutoff in cut.unique():
        start = pd.Timestamp(cutoff)
        window = o[(o["t"] >= start) & (o["t"] < start + h)]
        total = window.groupby("customer_id")["amount"].sum()
        at = (cut == cutoff).to_numpy()
        out[at] = total.reindex(ids[at]).fillna(0.0).to_numpy()
    return out


def fit_value(tables: ck.Tables, train_rows: pd.DataFrame, *, horizon_days: int = 90,
              seed: int = 0, threads: int | None = 1, **params: object) -> ValueModel:
    """A :class:`ValueModel` fitted on training snapshot rows (``customer_id``, ``cutoff`` and
    the features, as :func:`training.snapshots.build_snapshots` gives them)."""
    y = realized_revenue(tables, train_rows, horizon_days=horizon_days)
    model = ValueModel(horizon_days=horizon_days, random_state=seed, n_jobs=threads,
                       **params)  # type: ignore[arg-type]
    return model.fit(train_rows, y)


@dataclass(frozen=True)
class ValueEvaluation:
    """Value predictions against realized revenue at one held-out cutoff."""

    cutoff: pd.Timestamp
    horizon_days: int
    n_customers: int
    realized_total: float
    #: predictor -> {"spearman", "mae", "top_decile_capture", "total_ratio"}
    metrics: dict[str, dict[str, float]]

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.metrics).T

    def flat_metrics(self) -> dict[str, float]:
        return {f"value_{p}_{k}": v for p, m in self.metrics.items() for k, v in m.items()}


def value_metrics(predicted: np.ndarray, realized: np.ndarray) -> dict[str, float]:
    """Spearman rank correlation, MAE (currency), the share of realized revenue captured by the
    top 10% by prediction, and predicted total / realized total."""
    predicted = np.nan_to_num(np.asarray(predicted, dtype=float), nan=0.0)
    realized = np.asarray(realized, dtype=float)
    k = max(1, round(0.1 * len(predicted)))
    # Ties (e.g. many zeros) broken at random but reproducibly, so no predictor gains from order.
    jitter = np.random.default_rng(0).random(len(predicted)) * 1e-9
    top = np.argsort(-(predicted + jitter))[:k]
    total = realized.sum()
    return {
        "spearman": float(spearmanr(predicted, realized).statistic),
        "mae": float(np.abs(predicted - realized).mean()),
        "top_decile_capture": float(realized[top].sum() / total) if total > 0 else float("nan"),
        "total_ratio": float(predicted.sum() / total) if total > 0 else float("nan"),
    }


def baseline_values(rows: pd.DataFrame, *, horizon_days: int) -> dict[str, np.ndarray]:
    """What a CRM team would use without a model, each as revenue over the horizon."""
    def col(name: str) -> np.ndarray:
        return np.nan_to_num(pd.to_numeric(rows[name], errors="coerce").to_numpy(dtype=float))

    scale = horizon_days / 365.0
    out = {"last_year_revenue": col("revenue_365d") * scale,
           "last_90d_revenue": col("revenue_90d") * horizon_days / 90.0}
    if "expected_purchases_90d" in rows.columns:
        out["btyd_x_mean_basket"] = (col("expected_purchases_90d") * horizon_days / 90.0
                                     * col("mean_basket"))
    return out


def evaluate_value(model: ValueModel, tables: ck.Tables, eval_rows: pd.DataFrame, *,
                   horizon_days: int = 90) -> ValueEvaluation:
    """The model and the baselines against realized revenue at the evaluation cutoff.

    ``eval_rows``: snapshot rows of one cutoff (``customer_id``, ``cutoff``, features), whose
    window must be observed in ``tables``.
    """
    rows = eval_rows.reset_index() if "customer_id" not in eval_rows.columns else eval_rows
    cutoffs = pd.to_datetime(rows["cutoff"], utc=True).unique()
    if len(cutoffs) != 1:
        raise ValueError(f"evaluate_value expects rows of one cutoff, got {len(cutoffs)}")
    realized = realized_revenue(tables, rows, horizon_days=horizon_days)
    predictions = {"model": model.predict(rows.set_index("customer_id")).to_numpy(),
                   **baseline_values(rows, horizon_days=horizon_days)}
    metrics = {name: value_metrics(p, realized) for name, p in predictions.items()}
    return ValueEvaluation(pd.Timestamp(cutoffs[0]), horizon_days, len(rows),
                           float(realized.sum()), metrics)


def train_value(tables: ck.Tables, *, as_of: object, horizon_days: int = 90,
                train_cutoffs: int = 3, step_days: int = 90, seed: int = 0,
                threads: int | None = 1, **params: object
                ) -> tuple[ValueModel, ValueEvaluation]:
    """Standalone: snapshots as the churn pipeline plans them, fit, evaluate at
    ``as_of - horizon`` (held out: its window is never seen by the fit)."""
    cutoff = ck.as_utc_timestamp(as_of)
    cutoffs = plan_cutoffs(as_of=cutoff, horizon_days=horizon_days, n_train=train_cutoffs,
                           step_days=step_days, data_start=tables.customers["signup_at"].min())
    snaps = build_snapshots(tables, cutoffs, data_end=cutoff)
    # Train on the training cutoffs and the validation cutoff: the value model has no tuning.
    train_rows = pd.concat([snaps.train, snaps.validation], ignore_index=True)
    model = fit_value(tables, train_rows, horizon_days=horizon_days, seed=seed,
                      threads=threads, **params)
    return model, evaluate_value(model, tables, snaps.evaluation, horizon_days=horizon_days)
