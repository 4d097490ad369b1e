"""Which policy pays, judged over the last several campaigns rather than one.

One campaign's control group (a few hundred contacts) is too small to judge a policy: an
unlucky draw among its non-leavers reads as "the policy loses money". So the evaluation rolls
its origin over the last ``K`` closed campaigns (default :data:`LAST_CAMPAIGNS`): each is held
out in turn, with an uplift model fitted only on the campaigns closed before it
(:func:`training.uplift.evaluate_uplift`), and every policy decides on its contacts. The
estimates are then pooled.

Estimator (per 1000 contacts; stratified inverse-propensity, as on one campaign): in campaign
``k``, the contacts a policy sends action ``a`` form a stratum; its effect is the mean of
``value × returned − cost`` among those randomized to ``a`` minus the mean of ``value × returned``
among those randomized to the control group. The pooled estimate is

    1000 / N × Σ over campaigns k and actions a of  n(k, a) × effect(k, a)

(``N`` contacts in all, ``n(k, a)`` in the stratum; ``do_not_contact`` strata add 0). A stratum
with nobody randomized to ``a`` or nobody to the control group has no estimate: it is counted
as 0 and **reported** (:attr:`PooledUplift.dropped`, and each policy's ``dropped_share``), never
silently. Intervals: 95% percentile bootstrap, resampling contacts within each campaign; every
policy is estimated on the same resamples, so the differences between policies
(:data:`PAIRS`) get paired intervals. On synthetic data the truth over the same contacts
(the true uplift as sent × value − cost) stands beside each estimate.

Doubly robust variant (``profit_per_1000_dr``): the same strata and means, with each contact's
``value × returned`` replaced by its residual ``value × (returned − m(x))`` in both the treated and
the control mean, where ``m(x)`` is an outcome model (P(order within the window), LightGBM on the
uplift model's inputs) fitted only on the campaigns closed before the held-out one. Under
randomization the subtracted term has the same mean in both arms of a stratum, so the estimand is
unchanged; when ``m`` predicts who orders anyway, the residuals vary less than the outcomes and
the interval narrows (measured in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import lightgbm as lgb
import numpy as np
import pandas as pd

import churnkit as ck
from churnkit.data import CONTROL, as_utc_timestamp, model_matrix
from churnkit.models import UPLIFT_FEATURES, UpliftModel
from churnkit.policy import PolicyConfig
from churnkit.scoring import ModelBundle
from churnkit.stats import percentile_interval
from training.campaign_set import (
    ATTRIBUTION_DAYS,
    CampaignSet,
    campaign_subset,
    campaign_training_set,
    closed_campaigns,
)
from training.uplift import UpliftEvaluation, evaluate_uplift
from training.uplift_estimates import chosen_values

#: Campaigns the rolling evaluation holds out in turn (the latest ones closed by as_of).
LAST_CAMPAIGNS = 6
#: The policy differences reported with paired intervals (first − second).
PAIRS = (("uplift", "rules"), ("uplift", "do_nothing"), ("rules", "do_nothing"),
         ("uplift", "funnel"), ("rules_with_uplift", "rules"),
         ("rules_with_uplift", "do_nothing"), ("rules_with_uplift", "funnel"),
         ("funnel", "do_nothing"))

#: The comparisons the console, the report and the demo put in words: the deployed policy (the
#: rules with the uplift) against doing nothing, the rules and the funnel shops run today.
VERDICT_PAIRS = (("rules_with_uplift", "do_nothing"), ("rules_with_uplift", "rules"),
                 ("rules_with_uplift", "funnel"), ("uplift", "do_nothing"),
                 ("rules", "do_nothing"), ("funnel", "do_nothing"))


@dataclass(frozen=True)
class PooledUplift:
    """The policies over the last campaigns (see the module docstring)."""

    campaigns: list[str]
    n_contacts: int
    #: index policy: contacted_share, profit_per_1000_ipw (+ _low, _high), dropped_share and,
    #: on synthetic data, profit_per_1000_true
    policies: pd.DataFrame
    #: index "a - b": difference, low, high, share_above_zero and, on synthetic data, true
    differences: pd.DataFrame
    #: campaign, policy, action, contacts, treated, control: strata without an estimate
    dropped: pd.DataFrame
    #: index campaign, columns policy: each campaign's own IPW estimate per 1000
    per_campaign: pd.DataFrame
    evaluations: list[UpliftEvaluation] = field(repr=False, default_factory=list)

    def flat_metrics(self) -> dict[str, float]:
        """MLflow metrics: ``uplift_pooled_<policy>`` (+ ``_low``/``_high``) and
        ``uplift_pooled_<a>_minus_<b>`` (+ interval) per 1000 contacts."""
        out: dict[str, float] = {"uplift_pooled_campaigns": float(len(self.campaigns))}
        for policy, row in self.policies.iterrows():
            for suffix, col in (("", "profit_per_1000_ipw"), ("_low", "profit_per_1000_ipw_low"),
                                ("_high", "profit_per_1000_ipw_high")):
                out[f"uplift_pooled_{policy}{suffix}"] = float(row[col])
        for pair, row in self.differences.iterrows():
            key = "uplift_pooled_" + pair.replace(" - ", "_minus_")
            out |= {key: float(row["difference"]), f"{key}_low": float(row["low"]),
                    f"{key}_high": float(row["high"])}
        return out

    @property
    def estimator(self) -> str:
        """The headline estimate: ``dr`` when computed (same strata, the outcome model's
        predictable part removed), else ``ipw``."""
        return "dr" if "profit_per_1000_dr" in self.policies else "ipw"

    def verdict(self, first: str = "uplift", second: str = "do_nothing") -> str:
        """One sentence on ``first − second`` by the headline estimate: pays more, pays less,
        or cannot be told apart (the paired 95% interval holds 0)."""
        pair = f"{first} - {second}"
        if pair not in self.differences.index:
            return f"{pair}: not estimated"
        r = self.differences.loc[pair]
        p = "dr_" if self.estimator == "dr" else ""
        value, low, high = r[f"{p}difference"], r[f"{p}low"], r[f"{p}high"]
        words = ("pays more" if low > 0 else "pays less" if high < 0
                 else "cannot be told apart from it")
        return (f"{first} vs {second} over {len(self.campaigns)} campaigns: {words} "
                f"({value:+,.0f} per 1000 contacts [{low:+,.0f}, {high:+,.0f}], "
                f"{self.estimator.upper()})")


#: The doubly robust estimate's outcome model: small, regularized trees (a few thousand contacts).
OUTCOME_PARAMS = {"objective": "binary", "num_leaves": 8, "min_data_in_leaf": 100,
                  "learning_rate": 0.05, "feature_fraction": 0.8, "verbose": -1,
                  "num_threads": 1, "deterministic": True}
OUTCOME_ROUNDS = 200


def outcome_model(train: CampaignSet, features: pd.DataFrame, *, seed: int = 0) -> np.ndarray:
    """P(order within the attribution window) for the rows of ``features``, from a model fitted
    on ``train`` (earlier campaigns, every arm): the doubly robust estimate's ``m(x)``."""
    names = [n for n in UPLIFT_FEATURES if n in train.features.columns]
    y = train.outcome.to_numpy(dtype=float)
    if not names or y.min() == y.max():
        return np.full(len(features), float(y.mean()) if len(y) else 0.0)
    data = lgb.Dataset(model_matrix(train.features, names), label=y)
    booster = lgb.train(OUTCOME_PARAMS | {"seed": seed}, data, num_boost_round=OUTCOME_ROUNDS)
    return np.asarray(booster.predict(model_matrix(features, names)), dtype=float)


