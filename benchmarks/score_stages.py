"""Benchmark of the scoring stages after the features (issue 16, part 2): ``score_features`` for
one customer and for a large frame.

Builds its fixture once in ``--workdir`` and reuses it: a synthetic shop
(``ck.synth.generate(--customers, seed=--seed, 2023-01-01 .. 2025-07-01)``), a bundle with every
stage (churn model, timing, value, uplift, policy) trained by ``training.pipeline.train`` (2
Optuna trials, ``--threads``), and the shop's feature frame as of 2025-07-01 built with the
bundle's population fit. Then, in this process:

1. **one customer**: ``--rows`` different customers, each a one-row frame
   ``features.iloc[[i]]`` (cut before the clock starts), scored once each after a warm-up:
   median, p95 and mean wall time and CPU time per call. With ``--passes k`` every customer is
   scored k times and the per-customer minimum is reported too (robust to a busy machine);
2. **per stage** (``--stages``): CPU time per call of each stage that exists in the code
   being measured (nested stages are counted in their parents too);
3. **many customers**: the feature frame tiled to ``--big`` rows with fresh ids, one call:
   wall and CPU time, peak RSS.

Only public names of churnkit are needed, so the same script measures an older checkout
(``PYTHONPATH=/path/to/checkout``): the before and after of ``benchmarks/RESULTS.md`` come from
it. Run: ``.venv/bin/python benchmarks/score_stages.py`` (first run ~5 minutes for the fixture).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import platform
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

AS_OF = pd.Timestamp("2025-07-01", tz="UTC")
#: (module, attribute) of the stages timed with ``--stages``; those absent are skipped.
STAGES = (
    ("churnkit.data.columns", "FeatureColumns.from_frame"),
    ("churnkit.data.frames", "model_matrix"),
    ("churnkit.models.churn", "ChurnModel.predict_proba"),
    ("churnkit.models.churn", "ChurnModel.predict_proba_design"),
    ("churnkit.models.churn", "ChurnModel.contributions"),
    ("churnkit.models.churn", "ChurnModel.contributions_design"),
    ("churnkit.scoring.score", "top_drivers"),
    ("churnkit.scoring.score", "_top_drivers"),
    ("churnkit.models.timing.model", "TimingModel.predict"),
    ("churnkit.models.timing.model", "TimingModel.predict_columns"),
    ("churnkit.models.value", "ValueModel.predict_frame"),
    ("churnkit.models.value", "ValueModel.predict_columns"),
    ("churnkit.models.uplift", "UpliftModel.predict"),
    ("churnkit.models.uplift", "UpliftModel.predict_columns"),
    ("churnkit.policy.rules", "decide"),
    ("churnkit.policy.rules", "decide_columns"),
    ("churnkit.scoring.score", "_frame"),
)


def fixture(workdir: Path, n_customers: int, seed: int, threads: int):
    """The bundle and the feature frame (built on the first run, read back afterwards)."""
    import churnkit as ck
    from training.config import TrainConfig
    from training.pipeline import train

    bundle_path, features_path = workdir / "bundle", workdir / "features.pkl"
    if not (bundle_path / "bundle.json").exists():
        workdir.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        tables, truth = ck.synth.generate(n_customers, seed=seed, start="2023-01-01",
                                          end="2025-07-01")
        config = TrainConfig.load(trials=2, bootstrap=20, threads=threads, train_cutoffs=2,
                                  models_dir=workdir / "models",
                                  tracking_uri=f"sqlite:///{workdir / 'mlruns.db'}",
                                  name="score-stages")
        result = train(tables, as_of=AS_OF, config=config, truth=truth,
                       created_at=pd.Timestamp("2025-07-02T00:00:00Z"))
        result.bundle.save(bundle_path, overwrite=True)
        features = ck.build_features(tables, as_of=AS_OF, population=result.bundle.population)
        features.attrs = {}
        features.to_pickle(features_path)
        print(f"fixture: {n_customers:,} customers, bundle and features built in "
              f"{time.perf_counter() - t:.0f} s ({workdir})", flush=True)
    return ck.ModelBundle.load(bundle_path), pd.read_pickle(features_path)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def one_customer(score, bundle, features: pd.DataFrame, rows: int, passes: int) -> dict:
    """Wall and CPU milliseconds of ``score`` on one-row frames of ``rows`` customers."""
    picked = np.sort(np.random.default_rng(0).choice(len(features), rows, replace=False))
    frames = [features.iloc[[i]] for i in picked]
    if hasattr(bundle, "warm_up"):
        bundle.warm_up()
    for frame in frames[:20]:
        score(frame, bundle, as_of=AS_OF)
    wall = np.full((passes, rows), np.inf)
    cpu = np.full((passes, rows), np.inf)
    for p in range(passes):
        for k, frame in enumerate(frames):
            c0, t0 = time.thread_time(), time.perf_counter()
            score(frame, bundle, as_of=AS_OF)
            wall[p, k], cpu[p, k] = time.perf_counter() - t0, time.thread_time() - c0
    first = wall[0].tolist()
    out = {"customers": rows, "median_ms": percentile(first, 50), "p95_ms": percentile(first, 95),
           "mean_ms": float(np.mean(first)) * 1000,
           "cpu_median_ms": percentile(cpu[0].tolist(), 50)}
    if passes > 1:
        out["passes"] = passes
        out["min_of_passes_median_ms"] = percentile(wall.min(axis=0).tolist(), 50)
        out["min_of_passes_p95_ms"] = percentile(wall.min(axis=0).tolist(), 95)
    return out


def per_stage(score, bundle, features: pd.DataFrame, rows: int) -> dict[str, float]:
    """CPU milliseconds per call of each stage of :data:`STAGES` present in this code."""
    spent: dict[str, float] = defaultdict(float)
    undo = []
    for module_name, path in STAGES:
        try:
            owner = importlib.import_module(module_name)
        except ImportError:
            continue
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent, None)
        static = owner.__dict__.get(name) if owner is not None else None
        if static is None:
            continue
        method = isinstance(static, classmethod | staticmethod)
        func = static.__func__ if method else static

        def timed(*args, _func=func, _label=path, **kwargs):
            start = time.thread_time()
            try:
                return _func(*args, **kwargs)
            finally:
                spent[_label] += time.thread_time() - start

        wrapper = functools.wraps(func)(timed)
        setattr(owner, name, type(static)(wrapper) if method else wrapper)
        undo.append((owner, name, static))
        for module in list(sys.modules.values()):  # names imported elsewhere
            if getattr(module, "__name__", "").startswith("churnkit") and \
                    module.__dict__.get(name) is func:
                setattr(module, name, wrapper)
                undo.append((module, name, func))
    picked = np.sort(np.random.default_rng(1).choice(len(features), rows, replace=False))
    frames = [features.iloc[[i]] for i in picked]
    try:
        for frame in frames:
            score(frame, bundle, as_of=AS_OF)
    finally:
        for owner, name, value in reversed(undo):
            setattr(owner, name, value)
    return {k: 1000 * v / rows for k, v in sorted(spent.items(), key=lambda kv: -kv[1])}


def many_customers(score, bundle, features: pd.DataFrame, n: int) -> dict:
    """One call on ``n`` rows (the frame tiled, fresh ids): seconds and peak RSS (GB)."""
    big = pd.concat([features] * -(-n // len(features)), ignore_index=True).iloc[:n]
    big.index = pd.Index(np.arange(n), name="customer_id")
    c0, t0 = time.process_time(), time.perf_counter()
    score(big, bundle, as_of=AS_OF)
    return {"customers": n, "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def fixture_parser(description: str, rows: int) -> argparse.ArgumentParser:
    """The options of :func:`fixture` (and ``--rows``, customers scored one by one)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/churnkit-score-stages"))
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=int, default=rows, help="customers scored one by one")
    return parser


