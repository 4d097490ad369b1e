"""Benchmark of the nightly batch job (``churnkit score``) on a large synthetic shop.

Usage::

    .venv/bin/python benchmarks/batch.py --customers 1000000 [--shard-size 100000] [--data DIR]

1. generates the shop (``churnkit generate`` in a child process, cached as Parquet under
   ``--data``, default a folder in the system temp directory);
2. trains a small bundle on a separate ``--train-customers`` shop (3 Optuna trials; cached) and
   adds its drift reference, as the training pipeline does;
3. runs the real command ``churnkit score --data SHOP --model BUNDLE --as-of AS_OF --out
   FILE.parquet [--workers N]`` in a child process, end to end: load + validate, features,
   models and policy (in the job's worker processes), write the shard parts, assemble. Peak
   memory is the machine's memory in use above its level at the start (forked workers share the
   loaded tables, so summing their RSS would count them twice), beside the largest single
   process's RSS from ``os.wait4``; the time per stage comes from the run summary the job
   writes (summed over the workers).

``--compiled`` scores again with a compiled copy of the bundle (``churnkit compile``), right
after, and compares the two outputs column by column.

Goal (issue 16; issue 8 asked for 3 minutes): 1M customers in <= 120 s and <= 8 GB peak on a
2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

START, END, AS_OF = "2022-01-01", "2024-07-01", "2024-07-01"


def ensure_shop(n: int, seed: int, folder: Path) -> Path:
    if (folder / "customers.parquet").exists():
        print(f"using cached shop {folder}")
        return folder
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "churnkit", "generate", "--customers", str(n),
                    "--seed", str(seed), "--start", START, "--end", END, "--out", str(folder),
                    "--force"], check=True)
    print(f"generated {n:,} customers in {time.perf_counter() - t0:.1f} s -> {folder}")
    return folder


def ensure_bundle(n: int, seed: int, folder: Path, trials: int) -> Path:
    if (folder / "bundle.json").exists():
        print(f"using cached bundle {folder}")
        return folder
    import pandas as pd

    import churnkit as ck
    from churnkit.models.drift import DriftReference
    from training.config import TrainConfig
    from training.pipeline import train

    t0 = time.perf_counter()
    tables, _ = ck.synth.generate(n, seed=seed + 1, start=START, end=END)
    scratch = Path(tempfile.mkdtemp(prefix="churnkit-bench-train-"))
    config = TrainConfig.load(trials=trials, bootstrap=20, train_cutoffs=2, name="bench",
                              models_dir=scratch, tracking_uri=f"sqlite:///{scratch / 'ml.db'}")
    result = train(tables, as_of=AS_OF, config=config,
                   created_at=pd.Timestamp("2024-07-01T06:00:00Z"))
    names = list(result.bundle.feature_spec.names)
    rows = ck.build_features(tables, as_of=result.cutoffs.validation)[names]
    bundle = replace(result.bundle, drift=DriftReference().fit(rows))
    bundle.save(folder, overwrite=True)
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"trained the bundle on {n:,} customers in {time.perf_counter() - t0:.1f} s -> {folder}")
    return folder


def _memory_in_use() -> int:
    """Bytes of memory the machine has in use (MemTotal - MemAvailable): pages shared by
    forked workers count once, and reading it costs nothing measurable (unlike summing the
    workers' PSS, which walks every page)."""
    info = {}
    with open("/proc/meminfo") as fh:
        for line in fh:
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0]) * 1024
    return info["MemTotal"] - info["MemAvailable"]


