"""A customer's gross-margin share: the revenue-weighted mix of the shares of the categories
they bought (docs/policy.md "Money in margin").

Not a registry feature: it depends on the policy's shares (``gross_margin`` of the policy
config), so scoring computes it beside the features, from the same orders known at ``as_of``
(:func:`churnkit.features.engine.margin_shares`). The model never sees it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from churnkit.features.arrays import Known


def known_margin_shares(known: Known, default: float,
                        by_category: Mapping[str, float]) -> np.ndarray:
    """Per customer of ``known``: sum over their orders of amount × the share of the order's
    category, divided by the sum of amounts (every order placed before ``as_of``, whatever its
    later status, as the revenue features count them).

    An order without a category, or of a category not in ``by_category``, takes ``default``;
    a customer without revenue (no order, or only zero amounts) gets ``default``; so does
    everyone when the orders carry no ``category`` column.
    """
    out = np.full(known.n, float(default))
    orders = known.tables.get("orders")
    if not by_category or orders is None or "category" not in orders.cols or not len(orders):
        return out
    # Codes index known.categories; -1 (no category) picks the last entry, the default.
    table = np.array([by_category.get(c, default) for c in known.categories] + [default],
                     dtype=float)
    share = table[orders["category"].astype(np.int64)]
    amount = np.nan_to_num(orders["amount"].astype(float), nan=0.0)
    revenue = np.bincount(orders.cust, weights=amount, minlength=known.n)
    kept = np.bincount(orders.cust, weights=amount * share, minlength=known.n)
    has = revenue > 0
    out[has] = kept[has] / revenue[has]
    return out
