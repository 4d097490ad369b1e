"""Contact timing: which day, which local weekday and hour, which channel (see docs/timing.md).

The bundle's optional ``timing`` component is a :class:`TimingModel`; scoring joins
:meth:`TimingModel.predict` (columns :data:`OUTPUT_COLUMNS`).
"""

from churnkit.models.timing.channels import ChannelRanker
from churnkit.models.timing.config import TimingConfig
from churnkit.models.timing.days import NextOrderModel
from churnkit.models.timing.model import OUTPUT_COLUMNS, TimingModel
from churnkit.models.timing.slots import HOURS_PER_WEEK, SlotModel

__all__ = [
           "HOURS_PER_WEEK",
           "OUTPUT_COLUMNS",
           "ChannelRanker",
           "NextOrderModel",
           "SlotModel",
           "TimingConfig",
           "TimingModel",
]
