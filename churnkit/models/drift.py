"""Feature drift: how far tonight's features moved from the ones the model was trained on.

:class:`DriftReference` is the bundle's ``drift`` component. Training fits it on the training
feature rows; it keeps, per feature, the bins of the training distribution (deciles for numbers,
with a bin of their own for exact zeros, the most frequent values for text, plus a bin for
missing values) and the share of training rows in each bin. Scoring compares a new feature frame
with it by the population stability index

    PSI = sum over bins of (actual_share - expected_share) * ln(actual_share / expected_share)

(shares floored at :data:`EPSILON` so an empty bin does not give infinity). The usual reading:
below 0.1 stable, 0.1-0.25 a moderate shift, above 0.25 a major shift (:data:`DEFAULT_THRESHOLD`).

Features that move with the calendar by construction (:attr:`churnkit.features.Feature.trend`)
would fire on every run, so they are compared otherwise:

- ``age`` (tenure: days since signup, since the first order): every customer is a day older each
  day, so the whole distribution slides. Only the young part is compared: rows at or below the
  training median (:attr:`DriftReference.age_limits_`), which a steady flow of new customers
  keeps alike and a change in acquisition moves;
- ``cycle`` (days since the last messages): these follow the shop's sending calendar (small the
  week after a campaign, large before the next), so each value is taken relative to the shop's
  latest send at the same cutoff (:func:`churnkit.features.latest_send_age`): how long before the
  shop's last campaign the customer was last written to.

PSI compares shapes; a rare event whose rate doubles (delivery failures on 2% of customers going
to 6%) barely moves the deciles of a mostly-zero count. So every ``count`` feature also has its
mean compared (:meth:`DriftReference.rate_shifts_from_counts`): a mean that moved by a factor of
:data:`RATE_RATIO` or more either way, by at least :data:`RATE_Z` standard errors, is reported.

Counting is separable: :meth:`DriftReference.bin_counts` on each shard of the base, summed, then
:meth:`DriftReference.psi_from_counts` (and the rate check), gives exactly what the whole base
gives, which is how the nightly batch job checks drift without holding every feature row at once.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from churnkit.errors import BundleMismatchError
from churnkit.features.registry import all_features
from churnkit.models.part import read_document, write_document

#: Quantile bins per numeric feature (deciles); tied quantiles merge, so a mostly-zero count
#: feature gets fewer bins.
N_BINS = 10
#: At most this many distinct values of a text feature get a bin of their own; the rest share one.
MAX_CATEGORIES = 20
#: Floor on a bin's share in the PSI formula (an empty bin would otherwise give log(0)).
EPSILON = 1e-4
#: PSI above which a feature is reported as drifted (0.25: the conventional "major shift").
DEFAULT_THRESHOLD = 0.25
#: A count feature's mean that moved by this factor or more (either way) is a rate shift...
RATE_RATIO = 2.0
#: ... when the move is also this many standard errors of the difference of the two means.
RATE_Z = 4.0
#: Key prefix of a count feature's ``[rows, sum, sum of squares]`` in :meth:`bin_counts`.
RATE_KEY = "rate:"
_FILE = "drift.json"
#: The part of a feature above its training median (its young part) for ``age`` trends.
_AGE_QUANTILE = 0.5


def _is_numeric(series: pd.Series) -> bool:
    dtype = series.dtype
    return (pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype)) and not (
        isinstance(dtype, pd.CategoricalDtype))


def _as_float(series: pd.Series) -> np.ndarray:
    return series.to_numpy(dtype=float, na_value=np.nan)


def registry_trends() -> dict[str, str]:
    """``{feature: trend}`` of the registry's features marked with a trend."""
    return {f.name: f.trend for f in all_features() if f.trend is not None}


def registry_counts() -> list[str]:
    """The registry's ``count`` features (whose event rate the drift check compares)."""
    return [f.name for f in all_features() if f.dtype == "count"]


def _edges(values: np.ndarray, n_bins: int) -> list[float]:
    """Inner bin edges: the distinct deciles, plus the smallest positive float when zero is one
    of them, so exact zeros (no events) get their own bin and the non-zero tail stays one bin
    rather than merging with them."""
    if not len(values):
        return []
    inner = np.unique(np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1]))
    if 0.0 in inner and (values > 0).any():
        inner = np.unique(np.append(inner, np.nextafter(0.0, 1.0)))
    return [float(x) for x in inner]


