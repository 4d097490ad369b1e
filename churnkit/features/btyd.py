"""BTYD: P(alive) and expected purchases from the BG/NBD and Pareto/NBD models fitted on the
population.

The classic "buy till you die" baselines (Fader, Hardie & Lee 2005; Schmittlein, Morrison &
Colombo 1987), as features. The per-customer
inputs follow :func:`churnkit.stats.btyd_data.summarize_purchases` exactly: purchase *days* are UTC
calendar days of orders placed before ``as_of``; ``btyd_frequency`` = distinct purchase days - 1,
``btyd_recency_days`` = days from the first to the last purchase day, ``btyd_T_days`` = days from
the first purchase day (00:00 UTC) to ``as_of``. The parameters come from the
:class:`~churnkit.features.population.PopulationFit` (fitted once on every customer known before
``as_of``), so a customer's probabilities do not depend on who else is scored. Customers without
orders, or a population too small to fit, get empty values. """

from __future__ import annotations

import numpy as np
import pandas as pd

from churnkit.features import reduce as r
from churnkit.features.arrays import DAY_US, Known
from churnkit.features.family import Columns, Family, Feature, description_of
from churnkit.features.population import PopulationFit
from churnkit.features.sql import age_days
from churnkit.stats.btyd import summary_predictions
from churnkit.stats.pareto_nbd import summary_predictions as pareto_predictions

NAME = "btyd"
_O = ("orders",)
#: Prediction horizon, days after as_of.
HORIZON_DAYS = 90


def _features() -> tuple[Feature, ...]:
    return (
        Feature("btyd_frequency", NAME, "Repeat purchase days: distinct UTC order days - 1; "
                "empty without orders.", "days", _O),
        Feature("btyd_recency_days", NAME, "Days from the first to the last purchase day.",
                "days", _O),
        Feature("btyd_T_days", NAME, "Days from the first purchase day (00:00 UTC) to as_of.",
                "days", _O, trend="age"),
        Feature("p_alive", NAME, "BG/NBD probability that the customer is still active at "
                "as_of.", "probability", _O, python=True),
        Feature(f"expected_purchases_{HORIZON_DAYS}d", NAME, "BG/NBD expected purchase days in "
                f"the {HORIZON_DAYS} days after as_of.", "purchases", _O, python=True),
        Feature(f"p_no_purchase_{HORIZON_DAYS}d", NAME, "BG/NBD probability of no purchase in "
                f"the {HORIZON_DAYS} days after as_of.", "probability", _O, python=True),
        Feature("pnbd_p_alive", NAME, "Pareto/NBD probability that the customer is still "
                "active at as_of.", "probability", _O, python=True),
        Feature(f"pnbd_p_no_purchase_{HORIZON_DAYS}d", NAME, "Pareto/NBD probability of no "
                f"purchase in the {HORIZON_DAYS} days after as_of.", "probability", _O,
                python=True),
    )


def _sql(present: frozenset[str]) -> str:
    return f"""
    SELECT customer_id,
           count(DISTINCT day) - 1 AS btyd_frequency,
           (epoch_us(max(day)) - epoch_us(min(day))) / 86400000000.0 AS btyd_recency_days,
           {age_days("min(day)")} AS btyd_T_days
    FROM (
        -- the session time zone is UTC (engine), so this is the UTC calendar day
        SELECT customer_id, date_trunc('day', ordered_at) AS day FROM known_orders
    )
    GROUP BY customer_id
    """


def _compute(known: Known) -> Columns:
    orders = known.tables["orders"]
    day = orders["ordered_at"] // DAY_US * DAY_US  # UTC calendar day, as microseconds
    # rows are in time order per customer, so a new purchase day is a change of day
    new_day = np.ones(len(day), dtype=bool)
    new_day[1:] = (day[1:] != day[:-1]) | (orders.cust[1:] != orders.cust[:-1])
    days = r.count(orders, new_day).astype(np.float64)
    buyers = days > 0
    first, last = r.minimum(orders, day), r.maximum(orders, day)
    return {
        "btyd_frequency": np.where(buyers, days - 1, np.nan),
        "btyd_recency_days": (last - first) / DAY_US,
        "btyd_T_days": (known.as_of - first) / DAY_US,
    }


def _finish(columns: Columns, population: PopulationFit) -> Columns:
    x = np.asarray(columns["btyd_frequency"], dtype="float64")
    out = {f.name: np.full(len(x), np.nan) for f in FAMILY.python_features()}
    buyers = ~np.isnan(x)
    if not buyers.any():
        return out
    x = x[buyers]
    t_x = np.asarray(columns["btyd_recency_days"], dtype="float64")[buyers]
    big_t = np.asarray(columns["btyd_T_days"], dtype="float64")[buyers]
    # each distinct summary computed once: a customer's values depend on their summary alone
    # (scored alone, they are the base's bits), and whole days make many summaries alike
    first, inverse = _distinct(x, t_x, big_t)
    x, t_x, big_t = x[first], t_x[first], big_t[first]
    # the summaries are valid by construction (whole repeat days, first <= last < as_of): the
    # formulas without the public functions' input checks
    if population.bgnbd is not None:
        alive, expected, quiet = summary_predictions(population.bgnbd, float(HORIZON_DAYS),
                                                     x, t_x, big_t)
        out["p_alive"][buyers] = alive[inverse]
        out[f"expected_purchases_{HORIZON_DAYS}d"][buyers] = expected[inverse]
        out[f"p_no_purchase_{HORIZON_DAYS}d"][buyers] = quiet[inverse]
    if population.pareto_nbd is not None:
        alive, quiet = pareto_predictions(population.pareto_nbd, float(HORIZON_DAYS), x,
                                         t_x, big_t)
        out["pnbd_p_alive"][buyers] = alive[inverse]
        out[f"pnbd_p_no_purchase_{HORIZON_DAYS}d"][buyers] = quiet[inverse]
    return out


#: Up to this many rows :func:`_distinct` keys them in a dict instead of factorizing.
_FEW = 16


def _distinct(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of equal bits in every column: the first row of each distinct one (in order of
    appearance) and each row's distinct one (``rows[first][inverse]`` is ``rows``)."""
    if len(columns[0]) <= _FEW:  # a few rows (one customer scored alone): a dict is faster
        known: dict[tuple[int, ...], int] = {}
        rows = zip(*(np.ascontiguousarray(c).view(np.int64).tolist() for c in columns), strict=True)
        which = [known.setdefault(row, len(known)) for row in rows]
        firsts: list[int] = []
        for i, k in enumerate(which):
            if k == len(firsts):  # a new distinct row
                firsts.append(i)
        return np.asarray(firsts, dtype=np.int64), np.asarray(which, dtype=np.int64)
    inverse = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:  # the distinct rows so far, split by the next column's bits
        codes, values = pd.factorize(np.ascontiguousarray(column).view(np.int64))
        inverse, _ = pd.factorize(inverse * len(values) + codes)
    # codes count up in order of appearance: a row is a first one where a new maximum starts
    seen = np.maximum.accumulate(inverse)
    new = np.ones(len(inverse), dtype=bool)
    new[1:] = seen[1:] > seen[:-1]
    return np.flatnonzero(new), inverse


FAMILY = Family(name=NAME, description=description_of(__doc__),
                required_tables=("customers", "orders"), features=_features(), sql=_sql,
                compute=_compute, finish=_finish)
