"""Population-level quantities the per-customer features depend on, fitted once and carried.

A feature such as P(alive) needs parameters fitted on the whole customer base. Fitting them on
whatever customers happen to be scored would make one customer's features depend on who else is
in the call, so they are fitted once, on every customer known before ``as_of``, kept in a
:class:`PopulationFit` and handed back to :func:`churnkit.features.build_features` (the training
frame carries it in ``frame.attrs["population"]``; a bundle can store ``to_dict()``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnkit.data.contract import as_utc_timestamp
from churnkit.stats.btyd import BGNBDParams, fit_bgnbd
from churnkit.stats.pareto_nbd import ParetoNBDParams, fit_pareto_nbd

#: Below this many buyers a BG/NBD fit is noise; the BTYD probabilities are then left empty.
MIN_BUYERS_FOR_BGNBD = 20
#: The Pareto/NBD fit reads at most this many buyers (a seeded sample): its hypergeometric
#: terms cost more than BG/NBD's, and the four parameters are settled well before.
PARETO_FIT_BUYERS = 20_000
_VERSION = 2


@dataclass(frozen=True)
class PopulationFit:
    """What was fitted on the population known before ``as_of``.

    Attributes
    ----------
    as_of
        The cutoff the fit used (UTC): only data known strictly before it.
    n_customers
        Customers signed up before ``as_of``.
    n_buyers
        Of those, customers with at least one order before ``as_of``.
    mean_order_value
        Mean ``amount`` per order over all their orders (shop currency); NaN without orders.
    bgnbd
        BG/NBD parameters (days) fitted on the buyers, or None when there were fewer than
        :data:`MIN_BUYERS_FOR_BGNBD` buyers or the fit did not converge.
    pareto_nbd
        Pareto/NBD parameters (days) fitted on the buyers (at most :data:`PARETO_FIT_BUYERS`
        of them, a seeded sample), or None as for ``bgnbd``.
    """

    def __deepcopy__(self, memo: dict) -> PopulationFit:
        # Immutable, so a copy is the object itself. pandas deep-copies ``DataFrame.attrs`` (where
        # build_features keeps the fit) on every operation; without this, that copy dominated
        # the time of scoring one customer.
        return self


    as_of: pd.Timestamp
    n_customers: int
    n_buyers: int
    mean_order_value: float
    bgnbd: BGNBDParams | None = None
    pareto_nbd: ParetoNBDParams | None = None

    def to_dict(self) -> dict:
        """A JSON-ready dict (ISO timestamp, plain numbers; NaN becomes None)."""
        mov = None if math.isnan(self.mean_order_value) else float(self.mean_order_value)
        return {
            "version": _VERSION,
            "as_of": self.as_of.isoformat(),
            "n_customers": int(self.n_customers),
            "n_buyers": int(self.n_buyers),
            "mean_order_value": mov,
            "bgnbd": None if self.bgnbd is None else self.bgnbd.to_dict(),
            "pareto_nbd": None if self.pareto_nbd is None else self.pareto_nbd.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> PopulationFit:
        """Inverse of :meth:`to_dict`."""
        if d.get("version") != _VERSION:
            raise ValueError(f"population fit version {d.get('version')!r}, expected {_VERSION}: "
                             "it was saved by another churnkit version, whose features differ; "
                             "retrain the bundle with this version")
        mov = d["mean_order_value"]
        return cls(
            as_of=as_utc_timestamp(d["as_of"]),
            n_customers=int(d["n_customers"]),
            n_buyers=int(d["n_buyers"]),
            mean_order_value=float("nan") if mov is None else float(mov),
            bgnbd=None if d["bgnbd"] is None else BGNBDParams.from_dict(d["bgnbd"]),
            pareto_nbd=None if d["pareto_nbd"] is None else ParetoNBDParams(**d["pareto_nbd"]),
        )


#: The columns :func:`population_from_columns` reads.
POPULATION_INPUTS = ("orders_lifetime", "revenue_lifetime", "btyd_frequency",
                     "btyd_recency_days", "btyd_T_days")


def population_from_columns(columns: Mapping[str, np.ndarray], as_of: pd.Timestamp
                            ) -> PopulationFit:
    """Fit the population quantities from the whole population's feature columns.

    ``columns`` hold one value per customer known at ``as_of``, in customer order, for each of
    :data:`POPULATION_INPUTS` (the BG/NBD inputs NaN for customers without orders).
    """
    n_orders = int(np.sum(columns["orders_lifetime"]))
    revenue = float(np.sum(columns["revenue_lifetime"]))
    x_all = np.asarray(columns["btyd_frequency"], dtype="float64")
    buyers = ~np.isnan(x_all)
    n_buyers = int(buyers.sum())
    params = pareto = None
    if n_buyers >= MIN_BUYERS_FOR_BGNBD:
        x = x_all[buyers]
        t_x = np.asarray(columns["btyd_recency_days"], dtype="float64")[buyers]
        big_t = np.asarray(columns["btyd_T_days"], dtype="float64")[buyers]
        try:
            params = fit_bgnbd(x, t_x, big_t)
        except RuntimeError:  # the optimizer did not converge: leave P(alive) & co. empty
            params = None
        try:
            pareto = fit_pareto_nbd(x, t_x, big_t, max_customers=PARETO_FIT_BUYERS)
        except (RuntimeError, ValueError):  # as for BG/NBD: its features stay empty
            pareto = None
    return PopulationFit(
        as_of=as_of,
        n_customers=len(x_all),
        n_buyers=n_buyers,
        mean_order_value=revenue / n_orders if n_orders else float("nan"),
        bgnbd=params,
        pareto_nbd=pareto,
    )
