"""A self-contained HTML report of one win-back campaign against its control group.

Same style as the training report (``training/report.py``): no network, inline CSS, every
figure an inline base64 PNG drawn on a plain :class:`matplotlib.figure.Figure` (no pyplot).
The numbers come from :func:`churnkit.campaigns.metrics.report_campaign`; docs/domain.md's targets
are shown beside them.
"""

from __future__ import annotations

import math
from pathlib import Path

import jinja2
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from churnkit.campaigns.metrics import METRIC_LABELS, CampaignMetrics, report_campaign
from churnkit.data.validation import validate
from churnkit.io.atomic import atomic_file
from churnkit.io.files import load_tables
from churnkit.io.html import page_foot, page_head, png_base64

_TREAT, _CONTROL = "#c0392b", "#7f8c8d"
#: docs/domain.md "Measuring win-back" targets, as (test on the treatment value, words).
TARGETS = {
    "winback_rate": (lambda v: v >= 0.15, "≥ 15% good, < 10% rethink (retail 10-20%)"),
    # docs/domain.md's ROI target is stated for its revenue formula: judged on that one.
    "roi_revenue": (lambda v: v > 3.0, "> 300% good; scale up when > 200%"),
    "basket_vs_before": (lambda v: v >= 1.2, "≥ 120% of their previous average"),
    "days_to_first_order": (lambda v: v <= 30, "≤ 30 days"),
    "repeat_purchase_rate": (lambda v: v > 0.4, "> 40%"),
}
_PERCENT = {"winback_rate", "repeat_purchase_rate", "roi", "incremental_roi", "roi_revenue",
            "basket_vs_before"}

_EXTRA_CSS = """\
td.ok{background:#eafaf1} td.bad{background:#fdecea}
.warn{padding:.6em .9em;background:#fff6e0;border-left:4px solid #e67e22}
"""
_TEMPLATE = page_head(_EXTRA_CSS) + """\
<header id="header">
<h1>{{ title }}</h1>
<table class="facts">
<tr><th>campaign</th><td>{{ m.campaign }}</td></tr>
<tr><th>sent (UTC)</th><td>{{ sent }}</td></tr>
<tr><th>contacted (treatment)</th><td class="num">{{ "{:,}".format(m.n_treatment) }}</td></tr>
<tr><th>held out (control)</th><td class="num">{{ "{:,}".format(m.n_control) }}
 ({{ "%.1f"|format(100 * m.n_control / (m.n_treatment + m.n_control)) }}%)</td></tr>
<tr><th>campaign cost</th><td class="num">{{ "{:,.0f}".format(m.total_cost) }}</td></tr>
<tr><th>revenue window</th><td>{{ m.window_days }} days after each send</td></tr>
</table>
{% if not m.complete %}<p class="warn">The data ends before the last contact's
{{ m.window_days }}-day window does: revenue and repeat figures are still growing.</p>{% endif %}
<p class="verdict">{{ verdict }}</p>
</header>

<section id="metrics"><h2>Campaign metrics against the control group</h2>
<p class="muted">Point value [{{ "%.0f"|format(100 * m.level) }}% bootstrap interval,
{{ m.n_boot }} resamples of each group]. "Returned" follows the data contract's attribution
rule, the same for both groups. Increment = treatment − control.</p>
<table class="metrics"><tr><th>metric</th><th>treatment</th><th>control</th>
<th>increment</th><th>cited target</th></tr>
{% for r in rows %}<tr><td>{{ r.label }}</td><td class="num {{ r.status }}">{{ r.treatment }}</td>
<td class="num">{{ r.control }}</td><td class="num">{{ r.difference }}</td>
<td class="muted">{{ r.target }}</td></tr>
{% endfor %}</table>
</section>

<section id="actions"><h2>By action</h2>
<table class="actions"><tr><th>action</th><th>contacted</th><th>win-back rate</th>
<th>uplift vs control</th><th>cost</th></tr>
{% for r in actions %}<tr><td>{{ r.action }}</td><td class="num">{{ r.contacted }}</td>
<td class="num">{{ r.rate }}</td><td class="num">{{ r.uplift }}</td>
<td class="num">{{ r.cost }}</td></tr>{% endfor %}
</table></section>

<section id="plots"><h2>Plots</h2>
{% for fig in figures %}<figure id="fig-{{ fig.id }}">
<img class="figure" alt="{{ fig.caption }}" src="data:image/png;base64,{{ fig.png }}">
<figcaption>{{ fig.caption }}</figcaption></figure>
{% endfor %}</section>
""" + page_foot()


def write_campaign_report(metrics: CampaignMetrics, path: str | Path, *,
                          title: str | None = None) -> Path:
    """Render :func:`render_campaign_report` to ``path`` atomically."""
    html = render_campaign_report(metrics, title=title)
    with atomic_file(path) as tmp:
        Path(tmp).write_text(html, encoding="utf-8")
    return Path(path)


