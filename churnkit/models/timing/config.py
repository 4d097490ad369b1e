"""Timing configuration: a frozen model read from ``churnkit/config/timing.yaml``.

Every rule of contact timing (quiet hours, how long to wait before reaching out, what counts as
an incident) is a default in that YAML file, not a constant in code (docs/domain.md: "treat every
rule as a default in a config file").
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from churnkit.models.trees import TreeSettings

#: Keys of configs written before the LightGBM sizes were grouped: flat key -> (groups, key).
_FLAT_SIZES = {
    "n_estimators": (("hazard_trees",), "n_estimators"),
    "learning_rate": (("hazard_trees",), "learning_rate"),
    "num_leaves": (("hazard_trees",), "num_leaves"),
    "min_child_samples": (("hazard_trees", "slot_trees"), "min_child_samples"),
    "slot_n_estimators": (("slot_trees",), "n_estimators"),
    "slot_learning_rate": (("slot_trees",), "learning_rate"),
    "slot_num_leaves": (("slot_trees",), "num_leaves"),
}


class TreeSize(BaseModel):
    """LightGBM size of one timing model: boosting rounds, learning rate, leaves per tree and
    the fewest training rows per leaf."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_estimators: int = Field(100, ge=1)
    learning_rate: float = Field(0.08, gt=0)
    num_leaves: int = Field(31, ge=2)
    min_child_samples: int = Field(50, ge=1)

    def settings(self, *, random_state: int, n_jobs: int | None) -> TreeSettings:
        """These sizes with a seed and a thread count."""
        return TreeSettings(**self.model_dump(), random_state=random_state, n_jobs=n_jobs)


class TimingConfig(BaseModel):
    """Rules and fit sizes of the timing model (see docs/timing.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    day_bins: tuple[int, ...] = (0, 3, 7, 14, 21, 30, 45, 60)
    return_quantile: float = Field(0.6, gt=0, lt=1)
    max_wait_days: int = Field(30, ge=0)
    drift_probability: float = Field(0.25, ge=0, le=1)
    incident_recent_days: float = Field(60, ge=0)
    rhythm_search_days: int = Field(7, ge=1, le=14)
    drift_search_days: int = Field(3, ge=1, le=14)
    date_confidence_window_days: float = Field(7, gt=0)
    allowed_hours: tuple[int, int] = (9, 21)
    hour_profiles: int = Field(32, ge=0)
    prior_strength_min: float = Field(2.0, gt=0)
    prior_strength_max: float = Field(200.0, gt=0)
    max_training_customers: int = Field(40_000, ge=100)
    max_slot_training_rows: int = Field(150_000, ge=100)
    #: The hazard model of the next order, and the hour and weekday models.
    hazard_trees: TreeSize = TreeSize()
    slot_trees: TreeSize = TreeSize(n_estimators=40, learning_rate=0.15, num_leaves=7)

    @model_validator(mode="before")
    @classmethod
    def _group_flat_sizes(cls, data: object) -> object:
        """Read the flat size keys of older configs (and of bundles saved with them)."""
        if not isinstance(data, dict) or not set(data) & set(_FLAT_SIZES):
            return data
        data = dict(data)
        for key, (groups, name) in _FLAT_SIZES.items():
            if key in data:
                value = data.pop(key)
                for group in groups:
                    base = data.get(group) or cls.model_fields[group].default
                    data[group] = {**dict(base), name: value}
        return data

    @model_validator(mode="after")
    def _check(self) -> TimingConfig:
        bins = self.day_bins
        if not bins or bins[0] != 0 or list(bins) != sorted(set(bins)):
            raise ValueError(f"day_bins must start at 0 and increase strictly, got {list(bins)}")
        lo, hi = self.allowed_hours
        if not (0 <= lo < hi <= 24):
            raise ValueError(f"allowed_hours must be [start, end) with 0 <= start < end <= 24, "
                             f"got {[lo, hi]}")
        if self.prior_strength_min > self.prior_strength_max:
            raise ValueError("prior_strength_min must not exceed prior_strength_max")
        return self

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: object) -> TimingConfig:
        """The YAML at ``path`` (default: the packaged ``config/timing.yaml``) with overrides
        (None values ignored; a dict updates that group's keys, e.g. ``slot_trees``)."""
        if path is None:
            text = (resources.files("churnkit") / "config" / "timing.yaml").read_text()
        else:
            text = Path(path).read_text()
        data = yaml.safe_load(text) or {}
        data = cls._group_flat_sizes(data)
        for key, value in cls._group_flat_sizes(overrides).items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            elif value is not None:
                data[key] = value
        return cls(**data)

    def bin_edges(self, horizon_days: int) -> tuple[int, ...]:
        """Day-bin edges clipped to ``horizon_days``, ending at it."""
        return (*(b for b in self.day_bins if b < horizon_days), int(horizon_days))
