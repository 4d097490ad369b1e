"""The bundle's model parts: churn (calibrated LightGBM), value, uplift, contact timing and
the drift reference."""

from churnkit.models.churn import ChurnModel
from churnkit.models.drift import DriftReference
from churnkit.models.part import ModelPart
from churnkit.models.timing import TimingConfig, TimingModel
from churnkit.models.uplift import UPLIFT_FEATURES, UpliftModel
from churnkit.models.value import ValueModel

__all__ = [
    "UPLIFT_FEATURES",
    "ChurnModel",
    "DriftReference",
    "ModelPart",
    "TimingConfig",
    "TimingModel",
    "UpliftModel",
    "ValueModel",
]
