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
from training.timing import _history_group, evaluate_timing, fit_timing


def _ceiling(evaluation: pd.DataFrame, truth) -> tuple[float, float]:
    """Top-1/top-3 hour hit rates when hours are ranked by the generator's true profile: the
    best any model can do on these (noisy) next engagements."""
    sub = evaluation[evaluation["next_engagement_slot"].notna()]
    true = np.asarray(truth.active_slots)[truth.customers.index.get_indexer(sub.index)]
    hours = true.reshape(len(true), 7, 24).sum(axis=1)
    top = np.argsort(-hours, axis=1)[:, :3]
    hit = top == (sub["next_engagement_slot"].to_numpy(dtype="int64") % 24)[:, None]
    return float(hit[:, 0].mean()), float(hit.any(axis=1).mean())


def _bayes_ceiling(evaluation: pd.DataFrame, tables: ck.Tables, truth, cutoff: pd.Timestamp,
                   *, horizon_days: int, n_draws: int = 60_000) -> dict[str, tuple[float, float]]:
    """Top-1/top-3 hour hit rates of the Bayes-optimal predictor from the activity-hour counts.

    The generator's own prior over daily rhythms (``n_draws`` profiles drawn as it draws its
    customers) is updated by each customer's counted hours; the posterior predictive hour
    distribution ranks the hours. Orders and sessions are draws from the rhythm; a campaign
    open's hour also depends on the send (uniform local send hour, opened over the next hours
    with the generator's decay), so for customers whose next engagement is an open the
    predictive of the open's hour is used: the predictor is told which kind comes next, which
    no real model is. No estimator of the hour from these counts does better on average: this,
    not the true profile, is the reachable ceiling. By history group and ``open`` / ``draw``."""
    from churnkit.synth.population import _active_slots

    sub = evaluation[evaluation["next_engagement_slot"].notna()]
    counts = sub[[f"activity_hour_{h:02d}" for h in range(24)]].to_numpy(dtype="float64")
    target = sub["next_engagement_slot"].to_numpy(dtype="int64") % 24
    params = truth.kernel.params
    draws, _ = _active_slots(n_draws, params, np.random.default_rng(123))
    hours = draws.reshape(n_draws, 7, 24).sum(axis=1).astype("float64")
    hours /= hours.sum(axis=1, keepdims=True)
    opens = _open_hours(hours, params)
    is_open = _next_is_open(tables, sub.index, cutoff, horizon_days)
    log_hours = np.log(hours)
    predictive = np.empty((len(sub), 24))
    for s in range(0, len(sub), 500):  # posterior over the draws, 500 customers at a time
        loglik = counts[s:s + 500] @ log_hours.T
        weight = np.exp(loglik - loglik.max(axis=1, keepdims=True))
        weight /= weight.sum(axis=1, keepdims=True)
        predictive[s:s + 500] = np.where(is_open[s:s + 500, None], weight @ opens,
                                         weight @ hours)
    hit = np.argsort(-predictive, axis=1)[:, :3] == target[:, None]
    group = _history_group(sub)
    masks = {"all": np.ones(len(sub), bool), **{g: group == g for g in ("none", "thin", "rich")},
             "draw": ~is_open, "open": is_open}
    return {g: (float(hit[m, 0].mean()), float(hit[m].any(axis=1).mean()))
            for g, m in masks.items() if m.any()}


def _open_hours(hours: np.ndarray, params) -> np.ndarray:
    """Per rhythm (rows of ``hours``), the local hour distribution of a campaign open: sent at a
    uniform local hour in ``send_local_hours``, opened with probability rising with the activity
    at that hour, in the next ``open_lookahead_hours`` weighted by activity × decay^j."""
    lo, hi = params.send_local_hours
    look, floor = params.open_lookahead_hours, params.open_off_hours_floor
    decay = params.open_hour_decay ** np.arange(look)
    out = np.zeros_like(hours)
    for sent in range(lo, hi):
        p_open = floor + (1 - floor) * hours[:, sent] / hours.max(axis=1)
        ahead = (sent + np.arange(look)) % 24
        w = hours[:, ahead] * decay
        w *= (p_open / w.sum(axis=1))[:, None]
        for j, hour in enumerate(ahead):
            out[:, hour] += w[:, j]
    return out / out.sum(axis=1, keepdims=True)


def _next_is_open(tables: ck.Tables, ids: pd.Index, cutoff: pd.Timestamp, horizon_days: int
                  ) -> np.ndarray:
    """Whether each customer's next engagement after ``cutoff`` is a campaign open."""
    stop = cutoff + pd.Timedelta(days=horizon_days)
    firsts = {}
    for name, column in (("orders", "ordered_at"), ("browsing", "ts"), ("contacts", "opened_at")):
        t = tables.get(name)
        t = t[(t[column] >= cutoff) & (t[column] < stop)]
        firsts[name] = t.groupby("customer_id")[column].min()
    kind = pd.DataFrame(firsts).reindex(ids).idxmin(axis=1)
    return (kind == "contacts").to_numpy()


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
    te = evaluate_timing(model, ev, cutoff=cutoffs.evaluation, truth=truth,
                         contacts=tables.get("contacts"))
    c1, c3 = _ceiling(ev, truth)
    bayes = _bayes_ceiling(ev, tables, truth, cutoffs.evaluation,
                           horizon_days=config.horizon_days)

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
          f"top-3 {c3:.3f}.")
    print("Bayes-optimal from the activity-hour counts (the generator's own prior over rhythms, "
          "updated by each customer's counts, told whether the next engagement is an open; "
          "draw = orders and sessions, open = campaign opens), top-1 / top-3: "
          + ", ".join(f"{g} {t1:.3f} / {t3:.3f}" for g, (t1, t3) in bayes.items()) + ".\n")
    print("Top slot among the customer's true top-decile slots (synthetic ground truth):\n")
    print("| history | global best | modal hour | model |\n|---|---|---|---|")
    for group in ("all", "none", "thin", "rich"):
        if (group, "model") in te.truth.index:
            cells = [f"{te.truth.loc[(group, m), 'in_true_top_decile']:.3f}"
                     for m in ("global_best", "modal_hour", "model")]
            print(f"| {group} | " + " | ".join(cells) + " |")
    if te.channels is not None:
        print("\nWhich channel: messages sent in the 90 days after the cutoff, customers with "
              "two or more allowed channels (rate [95% bootstrap]):\n")
        print("| policy | messages | open rate | conversion rate |\n|---|---|---|---|")
        for method, row in te.channels.iterrows():
            print(f"| {method} | {int(row['messages']):,} | {row['open_rate']:.3f} "
                  f"[{row['open_low']:.3f}, {row['open_high']:.3f}] | "
                  f"{row['conversion_rate']:.4f} [{row['conversion_low']:.4f}, "
                  f"{row['conversion_high']:.4f}] |")
    print("\nContact rules at the cutoff: "
          + ", ".join(f"{k} {v:.1%}" for k, v in te.rules.items()))


if __name__ == "__main__":
    main()
