"""Latent customer traits: who the synthetic shop's customers are before anything happens.

docs/domain.md "Why customers leave" and "Whom to win back": customers differ in purchase rate
(gamma), basket (lognormal), favourite categories, price sensitivity, and a few latent types:
VIPs, serial complainers, discount hunters and one-time buyers (who are "forgotten" after the
first order). Each has a time zone, consents per channel and an active hour-of-week profile, and
a personal open propensity per channel (channel affinity, drawn by :func:`draw_open_propensity`
from its own random stream so that the other traits do not depend on it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit

from churnkit.data.contract import CHANNELS
from churnkit.synth.params import SynthParams
from churnkit.synth.timegrid import SECONDS_PER_DAY, DayGrid, daily_weight, utc_offset_hours

SEGMENTS = ("vip", "serial_complainer", "discount_hunter", "one_time", "regular")


@dataclass
class Population:
    """Per-customer latent arrays, row ``i`` = customer ``customer_id[i]``, sorted by signup."""

    customer_id: np.ndarray  # int64, 1..n
    signup_day: np.ndarray  # int64 UTC day index; the customer is active from the next day
    signup_sec: np.ndarray  # float64 seconds since the grid origin
    segment: np.ndarray  # int8 index into SEGMENTS
    tz_index: np.ndarray  # int8 index into params.timezones
    offset: np.ndarray  # int64 UTC offset in hours
    delivery_days: np.ndarray  # float64 typical days to deliver to the customer's region
    consent: np.ndarray  # (n, len(CHANNELS)) bool, CHANNELS order
    unsub_sec: np.ndarray  # float64 seconds of an unprompted unsubscribe (inf = never)
    base_rate: np.ndarray  # orders/day before seasonality
    mean_basket: np.ndarray  # currency per order
    price_sensitivity: np.ndarray  # 0..1
    category_cum: np.ndarray  # (n, n_categories) float32 cumulative preference
    browse_ratio: np.ndarray  # browsing sessions per unit of order intensity
    lag_days: np.ndarray  # int64 days buying goes on after the decision to leave
    responsiveness: np.ndarray  # multiplier of win-back responses
    activator: np.ndarray  # bool: places a first order shortly after signup
    h_const: np.ndarray  # per-day hazard: natural + discount hunter's price drift
    h_natural: np.ndarray
    h_hunter: np.ndarray
    h_forget: np.ndarray  # per-day hazard while the customer has exactly one order
    slots: np.ndarray  # (n, 168) float32 local hour-of-week weights, rows sum to 1
    #: (n, 169) float32 cumulative slots (0 at column 0, 1 at 168); only the simulation needs
    #: it (placing events in active hours), so ``generate`` drops it afterwards (None).
    slot_prefix: np.ndarray | None
    dayfac: np.ndarray  # (7, n) float32 UTC-weekday activity multiplier, mean 1
    #: (n, len(CHANNELS)) float64 P(open) of a message on each channel sent at the customer's
    #: most active hour (CHANNELS order); 0 on channels without an ``open_base`` rate.
    open_propensity: np.ndarray

    @property
    def n(self) -> int:
        return len(self.customer_id)

    def flag(self, name: str) -> np.ndarray:
        return self.segment == SEGMENTS.index(name)


def _signup_days(n: int, grid: DayGrid, growth: float, rng: np.random.Generator) -> np.ndarray:
    # Density ∝ 1 + growth·t/T on [0, T): inverse CDF of a linear density (acquisition grows).
    t_len = float(grid.n_days)
    u = np.sort(rng.random(n))
    if growth == 0:
        t = u * t_len
    else:
        a = growth / (2 * t_len)
        t = (-1 + np.sqrt(1 + 4 * a * u * t_len * (1 + growth / 2))) / (2 * a)
    return np.clip(t, 0, t_len - 1e-6)


def _active_slots(
    n: int, params: SynthParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(n, 168) float32 local hour-of-week weights: a daily bump or two × a weekday profile;
    and their (n, 169) cumulative sums."""
    peaks = np.asarray(params.hour_peaks)
    pw = np.asarray(params.hour_peak_weights) / np.sum(params.hour_peak_weights)
    p1 = (peaks[rng.choice(len(peaks), size=n, p=pw)] + rng.normal(0, 1.0, n)).astype(np.float32)
    p2 = (peaks[rng.choice(len(peaks), size=n, p=pw)] + rng.normal(0, 1.0, n)).astype(np.float32)
    w1 = rng.uniform(*params.hour_width_range, n).astype(np.float32)
    w2 = rng.uniform(*params.hour_width_range, n).astype(np.float32)
    weekend = rng.random(n) < params.weekend_lover_share
    noise = rng.lognormal(0, 0.3, (n, 7)).astype(np.float32)
    hours = np.arange(24, dtype=np.float32) + 0.5
    weekday = np.array([1.0] * 5 + [0.7] * 2, dtype=np.float32)
    weekend_day = np.array([0.6] * 5 + [1.6] * 2, dtype=np.float32)

    def bump(peak: np.ndarray, width: np.ndarray) -> np.ndarray:
        d = np.abs(hours[None, :] - peak[:, None]) % 24
        d = np.minimum(d, 24 - d)
        return np.exp(np.float32(-0.5) * (d / width[:, None]) ** 2)

    out = np.empty((n, 168), dtype=np.float32)
    prefix = np.zeros((n, 169), dtype=np.float32)
    step = 100_000
    for s in range(0, n, step):
        e = min(n, s + step)
        hour = bump(p1[s:e], w1[s:e]) + np.float32(params.second_peak_share) * bump(p2[s:e],
                                                                                   w2[s:e])
        day = np.where(weekend[s:e, None], weekend_day, weekday) * noise[s:e]
        w = (day[:, :, None] * hour[:, None, :]).reshape(e - s, 168)
        w += np.float32(params.slot_floor) * w.mean(axis=1, keepdims=True)
        w /= w.sum(axis=1, keepdims=True)
        out[s:e] = w
        np.cumsum(w, axis=1, out=prefix[s:e, 1:])
    return out, prefix


