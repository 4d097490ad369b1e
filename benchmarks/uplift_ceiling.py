"""Benchmark: how much of the oracle's profit any model of the observable features can reach.

Usage::

    .venv/bin/python benchmarks/uplift_ceiling.py [--customers 20000] [--seed 7]

Same setup as ``benchmarks/uplift.py`` (``training.uplift.evaluate_uplift``): the held-out
campaign is the latest one closed by END, the training campaigns those closed before its send
day, and every policy uses the same customer value and costs. The "observable ceiling" is, per
action, a LightGBM regressor of the TRUE expected uplift as the campaign sends (the generator's
``action_response_at`` times the open factor of a random consented channel and hour; 0 for
customers who had not decided to leave) on the features as of the send day, fitted on every
training contact whatever its arm. That is far more information than a real model gets (a
noise-free target for everyone instead of one noisy outcome under one arm), so its policy
``choose_by_uplift(prediction, value, cost)`` approximates the best policy that can be written
as a function of the features: profit is linear in the uplift, and value and cost are functions
of the features, so the best such policy chooses on E[true uplift | features].

Settings (feature set, sample weight, trees) are chosen on the last training campaign (fitted
on the ones before it), never on the held-out campaign. Diagnostic rows add latent inputs of the
generator to show which missing information costs the profit; they are not achievable.

Prints the validation grid, the policy table (markdown: contacted share, true profit per 1000
customers as sent and at the best channel and hour, share of the oracle's), the fit of the
ceiling model on the held-out campaign (R², Spearman per action) and wall times. About 7 minutes
at 20,000 customers (LightGBM on one thread; 8 settings × 6 actions on the validation split).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

import churnkit as ck
from churnkit.data.contract import SEND_ACTIONS
from churnkit.models.uplift import UpliftModel, uplift_feature_names, with_cause_evidence
from churnkit.policy import PolicyConfig, customer_revenue
from churnkit.policy.uplift_choice import choose_by_uplift, cost_frame, cost_function
from training.baselines import btyd_risk_scores
from training.campaign_set import CampaignSet, campaign_training_set, closed_campaigns
from training.campaign_set import campaign_subset as _subset
from training.uplift import UpliftEvaluation, evaluate_uplift, policy_value
from training.uplift_estimates import campaign_open_factor as _campaign_open_factor
from training.uplift_estimates import chosen_values as _chosen
from training.uplift_estimates import true_uplift as _true_uplift

START, END = "2023-01-01", "2025-07-01"
#: LightGBM settings tried (chosen on the validation campaign).
TREES = {
    "300x31": {"num_boost_round": 300, "num_leaves": 31, "learning_rate": 0.05,
               "min_data_in_leaf": 50},
    "600x15": {"num_boost_round": 600, "num_leaves": 15, "learning_rate": 0.05,
               "min_data_in_leaf": 100},
}
FEATURE_SETS = ("all", "uplift_model")
WEIGHTS = ("none", "value")
LATENT_CAUSE = ("latent_cause",)
LATENT_ALL = ("latent_cause", "latent_responsiveness", "latent_price_sensitivity",
              "latent_segment", "latent_open_factor")


@dataclass(frozen=True)
class Campaigns:
    """Contacts of some campaigns with what the ceiling needs: features, truth, value, cost."""

    data: CampaignSet
    true_sent: pd.DataFrame  # true uplift as the campaign sent (random channel and hour)
    true_best: pd.DataFrame  # true uplift at the best channel and hour
    latent: pd.DataFrame  # generator state the logs never show (diagnostics only)
    value: pd.Series
    cost: pd.DataFrame


@dataclass(frozen=True)
class Setting:
    """One ceiling model configuration."""

    features: str  # "all" or "uplift_model", optionally with latent columns
    weight: str  # "none" or "value"
    trees: str  # key of TREES
    latent: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        extra = f" + {','.join(self.latent)}" if self.latent else ""
        return f"{self.features}{extra} / weight {self.weight} / {self.trees}"


def markdown(frame: pd.DataFrame, formats: dict[str, str] | None = None) -> str:
    """A pipe table (no tabulate dependency); ``formats`` per column, default ``:,.0f``."""
    formats = formats or {}
    head = [frame.index.name or "", *map(str, frame.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in frame.iterrows():
        cells = [v if isinstance(v, str) else format(v, formats.get(str(c), ",.0f"))
                 for c, v in row.items()]
        lines.append("| " + " | ".join([str(name), *cells]) + " |")
    return "\n".join(lines)


def _value(features: pd.DataFrame) -> pd.Series:
    """The policy's customer value (margin) as evaluate_uplift computes it without a bundle
    (its BG/NBD baseline frame has no ``value_if_returned``, so only the features matter)."""
    return policy_value(pd.DataFrame(index=features.index), features, PolicyConfig.default())


def _revenue(features: pd.DataFrame) -> pd.Series:
    """The revenue the policy sizes value-scaled costs on (as evaluate_uplift does)."""
    return pd.Series(customer_revenue(pd.DataFrame(index=features.index), features,
                                      PolicyConfig.default()), index=features.index)


def _latent(truth: object, data: CampaignSet, open_factor: pd.Series) -> pd.DataFrame:
    """Per contact, the generator state behind its true uplift: the cause of the leave
    decision in force at the send day (-1: none), responsiveness, price sensitivity, segment
    and the campaign's open factor."""
    k = truth.kernel
    pop, d = k.pop, k.decisions
    position = pd.Series(np.arange(pop.n), index=pop.customer_id)
    rows = position.reindex(data.contacts["customer_id"].to_numpy()).to_numpy()
    cause = np.full(len(rows), -1.0)
    for day, idx in data.contacts.groupby("as_of").indices.items():
        as_sec = (day - k.grid.origin) / pd.Timedelta(seconds=1)
        live = (d["sec"] < as_sec) & ~(d["reversed_sec"] < as_sec)
        by_row = np.full(pop.n, -1.0)
        by_row[d["row"][live]] = d["cause"][live]  # as GroundTruth.action_response_at
        cause[idx] = by_row[rows[idx]]
    return pd.DataFrame({
        "latent_cause": cause,
        "latent_responsiveness": pop.responsiveness[rows],
        "latent_price_sensitivity": pop.price_sensitivity[rows],
        "latent_segment": pop.segment[rows].astype(float),
        "latent_open_factor": open_factor.to_numpy(),
    }, index=data.features.index)


