"""Point-in-time features: one row per customer, from what was known strictly before ``as_of``.

See :func:`build_features`; the families and their columns are listed by
:func:`feature_reference_markdown`.
"""

from churnkit.features.arrays import ShopArrays
from churnkit.features.clock import WEEKDAYS
from churnkit.features.contacts import latest_send_age
from churnkit.features.engine import (
    build_features,
    computed_families,
    feature_columns,
    fit_population,
    left_out_families,
    margin_shares,
    shop_arrays,
)
from churnkit.features.family import TRENDS, Family, Feature
from churnkit.features.population import PopulationFit
from churnkit.features.registry import (
    all_features,
    families,
    feature_reference_markdown,
    model_features,
)

__all__ = [
    "TRENDS",
    "WEEKDAYS",
    "Family",
    "Feature",
    "PopulationFit",
    "ShopArrays",
    "all_features",
    "build_features",
    "computed_families",
    "families",
    "feature_columns",
    "feature_reference_markdown",
    "fit_population",
    "latest_send_age",
    "left_out_families",
    "margin_shares",
    "model_features",
    "shop_arrays",
]
