"""Learn from campaign holdouts which win-back action pays, and check it on a later campaign.

The training set is point-in-time: for each past campaign, the features of its contacted
customers as of the campaign's send day (midnight UTC before the first send) and the outcome
after it (ordered within the attribution window, the same rule for treatment and control). Only
campaigns whose attribution window has closed before the cutoff are used.

:func:`evaluate_uplift` holds out the latest campaign whose window closed by ``as_of``, fits on
the campaigns before it, and compares, per 1000 customers of that campaign's target list, the
incremental profit of: (a) the rules (``churnkit.policy.decide`` without uplift), (b) 15% off
(``promo_code``) for everyone, (c) 15% off for the riskiest decile, (d) the uplift policy
(:func:`churnkit.models.uplift.choose_by_uplift`; also ``decide`` with the uplift, i.e. the rules'
do-not-contact filters first) and, on
synthetic data, (e) the oracle (the same choice made with the true responses from
``GroundTruth.action_response_at``). Profit is measured from the held-out campaign's own
randomized arms (a stratified inverse-propensity estimate, with a bootstrap interval) and, on
synthetic data, exactly from the true responses: as the campaigns sent (a random consented
channel and hour, which is what the model learned from; the primary figure) and at the best
channel and hour (what ``action_response_at`` describes). Every policy uses the same customer
value (the policy's ``customer_value``) and the same costs (the policy config's).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

import churnkit as ck
from churnkit.campaigns import campaign_ids, send_day, with_campaign_ids
from churnkit.data import CONTROL, SEND_ACTIONS, as_utc_timestamp
from churnkit.models import UpliftModel
from churnkit.policy import choose_by_uplift, cost_frame, cost_function
from churnkit.stats import percentile_interval, resamples

ATTRIBUTION_DAYS = 30
POLICIES = ("rules", "promo_everyone", "promo_riskiest_decile", "uplift", "oracle")


@dataclass(frozen=True)
class CampaignSet:
    """Point-in-time campaign rows: features as of each send day, arm, outcome."""

    features: pd.DataFrame  # index: contact_id
    arm: pd.Series  # "control" or the action sent
    outcome: pd.Series  # 1 = ordered within the attribution window
    contacts: pd.DataFrame  # contact_id, customer_id, campaign_id, sent_at, as_of


def closed_campaigns(tables: ck.Tables, *, as_of: object,
                     attribution_days: int = ATTRIBUTION_DAYS) -> list[str]:
    """Campaigns (in send order) whose last attribution window ended by ``as_of``."""
    cutoff = as_utc_timestamp(as_of)
    if tables.contacts is None or len(tables.contacts) == 0:
        return []
    c = with_campaign_ids(tables.contacts)
    last = c.groupby("campaign_id")["sent_at"].max()
    done = last[last + pd.Timedelta(days=attribution_days) <= cutoff].index
    return [cid for cid in campaign_ids(tables.contacts) if cid in set(done)]


def campaign_training_set(tables: ck.Tables, campaigns: list[str]) -> CampaignSet:
    """Features as of each campaign's send day for its contacts, arms and outcomes."""
    if not campaigns:
        raise ValueError("contacts: no campaign whose attribution window has closed; the "
                         "uplift model needs past campaigns with a control group")
    c = with_campaign_ids(tables.contacts)
    frames, meta = [], []
    for cid in campaigns:
        rows = c[c["campaign_id"] == cid]
        day = send_day(rows)
        feats = ck.build_features(tables, as_of=day, customer_ids=rows["customer_id"].unique())
        rows = rows[rows["customer_id"].isin(feats.index)]
        f = feats.loc[rows["customer_id"].to_numpy()].reset_index(drop=True)
        f.index = pd.Index(rows["contact_id"].to_numpy(), name="contact_id")
        frames.append(f)
        meta.append(rows.assign(as_of=day)[["contact_id", "customer_id", "campaign_id",
                                            "sent_at", "action", "group", "as_of"]])
    contacts = pd.concat(meta, ignore_index=True)
    features = pd.concat(frames)
    arm = pd.Series(np.where(contacts["group"].to_numpy() == "control", CONTROL,
                             contacts["action"].to_numpy()), index=features.index, name="arm")
    returned = with_campaign_ids(tables.contacts).set_index("contact_id")["converted_at"]
    outcome = returned.reindex(features.index).notna().astype(int).rename("outcome")
    return CampaignSet(features, arm, outcome, contacts)


