"""The evaluation's tables: metrics by segment, the calibration (reliability) table, the
cumulative gain curve and the global SHAP importance (:func:`training.evaluation.evaluate`
assembles them)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnkit.stats import average_precision, brier, roc_auc

#: Groups smaller than this (or with one class only) are not scored.
MIN_SEGMENT_ROWS = 50
#: Metrics reported per segment (point values, no bootstrap: the CI would cost 7x the time).
SEGMENT_METRICS = ("roc_auc", "pr_auc", "brier")
#: ``segments`` column -> group name in ``by_segment``.
SEGMENT_GROUPS = {"segment": "segment", "has_browsing": "browsing",
                  "has_complaints": "complaints"}
CALIBRATION_BINS = 10
GAIN_POINTS = 101


def unscored_note(y: np.ndarray) -> str:
    """Why a group of outcomes ``y`` is not scored ("" when it is)."""
    n = len(y)
    if n < MIN_SEGMENT_ROWS:
        return f"fewer than {MIN_SEGMENT_ROWS} customers"
    return "" if 0 < y.sum() < n else "only one outcome"


def by_segment(y: np.ndarray, scores: dict[str, np.ndarray], segments: pd.DataFrame | None,
                probability_scores: list[str]) -> pd.DataFrame:
    columns = ["group", "value", "score", "n", "churn_rate", *SEGMENT_METRICS, "note"]
    if segments is None:
        return pd.DataFrame(columns=columns)
    if len(segments) != len(y):
        raise ValueError(f"segments has {len(segments)} rows, y has {len(y)}")
    rows = []
    for column, group in SEGMENT_GROUPS.items():
        if column not in segments.columns:
            continue
        for value, mask in _segment_masks(segments[column]):
            n, y_seg = int(mask.sum()), y[mask]
            churn_rate = float(y_seg.mean()) if n else float("nan")
            note = unscored_note(y_seg)
            for name, score in scores.items():
                values = dict.fromkeys(SEGMENT_METRICS, float("nan"))
                if not note:
                    s = score[mask]
                    values["roc_auc"] = float(roc_auc(y_seg, s))
                    values["pr_auc"] = float(average_precision(y_seg, s))
                    if name in probability_scores:
                        values["brier"] = float(brier(y_seg, s))
                rows.append({"group": group, "value": value, "score": name, "n": n,
                             "churn_rate": churn_rate, **values, "note": note})
    return pd.DataFrame(rows, columns=columns)


def _segment_masks(column: pd.Series) -> list[tuple[str, np.ndarray]]:
    """(label, boolean mask) per value; booleans read "yes"/"no", missing values "missing"."""
    values = column.reset_index(drop=True)
    missing = values.isna().to_numpy()
    if pd.api.types.is_bool_dtype(values.dtype):
        present = values.fillna(False).to_numpy(dtype=bool)
        out = [("yes", present & ~missing), ("no", ~present & ~missing)]
    else:
        labels = (list(values.cat.categories) if isinstance(values.dtype, pd.CategoricalDtype)
                  else sorted(values.dropna().unique(), key=str))
        out = [(str(v), (values == v).fillna(False).to_numpy(dtype=bool)) for v in labels]
    if missing.any():
        out.append(("missing", missing))
    return out


def calibration(y: np.ndarray, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """Reliability table: CALIBRATION_BINS equal-count bins of each probability score.

    Bin edges are quantiles of the score, so tied scores share a bin; heavy ties can leave
    fewer than 10 bins (never an empty one), and the counts always sum to n.
    """
    frames = []
    for name, p in scores.items():
        edges = np.unique(np.quantile(p, np.linspace(0, 1, CALIBRATION_BINS + 1)))
        bins = np.searchsorted(edges[1:-1], p, side="right")
        n = np.bincount(bins, minlength=len(edges) - 1)
        keep = n > 0
        frames.append(pd.DataFrame({
            "score": name,
            "bin": np.arange(len(n))[keep],
            "mean_predicted": np.bincount(bins, weights=p)[keep] / n[keep],
            "observed_rate": np.bincount(bins, weights=y.astype(float))[keep] / n[keep],
            "n": n[keep],
        }))
    if not frames:
        return pd.DataFrame(columns=["score", "bin", "mean_predicted", "observed_rate", "n"])
    return pd.concat(frames, ignore_index=True)


def gain(y: np.ndarray, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """Cumulative gain: the share of churners among the top x% by score, x on a 0..1 grid.

    Within a run of tied scores the curve is a straight line, i.e. the expected gain when
    ties are broken at random (so a constant score gives the diagonal, not an artefact).
    """
    grid = np.linspace(0.0, 1.0, GAIN_POINTS)
    n, positives = len(y), max(int(y.sum()), 1)
    frames = []
    for name, score in scores.items():
        order = np.argsort(-score, kind="stable")
        s = score[order]
        ends = np.r_[np.flatnonzero(s[1:] != s[:-1]), n - 1]  # last row of each tie run
        caught = np.cumsum(y[order])[ends] / positives
        x = np.r_[0.0, (ends + 1) / n]
        frames.append(pd.DataFrame({"score": name, "share_contacted": grid,
                                    "share_churners_caught": np.interp(grid, x, np.r_[0, caught])}))
    return pd.concat(frames, ignore_index=True)


def importance(contributions: pd.DataFrame | None) -> pd.Series:
    if contributions is None or contributions.empty:
        return pd.Series(dtype=float, name="mean_abs_shap")
    values = contributions.drop(columns=["bias"], errors="ignore").astype(float)
    return values.abs().mean().sort_values(ascending=False).rename("mean_abs_shap")