def main() -> None:
    parser = fixture_parser(__doc__.split("\n\n")[0], rows=300)
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--stages", action="store_true", help="CPU time per stage")
    parser.add_argument("--big", type=int, default=100_000, help="rows of the large call (0: none)")
    args = parser.parse_args()

    from churnkit.scoring import score_features

    bundle, features = fixture(args.workdir, args.customers, args.seed, args.threads)
    load = os.getloadavg()[0]
    result = {"code": str(Path(sys.modules["churnkit"].__file__).parent.parent),
              "load_at_start": round(load, 2),
              "one": one_customer(score_features, bundle, features, args.rows, args.passes)}
    if args.stages:
        result["stages_cpu_ms"] = per_stage(score_features, bundle, features, args.rows)
    if args.big:
        result["many"] = many_customers(score_features, bundle, features, args.big)
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                         "processor": platform.processor() or platform.machine()}

    one = result["one"]
    print(f"\n`score_features`, code at {result['code']}, load {load:.1f}\n")
    print("| measure | value |\n|---|---|")
    print(f"| one customer ({one['customers']} customers), median / p95 / mean wall | "
          f"{one['median_ms']:.2f} / {one['p95_ms']:.2f} / {one['mean_ms']:.2f} ms |")
    print(f"| one customer, median CPU | {one['cpu_median_ms']:.2f} ms |")
    if "passes" in one:
        print(f"| one customer, min of {one['passes']} passes: median / p95 wall | "
              f"{one['min_of_passes_median_ms']:.2f} / {one['min_of_passes_p95_ms']:.2f} ms |")
    for stage, ms in result.get("stages_cpu_ms", {}).items():
        print(f"| stage `{stage}`, CPU per call | {ms:.3f} ms |")
    if "many" in result:
        many = result["many"]
        print(f"| {many['customers']:,} customers in one call: wall / CPU / peak RSS | "
              f"{many['wall_s']:.1f} s / {many['cpu_s']:.1f} s / {many['peak_rss_gb']:.2f} GB |")
    print("\n" + json.dumps(result))


if __name__ == "__main__":
    main()
