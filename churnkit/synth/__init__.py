"""A synthetic online shop with known ground truth: ``tables, truth = generate(n, seed=..., ...)``.

The shop encodes the mechanisms of docs/domain.md so that models get real but imperfect signals:
heterogeneous customers, delivery failures and ignored complaints that raise the hazard of
deciding to leave, hidden delivery costs, forgotten one-time buyers, natural churn, gradual
leaving (browsing fades first, buying after a lag), seasonality and paydays, personal active
hours in real time zones, consents, personal channel affinity (each customer's open propensity
per channel, logit-normal around the population's rates: ``SynthParams.open_affinity_sigma``,
exposed as ``GroundTruth.open_propensity`` and ``GroundTruth.best_channel``), and monthly
win-back campaigns with a randomized control group that act inside the simulation. Modules:

- ``params``: every knob (:class:`SynthParams`);
- ``timegrid``: the UTC day grid, seasonality, time zones, placing events in active hours;
- ``population``: latent customer traits;
- ``incidents``: order outcomes, tickets and the hazard they inject;
- ``simulate``: the vectorized day loop;
- ``campaigns``: win-back campaigns and the latent response to actions;
- ``browsing``: sessions to events;
- ``assemble``: the contract tables as known at ``end``;
- ``truth``: :class:`GroundTruth` and the true churn probability.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from churnkit.data.contract import CHANNELS
from churnkit.data.tables import Tables
from churnkit.synth.assemble import (
    contacts_frame,
    customers_frame,
    ms_of,
    orders_frame,
    tickets_frame,
    ts_column,
)
from churnkit.synth.browsing import browsing_frame
from churnkit.synth.params import CAUSES, DEFAULT_PARAMS, SynthParams
from churnkit.synth.population import SEGMENTS, Population, draw_population
from churnkit.synth.recipe import GENERATOR_VERSION, is_current, read_recipe, write_recipe
from churnkit.synth.simulate import SimResult, simulate
from churnkit.synth.timegrid import DayGrid, make_grid
from churnkit.synth.truth import GroundTruth, TruthKernel, response_table

__all__ = [
    "DEFAULT_PARAMS",
    "GENERATOR_VERSION",
    "GroundTruth",
    "SynthParams",
    "generate",
    "is_current",
    "read_recipe",
    "write_recipe",
]


def generate(
    n_customers: int,
    *,
    seed: int,
    start: object,
    end: object,
    params: SynthParams | None = None,
) -> tuple[Tables, GroundTruth]:
    """Simulate a shop of ``n_customers`` over ``[start, end)`` and return its tables and truth.

    Parameters
    ----------
    n_customers
        Number of customers; all sign up inside the period.
    seed
        Seed of the ``numpy.random.Generator`` driving everything: the same seed gives identical
        tables and truth. The channel affinity is drawn from the seed's first spawned child
        stream (``np.random.SeedSequence(seed).spawn(1)[0]``), the rest from the seed itself.
    start, end
        Dates (midnight UTC; str or Timestamp). Every timestamp in the tables is in
        ``[start, end)``; values learned at or after ``end`` are not in the tables yet.
    params
        Generator knobs; :data:`DEFAULT_PARAMS` when omitted.

    Returns
    -------
    (Tables, GroundTruth)
        Normalized tables (exactly what :func:`churnkit.validate` returns for them) with all
        five contract tables, and the latent truth.
    """
    if n_customers < 1:
        raise ValueError(f"n_customers must be at least 1, got {n_customers}")
    params = params or DEFAULT_PARAMS
    grid = make_grid(start, end)
    rng = np.random.default_rng(seed)
    # The channel affinity has a stream of its own (the seed's first spawned child), so its
    # parameters leave every other trait as drawn without it.
    affinity_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    pop = draw_population(int(n_customers), grid, params, rng, affinity_rng)
    res = simulate(pop, grid, params, rng)
    pop.slot_prefix = None  # every event is placed: free 0.7 GB per million customers
    browsing = browsing_frame(pop, res.sessions, res.orders, grid, params, rng)
    res.sessions = {}  # no longer needed: free the memory before building the other tables
    tables = Tables(
        customers=customers_frame(pop, res, grid, params),
        orders=orders_frame(pop, res, grid, params),
        browsing=browsing,
        tickets=tickets_frame(pop, res, grid),
        contacts=contacts_frame(pop, res, grid, params),
    )
    # The frames are built exactly as validation normalizes them (dtypes, text columns, order
    # by customer then time), which tests/churnkit/synth checks by validating them again.
    return replace(tables, normalized=True), _truth(pop, res, grid, params)


def _truth(pop: Population, res: SimResult, grid: DayGrid, params: SynthParams) -> GroundTruth:
    index = pd.Index(pop.customer_id, name="customer_id")
    zones = np.array([z[0] for z in params.timezones], dtype=object)
    regions = np.array([z[2] for z in params.timezones], dtype=object)
    segment = np.array(SEGMENTS, dtype=object)[pop.segment]
    fav = np.argmax(np.diff(pop.category_cum, axis=1, prepend=0), axis=1)
    customers = pd.DataFrame(
        {
            "segment": pd.Series(segment, dtype="str").to_numpy(),
            "is_vip": pop.flag("vip"),
            "is_serial_complainer": pop.flag("serial_complainer"),
            "is_discount_hunter": pop.flag("discount_hunter"),
            "is_one_time": pop.flag("one_time"),
            "base_rate": pop.base_rate,
            "mean_basket": pop.mean_basket,
            "price_sensitivity": pop.price_sensitivity,
            "timezone": zones[pop.tz_index],
            "utc_offset_hours": pop.offset,
            "region": regions[pop.tz_index],
            "signup_at": ts_column(grid, ms_of(pop.signup_sec)).array,
            "activator": pop.activator,
            "natural_hazard": pop.h_natural,
            "forgotten_hazard": pop.h_forget,
            "browse_ratio": pop.browse_ratio,
            "order_lag_days": pop.lag_days,
            "responsiveness": pop.responsiveness,
            "favourite_category": np.array(params.categories, dtype=object)[fav],
            **{f"consent_{ch}": pop.consent[:, j] for j, ch in enumerate(CHANNELS)},
        },
        index=index,
    )
    for col in ("timezone", "region", "favourite_category"):
        customers[col] = customers[col].astype("str")

    d = res.decisions
    order = np.lexsort((d["sec"], d["row"]))
    d = {key: v[order] for key, v in d.items()}
    never = np.setdiff1d(np.arange(pop.n), d["row"])
    rows = np.concatenate([d["row"], never])
    sec = np.concatenate([d["sec"], np.full(len(never), np.nan)])
    cause = np.concatenate([d["cause"], np.full(len(never), -1)])
    rev = np.concatenate([d["reversed_sec"], np.full(len(never), np.nan)])
    kind = np.concatenate([d["reversal_kind"], np.full(len(never), -1)])
    lag = np.concatenate([d["lag"], pop.lag_days[never]])
    srt = np.lexsort((np.nan_to_num(sec, nan=np.inf), rows))
    leaving = pd.DataFrame(
        {
            "customer_id": pop.customer_id[rows[srt]],
            "decided_at": ts_column(grid, ms_of(sec[srt])),
            "cause": pd.Categorical.from_codes(cause[srt], categories=list(CAUSES)),
            "reversed_at": ts_column(grid, ms_of(rev[srt])),
            "reversal": pd.Categorical.from_codes(
                kind[srt], categories=["spontaneous", "campaign"]
            ),
            "order_lag_days": lag[srt],
        }
    )

    latest = np.full(pop.n, CAUSES.index("natural"), dtype=np.int64)
    uniq, from_end = np.unique(d["row"][::-1], return_index=True)
    latest[uniq] = d["cause"][len(d["row"]) - 1 - from_end]  # each customer's latest decision
    o_key = np.sort(res.orders["row"] * 1e9 + res.orders["sec"])
    kernel = TruthKernel(
        pop=pop, grid=grid, params=params, decisions=d, injections=res.injections, order_key=o_key
    )
    return GroundTruth(
        customers=customers,
        leaving=leaving,
        active_slots=pop.slots,
        action_response=response_table(pop, latest, params, if_opened=False),
        action_response_if_opened=response_table(pop, latest, params, if_opened=True),
        kernel=kernel,
    )
