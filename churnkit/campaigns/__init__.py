"""Win-back campaigns measured against their randomized control group: metrics and report."""

from churnkit.campaigns.metrics import (
    METRIC_LABELS,
    CampaignMetrics,
    campaign_ids,
    campaign_metrics,
    campaign_outcomes,
    report_campaign,
    send_day,
    with_campaign_ids,
)
from churnkit.campaigns.report import (
    campaign_report_command,
    render_campaign_report,
    write_campaign_report,
)

__all__ = [
    "METRIC_LABELS",
    "CampaignMetrics",
    "campaign_ids",
    "campaign_metrics",
    "campaign_outcomes",
    "campaign_report_command",
    "render_campaign_report",
    "report_campaign",
    "send_day",
    "with_campaign_ids",
    "write_campaign_report",
]
