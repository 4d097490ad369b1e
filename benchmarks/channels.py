"""Which channel, against the synthetic shop's personal channel affinity (issue 17 item 6).

The shop `make demo` trains on (20k customers, seed 7, 2023-01-01..2025-07-01, as_of 2025-07-01)
gives each customer an open propensity per channel (``GroundTruth.open_propensity``). Snapshots
and cutoffs exactly as ``training.pipeline.train`` builds them (default config); the timing model
fitted as ``training/timing.py`` fits it (training + validation snapshots, whose label windows
close by the evaluation cutoff) and asked, at the held-out evaluation cutoff, for each
customer's channel (``ChannelRanker``: per-customer open rates shrunk toward the population's,
see docs/timing.md "Which channel"). Customers with two or more allowed channels at the cutoff
(``can_contact_<channel>``), three channels compared on each:

- ``chosen``: the model's channel, from the customer's own history;
- ``population_best``: the same ranking without personal history (opens and contacts zeroed);
- ``true_best``: the allowed channel with the highest true propensity;
- ``bayes``: the reachable ceiling from the same counts: the channel with the highest posterior
  mean propensity under the generator's own prior (logit-normal, ``open_affinity_sigma``) given
  the customer's opens of messages per channel, each opened with P = propensity x the customer's
  mean hour factor over the campaign's send hours (the generator's mechanism, told to it).

Measured two ways: the true propensity of each channel (exact, per customer; paired bootstrap
over customers of chosen - population best), and the open rate of the messages actually sent in
the 90 days after the cutoff (``training.timing.evaluate_channels``: the messages whose channel a
policy would have chosen, weighted by the number of allowed channels). Prints Markdown.

    .venv/bin/python benchmarks/channels.py [--customers 20000] [--seed 7] [--boot 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

import churnkit as ck
from churnkit.stats import percentile_interval, resamples
from churnkit.synth.population import affinity_intercepts
from training.config import TrainConfig
from training.pipeline import build_snapshots
from training.snapshots import plan_cutoffs
from training.timing import evaluate_channels, fit_timing

POLICIES = ("chosen", "population_best", "true_best", "bayes")


def _history_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith(("contacts_", "opens_", "conversions_"))]


def true_rates(model: ck.TimingModel, ev: pd.DataFrame, truth) -> pd.DataFrame:
    """Per customer with two or more allowed channels: each policy's channel and its true open
    propensity, and the customer's treated messages before the cutoff (``history``)."""
    ranked = model.channels_.rank(ev)
    anonymous = ev.copy()
    anonymous[_history_columns(ev)] = 0
    population = model.channels_.rank(anonymous)
    allowed = np.column_stack([pd.to_numeric(ev[f"can_contact_{ch}"], errors="coerce")
                               .fillna(0).to_numpy() > 0 for ch in ck.CHANNELS])
    allowed &= ~(pd.to_numeric(ev["unsubscribed"], errors="coerce").fillna(0)
                 .to_numpy() > 0)[:, None]
    keep = allowed.sum(axis=1) >= 2
    prop = truth.open_propensity(ev.index[keep]).to_numpy()
    names = np.asarray(ck.CHANNELS, dtype=object)
    masked = np.where(allowed[keep], prop, -np.inf)
    best = masked.argmax(axis=1)
    idx = pd.Index(ck.CHANNELS)
    chosen = idx.get_indexer(ranked["channel"].to_numpy()[keep])
    pop_best = idx.get_indexer(population["channel"].to_numpy()[keep])
    rows = np.arange(keep.sum())
    bayes = np.where(allowed[keep], bayes_propensity(ev[keep], truth), -np.inf).argmax(axis=1)
    return pd.DataFrame({
        "chosen_channel": names[chosen], "population_best_channel": names[pop_best],
        "true_best_channel": names[best],
        "chosen": prop[rows, chosen], "population_best": prop[rows, pop_best],
        "true_best": prop[rows, best], "bayes": prop[rows, bayes],
        "history": pd.to_numeric(ev["contacts_lifetime"], errors="coerce").fillna(0)
        .to_numpy()[keep],
    }, index=ev.index[keep])


def bayes_propensity(ev: pd.DataFrame, truth, n_nodes: int = 61) -> np.ndarray:
    """(customers, channels) posterior mean open propensity from the opens and messages per
    channel before the cutoff, under the generator's prior (see the module docstring)."""
    params = truth.kernel.params
    mu = affinity_intercepts(params)
    z, w = np.polynomial.hermite_e.hermegauss(n_nodes)
    q = 1 / (1 + np.exp(-(mu[:, None] + params.open_affinity_sigma * z[None, :])))  # (ch, z)
    slots = truth.active_slots[truth.customers.index.get_indexer(ev.index)]
    lo, hi = params.send_local_hours
    hours = (np.arange(7)[:, None] * 24 + np.arange(lo, hi)[None, :]).ravel()
    rel = slots[:, hours] / slots.max(axis=1, keepdims=True)
    floor = params.open_off_hours_floor
    h = floor + (1 - floor) * rel.mean(axis=1)  # the customer's mean hour factor
    out = np.empty((len(ev), len(ck.CHANNELS)))
    for j, ch in enumerate(ck.CHANNELS):
        k = pd.to_numeric(ev[f"opens_{ch}"], errors="coerce").fillna(0).to_numpy()[:, None]
        n = pd.to_numeric(ev[f"contacts_{ch}"], errors="coerce").fillna(0).to_numpy()[:, None]
        p = np.clip(q[j][None, :] * h[:, None], 1e-12, 1 - 1e-12)
        loglik = k * np.log(p) + (n - k) * np.log1p(-p) + np.log(w)[None, :]
        post = np.exp(loglik - loglik.max(axis=1, keepdims=True))
        out[:, j] = (post * q[j][None, :]).sum(axis=1) / post.sum(axis=1)
    return out


