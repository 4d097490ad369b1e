"""Benchmark of the synthetic shop: generate N customers over 2023-01-01..2025-07-01, write Parquet.

Usage::

    .venv/bin/python benchmarks/synth.py --customers 1000000

Prints the wall time of ``churnkit.synth.generate`` and of writing the tables as Parquet into a
temporary directory (deleted afterwards), the rows per table and the peak resident memory.
Goal on a 2-core, 24 GiB machine: ≤ 3 minutes and ≤ 8 GB for 1M customers.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time

from churnkit import save_tables, synth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", default="2023-01-01")
    parser.add_argument("--end", default="2025-07-01")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    tables, truth = synth.generate(args.customers, seed=args.seed, start=args.start,
                                   end=args.end)
    t_generate = time.perf_counter() - t0
    # ru_maxrss is in KiB on Linux.
    peak_generate_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    with tempfile.TemporaryDirectory(prefix="churnkit-synth-") as tmp:
        t1 = time.perf_counter()
        save_tables(tables, tmp)
        t_write = time.perf_counter() - t1
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2

    rows = tables.n_rows()
    print(f"customers: {args.customers:,}  period: {args.start}..{args.end}  seed: {args.seed}")
    for name, n in rows.items():
        print(f"  {name:<10} {n:>12,} rows")
    print(f"  {'total':<10} {sum(rows.values()):>12,} rows")
    print(f"  leave decisions: {int(truth.leaving['decided_at'].notna().sum()):,}")
    print(f"generate: {t_generate:8.1f} s")
    print(f"write:    {t_write:8.1f} s")
    print(f"total:    {t_generate + t_write:8.1f} s")
    print(f"peak RSS: {peak_gb:8.2f} GB (after generate: {peak_generate_gb:.2f} GB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
