"""Training configuration: a frozen pydantic model read from YAML, overridable by CLI flags."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_CONFIG = Path(__file__).with_name("configs") / "default.yaml"


class TrainConfig(BaseModel):
    """How ``churnkit train`` builds snapshots, tunes, evaluates and tracks a churn model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    horizon_days: int = Field(90, ge=7, le=365)
    train_cutoffs: int = Field(3, ge=1, le=24)
    cutoff_step_days: int = Field(30, ge=1)
    trials: int = Field(30, ge=1)
    #: Optuna trials fit on at most this many training rows (a seeded sample) and validate on
    #: at most ``tune_valid_rows``; the final model is fit on every row.
    tune_rows: int = Field(150_000, ge=1000)
    tune_valid_rows: int = Field(100_000, ge=1000)
    seed: int = 0
    bootstrap: int = Field(200, ge=20)
    experiment: str = "churnkit"
    tracking_uri: str = "sqlite:///mlruns.db"
    models_dir: Path = Path("models")
    name: str = Field("churn", pattern=r"^[A-Za-z0-9_.-]+$")
    #: LightGBM threads; None uses every core. Use 1 when other processes share the cores
    #: (parallel test workers): OpenMP threads competing for busy cores run far slower.
    threads: int | None = Field(None, ge=1)
    #: The win-back policy config (YAML) the bundle scores with; None = the packaged defaults.
    policy: Path | None = None
    #: Learn which action pays from the campaign holdouts (needs closed campaigns in contacts).
    uplift: bool = True
    #: Closed campaigns the pooled policy evaluation holds out in turn (the latest ones).
    uplift_campaigns: int = Field(6, ge=1)

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: object) -> TrainConfig:
        """The YAML config at ``path`` (default: training/configs/default.yaml) with overrides;
        overrides that are None are ignored (flags not given)."""
        data = yaml.safe_load(Path(path or DEFAULT_CONFIG).read_text()) or {}
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)
