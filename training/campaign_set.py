"""The point-in-time campaign training set of the uplift model, and its fit.

For each past campaign: the features of its contacted customers as of the campaign's send day
(midnight UTC before the first send) and the outcome after it (ordered within the attribution
window, the same rule for treatment and control). Only campaigns whose attribution window has
closed before the cutoff are used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

import churnkit as ck
from churnkit.campaigns import campaign_ids, send_day, with_campaign_ids
from churnkit.data import CONTROL, as_utc_timestamp
from churnkit.models import UpliftModel

ATTRIBUTION_DAYS = 30


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


def campaign_subset(data: CampaignSet, campaigns: list[str]) -> CampaignSet:
    """The rows of ``data`` that belong to ``campaigns`` (each must be in it)."""
    keep = data.contacts["campaign_id"].isin(campaigns).to_numpy()
    missing = set(campaigns) - set(data.contacts["campaign_id"])
    if missing:
        raise ValueError(f"the campaign set lacks campaigns {sorted(missing)}")
    return CampaignSet(data.features[keep], data.arm[keep], data.outcome[keep],
                       data.contacts[keep].reset_index(drop=True))
