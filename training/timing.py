"""Fit the timing model on the training snapshots and evaluate it honestly at a held-out cutoff.

Point in time: the model is fitted on the training cutoffs' rows only (features known before each
cutoff, labels from its window), and evaluated once on the evaluation cutoff's rows, whose labels
it never saw. Every comparison is against baselines computed from the same features:

- **which day** -- MAE (days) of the time to the next order *among customers who returned within
  the horizon*, for the model's conditional expectation ``E[T | T < H]``, the BG/NBD expectation
  (``expected_purchases_<H>d`` as a Poisson rate, truncated at H the same way) and the mean-gap
  heuristic (last order + mean gap between orders, clipped to ``[0, H)``; the horizon's middle
  without a gap);
- **which hour** -- top-1 and top-3 hit rates of the next engagement's local slot (hour of the
  week) and local hour of the day, against the global-best rule (the population's most frequent
  slots) and the modal-hour rule (the customer's own most frequent hour, on their most active
  weekdays; the global best without history), overall and by history depth;
- **which channel** -- with the ``contacts`` table: the open and conversion rates of the
  messages sent in the horizon after the cutoff on the channel the model ranks first, against the
  population's best allowed channel (no personal history) and the channels as sent. A policy's
  rate is estimated from the messages whose channel it would have chosen, each weighted by the
  customer's number of allowed channels: unbiased when campaigns pick a consented channel at
  random (as the synthetic shop's do), a comparison of sub-samples otherwise. Customers with one
  allowed channel are left out (every policy agrees on them);
- **synthetic shop** -- with the generator's ``GroundTruth.active_slots``: the share of customers
  whose top-ranked slot lies among their true top-decile (17 most active) slots.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

import numpy as np
import pandas as pd

from churnkit.data import CHANNELS
from churnkit.features import WEEKDAYS
from churnkit.models import TimingConfig, TimingModel
from churnkit.stats import percentile_interval, resample_counts

#: History depth groups by the number of activity events (orders + sessions) before the cutoff.
THIN_MAX_EVENTS = 5
TRUE_TOP_SLOTS = 17  # top decile of 168 slots


@dataclass(frozen=True)
class TimingEvaluation:
    """Timing metrics at the evaluation cutoff (see the module docstring)."""

    cutoff: pd.Timestamp
    days: pd.DataFrame  # index method; columns mae_days, median_ae_days, n
    slots: pd.DataFrame  # index (level, group, method); columns top1, top3, n
    truth: pd.DataFrame | None = None  # index (group, method); column in_true_top_decile, n
    rules: dict = field(default_factory=dict)  # share of customers per contact rule
    #: index method (model, population_best, as_sent); columns open_rate, open_low, open_high,
    #: conversion_rate, conversion_low, conversion_high, messages (matching the method)
    channels: pd.DataFrame | None = None

    def flat_metrics(self) -> dict[str, float]:
        """``timing_<...>`` floats for MLflow and the bundle metadata."""
        out: dict[str, float] = {}
        for method, row in self.days.iterrows():
            out[f"timing_days_mae_{method}"] = float(row["mae_days"])
        for (level, group, method), row in self.slots.iterrows():
            for k in ("top1", "top3"):
                out[f"timing_{level}_{k}_{group}_{method}"] = float(row[k])
        if self.truth is not None:
            for (group, method), row in self.truth.iterrows():
                out[f"timing_true_slot_{group}_{method}"] = float(row["in_true_top_decile"])
        if self.channels is not None:
            for method, row in self.channels.iterrows():
                out[f"timing_channel_open_rate_{method}"] = float(row["open_rate"])
                out[f"timing_channel_conversion_rate_{method}"] = float(row["conversion_rate"])
        return out


def fit_timing(train: pd.DataFrame, *, horizon_days: int, seed: int = 0,
               n_jobs: int | None = 1, config: TimingConfig | None = None) -> TimingModel:
    """The timing model fitted on stacked training snapshots (features + labels per cutoff)."""
    return TimingModel(config or TimingConfig.load(), horizon_days=horizon_days,
                       random_state=seed, n_jobs=n_jobs).fit(train)


def _history_group(frame: pd.DataFrame) -> np.ndarray:
    events = pd.to_numeric(frame.get("activity_events", pd.Series(0, index=frame.index)),
                           errors="coerce").fillna(0).to_numpy()
    return np.select([events == 0, events < THIN_MAX_EVENTS], ["none", "thin"], "rich")


def day_baselines(frame: pd.DataFrame, horizon_days: int) -> dict[str, np.ndarray]:
    """BG/NBD and mean-gap predictions of the days to the next order, given a return < H."""
    H = float(horizon_days)
    out = {}
    col = f"expected_purchases_{horizon_days}d"
    if col not in frame.columns:
        col = "expected_purchases_90d"
    if col in frame.columns:
        # A Poisson process of rate lam truncated to [0, H): E[T | T < H].
        lam = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float,
                                                                   na_value=np.nan) / 90.0
        lam = np.maximum(np.nan_to_num(lam, nan=0.0), 1e-6)
        e = np.exp(-lam * H)
        out["btyd"] = 1 / lam - H * e / (1 - e)
    gap = pd.to_numeric(frame.get("gap_mean_days"), errors="coerce").to_numpy(dtype=float,
                                                                             na_value=np.nan)
    recency = pd.to_numeric(frame.get("days_since_last_order"), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan)
    out["mean_gap"] = np.where(np.isnan(gap - recency), H / 2, np.clip(gap - recency, 0, H))
    return out


def _ranked_slots(P: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-P, axis=1, kind="stable")[:, :k]


def _modal_rule(frame: pd.DataFrame, prior_slot: np.ndarray, k: int) -> np.ndarray:
    """The modal-hour rule's top-k slots: the modal local hour on the k most active weekdays
    (ties and missing shares: the population's weekday order); the global best without history."""
    n = len(frame)
    pop_wd = prior_slot.reshape(7, 24).sum(axis=1)
    shares = np.column_stack([pd.to_numeric(frame.get(f"activity_share_{d}"), errors="coerce")
                              .to_numpy(dtype=float, na_value=np.nan) for d in WEEKDAYS])
    key = np.nan_to_num(shares, nan=0.0) + 1e-6 * pop_wd[None, :] / pop_wd.max()
    days = np.argsort(-key, axis=1, kind="stable")[:, :k]
    modal = pd.to_numeric(frame.get("modal_local_hour"), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan)
    glob = np.argsort(-prior_slot, kind="stable")[:k]
    out = np.where(np.isnan(modal)[:, None], glob[None, :],
                   days * 24 + np.nan_to_num(modal, nan=0).astype(int)[:, None])
    return out.reshape(n, k)


def _modal_hours(frame: pd.DataFrame, prior_slot: np.ndarray, k: int) -> np.ndarray:
    """Hour-of-day version: the modal hour, then its neighbours by the population's hour order;
    the population's best hours without history."""
    pop_h = prior_slot.reshape(7, 24).sum(axis=0)
    modal = pd.to_numeric(frame.get("modal_local_hour"), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan)
    glob = np.argsort(-pop_h, kind="stable")[:k]
    m = np.nan_to_num(modal, nan=0).astype(int)
    before, after = (m - 1) % 24, (m + 1) % 24
    first_after = pop_h[after] >= pop_h[before]
    cand = np.column_stack([m, np.where(first_after, after, before),
                            np.where(first_after, before, after)])[:, :k]
    return np.where(np.isnan(modal)[:, None], glob[None, :], cand)


def evaluate_timing(model: TimingModel, evaluation: pd.DataFrame, *, cutoff: object,
                    truth: object | None = None, contacts: pd.DataFrame | None = None
                    ) -> TimingEvaluation:
    """Score the evaluation cutoff's rows (features + labels, index ``customer_id``) against
    the baselines; ``truth`` (the synthetic shop's GroundTruth) adds the true-slot check and
    ``contacts`` (the contacts table) the channel check."""
    ev = evaluation
    H = model.days_.horizon_days
    # -- which day: returners only (their return time is observed, not censored) ----------
    returned = ~ev["censored"].to_numpy(dtype=bool)
    actual = ev["days_to_next_order"].to_numpy(dtype=float)[returned]
    hz = model.days_.hazards(ev[returned])
    preds = {"model": model.days_.summary(hz, quantile=0.5)["conditional_mean_days"].to_numpy()}
    preds.update({k: v[returned] for k, v in day_baselines(ev, H).items()})
    days = pd.DataFrame({m: {"mae_days": float(np.mean(np.abs(p - actual))),
                             "median_ae_days": float(np.median(np.abs(p - actual))),
                             "n": int(returned.sum())}
                         for m, p in preds.items()}).T.rename_axis("method")

    # -- which hour: rows whose next engagement is known ----------------------------------
    engaged = ev["next_engagement_slot"].notna().to_numpy()
    sub = ev[engaged]
    target = sub["next_engagement_slot"].to_numpy(dtype="int64")
    group = _history_group(sub)
    P = model.slots_.slot_probabilities(sub)
    prior = model.slots_.prior_slot_
    top_slots = {
        "model": _ranked_slots(P, 3),
        "global_best": np.tile(np.argsort(-prior, kind="stable")[:3], (len(sub), 1)),
        "modal_hour": _modal_rule(sub, prior, 3),
    }
    hours_p = P.reshape(len(sub), 7, 24).sum(axis=1)
    top_hours = {
        "model": _ranked_slots(hours_p, 3),
        "global_best": np.tile(np.argsort(-prior.reshape(7, 24).sum(axis=0),
                                          kind="stable")[:3], (len(sub), 1)),
        "modal_hour": _modal_hours(sub, prior, 3),
    }
    rows = []
    for level, tops, tgt in (("slot", top_slots, target), ("hour", top_hours, target % 24)):
        for g in ("all", "none", "thin", "rich"):
            mask = np.ones(len(sub), bool) if g == "all" else group == g
            if not mask.any():
                continue
            for method, top in tops.items():
                hit = top[mask] == tgt[mask, None]
                rows.append({"level": level, "group": g, "method": method,
                             "top1": float(hit[:, 0].mean()), "top3": float(hit.any(axis=1).mean()),
                             "n": int(mask.sum())})
    slots = pd.DataFrame(rows).set_index(["level", "group", "method"]).sort_index()

    # -- synthetic shop: is the top slot among the customer's true most active slots? ------
    truth_frame = None
    if truth is not None:
        pos = truth.customers.index.get_indexer(ev.index)
        if (pos < 0).any():
            raise ValueError(f"{int((pos < 0).sum())} evaluation customers are not in the truth")
        true = np.asarray(truth.active_slots)[pos]
        top_true = np.argsort(-true, axis=1)[:, :TRUE_TOP_SLOTS]
        P_all = model.slots_.slot_probabilities(ev)
        group_all = _history_group(ev)
        firsts = {"model": P_all.argmax(axis=1),
                  "global_best": np.full(len(ev), int(np.argmax(prior))),
                  "modal_hour": _modal_rule(ev, prior, 1)[:, 0]}
        rows = []
        for g in ("all", "none", "thin", "rich"):
            mask = np.ones(len(ev), bool) if g == "all" else group_all == g
            if not mask.any():
                continue
            for method, first in firsts.items():
                inside = (top_true[mask] == first[mask, None]).any(axis=1)
                rows.append({"group": g, "method": method,
                             "in_true_top_decile": float(inside.mean()), "n": int(mask.sum())})
        truth_frame = pd.DataFrame(rows).set_index(["group", "method"]).sort_index()

    plan = model.plan(ev, as_of=cutoff)
    rules = plan["contact_rule"].value_counts(normalize=True).round(4).to_dict()
    channels = None
    if contacts is not None and len(contacts):
        channels = evaluate_channels(model, ev, contacts, cutoff=pd.Timestamp(cutoff),
                                     horizon_days=H)
    return TimingEvaluation(pd.Timestamp(cutoff), days, slots, truth_frame, rules, channels)


def evaluate_channels(model: TimingModel, evaluation: pd.DataFrame, contacts: pd.DataFrame, *,
                      cutoff: pd.Timestamp, horizon_days: int, n_boot: int = 200,
                      seed: int = 0) -> pd.DataFrame | None:
    """Open and conversion rates by channel policy on the messages sent in the horizon after
    ``cutoff`` (see the module docstring); None when no message qualifies."""
    ranked = model.channels_.rank(evaluation)
    history = [c for c in evaluation.columns
               if c.startswith(("contacts_", "opens_", "conversions_"))]
    anonymous = evaluation.copy()
    anonymous[history] = 0  # the population's ranking: no personal history
    population = model.channels_.rank(anonymous)
    allowed = pd.Series(ranked["channel_ranking"].map(len).to_numpy(), index=evaluation.index)

    sent = contacts[(contacts["group"] == "treatment") & (contacts["sent_at"] >= cutoff)
                    & (contacts["sent_at"] < cutoff + pd.Timedelta(days=horizon_days))]
    n_allowed = allowed.reindex(sent["customer_id"].to_numpy()).to_numpy(dtype=float,
                                                                          na_value=0.0)
    keep = n_allowed >= 2
    sent, n_allowed = sent[keep], n_allowed[keep]
    channel = sent["channel"].astype(str).to_numpy()
    keep = np.isin(channel, CHANNELS)
    if not keep.any():
        return None
    ids = sent["customer_id"].to_numpy()
    choices = {
        "model": ranked["channel"].reindex(ids).to_numpy(dtype=object) == channel,
        "population_best": population["channel"].reindex(ids).to_numpy(dtype=object) == channel,
        "as_sent": np.ones(len(sent), bool),
    }
    opened = sent["opened_at"].notna().to_numpy()
    converted = sent["converted_at"].notna().to_numpy()
    # the policies' messages, each standing for n_allowed customers (1 for as sent)
    weights = {method: np.where(match & keep, n_allowed if method != "as_sent" else 1.0, 0.0)
               for method, match in choices.items()}
    outcomes = {"open": opened.astype(float), "conversion": converted.astype(float)}
    boot = {(m, o): np.empty(n_boot) for m in weights for o in outcomes}
    for b, counts in enumerate(resample_counts(len(sent), n_boot=n_boot, seed=seed)):
        for method, w in weights.items():
            wb = w * counts
            for name, y in outcomes.items():
                boot[method, name][b] = (wb * y).sum() / max(wb.sum(), 1e-12)
    rows = {}
    for method, w in weights.items():
        row = {"messages": int((w > 0).sum())}
        for name, y in outcomes.items():
            if w.sum() == 0:  # the policy never picked the channel sent: nothing to estimate
                row[f"{name}_rate"] = row[f"{name}_low"] = row[f"{name}_high"] = np.nan
                continue
            row[f"{name}_rate"] = float((w * y).sum() / w.sum())
            row[f"{name}_low"], row[f"{name}_high"] = percentile_interval(boot[method, name])
        rows[method] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("method")


def render_html(te: TimingEvaluation) -> str:
    """The evaluation report's timing section (an HTML fragment, values escaped)."""
    def table(frame: pd.DataFrame, fmt: str) -> str:
        frame = frame.reset_index()
        head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
        body = []
        for row in frame.itertuples(index=False):
            cells = []
            for col, v in zip(frame.columns, row, strict=True):
                if col in ("n", "customers"):
                    cells.append(f'<td class="num">{int(v):,}</td>')
                elif isinstance(v, float):
                    cells.append(f'<td class="num">{format(v, fmt)}</td>')
                else:
                    cells.append(f"<td>{escape(str(v))}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        return f'<table class="timing"><tr>{head}</tr>{"".join(body)}</table>'

    slots = te.slots.reset_index()
    wide = slots.pivot_table(index=["level", "group"], columns="method",
                             values=["top1", "top3"]).sort_index()
    wide.columns = [f"{k} {m}" for k, m in wide.columns]
    n = slots.groupby(["level", "group"])["n"].first()
    wide = wide.join(n.rename("customers").astype(float))
    parts = [
        '<section id="timing"><h2>Contact timing</h2>',
        f"<p class=\"muted\">The bundle's timing model (fitted on snapshots before this "
        f"cutoff) at the held-out cutoff {te.cutoff:%Y-%m-%d}. See docs/timing.md.</p>",
        "<h3>Which day: days to the next order, customers who returned within the horizon</h3>",
        table(te.days, ".2f"),
        "<h3>Which hour: hit rate of the next engagement (local hour of the day / of the week)"
        "</h3><p class=\"muted\">history: none = no activity before the cutoff, thin = fewer "
        f"than {THIN_MAX_EVENTS} activity events, rich = the rest.</p>",
        table(wide, ".3f"),
    ]
    if te.truth is not None:
        parts += ["<h3>Synthetic shop: top slot among the customer's true top-decile slots</h3>",
                  table(te.truth.reset_index().pivot(index="group", columns="method",
                                                     values="in_true_top_decile"), ".3f")]
    if te.channels is not None:
        parts += ["<h3>Which channel: messages sent in the horizon after the cutoff</h3>"
                  "<p class=\"muted\">Open and conversion rates of the messages sent on the "
                  "channel each policy picks, weighted by the customer's number of allowed "
                  "channels (unbiased when campaigns pick a consented channel at random); "
                  "customers with one allowed channel left out; 95% bootstrap intervals.</p>",
                  table(te.channels, ".3f")]
    rules = ", ".join(f"{escape(str(k))} {v:.1%}" for k, v in te.rules.items())
    parts.append(f"<p>Contact rule at the cutoff: {rules}.</p></section>")
    return "\n".join(parts)


def summary_lines(te: TimingEvaluation) -> list[str]:
    """A few plain lines for the console after training."""
    days = te.days["mae_days"]
    lines = [f"timing at {te.cutoff:%Y-%m-%d}: days-to-next-order MAE on returners "
             + ", ".join(f"{m} {v:.1f}" for m, v in days.items())]
    if ("hour", "all", "model") in te.slots.index:
        hour = te.slots.loc[("hour", "all")]["top3"]
        lines.append("next-engagement hour top-3 hit rate "
                     + ", ".join(f"{m} {v:.1%}" for m, v in hour.items()))
    if te.channels is not None:
        lines.append("open rate of the chosen channel on later messages "
                     + ", ".join(f"{m} {v:.1%}" for m, v in te.channels["open_rate"].items()))
    return lines
