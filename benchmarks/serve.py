"""Benchmark of the scoring service (issues 7 and 16): ``/score`` and ``/score_events`` over
loopback HTTP, against a bare BentoML endpoint on the same machine.

Generates a synthetic shop (default 100,000 customers) as Parquet, trains a small bundle on a
separate 5,000-customer shop, starts ``churnkit serve`` and the floor (``benchmarks/
floor_service.py``: a BentoML service with the same routes, bodies and worker count that answers
a constant) as their own processes and drives both from this process with the same open-loop
load (see ``benchmarks/serve_load.py``; latency from the moment each request was due), each
run once both services are idle (no work left from the one before):

1. the in-process reference: :func:`churnkit.score` for one customer from the loaded tables, and
   the service's own path in-process (store read + score), median and p95 of
   ``--in-process-calls`` calls;
2. ``/score``, one random customer per request, at ``--rate`` requests/s for ``--duration`` s:
   p50/p90/p99 latency (ms), errors, achieved rate, service CPU per answer; the floor likewise,
   and churnkit's p50 and p99 as ratios to the floor's;
3. ``/score_events`` the same way, each body a random customer's rows of every table of the
   shop (``--events-customers`` prepared bodies);
4. a soak: ``/score`` at ``--soak-rate`` for ``--soak-seconds`` (0 skips it), sampling the
   resident memory of the service's process tree every ``--soak-every`` s: errors, RSS at the
   start and the end, growth (%);
5. rising rates (``--steps``) for ``--step-duration`` s each, floor then churnkit: the highest
   rate at which at least 95% of the requests were answered within ``--within`` s with no 5xx
   (the acceptance figure), and the highest rate sustained (no errors, answers >= 95% of the
   offered rate, p99 <= ``--max-p99`` s); each the highest step passed with every step below
   it. Churnkit stops rising once a step has failed both; the floor runs every step;
6. once both services have stopped, the top step rate against a bare asyncio HTTP server
   (``serve_load.bare_server``): what the load generator alone keeps up with, and its CPU per
   request (it shares the cores with the services).

Run from the repository root: ``.venv/bin/python benchmarks/serve.py --workdir /tmp/servebench``
(about 15 minutes; ``--customers 5000 --duration 5 --step-duration 3 --soak-seconds 20 --steps
50,100`` for a quick look; the shop and bundle are reused from ``--workdir``). Results go to
stdout as a Markdown table and JSON (also written to ``WORKDIR/serve-summary.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from serve_load import (  # benchmarks/, the script's directory
    AS_OF,
    code_root,
    drive,
    events_bodies,
    free_port,
    pct,
    score_bodies,
    service_cpu,
    settle,
    shop_facts,
    soak,
    start,
    stop,
    wait_idle,
    wait_ready,
)
from serve_report import report

REPO = Path(__file__).resolve().parent.parent

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


def in_process(tables, data: Path, bundle_path: Path, ids: list[int], n: int = 40) -> dict:
    """Median/p95 (ms) of ck.score for one customer from loaded tables, and of the service's
    path (store read of that customer + ck.score) in this process."""
    import churnkit as ck
    from serving.store import ParquetStore

    bundle = ck.ModelBundle.load(bundle_path)
    store = ParquetStore(data)  # files read on every call
    held = ParquetStore(data, memory_mb=10_000)  # held in memory, as the service holds it
    out = {}
    for name, call in (
        ("ck.score, tables in memory", lambda i: ck.score(tables, as_of=AS_OF, bundle=bundle,
                                                          customer_ids=[i])),
        ("store read + ck.score", lambda i: ck.score(store.tables_for([i]), as_of=AS_OF,
                                                     bundle=bundle)),
        ("store held in memory + ck.score", lambda i: ck.score(held.data_for([i]),
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


def ratios(churn: dict, floor: dict) -> dict:
    """Churnkit's p50 and p99 over the floor's under the same load."""
    return {"p50": churn["p50_ms"] / floor["p50_ms"], "p99": churn["p99_ms"] / floor["p99_ms"]}


def accepted(step: dict) -> bool:
    """The acceptance bar of a rate step: >= 95% answered within the time, no 5xx."""
    return step["within_share"] >= 0.95 and step["server_errors"] == 0


def ramp(args, urls: dict[str, str], bodies: list[bytes], pids: list[int]) -> dict:
    """The rate steps (item 5 of the module docstring)."""
    rows: list[dict] = []
    best = {"sustained": 0.0, "accepted": 0.0, "floor_accepted": 0.0}
    rising = {"sustained": True, "accepted": True, "floor_accepted": True}
    for rate in (float(r) for r in args.steps.split(",")):
        row: dict = {"rate": rate}
        for name in ("floor", "churnkit"):
            if name == "churnkit" and not (rising["sustained"] or rising["accepted"]):
                continue
            settle(urls[name], bodies[0])
            wait_idle(pids)  # neither service still works off an earlier step
            step = asyncio.run(drive(urls[name], bodies, rate, args.step_duration,
                                     within_ms=1000 * args.within))
            row[name] = step
            print(f"step {rate:g} req/s, {name}: {json.dumps(step)}", flush=True)
            passed = ({"floor_accepted": accepted(step)} if name == "floor" else {
                "accepted": accepted(step),
                "sustained": (not step["errors"] and step["achieved_rps"] >= 0.95 * rate
                              and step["p99_ms"] <= 1000 * args.max_p99)})
            for key, ok in passed.items():
                rising[key] = rising[key] and ok
                if rising[key]:
                    best[key] = rate
        rows.append(row)
    return {"steps": rows, **{f"{k}_rps": v for k, v in best.items()}}


def bare(args, bodies: list[bytes], root: Path, cwd: Path) -> dict:
    """The top step rate against :func:`serve_load.bare_server` (no framework, nearly no work):
    whether the load generator alone keeps that rate on this machine."""
    port = free_port()
    log = root / "bare.log"
    server = start([sys.executable, str(Path(__file__).resolve().parent / "serve_load.py"),
                    "bare-server", str(port)], os.environ.copy(), log, cwd)
    try:
        wait_ready(f"http://127.0.0.1:{port}", server, log, limit=30)
        rate = max(float(r) for r in args.steps.split(","))
        run = asyncio.run(drive(f"http://127.0.0.1:{port}/score", bodies, rate,
                                args.step_duration, within_ms=1000 * args.within))
    finally:
        stop(server)
    print(f"load generator alone, {rate:g} req/s: {json.dumps(run)}", flush=True)
    return run


def machine() -> dict:
    """Cores, memory and load of this machine now."""
    import psutil

    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
            "cpu_model": model, "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_average_start": os.getloadavg(), "python": platform.python_version()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--in-process-calls", type=int, default=40)
    parser.add_argument("--events-customers", type=int, default=500)
    parser.add_argument("--steps", default="100,200,300,400,500,600,800")
    parser.add_argument("--step-duration", type=float, default=20.0)
    parser.add_argument("--within", type=float, default=1.0, help="seconds")
    parser.add_argument("--max-p99", type=float, default=2.0, help="seconds")
    parser.add_argument("--soak-seconds", type=float, default=300.0)
    parser.add_argument("--soak-rate", type=float, default=100.0)
    parser.add_argument("--soak-every", type=float, default=10.0, help="seconds")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--compiled", action="store_true",
                        help="compile the bundle's forests first (`churnkit compile`) and serve "
                             "it compiled")
    args = parser.parse_args()
    facts = machine()
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    code = code_root()

    import churnkit as ck

    root = args.workdir or Path(tempfile.mkdtemp(prefix="churnkit-serve-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    data, bundle = prepare(root, args.customers)
    if args.compiled:  # a compiled copy beside the shop, kept for later runs
        import shutil

        from churnkit.scoring import compile_bundle

        copy = root / "bundle-compiled"
        if not (copy / "compiled" / "compiled.json").exists():
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(bundle, copy)
            t = time.perf_counter()
            print(f"bundle: {compile_bundle(copy)} forests compiled "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)
        bundle = copy
    customers = pd.read_parquet(data / "customers.parquet", columns=["customer_id",
                                                                    "signup_at"])
    shop = shop_facts(data, customers)
    known = customers.loc[customers["signup_at"] < pd.Timestamp(AS_OF), "customer_id"]
    ids = [int(i) for i in known.sample(min(2000, len(known)), random_state=1)]
    tables = ck.load_tables(data)
    reference = in_process(tables, data, bundle, sorted(ids), args.in_process_calls)
    bodies = {"score": score_bodies(ids),
              "score_events": events_bodies(tables, ids[:args.events_customers], list(ck.TABLES))}
    shop["score_events_body_kb_median"] = statistics.median(
        len(b) for b in bodies["score_events"]) / 1024
    del tables, customers, known
    gc.collect()
    gc.freeze()  # the load generator's collections then skip everything made so far

    # no churnkit request lines during the load (BentoML's access line per request stays, in
    # both services)
    env = {**os.environ, "CHURNKIT_LOG_LEVEL": "WARNING", "BENTOML_DO_NOT_TRACK": "true"}
    ports = {"churnkit": free_port(), "floor": free_port()}
    while ports["floor"] == ports["churnkit"]:
        ports["floor"] = free_port()
    base = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    logs = {"churnkit": root / "service.log", "floor": root / "floor.log"}
    # ``python -m`` imports from its working directory first: start both in the checkout this
    # process imports from (the floor's module is found through --working-dir)
    cwd = Path(code["path"])
    processes = {
        "churnkit": start([sys.executable, "-m", "churnkit", "serve", "--model", str(bundle),
                           "--data", str(data), "--port", str(ports["churnkit"])],
                          env, logs["churnkit"], cwd),
        "floor": start([sys.executable, "-m", "bentoml", "serve",
                        "benchmarks.floor_service:Floor", "--port", str(ports["floor"]),
                        "--host", "127.0.0.1", "--working-dir", str(REPO)], env, logs["floor"],
                       cwd),
    }
    results: dict = {}
    try:
        for name in ("floor", "churnkit"):
            wait_ready(base[name], processes[name], logs[name])
        for name in ("floor", "churnkit"):  # warm-up
            for route, some in bodies.items():
                asyncio.run(drive(f"{base[name]}/{route}", some, 20, 3))
        pids = [p.pid for p in processes.values()]
        for route, some in bodies.items():
            for name in ("floor", "churnkit"):
                wait_idle(pids)
                cpu0 = service_cpu(processes[name].pid)
                run = asyncio.run(drive(f"{base[name]}/{route}", some, args.rate,
                                        args.duration))
                # CPU seconds the service used per answer: its cost when cores are not shared
                run["service_cpu_ms_per_answer"] = (
                    1000 * (service_cpu(processes[name].pid) - cpu0) / run["ok"]
                    if run["ok"] else float("nan"))
                results[f"{route}/{name}"] = run
                print(f"/{route}, {name}, {args.rate:g} req/s for {args.duration:g} s: "
                      f"{json.dumps(run)}", flush=True)
        if args.soak_seconds > 0:
            settle(f"{base['churnkit']}/score", bodies["score"][0])
            wait_idle(pids)
            results["soak"] = asyncio.run(soak(
                f"{base['churnkit']}/score", bodies["score"], args.soak_rate,
                args.soak_seconds, processes["churnkit"].pid, args.soak_every))
            print(f"soak: {json.dumps(results['soak'])}", flush=True)
        results["ramp"] = ramp(args, {n: f"{u}/score" for n, u in base.items()},
                               bodies["score"], pids)
        for process in processes.values():
            stop(process)  # the cores to the load generator alone
        results["load_generator"] = bare(args, bodies["score"], root, cwd)
    finally:
        for process in processes.values():
            stop(process)
    facts["load_average_end"] = os.getloadavg()
    summary = {
        "command": command, "code": code,
        "settings": {k: v for k, v in os.environ.items() if k.startswith("CHURNKIT_")},
        "machine": facts, "shop": shop, "compiled": args.compiled, "in_process": reference,
        **{key: run for key, run in results.items() if "/" in key},
        "ratios_to_floor": {route: ratios(results[f"{route}/churnkit"],
                                          results[f"{route}/floor"]) for route in bodies},
        "soak": results.get("soak"), **results["ramp"],
        "load_generator": results["load_generator"],
    }
    print(json.dumps(summary, indent=1, default=str))
    (root / "serve-summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print()
    report(args, summary)


if __name__ == "__main__":
    main()
