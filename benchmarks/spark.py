"""Benchmark: scoring on Spark local mode (``churnkit.jobs.spark``) against the single-machine job.

Usage::

    .venv/bin/python benchmarks/spark.py [--customers 20000] [--master local[2]]
        [--shard-size 5000]

1. generates a synthetic shop (seed 3) and saves it as Parquet in a scratch folder;
2. trains a small bundle with the real pipeline on a separate 3,000-customer shop (2 trials);
3. single machine: :func:`churnkit.jobs.batch.run_batch` (``churnkit score``) on the Parquet folder,
   same shard size;
4. Spark: ``python -m churnkit.jobs.spark`` in a child process (JVM start included) and, inside one
   warm session, :func:`churnkit.jobs.spark.score` + write (session already up, Python workers warm
   after a first run);
5. checks that both outputs are equal row for row and prints rows/s and the ratios.

Needs the ``spark`` extra and Java 17+; says so and exits 0 without them (``make bench`` runs
every benchmark).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START, AS_OF = "2023-07-01", "2025-07-01"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--shard-size", type=int, default=5_000)
    args = parser.parse_args()
    try:
        import pyspark  # noqa: F401
    except ImportError:
        print("skipped: pyspark is not installed (pip install -e '.[spark]')")
        return 0
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        print("skipped: no Java runtime (PySpark needs Java 17+)")
        return 0

    import pandas as pd
    import pyarrow.parquet as pq

    import churnkit as ck
    from churnkit.jobs import spark as cks
    from churnkit.jobs.batch import run_batch
    from training.config import TrainConfig
    from training.pipeline import train

    root = Path(tempfile.mkdtemp(prefix="churnkit-bench-spark-"))
    try:
        t0 = time.perf_counter()
        tables, _ = ck.synth.generate(args.customers, seed=3, start=START, end=AS_OF)
        ck.save_tables(tables, root / "shop")
        n_rows = sum(tables.n_rows().values())
        print(f"shop: {args.customers:,} customers, {n_rows:,} rows "
              f"({time.perf_counter() - t0:.1f} s)")
        del tables
        train_tables, _ = ck.synth.generate(3_000, seed=4, start=START, end=AS_OF)
        config = TrainConfig.load(trials=2, bootstrap=20, threads=1, train_cutoffs=1,
                                  models_dir=root / "models",
                                  tracking_uri=f"sqlite:///{root / 'mlruns.db'}",
                                  name="bench-spark")
        result = train(train_tables, as_of=AS_OF, config=config,
                       created_at=pd.Timestamp("2025-07-02T08:00:00Z"))
        bundle = result.bundle.save(root / "bundle")

        t0 = time.perf_counter()
        run_batch(root / "shop", model=bundle, as_of=AS_OF, out=root / "single.parquet",
                  shard_size=args.shard_size, progress=False)
        single_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "churnkit.jobs.spark", "--data", str(root / "shop"),
                        "--model", str(bundle), "--as-of", AS_OF, "--out",
                        str(root / "cold"), "--master", args.master,
                        "--shard-size", str(args.shard_size)], check=True,
                       stderr=subprocess.DEVNULL)
        cold_s = time.perf_counter() - t0

        spark = cks.session(args.master)
        spark.sparkContext.setLogLevel("ERROR")
        warm = []
        for i in range(2):  # the first run starts the Python workers; the second is warm
            t0 = time.perf_counter()
            frame = cks.score(root / "shop", as_of=AS_OF, bundle=bundle, spark=spark,
                              shard_size=args.shard_size)
            cks.write_scores(frame, root / f"warm{i}")
            warm.append(time.perf_counter() - t0)
        spark.stop()

        single = _sorted(pq.read_table(root / "single.parquet").to_pandas())
        differences = {}
        for name in ("cold", "warm0", "warm1"):
            other = _sorted(pq.read_table(root / name).to_pandas())
            differences[name] = _differences(single, other)
            print(f"{name}: rows differing from the single-machine job, by column: "
                  f"{differences[name] or 'none'}")
        n = args.customers
        print(f"load average at the end: {os.getloadavg()[0]:.1f} (2 cores)")
        print("| run | seconds | customers/s | vs single machine |")
        print("|---|---|---|---|")
        print(f"| single machine (`run_batch`) | {single_s:.1f} | {n / single_s:,.0f} | 1.00 |")
        cold = f"`python -m churnkit.jobs.spark` {args.master} (cold, JVM start)"
        for label, s in ((cold, cold_s),
                         ("Spark, warm session, first run", warm[0]),
                         ("Spark, warm session, workers warm", warm[1])):
            print(f"| {label} | {s:.1f} | {n / s:,.0f} | {single_s / s:.2f} |")
        equal = not any(differences.values())
        print(f"outputs equal row for row: {'yes' if equal else 'NO'}")
        if not equal:
            return 1
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def _sorted(frame):
    return frame.sort_values("customer_id").reset_index(drop=True)


def _differences(a, b) -> dict:
    """Rows whose value differs, per column (NaN equals NaN)."""
    if len(a) != len(b) or list(a.columns) != list(b.columns):
        return {"shape": f"{a.shape} vs {b.shape}"}
    out = {}
    for column in a.columns:
        x, y = a[column], b[column]
        n = int((~((x == y) | (x.isna() & y.isna()))).sum())
        if n:
            out[column] = n
    return out


if __name__ == "__main__":
    raise SystemExit(main())