def summarize(rates: pd.DataFrame, *, n_boot: int, seed: int = 0) -> pd.DataFrame:
    """Mean true open propensity per policy, chosen - population best with its paired bootstrap
    interval, and chosen / true best, by history group."""
    groups = {"all": np.ones(len(rates), bool), "no messages before": rates["history"] == 0,
              "1-2 messages": rates["history"].between(1, 2), "3+ messages": rates["history"] >= 3,
              "moved by own history": rates["chosen_channel"] != rates["population_best_channel"]}
    out = {}
    for name, mask in groups.items():
        sub = rates[np.asarray(mask)]
        if sub.empty:
            continue
        diff = (sub["chosen"] - sub["population_best"]).to_numpy()
        chosen, best = sub["chosen"].to_numpy(), sub["true_best"].to_numpy()
        d_boot, r_boot = [], []
        for i in resamples(len(sub), n_boot=n_boot, seed=seed):
            d_boot.append(diff[i].mean())
            r_boot.append(chosen[i].mean() / best[i].mean())
        row = {"customers": len(sub), **{p: float(sub[p].mean()) for p in POLICIES}}
        row["diff"] = float(diff.mean())
        row["diff_low"], row["diff_high"] = percentile_interval(np.asarray(d_boot))
        row["share_of_best"] = float(chosen.mean() / best.mean())
        row["share_low"], row["share_high"] = percentile_interval(np.asarray(r_boot))
        row["picks_true_best"] = float((sub["chosen_channel"] == sub["true_best_channel"]).mean())
        row["differs_from_population"] = float(
            (sub["chosen_channel"] != sub["population_best_channel"]).mean())
        out[name] = row
    return pd.DataFrame.from_dict(out, orient="index")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--boot", type=int, default=1000)
    args = parser.parse_args()
    t0 = time.perf_counter()
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
    model = fit_timing(fit_rows, horizon_days=config.horizon_days, seed=0, n_jobs=1)
    ev = snaps.evaluation.set_index("customer_id")
    rates = true_rates(model, ev, truth)
    table = summarize(rates, n_boot=args.boot)
    later = evaluate_channels(model, ev, tables.contacts, cutoff=cutoffs.evaluation,
                              horizon_days=config.horizon_days, n_boot=args.boot)

    print(f"shop {args.customers:,} customers (seed {args.seed}); timing model fitted on "
          f"{len(fit_rows):,} snapshot rows; evaluation cutoff {cutoffs.evaluation:%Y-%m-%d}; "
          f"{len(rates):,} customers with 2+ allowed channels; "
          f"{time.perf_counter() - t0:.0f} s\n")
    print("True open propensity of the channel picked (at the customer's most active hour), by "
          "messages received before the cutoff; chosen - population best with a paired "
          f"bootstrap 95% interval over customers ({args.boot} resamples):\n")
    print("| customers | n | chosen | population best | true best | Bayes from counts | "
          "chosen - population best | chosen / true best | picks the true best | "
          "differs from population |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, row in table.iterrows():
        print(f"| {name} | {int(row['customers']):,} | {row['chosen']:.3f} | "
              f"{row['population_best']:.3f} | {row['true_best']:.3f} | {row['bayes']:.3f} | "
              f"{row['diff']:+.3f} "
              f"[{row['diff_low']:+.3f}, {row['diff_high']:+.3f}] | {row['share_of_best']:.1%} "
              f"[{row['share_low']:.1%}, {row['share_high']:.1%}] | "
              f"{row['picks_true_best']:.1%} | {row['differs_from_population']:.1%} |")
    if later is not None:
        print(f"\nMessages sent in the {config.horizon_days} days after the cutoff (observed "
              "open rate on the channel each policy picks [95% bootstrap]):\n")
        print("| policy | messages | open rate | conversion rate |\n|---|---|---|---|")
        for method, row in later.iterrows():
            print(f"| {method} | {int(row['messages']):,} | {row['open_rate']:.3f} "
                  f"[{row['open_low']:.3f}, {row['open_high']:.3f}] | "
                  f"{row['conversion_rate']:.4f} [{row['conversion_low']:.4f}, "
                  f"{row['conversion_high']:.4f}] |")


if __name__ == "__main__":
    main()
