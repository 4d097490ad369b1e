"""BG/NBD inputs: per-customer purchase summaries from orders, and data simulated from the model.

Split from :mod:`churnkit.stats.btyd` (the model itself). Units are days, as there.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnkit.data.contract import as_utc_timestamp
from churnkit.stats.btyd import BGNBDParams
from churnkit.stats.btyd_likelihood import checked_array

_DAY = pd.Timedelta(days=1)


def simulate_bgnbd(params: BGNBDParams, T, *, random_state) -> pd.DataFrame:
    """Draw customers from the BG/NBD model: the ground truth for tests and benchmarks.

    Parameters
    ----------
    params
        True parameters (``alpha`` in the unit of ``T``, days in churnkit).
    T
        Observation length per customer, from their first purchase (time 0) to ``as_of``.
    random_state
        Seed or ``numpy.random.Generator``; required, so that simulations are reproducible.

    Returns
    -------
    pandas.DataFrame
        ``frequency``, ``recency``, ``T`` (continuous time) plus the drawn ``lam`` and ``p``.
    """
    rng = np.random.default_rng(random_state)
    big_t = checked_array(T, "T").ravel()
    n = big_t.size
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    drop = rng.beta(params.a, params.b, n)
    x = np.zeros(n, dtype="int64")
    t_x = np.zeros(n)
    # Vectorized over customers, one purchase per round: the active set shrinks every round as
    # customers run past T or drop out, so the loop costs about max(x) cheap rounds.
    active = np.arange(n)
    scale = 1.0 / np.maximum(lam, 1e-300)  # a rate that underflowed to 0 never buys again
    while active.size:
        nxt = t_x[active] + rng.exponential(scale[active])
        inside = nxt <= big_t[active]
        active, nxt = active[inside], nxt[inside]
        x[active] += 1
        t_x[active] = nxt
        active = active[rng.random(active.size) >= drop[active]]
    return pd.DataFrame({"frequency": x, "recency": t_x, "T": big_t, "lam": lam, "p": drop})


# ---------------------------------------------------------------------------------------------
# data preparation


def summarize_purchases(
    order_times: pd.DataFrame,
    *,
    as_of,
    customer_col: str = "customer_id",
    time_col: str = "ordered_at",
) -> pd.DataFrame:
    """Per-customer BG/NBD summary ``frequency``, ``recency``, ``T`` in days, as of ``as_of``.

    Only purchases with ``time < as_of`` (UTC; naive times are read as UTC) are used. A purchase
    *day* is a UTC calendar day: several orders on one day count as one purchase, as in the
    original CDNOW analysis. Each purchase is placed at the start (00:00 UTC) of its day, so

    - ``frequency``: distinct purchase days minus one (repeat purchase days);
    - ``recency``: whole days from the first to the last purchase day;
    - ``T``: days (fractional when ``as_of`` is not midnight) from the first purchase day to
      ``as_of``; always ``> recency``.

    Which rows count as purchases (e.g. whether cancelled orders do) is the caller's choice: pass
    the rows you mean. Customers without a purchase before ``as_of`` are absent.

    Returns
    -------
    pandas.DataFrame
        Index ``customer_col``, columns ``frequency`` (int64), ``recency``, ``T`` (float64, days),
        sorted by customer.
    """
    cutoff = as_utc_timestamp(as_of)
    times = order_times[time_col]
    if not isinstance(times.dtype, pd.DatetimeTZDtype):
        times = pd.to_datetime(times, utc=True)
    times = times.dt.tz_convert("UTC")
    keep = (times < cutoff).to_numpy()
    days = times[keep].dt.floor("D")
    frame = pd.DataFrame({customer_col: order_times[customer_col].to_numpy()[keep], "day": days})
    frame = frame.drop_duplicates()
    grouped = frame.groupby(customer_col, sort=True)["day"]
    first, last, n_days = grouped.min(), grouped.max(), grouped.size()
    out = pd.DataFrame(
        {
            "frequency": (n_days - 1).astype("int64"),
            "recency": (last - first) / _DAY,
            "T": (cutoff - first) / _DAY,
        }
    )
    out.index.name = customer_col
    return out