def campaigns(tables: ck.Tables, truth: object, data: CampaignSet, ids: list[str],
              value: pd.Series | None = None) -> Campaigns:
    """The contacts of campaigns ``ids`` with their true uplift, value and cost."""
    sub = _subset(data, ids)
    true_best = _true_uplift(truth, sub)
    factor = _campaign_open_factor(truth, sub)
    true_sent = true_best.mul(factor, axis=0)
    v = _value(sub.features) if value is None else value
    cost = cost_frame(cost_function(), _revenue(sub.features), SEND_ACTIONS)
    return Campaigns(sub, true_sent, true_best, _latent(truth, sub, factor), v, cost)


def design(c: Campaigns, setting: Setting, categories: list[str]) -> pd.DataFrame:
    """The model inputs: the uplift model's (its feature list and cause evidence flags) or every
    column of the feature frame (``top_category`` as a LightGBM category), plus latent ones."""
    f = with_cause_evidence(c.data.features)
    if setting.features == "uplift_model":
        x = f[uplift_feature_names(c.data.features)].astype("float64")
    else:
        x = f.copy()
        for col in x.columns:
            if pd.api.types.is_bool_dtype(x[col]):
                x[col] = x[col].astype("float64")
        x["top_category"] = pd.Categorical(f["top_category"], categories=categories)
    return x.join(c.latent[list(setting.latent)])


def fit_predict(train: Campaigns, test: Campaigns, setting: Setting) -> pd.DataFrame:
    """Per action, a LightGBM regressor of the true uplift (as sent) fitted on ``train``;
    its predictions for ``test``."""
    categories = sorted(train.data.features["top_category"].dropna().unique())
    x_train, x_test = design(train, setting, categories), design(test, setting, categories)
    params = dict(TREES[setting.trees])
    rounds = params.pop("num_boost_round")
    params |= {"objective": "regression", "feature_fraction": 0.8, "lambda_l2": 1.0,
               "seed": 0, "num_threads": 1, "deterministic": True, "force_col_wise": True,
               "verbosity": -1}
    weight = train.value.clip(lower=1.0).to_numpy() if setting.weight == "value" else None
    out = pd.DataFrame(0.0, index=test.data.features.index, columns=list(SEND_ACTIONS))
    for action in SEND_ACTIONS:
        data = lgb.Dataset(x_train, label=train.true_sent[action].to_numpy(), weight=weight)
        out[action] = lgb.train(params, data, num_boost_round=rounds).predict(x_test)
    return out


