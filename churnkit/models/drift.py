"""Feature drift: how far tonight's features moved from the ones the model was trained on.

:class:`DriftReference` is the bundle's ``drift`` component. Training fits it on the training
feature rows; it keeps, per feature, the bins of the training distribution (deciles for numbers,
the most frequent values for text, plus a bin for missing values) and the share of training rows
in each bin. Scoring compares a new feature frame with it by the population stability index

    PSI = sum over bins of (actual_share - expected_share) * ln(actual_share / expected_share)

(shares floored at :data:`EPSILON` so an empty bin does not give infinity). The usual reading:
below 0.1 stable, 0.1-0.25 a moderate shift, above 0.25 a major shift (:data:`DEFAULT_THRESHOLD`).

Counting is separable: :meth:`DriftReference.bin_counts` on each shard of the base, summed, then
:meth:`DriftReference.psi_from_counts`, gives exactly :meth:`DriftReference.psi` of the whole base,
which is how the nightly batch job checks drift without holding every feature row at once.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd

from churnkit.errors import BundleMismatchError
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
_FILE = "drift.json"


def _is_numeric(series: pd.Series) -> bool:
    dtype = series.dtype
    return (pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype)) and not (
        isinstance(dtype, pd.CategoricalDtype))


def _as_float(series: pd.Series) -> np.ndarray:
    return series.to_numpy(dtype=float, na_value=np.nan)


class DriftReference:
    """Per-feature bins and shares of the training features (fitted attributes end in ``_``).

    Parameters
    ----------
    n_bins
        Quantile bins per numeric feature.
    max_categories
        Distinct values of a text feature that keep their own bin.
    """

    FORMAT = 1

    def __init__(self, n_bins: int = N_BINS, max_categories: int = MAX_CATEGORIES) -> None:
        self.n_bins = n_bins
        self.max_categories = max_categories

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, features: pd.DataFrame) -> DriftReference:
        """Learn the bins and shares of every column of ``features`` (the training rows)."""
        if len(features) == 0:
            raise ValueError("cannot fit a drift reference on an empty feature frame")
        self.kinds_: dict[str, str] = {}
        self.edges_: dict[str, list[float]] = {}
        self.categories_: dict[str, list[str]] = {}
        for name in features.columns:
            column = features[name]
            if _is_numeric(column):
                values = _as_float(column)
                values = values[~np.isnan(values)]
                qs = np.linspace(0, 1, self.n_bins + 1)[1:-1]
                inner = np.unique(np.quantile(values, qs)) if len(values) else np.array([])
                self.kinds_[name] = "numeric"
                self.edges_[name] = [float(x) for x in inner]
            else:
                counts = column.dropna().astype(str).value_counts(sort=False)
                # most frequent first; ties by value so the bins do not depend on row order
                ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                self.kinds_[name] = "category"
                self.categories_[name] = [k for k, _ in ranked[: self.max_categories]]
        self.n_rows_ = len(features)
        counts = self.bin_counts(features)
        self.expected_ = {name: (c / c.sum()).tolist() for name, c in counts.items()}
        return self

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

    def bin_counts(self, features: pd.DataFrame) -> dict[str, np.ndarray]:
        """Rows of ``features`` per bin of every reference feature (a feature absent from the
        frame counts all its rows as missing). Counts of several frames add up."""
        out: dict[str, np.ndarray] = {}
        n = len(features)
        for name, kind in self.kinds_.items():
            if kind == "numeric":
                edges = np.asarray(self.edges_[name], dtype=float)
                size = len(edges) + 2
                if name not in features.columns:
                    counts = np.zeros(size, dtype=np.int64)
                    counts[-1] = n
                else:
                    values = _as_float(features[name])
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
        return out

    def psi_from_counts(self, counts: dict[str, np.ndarray]) -> pd.Series:
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

    def psi(self, features: pd.DataFrame) -> pd.Series:
        """Population stability index of every reference feature in ``features`` (index:
        feature name)."""
        return self.psi_from_counts(self.bin_counts(features))

    def report(self, psi: pd.Series, *, threshold: float = DEFAULT_THRESHOLD) -> dict:
        """A JSON-ready drift summary: the threshold, the max, and the features above it
        (largest first)."""
        finite = psi.dropna()
        drifted = finite[finite > threshold].sort_values(ascending=False)
        return {
            "threshold": float(threshold),
            "max_psi": None if finite.empty else round(float(finite.max()), 6),
            "max_feature": None if finite.empty else str(finite.idxmax()),
            "drifted": {str(k): round(float(v), 6) for k, v in drifted.items()},
            "psi": {str(k): (None if pd.isna(v) else round(float(v), 6)) for k, v in psi.items()},
        }

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The fitted reference as JSON-ready data (with its format)."""
        return {"format": self.FORMAT, "n_bins": self.n_bins,
                "max_categories": self.max_categories, "n_rows": int(self.n_rows_),
                "kinds": self.kinds_, "edges": self.edges_, "categories": self.categories_,
                "expected": self.expected_}

    @classmethod
    def from_dict(cls, doc: dict) -> DriftReference:
        """Inverse of :meth:`to_dict`; refuses another format."""
        if doc.get("format") != cls.FORMAT:
            raise BundleMismatchError(f"drift reference format {doc.get('format')}; this code "
                                      f"reads format {cls.FORMAT}")
        ref = cls(n_bins=doc["n_bins"], max_categories=doc["max_categories"])
        ref.n_rows_ = doc["n_rows"]
        ref.kinds_ = dict(doc["kinds"])
        ref.edges_ = {k: list(v) for k, v in doc["edges"].items()}
        ref.categories_ = {k: list(v) for k, v in doc["categories"].items()}
        ref.expected_ = {k: list(v) for k, v in doc["expected"].items()}
        return ref

    def save(self, directory: str | Path) -> None:
        """Write ``drift.json`` into ``directory`` (the bundle's ``drift/``)."""
        doc = self.to_dict()
        write_document(directory, _FILE, doc, format=doc.pop("format"))

    @classmethod
    def load(cls, directory: str | Path) -> DriftReference:
        """Read what :meth:`save` wrote."""
        return cls.from_dict(read_document(directory, _FILE, part="drift reference",
                                           format=cls.FORMAT))
