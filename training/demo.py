"""``churnkit demo`` (what ``make demo`` runs): the main job on an embedded synthetic shop.

synthetic shop -> validate -> train and evaluate (churn, timing, value, uplift) against their
baselines -> the nightly batch job scores the whole base -> the customers to act on, with action,
reason, timing and channel -> the last campaign's report -> one call to the scoring service.
Everything lands in one work directory (default ``demo/``): the shop, the bundle, the HTML
report and the MLflow store. A second run reuses the shop when its recipe is unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import numpy as np
import pandas as pd
import typer

import churnkit as ck
from churnkit.campaigns import campaign_report_command
from churnkit.cli import cli_errors, err, out, print_frame, print_shop_summary
from churnkit.data import summarize
from churnkit.io import atomic_directory, progress_bar
from churnkit.jobs import print_summary, run_batch
from churnkit.scoring import compile_bundle, read_scores
from training.campaign_set import closed_campaigns
from training.run import run_training
from training.verbosity import set_library_verbosity, verbose_requested

START, END = "2023-01-01", "2025-07-01"


def _ensure_shop(directory: Path, customers: int, seed: int):
    wanted = {"n_customers": customers, "seed": seed, "start": START, "end": END}
    if ck.synth.read_recipe(directory) == {**wanted, "generator": ck.synth.GENERATOR_VERSION}:
        out.print(f"Reusing the synthetic shop in {directory} ({customers:,} customers, seed "
                  f"{seed})")
        return
    with err.status(f"Simulating {customers:,} customers from {START} to {END}..."):
        tables, _ = ck.synth.generate(customers, seed=seed, start=START, end=END)
    with atomic_directory(directory, overwrite=True) as tmp:
        ck.save_tables(tables, tmp)
        ck.synth.write_recipe(tmp, **wanted)
    out.print(f"Generated {directory}: " + ", ".join(f"{k} {v:,}" for k, v in
                                                    tables.n_rows().items()))


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _action_view(picks: pd.DataFrame) -> pd.DataFrame:
    """The columns a CRM manager reads, from the batch job's rows."""
    def when(row: pd.Series) -> str:
        if pd.isna(row["contact_date"]):
            return "-"
        return (f"{row['contact_date']:%Y-%m-%d} {WEEKDAYS[int(row['contact_weekday'])]} "
                f"{int(row['contact_hour_local']):02d}:00 local")

    return pd.DataFrame({
        "p(churn)": picks["churn_probability"],
        "segment": picks["segment"],
        "cause": picks["cause"],
        "action": picks["action"],
        "when": [when(r) for _, r in picks.iterrows()],
        "channel": picks["channel"].fillna("-"),
        "value": picks["expected_value"].round() if "expected_value" in picks else np.nan,
        "cost": picks["action_cost"].round(),
        "top driver": [d[0].get("text") or d[0]["feature"] if d else "-"
                       for d in picks["top_drivers"]],
    }, index=picks.index)


def _last_campaign(tables) -> str | None:
    """The latest campaign whose attribution window closed by the end of the data."""
    closed = closed_campaigns(tables, as_of=END) if tables.contacts is not None else []
    return closed[-1] if closed else None


def _ask_service(bundle_path: Path, shop: Path, ids: list) -> None:
    """Start `churnkit serve` on a free port, POST /score for ``ids``, show the answer, stop."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "churnkit", "serve", "--model", str(bundle_path),
               "--data", str(shop), "--port", str(port)]
    # One worker: /readyz answers for the worker that takes it, and with several the call
    # after it could reach one still loading the bundle.
    out.print("$ CHURNKIT_WORKERS=1 churnkit serve --model "
              + f"{bundle_path} --data {shop} --port {port}")
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env={**os.environ, "CHURNKIT_WORKERS": "1"})
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError("the service stopped: "
                                   + server.stderr.read().decode(errors="replace")[-500:])
            with contextlib.suppress(httpx.HTTPError):  # not listening yet: ask again
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        else:
            raise RuntimeError("the service did not become ready within 120 s")
        body = {"customer_ids": [*ids, "no-such-customer"], "as_of": f"{END}T00:00:00Z"}
        out.print(f"$ curl -X POST {base}/score -d '{json.dumps(body)}'")
        answer = httpx.post(f"{base}/score", json=body, timeout=60).json()
        for customer in answer.get("customers", []):
            customer.pop("top_drivers", None)  # shown above, in words
        out.print_json(data=answer)
        _http_latency(base, ids)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def _caps_at_work(scored, tables: ck.Tables, bundle: ck.ModelBundle) -> None:
    """How many customers the contact caps hold back tonight; and, to show them at work, what
    they would do three days after the shop's last campaign went out."""
    caps = bundle.policy.contact_caps if bundle.policy is not None else None
    if caps is None or not caps.active or tables.contacts is None:
        return
    held = lambda frame: frame[frame["action_reason"].astype(str).str.contains("capped: ")]  # noqa: E731
    line = (f"Contact caps (at most {caps.max_messages} messages in {caps.window_days:g} days, "
            f"{caps.min_gap_days:g} days apart): {len(held(scored)):,} customers held back "
            "tonight")
    sent = tables.contacts[tables.contacts["group"] == "treatment"]
    day = (sent["sent_at"].max() + pd.Timedelta(days=3)).floor("D")
    recent = sent[sent["sent_at"] >= day - pd.Timedelta(days=caps.window_days)]
    ids = recent["customer_id"].drop_duplicates().head(2000).tolist()
    then = held(ck.score(tables, as_of=day, bundle=bundle, customer_ids=ids))
    line += (f"; as of {day:%Y-%m-%d}, 3 days after the last campaign went out, they would hold "
             f"back {len(then):,} of {len(ids):,} of its recipients")
    out.print(line)
    if len(then):
        at_risk = then[~then["action_reason"].astype(str).str.startswith("Not at risk")]
        customer, row = next(iter((at_risk if len(at_risk) else then).iterrows()))
        out.print(f"  e.g. {customer}: {row['action_reason']}")