def rate_shift_text(shifts: Mapping[str, dict], limit: int = 5) -> str:
    """The first ``limit`` rate shifts as ``name ×ratio (mean before -> now)``."""
    return ", ".join(
        f"{k} ×{'inf' if v['ratio'] is None else format(v['ratio'], 'g')} "
        f"({v['reference']:.3g} -> {v['now']:.3g} per customer)"
        for k, v in list(shifts.items())[:limit])


class DriftReference:
    """Per-feature bins and shares of the training features (fitted attributes end in ``_``).

    Parameters
    ----------
    n_bins
        Quantile bins per numeric feature.
    max_categories
        Distinct values of a text feature that keep their own bin.
    """

    FORMAT = 2

    def __init__(self, n_bins: int = N_BINS, max_categories: int = MAX_CATEGORIES) -> None:
        self.n_bins = n_bins
        self.max_categories = max_categories
        self.trends_: dict[str, str] = {}
        self.age_limits_: dict[str, float] = {}
        self.rates_: dict[str, list[float]] = {}

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, features: pd.DataFrame, *, trends: Mapping[str, str] | None = None,
            counts: Iterable[str] | None = None,
            send_age: float | np.ndarray | pd.Series | None = None) -> DriftReference:
        """Learn the bins and shares of every column of ``features`` (the training rows).

        ``trends`` (default: the registry's, :func:`registry_trends`) and ``counts`` (default:
        the registry's ``count`` features) name the columns compared as ages, as sending cycles
        and by their event rate; ``send_age`` is, per row (or one number for all), the age in
        days of the shop's latest message at the row's cutoff
        (:func:`churnkit.features.latest_send_age`; None: nothing sent, no cycle shift).
        """
        if len(features) == 0:
            raise ValueError("cannot fit a drift reference on an empty feature frame")
        trends = registry_trends() if trends is None else dict(trends)
        self.trends_ = {k: v for k, v in trends.items() if k in features.columns}
        self.age_limits_ = {}
        for name, trend in self.trends_.items():
            values = _as_float(features[name])
            values = values[~np.isnan(values)]
            if trend == "age" and len(values):
                self.age_limits_[name] = float(np.quantile(values, _AGE_QUANTILE))
        self.kinds_: dict[str, str] = {}
        self.edges_: dict[str, list[float]] = {}
        self.categories_: dict[str, list[str]] = {}
        for name in features.columns:
            column = features[name]
            if _is_numeric(column):
                values = self._compared(name, _as_float(column), send_age)
                self.kinds_[name] = "numeric"
                self.edges_[name] = _edges(values[~np.isnan(values)], self.n_bins)
            else:
                tally = column.dropna().astype(str).value_counts(sort=False)
                # most frequent first; ties by value so the bins do not depend on row order
                ranked = sorted(tally.items(), key=lambda kv: (-kv[1], kv[0]))
                self.kinds_[name] = "category"
                self.categories_[name] = [k for k, _ in ranked[: self.max_categories]]
        numeric = {k for k, v in self.kinds_.items() if v == "numeric"}
        wanted = registry_counts() if counts is None else list(counts)
        self.rates_ = {name: [] for name in wanted if name in numeric}
        self.n_rows_ = len(features)
        binned = self.bin_counts(features, send_age=send_age)
        self.expected_ = {name: (binned[name] / max(binned[name].sum(), 1)).tolist()
                          for name in self.kinds_}
        self.rates_ = {name: binned[RATE_KEY + name].tolist() for name in self.rates_}
        return self

    def _compared(self, name: str, values: np.ndarray,
                  send_age: float | np.ndarray | pd.Series | None) -> np.ndarray:
        """The values of feature ``name`` as compared: cycles relative to the shop's latest send;
        ages only in their young part (the rest dropped, so neither the bins nor the missing
        share count them)."""
        trend = self.trends_.get(name)
        if trend == "cycle" and send_age is not None:
            shift = np.asarray(pd.Series(send_age).to_numpy(dtype=float, na_value=np.nan)
                               if not np.isscalar(send_age) else send_age, dtype=float)
            return values - np.nan_to_num(shift, nan=0.0)
        if trend == "age" and name in self.age_limits_:
            return values[values <= self.age_limits_[name]]
        return values

    # -- comparing -----------------------------------------------------------------------------
    @property
    def feature_names_(self) -> list[str]:
        return list(self.kinds_)

    def bins(self, name: str) -> list[str]:
        """Readable labels of a feature's bins, in order (the last one is ``missing``)."""
        if self.kinds_[name] == "numeric":
            edges = self.edges_[name]
            bounds = [-math.inf, *edges, math.inf]
            labels = [f"[{lo:g}, {hi:g})" for lo, hi in itertools.pairwise(bounds)]
        else:
            labels = [*self.categories_[name], "(other)"]
        return [*labels, "missing"]

    def bin_counts(self, features: pd.DataFrame, *,
                   send_age: float | np.ndarray | pd.Series | None = None
                   ) -> dict[str, np.ndarray]:
        """Rows of ``features`` per bin of every reference feature (a feature absent from the
        frame counts all its rows as missing; an age feature counts only its young part), and
        under ``rate:<name>`` each count feature's ``[rows, sum, sum of squares]``. Counts of
        several frames add up. ``send_age``: as in :meth:`fit`, for the frame's cutoff."""
        out: dict[str, np.ndarray] = {}
        n = len(features)
        for name, kind in self.kinds_.items():
            if kind == "numeric":
                edges = np.asarray(self.edges_[name], dtype=float)
                size = len(edges) + 2
                if name not in features.columns:
                    counts = np.zeros(size, dtype=np.int64)
                    counts[-1] = 0 if self.trends_.get(name) == "age" else n
                else:
                    values = self._compared(name, _as_float(features[name]), send_age)
                    missing = np.isnan(values)
                    index = np.searchsorted(edges, values[~missing], side="right")
                    counts = np.bincount(index, minlength=size).astype(np.int64)
                    counts[-1] = int(missing.sum())
            else:
                cats = self.categories_[name]
                size = len(cats) + 2
                counts = np.zeros(size, dtype=np.int64)
                if name not in features.columns:
                    counts[-1] = n
                else:
                    column = features[name]
                    missing = column.isna().to_numpy()
                    text = column[~missing].astype(str)
                    position = {c: i for i, c in enumerate(cats)}
                    hits = text.map(position).fillna(len(cats)).to_numpy(dtype=np.int64)
                    counts += np.bincount(hits, minlength=size).astype(np.int64)
                    counts[-1] = int(missing.sum())
            out[name] = counts
        for name in self.rates_:
            values = (features[name].to_numpy(dtype=np.int64, na_value=0)
                      if name in features.columns else np.zeros(0, dtype=np.int64))
            out[RATE_KEY + name] = np.array([len(values), values.sum(), (values * values).sum()],
                                            dtype=np.int64)
        return out

    def psi_from_counts(self, counts: Mapping[str, np.ndarray]) -> pd.Series:
        """PSI per feature from (summed) :meth:`bin_counts`; NaN for a feature with no rows."""
        values = {}
        for name in self.kinds_:
            actual = np.asarray(counts[name], dtype=float)
            total = actual.sum()
            if total == 0:
                values[name] = float("nan")
                continue
            a = np.maximum(actual / total, EPSILON)
            e = np.maximum(np.asarray(self.expected_[name], dtype=float), EPSILON)
            values[name] = float(np.sum((a - e) * np.log(a / e)))
        return pd.Series(values, name="psi", dtype="float64").rename_axis("feature")

    def psi(self, features: pd.DataFrame, *,
            send_age: float | np.ndarray | pd.Series | None = None) -> pd.Series:
        """Population stability index of every reference feature in ``features`` (index:
        feature name)."""
        return self.psi_from_counts(self.bin_counts(features, send_age=send_age))

    def rate_shifts_from_counts(self, counts: Mapping[str, np.ndarray]) -> dict[str, dict]:
        """The count features whose mean per customer moved by :data:`RATE_RATIO` or more
        (either way) and by :data:`RATE_Z` standard errors or more, largest move first:
        ``{feature: {"reference": mean, "now": mean, "ratio": now / reference, "z": ...}}``."""
        found = []
        for name, ref in self.rates_.items():
            now = counts.get(RATE_KEY + name)
            if now is None:
                continue
            (n0, s0, q0), (n1, s1, q1) = (np.asarray(ref, dtype=float),
                                          np.asarray(now, dtype=float))
            if n0 < 2 or n1 < 2:
                continue
            m0, m1 = s0 / n0, s1 / n1
            v0, v1 = max(q0 / n0 - m0 * m0, 0.0), max(q1 / n1 - m1 * m1, 0.0)
            se = math.sqrt(v0 / n0 + v1 / n1)
            if se == 0 or m0 == m1:
                continue
            ratio = m1 / m0 if m0 > 0 else math.inf
            z = abs(m1 - m0) / se
            if z >= RATE_Z and (ratio >= RATE_RATIO or ratio <= 1 / RATE_RATIO):
                found.append((abs(math.log(ratio)) if 0 < ratio < math.inf else math.inf, name,
                              {"reference": round(float(m0), 6), "now": round(float(m1), 6),
                               "ratio": round(float(ratio), 3) if ratio < math.inf else None,
                               "z": round(float(z), 1)}))
        return {name: doc for _, name, doc in sorted(found, key=lambda t: (-t[0], t[1]))}

    def report(self, psi: pd.Series, *, threshold: float = DEFAULT_THRESHOLD,
               rate_shifts: Mapping[str, dict] | None = None) -> dict:
        """A JSON-ready drift summary: the threshold, the max, the features above it (largest
        first) and the count features whose event rate moved (:meth:`rate_shifts_from_counts`)."""
        finite = psi.dropna()
        drifted = finite[finite > threshold].sort_values(ascending=False)
        return {
            "threshold": float(threshold),
            "max_psi": None if finite.empty else round(float(finite.max()), 6),
            "max_feature": None if finite.empty else str(finite.idxmax()),
            "drifted": {str(k): round(float(v), 6) for k, v in drifted.items()},
            "rate_shifts": dict(rate_shifts or {}),
            "psi": {str(k): (None if pd.isna(v) else round(float(v), 6)) for k, v in psi.items()},
        }

    def check(self, counts: Mapping[str, np.ndarray], *,
              threshold: float = DEFAULT_THRESHOLD) -> dict:
        """:meth:`report` from (summed) :meth:`bin_counts`: the PSI and the rate shifts."""
        return self.report(self.psi_from_counts(counts), threshold=threshold,
                           rate_shifts=self.rate_shifts_from_counts(counts))

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The fitted reference as JSON-ready data (with its format)."""
        return {"format": self.FORMAT, "n_bins": self.n_bins,
                "max_categories": self.max_categories, "n_rows": int(self.n_rows_),
                "kinds": self.kinds_, "edges": self.edges_, "categories": self.categories_,
                "expected": self.expected_, "trends": self.trends_,
                "age_limits": self.age_limits_, "rates": self.rates_}

    @classmethod
    def from_dict(cls, doc: dict) -> DriftReference:
        """Inverse of :meth:`to_dict`; reads format 1 (no trends, no rates: every feature
        compared as it is) and refuses another."""
        if doc.get("format") not in (1, cls.FORMAT):
            raise BundleMismatchError(f"drift reference format {doc.get('format')}; this code "
                                      f"reads formats 1 and {cls.FORMAT}")
        ref = cls(n_bins=doc["n_bins"], max_categories=doc["max_categories"])
        ref.n_rows_ = doc["n_rows"]
        ref.kinds_ = dict(doc["kinds"])
        ref.edges_ = {k: list(v) for k, v in doc["edges"].items()}
        ref.categories_ = {k: list(v) for k, v in doc["categories"].items()}
        ref.expected_ = {k: list(v) for k, v in doc["expected"].items()}
        ref.trends_ = dict(doc.get("trends", {}))
        ref.age_limits_ = {k: float(v) for k, v in doc.get("age_limits", {}).items()}
        ref.rates_ = {k: list(v) for k, v in doc.get("rates", {}).items()}
        return ref

    def save(self, directory: str | Path) -> None:
        """Write ``drift.json`` into ``directory`` (the bundle's ``drift/``)."""
        doc = self.to_dict()
        write_document(directory, _FILE, doc, format=doc.pop("format"))

    @classmethod
    def load(cls, directory: str | Path) -> DriftReference:
        """Read what :meth:`save` wrote (format 1 or 2)."""
        return cls.from_dict(read_document(directory, _FILE, part="drift reference",
                                           format=(1, cls.FORMAT)))
