"""The simulation's per-customer state: what the day loop and the campaigns both read and change."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from churnkit.synth.params import BUMP_CAUSES
from churnkit.synth.population import Population

#: "Not decided" sentinel for the decision day: makes every fade exponent negative (no fade).
NEVER = np.int64(1) << 40


@dataclass
class SimState:
    """Mutable per-customer state of the day loop (arrays of length n)."""

    H: np.ndarray
    E: np.ndarray
    dec_day: np.ndarray
    dec_now: np.ndarray  # index of the decision in force, -1 if none
    cause_now: np.ndarray  # CAUSES index of the decision in force, -1 if none
    B: np.ndarray  # (n, 3) bump hazard levels per BUMP_CAUSES as of day B_day (lazy decay)
    B_day: np.ndarray  # day each row of B was last brought up to date
    B_sum: np.ndarray  # total bump hazard today (decayed densely every day)
    n_orders: np.ndarray
    last_order_day: np.ndarray
    rate_now: np.ndarray  # base rate + welcome boost while in the welcome window
    h_forget_now: np.ndarray
    Lo: np.ndarray
    To: np.ndarray
    Lb: np.ndarray
    Tb: np.ndarray
    unsub_sec: np.ndarray

    @classmethod
    def initial(cls, pop: Population, rng: np.random.Generator) -> SimState:
        n = pop.n
        return cls(
            H=np.zeros(n), E=rng.exponential(size=n), dec_day=np.full(n, NEVER),
            dec_now=np.full(n, -1, dtype=np.int64), cause_now=np.full(n, -1, dtype=np.int8),
            B=np.zeros((n, len(BUMP_CAUSES))), B_day=np.zeros(n, dtype=np.int64),
            B_sum=np.zeros(n), n_orders=np.zeros(n, dtype=np.int64),
            last_order_day=np.full(n, -(10**6), dtype=np.int64), rate_now=pop.base_rate.copy(),
            h_forget_now=np.zeros(n), Lo=np.zeros(n), To=rng.exponential(size=n),
            Lb=np.zeros(n), Tb=rng.exponential(size=n), unsub_sec=pop.unsub_sec.copy(),
        )
