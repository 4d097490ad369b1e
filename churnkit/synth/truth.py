"""The latent truth behind a synthetic shop, and the true churn probability at any date.

``churn_probability(as_of, h)`` is computed in closed form on the simulation's day grid from the
latent state at ``as_of`` (not from the realized future). For a customer who has not decided to
leave by ``as_of`` the decision day ``D`` has hazard ``h_j`` (natural, forgotten, price drift,
and the decaying bumps of incidents already caused by orders placed before ``as_of``); given
``D`` the orders are a Poisson process with the faded intensity, and a spontaneous return (which
comes with an order) has a constant hazard. Because the hazard path only changes with new orders,
and the event "no order in the window" excludes them,

    P(no order in [as_of, as_of+h)) = Σ_j P(D = j) · exp(-Λ(window | D=j)) · P(no return | j)
                                      + P(D beyond window) · exp(-Λ(window | no decision)),

which is exact for the generator on the day grid (``as_of`` at midnight UTC; other times are
handled with fractional day coverage). Campaigns after ``as_of`` are ignored: a win-back sent
later is an intervention, not part of the customer's latent state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from churnkit.data.contract import CHANNELS, SEND_ACTIONS, as_utc_timestamp
from churnkit.synth.campaigns import response_if_opened
from churnkit.synth.incidents import Injections
from churnkit.synth.params import BUMP_CAUSES, CAUSES, SynthParams
from churnkit.synth.population import Population
from churnkit.synth.timegrid import SECONDS_PER_DAY, DayGrid, season_factor

CHUNK = 50_000


@dataclass(frozen=True)
class TruthKernel:
    """What :meth:`GroundTruth.churn_probability` replays: traits, decisions, injections, orders."""

    pop: Population
    grid: DayGrid
    params: SynthParams
    decisions: dict[str, np.ndarray]  # sorted by row then sec
    injections: Injections
    order_key: np.ndarray  # sorted row * 1e9 + seconds of every simulated order


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """The latent truth of a synthetic shop (see ``churnkit.synth``).

    Attributes
    ----------
    customers
        Index ``customer_id``: ``segment`` and the flags ``is_vip``, ``is_serial_complainer``,
        ``is_discount_hunter``, ``is_one_time``; ``base_rate`` (orders/day), ``mean_basket``
        (currency), ``price_sensitivity`` (0-1), ``timezone``, ``utc_offset_hours``, ``region``,
        ``signup_at``, ``activator``, ``natural_hazard`` and ``forgotten_hazard`` (per day),
        ``browse_ratio``, ``order_lag_days``, ``responsiveness``, ``favourite_category``.
    leaving
        One row per leave decision: ``customer_id``, ``decided_at`` (UTC), ``cause`` (delivery,
        service, price, forgotten, natural), ``reversed_at`` (the comeback order's time, NaT if
        never), ``reversal`` ('spontaneous', 'campaign' or missing), ``order_lag_days``.
        Customers who never decided have one row with ``decided_at`` NaT and ``cause`` missing.
    active_slots
        (n_customers, 168) float32 local hour-of-week weights (Monday 00:00 local = slot 0),
        rows sum to 1, in the order of ``customers.index``.
    action_response
        Index ``customer_id``, one column per action except ``do_not_contact`` plus ``none``: the
        probability of coming back within 30 days if that action were sent at a campaign, on the
        customer's best consented channel at their most active hour, given the cause of their
        latest leave decision (``natural`` for customers who never decided). ``none`` is the
        unprompted return; customers with no consent get ``none`` everywhere.
    action_response_if_opened
        The same, conditional on the message being opened (independent of channel and hour).
    kernel
        The latent state :meth:`churn_probability` replays (traits, decisions, incident
        injections, order times); internal.

    Methods
    -------
    churn_probability(as_of, horizon_days=90, customer_ids=None)
        True probability of no order in ``[as_of, as_of + horizon_days)``.
    action_response_at(as_of)
        ``action_response`` for the leave decision in force at ``as_of`` (NaN if none).
    open_propensity(customer_ids=None)
        Each customer's true P(open) per channel at their most active hour (channel affinity).
    best_channel(customer_ids=None)
        Each customer's true best consented channel and its open propensity.
    """

    customers: pd.DataFrame
    leaving: pd.DataFrame
    active_slots: np.ndarray
    action_response: pd.DataFrame
    action_response_if_opened: pd.DataFrame
    kernel: TruthKernel = field(repr=False)

    def churn_probability(self, as_of: object, horizon_days: int = 90,
                          customer_ids: object = None) -> pd.Series:
        """True probability of no order in ``[as_of, as_of + horizon_days)`` (UTC).

        Computed from the latent state at ``as_of`` (see the module docstring); customers who
        had not signed up by ``as_of`` are excluded; later campaigns are ignored.

        Returns
        -------
        pd.Series
            Index ``customer_id``, name ``churn_probability``, values in [0, 1].
        """
        k = self.kernel
        t = as_utc_timestamp(as_of)
        if not (k.grid.origin <= t <= k.grid.end):
            raise ValueError(f"as_of={t} is outside the simulated period "
                             f"[{k.grid.origin}, {k.grid.end}]")
        as_sec = (t - k.grid.origin) / pd.Timedelta(seconds=1)
        rows = np.flatnonzero(k.pop.signup_sec < as_sec)
        if customer_ids is not None:
            wanted = np.asarray(pd.Index(customer_ids), dtype=np.int64)
            rows = rows[np.isin(k.pop.customer_id[rows], wanted)]
        out = np.empty(len(rows))
        for s in range(0, len(rows), CHUNK):
            out[s:s + CHUNK] = _p_no_order(k, rows[s:s + CHUNK], as_sec, int(horizon_days))
        return pd.Series(out, index=pd.Index(k.pop.customer_id[rows], name="customer_id"),
                         name="churn_probability")

    def action_response_at(self, as_of: object) -> pd.DataFrame:
        """``action_response`` for the decision in force at ``as_of`` (NaN rows if none)."""
        k = self.kernel
        as_sec = (as_utc_timestamp(as_of) - k.grid.origin) / pd.Timedelta(seconds=1)
        d = k.decisions
        live = (d["sec"] < as_sec) & ~(d["reversed_sec"] < as_sec)
        cause = np.full(k.pop.n, -1, dtype=np.int64)
        cause[d["row"][live]] = d["cause"][live]
        table = response_table(k.pop, np.maximum(cause, 0), k.params, if_opened=False)
        table[cause < 0] = np.nan
        return table


    def open_propensity(self, customer_ids: object = None) -> pd.DataFrame:
        """Each customer's true probability of opening a message on each channel sent at their
        most active hour (a dead hour scales it down to ``open_off_hours_floor``); the channel
        affinity drawn by the generator (``SynthParams.open_affinity_sigma``), regardless of
        consent.

        Returns
        -------
        pd.DataFrame
            Index ``customer_id`` (all customers, or ``customer_ids`` in their order; unknown ids
            raise KeyError), one float column per channel of ``CHANNELS``, values in [0, 1].
        """
        pop = self.kernel.pop
        rows = self._rows(customer_ids)
        return pd.DataFrame(pop.open_propensity[rows], columns=list(CHANNELS),
                            index=pd.Index(pop.customer_id[rows], name="customer_id"))

    def best_channel(self, customer_ids: object = None) -> pd.DataFrame:
        """Each customer's true best consented channel: the one with the highest
        :meth:`open_propensity` among the channels they consented to (the generator's
        unsubscribes close every channel at once, so they do not change which is best).

        Returns
        -------
        pd.DataFrame
            Index ``customer_id``; ``channel`` (object: a name of ``CHANNELS``, None without any
            consent) and ``open_propensity`` (its propensity, NaN without any consent).
        """
        pop = self.kernel.pop
        rows = self._rows(customer_ids)
        score = np.where(pop.consent[rows], pop.open_propensity[rows], -np.inf)
        best = np.argmax(score, axis=1)
        any_consent = pop.consent[rows].any(axis=1)
        names = np.asarray(CHANNELS, dtype=object)
        return pd.DataFrame(
            {"channel": pd.Series(np.where(any_consent, names[best], None), dtype=object).array,
             "open_propensity": np.where(any_consent, score[np.arange(len(rows)), best],
                                         np.nan)},
            index=pd.Index(pop.customer_id[rows], name="customer_id"))

    def _rows(self, customer_ids: object) -> np.ndarray:
        """Positions of ``customer_ids`` (all customers when None) in the population."""
        pop = self.kernel.pop
        if customer_ids is None:
            return np.arange(pop.n)
        # customer_id is 1..n in row order (see Population)
        wanted = np.asarray(pd.Index(customer_ids), dtype=np.int64)
        bad = (wanted < 1) | (wanted > pop.n)
        if bad.any():
            raise KeyError(f"unknown customer ids: {wanted[bad][:5].tolist()}")
        return wanted - 1


def response_table(pop: Population, causes: np.ndarray, params: SynthParams, *,
                   if_opened: bool) -> pd.DataFrame:
    """Per-customer response to each action (see :class:`GroundTruth`)."""
    rows = np.arange(pop.n)
    resp = response_if_opened(rows, causes, pop, params)
    if not if_opened:
        # the customer's own best consented channel, sent at the most active hour (rel = 1)
        best = (pop.consent * pop.open_propensity).max(axis=1)
        resp = resp[:, -1:] + best[:, None] * (resp - resp[:, -1:])
    return pd.DataFrame(resp, columns=[*SEND_ACTIONS, "none"],
                        index=pd.Index(pop.customer_id, name="customer_id"))


def _p_no_order(k: TruthKernel, rows: np.ndarray, as_sec: float, horizon: int) -> np.ndarray:
    pop, p, grid = k.pop, k.params, k.grid
    n = len(rows)
    a = as_sec / SECONDS_PER_DAY
    a0 = int(np.floor(a))
    fr = a - a0
    L = horizon + 1
    days = a0 + np.arange(L)
    cov = np.ones(L)
    cov[0] -= fr
    cov[-1] = fr
    entry = pop.signup_day[rows] + 1
    active = days[None, :] >= entry[:, None]

    # Decision state at as_of.
    d = k.decisions
    pos = np.searchsorted(d["row"], rows, side="left")
    end = np.searchsorted(d["row"], rows, side="right")
    dec_day = np.full(n, -1, dtype=np.int64)
    dec_cause = np.zeros(n, dtype=np.int64)
    reset_day = np.full(n, -(10**9), dtype=np.int64)
    span = end - pos
    for j in range(int(span.max()) if n else 0):
        i = np.flatnonzero(span > j)
        di = pos[i] + j
        made = d["sec"][di] < as_sec
        back = d["reversed_sec"][di] < as_sec
        live = made & ~back
        dec_day[i[live]] = d["day"][di[live]]
        dec_cause[i[live]] = d["cause"][di[live]]
        gone = made & back
        reset_day[i[gone]] = np.floor(d["reversed_sec"][di[gone]] / SECONDS_PER_DAY)
    decided = dec_day >= 0

    # Orders before as_of: 0, 1 or more (forgotten hazard, welcome boost).
    base_key = rows * 1e9
    n_before = (np.searchsorted(k.order_key, base_key + as_sec, side="left")
                - np.searchsorted(k.order_key, base_key, side="left"))
    welcome = np.where(pop.activator[rows] & (n_before == 0), p.welcome_rate, 0.0)
    in_welcome = days[None, :] <= (entry + p.welcome_days - 1)[:, None]
    rate = pop.base_rate[rows][:, None] + welcome[:, None] * in_welcome
    season = season_factor(days, grid, p)
    dayfac = pop.dayfac[:, rows][grid.weekday(days), :].T  # (n, L)
    c = rate * season[None, :] * dayfac * active * cov[None, :]  # order intensity mass per day

    rho_o = np.exp(-1.0 / p.order_fade_days)
    returns = p.spontaneous_return_rates()
    r_cause = np.array([returns[x] for x in CAUSES])
    out = np.empty(n)

    # Decided customers: the fade is known; only an unprompted return can bring an order.
    di = np.flatnonzero(decided)
    if len(di):
        expo = np.maximum(0, days[None, :] - dec_day[di, None] - pop.lag_days[rows[di], None])
        lam = (c[di] * rho_o ** expo).sum(axis=1)
        out[di] = np.exp(-lam - r_cause[dec_cause[di]] * cov.sum())

    ui = np.flatnonzero(~decided)
    if len(ui):
        out[ui] = _undecided(k, rows[ui], c[ui], active[ui], reset_day[ui], n_before[ui],
                             days, cov, as_sec, r_cause, rho_o)
    return np.clip(out, 0.0, 1.0)


def _undecided(k, rows, c, active, reset_day, n_before, days, cov, as_sec, r_cause, rho_o):
    pop, p = k.pop, k.params
    n, L = c.shape
    rho = np.exp(-1.0 / p.bump_decay_days)
    # Bump hazard levels per cause on each window day, from injections of orders placed before
    # as_of and felt after the last reset (a reversal clears them).
    inj = k.injections
    B = np.zeros((len(BUMP_CAUSES), n, L))
    sel = np.flatnonzero(np.isin(inj.row, rows) & (inj.origin_sec < as_sec)
                         & (inj.day <= days[-1]))
    if len(sel):
        where = np.searchsorted(rows, inj.row[sel])  # rows are sorted
        keep = inj.day[sel] > reset_day[where]
        sel, where = sel[keep], where[keep]
        first = np.maximum(inj.day[sel], days[0])
        # Level on the first window day it counts: mass·(1-ρ)·ρ^(age), then decays daily.
        level = inj.mass[sel] * (1 - rho) * rho ** (first - inj.day[sel])
        np.add.at(B, (inj.cause[sel].astype(np.int64), where, first - days[0]), level)
        for j in range(1, L):
            B[:, :, j] += B[:, :, j - 1] * rho
    forget = np.where(n_before == 1, pop.h_forget[rows], 0.0)
    comps = np.stack([B[0], B[1], B[2] + pop.h_hunter[rows][:, None],
                      np.broadcast_to(forget[:, None], (n, L)),
                      np.broadcast_to(pop.h_natural[rows][:, None], (n, L))])
    comps = comps * active[None]
    h = comps.sum(axis=0)
    hc = h * cov[None, :]
    cum_before = np.cumsum(hc, axis=1) - hc
    surv = np.exp(-cum_before)
    p_dec = surv * -np.expm1(-hc)
    # Unprompted return after deciding on day j: none within the rest of the window.
    rest = cov.sum() - np.cumsum(cov)
    share = comps / np.where(h > 0, h, 1.0)[None]
    no_return = (share * np.exp(-r_cause[:, None, None] * rest[None, None, :])).sum(axis=0)
    # Order mass in the window given a decision on day j with lag ℓ: C[K] + ρ·G[K], K=j+ℓ+1.
    C = np.concatenate([np.zeros((n, 1)), np.cumsum(c, axis=1)], axis=1)
    G = np.zeros((n, L + 1))
    for j in range(L - 1, -1, -1):
        G[:, j] = c[:, j] + rho_o * G[:, j + 1]
    K = np.minimum(np.arange(L)[None, :] + pop.lag_days[rows][:, None] + 1, L)
    lam_dec = np.take_along_axis(C, K, axis=1) + rho_o * np.take_along_axis(G, K, axis=1)
    stay = np.exp(-cum_before[:, -1] - hc[:, -1])
    return (p_dec * np.exp(-lam_dec) * no_return).sum(axis=1) + stay * np.exp(-C[:, -1])
