"""A single self-contained HTML report of an :class:`~training.evaluation.Evaluation`.

No network: CSS is inline and every figure is an inline base64 PNG drawn with matplotlib's Agg
canvas on a plain :class:`matplotlib.figure.Figure` (no pyplot, so no global figure registry to
leak into and no backend switched for other code). A tiny inline script marks each figure
``data-rendered="yes"`` once the browser has decoded it, which is what the browser test checks.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jinja2
import numpy as np
from matplotlib.figure import Figure

from churnkit.io import atomic_file, page_foot, page_head, png_base64
from churnkit.stats import METRICS
from training.evaluation import METRIC_LABELS, Evaluation
from training.timing import render_html
from training.uplift_pooled import VERDICT_PAIRS

TOP_FEATURES = 20
_MODEL_COLOUR = "#c0392b"

_EXTRA_CSS = """\
tr.model td{background:#fdecea;font-weight:600}
pre{margin:0;white-space:pre-wrap}
"""
_TEMPLATE = page_head(_EXTRA_CSS) + """\
<header id="header">
<h1>{{ title }}</h1>
<table class="facts">
<tr><th>evaluation cutoff (UTC)</th><td>{{ ev.cutoff.strftime("%Y-%m-%d %H:%M") }}</td></tr>
<tr><th>horizon</th><td>{{ ev.horizon_days }} days</td></tr>
<tr><th>customers</th><td class="num">{{ "{:,}".format(ev.n_customers) }}</td></tr>
<tr><th>churn rate</th><td class="num">{{ "%.2f"|format(100 * ev.churn_rate) }}%</td></tr>
</table>
{% if details %}<h2>Details</h2>
<table class="details">{% for key, value in details %}
<tr><th>{{ key }}</th><td>
 {%- if value is string %}{{ value }}{% else %}<pre>{{ value|tojson_pretty }}</pre>{% endif -%}
</td></tr>{% endfor %}
</table>{% endif %}
</header>

<section id="metrics"><h2>Metrics on the held-out cutoff</h2>
<p class="muted">Point value [95% paired bootstrap interval]. Arrows: which direction is
better. Probability metrics are blank for scores that are not probabilities.</p>
<table class="metrics"><tr><th>score</th>
{%- for m in metric_names %}<th>{{ labels[m] }} {{ "↑" if higher[m] else "↓" }}</th>{% endfor %}
</tr>
{% for score in ev.score_names %}<tr class="{{ roles[score] }}"><td>{{ score }}
 {%- if score == ev.best_baseline %} (best baseline){% elif roles[score] != "baseline" %}
 ({{ roles[score] }}){% endif %}</td>
{%- for m in metric_names %}<td class="num">
 {{- ev.metrics[score][m]|estimate if m in ev.metrics[score] else "—" }}</td>{% endfor %}</tr>
{% endfor %}</table>
</section>

<section id="versus"><h2>Model versus the best baseline</h2>
<p class="verdict">{{ verdict }}</p>
<p class="muted">Paired differences, model − baseline, on the same bootstrap resamples.</p>
<table class="versus"><tr><th>model − baseline</th>
{%- for m in metric_names %}<th>{{ labels[m] }}</th>{% endfor %}</tr>
{% for b in ev.baselines %}<tr><td>{{ b }}{% if b == ev.best_baseline %} (best){% endif %}</td>
{%- for m in metric_names %}<td class="num">{% if m in ev.versus_baselines[b] -%}
 {{ ev.versus_baselines[b][m]|difference }}{% else %}—{% endif %}</td>{% endfor %}</tr>
{% endfor %}</table>
</section>

{% if ev.groups %}<section id="active"><h2>Customers a campaign can still keep</h2>
<p class="muted">Long-lapsed customers are ranked easily by every method and lift the overall
figures; these groups are the customers who ordered recently. Each has its own bootstrap; the
difference is against the best baseline in that group, on the same resamples.</p>
<table class="active"><tr><th>group</th><th>customers</th><th>churn rate</th>
<th>{{ ev.model }} ROC-AUC</th><th>best baseline here</th><th>its ROC-AUC</th>
<th>{{ ev.model }} − best baseline</th></tr>
{% for g in ev.groups.values() %}<tr><td>{{ g.label }}</td>
<td class="num">{{ "{:,}".format(g.n_customers) }}</td>
<td class="num">{{ g.churn_rate|number }}</td>
{% if g.note %}<td colspan="4" class="muted">not scored: {{ g.note }}</td>{% else -%}
<td class="num">{{ g.metrics[ev.model]["roc_auc"]|estimate }}</td><td>{{ g.best_baseline }}</td>
<td class="num">{{ g.metrics[g.best_baseline]["roc_auc"]|estimate }}</td>
<td class="num">{{ g.versus_best_baseline["roc_auc"]|difference }}</td>{% endif %}</tr>
{% endfor %}</table></section>{% endif %}

{% if ev.oracle %}<section id="oracle"><h2>Oracle margin share</h2>
<p>{{ oracle_sentence }}</p></section>{% endif %}

<section id="plots"><h2>Plots</h2>
{% for fig in figures %}<figure id="fig-{{ fig.id }}">{% if fig.png %}
<img class="figure" alt="{{ fig.caption }}" src="data:image/png;base64,{{ fig.png }}">
{%- else %}<p class="muted">{{ fig.missing }}</p>{% endif %}
<figcaption>{{ fig.caption }}</figcaption></figure>
{% endfor %}</section>

<section id="segments"><h2>Metrics by segment</h2>
{% if segments %}<p class="muted">Point values (no interval). Groups with fewer than 50 customers
or only one outcome are not scored.</p>
<table class="segments"><tr><th>group</th><th>value</th><th>score</th><th>customers</th>
<th>churn rate</th><th>ROC-AUC</th><th>PR-AUC</th><th>Brier score</th><th>note</th></tr>
{% for r in segments %}<tr{% if r.score == ev.model %} class="model"{% endif %}>
<td>{{ r.group }}</td><td>{{ r.value }}</td><td>{{ r.score }}</td>
<td class="num">{{ "{:,}".format(r.n) }}</td><td class="num">{{ r.churn_rate|number }}</td>
<td class="num">{{ r.roc_auc|number }}</td><td class="num">{{ r.pr_auc|number }}</td>
<td class="num">{{ r.brier|number }}</td><td>{{ r.note }}</td></tr>
{% endfor %}</table>{% else %}<p class="muted">No segments were given.</p>{% endif %}
</section>
{{ timing_html|safe }}
{{ pooled_html|safe }}
""" + page_foot()


def write_report(evaluation: Evaluation, path: str | Path, *, title: str,
                 details: dict | None = None, timing: object | None = None,
                 pooled: object | None = None) -> Path:
    """Write the evaluation as one self-contained HTML file and return its path.

    Parameters
    ----------
    evaluation
        What :func:`training.evaluation.evaluate` returned.
    path
        Target file; missing directories are created. The file appears whole or not at all
        (rendered in memory first, then written through :func:`churnkit.io.atomic.atomic_file`).
    title
        Page title and heading.
    details
        Key/value facts for the header (model name/version, data, cutoffs, best params);
        non-string values are shown as JSON.
    """
    html = render_report(evaluation, title=title, details=details, timing=timing, pooled=pooled)
    path = Path(path)
    with atomic_file(path) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return path


def render_report(evaluation: Evaluation, *, title: str, details: dict | None = None,
                  timing: object | None = None, pooled: object | None = None) -> str:
    """The report's HTML as a string (what :func:`write_report` writes); ``timing`` (a
    :class:`training.timing.TimingEvaluation`) adds the contact-timing section, ``pooled``
    (a :class:`training.uplift_pooled.PooledUplift`) the policies over the last campaigns."""
    ev = evaluation
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["estimate"] = lambda e: f"{e.value:.3f} [{e.low:.3f}, {e.high:.3f}]"
    env.filters["difference"] = lambda e: f"{e.value:+.3f} [{e.low:+.3f}, {e.high:+.3f}]"
    env.filters["number"] = lambda x: "—" if x is None or not math.isfinite(x) else f"{x:.3f}"
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=1, default=str, sort_keys=True)
    metric_names = [m for m in METRICS if any(m in ev.metrics[s] for s in ev.metrics)]
    figures = [
        _figure("calibration", "Calibration: observed churn rate per decile of predicted "
                "probability", _calibration_plot(ev), "No probability scores to calibrate."),
        _figure("gain", "Cumulative gain: share of churners reached by contacting the top x% "
                "by score", _gain_plot(ev), ""),
        _figure("distribution", f"Distribution of {ev.model}'s scores, churned vs stayed",
                _distribution_plot(ev), ""),
        _figure("importance", f"Global importance: mean |SHAP| (log-odds), top {TOP_FEATURES}",
                _importance_plot(ev), "No SHAP contributions were given."),
    ]
    return env.from_string(_TEMPLATE).render(
        ev=ev, title=title, details=[(str(k), v) for k, v in (details or {}).items()],
        metric_names=metric_names, labels={m: METRIC_LABELS.get(m, m) for m in METRICS},
        higher={m: METRICS[m][1] for m in METRICS}, verdict=ev.verdict("roc_auc"),
        roles={s: "model" if s == ev.model else "oracle" if s == ev.oracle else "baseline"
               for s in ev.score_names},
        oracle_sentence=_oracle_sentence(ev), figures=figures,
        segments=ev.by_segment.to_dict("records"),
        timing_html=_timing_html(timing), pooled_html=_pooled_html(pooled),
    )


def _timing_html(timing: object | None) -> str:
    """The contact-timing section, or nothing without a timing evaluation."""
    if timing is None:
        return ""
    return render_html(timing)


def _pooled_html(pooled: object | None) -> str:
    """The pooled policy section: estimates, paired differences, verdicts, dropped strata."""
    if pooled is None:
        return ""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    fmt = "{:,.0f}".format
    return env.from_string(_POOLED_TEMPLATE).render(
        p=pooled, policies=pooled.policies.to_html(float_format=fmt, classes="segments"),
        differences=pooled.differences.to_html(float_format=fmt, classes="segments"),
        verdicts=[pooled.verdict(*pair) for pair in VERDICT_PAIRS],
        dropped=pooled.dropped.groupby("policy")["contacts"].sum().to_dict())


_POOLED_TEMPLATE = """\
<section id="pooled">
<h2>Which policy pays: the last {{ p.campaigns|length }} campaigns, pooled</h2>
<p>Each campaign from {{ p.campaigns[0] }} to {{ p.campaigns[-1] }} is held out in turn, with an
uplift model fitted only on the campaigns closed before it; every policy decides on its
{{ "{:,}".format(p.n_contacts) }} contacts and its incremental profit per 1000 contacts is
estimated from the randomized arms (IPW; DR with an outcome model fitted on the earlier
campaigns), with 95% bootstrap intervals. One campaign's control group is too small to judge a
policy; the pooled figures and the paired differences are the ones to read.</p>
<ul>{% for v in verdicts %}<li>{{ v }}</li>{% endfor %}</ul>
{{ policies|safe }}
<h3>Paired differences (same resamples)</h3>
{{ differences|safe }}
{% if dropped %}<p class="muted">Strata without an estimate (nobody randomized to the action or
to control there), counted as 0: {% for k, v in dropped.items() %}{{ k }} {{ v }} contacts{% if
not loop.last %}, {% endif %}{% endfor %}.</p>{% endif %}
</section>
"""


def _oracle_sentence(ev: Evaluation) -> str:
    if ev.oracle is None:
        return ""
    auc_model, auc_oracle = ev.metrics[ev.model]["roc_auc"], ev.metrics[ev.oracle]["roc_auc"]
    share = ev.oracle_margin_share
    share_text = "an undefined share" if share is None or not math.isfinite(share) else (
        f"{100 * share:.0f}%")
    return (f"{ev.model} captures {share_text} of the oracle's margin over a random ranking: "
            f"(ROC-AUC − 0.5) is {auc_model.value - 0.5:.3f} for {ev.model} and "
            f"{auc_oracle.value - 0.5:.3f} for the oracle ({ev.oracle}, the true churn "
            "probability, the best any model could do).")


# -- figures -----------------------------------------------------------------------------------
def _figure(fig_id: str, caption: str, fig: Figure | None, missing: str) -> dict:
    return {"id": fig_id, "caption": caption, "png": png_base64(fig) if fig else None,
            "missing": missing}


def _styles(ev: Evaluation) -> dict[str, dict]:
    """Line style per score: the model stands out, the oracle is dashed."""
    palette = ["#2d6cdf", "#27ae60", "#8e44ad", "#e67e22", "#16a085", "#7f8c8d", "#d35400"]
    styles, others = {}, iter(palette * 4)
    for score in ev.score_names:
        if score == ev.model:
            styles[score] = {"color": _MODEL_COLOUR, "linewidth": 2.5}
        elif score == ev.oracle:
            styles[score] = {"color": "#333333", "linewidth": 1.5, "linestyle": "--"}
        else:
            styles[score] = {"color": next(others), "linewidth": 1.5}
    return styles


def _calibration_plot(ev: Evaluation) -> Figure | None:
    if ev.calibration.empty:
        return None
    fig = Figure(figsize=(5.2, 4.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    styles = _styles(ev)
    top = max(ev.calibration["mean_predicted"].max(), ev.calibration["observed_rate"].max())
    ax.plot([0, top], [0, top], color="#bbbbbb", linewidth=1, label="perfectly calibrated")
    for score in ev.score_names:
        rows = ev.calibration[ev.calibration["score"] == score]
        if len(rows):
            ax.plot(rows["mean_predicted"], rows["observed_rate"], marker="o", markersize=3,
                    label=score, **styles[score])
    ax.set(xlabel="mean predicted probability (decile)", ylabel="observed churn rate")
    ax.legend(fontsize=8)
    return fig


def _gain_plot(ev: Evaluation) -> Figure:
    fig = Figure(figsize=(5.2, 4.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    styles = _styles(ev)
    x = np.linspace(0, 1, 101)
    ax.plot(x, np.minimum(x / max(ev.churn_rate, 1e-12), 1), color="#bbbbbb", linestyle=":",
            label="perfect")
    ax.plot([0, 1], [0, 1], color="#bbbbbb", linewidth=1, label="random")
    for score in ev.score_names:
        rows = ev.gain[ev.gain["score"] == score]
        ax.plot(rows["share_contacted"], rows["share_churners_caught"], label=score,
                **styles[score])
    ax.set(xlabel="share of customers contacted (highest scores first)",
           ylabel="share of churners reached", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(fontsize=8, loc="lower right")
    return fig


def _distribution_plot(ev: Evaluation) -> Figure:
    fig = Figure(figsize=(5.2, 4.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    churned, stayed = ev.score_distribution["churned"], ev.score_distribution["stayed"]
    edges = np.histogram_bin_edges(np.concatenate([churned, stayed]), bins=50)
    # Densities, not counts: churners are the minority and would be invisible on counts.
    ax.hist(stayed, bins=edges, density=True, alpha=0.55, color="#2d6cdf",
            label=f"stayed (n={len(stayed):,})")
    ax.hist(churned, bins=edges, density=True, alpha=0.55, color=_MODEL_COLOUR,
            label=f"churned (n={len(churned):,})")
    ax.set(xlabel=f"{ev.model} score", ylabel="density")
    ax.legend(fontsize=8)
    return fig


def _importance_plot(ev: Evaluation) -> Figure | None:
    if ev.importance.empty:
        return None
    top = ev.importance.head(TOP_FEATURES)[::-1]  # largest at the top of the chart
    fig = Figure(figsize=(6.5, 0.3 * len(top) + 1.2), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.barh([str(i) for i in top.index], top.to_numpy(), color=_MODEL_COLOUR)
    ax.set(xlabel="mean |SHAP value| (log-odds)")
    ax.tick_params(axis="y", labelsize=8)
    return fig
