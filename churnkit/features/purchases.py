"""Purchases: recency, frequency, monetary value, tenure, rhythm, trend and basket.

docs/domain.md's leading indicator "the gap since the last order exceeds the customer's own usual
gap" is ``overdue_ratio``; RFM segments read recency, frequency and monetary value. Every order
placed before ``as_of`` counts as a purchase whatever its later status (the final status is
learned later; the delivery family reports failures, returns and cancellations).
"""

from __future__ import annotations

import numpy as np

from churnkit.features import reduce as r
from churnkit.features.arrays import DAY_US, Known, Rows
from churnkit.features.family import Columns, Family, Feature, description_of
from churnkit.features.population import PopulationFit
from churnkit.features.sql import ALL_WINDOWS, age_days, window_name, window_sql, window_text

NAME = "purchases"
_O = ("orders",)
_CO = ("customers", "orders")


def _features() -> tuple[Feature, ...]:
    out = [
        Feature("days_since_signup", NAME, "Tenure: days from signup to as_of.", "days",
                ("customers",), trend="age"),
        Feature("days_since_first_order", NAME, "Days from the first order to as_of; empty "
                "without orders.", "days", _O, trend="age"),
        Feature("days_since_last_order", NAME, "Recency: days from the last order to as_of; "
                "empty without orders.", "days", _O),
    ]
    for w in ALL_WINDOWS:
        out.append(Feature(window_name("orders", w), NAME, f"Orders placed {window_text(w)}.",
                           "orders", _O, "count"))
        out.append(Feature(window_name("revenue", w), NAME, f"Amount paid for orders placed "
                           f"{window_text(w)}.", "currency", _O, "total"))
    out += [
        Feature("gap_mean_days", NAME, "Mean days between consecutive orders; empty with fewer "
                "than 2 orders.", "days", _O),
        Feature("gap_median_days", NAME, "Median days between consecutive orders.", "days", _O),
        Feature("gap_std_days", NAME, "Sample standard deviation of the gaps between orders; "
                "empty with fewer than 3 orders.", "days", _O),
        Feature("gap_last_days", NAME, "Days between the last two orders.", "days", _O),
        Feature("overdue_ratio", NAME, "Days since the last order divided by the customer's "
                "mean gap between orders (> 1: overdue by their own rhythm).", "ratio", _O),
        Feature("orders_trend_90d", NAME, "(orders in the last 90 days - orders in the 90 "
                "before) / their sum, in [-1, 1]; empty when both are 0.", "ratio", _O),
        Feature("revenue_trend_90d", NAME, "(revenue in the last 90 days - revenue in the 90 "
                "before) / their sum, in [-1, 1]; empty when both are 0.", "ratio", _O),
        Feature("mean_basket", NAME, "Mean amount paid per order.", "currency", _O),
        Feature("mean_items", NAME, "Mean number of items per order.", "items", _O),
        Feature("discount_share", NAME, "Discount / (amount + discount) over all orders: how "
                "much of the list price was discounted.", "share", _O),
        Feature("discounted_order_share", NAME, "Share of orders with a discount (discount "
                "hunters buy only with one).", "share", _O),
        Feature("delivery_cost_share", NAME, "Delivery cost / (amount + delivery cost) over all "
                "orders (docs/domain.md: expensive delivery drives churn).", "share", _O),
        Feature("n_categories", NAME, "Distinct product categories ordered.", "categories", _O,
                "count"),
        Feature("top_category", NAME, "Most ordered category (ties: alphabetical first); empty "
                "without categorized orders.", "category", _O, "str"),
        Feature("basket_vs_population", NAME, "Mean basket / the population's mean order value "
                "(docs/domain.md RFM: above or below average).", "ratio", _O, python=True),
    ]
    return tuple(out)