def rolling_evaluations(tables: ck.Tables, *, as_of: object, last: int = LAST_CAMPAIGNS,
                        attribution_days: int = ATTRIBUTION_DAYS, **kwargs
                        ) -> list[UpliftEvaluation]:
    """:func:`training.uplift.evaluate_uplift` on each of the last ``last`` campaigns closed
    by ``as_of`` that has an earlier closed campaign to learn from, oldest first (``kwargs``
    go to it: truth, bundle, policy, n_boot, seed, model settings via ``model_factory``)."""
    cutoff = as_utc_timestamp(as_of)
    closed = closed_campaigns(tables, as_of=cutoff, attribution_days=attribution_days)
    data = kwargs.pop("data", None) or (campaign_training_set(tables, closed) if closed
                                        else None)
    factory = kwargs.pop("model_factory", None)
    out = []
    for holdout in closed[-last:]:
        start = data.contacts.loc[data.contacts["campaign_id"] == holdout, "as_of"].min()
        if not closed_campaigns(tables, as_of=start, attribution_days=attribution_days):
            continue  # nothing closed before it to learn from
        ev = evaluate_uplift(tables, as_of=cutoff, holdout=holdout, data=data,
                             attribution_days=attribution_days,
                             model=factory() if factory is not None else None, **kwargs)
        m = outcome_model(campaign_subset(data, ev.train_campaigns), ev.test.features,
                          seed=kwargs.get("seed", 0))
        out.append(replace(ev, outcome_prediction=pd.Series(m, index=ev.test.features.index)))
    if not out:
        raise ValueError("contacts: no closed campaign with an earlier one to learn from; the "
                         "pooled evaluation needs at least two closed campaigns")
    return out


