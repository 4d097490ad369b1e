"""The vectorized simulation kernel: one numpy step per UTC day across all signed-up customers.

Per day ``k``, in this order (the ground truth in ``truth.py`` replays the same formulas):

1. incident hazard felt from today is added to the per-cause bump levels ``B`` (delivery,
   service, price); a bump of mass ``m`` adds ``m·(1-ρ)·ρ^t`` to the hazard ``t`` days later,
   ρ = e^(-1/κ), so that its total is ``m``;
2. the hazard of deciding to leave, ``h = natural + hunter's price drift + forgotten (while the
   customer has exactly one order) + Σ B``, accumulates into ``H``; the customer decides on the
   day ``H`` crosses an Exp(1) threshold (competing hazards; the cause is drawn in proportion to
   the components that day, docs/domain.md "Why customers leave");
3. reversals due today (an unprompted return, or a campaign's) undo the decision, clear the bumps
   and place a comeback order;
4. fades of the customers who decided on day ``D``: browsing ``exp(-(k-D)/τ_browse)`` from the
   decision on, buying ``exp(-max(0, k-D-lag)/τ_order)`` only after the lag (docs/domain.md:
   browsing drops off before purchases stop);
5. orders: intensity ``λ = (base rate + welcome boost) × season × weekday profile × fade``; an
   order fires when the accumulated intensity crosses an Exp(1) threshold (a Poisson process on
   the day grid), at an hour drawn from the customer's active hours;
6. browsing sessions the same way, with ``browse_ratio`` and the browsing fade;
7. on campaign days, the monthly win-back campaign (``campaigns.py``);
8. bumps decay by ρ.

Customers are sorted by signup, so the signed-up ones are a prefix of every array (a view).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from churnkit.synth.campaigns import run_campaign
from churnkit.synth.incidents import Injections, draw_orders
from churnkit.synth.params import BUMP_CAUSES, CAUSES, SynthParams
from churnkit.synth.population import Population
from churnkit.synth.state import NEVER, SimState
from churnkit.synth.timegrid import SECONDS_PER_DAY, DayGrid, place_in_utc_day, season_factor

PRICE_BUMP = BUMP_CAUSES.index("price")


@dataclass
class SimResult:
    """Everything the day loop produced, as concatenated column arrays (rows = customer index)."""

    orders: dict[str, np.ndarray]
    tickets: dict[str, np.ndarray]
    sessions: dict[str, np.ndarray]  # row, sec, cart (bool: add_to_cart without an order)
    contacts: dict[str, np.ndarray]
    decisions: dict[str, np.ndarray]  # row, day, sec, cause, lag, reversed_sec, reversal_kind
    injections: Injections
    unsub_sec: np.ndarray


@dataclass
class _Log:
    chunks: dict[str, list] = field(default_factory=lambda: defaultdict(list))

    def add(self, **cols: np.ndarray) -> None:
        for k, v in cols.items():
            self.chunks[k].append(np.asarray(v))

    def build(self, empty: dict[str, type]) -> dict[str, np.ndarray]:
        return {k: (np.concatenate(self.chunks[k]) if self.chunks.get(k) else
                    np.empty(0, dtype=t)) for k, t in empty.items()}


ORDER_COLS = {"row": np.int64, "sec": float, "amount": float, "discount": float,
              "delivery_cost": float, "n_items": np.int64, "category": np.int64,
              "status": np.int64, "status_sec": float, "delay": float}
TICKET_COLS = {"row": np.int64, "opened_sec": float, "topic": np.int64, "resolved_sec": float,
               "compensation": float, "satisfaction": np.int64}
CONTACT_COLS = {"row": np.int64, "sent_sec": float, "channel": np.int64, "action": np.int64,
                "control": bool, "opened_sec": float, "campaign": object}


def _fire(L: np.ndarray, T: np.ndarray, n_active: int, rng: np.random.Generator) -> np.ndarray:
    """Rows whose accumulated intensity crossed their Exp(1) threshold (repeats = several)."""
    hit = np.flatnonzero(L[:n_active] >= T[:n_active])
    out = [hit]
    while len(hit):
        T[hit] += rng.exponential(size=len(hit))
        hit = hit[L[hit] >= T[hit]]
        out.append(hit)
    return np.concatenate(out)


class _Sparse:
    """A growing set of customer rows with a membership flag (cheap add, filter and prune)."""

    def __init__(self, n: int) -> None:
        self.flag = np.zeros(n, dtype=bool)
        self.rows = np.empty(0, dtype=np.int64)

    def add(self, rows: np.ndarray) -> None:
        rows = np.unique(rows)
        rows = rows[~self.flag[rows]]
        self.flag[rows] = True
        self.rows = np.concatenate([self.rows, rows])

    def keep(self, mask: np.ndarray) -> None:
        self.flag[self.rows[~mask]] = False
        self.rows = self.rows[mask]

    def refresh(self) -> np.ndarray:
        """Drop rows whose flag was cleared from outside; return the live rows."""
        self.rows = self.rows[self.flag[self.rows]]
        return self.rows


def simulate(pop: Population, grid: DayGrid, params: SynthParams,
             rng: np.random.Generator) -> SimResult:
    """Run the shop over the grid's days; see the module docstring for the daily step.

    For speed, only three full-length array passes remain per day (hazard, orders, browsing);
    everything that changes for few customers is updated sparsely: the per-weekday intensities
    ``eff_*`` (rate × weekday profile) when a rate changes, the fades ``fo``/``fb`` of customers
    who decided within the last months (a fade below 1e-6 is set to 0), and the per-cause incident
    bumps (decayed lazily when read; only their total decays densely).
    """
    p = params
    n = pop.n
    st = SimState.initial(pop, rng)
    rho = np.exp(-1.0 / p.bump_decay_days)
    season = season_factor(np.arange(grid.n_days), grid, p)
    returns = p.spontaneous_return_rates()
    r_cause = np.array([returns[c] for c in CAUSES])
    slot_max = pop.slots.max(axis=1)
    welcome = np.where(pop.activator, p.welcome_rate, 0.0)
    dayfac = pop.dayfac.astype(np.float64)
    h_static = pop.h_const.copy()  # + forgotten hazard while the customer has one order
    fo = np.ones(n)  # order fade multiplier
    fb = np.ones(n)  # browsing fade multiplier
    eff_o = np.zeros((7, n))
    eff_b = np.zeros((7, n))

    def refresh(rows: np.ndarray | slice) -> None:
        r = st.rate_now[rows]
        eff_o[:, rows] = r * dayfac[:, rows]
        eff_b[:, rows] = (r * pop.browse_ratio[rows]) * dayfac[:, rows]

    fading = _Sparse(n)

    def bumps(rows: np.ndarray, day: int) -> np.ndarray:
        """Per-cause bump levels of ``rows`` on ``day`` (brought up to date in place)."""
        st.B[rows] *= (rho ** (day - st.B_day[rows]))[:, None]
        st.B_day[rows] = day
        return st.B[rows]
    pending: dict[int, list] = defaultdict(list)
    reversals: dict[int, list] = defaultdict(list)
    orders, tickets, sessions, contacts = _Log(), _Log(), _Log(), _Log()
    decisions, reversed_log, inj_log = _Log(), _Log(), _Log()
    n_dec = 0
    n_prev = 0
    campaign_days = set()
    if p.campaigns_enabled:
        dom = grid.dates(np.arange(grid.n_days)).day.to_numpy()
        campaign_days = set(np.flatnonzero(dom == p.campaign_day_of_month).tolist())
    tmp = np.empty(n)

    for k in range(grid.n_days):
        na = int(np.searchsorted(pop.signup_day, k, side="left"))  # signed up before day k
        sl = slice(0, na)
        # Welcome window: a first order shortly after signup for most (activators).
        st.rate_now[n_prev:na] = pop.base_rate[n_prev:na] + welcome[n_prev:na]
        refresh(slice(n_prev, na))
        n_prev = na
        lo_e = int(np.searchsorted(pop.signup_day, k - 1 - p.welcome_days, side="left"))
        hi_e = int(np.searchsorted(pop.signup_day, k - 1 - p.welcome_days, side="right"))
        st.rate_now[lo_e:hi_e] = pop.base_rate[lo_e:hi_e]
        refresh(slice(lo_e, hi_e))

        # 1. injections felt from today
        for rows, cause, mass in pending.pop(k, []):
            bumps(rows, k)
            np.add.at(st.B, (rows, cause), mass * (1 - rho))
            np.add.at(st.B_sum, rows, mass * (1 - rho))

        # 2. hazard of deciding to leave
        st.H[sl] += h_static[sl]
        st.H[sl] += st.B_sum[sl]
        new = np.flatnonzero(st.H[sl] >= st.E[sl])  # decided customers have E = inf
        if len(new):
            b = bumps(new, k)
            comps = np.column_stack([
                b[:, 0], b[:, 1], b[:, 2] + pop.h_hunter[new],
                st.h_forget_now[new], pop.h_natural[new]])
            cum = np.cumsum(comps, axis=1)
            cause = np.minimum((cum < rng.random(len(new))[:, None] * cum[:, -1:]).sum(axis=1),
                               len(CAUSES) - 1)
            idx = np.arange(n_dec, n_dec + len(new))
            n_dec += len(new)
            st.dec_day[new] = k
            st.E[new] = np.inf
            st.dec_now[new] = idx
            st.cause_now[new] = cause
            fading.add(new)
            decisions.add(row=new, day=np.full(len(new), k),
                          sec=(k + rng.random(len(new))) * SECONDS_PER_DAY,
                          cause=cause, lag=pop.lag_days[new])
            back = k + rng.geometric(-np.expm1(-r_cause[cause]))
            for d in np.unique(back[back < grid.n_days]):
                sel = back == d
                reversals[int(d)].append((new[sel], idx[sel], 0))

        # 3. reversals: the decision is undone and the customer orders again today
        comeback = []
        for rows, idx, kind in reversals.pop(k, []):
            ok = st.dec_now[rows] == idx
            rows, idx = rows[ok], idx[ok]
            rows, first = np.unique(rows, return_index=True)
            idx = idx[first]
            if not len(rows):
                continue
            st.dec_day[rows] = NEVER
            st.dec_now[rows] = -1
            st.cause_now[rows] = -1
            st.H[rows] = 0.0
            st.E[rows] = rng.exponential(size=len(rows))
            st.B[rows] = 0.0
            st.B_sum[rows] = 0.0
            fading.flag[rows] = False
            fo[rows] = 1.0
            fb[rows] = 1.0
            comeback.append((rows, idx, kind))

        # 4. fades of the customers who decided: browsing from the decision day, buying after
        # the lag (docs/domain.md: browsing drops off before purchases stop)
        fr = fading.refresh()
        if len(fr):
            age = k - st.dec_day[fr]
            fb[fr] = np.exp(-age / p.browse_fade_days)
            fo[fr] = np.exp(-np.maximum(age - pop.lag_days[fr], 0) / p.order_fade_days)
            gone = fo[fr] < 1e-6
            fo[fr[gone]] = 0.0
            fb[fr[gone]] = 0.0
            fading.keep(~gone)

        # 5. orders
        dow = int(grid.weekday(k))
        np.multiply(eff_o[dow, sl], season[k], out=tmp[sl])
        tmp[sl] *= fo[sl]
        st.Lo[sl] += tmp[sl]
        fired = _fire(st.Lo, st.To, na, rng)
        o_rows = np.concatenate([fired] + [c[0] for c in comeback])
        o_sec = place_in_utc_day(k, o_rows, pop.slot_prefix, pop.offset, grid, rng)
        for (rows, idx, kind), start in zip(comeback, np.cumsum([len(fired)] + [
                len(c[0]) for c in comeback])[:-1], strict=True):
            reversed_log.add(idx=idx, sec=o_sec[start:start + len(rows)],
                             kind=np.full(len(rows), kind))
        if len(o_rows):
            np.add.at(st.n_orders, o_rows, 1)
            st.last_order_day[o_rows] = k
            st.rate_now[o_rows] = pop.base_rate[o_rows]
            st.h_forget_now[o_rows] = np.where(st.n_orders[o_rows] == 1,
                                               pop.h_forget[o_rows], 0.0)
            h_static[o_rows] = pop.h_const[o_rows] + st.h_forget_now[o_rows]
            refresh(o_rows)
            ocols, tcols, inj = draw_orders(o_rows, o_sec, k, pop, p, rng)
            orders.add(**ocols)
            tickets.add(**tcols)
            inj_log.add(row=inj.row, day=inj.day, cause=inj.cause, mass=inj.mass,
                        origin_sec=inj.origin_sec)
            for d in np.unique(inj.day[inj.day < grid.n_days]):
                sel = inj.day == d
                pending[int(d)].append((inj.row[sel], inj.cause[sel], inj.mass[sel]))

        # 6. browsing sessions
        np.multiply(eff_b[dow, sl], season[k], out=tmp[sl])
        tmp[sl] *= fb[sl]
        st.Lb[sl] += tmp[sl]
        b_rows = _fire(st.Lb, st.Tb, na, rng)
        if len(b_rows):
            fresh = np.minimum(1.0, bumps(b_rows, k)[:, PRICE_BUMP] / p.price_shock_reference)
            p_cart = (p.cart_abandon_base
                      + p.cart_abandon_shock_gain * pop.price_sensitivity[b_rows] * fresh
                      + p.cart_abandon_price_leaver
                      * (st.cause_now[b_rows] == CAUSES.index("price")))
            sessions.add(row=b_rows, sec=place_in_utc_day(k, b_rows, pop.slot_prefix,
                                                          pop.offset, grid, rng),
                         cart=rng.random(len(b_rows)) < p_cart)

        # 7. the monthly win-back campaign
        if k in campaign_days and na:
            ccols, (rrows, rday, ridx) = run_campaign(k, na, st, pop, grid, p, rng, slot_max)
            contacts.add(**ccols)
            for d in np.unique(rday[rday < grid.n_days]):
                sel = rday == d
                reversals[int(d)].append((rrows[sel], ridx[sel], 1))

        # 8. bumps decay (the per-cause levels lazily, when read)
        st.B_sum[sl] *= rho

    dec = decisions.build({"row": np.int64, "day": np.int64, "sec": float, "cause": np.int64,
                           "lag": np.int64})
    rev = reversed_log.build({"idx": np.int64, "sec": float, "kind": np.int64})
    dec["reversed_sec"] = np.full(len(dec["row"]), np.nan)
    dec["reversal_kind"] = np.full(len(dec["row"]), -1, dtype=np.int64)
    dec["reversed_sec"][rev["idx"]] = rev["sec"]
    dec["reversal_kind"][rev["idx"]] = rev["kind"]
    inj = inj_log.build({"row": np.int64, "day": np.int64, "cause": np.int8, "mass": float,
                         "origin_sec": float})
    return SimResult(
        orders=orders.build(ORDER_COLS),
        tickets=tickets.build(TICKET_COLS),
        sessions=sessions.build({"row": np.int64, "sec": float, "cart": bool}),
        contacts=contacts.build(CONTACT_COLS),
        decisions=dec,
        injections=Injections(**inj),
        unsub_sec=st.unsub_sec,
    )
