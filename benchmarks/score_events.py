"""Benchmark of one ``/score_events`` call in process, stage by stage (issue 16): where the
time of an answer goes before HTTP.

Uses the shop and the bundle of ``benchmarks/serve.py`` in ``--workdir`` (made there when
absent: a synthetic shop of ``--customers``, seed 7, and a bundle trained on 5,000 customers),
makes one body per customer as the load of ``serve.py`` does (``serve_load.events_bodies``: all
the customer's rows of every table, timestamps as ISO text), and times, per body, after a
warm-up:

1. ``parse``: ``ScoreEventsRequest.model_validate_json`` of the body (what BentoML does);
2. ``rows``: the request's rows as the endpoint hands them on (``records_of`` per table, or
   ``columns_of`` where the code has it);
3. ``validate``: ``tables_from_rows`` (the contract checks, the normalized tables);
4. ``score``: :func:`churnkit.score` of those tables (where the code has it, of the engine's
   arrays made from the validation's own, as the endpoint does);
5. ``answer``: ``rows_from_frame`` of the scores (their columns, ``as_frame=False``, where
   the code has it, as the endpoint reads them; else the scored frame).

Only names that both the code before and after the fast path have are needed, so the same
script measures an older checkout (``PYTHONPATH=/path/to/checkout``): run it on both in the
same minutes and compare the ratio. Prints a Markdown table and JSON.

Run: ``PYTHONPATH=$PWD .venv/bin/python benchmarks/score_events.py --workdir /tmp/servebench``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_load import AS_OF, code_root, events_bodies

STAGES = ("parse", "rows", "validate", "score", "answer")


def _rows_of(request):
    """The request's rows as this checkout's endpoint hands them to ``tables_from_rows``."""
    from serving import parsing

    convert = getattr(parsing, "columns_of", None) or parsing.records_of
    return {name: convert(getattr(request, name)) for name in
            ("customers", "orders", "browsing", "tickets", "contacts")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--bodies", type=int, default=200)
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()

    import pandas as pd
    from serve import prepare

    import churnkit as ck
    from serving.parsing import tables_from_rows
    from serving.schemas import ScoreEventsRequest, rows_from_frame

    data, bundle_path = prepare(args.workdir, args.customers)
    bundle = ck.ModelBundle.load(bundle_path)
    bundle.warm_up()
    tables = ck.load_tables(data)
    customers = tables.customers
    known = customers.loc[customers["signup_at"] < pd.Timestamp(AS_OF), "customer_id"]
    ids = [int(i) for i in known.sample(min(args.bodies, len(known)), random_state=1)]
    bodies = events_bodies(tables, ids, list(ck.TABLES))
    n_rows = [sum(len(v) for k, v in json.loads(b).items() if isinstance(v, list))
              for b in bodies]
    del tables
    as_of = pd.Timestamp(AS_OF)

    with_arrays = "with_arrays" in inspect.signature(tables_from_rows).parameters
    # as the endpoint: the scores' columns where ck.score can give them (no frame)
    columns = {"as_frame": False} if "as_frame" in inspect.signature(ck.score).parameters else {}

    def call(body: bytes) -> dict[str, float]:
        out = {}
        t = time.perf_counter()
        request = ScoreEventsRequest.model_validate_json(body)
        out["parse"] = time.perf_counter() - t
        t = time.perf_counter()
        rows = _rows_of(request)
        out["rows"] = time.perf_counter() - t
        t = time.perf_counter()
        if with_arrays:  # as the endpoint: the engine's arrays from the validation's own
            validated, plain = tables_from_rows(rows, with_arrays=True)
        else:
            validated, plain = tables_from_rows(rows), None
        out["validate"] = time.perf_counter() - t
        t = time.perf_counter()
        data = validated if plain is None else ck.ShopArrays.of(validated, plain)
        scored = ck.score(data, as_of=as_of, bundle=bundle, **columns)
        out["score"] = time.perf_counter() - t
        t = time.perf_counter()
        rows_from_frame(scored)
        out["answer"] = time.perf_counter() - t
        return out

    for body in bodies[:10]:
        call(body)  # warm-up
    best: list[dict[str, float]] = [{} for _ in bodies]
    cpu_start = time.process_time()
    wall_start = time.perf_counter()
    for _ in range(args.passes):
        for k, body in enumerate(bodies):
            for stage, seconds in call(body).items():
                best[k][stage] = min(best[k].get(stage, np.inf), seconds)
    cpu_per_call = 1000 * (time.process_time() - cpu_start) / (args.passes * len(bodies))
    wall_per_call = 1000 * (time.perf_counter() - wall_start) / (args.passes * len(bodies))
    summary = {
        "code": code_root(), "load_average": os.getloadavg(), "bodies": len(bodies),
        "passes": args.passes, "rows_median": statistics.median(n_rows),
        "rows_max": max(n_rows), "body_kb_median": statistics.median(map(len, bodies)) / 1024,
        "cpu_ms_per_call": cpu_per_call, "wall_ms_per_call": wall_per_call,
        # per body the fastest of its passes (robust to a shared machine), then the median
        "median_ms": {s: 1000 * statistics.median(b[s] for b in best) for s in STAGES},
        "p95_ms": {s: 1000 * float(np.percentile([b[s] for b in best], 95)) for s in STAGES},
    }
    total = [sum(b.values()) for b in best]
    summary["median_ms"]["total"] = 1000 * statistics.median(total)
    summary["p95_ms"]["total"] = 1000 * float(np.percentile(total, 95))
    print(f"code {summary['code']['commit']}, {len(bodies)} bodies (rows median "
          f"{summary['rows_median']:g}, max {summary['rows_max']}), load "
          f"{summary['load_average'][0]:.2f}")
    print("| stage | median ms | p95 ms |\n|---|---|---|")
    for stage in (*STAGES, "total"):
        print(f"| {stage} | {summary['median_ms'][stage]:.2f} | {summary['p95_ms'][stage]:.2f} |")
    print(f"CPU per call {cpu_per_call:.2f} ms, wall {wall_per_call:.2f} ms")
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
