"""The Markdown table of ``benchmarks/serve.py``: one row per measure, with churnkit's figure,
the floor's, their ratio and the target the service must meet (issue 16); latencies in ms."""

from __future__ import annotations

#: Per route: p50 and p99 (ms) that churnkit must not exceed at 100 requests/s, what a body holds.
LATENCY_TARGETS = {"score": (10, 30, "one customer"),
                   "score_events": (15, 40, "one customer's rows in the body")}
#: Highest step rate (requests/s) with >= 95% answered within 1 s that churnkit must reach.
RATE_TARGET = 500
#: Most RSS growth (%) over the soak.
RSS_GROWTH_TARGET = 5.0


def ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def lat(run: dict) -> str:
    """p50 / p90 / p99 (ms), errors and answers/s of one run."""
    errors = sum(run["errors"].values())
    return (f"{ms(run['p50_ms'])} / {ms(run['p90_ms'])} / {ms(run['p99_ms'])} ms; "
            f"{errors} errors; {run['achieved_rps']:.0f} answers/s")


def met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def report(args, summary: dict) -> None:
    """The Markdown table of a run: churnkit, the floor, their ratio, the issue's target."""
    lines = ["| measure | churnkit | floor | churnkit / floor | target |", "|---|---|---|---|---|"]
    for name, r in summary["in_process"].items():
        lines.append(f"| in process: {name}, median / p95 (CPU median) | {ms(r['median_ms'])} "
                     f"/ {ms(r['p95_ms'])} ms ({ms(r['cpu_median_ms'])} ms) | | | |")
    for route, (p50, p99, what) in LATENCY_TARGETS.items():
        churn, floor = summary[f"{route}/churnkit"], summary[f"{route}/floor"]
        ratio = summary["ratios_to_floor"][route]
        ok = (churn["p50_ms"] <= p50 and churn["p99_ms"] <= p99
              and not churn["errors"])
        lines.append(f"| HTTP /{route}, {what}, {args.rate:g} req/s for {args.duration:g} s: "
                     f"p50 / p90 / p99 | {lat(churn)} | {lat(floor)} | p50 ×{ratio['p50']:.1f}, "
                     f"p99 ×{ratio['p99']:.1f} | p50 ≤ {p50}, p99 ≤ {p99} ms, 0 errors: "
                     f"{met(ok)} |")
        cpu, floor_cpu = (r["service_cpu_ms_per_answer"] for r in (churn, floor))
        lines.append(f"| service CPU per answer during that run (/{route}) | {cpu:.1f} ms | "
                     f"{floor_cpu:.1f} ms | ×{cpu / floor_cpu:.1f} | |")
    soak = summary["soak"]
    if soak is not None:
        ok = not soak["errors"] and soak["rss_growth_pct"] < RSS_GROWTH_TARGET
        lines.append(f"| soak: /score at {args.soak_rate:g} req/s for {args.soak_seconds:g} s: "
                     f"errors; RSS of the process tree at the start → end (max) | "
                     f"{sum(soak['errors'].values())} errors; {soak['rss_start_mb']:,.0f} → "
                     f"{soak['rss_end_mb']:,.0f} MB ({soak['rss_max_mb']:,.0f}), "
                     f"{soak['rss_growth_pct']:+.1f}% | | | 0 errors, growth < "
                     f"{RSS_GROWTH_TARGET:g}%: {met(ok)} |")
    within = f"{args.within * 1000:g} ms" if args.within < 1 else f"{args.within:g} s"
    for row in summary["steps"]:
        cells = []
        for name in ("churnkit", "floor"):
            step = row.get(name)
            cells.append("—" if step is None else (
                f"{step['achieved_rps']:.0f} answers/s, {100 * step['within_share']:.1f}% "
                f"within {within}, p50 / p99 {ms(step['p50_ms'])} / {ms(step['p99_ms'])} ms, "
                f"{step['server_errors']} 5xx"))
        lines.append(f"| step {row['rate']:g} req/s for {args.step_duration:g} s | {cells[0]} | "
                     f"{cells[1]} | | |")
    lines.append(f"| highest step rate with ≥ 95% answered within {within}, no 5xx | "
                 f"{summary['accepted_rps']:g} req/s | {summary['floor_accepted_rps']:g} req/s "
                 f"| | ≥ {RATE_TARGET} req/s: {met(summary['accepted_rps'] >= RATE_TARGET)} |")
    lines.append(f"| highest step rate sustained (no errors, ≥ 95% of the rate answered, p99 ≤ "
                 f"{args.max_p99:g} s) | {summary['sustained_rps']:g} req/s | | | |")
    runs = [summary[k] for k in summary if k.endswith(("/churnkit", "/floor"))]
    runs += [s for row in summary["steps"] for s in (row.get("floor"), row.get("churnkit")) if s]
    runs += [soak] if soak is not None else []
    gen = summary["load_generator"]
    lines.append(f"| load generator alone (a bare asyncio server), {gen['offered_rps']:g} req/s "
                 f"for {args.step_duration:g} s | {gen['achieved_rps']:.0f} answers/s, "
                 f"{100 * gen['within_share']:.1f}% within {within}, p50 / p99 "
                 f"{ms(gen['p50_ms'])} / {ms(gen['p99_ms'])} ms; client CPU "
                 f"{gen['client_cpu_ms_per_request']:.2f} ms per request | | | |")
    worst = max(runs, key=lambda r: r["client_lag_p99_ms"])
    lines.append(f"| load generator: worst p99 lag behind schedule (at {worst['offered_rps']:g} "
                 f"req/s); its CPU per request there | {ms(worst['client_lag_p99_ms'])} ms; "
                 f"{worst['client_cpu_ms_per_request']:.2f} ms | | | |")
    m, shop = summary["machine"], summary["shop"]
    load = ", ".join(f"{x:.2f}" for x in m["load_average_start"])
    load_end = ", ".join(f"{x:.2f}" for x in m["load_average_end"])
    lines.append(f"| machine | {m['cpus_usable']} of {m['cpu_count']} cores ({m['cpu_model']}), "
                 f"{m['memory_gb']:g} GiB; load average {load} at the start, {load_end} at the "
                 f"end | | | |")
    lines.append(f"| shop | {shop['customers']:,} customers, {shop['total_rows']:,} rows, "
                 f"{shop['parquet_mb']:g} MB of Parquet; /score_events body median "
                 f"{shop['score_events_body_kb_median']:.1f} KB | | | |")
    lines.append(f"| command; code | `{summary['command']}`; {summary['code']['path']} at "
                 f"{summary['code']['commit']} | | | |")
    print("\n".join(lines))
