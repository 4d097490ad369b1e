"""Benchmark: the policies judged over the last campaigns, pooled (issue 17).

Usage::

    .venv/bin/python benchmarks/uplift_pooled.py [--customers 100000] [--seed 7] [--last 6]
        [--policy YAML]

On ``ck.synth.generate(N, seed=S, start="2023-01-01", end="2025-07-01")``, runs
``training.uplift_pooled.pooled_uplift``: each of the last ``--last`` closed campaigns held out
in turn with an uplift model fitted on the campaigns before it, churn risk from the BG/NBD
baseline (no bundle), then the pooled IPW and doubly robust estimates per 1000 contacts with
95% intervals, the paired differences, and against the generator's truth over the same
contacts: is the truth inside each interval, and how much narrower DR is than IPW.

Goals (issue 17): the deployed policy (``rules_with_uplift``) above do-nothing, the rules and
the reference funnel with paired 95% intervals above 0; the truth inside the interval for every
policy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

import churnkit as ck
from churnkit.models.uplift import UpliftModel
from churnkit.policy import PolicyConfig
from training.uplift_pooled import VERDICT_PAIRS, pooled_uplift

START, END = "2023-01-01", "2025-07-01"


def markdown(frame: pd.DataFrame) -> str:
    """A pipe table (no tabulate dependency)."""
    head = [frame.index.name or "", *map(str, frame.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in frame.iterrows():
        cells = [f"{v:,.0f}" if isinstance(v, float) and abs(v) >= 100 else
                 f"{v:.3g}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join([str(name), *cells]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--last", type=int, default=6)
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument("--policy", default=None, help="a policy YAML (default: the packaged)")
    args = parser.parse_args()
    policy = PolicyConfig.from_yaml(args.policy) if args.policy else None

    t0 = time.perf_counter()
    tables, truth = ck.synth.generate(args.customers, seed=args.seed, start=START, end=END)
    print(f"shop: {args.customers:,} customers (seed {args.seed}), {len(tables.contacts):,} "
          f"contacts ({time.perf_counter() - t0:.1f} s)")
    t1 = time.perf_counter()
    pooled = pooled_uplift(tables, as_of=END, truth=truth, last=args.last,
                           n_boot=args.bootstrap, seed=0,
                           policy=policy, model_factory=lambda: UpliftModel(n_jobs=2))
    print(f"pooled over {pooled.campaigns} ({pooled.n_contacts:,} contacts): "
          f"{time.perf_counter() - t1:.1f} s\n")
    p = pooled.policies
    print(markdown(p))
    print()
    print(markdown(pooled.differences))
    print()
    for e in ("ipw", "dr"):
        inside = ((p[f"profit_per_1000_{e}_low"] <= p["profit_per_1000_true"])
                  & (p["profit_per_1000_true"] <= p[f"profit_per_1000_{e}_high"]))
        print(f"{e}: truth inside the 95% interval for {int(inside.sum())} of {len(p)} "
              f"policies; outside: {list(p.index[~inside])}")
    sending = p.index != "do_nothing"
    width = {e: (p[f"profit_per_1000_{e}_high"] - p[f"profit_per_1000_{e}_low"])[sending]
             for e in ("ipw", "dr")}
    print("interval width DR / IPW per policy:",
          (width["dr"] / width["ipw"]).round(3).to_dict(),
          f"median {np.median(width['dr'] / width['ipw']):.3f}")
    for pair in VERDICT_PAIRS:
        print(pooled.verdict(*pair))
    print(f"dropped strata: {len(pooled.dropped)} "
          f"({pooled.dropped.groupby('policy')['contacts'].sum().to_dict()})")
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    main()
