"""Benchmark of the scoring service (issue 7): one-customer ``/score`` over loopback HTTP.

Generates a synthetic shop (default 100,000 customers) as Parquet, trains a small bundle on a
separate 5,000-customer shop, starts ``churnkit serve`` as its own process and drives it from this
process with an open-loop load (requests sent on a fixed schedule, whatever the answers' speed):

1. the in-process reference: :func:`churnkit.score` for one customer from the loaded tables, and
   the service's own path in-process (store read + score), median and p95 of repeated calls;
2. one random customer per request at ``--rate`` requests/s for ``--duration`` seconds:
   p50/p90/p99 latency, errors, achieved rate;
3. rising rates (``--steps``) for ``--step-duration`` s each, until a step has an error or
   falls behind (answers < 95% of the offered rate, or p99 above ``--max-p99`` s): the highest
   rate sustained before that.

Run: ``.venv/bin/python benchmarks/serve.py`` (about 10 minutes; ``--customers 20000
--duration 20`` for a quick look). Results go to stdout as a Markdown table and JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

AS_OF = "2025-07-01T00:00:00Z"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def prepare(root: Path, n_customers: int) -> tuple[Path, Path]:
    import churnkit as ck
    from training.config import TrainConfig
    from training.pipeline import bundle_dir, train

    data = root / f"shop-{n_customers}"
    t = time.perf_counter()
    if (data / "orders.parquet").exists():  # a previous run's shop in the same --workdir
        print(f"shop: reusing {data}", flush=True)
    else:
        tables, _ = ck.synth.generate(n_customers, seed=7, start="2023-01-01",
                                      end="2025-07-01")
        ck.save_tables(tables, data)
        print(f"shop: {n_customers:,} customers, {sum(tables.n_rows().values()):,} rows "
              f"({time.perf_counter() - t:.0f} s)", flush=True)
        del tables
    done = sorted((root / "models" / "churn-bench").glob("*/bundle.json"))
    if done:  # a previous run's bundle in the same --workdir
        print(f"bundle: reusing {done[-1].parent}", flush=True)
        return data, done[-1].parent
    t = time.perf_counter()
    small, truth = ck.synth.generate(5000, seed=8, start="2023-01-01", end="2025-07-01")
    config = TrainConfig.load(trials=3, bootstrap=20, threads=1, train_cutoffs=2,
                              models_dir=root / "models",
                              tracking_uri=f"sqlite:///{root / 'mlruns.db'}",
                              name="churn-bench")
    result = train(small, as_of=AS_OF, config=config, truth=truth,
                   created_at=pd.Timestamp("2025-07-02T00:00:00Z"))
    bundle = result.bundle.save(bundle_dir(config, result.bundle))
    print(f"bundle: trained on 5,000 customers ({time.perf_counter() - t:.0f} s)", flush=True)
    return data, bundle


def in_process(data: Path, bundle_path: Path, ids: list[int], n: int = 40) -> dict:
    """Median/p95 (ms) of ck.score for one customer from loaded tables, and of the service's
    path (store read of that customer + ck.score) in this process."""
    import churnkit as ck
    from serving.store import ParquetStore

    tables = ck.load_tables(data)
    bundle = ck.ModelBundle.load(bundle_path)
    store = ParquetStore(data)  # files read on every call
    held = ParquetStore(data, memory_mb=10_000)  # held in memory, as the service holds it
    out = {}
    for name, call in (
        ("ck.score, tables in memory", lambda i: ck.score(tables, as_of=AS_OF, bundle=bundle,
                                                          customer_ids=[i])),
        ("store read + ck.score", lambda i: ck.score(store.tables_for([i]), as_of=AS_OF,
                                                     bundle=bundle)),
        ("store held in memory + ck.score", lambda i: ck.score(held.tables_for([i]),
                                                               as_of=AS_OF, bundle=bundle)),
        ("store read + ck.score, 100 customers", lambda i: ck.score(
            store.tables_for(ids[ids.index(i):ids.index(i) + 100]), as_of=AS_OF,
            bundle=bundle)),
    ):
        for i in ids[:3]:
            call(i)  # warm-up
        times, cpu = [], []
        for i in ids[3:3 + n]:
            t, c = time.perf_counter(), time.process_time()
            call(i)
            times.append(1000 * (time.perf_counter() - t))
            cpu.append(1000 * (time.process_time() - c))
        # CPU time of this process (all its threads): the cost when the cores are not shared
        out[name] = {"median_ms": statistics.median(times), "p95_ms": pct(times, 95),
                     "cpu_median_ms": statistics.median(cpu)}
        print(f"in process, {name}: median {out[name]['median_ms']:.1f} ms, "
              f"p95 {out[name]['p95_ms']:.1f} ms, CPU median "
              f"{out[name]['cpu_median_ms']:.1f} ms", flush=True)
    store.close()
    held.close()
    return out


async def drive(url: str, ids: list[int], rate: float, duration: float,
                timeout: float = 30.0) -> dict:
    """Open loop: one request every 1/rate s for ``duration`` s; latency of each."""
    import aiohttp

    latencies: list[float] = []
    errors: dict[str, int] = {}
    rng = random.Random(int(rate))
    connector = aiohttp.TCPConnector(limit=2000)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async def one(cid: int) -> None:
            t = time.perf_counter()
            try:
                async with session.post(url + "/score", json={"customer_ids": [cid],
                                                              "as_of": AS_OF}) as r:
                    body = await r.read()
                    if r.status != 200 or b'"customers":[{' not in body:
                        errors[str(r.status)] = errors.get(str(r.status), 0) + 1
                        return
            except Exception as exc:  # timeouts, refused connections
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            latencies.append(1000 * (time.perf_counter() - t))

        tasks = []
        start = time.perf_counter()
        n = int(rate * duration)
        for k in range(n):
            delay = start + k / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(rng.choice(ids))))
        sent_in = time.perf_counter() - start
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {
        "offered_rps": rate, "sent": n, "ok": len(latencies), "errors": errors,
        "achieved_rps": len(latencies) / elapsed, "send_seconds": sent_in,
        "p50_ms": pct(latencies, 50), "p90_ms": pct(latencies, 90),
        "p99_ms": pct(latencies, 99), "max_ms": max(latencies, default=float("nan")),
    }


def settle(url: str, limit: float = 120.0) -> None:
    """Wait until the service answers a single request within 5 s (its queue has drained)."""
    import httpx

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        t = time.perf_counter()
        try:
            r = httpx.post(url + "/score", json={"customer_ids": [0], "as_of": AS_OF},
                           timeout=limit)
            if r.status_code == 200 and time.perf_counter() - t < 5:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)


def service_cpu(pid: int) -> float:
    """User + system CPU seconds of the service process and its children (BentoML workers)."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--steps", default="150,200,300,400,600")
    parser.add_argument("--step-duration", type=float, default=20.0)
    parser.add_argument("--max-p99", type=float, default=2.0, help="seconds")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    import httpx

    root = args.workdir or Path(tempfile.mkdtemp(prefix="churnkit-serve-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    data, bundle = prepare(root, args.customers)
    customers = pd.read_parquet(data / "customers.parquet", columns=["customer_id",
                                                                    "signup_at"])
    known = customers.loc[customers["signup_at"] < pd.Timestamp(AS_OF), "customer_id"]
    ids = [int(i) for i in known.sample(2000, random_state=1)]
    reference = in_process(data, bundle, sorted(ids))

    port = free_port()
    # no churnkit request lines during the load (BentoML's access line per request stays)
    env = {**os.environ, "CHURNKIT_LOG_LEVEL": "WARNING", "BENTOML_DO_NOT_TRACK": "true"}
    log = (root / "service.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "churnkit", "serve", "--model", str(bundle), "--data", str(data),
         "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"service did not start; see {root / 'service.log'}")
            time.sleep(0.5)
        asyncio.run(drive(url, ids, 20, 3))  # warm-up
        cpu0 = service_cpu(process.pid)
        steady = asyncio.run(drive(url, ids, args.rate, args.duration))
        # CPU seconds the service used per answer: its cost when the cores are not shared
        steady["service_cpu_ms_per_answer"] = (
            1000 * (service_cpu(process.pid) - cpu0) / max(steady["ok"], 1))
        print(f"{args.rate:g} req/s for {args.duration:g} s: {json.dumps(steady)}", flush=True)
        steps = []
        sustained = 0.0
        for rate in (float(r) for r in args.steps.split(",")):
            settle(url)
            step = asyncio.run(drive(url, ids, rate, args.step_duration))
            steps.append(step)
            print(f"step {rate:g} req/s: {json.dumps(step)}", flush=True)
            ok = (not step["errors"] and step["achieved_rps"] >= 0.95 * rate
                  and step["p99_ms"] <= 1000 * args.max_p99)
            if not ok:
                break
            sustained = rate
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    summary = {
        "customers": args.customers, "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(), "in_process": reference, "steady": steady,
        "steps": steps, "sustained_rps": sustained,
    }
    print(json.dumps(summary, indent=1))
    print()
    print("| measure | value |\n|---|---|")
    for name, r in reference.items():
        print(f"| in process: {name}, median / p95 (CPU median) | {r['median_ms']:.0f} / "
              f"{r['p95_ms']:.0f} ms ({r['cpu_median_ms']:.0f} ms) |")
    print(f"| HTTP /score one customer at {args.rate:g} req/s for {args.duration:g} s: p50 / "
          f"p90 / p99 | {steady['p50_ms']:.0f} / {steady['p90_ms']:.0f} / "
          f"{steady['p99_ms']:.0f} ms ({sum(steady['errors'].values())} errors, "
          f"{steady['achieved_rps']:.0f} answers/s) |")
    print(f"| service CPU per answer during that minute | "
          f"{steady['service_cpu_ms_per_answer']:.1f} ms |")
    print(f"| highest step rate sustained (no errors, ≥95% answered, p99 ≤ {args.max_p99:g} s) "
          f"| {sustained:g} req/s |")


if __name__ == "__main__":
    main()
