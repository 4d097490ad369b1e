"""Which channel: consented channels ranked by engagement shrunk toward the population.

docs/domain.md: contact only through channels the customer consented to, never after an unsubscribe.
The consent features (``can_contact_<channel>``) already say "consented and not unsubscribed
before as_of"; a customer with ``unsubscribed`` gets no channel at all.

Ranking (empirical Bayes): per channel c the population's open rates of customers who received
messages on c give a beta prior ``Beta(a_c, b_c)`` by the method of moments (mean m, variance v of
the per-customer open rates, weighted by messages, minus their binomial sampling noise; strength
``a + b = m(1-m)/v - 1`` clamped to the configured range; the noise of a customer with true rate
p is p(1-p), whose mean is m(1-m) - v, not m(1-m)). A customer with ``k`` opens of ``n``
messages on c has the posterior mean open rate ``(a_c + k) / (a_c + b_c + n)``: with no history it
is the population mean, with a long history it is their own rate. The channel's score is that open
rate (docs/domain.md: rank consented channels by open rates shrunk toward the population's). It is
not multiplied by a conversion rate per open: a contact's ``converted_at`` is an order attributed
to the message (docs/data-contract.md), which need not follow an open (the synthetic shop's rule:
the first order within 30 days, for the control group too), so conversions over opens mostly
counts organic comebacks and rewards the channels opened least (on the synthetic shop email
showed 1.25 "conversions per open" against messenger's 0.45, which ranked email above push and
phone whatever the customer reads). The confidence is the normal-approximation probability that
the best channel's posterior open rate beats the runner-up's (1 when only one channel is allowed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtr

from churnkit.data.columns import FeatureColumns, nan_to_zero
from churnkit.data.contract import CHANNELS


def _num(frame: pd.DataFrame | FeatureColumns, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.zeros(len(frame))
    if isinstance(frame, FeatureColumns):
        return nan_to_zero(frame.number(name))
    s = frame[name]
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        values = s.to_numpy(dtype="float64", na_value=np.nan)  # no parsing: ~10x cheaper
    else:
        values = pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return np.nan_to_num(values)


_INPUTS = (*(f"opens_{ch}" for ch in CHANNELS), *(f"contacts_{ch}" for ch in CHANNELS),
           *(f"can_contact_{ch}" for ch in CHANNELS), "unsubscribed")


def _inputs(frame: pd.DataFrame | FeatureColumns
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Opens, messages and consent per channel (rows x channels) and the unsubscribe flag,
    missing values and absent columns 0."""
    if isinstance(frame, FeatureColumns):
        values = nan_to_zero(frame.matrix(_INPUTS))
    else:
        values = np.column_stack([_num(frame, name) for name in _INPUTS]) if len(frame) else \
            np.zeros((0, len(_INPUTS)))
    k = len(CHANNELS)
    return values[:, :k], values[:, k:2 * k], values[:, 2 * k:3 * k], values[:, 3 * k]


