"""``churnkit demo`` (what ``make demo`` runs): the main job on an embedded synthetic shop.

synthetic shop -> validate -> features -> train and evaluate against the baselines -> score
the whole base -> the customers to act on, with their risk and the reasons behind it.
Everything lands in one work directory (default ``demo/``): the shop, the bundle, the HTML
report and the MLflow store. A second run reuses the shop when its recipe is unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from churnkit.cli import cli_errors, err, out

START, END = "2023-01-01", "2025-07-01"


def _ensure_shop(directory: Path, customers: int, seed: int):
    import churnkit as ck

    wanted = {"n_customers": customers, "seed": seed, "start": START, "end": END}
    if ck.synth.read_recipe(directory) == wanted:
        out.print(f"Reusing the synthetic shop in {directory} ({customers:,} customers, seed "
                  f"{seed})")
        return
    from churnkit.atomic import atomic_directory

    with err.status(f"Simulating {customers:,} customers from {START} to {END}..."):
        tables, _ = ck.synth.generate(customers, seed=seed, start=START, end=END)
    with atomic_directory(directory, overwrite=True) as tmp:
        ck.save_tables(tables, tmp)
        ck.synth.write_recipe(tmp, **wanted)
    out.print(f"Generated {directory}: " + ", ".join(f"{k} {v:,}" for k, v in
                                                    tables.n_rows().items()))


def _drivers_text(drivers: list[dict]) -> str:
    parts = []
    for d in drivers[:2]:
        value = d["value"]
        shown = value if isinstance(value, str) or value is None else f"{value:.3g}"
        parts.append(f"{d['feature']}={shown}")
    return "; ".join(parts)


def demo(
    customers: Annotated[int, typer.Option("--customers", min=500)] = 20_000,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    trials: Annotated[int, typer.Option("--trials", min=1)] = 10,
    workdir: Annotated[Path, typer.Option("--workdir")] = Path("demo"),
    top: Annotated[int, typer.Option("--top", min=1)] = 12,
) -> None:
    """Synthetic shop -> validate -> train -> score -> the customers to act on."""
    import churnkit as ck
    from churnkit.console import print_frame, print_shop_summary
    from churnkit.summary import summarize
    from training.cli import _progress
    from training.run import run_training

    with cli_errors():
        shop = workdir / "shop"
        out.rule("1. The shop")
        _ensure_shop(shop, customers, seed)
        tables = ck.load_tables(shop)
        print_shop_summary(out, summarize(tables, as_of=END))

        out.rule(f"2. Train and evaluate (as of {END}, {trials} Optuna trials)")
        _, bundle_path, _ = run_training(
            data=shop, as_of=END, register="churn-demo", progress=_progress(),
            config_path=None, console=out,
            overrides={"trials": trials, "seed": seed, "name": "churn-demo",
                       "models_dir": workdir / "models",
                       "tracking_uri": f"sqlite:///{(workdir / 'mlruns.db').resolve()}",
                       "experiment": "churnkit-demo"},
        )

        out.rule(f"3. Score the whole base as of {END}")
        bundle = ck.ModelBundle.load(bundle_path)
        scored = ck.score(tables, as_of=END, bundle=bundle)
        features = ck.build_features(tables, as_of=END, population=bundle.population)
        counts = scored.groupby(["risk_band", "activity"]).size().unstack(fill_value=0)
        print_frame(out, counts, title="Customers by risk band and activity", index_name="band")

        # Worth acting on (DOMAIN.md): customers still reachable (not lapsed for good), who have
        # bought before, ranked by risk x what they have spent in the last year.
        reachable = scored[(scored["activity"] != "lapsed") & (scored["segment"] != "prospect")]
        value = features.loc[reachable.index, "revenue_365d"]
        ranked = reachable.assign(value_365d=value,
                                  priority=reachable["churn_probability"] * value)
        picks = ranked.sort_values("priority", ascending=False).head(top)
        view = pd.DataFrame({
            "p(churn)": picks["churn_probability"],
            "band": picks["risk_band"],
            "segment": picks["segment"],
            "activity": picks["activity"],
            "days idle": features.loc[picks.index, "days_since_last_order"].round(),
            "orders": features.loc[picks.index, "orders_lifetime"],
            "spent 365d": picks["value_365d"].round(),
            "why (top drivers)": [_drivers_text(d) for d in picks["top_drivers"]],
        })
        print_frame(out, view, index_name="customer",
                    title=f"The {top} customers to act on first (risk x last year's spend)")
    out.print(f"Report: {bundle_path / 'evaluation.html'}  |  MLflow: .venv/bin/mlflow ui "
              f"--backend-store-uri sqlite:///{workdir / 'mlruns.db'}")