def _sql(present: frozenset[str]) -> str:
    windows = []
    for w in ALL_WINDOWS:
        cond = window_sql(w)
        windows.append(f"count_if({cond}) AS {window_name('orders', w)}")
        windows.append(f"sum(CASE WHEN {cond} THEN amount ELSE 0.0 END) AS "
                       f"{window_name('revenue', w)}")
    window_cols = ",\n               ".join(windows)
    # Three scans of known_orders, each as narrow as it can be (faster on large shops): the plain
    # aggregates (windowed sums as CASE, cheaper than FILTER, same values); the gaps, from one
    # LAG over (customer, time, order id) selected explicitly, as DuckDB would otherwise carry
    # every column of the shared view through the window's sort; and the categories, whose
    # per-customer groups give both the distinct count and the modal category (no DISTINCT).
    return f"""
    SELECT base.customer_id,
           {age_days("base.signup_at")} AS days_since_signup,
           agg.* EXCLUDE (customer_id),
           gap.* EXCLUDE (customer_id),
           agg.days_since_last_order / nullif(gap.gap_mean_days, 0) AS overdue_ratio,
           (agg.orders_90d - agg.orders_prev_90d)
               / nullif(agg.orders_90d + agg.orders_prev_90d, 0) AS orders_trend_90d,
           (agg.revenue_90d - agg.revenue_prev_90d)
               / nullif(agg.revenue_90d + agg.revenue_prev_90d, 0) AS revenue_trend_90d,
           cat.n_categories,
           cat.top_category
    FROM base
    LEFT JOIN (
        SELECT customer_id,
               max(age_days) AS days_since_first_order,
               min(age_days) AS days_since_last_order,
               {window_cols},
               count_if(age_days > 90 AND age_days <= 180) AS orders_prev_90d,
               sum(CASE WHEN age_days > 90 AND age_days <= 180 THEN amount ELSE 0.0 END)
                   AS revenue_prev_90d,
               avg(amount) AS mean_basket,
               avg(n_items) AS mean_items,
               sum(discount_amount) / nullif(sum(amount + discount_amount), 0) AS discount_share,
               count_if(discount_amount > 0) / count(*) AS discounted_order_share,
               sum(delivery_cost) / nullif(sum(amount + delivery_cost), 0)
                   AS delivery_cost_share
        FROM known_orders
        GROUP BY customer_id
    ) AS agg ON agg.customer_id = base.customer_id
    LEFT JOIN (
        -- days between consecutive orders; the last gap is that of the last order
        SELECT customer_id,
               avg(gap_days) AS gap_mean_days,
               median(gap_days) AS gap_median_days,
               stddev_samp(gap_days) AS gap_std_days,
               arg_max(gap_days, rn) AS gap_last_days
        FROM (
            SELECT customer_id,
                   row_number() OVER w AS rn,
                   (epoch_us(ordered_at) - epoch_us(lag(ordered_at) OVER w)) / 86400000000.0
                       AS gap_days
            FROM (SELECT customer_id, ordered_at, order_id FROM known_orders)
            WINDOW w AS (PARTITION BY customer_id ORDER BY ordered_at, order_id)
        )
        GROUP BY customer_id
    ) AS gap ON gap.customer_id = base.customer_id
    LEFT JOIN (
        -- distinct categories, and the modal one; ties go to the alphabetically first
        SELECT customer_id, count(*) AS n_categories,
               arg_min(category, (-n, category)) AS top_category
        FROM (
            SELECT customer_id, category, count(*) AS n
            FROM known_orders
            WHERE category IS NOT NULL
            GROUP BY customer_id, category
        )
        GROUP BY customer_id
    ) AS cat ON cat.customer_id = base.customer_id
    """


