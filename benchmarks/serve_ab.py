"""A/B of the scoring service: the same load against ``churnkit serve`` started from two code
trees, alternating, pair by pair (issue 16). On a shared, noisy machine a change to the service
is measured by pairs run in the same minutes, not by two runs of ``benchmarks/serve.py``.

Uses the shop and the compiled bundle ``benchmarks/serve.py --compiled`` leaves in
``--workdir`` (run it once first). For each of ``--pairs`` pairs, and for ``--before`` then
``--after``: starts ``churnkit serve`` (this venv, ``PYTHONPATH`` set to that tree, so an
older checkout's ``churnkit`` and ``serving`` are imported; a ``:``-separated path may put
shims first, e.g. a folder whose ``uvloop`` fails to import), waits until it is ready, warms it
up (50 requests at 20 req/s), drives ``--endpoint`` with one random customer per request at
``--rate`` for ``--seconds`` (``serve_load.drive``: open loop, latency from the moment each
request was due), reads the CPU of the service's process tree over that run, and stops it.

Run: ``.venv/bin/python benchmarks/serve_ab.py --before /tmp/base --after $PWD --endpoint
score_events`` (about 7 minutes for 3 pairs of 30 s). Prints one line per run, a Markdown table
of the pairs and JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

import pandas as pd
from serve_load import (  # benchmarks/, the script's directory
    AS_OF,
    drive,
    events_bodies,
    free_port,
    score_bodies,
    service_cpu,
    start,
    stop,
    wait_ready,
)

KEYS = ("ok", "server_errors", "within_share", "p50_ms", "p90_ms", "p99_ms")


def one_run(tree: str, endpoint: str, bodies: list[bytes], args: argparse.Namespace) -> dict:
    """One service from ``tree`` under the load; its figures."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": tree, "CHURNKIT_LOG_LEVEL": "WARNING",
           "BENTOML_DO_NOT_TRACK": "true"}
    log = args.workdir / "serve-ab.log"
    process = start([str(Path(sys.executable).with_name("churnkit")), "serve", "--model",
                     str(args.workdir / "bundle-compiled"), "--data", str(args.data),
                     "--port", str(port), "--host", "127.0.0.1"], env, log,
                    Path(tree.split(":")[-1]))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log)
        asyncio.run(drive(f"{url}/{endpoint}", bodies[:50], 20, 2.5))  # warm-up
        cpu = service_cpu(process.pid)
        result = asyncio.run(drive(f"{url}/{endpoint}", bodies, args.rate, args.seconds))
        cpu = service_cpu(process.pid) - cpu
    finally:
        stop(process)
    out = {k: result[k] for k in KEYS}
    out["cpu_ms_per_answer"] = 1000 * cpu / max(result["ok"], 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="code tree (PYTHONPATH) before")
    parser.add_argument("--after", required=True, help="code tree (PYTHONPATH) after")
    parser.add_argument("--endpoint", choices=("score", "score_events"), default="score")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/servebench"))
    parser.add_argument("--customers", type=int, default=100_000)
    args = parser.parse_args()
    args.data = args.workdir / f"shop-{args.customers}"
    if not (args.workdir / "bundle-compiled" / "compiled" / "compiled.json").exists():
        raise SystemExit(f"no compiled bundle in {args.workdir}: run benchmarks/serve.py "
                         f"--workdir {args.workdir} --compiled first")

    import churnkit as ck

    customers = pd.read_parquet(args.data / "customers.parquet",
                                columns=["customer_id", "signup_at"])
    known = customers.loc[customers["signup_at"] < pd.Timestamp(AS_OF), "customer_id"]
    ids = [int(i) for i in known.sample(min(500, len(known)), random_state=1)]
    if args.endpoint == "score":
        bodies = score_bodies(ids)
    else:
        bodies = events_bodies(ck.load_tables(args.data), ids, list(ck.TABLES))
    runs: list[dict] = []
    for pair in range(1, args.pairs + 1):
        for side, tree in (("before", args.before), ("after", args.after)):
            started = time.strftime("%H:%M:%S")
            result = {"pair": pair, "side": side, "tree": tree, "started": started,
                      **one_run(tree, args.endpoint, bodies, args)}
            runs.append(result)
            print(json.dumps(result), flush=True)
    print(f"\n`/{args.endpoint}` at {args.rate:g} req/s for {args.seconds:g} s, "
          f"{args.customers:,}-customer shop\n")
    print("| pair | CPU per answer before → after | p50 before → after | p99 before → after |")
    print("|---|---|---|---|")
    ratios = []
    for pair in range(1, args.pairs + 1):
        b, a = (next(r for r in runs if r["pair"] == pair and r["side"] == s)
                for s in ("before", "after"))
        ratios.append(a["cpu_ms_per_answer"] / b["cpu_ms_per_answer"])
        print(f"| {pair} | {b['cpu_ms_per_answer']:.2f} → {a['cpu_ms_per_answer']:.2f} ms "
              f"({ratios[-1]:.2f}×) | {b['p50_ms']:.1f} → {a['p50_ms']:.1f} ms | "
              f"{b['p99_ms']:.1f} → {a['p99_ms']:.1f} ms |")
    print(json.dumps({"endpoint": args.endpoint, "rate": args.rate, "seconds": args.seconds,
                      "cpu_ratio_median": statistics.median(ratios), "runs": runs}))


if __name__ == "__main__":
    main()
