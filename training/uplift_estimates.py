"""Off-policy estimates on a held-out randomized campaign, and the truth on synthetic data.

A policy's incremental profit is estimated from the campaign's own randomized arms (a stratified
inverse-propensity estimate with a bootstrap interval); the Qini curves rank contacts by the
predicted uplift. On synthetic data the true uplift comes from ``GroundTruth.action_response_at``
(at the best channel and hour) and :func:`campaign_open_factor` turns it into the uplift as the
campaign sent (a random consented channel and hour).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnkit.data import CONTROL, SEND_ACTIONS
from churnkit.stats import percentile_interval, resamples
from training.campaign_set import CampaignSet


def chosen_values(frame: pd.DataFrame, action: np.ndarray) -> np.ndarray:
    """Per row, ``frame``'s column named by ``action`` (0 for do_not_contact)."""
    out = np.zeros(len(frame))
    for a in frame.columns:
        hit = action == a
        out[hit] = frame[a].to_numpy(dtype=float)[hit]
    return out


def true_uplift(truth: object, test: CampaignSet) -> pd.DataFrame:
    """True P(return | action) − P(return | nothing) at each contact's send day (0 for
    customers who had not decided to leave: nothing changes their behaviour)."""
    frames = []
    for day, rows in test.contacts.groupby("as_of"):
        resp = truth.action_response_at(day).reindex(rows["customer_id"].to_numpy())
        up = resp[list(SEND_ACTIONS)].sub(resp["none"], axis=0).fillna(0.0)
        up.index = pd.Index(rows["contact_id"].to_numpy(), name="contact_id")
        frames.append(up)
    return pd.concat(frames).reindex(test.features.index)


def campaign_open_factor(truth: object, test: CampaignSet) -> pd.Series:
    """Per contact, E[P(open)] as the campaign sends (a random consented channel, a random
    local hour) over P(open) at the best channel and the most active hour, which
    ``GroundTruth.action_response_at`` assumes. Synthetic data only (reads the latent state)."""
    k = truth.kernel
    pop, params = k.pop, k.params
    position = pd.Series(np.arange(pop.n), index=pop.customer_id)
    rows = position.reindex(test.contacts["customer_id"].to_numpy()).to_numpy()
    consent = pop.consent[rows]
    # the customer's own propensity per channel (channel affinity), at the most active hour
    base = truth.open_propensity(test.contacts["customer_id"].to_numpy()).to_numpy()
    mean_base = (consent * base).sum(axis=1) / np.maximum(consent.sum(axis=1), 1)
    best = (consent * base).max(axis=1)
    lo, hi = params.send_local_hours
    # The campaign's day: most sends fall on it in UTC (the first may be the evening before).
    day = test.contacts.groupby("campaign_id")["sent_at"].transform("median").dt.floor("D")
    weekday = day.dt.day_of_week.to_numpy()
    hours = np.arange(lo, hi)
    slots = pop.slots[rows]
    rel = slots[np.arange(len(rows))[:, None], weekday[:, None] * 24 + hours[None, :]] \
        / slots.max(axis=1)[:, None]
    floor = params.open_off_hours_floor
    hour_factor = (floor + (1 - floor) * rel).mean(axis=1)
    factor = np.where(best > 0, mean_base * hour_factor / np.where(best > 0, best, 1), 0.0)
    return pd.Series(factor, index=test.features.index)


def ipw_profit(action: np.ndarray, arm: np.ndarray, y: np.ndarray, value: np.ndarray,
                cost: pd.DataFrame, n_boot: int, seed: int) -> dict:
    """Incremental profit per 1000 of a policy estimated on the randomized held-out campaign:
    within each stratum of customers the policy sends action ``a``, the mean of
    ``value × returned − cost`` among those randomized to ``a`` minus the mean of
    ``value × returned`` among the control group, weighted by the stratum's size."""
    gain = value * y
    c = chosen_values(cost, arm.astype(object))

    def estimate(idx: np.ndarray) -> float:
        act, a_arm, g, cc = action[idx], arm[idx], gain[idx], c[idx]
        total = 0.0
        for a in np.unique(act):
            if a == "do_not_contact":
                continue
            stratum = act == a
            treated = stratum & (a_arm == a)
            control = stratum & (a_arm == CONTROL)
            if treated.sum() == 0 or control.sum() == 0:
                continue
            effect = (g[treated] - cc[treated]).mean() - g[control].mean()
            total += stratum.mean() * effect
        return 1000 * total

    n = len(action)
    boots = np.array([estimate(idx) for idx in resamples(n, n_boot=n_boot, seed=seed)])
    low, high = percentile_interval(boots)
    return {"profit_per_1000_ipw": estimate(np.arange(n)), "profit_per_1000_ipw_low": low,
            "profit_per_1000_ipw_high": high}


def qini_curves(predicted: pd.DataFrame, arm: pd.Series, outcome: pd.Series,
                points: int = 50) -> tuple[pd.DataFrame, pd.Series]:
    """Per action, the Qini curve on contacts randomized to that action or to control, ranked
    by the predicted uplift of that action: at each share ``s`` of them, incremental returns
    ``Y_t(s) − Y_c(s) · N_t(s) / N_c(s)`` divided by the number of treated contacts (so the end
    point is the action's average uplift). The coefficient is the mean gap between the curve
    and the random line (straight from 0 to the end point)."""
    rows, coefficients = [], {}
    arm_values, y_all = arm.to_numpy(dtype=object), outcome.to_numpy(dtype=float)
    for action in predicted.columns:
        keep = (arm_values == action) | (arm_values == CONTROL)
        if (arm_values == action).sum() == 0:
            continue
        score = predicted[action].to_numpy()[keep]
        order = np.argsort(-score, kind="stable")
        t = (arm_values[keep] == action)[order]
        y = y_all[keep][order]
        nt, nc = np.cumsum(t), np.cumsum(~t)
        yt, yc = np.cumsum(y * t), np.cumsum(y * ~t)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(nc > 0, yt - yc * nt / np.maximum(nc, 1), 0.0) / max(nt[-1], 1)
        share = np.arange(1, len(q) + 1) / len(q)
        random_line = share * q[-1]
        coefficients[action] = float(np.mean(q - random_line))
        pick = np.unique(np.linspace(0, len(q) - 1, points).astype(int))
        rows.append(pd.DataFrame({"action": action, "share": share[pick], "qini": q[pick],
                                  "random": random_line[pick]}))
    qini = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["action", "share", "qini", "random"])
    return qini, pd.Series(coefficients, name="qini_coefficient")
