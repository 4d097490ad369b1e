"""Learn from campaign holdouts which win-back action pays, and check it on a later campaign.

The training set is point-in-time (:mod:`training.campaign_set`). :func:`evaluate_uplift` holds
out the latest campaign whose window closed by ``as_of``, fits on the campaigns before it, and
compares, per 1000 customers of that campaign's target list, the incremental profit of: (a) the
rules (``churnkit.policy.decide`` without uplift), (b) 15% off (``promo_code``) for everyone,
(c) 15% off for the riskiest decile, (d) the uplift policy
(:func:`churnkit.policy.choose_by_uplift`; also ``decide`` with the uplift, i.e. the rules'
do-not-contact filters first) and, on synthetic data, (e) the oracle (the same choice made with
the true responses from ``GroundTruth.action_response_at``). Profit is measured from the
held-out campaign's own randomized arms (:mod:`training.uplift_estimates`) and, on synthetic
data, exactly from the true responses: as the campaigns sent (a random consented channel and
hour, which is what the model learned from; the primary figure) and at the best channel and
hour (what ``action_response_at`` describes).

The customers are scored as served (:func:`churnkit.scoring.score_features` with the bundle)
when a bundle is given, else by the BG/NBD baseline (:func:`training.baselines.btyd_risk_scores`).
Every policy uses one policy config (the given one, else the bundle's, else the packaged
defaults): its customer value, its action costs and its decision rules. Profit is in margin
(docs/policy.md "Money in margin"): a return is worth the customer's revenue × their
gross-margin share, for the estimates and the synthetic truth alike; the actions' value-scaled
costs read the revenue, as the policy prices them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

import churnkit as ck
from churnkit.data import SEND_ACTIONS, as_utc_timestamp
from churnkit.features import margin_shares
from churnkit.models import UpliftModel
from churnkit.policy import (
    PolicyConfig,
    choose_by_uplift,
    cost_frame,
    cost_function,
    customer_revenue,
    customer_value,
    decide,
    funnel_decisions,
    postpone_references,
)
from churnkit.scoring import ModelBundle, score_features
from training.baselines import btyd_risk_scores
from training.campaign_set import (
    ATTRIBUTION_DAYS,
    CampaignSet,
    campaign_subset,
    campaign_training_set,
    closed_campaigns,
)
from training.uplift_estimates import (
    campaign_open_factor,
    chosen_values,
    ipw_profit,
    qini_curves,
    true_uplift,
)

POLICIES = ("do_nothing", "rules", "funnel", "promo_everyone", "promo_riskiest_decile",
            "uplift", "oracle")
#: Policies a ratio never compares the uplift policy with: itself, the rules run with the
#: uplift, and the oracle (a bound, not an alternative).
_NOT_ALTERNATIVES = ("uplift", "rules_with_uplift", "oracle")


def policy_value(scored: pd.DataFrame, features: pd.DataFrame,
                 config: PolicyConfig) -> pd.Series:
    """What a returning customer is worth (currency, in margin) under ``config``: its
    ``customer_value``, revenue (the bundle's value model when scored has
    ``value_if_returned``; else mean basket × orders expected over the policy horizon at last
    year's pace) × its margin share (``scored["margin_share"]``, else the config's default)."""
    return pd.Series(customer_value(scored, features, config), index=features.index,
                     name="value")


def contact_margin_shares(tables: ck.Tables, contacts: pd.DataFrame, index: pd.Index,
                          config: PolicyConfig) -> np.ndarray | None:
    """Each contact's customer's gross-margin share as of the contact's ``as_of`` (the
    revenue-weighted category mix under ``config.gross_margin``), in the order of ``index``
    (contact ids); None when every category has the default share."""
    margin = config.gross_margin
    if margin.uniform:
        return None
    out = pd.Series(np.nan, index=pd.Index(contacts["contact_id"]))
    for day, rows in contacts.groupby("as_of"):
        shares = margin_shares(tables, as_of=day, default=margin.default,
                               by_category=margin.by_category,
                               customer_ids=rows["customer_id"].unique())
        out.loc[rows["contact_id"].to_numpy()] = shares.reindex(rows["customer_id"]).to_numpy()
    return out.reindex(index).to_numpy(dtype=float)


def risk_scores(features: pd.DataFrame, tables: ck.Tables, *, as_of: pd.Timestamp,
                bundle: ModelBundle | None, margin_share: np.ndarray | None = None
                ) -> tuple[pd.DataFrame, str]:
    """The held-out campaign's customers scored as of ``as_of``, and where the scores come
    from: ``"bundle"`` (the serving path, :func:`churnkit.scoring.score_features`) or, without
    a bundle, ``"btyd_baseline"`` (:func:`training.baselines.btyd_risk_scores`). With
    ``margin_share`` the scores carry it (the policy's value is revenue × it)."""
    if bundle is not None:
        return score_features(features, bundle, explain=False, as_of=as_of,
                              margin_share=margin_share), "bundle"
    scored = btyd_risk_scores(features, tables, as_of=as_of)
    if margin_share is not None:
        scored = scored.assign(margin_share=margin_share)
    return scored, "btyd_baseline"


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
    risk_source: str  # "bundle" (scored as served) or "btyd_baseline"
    decisions: pd.DataFrame = field(repr=False)
    model: UpliftModel = field(repr=False)
    #: the held-out campaign's rows (features, arms, outcomes), each contact's value (currency)
    #: and cost per action, and on synthetic data the true uplift as sent: what a pooled
    #: estimate over several campaigns (:mod:`training.uplift_pooled`) recomputes from
    test: CampaignSet | None = field(default=None, repr=False)
    values: pd.Series | None = field(default=None, repr=False)
    costs: pd.DataFrame | None = field(default=None, repr=False)
    true_uplift: pd.DataFrame | None = field(default=None, repr=False)
    #: per contact, an outcome model's P(order) fitted on the earlier campaigns (set by the
    #: pooled evaluation for its doubly robust estimate; None here)
    outcome_prediction: pd.Series | None = field(default=None, repr=False)

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
        """``policy``'s profit / the best alternative's (doing nothing among them, at 0), the
        difference to it, and / the oracle's. With doing nothing the best alternative, the
        ratio is undefined (NaN) and the difference is the policy's own profit."""
        p = self.policies[self.profit_column]
        others = p.drop([policy, *_NOT_ALTERNATIVES], errors="ignore")
        if "do_nothing" not in others:
            others = pd.concat([others, pd.Series({"do_nothing": 0.0})])
        best = others.max()
        out = {"best_alternative": str(others.idxmax()),
               "vs_best_alternative": float(p[policy] / best) if best > 0 else float("nan"),
               "minus_best_alternative": float(p[policy] - best)}
        if "oracle" in p and p["oracle"] > 0:
            out["vs_oracle"] = float(p[policy] / p["oracle"])
        return out


def evaluate_uplift(tables: ck.Tables, *, as_of: object, truth: object | None = None,
                    holdout: str | None = None, model: UpliftModel | None = None,
                    bundle: ModelBundle | None = None, policy: PolicyConfig | None = None,
                    n_boot: int = 200, seed: int = 0, attribution_days: int = ATTRIBUTION_DAYS,
                    data: CampaignSet | None = None) -> UpliftEvaluation:
    """Fit on the campaigns closed before ``holdout`` (default: the latest closed by
    ``as_of``) and compare the policies on it (see the module docstring).

    ``bundle`` supplies churn scores and the value model (default: the BG/NBD baseline and the
    policy's past-pace value). ``policy``: the config whose values, costs (currency) and rules
    every policy uses (default: the bundle's, else the packaged one). ``data``: a
    :func:`campaign_training_set` already built for these campaigns (saves rebuilding it).
    """
    cutoff = as_utc_timestamp(as_of)
    closed = closed_campaigns(tables, as_of=cutoff, attribution_days=attribution_days)
    if not closed:
        raise ValueError("contacts: no campaign whose attribution window closed by "
                         f"{cutoff:%Y-%m-%d}; nothing to hold out")
    holdout = holdout or closed[-1]
    if holdout not in closed:
        raise ValueError(f"contacts: campaign {holdout!r} is unknown or its attribution window "
                         f"has not closed by {cutoff:%Y-%m-%d}")
    test = campaign_subset(data, [holdout]) if data is not None else \
        campaign_training_set(tables, [holdout])
    start = test.contacts["as_of"].min()
    train_ids = closed_campaigns(tables, as_of=start, attribution_days=attribution_days)
    if not train_ids:
        raise ValueError(f"contacts: no campaign closed before {holdout!r} to learn from")
    train = campaign_subset(data, train_ids) if data is not None else \
        campaign_training_set(tables, train_ids)
    model = model if model is not None else UpliftModel(attribution_days=attribution_days)
    model.fit(train.features, train.arm, train.outcome)

    f = test.features
    config = policy or getattr(bundle, "policy", None) or PolicyConfig.default()
    shares = contact_margin_shares(tables, test.contacts, f.index, config)
    scored, risk_source = risk_scores(f, tables, as_of=start, bundle=bundle,
                                      margin_share=shares)
    v = policy_value(scored, f, config)  # margin
    revenue = pd.Series(customer_revenue(scored, f, config), index=f.index)
    cost = cost_frame(cost_function(config), revenue, SEND_ACTIONS)
    predicted = model.predict(f)

    decisions = pd.DataFrame(index=f.index)
    decisions["do_nothing"] = "do_not_contact"
    decisions["rules"] = decide(scored, f, config, as_of=start)["action"].astype(object)
    # The rules with docs/domain.md's "postpone" filter: the config's trained averages, else the
    # averages of these targets' scores (scores only, no outcomes).
    trained = config.postpone
    averages = trained if trained is not None and trained.active else \
        postpone_references(scored, f, config).postpone
    decisions["rules_postponing"] = decide(
        scored, f, replace(config, postpone=averages), as_of=start)["action"].astype(object)
    decisions["funnel"] = funnel_decisions(f, config)["action"].to_numpy(dtype=object)
    decisions["promo_everyone"] = "promo_code"
    risk = scored["churn_probability"]
    top = risk.rank(ascending=False, method="first") <= np.ceil(0.1 * len(risk))
    decisions["promo_riskiest_decile"] = np.where(top, "promo_code", "do_not_contact")
    decisions["uplift"] = choose_by_uplift(predicted, v, cost)["action"]
    decisions["rules_with_uplift"] = decide(
        scored, f, config, uplift=predicted, as_of=start)["action"] \
        .astype(object)
    true_sent = true_best = None
    if truth is not None:
        true_best = true_uplift(truth, test)
        true_sent = true_best.mul(campaign_open_factor(truth, test), axis=0)
        decisions["oracle"] = choose_by_uplift(true_sent, v, cost)["action"]

    rows = {}
    for policy in decisions.columns:
        action = decisions[policy].to_numpy(dtype=object)
        row = {"contacted_share": float((action != "do_not_contact").mean()),
               "cost_per_1000": 1000 * float(chosen_values(cost, action).mean())}
        if true_sent is not None:
            for col, up in (("profit_per_1000_true", true_sent),
                            ("profit_per_1000_true_best_slot", true_best)):
                row[col] = 1000 * float((chosen_values(up, action) * v.to_numpy()
                                         - chosen_values(cost, action)).mean())
        row.update(ipw_profit(action, test.arm.to_numpy(dtype=object),
                              test.outcome.to_numpy(dtype=float), v.to_numpy(), cost,
                              n_boot, seed))
        rows[policy] = row
    policies = pd.DataFrame.from_dict(rows, orient="index")
    policies.index.name = "policy"

    qini, coefficients = qini_curves(predicted, test.arm, test.outcome)
    versus = pd.Series(dtype=float)
    if true_sent is not None:
        versus = pd.Series({a: _spearman(predicted[a], true_sent[a]) for a in model.actions_},
                           name="spearman")
    return UpliftEvaluation(holdout, start, train_ids, len(f), policies, qini, coefficients,
                            versus, "churnkit.policy.decide", risk_source, decisions, model,
                            test=test, values=v, costs=cost, true_uplift=true_sent)


def _spearman(a: pd.Series, b: pd.Series) -> float:
    """Spearman's rank correlation; NaN when either side is constant (it is undefined)."""
    if a.nunique() < 2 or b.nunique() < 2:
        return float("nan")
    return float(a.corr(b, method="spearman"))


def fit_and_evaluate_uplift(tables: ck.Tables, *, as_of: object, truth: object | None = None,
                            bundle: ModelBundle | None = None,
                            policy: PolicyConfig | None = None, n_boot: int = 200,
                            seed: int = 0, n_jobs: int = 1,
                            attribution_days: int = ATTRIBUTION_DAYS
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
                                 policy=policy, model=UpliftModel(**params), n_boot=n_boot,
                                 seed=seed, attribution_days=attribution_days, data=data)
    final = UpliftModel(**params).fit(data.features, data.arm, data.outcome)
    return final, evaluation