def run_score(shop: Path, bundle: Path, out: Path, shard_size: int, workers: int | None) -> dict:
    import threading

    command = [sys.executable, "-m", "churnkit", "score", "--data", str(shop), "--model",
               str(bundle), "--as-of", AS_OF, "--out", str(out), "--shard-size", str(shard_size)]
    if workers is not None:
        command += ["--workers", str(workers)]
    print("$", " ".join(command))
    baseline = _memory_in_use()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.25):
            peak = max(peak, _memory_in_use() - baseline)

    sampler = threading.Thread(target=sample, daemon=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(command)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"churnkit score failed with exit code {proc.returncode}")
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads(out.with_name(f"{out.stem}.summary.json").read_text())
    return {"wall_s": wall, "peak_rss_gb": usage.ru_maxrss / 1024**2,
            "peak_used_gb": peak / 1024**3, "summary": summary,
            # the job and its worker processes (getrusage counts reaped grandchildren too), this run
            "cpu_s": (children.ru_utime + children.ru_stime
                      - before.ru_utime - before.ru_stime), "bytes": out.stat().st_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--shard-size", type=int, default=100_000)
    parser.add_argument("--train-customers", type=int, default=20_000)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default: the job's own, one per core)")
    parser.add_argument("--bundle", type=Path, default=None,
                        help="score with this bundle instead of training one")
    parser.add_argument("--data", type=Path, default=None,
                        help="cache folder (default: the system temp folder)")
    parser.add_argument("--compiled", action="store_true",
                        help="also score with a compiled copy of the bundle (`churnkit compile`), "
                             "right after, and compare the two runs and their outputs")
    args = parser.parse_args()
    root = args.data or Path(tempfile.gettempdir())
    shop = ensure_shop(args.customers, args.seed,
                       root / f"churnkit-bench-batch-{args.customers}-{args.seed}")
    bundle = args.bundle or ensure_bundle(
        args.train_customers, args.seed,
        root / f"churnkit-bench-batch-bundle-{args.train_customers}-{args.seed}", args.trials)
    out_dir = Path(tempfile.mkdtemp(prefix="churnkit-bench-scores-"))
    try:
        runs = {"LightGBM": run_score(shop, bundle, out_dir / "lightgbm.parquet",
                                      args.shard_size, args.workers)}
        if args.compiled:
            runs["compiled"] = run_score(shop, ensure_compiled(bundle, root), out_dir /
                                         "compiled.parquet", args.shard_size, args.workers)
            compare_outputs(out_dir / "lightgbm.parquet", out_dir / "compiled.parquet")
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    for name, r in runs.items():
        report(name, r, args.shard_size)
    if args.compiled:
        a, b = runs["LightGBM"]["wall_s"], runs["compiled"]["wall_s"]
        print(f"\ncompiled / LightGBM, wall: {b:.1f} / {a:.1f} s = {b / a:.2f}")


def ensure_compiled(bundle: Path, root: Path) -> Path:
    """A copy of ``bundle`` compiled by ``churnkit compile`` (cached beside the shop)."""
    folder = root / f"{bundle.name}-compiled"
    if not (folder / "compiled" / "compiled.json").exists():
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(bundle, folder)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "churnkit", "compile", "--model", str(folder)],
                       check=True)
        print(f"compiled the bundle in {time.perf_counter() - t0:.1f} s (once per bundle)")
    return folder


def compare_outputs(plain: Path, compiled: Path) -> None:
    """How far the compiled run's scores are from LightGBM's: the largest relative difference
    per float column, and the share of rows whose other columns differ."""
    import numpy as np
    import pandas as pd

    a = pd.read_parquet(plain).sort_values("customer_id", ignore_index=True)
    b = pd.read_parquet(compiled).sort_values("customer_id", ignore_index=True)
    print(f"\noutputs, compiled against LightGBM ({len(a):,} rows):")
    for column in a.columns:
        x, y = a[column], b[column]
        if x.dtype.kind == "f":
            scale = np.maximum(np.abs(x.to_numpy()), np.abs(y.to_numpy()))
            diff = np.abs(x.to_numpy() - y.to_numpy())
            rel = np.where(scale > 0, diff / np.where(scale > 0, scale, 1), 0)
            worst = float(np.nanmax(rel)) if len(rel) else 0.0
            if worst > 0:
                print(f"  {column:<36} max relative difference {worst:.1e}")
        else:
            same = (x.astype(str) == y.astype(str)) | (x.isna() & y.isna())
            differ = 1 - same.mean()
            if differ:
                print(f"  {column:<36} {differ:.4%} of rows differ")


def report(name: str, r: dict, shard_size: int) -> None:
    s = r["summary"]
    stages = s["stage_seconds"]
    total = sum(stages.values())
    print(f"\n[{name}] {s['rows']:,} customers scored in {r['wall_s']:.1f} s wall "
          f"(process start and imports included; job {s['duration_seconds']:.1f} s), "
          f"peak memory {r['peak_used_gb']:.2f} GB (machine memory in use above its level "
          f"before the start, sampled every 0.25 s; largest single-process RSS "
          f"{r['peak_rss_gb']:.2f} GB), "
          f"CPU {r['cpu_s']:.0f} s, output {r['bytes'] / 1024**2:.0f} MiB, "
          f"{s['shards']} shards of {shard_size:,}, {s['workers']} worker(s)")
    print(f"{s['rows'] / s['duration_seconds']:,.0f} customers/s")
    print("stage (seconds summed over the workers)   seconds   share")
    for stage, value in stages.items():
        print(f"{stage:<40} {value:8.1f}  {value / total:6.1%}")
    goal_t, goal_m = 120.0, 8.0  # issue 16 (issue 8 asked for 180 s)
    ok = r["wall_s"] <= goal_t and max(r["peak_used_gb"], r["peak_rss_gb"]) <= goal_m
    print(f"goal <= {goal_t:.0f} s and <= {goal_m:.0f} GB: {'met' if ok else 'NOT met'} "
          f"(machine: {os.cpu_count()} cores; load average at the end "
          f"{os.getloadavg()[0]:.1f})")

if __name__ == "__main__":
    main()