class ChannelRanker:
    """Empirical-Bayes ranking of a customer's consented channels."""

    def __init__(self, *, strength_min: float = 2.0, strength_max: float = 200.0) -> None:
        self.strength_min = strength_min
        self.strength_max = strength_max

    def fit(self, frame: pd.DataFrame) -> ChannelRanker:
        """Beta priors per channel from the contact-history features of ``frame``."""
        self.alpha_, self.beta_ = {}, {}
        for ch in CHANNELS:
            n = _num(frame, f"contacts_{ch}")
            k = _num(frame, f"opens_{ch}")
            has = n > 0
            if has.sum() >= 2 and n[has].sum() > 0:
                rate = k[has] / n[has]
                m = float(np.average(rate, weights=n[has]))
                v = float(np.average((rate - m) ** 2, weights=n[has]))
                # Observed rates scatter by binomial noise too. Weighted by messages, their
                # variance is v (1 - C/N) + m(1-m) C/N for C customers with N messages (the
                # noise of a customer with true rate p is p(1-p), m(1-m) - v on average), so
                # v = (observed - m(1-m) C/N) / (1 - C/N); one message each (C = N) cannot
                # tell the spread from the noise: no spread (the strongest prior).
                share = has.sum() / n[has].sum()
                v = (v - m * (1 - m) * share) / (1 - share) if share < 1 else 0.0
            else:  # nobody messaged on this channel: a weak, neutral prior
                m, v = 0.2, 0.0
            m = min(max(m, 1e-3), 1 - 1e-3)
            strength = m * (1 - m) / v - 1 if v > 0 else self.strength_max
            strength = float(np.clip(strength, self.strength_min, self.strength_max))
            self.alpha_[ch], self.beta_[ch] = m * strength, (1 - m) * strength
        return self

    def rank(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per customer: ``channel`` (best allowed, None when none is allowed),
        ``channel_confidence`` (0-1, NaN without a channel) and ``channel_ranking`` (allowed
        channels, best first)."""
        columns = self.rank_columns(frame)
        # object dtype keeps None (no channel) as None rather than a missing string
        return pd.DataFrame({"channel": pd.Series(columns["channel"], index=frame.index,
                                                  dtype=object),
                             "channel_confidence": columns["channel_confidence"],
                             "channel_ranking": columns["channel_ranking"]}, index=frame.index)

    def rank_columns(self, frame: pd.DataFrame | FeatureColumns, *, ranking: bool = True
                     ) -> dict[str, object]:
        """:meth:`rank`'s columns as arrays: ``channel`` (object: str or None),
        ``channel_confidence`` (float64) and, with ``ranking``, ``channel_ranking`` (a list
        per row)."""
        n_rows = len(frame)
        # Every channel at once: (rows, channels) matrices of the history and the consent.
        opens, contacts, consent, unsubscribed = _inputs(frame)
        alpha, beta = self._priors()
        a = alpha + opens
        b = np.maximum(beta + contacts - opens, 1e-6)
        mean = a / (a + b)
        var = a * b / ((a + b) ** 2 * (a + b + 1))
        allowed = (consent > 0) & ~(unsubscribed > 0)[:, None]
        score = np.where(allowed, mean, -np.inf)
        order = np.argsort(-score, axis=1, kind="stable")
        n_allowed = np.isfinite(score).sum(axis=1)
        best, second = order[:, 0], order[:, 1]
        rows = np.arange(n_rows)
        diff = mean[rows, best] - mean[rows, second]
        sd = np.sqrt(var[rows, best] + var[rows, second])
        with np.errstate(divide="ignore", invalid="ignore"):
            p_better = ndtr(diff / sd)  # the normal CDF
        confidence = np.where(n_allowed >= 2, p_better, 1.0)
        confidence = np.where(n_allowed == 0, np.nan, confidence)
        names = np.asarray(CHANNELS, dtype=object)
        channel = np.where(n_allowed > 0, names[best], None)
        out = {"channel": channel, "channel_confidence": confidence}
        if ranking:
            out["channel_ranking"] = [list(names[order[i, :n_allowed[i]]]) for i in range(n_rows)]
        return out

    def _priors(self) -> tuple[np.ndarray, np.ndarray]:
        """The fitted priors per channel as vectors (made once per fit)."""
        fitted = (self.alpha_, self.beta_)
        cached = getattr(self, "_vectors", None)
        if cached is None or any(a is not b for a, b in zip(cached[0], fitted, strict=True)):
            cached = (fitted, tuple(np.array([d[ch] for ch in CHANNELS]) for d in fitted))
            self._vectors = cached
        return cached[1]

    def to_dict(self) -> dict:
        return {"alpha": self.alpha_, "beta": self.beta_}

    @classmethod
    def from_dict(cls, data: dict) -> ChannelRanker:
        r = cls()
        # bundles saved before the ranking dropped conversions per open still carry them: unused
        r.alpha_, r.beta_ = dict(data["alpha"]), dict(data["beta"])
        return r