def _campaign_rows(ev: UpliftEvaluation) -> pd.DataFrame:
    """One row per contact of the held-out campaign: arm, value × returned, cost of the arm."""
    test = ev.test
    arm = test.arm.to_numpy(dtype=object)
    value = ev.values.to_numpy(dtype=float)
    m = (ev.outcome_prediction.to_numpy(dtype=float) if ev.outcome_prediction is not None
         else np.full(len(arm), np.nan))
    return pd.DataFrame({
        "campaign": ev.holdout, "arm": arm,
        "gain": value * test.outcome.to_numpy(dtype=float), "expected_gain": value * m,
        "arm_cost": chosen_values(ev.costs, arm)}, index=ev.decisions.index)


class _Strata:
    """The (campaign, action) strata of every policy, coded once for fast weighted sums."""

    def __init__(self, rows: pd.DataFrame, decisions: pd.DataFrame, actions: list[str],
                 *, residual: bool = False) -> None:
        self.campaigns = list(dict.fromkeys(rows["campaign"]))
        self.actions = actions
        k = pd.Categorical(rows["campaign"], categories=self.campaigns).codes.astype(np.int64)
        self.size = len(self.campaigns) * len(actions)
        arm = rows["arm"].to_numpy(dtype=object)
        self.control = arm == CONTROL
        self.gain = rows["gain"].to_numpy(dtype=float)
        if residual:  # the doubly robust estimate: outcomes minus what the model expected
            self.gain = self.gain - rows["expected_gain"].to_numpy(dtype=float)
        self.net = self.gain - rows["arm_cost"].to_numpy(dtype=float)
        self.keys, self.treated = {}, {}
        for policy in decisions.columns:
            chosen = decisions[policy].to_numpy(dtype=object)
            code = pd.Categorical(chosen, categories=actions).codes.astype(np.int64)
            self.keys[policy] = k * len(actions) + code
            self.treated[policy] = (arm == chosen) & (chosen != "do_not_contact")
        self.sending = np.array([a != "do_not_contact" for a in actions] * len(self.campaigns))

    def sums(self, policy: str, w: np.ndarray) -> tuple[np.ndarray, ...]:
        key, t, c = self.keys[policy], self.treated[policy], self.control
        bc = lambda weights: np.bincount(key, weights=weights, minlength=self.size)  # noqa: E731
        return bc(w), bc(w * t), bc(w * t * self.net), bc(w * c), bc(w * c * self.gain)

    def estimate(self, policy: str, w: np.ndarray) -> tuple[float, np.ndarray]:
        """Pooled profit per 1000 under weights ``w`` (resample counts), and the strata that
        had no estimate (bool per stratum)."""
        n, nt, st, nc, sc = self.sums(policy, w)
        missing = self.sending & (n > 0) & ((nt == 0) | (nc == 0))
        ok = self.sending & ~missing & (n > 0)
        effect = np.zeros(self.size)
        effect[ok] = st[ok] / nt[ok] - sc[ok] / nc[ok]
        return 1000 * float((n * effect).sum() / w.sum()), missing