def render_campaign_report(metrics: CampaignMetrics, *, title: str | None = None) -> str:
    """The report as one HTML string."""
    m = metrics
    o = m.outcomes
    sent = f"{o['sent_at'].min():%Y-%m-%d %H:%M} … {o['sent_at'].max():%Y-%m-%d %H:%M}"
    rows = []
    for name, r in m.table.iterrows():
        test, target = TARGETS.get(name, (None, ""))
        status = ""
        if test is not None and math.isfinite(r["treatment"]):
            status = "ok" if test(r["treatment"]) else "bad"
        rows.append({"label": METRIC_LABELS.get(name, name), "status": status, "target": target,
                     "treatment": _fmt(name, r["treatment"], r["treatment_low"],
                                       r["treatment_high"]),
                     "control": _fmt(name, r["control"], r["control_low"], r["control_high"]),
                     "difference": _fmt(name, r["difference"], r["difference_low"],
                                        r["difference_high"], signed=True)})
    actions = [{"action": a, "contacted": f"{int(r['contacted']):,}",
                "rate": f"{100 * r['winback_rate']:.1f}%",
                "uplift": f"{100 * r['uplift']:+.1f} pp [{100 * r['uplift_low']:+.1f}, "
                          f"{100 * r['uplift_high']:+.1f}]",
                "cost": f"{r['cost']:,.0f}"} for a, r in m.by_action.iterrows()]
    figures = [
        {"id": "winback", "caption": "Win-back rate by group (95% interval)",
         "png": png_base64(_rate_plot(m))},
        {"id": "actions", "caption": "Uplift of each action over the control group",
         "png": png_base64(_action_plot(m))},
        {"id": "timeline", "caption": "Share returned by days since the send",
         "png": png_base64(_timeline_plot(m))},
    ]
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_TEMPLATE).render(
        title=title or f"Win-back campaign {m.campaign}", m=m, sent=sent, rows=rows,
        actions=actions, figures=figures, verdict=_verdict(m))


def _verdict(m: CampaignMetrics) -> str:
    r = m.table.loc["winback_rate"]
    lo, hi = r["difference_low"], r["difference_high"]
    effect = f"{100 * r['difference']:+.1f} percentage points [{100 * lo:+.1f}, {100 * hi:+.1f}]"
    if lo > 0:
        head = f"The campaign brought customers back: win-back rate {effect} over control."
    elif hi < 0:
        head = f"Fewer contacted customers came back than held-out ones: {effect}."
    else:
        head = (f"No effect distinguishable from the control group: {effect} (the interval "
                "includes zero).")
    cost = m.table.loc["cost_per_incremental_return", "treatment"]
    tail = (f" Cost per incremental returned customer: {cost:,.0f}." if math.isfinite(cost)
            else "")
    return head + tail


def _fmt(name: str, value: float, low: float, high: float, signed: bool = False) -> str:
    if not math.isfinite(value):
        return "—"
    sign = "+" if signed else ""
    if name in _PERCENT:
        text = f"{100 * value:{sign}.1f}" + (" pp" if signed else "%")
        band = (f" [{100 * low:{sign}.1f}, {100 * high:{sign}.1f}]"
                if math.isfinite(low) and math.isfinite(high) else "")
    else:
        text = f"{value:{sign},.1f}"
        band = (f" [{low:{sign},.1f}, {high:{sign},.1f}]"
                if math.isfinite(low) and math.isfinite(high) else "")
    return text + band


def _figure(width: float) -> tuple[Figure, Axes]:
    """A figure ``width`` inches wide and 3.8 high, with one set of axes."""
    fig = Figure(figsize=(width, 3.8), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _rate_plot(m: CampaignMetrics) -> Figure:
    fig, ax = _figure(4.6)
    r = m.table.loc["winback_rate"]
    values = [r["treatment"], r["control"]]
    errors = [[r["treatment"] - r["treatment_low"], r["control"] - r["control_low"]],
              [r["treatment_high"] - r["treatment"], r["control_high"] - r["control"]]]
    ax.bar(["treatment", "control"], np.multiply(values, 100), color=[_TREAT, _CONTROL],
           yerr=np.multiply(errors, 100), capsize=6)
    ax.set(ylabel="returned within the attribution window (%)")
    return fig


def _action_plot(m: CampaignMetrics) -> Figure:
    fig, ax = _figure(5.6)
    b = m.by_action
    if len(b):
        y = np.arange(len(b))
        err = [100 * (b["uplift"] - b["uplift_low"]), 100 * (b["uplift_high"] - b["uplift"])]
        ax.barh(y, 100 * b["uplift"], xerr=err, color=_TREAT, capsize=4)
        ax.set_yticks(y, list(b.index))
    ax.axvline(0, color="#333333", linewidth=1)
    ax.set(xlabel="win-back rate − control (percentage points)")
    return fig


def _timeline_plot(m: CampaignMetrics) -> Figure:
    fig, ax = _figure(5.2)
    o = m.outcomes
    days = np.arange(0, 31)
    for group, colour in (("treatment", _TREAT), ("control", _CONTROL)):
        rows = o[o["group"] == group]
        d = rows["days_to_return"].to_numpy(dtype=float)
        share = [(np.nan_to_num(d, nan=np.inf) <= k).mean() * 100 for k in days]
        ax.step(days, share, where="post", color=colour, label=f"{group} ({len(rows):,})")
    ax.set(xlabel="days since the send", ylabel="returned (%)")
    ax.legend(fontsize=8)
    return fig


def campaign_report_command(data: Path, campaign: str, out: Path | None, *, window_days: int,
                            n_boot: int, seed: int) -> tuple[CampaignMetrics, Path]:
    """What ``churnkit report`` does: load and validate the tables, compute the campaign's
    metrics and write the HTML report (default ``campaign-<ID>.html``)."""
    tables = validate(load_tables(data))
    metrics = report_campaign(tables, campaign, window_days=window_days, n_boot=n_boot,
                              seed=seed)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(campaign))
    path = write_campaign_report(metrics, out or Path(f"campaign-{safe}.html"))
    return metrics, path
