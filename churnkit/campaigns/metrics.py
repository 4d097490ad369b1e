"""Campaign metrics against the randomized control group, with bootstrap confidence intervals.

docs/domain.md "Measuring win-back": without a holdout there is no way to tell a win-back from a
customer who would have come back anyway, so every metric is given for the treatment group, the
control group, and as the treatment's increment over control.

Definitions (per contact row of the ``contacts`` table; see docs/campaigns.md):

- **campaign**: the ``campaign`` column when present and filled; otherwise the contacts sent in
  the same calendar month (UTC), named ``YYYY-MM``.
- **returned**: ``converted_at`` is filled (the data contract's attribution rule, the same for
  both groups: first order within the attribution window after ``sent_at``).
- **revenue after**: amounts of the customer's orders (not cancelled) in
  ``[sent_at, sent_at + window_days)``, counted for returned customers only.
- **margin after**: the same orders' amounts × the gross-margin share of each order's category
  (the policy config's ``gross_margin``: ``by_category``, else ``default``; docs/campaigns.md
  "Money in margin").
- **cost**: the cost of the action for treatment rows (``costs(action, value)``, value = the
  customer's revenue in the 365 days before ``sent_at``), 0 for control rows (never sent).

Metrics: win-back rate = returned / contacted; cost per returned customer = cost / returned
(and per *incremental* returned customer); ROI = (margin from returned − cost) / cost (and the
incremental ROI, with the control group's margin per contact subtracted); ROI on revenue =
(revenue from returned − cost) / cost, docs/domain.md's formula, beside it; revenue and margin
per contact; basket after return
= revenue of returned / returned (and the mean order value after the return relative to the
same customers' mean order value before); time to first repeat order = mean days from
``sent_at`` to ``converted_at``; repeat purchase rate = returned with 2+ orders in the window /
returned.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from churnkit.data.contract import as_utc_timestamp
from churnkit.policy import GrossMargin, PolicyConfig, cost_function
from churnkit.stats import percentile_interval, resample_counts

WINDOW_DAYS = 90
#: Row sums the metrics are ratios of (the bootstrap resamples these).
_SUMS = ("n", "returned", "revenue", "cost", "days", "repeat", "orders", "basket_before",
         "margin")
METRIC_LABELS = {
    "winback_rate": "win-back rate",
    "cost_per_returned": "cost per returned customer",
    "cost_per_incremental_return": "cost per incremental returned customer",
    "roi": "ROI in margin (margin from returned − cost) / cost",
    "incremental_roi": "incremental ROI in margin (vs control)",
    "roi_revenue": "ROI on revenue (revenue from returned − cost) / cost",
    "basket_after_return": "basket after return (revenue / returned)",
    "basket_vs_before": "order value after return / before",
    "days_to_first_order": "time to first repeat order (days)",
    "repeat_purchase_rate": "repeat purchase rate (2+ orders)",
    "revenue_per_contact": "revenue from returned per contact",
    "margin_per_contact": "margin from returned per contact",
}


def with_campaign_ids(contacts: pd.DataFrame) -> pd.DataFrame:
    """``contacts`` with a ``campaign_id`` column: ``campaign`` when filled, else the UTC month
    of ``sent_at`` (``YYYY-MM``)."""
    sent = pd.to_datetime(contacts["sent_at"], utc=True)
    month = sent.dt.strftime("%Y-%m")
    if "campaign" in contacts.columns:
        named = contacts["campaign"].astype("object")
        ids = named.where(named.notna() & (named.astype(str) != ""), month)
    else:
        ids = month
    return contacts.assign(campaign_id=ids.astype(str).to_numpy())


def campaign_ids(contacts: pd.DataFrame) -> list[str]:
    """Campaign ids in order of first send time."""
    c = with_campaign_ids(contacts)
    return list(c.groupby("campaign_id")["sent_at"].min().sort_values().index)


def campaign_contacts(contacts: pd.DataFrame | None, campaign: str) -> pd.DataFrame:
    """The contact rows of one campaign (raises ``ValueError`` naming known ids if unknown)."""
    if contacts is None or len(contacts) == 0:
        raise ValueError("table contacts is absent or empty: no campaign to report on")
    c = with_campaign_ids(contacts)
    rows = c[c["campaign_id"] == str(campaign)]
    if rows.empty:
        known = campaign_ids(contacts)
        shown = ", ".join(known[-6:])
        raise ValueError(f"contacts: no campaign {campaign!r} (column 'campaign', or the send "
                         f"month YYYY-MM when it is empty); {len(known)} known, latest: {shown}")
    return rows


def campaign_outcomes(tables: object, campaign: str, *, window_days: int = WINDOW_DAYS,
                      costs: Mapping[str, float] | Callable | None = None,
                      margin: GrossMargin | None = None) -> pd.DataFrame:
    """One row per contact of ``campaign``: group, action, returned, days to return, orders,
    revenue and margin in the window, mean order value before, cost (see the module docstring).

    ``margin``: the gross-margin shares (default: the packaged policy config's).

    ``attrs`` carries ``campaign``, ``sent_from``, ``sent_to``, ``window_days`` and ``complete``
    (False when the data ends before the last contact's window does).
    """
    contacts = campaign_contacts(tables.contacts, campaign)
    orders = tables.orders
    margin = margin or PolicyConfig.default().gross_margin
    kept = orders[orders["status"] != "cancelled"]
    share = (kept["category"].map(margin.share_of).astype(float)
             if "category" in kept.columns else pd.Series(margin.default, index=kept.index))
    orders = kept[["customer_id", "ordered_at", "amount"]].assign(
        margin=kept["amount"].to_numpy(dtype=float) * share.to_numpy(dtype=float))
    c = contacts[["contact_id", "customer_id", "sent_at", "channel", "action", "group",
                  "opened_at", "converted_at"]].reset_index(drop=True)
    window = pd.Timedelta(days=window_days)
    pairs = c[["contact_id", "customer_id", "sent_at"]].merge(orders, on="customer_id")
    after = pairs[(pairs["ordered_at"] >= pairs["sent_at"])
                  & (pairs["ordered_at"] < pairs["sent_at"] + window)]
    before = pairs[(pairs["ordered_at"] < pairs["sent_at"])]
    year = before[before["ordered_at"] >= before["sent_at"] - pd.Timedelta(days=365)]
    agg_after = after.groupby("contact_id")["amount"].agg(["size", "sum"])
    margin_after = after.groupby("contact_id")["margin"].sum()
    c["returned"] = c["converted_at"].notna()
    c["orders_after"] = c["contact_id"].map(agg_after["size"]).fillna(0).astype(int)
    c["revenue_after"] = c["contact_id"].map(agg_after["sum"]).fillna(0.0)
    c["margin_after"] = c["contact_id"].map(margin_after).fillna(0.0)
    c.loc[~c["returned"], ["orders_after", "revenue_after", "margin_after"]] = 0
    c["basket_before"] = c["contact_id"].map(before.groupby("contact_id")["amount"].mean())
    c["value_before"] = c["contact_id"].map(year.groupby("contact_id")["amount"].sum()
                                            ).fillna(0.0)
    c["days_to_return"] = (c["converted_at"] - c["sent_at"]) / pd.Timedelta(days=1)
    cost_of = cost_function() if costs is None else costs
    treated = c["group"] == "treatment"
    c["cost"] = 0.0
    for action, rows in c[treated].groupby("action"):
        if callable(cost_of):
            c.loc[rows.index, "cost"] = np.asarray(cost_of(action, rows["value_before"]),
                                                   dtype=float)
        else:
            c.loc[rows.index, "cost"] = float(cost_of.get(action, 0.0))
    end = orders["ordered_at"].max() if len(orders) else c["sent_at"].max()
    c.attrs = {"campaign": str(campaign), "sent_from": c["sent_at"].min(),
               "sent_to": c["sent_at"].max(), "window_days": window_days,
               "complete": bool(end >= c["sent_at"].max() + window)}
    return c


def _row_values(outcomes: pd.DataFrame) -> np.ndarray:
    """(rows, len(_SUMS)) per-row contributions to the sums the metrics are ratios of."""
    o = outcomes
    ret = o["returned"].to_numpy(dtype=bool)
    ratio = (o["revenue_after"] / o["orders_after"].where(o["orders_after"] > 0)
             / o["basket_before"]).to_numpy(dtype=float)
    return np.column_stack([
        np.ones(len(o)), ret.astype(float), o["revenue_after"].to_numpy(dtype=float),
        o["cost"].to_numpy(dtype=float),
        np.where(ret, o["days_to_return"].to_numpy(dtype=float), 0.0),
        (ret & (o["orders_after"].to_numpy() >= 2)).astype(float),
        o["orders_after"].to_numpy(dtype=float),
        np.where(ret & np.isfinite(ratio), ratio, 0.0),
        o["margin_after"].to_numpy(dtype=float),
    ])


def _metrics_from_sums(t: np.ndarray, c: np.ndarray, t_ratio_n: np.ndarray) -> dict:
    """Metrics from group sums (arrays over resamples; columns as in ``_SUMS``)."""
    s = dict(zip(_SUMS, np.moveaxis(t, -1, 0), strict=True))
    k = dict(zip(_SUMS, np.moveaxis(c, -1, 0), strict=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        rate_t, rate_c = s["returned"] / s["n"], k["returned"] / k["n"]
        rev_t, rev_c = s["revenue"] / s["n"], k["revenue"] / k["n"]
        mar_t, mar_c = s["margin"] / s["n"], k["margin"] / k["n"]
        extra = s["n"] * (rate_t - rate_c)
        cost = s["cost"]
        return {
            "winback_rate": (rate_t, rate_c),
            "cost_per_returned": (cost / s["returned"], np.nan * cost),
            "cost_per_incremental_return": (np.where(extra > 0, cost / extra, np.inf),
                                            np.nan * cost),
            "roi": ((s["margin"] - cost) / cost, np.nan * cost),
            "incremental_roi": ((s["n"] * (mar_t - mar_c) - cost) / cost, np.nan * cost),
            "roi_revenue": ((s["revenue"] - cost) / cost, np.nan * cost),
            "basket_after_return": (s["revenue"] / s["returned"], k["revenue"] / k["returned"]),
            "basket_vs_before": (s["basket_before"] / t_ratio_n[0],
                                 k["basket_before"] / t_ratio_n[1]),
            "days_to_first_order": (s["days"] / s["returned"], k["days"] / k["returned"]),
            "repeat_purchase_rate": (s["repeat"] / s["returned"], k["repeat"] / k["returned"]),
            "revenue_per_contact": (rev_t, rev_c),
            "margin_per_contact": (mar_t, mar_c),
        }


@dataclass(frozen=True)
class CampaignMetrics:
    """Campaign metrics with percentile bootstrap intervals.

    ``table`` has one row per metric (index ``metric``) and columns ``treatment``,
    ``treatment_low``, ``treatment_high``, ``control``, ``control_low``, ``control_high``,
    ``difference``, ``difference_low``, ``difference_high`` (treatment − control; NaN where
    the metric has no control counterpart, e.g. cost-based ones). ``by_action`` gives the
    win-back rate per action against the same control group.
    """

    campaign: str
    n_treatment: int
    n_control: int
    total_cost: float
    complete: bool
    window_days: int
    level: float
    n_boot: int
    table: pd.DataFrame
    by_action: pd.DataFrame = field(repr=False)
    outcomes: pd.DataFrame = field(repr=False)


def campaign_metrics(outcomes: pd.DataFrame, *, n_boot: int = 1000, level: float = 0.95,
                     seed: int = 0) -> CampaignMetrics:
    """The docs/domain.md campaign metrics of :func:`campaign_outcomes` with bootstrap intervals.

    Each group is resampled independently (customers are randomized individually), and each
    interval is the percentile interval of the metric over ``n_boot`` resamples.
    """
    groups = outcomes["group"].to_numpy()
    t_rows, c_rows = outcomes[groups == "treatment"], outcomes[groups == "control"]
    if len(t_rows) == 0 or len(c_rows) == 0:
        raise ValueError(f"contacts: campaign {outcomes.attrs.get('campaign')!r} has "
                         f"{len(t_rows)} treatment and {len(c_rows)} control rows; both groups "
                         "are needed to measure the effect")
    vt, vc = _row_values(t_rows), _row_values(c_rows)
    bt = _valid_basket(t_rows)
    bc = _valid_basket(c_rows)
    point = _metrics_from_sums(vt.sum(0), vc.sum(0), (bt.sum(), bc.sum()))
    rng = np.random.default_rng(seed)
    st, sc = _resampled_sums(np.column_stack([vt, bt]), np.column_stack([vc, bc]), n_boot, rng)
    boot = _metrics_from_sums(st[:, :-1], sc[:, :-1], (st[:, -1], sc[:, -1]))
    rows = {}
    for name, (t_val, c_val) in point.items():
        bt_val, bc_val = boot[name]
        row = {"treatment": float(t_val), "control": float(c_val),
               "difference": float(t_val - c_val)}
        for key, sample in (("treatment", bt_val), ("control", bc_val),
                            ("difference", bt_val - bc_val)):
            row[f"{key}_low"], row[f"{key}_high"] = percentile_interval(sample, level)
        rows[name] = row
    table = pd.DataFrame.from_dict(rows, orient="index")[[
        "treatment", "treatment_low", "treatment_high", "control", "control_low",
        "control_high", "difference", "difference_low", "difference_high"]]
    table.index.name = "metric"
    return CampaignMetrics(
        campaign=str(outcomes.attrs.get("campaign")), n_treatment=len(t_rows),
        n_control=len(c_rows), total_cost=float(t_rows["cost"].sum()),
        complete=bool(outcomes.attrs.get("complete", True)),
        window_days=int(outcomes.attrs.get("window_days", WINDOW_DAYS)), level=level,
        n_boot=n_boot, table=table, by_action=_by_action(t_rows, c_rows, n_boot, level, rng),
        outcomes=outcomes)


def _valid_basket(rows: pd.DataFrame) -> np.ndarray:
    ratio = (rows["revenue_after"] / rows["orders_after"].where(rows["orders_after"] > 0)
             / rows["basket_before"]).to_numpy(dtype=float)
    return (rows["returned"].to_numpy(dtype=bool) & np.isfinite(ratio)).astype(float)


def _resampled_sums(treatment: np.ndarray, control: np.ndarray, n_boot: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(n_boot, columns) sums of each group's rows over resamples that draw the groups apart
    (customers are randomized individually, so each group keeps its size)."""
    nt = len(treatment)
    group = np.r_[np.zeros(nt, dtype=int), np.ones(len(control), dtype=int)]
    st = np.empty((n_boot, treatment.shape[1]))
    sc = np.empty((n_boot, control.shape[1]))
    for b, counts in enumerate(resample_counts(len(group), n_boot=n_boot, seed=rng,
                                               strata=group)):
        st[b], sc[b] = counts[:nt] @ treatment, counts[nt:] @ control
    return st, sc


def _by_action(t_rows: pd.DataFrame, c_rows: pd.DataFrame, n_boot: int, level: float,
               rng: np.random.Generator) -> pd.DataFrame:
    """Win-back rate per action and its increment over the control group, with intervals
    (each action's contacts and the control group resampled apart)."""
    yc = c_rows["returned"].to_numpy(dtype=float)
    actions = t_rows["action"].to_numpy(dtype=object)
    names = sorted(set(actions))
    # stratum 0 is the control group, stratum j + 1 the contacts sent names[j]
    code = {a: j + 1 for j, a in enumerate(names)}
    strata = np.r_[np.array([code[a] for a in actions], dtype=int), np.zeros(len(yc), int)]
    y = np.r_[t_rows["returned"].to_numpy(dtype=float), yc]
    size = np.bincount(strata, minlength=len(names) + 1)
    rates = np.empty((n_boot, len(names) + 1))
    for b, counts in enumerate(resample_counts(len(y), n_boot=n_boot, seed=rng, strata=strata)):
        rates[b] = np.bincount(strata, weights=counts * y, minlength=len(names) + 1) / size
    rows = []
    for j, action in enumerate(names):
        grp = t_rows[actions == action]
        rate = grp["returned"].to_numpy(dtype=float).mean()
        low, high = percentile_interval(rates[:, j + 1] - rates[:, 0], level)
        rows.append({"action": action, "contacted": len(grp), "winback_rate": rate,
                     "control_rate": yc.mean(), "uplift": rate - yc.mean(),
                     "uplift_low": low, "uplift_high": high,
                     "cost": float(grp["cost"].sum())})
    return pd.DataFrame(rows).set_index("action") if rows else pd.DataFrame()


def report_campaign(tables: object, campaign: str, *, window_days: int = WINDOW_DAYS,
                    n_boot: int = 1000, seed: int = 0,
                    costs: Mapping[str, float] | Callable | None = None,
                    margin: GrossMargin | None = None) -> CampaignMetrics:
    """:func:`campaign_outcomes` then :func:`campaign_metrics` for one campaign."""
    outcomes = campaign_outcomes(tables, campaign, window_days=window_days, costs=costs,
                                 margin=margin)
    return campaign_metrics(outcomes, n_boot=n_boot, seed=seed)


def send_day(contacts: pd.DataFrame) -> pd.Timestamp:
    """Midnight (UTC) of the first send of these contacts: features for them are built as of
    it, so they use only what was known before the campaign started."""
    return as_utc_timestamp(pd.to_datetime(contacts["sent_at"], utc=True).min().floor("D"))
