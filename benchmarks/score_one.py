"""Benchmark of ``ck.score`` for one customer, in process: what a backend service's call costs
before HTTP.

Builds its fixture once in ``--workdir`` (the same as ``benchmarks/score_stages.py``: a synthetic
shop of ``--customers``, seed ``--seed``, 2023-01-01 .. 2025-07-01, and a bundle with every stage)
and regenerates the shop's tables from the same seed. Then, in this process, after a warm-up:

1. ``ck.score(tables, customer_ids=[id], ...)`` for ``--rows`` different customers, one call
   each: median, p95 and mean wall time, and the median of the two halves the call reports
   (``timings``: features, then models and policy);
2. the same customers scored by the frame path (``ck.build_features`` for the one customer,
   then ``score_features`` of that frame), pair by pair in the same run: the ratio of the two;
3. parity: every score column of each one-customer call equals the whole-base run's row;
4. with ``--compiled``: the same customers scored with a compiled copy of the bundle
   (``churnkit compile``), alternating with the plain bundle call by call, with its own parity
   against its whole-base run.

Run: ``.venv/bin/python benchmarks/score_one.py`` (first run ~5 minutes for the fixture).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from score_stages import AS_OF, fixture, fixture_parser


def median_ms(values: list[float]) -> float:
    return float(np.median(values)) * 1000


def main() -> None:
    parser = fixture_parser(__doc__.split("\n\n")[0], rows=1000)
    parser.add_argument("--compiled", action="store_true",
                        help="also score with a compiled copy of the bundle, call by call")
    args = parser.parse_args()

    import churnkit as ck
    from churnkit.scoring import score_features

    bundle, _ = fixture(args.workdir, args.customers, args.seed, args.threads)
    tables, _ = ck.synth.generate(args.customers, seed=args.seed, start="2023-01-01",
                                  end="2025-07-01")
    tables = ck.validate(tables)
    bundle.warm_up()
    full = ck.score(tables, as_of=AS_OF, bundle=bundle)
    ids = np.random.default_rng(0).choice(full.index.to_numpy(), args.rows, replace=False)
    for cid in ids[:20]:
        ck.score(tables, as_of=AS_OF, bundle=bundle, customer_ids=[cid])

    wall, features, stages, frame_path, ratios = [], [], [], [], []
    differing = 0
    for cid in ids.tolist():
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        one = ck.score(tables, as_of=AS_OF, bundle=bundle, customer_ids=[cid], timings=timings)
        t1 = time.perf_counter()
        frame = ck.build_features(tables, as_of=AS_OF, customer_ids=[cid],
                                  population=bundle.population)
        frame.attrs = {}
        score_features(frame, bundle, as_of=AS_OF)
        t2 = time.perf_counter()
        wall.append(t1 - t0)
        frame_path.append(t2 - t1)
        ratios.append((t2 - t1) / (t1 - t0))
        features.append(timings["features"])
        stages.append(timings["models_and_policy"])
        expected = full.loc[[cid]]
        if not one.equals(expected):
            differing += 1
    result = {
        "customers_in_shop": args.customers, "rows": args.rows,
        "load_at_start": round(os.getloadavg()[0], 2),
        "median_ms": median_ms(wall), "p95_ms": float(np.percentile(wall, 95)) * 1000,
        "mean_ms": float(np.mean(wall)) * 1000,
        "features_median_ms": median_ms(features), "stages_median_ms": median_ms(stages),
        "frame_path_median_ms": median_ms(frame_path),
        "frame_path_over_score_median": float(np.median(ratios)),
        "rows_differing_from_whole_base": differing,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    print(f"\n`ck.score`, one customer, {args.rows} customers of a {args.customers:,}-customer "
          f"shop (load {result['load_at_start']})\n")
    print("| measure | value |\n|---|---|")
    print(f"| median / p95 / mean wall | {result['median_ms']:.2f} / {result['p95_ms']:.2f} / "
          f"{result['mean_ms']:.2f} ms |")
    print(f"| median: features / models and policy | {result['features_median_ms']:.2f} / "
          f"{result['stages_median_ms']:.2f} ms |")
    print(f"| frame path (build_features + score_features), median | "
          f"{result['frame_path_median_ms']:.2f} ms ({result['frame_path_over_score_median']:.2f}"
          f"x, pair by pair) |")
    print(f"| rows differing from the whole-base run | {differing} |")
    if args.compiled:
        result["compiled"] = compare_compiled(args.workdir, tables, bundle, ids)
    print("\n" + json.dumps(result))


def compare_compiled(workdir: Path, tables, bundle, ids: np.ndarray) -> dict:
    """One customer with the bundle and with its compiled copy, alternating call by call."""
    import shutil

    import churnkit as ck
    from churnkit.scoring.bundle import compile_bundle

    folder = workdir / "bundle-compiled"
    if not (folder / "compiled" / "compiled.json").exists():
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(workdir / "bundle", folder)
        compile_bundle(folder)
    fast = ck.ModelBundle.load(folder)
    fast.warm_up()
    full = ck.score(tables, as_of=AS_OF, bundle=fast)
    for cid in ids[:20]:
        ck.score(tables, as_of=AS_OF, bundle=fast, customer_ids=[cid])
    plain_ms, fast_ms, stages_plain, stages_fast = [], [], [], []
    differing = 0
    for cid in ids.tolist():
        for which, times, stages in ((bundle, plain_ms, stages_plain),
                                     (fast, fast_ms, stages_fast)):
            timings: dict[str, float] = {}
            t0 = time.perf_counter()
            one = ck.score(tables, as_of=AS_OF, bundle=which, customer_ids=[cid],
                           timings=timings)
            times.append(time.perf_counter() - t0)
            stages.append(timings["models_and_policy"])
        if not one.equals(full.loc[[cid]]):
            differing += 1
    out = {"plain_median_ms": median_ms(plain_ms), "compiled_median_ms": median_ms(fast_ms),
           "plain_stages_median_ms": median_ms(stages_plain),
           "compiled_stages_median_ms": median_ms(stages_fast),
           "compiled_over_plain_median": float(np.median(np.divide(fast_ms, plain_ms))),
           "compiled_rows_differing_from_its_whole_base": differing}
    print(f"\n| compiled bundle, alternating with the plain one | plain | compiled |\n"
          f"|---|---|---|\n"
          f"| median wall | {out['plain_median_ms']:.2f} ms | {out['compiled_median_ms']:.2f} "
          f"ms ({out['compiled_over_plain_median']:.2f}x pair by pair) |\n"
          f"| median models and policy | {out['plain_stages_median_ms']:.2f} ms | "
          f"{out['compiled_stages_median_ms']:.2f} ms |\n"
          f"| rows differing from its whole-base run | | {differing} |")
    return out


if __name__ == "__main__":
    main()
