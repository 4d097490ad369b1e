"""Benchmark of ``churnkit.features.build_features`` on a synthetic shop.

Usage::

    .venv/bin/python benchmarks/features.py --customers 1000000 [--data DIR]

Measures, on one shop generated with :mod:`churnkit.synth` (cached as Parquet under ``--data``,
default a directory in the system temp folder):

1. the whole base: conversion to arrays and the features, wall time and peak RSS of the process
   (goal <= 30 s, <= 8 GB);
2. one customer at a time from the converted shop, with the full run's population (median and
   p95 over ``--singles`` random customers), each row checked bitwise against the full run;
3. the purchases family against a straightforward pandas group-by implementation, side by side
   on the same data (goal: churnkit >= 3x faster), checking that both agree;
4. the same features by the SQL definitions on DuckDB (the tests' oracle, the engine before
   the array engine), as a ratio measured in the same run.
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
from churnkit.features.arrays import known_at
from churnkit.features.engine import compute_columns
from churnkit.features.oracle import oracle_features
from churnkit.features.registry import family

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


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=None, help="Parquet cache directory")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--singles", type=int, default=1000)
    ap.add_argument("--no-sql", action="store_true", help="skip the SQL oracle's run")
    args = ap.parse_args(argv)

    tables = load_shop(args.customers, args.seed, args.data)
    rows = tables.n_rows()
    print("rows:", ", ".join(f"{k} {v:,}" for k, v in rows.items()),
          f"(total {sum(rows.values()):,})")
    rss_loaded = peak_rss_gb()
    print(f"peak RSS after loading: {rss_loaded:.2f} GB")

    # (1) the whole base: conversion to arrays, then the families' reductions
    shop, t_convert = timed(ck.shop_arrays, tables)
    full, t_compute = timed(build_features, shop, as_of=AS_OF)
    print(f"[1] build_features, whole base: {t_convert + t_compute:.1f} s (conversion to arrays "
          f"{t_convert:.1f} s, features {t_compute:.1f} s), {full.shape[0]:,} customers x "
          f"{full.shape[1]} features, families {full.attrs['families']}")
    print(f"    peak RSS of the process: {peak_rss_gb():.2f} GB "
          f"(of which {rss_loaded:.2f} GB tables and generation before the call)")

    # (2) one customer at a time from the converted shop, the full run's population
    population = full.attrs["population"]
    rng = np.random.default_rng(args.seed)
    ids = rng.choice(full.index.to_numpy(), size=args.singles, replace=False)
    for cid in ids[:5]:  # warm-up
        build_features(shop, as_of=AS_OF, customer_ids=[cid], population=population)
    times = []
    mismatches = 0
    for cid in ids:
        one, seconds = timed(build_features, shop, as_of=AS_OF, customer_ids=[cid],
                             population=population)
        times.append(seconds * 1000)
        try:
            pd.testing.assert_frame_equal(one, full.loc[[cid]], check_exact=True)
        except AssertionError:
            mismatches += 1
    print(f"[2] one customer: median {np.median(times):.2f} ms, p95 "
          f"{np.percentile(times, 95):.2f} ms over {len(ids)} customers; rows differing from "
          f"the full run (bitwise): {mismatches}")

    # (3) purchases family: churnkit vs plain pandas, same data, same run
    cutoff = pd.Timestamp(AS_OF, tz="UTC")
    known = known_at(shop, int(cutoff.value) // 1000)
    ours, t_ours = timed(compute_columns, known, [family("purchases")])
    ours = pd.DataFrame(ours, index=pd.Index(known.ids, name="customer_id"))
    theirs, t_pandas = timed(pandas_purchases, tables.orders, tables.customers, cutoff)
    for col in ("orders_90d", "revenue_lifetime", "gap_median_days", "gap_last_days",
                "overdue_ratio", "discount_share", "days_since_signup"):
        pd.testing.assert_series_equal(ours[col], theirs[col].reindex(ours.index),
                                       check_dtype=False, check_names=False)
    print(f"[3] purchases family: churnkit {t_ours:.1f} s, pandas group-by {t_pandas:.1f} s, "
          f"speed-up {t_pandas / t_ours:.1f}x (results agree)")

    # (4) the same features by the SQL definitions on DuckDB (the tests' oracle), same run
    if not args.no_sql:
        oracle, t_sql = timed(oracle_features, tables, as_of=AS_OF, population=population)
        print(f"[4] SQL oracle (DuckDB, {oracle.shape[1]} columns), whole base: {t_sql:.1f} s; "
              f"array engine / SQL: {(t_convert + t_compute) / t_sql:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