def pool(evaluations: list[UpliftEvaluation], *, n_boot: int = 200, seed: int = 0,
         level: float = 0.95) -> PooledUplift:
    """The pooled estimates of every policy the evaluations share (see the module docstring):
    IPW, and doubly robust when every evaluation carries an outcome prediction."""
    rows = pd.concat([_campaign_rows(ev) for ev in evaluations])
    policies = [p for p in evaluations[0].decisions.columns
                if all(p in ev.decisions for ev in evaluations)]
    decisions = pd.concat([ev.decisions[policies] for ev in evaluations])
    actions = sorted({a for p in policies for a in decisions[p].unique()} | {"do_not_contact"})
    estimators = {"ipw": _Strata(rows, decisions, actions)}
    if rows["expected_gain"].notna().all():
        estimators["dr"] = _Strata(rows, decisions, actions, residual=True)
    strata = estimators["ipw"]
    n = len(rows)
    ones = np.ones(n)
    point = {(e, p): s.estimate(p, ones) for e, s in estimators.items() for p in policies}
    rng = np.random.default_rng(seed)
    campaign = rows["campaign"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, campaign[1:] != campaign[:-1], True])
    boots = {e: np.empty((n_boot, len(policies))) for e in estimators}
    for b in range(n_boot):
        idx = np.concatenate([rng.integers(lo, hi, hi - lo)
                              for lo, hi in itertools.pairwise(bounds)])
        w = np.bincount(idx, minlength=n).astype(float)
        for e, s in estimators.items():
            boots[e][b] = [s.estimate(p, w)[0] for p in policies]
    truth = _truth(evaluations, policies)
    table, dropped = {}, []
    for j, p in enumerate(policies):
        missing = point["ipw", p][1]
        counts = np.bincount(strata.keys[p], minlength=strata.size)
        row = {"contacted_share": float((decisions[p].to_numpy(dtype=object)
                                         != "do_not_contact").mean())}
        for e in estimators:
            low, high = percentile_interval(boots[e][:, j], level)
            row |= {f"profit_per_1000_{e}": point[e, p][0], f"profit_per_1000_{e}_low": low,
                    f"profit_per_1000_{e}_high": high}
        row["dropped_share"] = float(counts[missing].sum() / n)
        if truth is not None:
            row["profit_per_1000_true"] = truth[p]
        table[p] = row
        treated = np.bincount(strata.keys[p], weights=strata.treated[p], minlength=strata.size)
        control = np.bincount(strata.keys[p], weights=strata.control, minlength=strata.size)
        for s in np.flatnonzero(missing):
            dropped.append({"campaign": strata.campaigns[s // len(actions)], "policy": p,
                            "action": actions[s % len(actions)], "contacts": int(counts[s]),
                            "treated": int(treated[s]), "control": int(control[s])})
    diffs = {}
    for a, b in PAIRS:
        if a not in policies or b not in policies:
            continue
        row = {}
        for e in estimators:
            d = boots[e][:, policies.index(a)] - boots[e][:, policies.index(b)]
            low, high = percentile_interval(d, level)
            prefix = "" if e == "ipw" else f"{e}_"
            row |= {f"{prefix}difference": point[e, a][0] - point[e, b][0],
                    f"{prefix}low": low, f"{prefix}high": high}
        if truth is not None:
            row["true"] = truth[a] - truth[b]
        diffs[f"{a} - {b}"] = row
    per_campaign = pd.DataFrame(
        {p: [strata.estimate(p, (campaign == c).astype(float))[0] for c in strata.campaigns]
         for p in policies}, index=pd.Index(strata.campaigns, name="campaign"))
    policies_frame = pd.DataFrame.from_dict(table, orient="index").rename_axis("policy")
    differences = pd.DataFrame.from_dict(diffs, orient="index").rename_axis("pair")
    dropped_frame = pd.DataFrame(dropped, columns=["campaign", "policy", "action", "contacts",
                                                   "treated", "control"])
    return PooledUplift(strata.campaigns, n, policies_frame, differences, dropped_frame,
                        per_campaign, list(evaluations))


def _truth(evaluations: list[UpliftEvaluation], policies: list[str]) -> dict | None:
    """Per policy, the true profit per 1000 over the same contacts (synthetic data only)."""
    if not all(ev.true_uplift is not None for ev in evaluations):
        return None
    out = {}
    for p in policies:
        parts = []
        for ev in evaluations:
            action = ev.decisions[p].to_numpy(dtype=object)
            parts.append(chosen_values(ev.true_uplift, action) * ev.values.to_numpy(dtype=float)
                         - chosen_values(ev.costs, action))
        out[p] = 1000 * float(np.concatenate(parts).mean())
    return out


def pooled_uplift(tables: ck.Tables, *, as_of: object, last: int = LAST_CAMPAIGNS,
                  n_boot: int = 200, seed: int = 0, **kwargs) -> PooledUplift:
    """:func:`rolling_evaluations` then :func:`pool` (``kwargs`` as for the former)."""
    evaluations = rolling_evaluations(tables, as_of=as_of, last=last, n_boot=n_boot, seed=seed,
                                      **kwargs)
    return pool(evaluations, n_boot=n_boot, seed=seed)


def fit_and_evaluate_pooled(tables: ck.Tables, *, as_of: object, truth: object | None = None,
                            bundle: ModelBundle | None = None,
                            policy: PolicyConfig | None = None, last: int = LAST_CAMPAIGNS,
                            n_boot: int = 200, seed: int = 0, n_jobs: int = 1,
                            attribution_days: int = ATTRIBUTION_DAYS
                            ) -> tuple[UpliftModel, UpliftEvaluation, PooledUplift]:
    """The bundle's uplift model (fitted on every campaign closed by ``as_of``), the latest
    campaign's held-out evaluation and the pooled one over the last ``last`` campaigns (whose
    latest is that same held-out evaluation), building the campaign set once.

    Pipeline wiring: ``uplift, latest, pooled = fit_and_evaluate_pooled(tables, as_of=as_of)``.
    """
    closed = closed_campaigns(tables, as_of=as_of, attribution_days=attribution_days)
    if not closed:
        raise ValueError("contacts: no campaign whose attribution window closed by "
                         f"{as_utc_timestamp(as_of):%Y-%m-%d}; nothing to hold out")
    data = campaign_training_set(tables, closed)
    params = {"random_state": seed, "n_jobs": n_jobs, "attribution_days": attribution_days}
    evaluations = rolling_evaluations(
        tables, as_of=as_of, last=max(last, 1), truth=truth, bundle=bundle, policy=policy,
        n_boot=n_boot, seed=seed, attribution_days=attribution_days, data=data,
        model_factory=lambda: UpliftModel(**params))
    final = UpliftModel(**params).fit(data.features, data.arm, data.outcome)
    return final, evaluations[-1], pool(evaluations, n_boot=n_boot, seed=seed)
