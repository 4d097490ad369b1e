"""Benchmark of ``churnkit.features.build_features`` on a synthetic shop.

Usage::

    .venv/bin/python benchmarks/features.py --customers 1000000 [--data DIR]

Measures, on one shop generated with :mod:`churnkit.synth` (cached as Parquet under ``--data``,
default a directory in the system temp folder):

1. the whole base: wall time and peak RSS of the process (goal <= 60 s, <= 8 GB);
2. one customer at a time from the same loaded tables, with the full run's population (median
   and p95 over ``--singles`` random customers; goal <= 10 ms);
3. the purchases family against a straightforward pandas group-by implementation, side by side
   on the same data (goal: churnkit >= 3x faster), checking that both agree.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import churnkit as ck
from churnkit.features import build_features
from churnkit.features.engine import SHARD_SIZE, _cutoff, _registered, computed_families, engine
from churnkit.features.registry import family
from churnkit.features.views import compose_sql

START, END, AS_OF = "2022-01-01", "2024-07-01", "2024-04-01"


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def load_shop(n: int, seed: int, data: Path | None) -> ck.Tables:
    folder = data or Path(tempfile.gettempdir()) / f"churnkit-bench-{n}-{seed}"
    if (folder / "customers.parquet").exists():
        t0 = time.perf_counter()
        tables = ck.load_tables(folder)
        print(f"loaded {folder} in {time.perf_counter() - t0:.1f} s")
        return tables
    from churnkit import synth

    t0 = time.perf_counter()
    tables, _ = synth.generate(n, seed=seed, start=START, end=END)
    print(f"generated {n:,} customers in {time.perf_counter() - t0:.1f} s")
    ck.save_tables(tables, folder)
    print(f"cached to {folder}")
    return tables


def pandas_purchases(orders: pd.DataFrame, customers: pd.DataFrame, as_of: pd.Timestamp):
    """The purchases family written as one would in plain pandas (the comparison baseline)."""
    o = orders[orders["ordered_at"] < as_of].sort_values(["customer_id", "ordered_at",
                                                           "order_id"])
    o = o.assign(age=(as_of - o["ordered_at"]) / pd.Timedelta(days=1))
    prev = o.groupby("customer_id")["ordered_at"].shift()
    o["gap"] = (o["ordered_at"] - prev).dt.total_seconds() / 86_400
    g = o.groupby("customer_id")
    out = pd.DataFrame({
        "days_since_first_order": g["age"].max(),
        "days_since_last_order": g["age"].min(),
    })
    for w in (30, 90, 180, 365, None):
        inside = o if w is None else o[o["age"] <= w]
        gw = inside.groupby("customer_id")
        suffix = "lifetime" if w is None else f"{w}d"
        out[f"orders_{suffix}"] = gw.size()
        out[f"revenue_{suffix}"] = gw["amount"].sum()
    prev90 = o[(o["age"] > 90) & (o["age"] <= 180)].groupby("customer_id")
    out["orders_prev_90d"] = prev90.size()
    out["revenue_prev_90d"] = prev90["amount"].sum()
    out = out.fillna({c: 0 for c in out.columns if c.startswith(("orders_", "revenue_"))})
    out["gap_mean_days"] = g["gap"].mean()
    out["gap_median_days"] = g["gap"].median()
    out["gap_std_days"] = g["gap"].std()
    out["gap_last_days"] = g["gap"].last()
    out["overdue_ratio"] = out["days_since_last_order"] / out["gap_mean_days"].replace(0, np.nan)
    for stem in ("orders", "revenue"):
        a, b = out[f"{stem}_90d"], out[f"{stem}_prev_90d"]
        out[f"{stem}_trend_90d"] = (a - b) / (a + b).replace(0, np.nan)
    out["mean_basket"] = g["amount"].mean()
    out["mean_items"] = g["n_items"].mean()
    sums = g[["amount", "discount_amount", "delivery_cost"]].sum()
    out["discount_share"] = sums["discount_amount"] / (sums["amount"] + sums["discount_amount"])
    out["discounted_order_share"] = (o["discount_amount"] > 0).groupby(o["customer_id"]).mean()
    out["delivery_cost_share"] = sums["delivery_cost"] / (sums["amount"] + sums["delivery_cost"])
    out["n_categories"] = g["category"].nunique()
    counts = o.groupby(["customer_id", "category"]).size().rename("n").reset_index()
    counts = counts.sort_values(["customer_id", "n", "category"], ascending=[True, False, True])
    out["top_category"] = counts.drop_duplicates("customer_id").set_index("customer_id")[
        "category"]
    known = customers[customers["signup_at"] < as_of].set_index("customer_id")
    out = out.reindex(known.index)
    zero = ("orders_", "revenue_", "n_categories")
    out = out.fillna({c: 0 for c in out.columns if c.startswith(zero) and "trend" not in c})
    out["days_since_signup"] = (as_of - known["signup_at"]).dt.total_seconds() / 86_400
    return out


def one_customer_stages(tables: ck.Tables, cid: object, as_of: pd.Timestamp) -> str:
    """Where one customer's time goes: slicing, registering, DuckDB's stages, the result."""
    import json

    eng, fams = engine(), computed_families(tables)
    con, params = eng.small, {"as_of": as_of.to_pydatetime()}
    sql = compose_sql(tuple(f.name for f in fams), frozenset(tables.present()))
    one, t_slice = timed(tables.for_customers, [cid])
    _, t_parse = timed(con.extract_statements, sql)
    statement = con.extract_statements(sql)[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "profile.json"
        con.execute(f"SET enable_profiling = 'json'; SET profiling_output = '{out}'")
        try:
            with _registered(con, one):
                _, t_exec = timed(lambda: con.execute(statement, params).fetchnumpy())
        finally:
            con.execute("RESET enable_profiling")
        prof = json.loads(out.read_text())
    reg = [timed(lambda: _registered(con, one).__enter__())[1]]
    for name in one.present():
        con.unregister(f"raw_{name}")
    ms = {
        "slice": t_slice, "register 5 tables": reg[0], "parse (cached: not paid)": t_parse,
        "bind": prof["planner"]["binding_time"],
        "other planning": prof["planner"]["total_time"] - prof["planner"]["binding_time"],
        "optimizer (off)": prof["optimizer"]["total_time"],
        "physical plan": prof["physical_planner"]["total_time"],
        "operators (cpu)": prof["query"]["cpu_time"],
        "executor setup, result": t_exec - prof["planner"]["total_time"]
        - prof["optimizer"]["total_time"] - prof["physical_planner"]["total_time"]
        - prof["query"]["cpu_time"],
    }
    return ", ".join(f"{k} {v * 1000:.1f}" for k, v in ms.items()) + " (ms)"


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=None, help="Parquet cache directory")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--singles", type=int, default=200)
    args = ap.parse_args(argv)

    tables = load_shop(args.customers, args.seed, args.data)
    rows = tables.n_rows()
    print("rows:", ", ".join(f"{k} {v:,}" for k, v in rows.items()),
          f"(total {sum(rows.values()):,})")
    rss_loaded = peak_rss_gb()
    print(f"peak RSS after loading: {rss_loaded:.2f} GB")

    # (1) the whole base
    full, seconds = timed(build_features, tables, as_of=AS_OF)
    print(f"[1] build_features, whole base: {seconds:.1f} s, {full.shape[0]:,} customers x "
          f"{full.shape[1]} features, shards of {SHARD_SIZE:,} customers, "
          f"families {full.attrs['families']}")
    print(f"    peak RSS of the process: {peak_rss_gb():.2f} GB "
          f"(of which {rss_loaded:.2f} GB tables and generation before the call)")

    # (2) one customer at a time, the same loaded tables, the full run's population
    population = full.attrs["population"]
    rng = np.random.default_rng(args.seed)
    ids = rng.choice(full.index.to_numpy(), size=args.singles, replace=False)
    for cid in ids[:5]:  # warm-up: connection, SQL composition
        build_features(tables, as_of=AS_OF, customer_ids=[cid], population=population)
    times = []
    mismatches = 0
    for cid in ids:
        one, seconds = timed(build_features, tables, as_of=AS_OF, customer_ids=[cid],
                             population=population)
        times.append(seconds * 1000)
        try:
            pd.testing.assert_frame_equal(one, full.loc[[cid]])
        except AssertionError:
            mismatches += 1
    print(f"[2] one customer: median {np.median(times):.1f} ms, p95 "
          f"{np.percentile(times, 95):.1f} ms over {len(ids)} customers; rows differing from "
          f"the full run: {mismatches}")
    print(f"    stages of one call: {one_customer_stages(tables, ids[0], _cutoff(AS_OF))}")

    # (3) purchases family: churnkit (DuckDB) vs plain pandas, same data, same run
    cutoff = _cutoff(AS_OF)
    purchases = family("purchases")
    ours, t_ours = timed(engine().run, tables, cutoff, [purchases])
    theirs, t_pandas = timed(pandas_purchases, tables.orders, tables.customers, cutoff)
    for col in ("orders_90d", "revenue_lifetime", "gap_median_days", "gap_last_days",
                "overdue_ratio", "discount_share", "days_since_signup"):
        pd.testing.assert_series_equal(ours[col], theirs[col].reindex(ours.index),
                                       check_dtype=False, check_names=False)
    print(f"[3] purchases family: churnkit {t_ours:.1f} s, pandas group-by {t_pandas:.1f} s, "
          f"speed-up {t_pandas / t_ours:.1f}x (results agree)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