#: Gauss-Hermite nodes for the population mean of a logit-normal propensity.
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(61)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def affinity_intercepts(params: SynthParams) -> np.ndarray:
    """Per channel (CHANNELS order) the logit intercept ``mu_c`` whose logit-normal propensity
    ``sigmoid(mu_c + open_affinity_sigma * z)``, z ~ N(0, 1), has population mean
    ``open_base[c]``; -inf for a channel with no (or a zero) base rate."""
    base = dict(params.open_base)
    sigma = float(params.open_affinity_sigma)
    out = np.full(len(CHANNELS), -np.inf)
    for j, ch in enumerate(CHANNELS):
        m = float(base.get(ch, 0.0))
        if not 0.0 < m < 1.0:
            if m >= 1.0:
                out[j] = np.inf
            continue
        def gap(mu: float, m: float = m) -> float:
            return float(_WEIGHTS @ expit(mu + sigma * _NODES)) - m
        logit = np.log(m / (1 - m))
        out[j] = logit if sigma == 0 else brentq(gap, logit - 10 * sigma - 10,
                                                 logit + 10 * sigma + 10, xtol=1e-12)
    return out


def draw_open_propensity(n: int, params: SynthParams, rng: np.random.Generator) -> np.ndarray:
    """(n, len(CHANNELS)) personal open propensities at the most active hour: logit-normal
    around the population's ``open_base`` rates with spread ``open_affinity_sigma`` (see
    :class:`~churnkit.synth.params.SynthParams`). Channels drawn independently, so one customer
    reads messengers and ignores email while another does the opposite. With a zero spread
    every customer has the population's rates and ``rng`` is not used."""
    sigma = float(params.open_affinity_sigma)
    if sigma == 0:
        base = np.array([dict(params.open_base).get(ch, 0.0) for ch in CHANNELS])
        return np.broadcast_to(base, (n, len(CHANNELS))).copy()
    mu = affinity_intercepts(params)
    return expit(mu[None, :] + sigma * rng.standard_normal((n, len(CHANNELS))))