def _in_process_latency(tables: ck.Tables, bundle: ck.ModelBundle, ids: list) -> None:
    """One customer at a time through :func:`churnkit.score`, as the service scores: median and
    p95 of ``len(ids)`` customers."""
    bundle.warm_up()
    ck.shop_arrays(tables)  # the service converts its store once, at start
    for cid in ids[:5]:
        ck.score(tables, as_of=END, bundle=bundle, customer_ids=[cid])
    times = []
    for cid in ids:
        t0 = time.perf_counter()
        ck.score(tables, as_of=END, bundle=bundle, customer_ids=[cid])
        times.append(1000 * (time.perf_counter() - t0))
    out.print(f"One customer in process (ck.score, {len(ids)} customers): median "
              f"{np.median(times):.1f} ms, p95 {np.percentile(times, 95):.1f} ms")


def _http_latency(base: str, ids: list, n: int = 100) -> None:
    """``n`` one-customer /score calls in a row: the latency a backend service sees."""
    times = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for k in range(n):
            body = {"customer_ids": [ids[k % len(ids)]], "as_of": f"{END}T00:00:00Z"}
            t0 = time.perf_counter()
            client.post("/score", json=body).raise_for_status()
            times.append(1000 * (time.perf_counter() - t0))
    out.print(f"One customer over HTTP ({n} calls in a row): p50 {np.median(times):.1f} ms, "
              f"p99 {np.percentile(times, 99):.1f} ms")


def demo(
    customers: Annotated[int, typer.Option("--customers", min=500)] = 20_000,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    trials: Annotated[int, typer.Option("--trials", min=1)] = 10,
    workdir: Annotated[Path, typer.Option("--workdir")] = Path("demo"),
    top: Annotated[int, typer.Option("--top", min=1)] = 12,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show the libraries' own logs and "
                                          "progress bars (also: CHURNKIT_VERBOSE=1).")] = False,
) -> None:
    """Synthetic shop -> train -> nightly batch -> customers to act on -> campaign -> service."""
    set_library_verbosity(verbose_requested(verbose))
    with cli_errors():
        shop = workdir / "shop"
        out.rule("1. The shop")
        _ensure_shop(shop, customers, seed)
        tables = ck.load_tables(shop)
        print_shop_summary(out, summarize(tables, as_of=END))

        out.rule(f"2. Train and evaluate (as of {END}, {trials} Optuna trials)")
        _, bundle_path, _ = run_training(
            data=shop, as_of=END, register="churn-demo", progress=progress_bar(err),
            config_path=None, console=out,
            overrides={"trials": trials, "seed": seed, "name": "churn-demo",
                       "models_dir": workdir / "models",
                       "tracking_uri": f"sqlite:///{(workdir / 'mlruns.db').resolve()}",
                       "experiment": "churnkit-demo"},
        )

        out.rule(f"3. The nightly batch job: every customer as of {END}")
        t0 = time.perf_counter()
        with err.status("Compiling the bundle's forests to machine code..."):
            n = compile_bundle(bundle_path)
        out.print(f"`churnkit compile`: {n} forests compiled to machine code in "
                  f"{time.perf_counter() - t0:.0f} s (once per bundle); the batch job and the "
                  "service predict through them")
        scores_path = workdir / "scores.parquet"
        # Shards of 5,000 so that the demo's 20k customers spread over the worker processes
        # (one per core), as a large base does with the default 50,000.
        result = run_batch(shop, model=bundle_path, as_of=END, out=scores_path, console=err,
                           work_dir=workdir / "scores.work", shard_size=5_000)
        print_summary(out, result)

        out.rule("4. The customers to act on, with action, reason, timing and channel")
        scored = read_scores(scores_path)
        print_frame(out, scored.groupby(["cause", "action"]).size().unstack(fill_value=0),
                    title="Customers by likely cause of leaving and action", index_name="cause")
        act = scored[scored["action"] != "do_not_contact"]
        picks = act.sort_values("priority", ascending=False).head(top)
        print_frame(out, _action_view(picks), index_name="customer", float_format="{:,.2f}",
                    title=f"The {top} customers to act on first (policy priority)")
        for customer, row in picks.head(3).iterrows():
            out.print(f"[bold]{customer}[/]: {row['action_reason']}  |  why at risk: "
                      + "; ".join(d.get("text") or d["feature"] for d in row["top_drivers"]))
        bundle = ck.ModelBundle.load(bundle_path)  # the saved bundle, as the service loads it
        _caps_at_work(scored, tables, bundle)

        out.rule("5. Which action pays: the last campaign against its control group")
        campaign = _last_campaign(tables)
        if campaign is not None:
            _, report = campaign_report_command(shop, campaign, workdir / "campaign.html",
                                                window_days=30, n_boot=200, seed=seed)
            out.print(f"Campaign report for {campaign}: {report}")

        out.rule("6. The scoring service: one customer in milliseconds")
        sample = scored.index.to_numpy()[:: max(1, len(scored) // 200)][:200]
        _in_process_latency(tables, bundle, [c.item() if hasattr(c, "item") else c
                                                  for c in sample])
        _ask_service(bundle_path, shop, [c.item() if hasattr(c, "item") else c
                                          for c in picks.index[:2]])
    out.print(f"Report: {bundle_path / 'evaluation.html'}  |  MLflow: .venv/bin/mlflow ui "
              f"--backend-store-uri sqlite:///{workdir / 'mlruns.db'}")