def fit_uplift(tables: ck.Tables, *, as_of: object, model: UpliftModel | None = None,
               attribution_days: int = ATTRIBUTION_DAYS) -> UpliftModel:
    """Fit an :class:`~churnkit.models.uplift.UpliftModel` on every campaign closed by ``as_of``.

    Wiring into a bundle: ``replace(bundle, uplift=fit_uplift(tables, as_of=as_of))``.
    """
    data = campaign_training_set(tables, closed_campaigns(tables, as_of=as_of,
                                                         attribution_days=attribution_days))
    model = model if model is not None else UpliftModel(attribution_days=attribution_days)
    return model.fit(data.features, data.arm, data.outcome)


def _policy_value(scored: pd.DataFrame, features: pd.DataFrame) -> pd.Series:
    """What a returning customer is worth (currency): the policy's ``customer_value`` (the
    bundle's value model when scored has ``value_if_returned``; else mean basket × orders
    expected over the policy horizon at last year's pace)."""
    from churnkit.policy import PolicyConfig, customer_value

    return pd.Series(customer_value(scored, features, PolicyConfig.default()),
                     index=features.index, name="value")


def _scored(features: pd.DataFrame, tables: ck.Tables, day: pd.Timestamp,
            bundle: object | None) -> pd.DataFrame:
    """Churn scores of the held-out campaign's customers: the bundle's when given, else the
    BG/NBD ``p_no_purchase_90d`` with its percentile among last year's buyers at ``day``
    (the population a bundle's risk reference is built from)."""
    if bundle is not None:
        from churnkit.scoring import score_features

        return score_features(features, bundle, explain=False, as_of=day)
    from churnkit.policy import activity_state, lifecycle_segment

    base = ck.build_features(tables, as_of=day)
    reference = np.sort(base.loc[base["orders_365d"] > 0, "p_no_purchase_90d"]
                        .astype(float).dropna().to_numpy())
    p = features["p_no_purchase_90d"].astype(float).fillna(1.0).to_numpy()
    pct = 100.0 * np.searchsorted(reference, p, side="left") / max(len(reference), 1)
    return pd.DataFrame({"churn_probability": p, "risk_percentile": pct,
                         "segment": lifecycle_segment(features),
                         "activity": activity_state(features)}, index=features.index)


@dataclass(frozen=True)
class UpliftEvaluation:
    """The held-out campaign comparison (see the module docstring)."""

    holdout: str
    as_of: pd.Timestamp
    train_campaigns: list[str]
    n_customers: int
    #: index policy: contacted share, cost, incremental profit per 1000 customers (IPW estimate
    #: on the campaign's arms with a 95% bootstrap interval; on synthetic data also the truth
    #: as the campaign sent (random consented channel and hour) and at the best channel & hour)
    policies: pd.DataFrame
    qini: pd.DataFrame  # action, share, qini (incremental returns per contact, cumulative)
    qini_coefficients: pd.Series  # per action: mean gap between the Qini curve and random
    uplift_vs_truth: pd.Series  # per action: Spearman(predicted, true uplift); synthetic only
    rules_source: str
    decisions: pd.DataFrame = field(repr=False)
    model: UpliftModel = field(repr=False)

    @property
    def profit_column(self) -> str:
        """The column the goals are judged on: the truth as sent when known, else IPW."""
        return "profit_per_1000_true" if "profit_per_1000_true" in self.policies else \
            "profit_per_1000_ipw"

    def flat_metrics(self) -> dict[str, float]:
        """Profit per 1000 customers of each policy and the uplift policy's ratios (MLflow)."""
        profit = self.policies[self.profit_column]
        out = {f"uplift_profit_per_1000_{k}": float(v) for k, v in profit.items()}
        out |= {f"uplift_{k}": v for k, v in self.ratios().items() if isinstance(v, float)}
        return out

    def ratios(self, policy: str = "uplift") -> dict[str, float]:
        """``policy``'s profit / the best non-oracle alternative's, and / the oracle's."""
        p = self.policies[self.profit_column]
        others = p.drop([policy, "oracle", "rules_with_uplift", "uplift"], errors="ignore")
        best = others.max()
        out = {"best_alternative": str(others.idxmax()),
               "vs_best_alternative": float(p[policy] / best) if best > 0 else float("nan")}
        if "oracle" in p and p["oracle"] > 0:
            out["vs_oracle"] = float(p[policy] / p["oracle"])
        return out


