"""Benchmark (validation campaigns only): does the uplift choice pay more when the learner's
predicted effects are scaled before it (issue 17, item 3)?

Usage::

    .venv/bin/python benchmarks/uplift_scale.py [--customers 20000] [--seed 7]
        [--scales 0.6,0.8,1,1.25,1.5,2] [--validation 2]

On the demo shop, for each of the last ``--validation`` campaigns *before* the held-out one
(the held-out campaign, the latest closed by END, is never read): the default R-learner is
fitted on the campaigns closed before it (``training.uplift.evaluate_uplift`` with that
campaign as its holdout), and the uplift choice ``choose_by_uplift(s × predicted, value,
cost)`` is scored by the generator's true margin profit as sent, as a share of the oracle's
(the choice on the true uplift). Scaling by ``s`` is the same as weighing each action's cost by
``1 / s``: ``s > 1`` contacts more and prefers dearer actions. Also printed per action: the mean
predicted and true uplift over the validation targets and the slope of the truth on the
prediction (below 1: the predictions spread more than the truth).

Prints one line per validation campaign and the mean share per scale; about 1 minute per
campaign at 20,000 customers.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

import churnkit as ck
from churnkit.models.uplift import UpliftModel
from churnkit.policy import choose_by_uplift
from training.campaign_set import campaign_training_set, closed_campaigns
from training.uplift import evaluate_uplift
from training.uplift_estimates import chosen_values

START, END = "2023-01-01", "2025-07-01"


def profit(uplift: pd.DataFrame, value: pd.Series, cost: pd.DataFrame, true: pd.DataFrame
           ) -> tuple[float, float]:
    """True margin profit per 1000 targets of the uplift choice on ``uplift``, and the share
    contacted."""
    action = choose_by_uplift(uplift, value, cost)["action"].to_numpy(dtype=object)
    gain = chosen_values(true, action) * value.to_numpy() - chosen_values(cost, action)
    return 1000 * float(gain.mean()), float((action != "do_not_contact").mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scales", default="0.6,0.8,1,1.25,1.5,2")
    parser.add_argument("--validation", type=int, default=2)
    args = parser.parse_args()
    scales = [float(s) for s in args.scales.split(",")]

    t0 = time.perf_counter()
    tables, truth = ck.synth.generate(args.customers, seed=args.seed, start=START, end=END)
    closed = closed_campaigns(tables, as_of=END)
    held_out, validation = closed[-1], closed[-1 - args.validation:-1]
    data = campaign_training_set(tables, closed[:-1])  # the held-out campaign is not built
    print(f"shop: {args.customers:,} customers, seed {args.seed}; held out (not read): "
          f"{held_out}; validation: {', '.join(validation)} ({time.perf_counter() - t0:.0f} s)")
    shares: dict[float, list[float]] = {s: [] for s in scales}
    for campaign in validation:
        t1 = time.perf_counter()
        model = UpliftModel(learner="r", n_jobs=1)
        ev = evaluate_uplift(tables, as_of=END, truth=truth, holdout=campaign, n_boot=1,
                             model=model, data=data)
        predicted = model.predict(ev.test.features)
        value, cost, true = ev.values, ev.costs, ev.true_uplift

        oracle = profit(true, value, cost, true)[0]
        cells = []
        for s in scales:
            got, contacted = profit(predicted * s, value, cost, true)
            shares[s].append(got / oracle)
            cells.append(f"s={s:g}: {got / oracle:.3f} ({contacted:.0%} contacted)")
        print(f"{campaign} (trained on {len(ev.train_campaigns)} campaigns, "
              f"{ev.n_customers:,} targets, oracle {oracle:,.0f} per 1000, "
              f"{time.perf_counter() - t1:.0f} s): " + " | ".join(cells))
        for a in model.actions_:
            p, t = predicted[a].to_numpy(), true[a].to_numpy()
            slope = np.cov(p, t)[0, 1] / np.var(p) if np.var(p) > 0 else float("nan")
            print(f"  {a:22s} mean predicted {p.mean():.4f}, true {t.mean():.4f}; "
                  f"slope of the truth on the prediction {slope:.2f}")
    print("mean share of the oracle over the validation campaigns: "
          + ", ".join(f"s={s:g}: {np.mean(v):.3f}" for s, v in shares.items()))
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
