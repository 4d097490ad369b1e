"""Benchmark of issue 6 part A: the value model's quality, and the speed of the policy and reasons.

Usage::

    .venv/bin/python benchmarks/value.py [--customers 20000] [--seed 7] [--rows 1000000]

1. Value: on the demo shop (``ck.synth.generate(20000, seed=7, 2023-01-01 .. 2025-07-01)``),
   ``training.value.train_value`` fits the value model on the training and validation cutoffs
   and evaluates it at the held-out cutoff ``as_of - 90 days`` against realized revenue, beside
   the baselines (last year's revenue, the last 90 days' revenue, BG/NBD expected purchases ×
   mean basket): Spearman, MAE, share of revenue captured by the top decile, total ratio.
2. Speed: a small churn model scores the shop as of 2025-07-01; the scored and feature frames
   are repeated up to ``--rows`` rows, then ``decide`` (rules only, and with an uplift frame)
   and ``reasons.explain`` (3 drivers per row) are timed on them.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

import churnkit as ck
from churnkit.data.contract import ACTIONS
from churnkit.data.frames import model_matrix
from churnkit.features.registry import model_features
from churnkit.models.churn import ChurnModel
from churnkit.policy import POLICY_COLUMNS, PolicyConfig, decide
from churnkit.scoring import score_features, top_drivers
from churnkit.scoring.bundle import FeatureSpec, ModelBundle, TrainingMetadata, reference_quantiles
from churnkit.scoring.drivers import explain
from training.value import train_value

START, END = "2023-01-01", "2025-07-01"


def tile(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    times = -(-rows // len(frame))
    out = pd.concat([frame] * times, ignore_index=True).iloc[:rows]
    out.index = pd.Index(np.arange(len(out)), name="customer_id")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-value", action="store_true", help="only the speed part")
    args = parser.parse_args()

    t = time.perf_counter()
    tables, _ = ck.synth.generate(args.customers, seed=args.seed, start=START, end=END)
    print(f"generated {args.customers:,} customers in {time.perf_counter() - t:.1f} s")

    model = None
    if not args.skip_value:
        t = time.perf_counter()
        model, ev = train_value(tables, as_of=END, train_cutoffs=3, threads=args.threads,
                                seed=args.seed)
        print(f"value model: snapshots + fit + evaluation in {time.perf_counter() - t:.1f} s")
        print(f"held-out cutoff {ev.cutoff:%Y-%m-%d}, {ev.n_customers:,} customers, realized "
              f"revenue {ev.realized_total:,.0f} over {ev.horizon_days} days")
        print(ev.table().round(3).to_string())

    # -- speed of the policy and the reasons ---------------------------------------------------
    train = ck.build_training_set(tables, cutoffs=["2025-01-01"], horizon_days=90)
    names = list(model_features(train.columns))
    churn = ChurnModel(n_estimators=100, learning_rate=0.1, n_jobs=args.threads).fit(
        model_matrix(train, names), train["churned"].to_numpy())
    population = ck.fit_population(tables, as_of=END)
    features = ck.build_features(tables, as_of=END, population=population)
    X = model_matrix(features, names)
    meta = TrainingMetadata("bench", "1", END, END, 90, {}, len(train), ck.__version__)
    bundle = ModelBundle(churn, FeatureSpec.from_names(names), population, meta,
                         reference_quantiles(churn.predict_proba(X)[:, 1]), value=model)
    scored = score_features(features, bundle, as_of=END, explain=False).drop(
        columns=list(POLICY_COLUMNS))
    contributions = churn.contributions(X)
    config = PolicyConfig.default()
    small = decide(scored, features, config, contributions=contributions, as_of=END)
    print(small["action"].value_counts().to_string())

    f_big, s_big = tile(features, args.rows), tile(scored, args.rows)
    offered = [a for a in ACTIONS if a != "do_not_contact"]
    uplift = pd.DataFrame(np.random.default_rng(0).uniform(-0.05, 0.3, (args.rows, len(offered))),
                          index=f_big.index, columns=offered)
    values = contributions.drop(columns="bias")
    picked = tile(pd.DataFrame(np.argsort(-values.to_numpy(), axis=1)[:, :3]), args.rows)
    big_contributions = tile(contributions, args.rows)
    for label, run in (
        ("decide (rules)", lambda: decide(s_big, f_big, config, as_of=END)),
        ("decide (with uplift)", lambda: decide(s_big, f_big, config, uplift, as_of=END)),
        ("reasons.explain (3 drivers)",
         lambda: explain(picked.to_numpy(), np.asarray(values.columns), f_big)),
        ("scoring.top_drivers (explain + the per-row dicts)",
         lambda: top_drivers(big_contributions, f_big)),
    ):
        t, cpu = time.perf_counter(), time.process_time()
        run()
        print(f"{label} on {args.rows:,} rows: {time.perf_counter() - t:.1f} s wall, "
              f"{time.process_time() - cpu:.1f} s CPU")


if __name__ == "__main__":
    main()