def contact_profit(action: np.ndarray, c: Campaigns) -> pd.DataFrame:
    """Per contact, the true incremental profit of ``action`` as the campaign sent and at the
    best channel and hour (evaluate_uplift's ``profit_per_1000_true*`` before the mean)."""
    cost = _chosen(c.cost, action)
    return pd.DataFrame({col: _chosen(up, action) * c.value.to_numpy() - cost
                         for col, up in (("profit_per_1000_true", c.true_sent),
                                         ("profit_per_1000_true_best_slot", c.true_best))})


def profit_row(action: np.ndarray, c: Campaigns) -> dict[str, float]:
    """evaluate_uplift's true figures of a policy: contacted share and incremental profit per
    1000 customers as the campaign sent and at the best channel and hour."""
    row = {"contacted_share": float((action != "do_not_contact").mean())}
    return row | (1000 * contact_profit(action, c).mean()).to_dict()


def policy(predicted: pd.DataFrame, c: Campaigns) -> np.ndarray:
    return choose_by_uplift(predicted, c.value, c.cost)["action"].to_numpy(dtype=object)


def select(train: Campaigns, valid: Campaigns, settings: list[Setting]) -> pd.DataFrame:
    """Validation profit (as sent) of each setting's policy on the last training campaign."""
    rows = {s.name: profit_row(policy(fit_predict(train, valid, s), valid), valid)
            for s in settings}
    oracle = profit_row(policy(valid.true_sent, valid), valid)["profit_per_1000_true"]
    table = pd.DataFrame.from_dict(rows, orient="index")
    table["share_of_oracle"] = table["profit_per_1000_true"] / oracle
    table.index.name = f"setting (validation, oracle {oracle:,.0f})"
    return table.sort_values("profit_per_1000_true", ascending=False)


def best(table: pd.DataFrame, settings: list[Setting],
         keep: Callable[[Setting], bool] = lambda s: True) -> Setting:
    by_name = {s.name: s for s in settings if keep(s)}
    return by_name[next(n for n in table.index if n in by_name)]


