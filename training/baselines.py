"""The baselines every churn model is compared with, fitted on the training rows only.

- **recency**: days since the last order (since signup for customers who never ordered), turned
  into a probability by a one-feature logistic fit (monotone, so its ranking is plain recency);
- **btyd**: the BG/NBD probability of no purchase in the horizon (the classic BTYD benchmark),
  with the population parameters fitted before the cutoff;
- **pareto_nbd**: the same from the Pareto/NBD model (:mod:`churnkit.stats.pareto_nbd`), with
  its population parameters fitted before the cutoff too;
- **rfm_logreg**: logistic regression on log recency, log frequency and log monetary value.

On synthetic data the pipeline adds the generator's **oracle** (the true churn probability),
the upper bound. :func:`btyd_risk_scores` is the BG/NBD baseline in the shape of a scored frame,
for the uplift evaluation when no trained bundle is given.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import churnkit as ck
from churnkit.policy import activity_state, lifecycle_segment
from churnkit.stats import p_no_purchase, pareto_p_no_purchase


def _recency(frame: pd.DataFrame) -> np.ndarray:
    days = frame["days_since_last_order"].to_numpy(dtype=float)
    return np.where(np.isnan(days), frame["days_since_signup"].to_numpy(dtype=float), days)


def _rfm(frame: pd.DataFrame) -> np.ndarray:
    never = frame["orders_lifetime"].to_numpy(dtype=float) == 0
    return np.c_[
        np.log1p(_recency(frame)),
        np.log1p(frame["orders_lifetime"].to_numpy(dtype=float)),
        np.log1p(frame["revenue_lifetime"].to_numpy(dtype=float)),
        never.astype(float),
    ]


class Baselines:
    """Fit on training rows (features + ``churned``), then score any other rows."""

    def __init__(self, *, horizon_days: int) -> None:
        self.horizon_days = horizon_days

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> Baselines:
        y = np.asarray(y, dtype=bool)
        self.recency_ = LogisticRegression(max_iter=1000).fit(
            np.log1p(_recency(frame))[:, None], y
        )
        self.rfm_ = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
            _rfm(frame), y
        )
        never = frame["orders_lifetime"].to_numpy() == 0
        # BG/NBD says nothing about customers who never bought: give them their training rate.
        self.never_bought_rate_ = float(y[never].mean()) if never.any() else float(y.mean())
        return self

    def score(self, frame: pd.DataFrame, population) -> dict[str, np.ndarray]:
        """``{"recency": p, "btyd": p, "pareto_nbd": p, "rfm_logreg": p}``: P(churn) per row of
        ``frame`` (the BTYD models give customers who never bought their training rate)."""
        out = {
            "recency": self.recency_.predict_proba(np.log1p(_recency(frame))[:, None])[:, 1],
            "rfm_logreg": self.rfm_.predict_proba(_rfm(frame))[:, 1],
        }
        btyd = np.full(len(frame), self.never_bought_rate_)
        x = frame["btyd_frequency"].to_numpy(dtype=float)
        buyers = ~np.isnan(x)
        if population is not None and population.bgnbd is not None and buyers.any():
            btyd[buyers] = p_no_purchase(
                population.bgnbd,
                self.horizon_days,
                x[buyers],
                frame["btyd_recency_days"].to_numpy(dtype=float)[buyers],
                frame["btyd_T_days"].to_numpy(dtype=float)[buyers],
            )
        out["btyd"] = btyd
        pareto = np.full(len(frame), self.never_bought_rate_)
        if population is not None and population.pareto_nbd is not None and buyers.any():
            pareto[buyers] = pareto_p_no_purchase(
                population.pareto_nbd, self.horizon_days, x[buyers],
                frame["btyd_recency_days"].to_numpy(dtype=float)[buyers],
                frame["btyd_T_days"].to_numpy(dtype=float)[buyers])
        out["pareto_nbd"] = pareto
        return out


def btyd_risk_scores(features: pd.DataFrame, tables: ck.Tables, *,
                     as_of: pd.Timestamp) -> pd.DataFrame:
    """The BG/NBD baseline as a scored frame: ``churn_probability`` = ``p_no_purchase_90d``
    (1 without purchases), ``risk_percentile`` (0-100) among last year's buyers as of
    ``as_of`` (the population a bundle's risk reference is built from), ``segment`` and
    ``activity``. Not what is served: the served scores come from a bundle."""
    base = ck.build_features(tables, as_of=as_of)
    reference = np.sort(base.loc[base["orders_365d"] > 0, "p_no_purchase_90d"]
                        .astype(float).dropna().to_numpy())
    p = features["p_no_purchase_90d"].astype(float).fillna(1.0).to_numpy()
    pct = 100.0 * np.searchsorted(reference, p, side="left") / max(len(reference), 1)
    return pd.DataFrame({"churn_probability": p, "risk_percentile": pct,
                         "segment": lifecycle_segment(features),
                         "activity": activity_state(features)}, index=features.index)
