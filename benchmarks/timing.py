"""Contact-timing benchmark (issue 5): fit time, scoring time and held-out quality.

The shop `make demo` trains on (20k customers, seed 7, 2023-01-01..2025-07-01, as_of 2025-07-01);
snapshots and cutoffs exactly as ``training.pipeline.train`` builds them (default config), the
timing model fitted on the training + validation snapshots (one LightGBM thread) and evaluated
at the held-out evaluation cutoff. Prints Markdown for benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/timing.py [--customers 20000] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

import churnkit as ck
from training.config import TrainConfig
from training.pipeline import build_snapshots
from training.snapshots import plan_cutoffs
from training.timing import evaluate_timing, fit_timing


def _ceiling(evaluation: pd.DataFrame, truth) -> tuple[float, float]:
    """Top-1/top-3 hour hit rates when hours are ranked by the generator's true profile: the
    best any model can do on these (noisy) next engagements."""
    sub = evaluation[evaluation["next_engagement_slot"].notna()]
    true = np.asarray(truth.active_slots)[truth.customers.index.get_indexer(sub.index)]
    hours = true.reshape(len(true), 7, 24).sum(axis=1)
    top = np.argsort(-hours, axis=1)[:, :3]
    hit = top == (sub["next_engagement_slot"].to_numpy(dtype="int64") % 24)[:, None]
    return float(hit[:, 0].mean()), float(hit.any(axis=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    tables, truth = ck.synth.generate(args.customers, seed=args.seed, start="2023-01-01",
                                      end="2025-07-01")
    tables = ck.validate(tables)
    config = TrainConfig.load()
    as_of = ck.as_utc_timestamp("2025-07-01")
    cutoffs = plan_cutoffs(as_of=as_of, horizon_days=config.horizon_days,
                           n_train=config.train_cutoffs, step_days=config.cutoff_step_days,
                           data_start=tables.customers["signup_at"].min())
    snaps = build_snapshots(tables, cutoffs, data_end=as_of)
    fit_rows = pd.concat([snaps.train, snaps.validation], ignore_index=True)
    t0, c0 = time.perf_counter(), time.process_time()
    model = fit_timing(fit_rows, horizon_days=config.horizon_days, seed=0, n_jobs=1)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    ev = snaps.evaluation.set_index("customer_id")
    t0, c0 = time.perf_counter(), time.process_time()
    model.predict(ev, as_of=cutoffs.evaluation)
    predict_s, predict_cpu = time.perf_counter() - t0, time.process_time() - c0
    te = evaluate_timing(model, ev, cutoff=cutoffs.evaluation, truth=truth)
    c1, c3 = _ceiling(ev, truth)

    print(f"shop {args.customers:,} customers (seed {args.seed}); fit rows {len(fit_rows):,} "
          f"(train + validation snapshots); evaluation cutoff {cutoffs.evaluation:%Y-%m-%d}, "
          f"{len(ev):,} customers; load {load:.1f}\n")
    print("| step | wall s | CPU s |\n|---|---|---|")
    print(f"| fit (hazard + hour + weekday models, channel priors; 1 thread) | {fit_s:.1f} | "
          f"{fit_cpu:.1f} |")
    print(f"| predict all {len(ev):,} customers | {predict_s:.1f} | {predict_cpu:.1f} |\n")
    print("Days to the next order, returners (MAE, days):\n")
    print("| method | MAE | median AE | customers |\n|---|---|---|---|")
    for method, row in te.days.iterrows():
        print(f"| {method} | {row['mae_days']:.2f} | {row['median_ae_days']:.2f} | "
              f"{int(row['n']):,} |")
    print("\nNext engagement hit rates (top-1 / top-3):\n")
    print("| level | history | customers | global best | modal hour | model |")
    print("|---|---|---|---|---|---|")
    for level in ("hour", "slot"):
        for group in ("all", "none", "thin", "rich"):
            if (level, group, "model") not in te.slots.index:
                continue
            cells = [f"{te.slots.loc[(level, group, m), 'top1']:.3f} / "
                     f"{te.slots.loc[(level, group, m), 'top3']:.3f}"
                     for m in ("global_best", "modal_hour", "model")]
            n = int(te.slots.loc[(level, group, "model"), "n"])
            print(f"| {level} | {group} | {n:,} | " + " | ".join(cells) + " |")
    print(f"\nCeiling (hours ranked by the generator's true profile): top-1 {c1:.3f}, "
          f"top-3 {c3:.3f}.\n")
    print("Top slot among the customer's true top-decile slots (synthetic ground truth):\n")
    print("| history | global best | modal hour | model |\n|---|---|---|---|")
    for group in ("all", "none", "thin", "rich"):
        if (group, "model") in te.truth.index:
            cells = [f"{te.truth.loc[(group, m), 'in_true_top_decile']:.3f}"
                     for m in ("global_best", "modal_hour", "model")]
            print(f"| {group} | " + " | ".join(cells) + " |")
    print("\nContact rules at the cutoff: "
          + ", ".join(f"{k} {v:.1%}" for k, v in te.rules.items()))


if __name__ == "__main__":
    main()
