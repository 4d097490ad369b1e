"""Benchmark: which win-back policy pays on a held-out campaign (issue 6).

Usage::

    .venv/bin/python benchmarks/uplift.py [--customers 20000] [--seed 7] [--learners r,t]

On the demo shop ``ck.synth.generate(N, seed=7, start="2023-01-01", end="2025-07-01")``, runs
``training.uplift.evaluate_uplift``: fit the uplift model on every campaign whose attribution
window closed before the last closed campaign, then compare, on that held-out campaign, the
incremental profit per 1000 targeted customers of the rules, 15% off for everyone, 15% off for
the riskiest decile, the uplift policy (alone and through ``decide``) and the oracle (true
responses). Prints wall times, the policy table (markdown) and the goal ratios.

Goal (issue): uplift policy >= 1.3x the best non-oracle alternative and >= 80% of the oracle.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

import churnkit as ck
from churnkit.models.uplift import UpliftModel
from training.uplift import evaluate_uplift

START, END = "2023-01-01", "2025-07-01"


def markdown(frame: pd.DataFrame) -> str:
    """A pipe table (no tabulate dependency)."""
    head = [frame.index.name or "", *map(str, frame.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in frame.iterrows():
        lines.append("| " + " | ".join([str(name), *(f"{v:,.0f}" if abs(v) >= 100 else f"{v:g}"
                                                      for v in row)]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--learners", default="r,t")
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()

    t0 = time.perf_counter()
    tables, truth = ck.synth.generate(args.customers, seed=args.seed, start=START, end=END)
    print(f"shop: {args.customers:,} customers, {len(tables.contacts):,} contacts "
          f"({time.perf_counter() - t0:.1f} s)")
    for learner in args.learners.split(","):
        t1 = time.perf_counter()
        ev = evaluate_uplift(tables, as_of=END, truth=truth, n_boot=args.bootstrap,
                             model=UpliftModel(learner=learner, n_jobs=1))
        took = time.perf_counter() - t1
        print(f"\n### learner {learner}: held-out {ev.holdout} ({ev.n_customers:,} customers, "
              f"trained on {len(ev.train_campaigns)} campaigns), {took:.1f} s")
        table = ev.policies.copy()
        table["contacted_share"] = (100 * table["contacted_share"]).round(1)
        print(markdown(table.round(0)))
        for policy in ("uplift", "rules_with_uplift"):
            print(f"{policy}: {ev.ratios(policy)}")
        print("Spearman(predicted, true uplift):", ev.uplift_vs_truth.round(3).to_dict())
        print("Qini coefficients:", ev.qini_coefficients.round(4).to_dict())
        print("decisions:", {p: ev.decisions[p].value_counts().to_dict()
                             for p in ("uplift", "oracle")})
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    main()
