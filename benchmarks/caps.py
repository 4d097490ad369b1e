"""Benchmark of the contact caps: no send the caps forbid, and what they hold back.

Usage::

    .venv/bin/python benchmarks/caps.py [--customers 20000] [--seed 7]
        [--as-of 2025-06-08 2025-07-01] [--window-days 30] [--threads 2]

On the demo shop (``ck.synth.generate(20000, seed=7, 2023-01-01 .. 2025-07-01)``, monthly
win-back campaigns on the 4th-5th), a small churn model (fitted at the cutoff 2025-01-01) scores
the shop as of each ``--as-of`` with the packaged policy (rules; caps: 2 messages in 30 days, 7
days apart; ``--window-days`` widens the count's window, since campaigns a month apart never
put 2 messages in 30 days) and with the caps off. From the raw ``contacts`` table,
independently of the features, it counts the customers recommended a send that the caps forbid
(messages sent strictly before as_of: ``max_messages`` or more in the window, or one less than
the gap ago), apart from the first message after an order paid for and never received became
known, which the caps let through by design; then how many customers the caps turned into
``do_not_contact`` and their ``contact_date`` distribution. Prints a markdown
block with the command, data size and machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace

import pandas as pd

import churnkit as ck
from churnkit.data.frames import model_matrix
from churnkit.features.registry import model_features
from churnkit.models.churn import ChurnModel
from churnkit.policy import ContactCaps, PolicyConfig
from churnkit.scoring import score_features
from churnkit.scoring.bundle import FeatureSpec, ModelBundle, TrainingMetadata, reference_quantiles

START, END = "2023-01-01", "2025-07-01"
DNC = "do_not_contact"


def forbidden(contacts: pd.DataFrame, as_of: pd.Timestamp,
              caps: ContactCaps) -> tuple[pd.Series, pd.Series]:
    """Per customer with a sent message before ``as_of``, from the raw contacts rows: True when
    the caps forbid a send now (``max_messages`` or more sent in the last ``window_days`` days,
    or the last one less than ``min_gap_days`` ago); and when the last one was sent (UTC)."""
    sent = contacts.loc[(contacts["group"] == "treatment") & (contacts["sent_at"] < as_of),
                        ["customer_id", "sent_at"]]
    age = ((as_of - sent["sent_at"]) / pd.Timedelta(days=1)).to_numpy()
    per = pd.DataFrame({"customer_id": sent["customer_id"].to_numpy(), "age": age,
                        "inside": age < caps.window_days})
    in_window = per.groupby("customer_id")["inside"].sum()
    youngest = per.groupby("customer_id")["age"].min()
    last = as_of - pd.to_timedelta(youngest, unit="D")
    return (in_window >= caps.max_messages) | (youngest < caps.min_gap_days), last


def small_bundle(tables: ck.Tables, threads: int) -> ModelBundle:
    train = ck.build_training_set(tables, cutoffs=["2025-01-01"], horizon_days=90)
    names = list(model_features(train.columns))
    churn = ChurnModel(n_estimators=100, learning_rate=0.1, n_jobs=threads, random_state=0).fit(
        model_matrix(train, names), train["churned"].to_numpy())
    population = ck.fit_population(tables, as_of=END)
    features = ck.build_features(tables, as_of=END, population=population)
    meta = TrainingMetadata("bench-caps", "1", END, END, 90, {}, len(train), ck.__version__)
    quantiles = reference_quantiles(churn.predict_proba(model_matrix(features, names))[:, 1])
    return ModelBundle(churn, FeatureSpec.from_names(names), population, meta, quantiles,
                       policy=PolicyConfig.default())


def measure(tables: ck.Tables, bundle: ModelBundle, as_of: pd.Timestamp) -> list[str]:
    """The report lines of one scoring date."""
    population = ck.fit_population(tables, as_of=as_of)
    features = ck.build_features(tables, as_of=as_of, population=population)
    bundle = replace(bundle, population=population)
    caps = bundle.policy.contact_caps
    t = time.perf_counter()
    out = score_features(features, bundle, explain=False, as_of=as_of)
    seconds = time.perf_counter() - t
    off = score_features(features, replace(bundle, policy=replace(
        bundle.policy, contact_caps=ContactCaps())), explain=False, as_of=as_of)
    banned, last = forbidden(tables.contacts, as_of, caps)
    banned = banned.reindex(out.index, fill_value=False)
    # the one exception: an order paid for and never received, no message since it was known
    since = features["days_since_paid_not_received"].reindex(out.index)
    pnr = since <= bundle.policy.paid_not_received["lookback_days"]
    waived = pnr & ~(last.reindex(out.index) > as_of - pd.to_timedelta(since, unit="D"))
    send = out["action"] != DNC
    offered = off["action"] != DNC
    capped = offered & ~send
    trace = out.loc[capped, "policy_trace"]
    by_gap = int(trace.map(lambda t: any(s.startswith("contact gap:") for s in t)).sum())
    by_count = int(trace.map(lambda t: any(s.startswith("contact cap:") for s in t)).sum())
    unchanged = bool((out.loc[~capped, "action"] == off.loc[~capped, "action"]).all())
    lines = [
        f"### as_of {as_of:%Y-%m-%d}",
        f"- customers scored: {len(out):,}; recommended a send with the caps off "
        f"{int(offered.sum()):,}, with the caps {int(send.sum()):,} (score_features "
        f"{seconds:.1f} s)",
        f"- **sends the caps forbid (counted from the raw contacts table): "
        f"{int((send & banned & ~waived).sum())}**; first apologies for an order paid and never "
        f"received, let through by design: {int((send & banned & waived).sum())}; later "
        f"apologies held back: {int((capped & pnr).sum())}",
        f"- customers the caps turned into do_not_contact: {int(capped.sum()):,} (by the gap "
        f"{by_gap:,}, by the count {by_count:,}); every other decision unchanged: {unchanged}",
    ]
    if capped.any():
        wait = (out.loc[capped, "contact_date"] - as_of.normalize()).dt.days
        q = wait.quantile([0, 0.5, 1.0]).astype(int).tolist()
        days = out.loc[capped, "contact_date"].dt.strftime("%Y-%m-%d").value_counts()
        lines.append(f"- their contact_date: {q[0]}-{q[2]} days after as_of (median {q[1]}); "
                     "by day: " + ", ".join(f"{d} {n}" for d, n in days.sort_index().items()))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--as-of", nargs="+", default=["2025-06-08", "2025-07-01"])
    parser.add_argument("--window-days", type=float, default=None,
                        help="the count cap's window (default: the packaged policy's)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    t = time.perf_counter()
    tables, _ = ck.synth.generate(args.customers, seed=args.seed, start=START, end=END)
    print(f"generated {args.customers:,} customers in {time.perf_counter() - t:.1f} s", flush=True)
    bundle = small_bundle(tables, args.threads)
    caps = bundle.policy.contact_caps
    if args.window_days is not None:
        caps = replace(caps, window_days=args.window_days)
        bundle = replace(bundle, policy=replace(bundle.policy, contact_caps=caps))
    lines = [
        "```",
        f"$ {' '.join(['python', *sys.argv])}",
        "```",
        f"Data: `ck.synth.generate({args.customers:_}, seed={args.seed}, start={START!r}, "
        f"end={END!r})`: {len(tables.customers):,} customers, {len(tables.orders):,} orders, "
        f"{len(tables.contacts):,} contact rows "
        f"({int((tables.contacts['group'] == 'treatment').sum()):,} sent). Policy: packaged "
        f"rules, caps {caps.max_messages} messages in {caps.window_days:g} days, "
        f"{caps.min_gap_days:g} days apart. Machine: {platform.machine()}, "
        f"{os.cpu_count()} cores (shared), Python {platform.python_version()}.",
    ]
    for day in args.as_of:
        lines += ["", *measure(tables, bundle, pd.Timestamp(day, tz="UTC"))]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