def _compute(known: Known) -> Columns:
    orders = known.tables["orders"]
    age = known.age(orders["ordered_at"])
    amount = orders["amount"]
    out: Columns = {
        "days_since_signup": known.age(known.customers["signup_at"]),
        "days_since_first_order": r.maximum(orders, age),
        "days_since_last_order": r.minimum(orders, age),
    }
    counts = r.windowed(orders, age, ALL_WINDOWS)
    sums = r.windowed(orders, age, ALL_WINDOWS, weights=amount)
    for k, w in enumerate(ALL_WINDOWS):
        out[window_name("orders", w)] = counts[:, 0, k]
        out[window_name("revenue", w)] = sums[:, 0, k]
    before = (age > 90) & (age <= 180)
    orders_prev, revenue_prev = r.count(orders, before), r.total(orders, amount, before)
    n = out["orders_lifetime"]
    # days between consecutive orders (in time order); a customer's first order has none
    t = orders["ordered_at"]
    follows = np.zeros(len(orders), dtype=bool)
    follows[1:] = orders.cust[1:] == orders.cust[:-1]
    gaps = Rows(orders.n, orders.cust[follows], {})  # the customers only: no column copied
    gap = np.diff(t)[follows[1:]] / DAY_US
    out["gap_mean_days"] = r.mean(gaps, gap)
    out["gap_median_days"] = r.median(gaps, gap)
    out["gap_std_days"] = r.std(gaps, gap)
    out["gap_last_days"] = r.last_value(gaps, gap)
    out["overdue_ratio"] = r.ratio(out["days_since_last_order"], out["gap_mean_days"])
    out["orders_trend_90d"] = r.ratio(out["orders_90d"] - orders_prev,
                                      out["orders_90d"] + orders_prev)
    out["revenue_trend_90d"] = r.ratio(out["revenue_90d"] - revenue_prev,
                                       out["revenue_90d"] + revenue_prev)
    out["mean_basket"] = r.mean(orders, amount)
    out["mean_items"] = r.mean(orders, orders["n_items"])
    discount, delivery = orders["discount_amount"], orders["delivery_cost"]
    out["discount_share"] = r.ratio(r.total(orders, discount),
                                    r.total(orders, amount + discount))
    out["discounted_order_share"] = r.ratio(r.count(orders, discount > 0), n)
    out["delivery_cost_share"] = r.ratio(r.total(orders, delivery),
                                         r.total(orders, amount + delivery))
    out["n_categories"], out["top_category"] = _categories(known, orders)
    return out


def _categories(known: Known, orders: r.Rows) -> tuple[np.ndarray, np.ndarray]:
    """Distinct categories per customer, and the most ordered one (ties: alphabetical first;
    codes are in alphabetical order)."""
    code = orders["category"].astype(np.int64)
    has = code >= 0
    key = orders.cust[has] * (len(known.categories) + 1) + code[has]
    keys, counts = np.unique(key, return_counts=True)
    cust, cat = np.divmod(keys, len(known.categories) + 1)
    n_categories = np.bincount(cust, minlength=known.n).astype(np.int64)
    # keys come sorted by (customer, category): each customer's first category of the most
    # orders is the alphabetical first of the modal ones
    starts = r.starts_of(cust)
    group = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(cust))))
    modal = np.flatnonzero(counts == np.maximum.reduceat(counts, starts)[group]
                           if len(starts) else counts[:0])
    first = modal[r.starts_of(group[modal])]
    top = np.full(known.n, None, dtype=object)
    names = np.asarray(known.categories, dtype=object)
    top[cust[first]] = names[cat[first]] if len(first) else top[:0]
    return n_categories, top


def _finish(columns: Columns, population: PopulationFit) -> Columns:
    mean_order_value = population.mean_order_value
    basket = np.asarray(columns["mean_basket"], dtype="float64")
    if not mean_order_value > 0:  # NaN or 0: nothing to compare with
        return {"basket_vs_population": np.full(len(basket), np.nan)}
    return {"basket_vs_population": basket / mean_order_value}


FAMILY = Family(name=NAME, description=description_of(__doc__), required_tables=_CO,
                features=_features(), sql=_sql, compute=_compute, finish=_finish)