def evaluate_uplift(tables: ck.Tables, *, as_of: object, truth: object | None = None,
                    holdout: str | None = None, model: UpliftModel | None = None,
                    bundle: object | None = None, n_boot: int = 200, seed: int = 0,
                    attribution_days: int = ATTRIBUTION_DAYS,
                    data: CampaignSet | None = None) -> UpliftEvaluation:
    """Fit on the campaigns closed before ``holdout`` (default: the latest closed by
    ``as_of``) and compare the policies on it (see the module docstring).

    ``bundle`` supplies churn scores and the value model (default: BG/NBD risk and the
    policy's past-pace value). Costs are the packaged policy config's. ``data``: a
    :func:`campaign_training_set` already built for these campaigns (saves rebuilding it).
    """
    from churnkit.policy import PolicyConfig, decide, postpone_references

    cutoff = as_utc_timestamp(as_of)
    closed = closed_campaigns(tables, as_of=cutoff, attribution_days=attribution_days)
    if not closed:
        raise ValueError("contacts: no campaign whose attribution window closed by "
                         f"{cutoff:%Y-%m-%d}; nothing to hold out")
    holdout = holdout or closed[-1]
    if holdout not in closed:
        raise ValueError(f"contacts: campaign {holdout!r} is unknown or its attribution window "
                         f"has not closed by {cutoff:%Y-%m-%d}")
    test = _subset(data, [holdout]) if data is not None else \
        campaign_training_set(tables, [holdout])
    start = test.contacts["as_of"].min()
    train_ids = closed_campaigns(tables, as_of=start, attribution_days=attribution_days)
    if not train_ids:
        raise ValueError(f"contacts: no campaign closed before {holdout!r} to learn from")
    train = _subset(data, train_ids) if data is not None else \
        campaign_training_set(tables, train_ids)
    model = model if model is not None else UpliftModel(attribution_days=attribution_days)
    model.fit(train.features, train.arm, train.outcome)

    f = test.features
    scored = _scored(f, tables, start, bundle)
    v = _policy_value(scored, f)
    config = PolicyConfig.default()
    cost = cost_frame(cost_function(), v, SEND_ACTIONS)
    predicted = model.predict(f)

    decisions = pd.DataFrame(index=f.index)
    decisions["rules"] = decide(scored, f, config)["action"].astype(object)
    # The rules with DOMAIN.md's "postpone" filter: the bundle's trained averages, else the
    # averages of these targets' scores (scores only, no outcomes).
    trained = getattr(getattr(bundle, "policy", None), "postpone", None)
    averages = trained if trained is not None and trained.active else \
        postpone_references(scored, f, config).postpone
    decisions["rules_postponing"] = decide(
        scored, f, replace(config, postpone=averages))["action"].astype(object)
    decisions["promo_everyone"] = "promo_code"
    risk = scored["churn_probability"]
    top = risk.rank(ascending=False, method="first") <= np.ceil(0.1 * len(risk))
    decisions["promo_riskiest_decile"] = np.where(top, "promo_code", "do_not_contact")
    decisions["uplift"] = choose_by_uplift(predicted, v, cost)["action"]
    decisions["rules_with_uplift"] = decide(scored, f, config, uplift=predicted)["action"] \
        .astype(object)
    true_sent = true_best = None
    if truth is not None:
        true_best = _true_uplift(truth, test)
        true_sent = true_best.mul(_campaign_open_factor(truth, test), axis=0)
        decisions["oracle"] = choose_by_uplift(true_sent, v, cost)["action"]

    rows = {}
    for policy in decisions.columns:
        action = decisions[policy].to_numpy(dtype=object)
        row = {"contacted_share": float((action != "do_not_contact").mean()),
               "cost_per_1000": 1000 * float(_chosen(cost, action).mean())}
        if true_sent is not None:
            for col, up in (("profit_per_1000_true", true_sent),
                            ("profit_per_1000_true_best_slot", true_best)):
                row[col] = 1000 * float((_chosen(up, action) * v.to_numpy()
                                         - _chosen(cost, action)).mean())
        row.update(_ipw_profit(action, test.arm.to_numpy(dtype=object),
                               test.outcome.to_numpy(dtype=float), v.to_numpy(), cost,
                               n_boot, seed))
        rows[policy] = row
    policies = pd.DataFrame.from_dict(rows, orient="index")
    policies.index.name = "policy"

    qini, coefficients = qini_curves(predicted, test.arm, test.outcome)
    versus = pd.Series(dtype=float)
    if true_sent is not None:
        versus = pd.Series({a: float(predicted[a].corr(true_sent[a], method="spearman"))
                            for a in model.actions_}, name="spearman")
    return UpliftEvaluation(holdout, start, train_ids, len(f), policies, qini, coefficients,
                            versus, "churnkit.policy.decide", decisions, model)