def draw_population(
    n: int, grid: DayGrid, params: SynthParams, rng: np.random.Generator,
    affinity_rng: np.random.Generator | None = None,
) -> Population:
    """Draw ``n`` customers' latent traits (see :class:`Population`).

    ``rng`` draws every trait but the channel affinity, which ``affinity_rng`` draws (a stream
    of its own, so that changing its parameters leaves the other traits as they are; by default
    a stream spawned from ``rng``)."""
    t = _signup_days(n, grid, params.signup_growth, rng)
    signup_day = np.floor(t).astype(np.int64)
    shares = np.array([params.share_vip, params.share_serial_complainer,
                       params.share_discount_hunter, params.share_one_time])
    segment = rng.choice(len(SEGMENTS), size=n, p=np.append(shares, 1 - shares.sum()))
    segment = segment.astype(np.int8)
    is_vip = segment == SEGMENTS.index("vip")
    is_hunter = segment == SEGMENTS.index("discount_hunter")
    is_one_time = segment == SEGMENTS.index("one_time")

    zw = np.array([z[1] for z in params.timezones])
    tz_index = rng.choice(len(zw), size=n, p=zw / zw.sum()).astype(np.int8)
    offsets = utc_offset_hours(tuple(z[0] for z in params.timezones), grid)[tz_index]
    delivery_days = np.array([z[3] for z in params.timezones])[tz_index]

    consent_p = dict(params.consent)
    consent = np.column_stack([rng.random(n) < consent_p.get(ch, 0.0) for ch in CHANNELS])
    unsub = np.where(
        rng.random(n) < params.random_unsubscribe_share,
        t * SECONDS_PER_DAY + rng.exponential(params.random_unsubscribe_mean_days, n)
        * SECONDS_PER_DAY,
        np.inf,
    )

    shape = params.base_rate_shape
    base_rate = rng.gamma(shape, params.base_rate_mean / shape, n)
    base_rate *= np.where(is_vip, params.vip_rate_multiplier, 1.0)
    base_rate *= np.where(is_one_time, params.one_time_rate_multiplier, 1.0)
    mean_basket = params.basket_median * rng.lognormal(0, params.basket_sigma, n)
    mean_basket *= np.where(is_vip, params.vip_basket_multiplier, 1.0)
    sens = rng.beta(*params.price_sensitivity_beta, n)
    floor = params.hunter_price_sensitivity_floor
    sens = np.where(is_hunter, floor + (1 - floor) * sens, sens)
    prefs = rng.dirichlet(np.full(len(params.categories), params.category_concentration), n)
    category_cum = np.cumsum(prefs, axis=1).astype(np.float32)

    h_nat = rng.gamma(params.natural_hazard_shape,
                      params.natural_hazard_mean / params.natural_hazard_shape, n)
    h_hunter = np.where(is_hunter, params.hunter_price_hazard, 0.0)
    h_forget = np.where(is_one_time, params.forgotten_hazard_one_time,
                        params.forgotten_hazard_regular)
    lo, hi = params.order_lag_days_range
    slots, prefix = _active_slots(n, params, rng)
    return Population(
        customer_id=np.arange(1, n + 1, dtype=np.int64),
        signup_day=signup_day,
        signup_sec=t * SECONDS_PER_DAY,
        segment=segment,
        tz_index=tz_index,
        offset=offsets,
        delivery_days=delivery_days,
        consent=consent,
        unsub_sec=unsub,
        base_rate=base_rate,
        mean_basket=mean_basket,
        price_sensitivity=sens,
        category_cum=category_cum,
        browse_ratio=params.browse_ratio_mean
        * rng.lognormal(-0.5 * params.browse_ratio_sigma**2, params.browse_ratio_sigma, n),
        lag_days=rng.integers(lo, hi + 1, n),
        responsiveness=rng.lognormal(0, params.responsiveness_sigma, n),
        activator=rng.random(n) < params.activation_share,
        h_const=h_nat + h_hunter,
        h_natural=h_nat,
        h_hunter=h_hunter,
        h_forget=h_forget,
        slots=slots,
        slot_prefix=prefix,
        dayfac=daily_weight(prefix, offsets),
        open_propensity=draw_open_propensity(
            n, params, affinity_rng if affinity_rng is not None else rng.spawn(1)[0]),
    )
