"""Benchmark of the churn training pipeline: speed and honest model quality.

Usage::

    .venv/bin/python benchmarks/train.py [--customers 200000] [--trials 30] [--train-cutoffs 4]
                                         [--data DIR] [--orders-only]

On a synthetic shop (generated with churnkit.synth, cached as Parquet under ``--data``), runs
``training.pipeline.train`` as ``churnkit train`` does: features at every cutoff, the Optuna
search, the calibrated final model, and the held-out evaluation beside the baselines and the
generator's oracle. Prints the wall time per stage, the peak RSS, and the quality figures:
ROC-AUC of the model, each baseline and the oracle with 95% bootstrap intervals, the paired
difference to the best baseline, and the share of the oracle's margin above 0.5 that the model
reaches (goal: >= 95%). ``--orders-only`` repeats the run with customers and orders alone.

Goal (issue): 200k customers x 4 cutoffs with 30 trials in <= 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import pandas as pd

import churnkit as ck
from training.config import TrainConfig
from training.pipeline import train

START, END = "2023-01-01", "2025-07-01"


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def shop(n: int, seed: int, data: Path | None):
    folder = data or Path(tempfile.gettempdir()) / f"churnkit-train-bench-{n}-{seed}"
    t0 = time.perf_counter()
    tables, truth = ck.synth.generate(n, seed=seed, start=START, end=END)
    print(f"generated {n:,} customers in {time.perf_counter() - t0:.1f} s "
          f"({sum(tables.n_rows().values()):,} rows)")
    if not (folder / "customers.parquet").exists():
        ck.save_tables(tables, folder)
    return tables, truth


def run(tables, truth, args, label: str) -> None:
    config = TrainConfig.load(trials=args.trials, train_cutoffs=args.train_cutoffs,
                              seed=args.seed, models_dir=Path(tempfile.mkdtemp()))
    stages: dict[str, float] = {}
    marks = {"t": time.perf_counter(), "stage": "features"}

    def progress(stage: str, done: int, total: int) -> None:
        if stage != marks["stage"]:
            now = time.perf_counter()
            stages[marks["stage"]] = now - marks["t"]
            marks.update(t=now, stage=stage)

    t0 = time.perf_counter()
    result = train(tables, as_of=END, config=config, truth=truth, progress=progress,
                   created_at=pd.Timestamp("2025-07-02", tz="UTC"))
    total = time.perf_counter() - t0
    stages[f"{marks['stage']} + final fit + evaluation"] = time.perf_counter() - marks["t"]
    ev = result.evaluation
    print(f"\n== {label}: {result.bundle.metadata.n_train_rows:,} training rows, "
          f"{len(result.bundle.feature_spec.names)} features, {args.trials} trials ==")
    for stage, seconds in stages.items():
        print(f"  {stage:<40} {seconds:7.1f} s")
    print(f"  {'total':<40} {total:7.1f} s   peak RSS {peak_rss_gb():.1f} GB")
    print(f"  evaluation at {ev.cutoff:%Y-%m-%d}: {ev.n_customers:,} customers, churn rate "
          f"{ev.churn_rate:.3f}")
    print(ev.summary_table().to_string())
    diff = ev.versus_best_baseline["roc_auc"]
    print(f"  model - {ev.best_baseline}: ROC-AUC {diff}")
    for name, d in ev.versus_baselines.items():
        print(f"  model - {name}: ROC-AUC {d['roc_auc']}")
    for group in ev.groups.values():
        print(f"  among customers who {group.line(ev.model)}")
    if ev.oracle_margin_share is not None:
        print(f"  share of the oracle's margin above 0.5: {ev.oracle_margin_share:.3f}")
    print(f"  best params: {result.study.best_params}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--train-cutoffs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--orders-only", action="store_true")
    args = parser.parse_args()
    tables, truth = shop(args.customers, args.seed, args.data)
    run(tables, truth, args, "all tables")
    if args.orders_only:
        lean = ck.Tables(customers=tables.customers, orders=tables.orders, normalized=True)
        run(lean, truth, args, "customers + orders only")


if __name__ == "__main__":
    main()