def _campaign_open_factor(truth: object, test: CampaignSet) -> pd.Series:
    """Per contact, E[P(open)] as the campaign sends (a random consented channel, a random
    local hour) over P(open) at the best channel and the most active hour, which
    ``GroundTruth.action_response_at`` assumes. Synthetic data only (reads the latent state)."""
    k = truth.kernel
    pop, params = k.pop, k.params
    base = np.array([dict(params.open_base).get(ch, 0.0) for ch in ck.CHANNELS])
    position = pd.Series(np.arange(pop.n), index=pop.customer_id)
    rows = position.reindex(test.contacts["customer_id"].to_numpy()).to_numpy()
    consent = pop.consent[rows]
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


def _subset(data: CampaignSet, campaigns: list[str]) -> CampaignSet:
    keep = data.contacts["campaign_id"].isin(campaigns).to_numpy()
    missing = set(campaigns) - set(data.contacts["campaign_id"])
    if missing:
        raise ValueError(f"the campaign set lacks campaigns {sorted(missing)}")
    return CampaignSet(data.features[keep], data.arm[keep], data.outcome[keep],
                       data.contacts[keep].reset_index(drop=True))


def fit_and_evaluate_uplift(tables: ck.Tables, *, as_of: object, truth: object | None = None,
                            bundle: object | None = None, n_boot: int = 200, seed: int = 0,
                            n_jobs: int = 1, attribution_days: int = ATTRIBUTION_DAYS
                            ) -> tuple[UpliftModel, UpliftEvaluation]:
    """The model for the bundle (fitted on every campaign closed by ``as_of``) and its
    held-out evaluation, building the point-in-time campaign set once.

    Pipeline wiring: ``uplift, uplift_ev = fit_and_evaluate_uplift(tables, as_of=as_of,
    truth=truth)`` then ``replace(bundle, uplift=uplift)``.
    """
    closed = closed_campaigns(tables, as_of=as_of, attribution_days=attribution_days)
    data = campaign_training_set(tables, closed)
    params = {"random_state": seed, "n_jobs": n_jobs, "attribution_days": attribution_days}
    evaluation = evaluate_uplift(tables, as_of=as_of, truth=truth, bundle=bundle,
                                 model=UpliftModel(**params), n_boot=n_boot, seed=seed,
                                 attribution_days=attribution_days, data=data)
    final = UpliftModel(**params).fit(data.features, data.arm, data.outcome)
    return final, evaluation


def _chosen(frame: pd.DataFrame, action: np.ndarray) -> np.ndarray:
    """Per row, ``frame``'s column named by ``action`` (0 for do_not_contact)."""
    out = np.zeros(len(frame))
    for a in frame.columns:
        hit = action == a
        out[hit] = frame[a].to_numpy(dtype=float)[hit]
    return out


def _true_uplift(truth: object, test: CampaignSet) -> pd.DataFrame:
    """True P(return | action) − P(return | nothing) at each contact's send day (0 for
    customers who had not decided to leave: nothing changes their behaviour)."""
    frames = []
    for day, rows in test.contacts.groupby("as_of"):
        resp = truth.action_response_at(day).reindex(rows["customer_id"].to_numpy())
        up = resp[list(SEND_ACTIONS)].sub(resp["none"], axis=0).fillna(0.0)
        up.index = pd.Index(rows["contact_id"].to_numpy(), name="contact_id")
        frames.append(up)
    return pd.concat(frames).reindex(test.features.index)


def _ipw_profit(action: np.ndarray, arm: np.ndarray, y: np.ndarray, value: np.ndarray,
                cost: pd.DataFrame, n_boot: int, seed: int) -> dict:
    """Incremental profit per 1000 of a policy estimated on the randomized held-out campaign:
    within each stratum of customers the policy sends action ``a``, the mean of
    ``value × returned − cost`` among those randomized to ``a`` minus the mean of
    ``value × returned`` among the control group, weighted by the stratum's size."""
    gain = value * y
    c = _chosen(cost, arm.astype(object))

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