def fit_quality(predicted: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Per action, R² and Spearman of predicted vs true uplift (as sent)."""
    rows = {}
    for a in SEND_ACTIONS:
        p, t = predicted[a], truth[a]
        r2 = 1 - float(((p - t) ** 2).sum() / ((t - t.mean()) ** 2).sum())
        rows[a] = {"r2": r2, "spearman": float(p.corr(t, method="spearman"))}
    return pd.DataFrame.from_dict(rows, orient="index")


def policy_table(actions: dict[str, np.ndarray], c: Campaigns, n_boot: int,
                 seed: int = 0) -> pd.DataFrame:
    """Per policy, :func:`profit_row` and its share of the oracle's profit, with a 95%
    bootstrap interval over the held-out contacts (paired: the same resamples for all)."""
    table = pd.DataFrame.from_dict({n: profit_row(a, c) for n, a in actions.items()},
                                   orient="index")
    oracle = table.loc["oracle"]
    table["share_of_oracle_sent"] = table["profit_per_1000_true"] / oracle["profit_per_1000_true"]
    table["share_of_oracle_best_slot"] = (table["profit_per_1000_true_best_slot"]
                                          / oracle["profit_per_1000_true_best_slot"])
    sent = {n: contact_profit(a, c)["profit_per_1000_true"].to_numpy()
            for n, a in actions.items()}
    idx = np.random.default_rng(seed).integers(0, len(c.value), (n_boot, len(c.value)))
    base = sent["oracle"][idx].mean(axis=1)
    table["share_sent_95ci"] = [
        "{:.2f}-{:.2f}".format(*np.quantile(sent[n][idx].mean(axis=1) / base, [0.025, 0.975]))
        for n in table.index]
    table["contacted_share"] *= 100
    table.index.name = "policy"
    return table


def check_against(ev: UpliftEvaluation, rows: dict[str, dict[str, float]]) -> None:
    """The figures recomputed here must be evaluate_uplift's (same value, cost, truth)."""
    for name in ("oracle", "uplift", "rules"):
        theirs = ev.policies.loc[name]
        for col, ours in rows[name].items():
            if not np.isclose(ours, theirs[col], rtol=1e-9, atol=1e-6):
                raise AssertionError(f"{name} {col}: {ours} here, {theirs[col]} in "
                                     "evaluate_uplift")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bootstrap", type=int, default=1000,
                        help="resamples of the held-out contacts for the share intervals")
    args = parser.parse_args()

    t0 = time.perf_counter()
    tables, truth = ck.synth.generate(args.customers, seed=args.seed, start=START, end=END)
    closed = closed_campaigns(tables, as_of=END)
    data = campaign_training_set(tables, closed)
    print(f"shop: {args.customers:,} customers, {len(tables.contacts):,} contacts, campaign "
          f"set {len(data.features):,} rows ({time.perf_counter() - t0:.1f} s)")

    t1 = time.perf_counter()
    ev = evaluate_uplift(tables, as_of=END, truth=truth, n_boot=20, data=data,
                         model=UpliftModel(learner="r", n_jobs=1))
    print(f"evaluate_uplift (R-learner): {time.perf_counter() - t1:.1f} s")
    holdout_sub = _subset(data, [ev.holdout])
    v = policy_value(btyd_risk_scores(holdout_sub.features, tables, as_of=ev.as_of),
                     holdout_sub.features, PolicyConfig.default())
    if not np.allclose(v, _value(holdout_sub.features)):
        raise AssertionError("customer value differs from evaluate_uplift's")
    test = campaigns(tables, truth, data, [ev.holdout], value=v)
    train = campaigns(tables, truth, data, ev.train_campaigns)
    fit_ids, valid_id = ev.train_campaigns[:-1], ev.train_campaigns[-1]
    print(f"held-out {ev.holdout} ({len(test.value):,} contacts); training "
          f"{len(ev.train_campaigns)} campaigns ({len(train.value):,} contacts); "
          f"validation {valid_id}")

    t2 = time.perf_counter()
    settings = [Setting(f, w, t) for f in FEATURE_SETS for w in WEIGHTS for t in TREES]
    grid = select(campaigns(tables, truth, data, fit_ids), campaigns(tables, truth, data,
                                                                   [valid_id]), settings)
    chosen = best(grid, settings)
    print(f"\n### validation grid ({time.perf_counter() - t2:.1f} s)")
    print(markdown(grid, {"contacted_share": ".3f", "share_of_oracle": ".3f"}))
    print(f"chosen: {chosen.name}")

    t3 = time.perf_counter()
    predicted = fit_predict(train, test, chosen)
    models = {
        "observable ceiling (LightGBM on true uplift)": predicted,
        "  same, uplift model's features only": fit_predict(
            train, test, best(grid, settings, lambda s: s.features == "uplift_model")),
        "  diagnostic: + latent leave cause": fit_predict(
            train, test, Setting(chosen.features, chosen.weight, chosen.trees, LATENT_CAUSE)),
        "  diagnostic: + all latent inputs": fit_predict(
            train, test, Setting(chosen.features, chosen.weight, chosen.trees, LATENT_ALL)),
    }
    actions = {name: ev.decisions[name].to_numpy(dtype=object)
               for name in ("oracle", "uplift", "rules")}
    check_against(ev, {name: profit_row(a, test) for name, a in actions.items()})
    actions |= {name: policy(p, test) for name, p in models.items()}
    order = ["oracle", *models, "uplift", "rules"]
    table = policy_table({n: actions[n] for n in order}, test, args.bootstrap).rename(
        index={"uplift": "our uplift policy (R-learner)"})
    print(f"\n### held-out {ev.holdout}: true profit per 1000 customers "
          f"({time.perf_counter() - t3:.1f} s)")
    print(markdown(table, {"contacted_share": ".1f", "share_of_oracle_sent": ".2f",
                           "share_of_oracle_best_slot": ".2f"}))

    quality = fit_quality(predicted, test.true_sent)
    quality["spearman_r_learner"] = ev.uplift_vs_truth.reindex(quality.index)
    print("\n### ceiling model vs true uplift (as sent) on the held-out campaign")
    print(markdown(quality, {c: ".3f" for c in quality.columns}))
    nonzero = float((test.true_best.abs().sum(axis=1) > 0).mean())
    decided = float((test.latent["latent_cause"] >= 0).mean())
    print(f"\nheld-out contacts with nonzero true uplift: {nonzero:.1%} "
          f"(had a live leave decision: {decided:.1%})")
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
