"""Writes notebooks/02_winback_campaigns.ipynb (outputs empty; tests/notebooks executes it).

Run ``.venv/bin/python notebooks/make_02_winback_campaigns.py`` after editing the cells below.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS = [
    ("md", """# Win-back campaigns: what worked, and which action to send next

What a CRM analyst and a data scientist do after every monthly win-back campaign:

1. measure the campaign against its randomized control group (docs/domain.md's campaign metrics,
   with bootstrap confidence intervals) and write the HTML report;
2. learn from all past campaigns which action moves which customer (uplift);
3. check, on a later campaign the model never saw, whether choosing actions by uplift pays
   more than the rules or a blanket discount;
4. put the uplift model into the bundle so scoring picks actions with it.

A small synthetic shop keeps this fast; its ground truth lets us check the answers."""),
    ("code", """import pandas as pd
from matplotlib.figure import Figure

import churnkit as ck
from churnkit.campaigns import campaign_ids, report_campaign, write_campaign_report
from churnkit.policy import choose_by_uplift, cost_frame, cost_function
from training.campaign_set import fit_uplift
from training.uplift import evaluate_uplift

pd.set_option("display.width", 160)"""),
    ("md", """## 1. A shop and its campaigns
Every month the synthetic shop targets customers inactive 30-180 days, holds out ~12% at random
and sends the rest a random action: a randomized experiment. A campaign id is the contacts'
`campaign` value (or the send month `YYYY-MM` when a shop leaves it empty)."""),
    ("code", """tables, truth = ck.synth.generate(3000, seed=3, start="2023-01-01", end="2025-07-01")
ids = campaign_ids(tables.contacts)
print(len(ids), "campaigns:", ids[0], "...", ids[-1])
tables.contacts.groupby("campaign")["group"].value_counts().unstack().tail(4)"""),
    ("md", """## 2. One campaign against its control group
`report_campaign` gives each docs/domain.md metric for the treatment and the control group and the
increment, with 95% bootstrap intervals; `churnkit report --data DIR --campaign ID` writes the
same as HTML."""),
    ("code", """campaign = ids[-4]
metrics = report_campaign(tables, campaign, n_boot=500)
metrics.table[["treatment", "control", "difference", "difference_low", "difference_high"]].round(3)"""),
    ("code", """metrics.by_action.round(3)"""),
    ("code", """path = write_campaign_report(metrics, "campaign.html")
print("wrote", path, path.stat().st_size // 1024, "KiB")"""),
    ("md", """One campaign of a small shop is noisy: most per-action intervals include zero. Pooling all
campaigns into an uplift model is what makes per-customer effects measurable.

## 3. Learn from the holdouts, check on a later campaign
`evaluate_uplift` fits on every campaign closed before the last one, then compares policies on
that held-out campaign: incremental profit per 1000 targeted customers, from the campaign's own
random arms (IPW, noisy at this size) and, because the shop is synthetic, from the true
responses (`profit_per_1000_true`: as the campaigns sent; `_best_slot`: at each customer's best
channel and hour)."""),
    ("code", """ev = evaluate_uplift(tables, as_of="2025-07-01", truth=truth, n_boot=50)
print("held out:", ev.holdout, "-", ev.n_customers, "customers; trained on",
      len(ev.train_campaigns), "campaigns")
ev.policies[["contacted_share", "cost_per_1000", "profit_per_1000_true",
             "profit_per_1000_true_best_slot", "profit_per_1000_ipw"]].round(0)"""),
    ("code", """print(ev.ratios())
print("Spearman(predicted, true uplift):", ev.uplift_vs_truth.round(2).to_dict())"""),
    ("md", """Qini curves on the held-out campaign: customers ranked by predicted uplift of an action,
cumulative incremental returns against the control group (per treated contact)."""),
    ("code", """fig = Figure(figsize=(6, 4), layout="constrained")
ax = fig.add_subplot()
for action, curve in ev.qini.groupby("action"):
    ax.plot(curve["share"], curve["qini"], label=action)
ax.axhline(0, color="#999999", linewidth=1)
ax.set(xlabel="share of contacts (highest predicted uplift first)",
       ylabel="incremental returns per treated contact")
ax.legend(fontsize=7)
fig"""),
    ("md", """## 4. The uplift model in the bundle
Fit on every campaign closed by the training cutoff, then attach it:
`bundle = dataclasses.replace(bundle, uplift=model)`. Scoring passes its predictions to the
policy (`decide(..., uplift=...)`), which picks the action with the highest
`uplift × value − cost` among those the rules allow, or no contact when none pays; value is
in margin (revenue × the policy's gross-margin share, docs/policy.md "Money in margin"), the
costs are sized on revenue. Here the choice alone, for customers inactive 30-180 days today:"""),
    ("code", """model = fit_uplift(tables, as_of="2025-07-01")
features = ck.build_features(tables, as_of="2025-07-01")
targets = features[features["days_since_last_order"].between(30, 180)]
uplift = model.predict(targets)
revenue = targets["mean_basket"].fillna(0) * (targets["orders_365d"] * 90 / 365).clip(lower=1)
margin = revenue * ck.PolicyConfig.default().gross_margin.default
choice = choose_by_uplift(uplift, margin, cost_frame(cost_function(), revenue, uplift.columns))
choice["action"].value_counts()"""),
    ("code", """choice.sort_values("expected_incremental_profit", ascending=False).head(10).round(1)"""),
]


def build() -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python",
                                  "name": "python3"}, "language_info": {"name": "python"}}
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src)
                for kind, src in CELLS]
    return nb


if __name__ == "__main__":
    target = Path(__file__).with_name("02_winback_campaigns.ipynb")
    nbformat.write(build(), target)
    print("wrote", target)
