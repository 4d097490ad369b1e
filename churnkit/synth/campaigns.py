"""Past win-back campaigns, acting inside the simulation, and the latent response to each action.

docs/domain.md "Measuring win-back": every month customers inactive 30-180 days are targeted, a
random 10-15% held out as a control group (not sent). Actions are assigned at random (so the
history is a randomized experiment), channels among the customer's consents, at varied local hours.
Opens depend on the customer's own propensity on the channel (their channel affinity, spread around
the population's messenger > sms/push > email rates, ``SynthParams.open_affinity_sigma``) and on
whether the message arrives in the customer's active hours. A customer who has decided to leave
comes back (the decision is reversed and they order again) with a probability that depends on how
well the action fits the cause of leaving (docs/domain.md "What to do").

Attribution rule (documented, the same for both groups so treatment vs control is fair):
``converted_at`` is the customer's first order within ``attribution_days`` (30) after ``sent_at``,
for treatment and control alike; ``opened_at`` is always empty for the control group.
"""

from __future__ import annotations

import numpy as np

from churnkit.data.contract import CHANNELS, SEND_ACTIONS
from churnkit.synth.params import CAUSES, SynthParams
from churnkit.synth.population import SEGMENTS, Population
from churnkit.synth.state import SimState
from churnkit.synth.timegrid import HOURS_PER_WEEK, SECONDS_PER_DAY, DayGrid


def no_action_return(causes: np.ndarray, params: SynthParams) -> np.ndarray:
    """P(coming back unprompted within ``attribution_days``) for each cause index."""
    rates = params.spontaneous_return_rates()
    r = np.array([rates[c] for c in CAUSES])[causes]
    return 1 - np.exp(-params.attribution_days * r)


def response_if_opened(
    rows: np.ndarray, causes: np.ndarray, pop: Population, params: SynthParams
) -> np.ndarray:
    """P(return within 30 days | decided to leave for ``causes``, the action was opened).

    Shape (len(rows), len(SEND_ACTIONS) + 1); the last column is 'none' (no message).
    """
    none = no_action_return(causes, params)
    fit = np.array([[params.fit[c][a] for a in SEND_ACTIONS] for c in CAUSES])[causes]
    mult = np.ones_like(fit)
    sens = pop.price_sensitivity[rows]
    for a in ("promo_code", "free_delivery"):
        mult[:, SEND_ACTIONS.index(a)] = 0.5 + sens
    serial = pop.segment[rows] == SEGMENTS.index("serial_complainer")
    mult[:, SEND_ACTIONS.index("apology_compensation")] *= np.where(
        serial, params.serial_apology_factor, 1.0)
    lift = fit * mult * pop.responsiveness[rows][:, None]
    # docs/domain.md: personal gift / early access works on VIPs (not on natural churn).
    vip = (pop.segment[rows] == SEGMENTS.index("vip")) & (causes != CAUSES.index("natural"))
    lift[:, SEND_ACTIONS.index("vip_gift")] += np.where(vip, params.vip_gift_vip_bonus, 0.0)
    resp = none[:, None] + (1 - none[:, None]) * np.minimum(lift, 1.0)
    resp = np.clip(resp, none[:, None], np.maximum(params.max_response, none[:, None]))
    return np.column_stack([resp, none])


def open_probability(
    rows: np.ndarray, channels: np.ndarray, local_slot: np.ndarray, pop: Population,
    slot_max: np.ndarray, params: SynthParams,
) -> np.ndarray:
    """P(open) of a message on ``channels`` (CHANNELS index) sent at local slot ``local_slot``:
    the customer's propensity on the channel, down to ``open_off_hours_floor`` of it at a dead
    hour."""
    base = pop.open_propensity[rows, channels]
    rel = pop.slots[rows, local_slot] / slot_max[rows]
    floor = params.open_off_hours_floor
    return base * (floor + (1 - floor) * rel)


def _open_times(rows, sent_sec, pop, grid, params, rng) -> np.ndarray:
    """When an opened message is opened: the next hours, weighted by the customer's slots."""
    look = params.open_lookahead_hours
    hour0 = np.floor(sent_sec / 3600).astype(np.int64)
    ahead = hour0[:, None] + np.arange(look)[None, :]
    local = (grid.origin.day_of_week * 24 + ahead + pop.offset[rows][:, None]) % HOURS_PER_WEEK
    w = pop.slots[rows[:, None], local] * params.open_hour_decay ** np.arange(look)[None, :]
    cum = np.cumsum(w, axis=1)
    j = np.minimum((cum < rng.random(len(rows))[:, None] * cum[:, -1:]).sum(axis=1), look - 1)
    start = np.where(j == 0, sent_sec, (hour0 + j) * 3600.0)
    end = (hour0 + j + 1) * 3600.0
    return start + rng.random(len(rows)) * (end - start)


def run_campaign(
    day: int, n_active: int, state: SimState, pop: Population, grid: DayGrid,
    params: SynthParams, rng: np.random.Generator, slot_max: np.ndarray,
) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One monthly campaign on UTC day ``day``.

    Returns the contact columns and the reversals it causes (rows, comeback day, decision index).
    Updates ``state.unsub_sec`` for customers who unsubscribe after a message.
    """
    p = params
    lo, hi = p.campaign_inactive_days
    inactive = day - state.last_order_day[:n_active]
    consent = pop.consent[:n_active]
    eligible = ((inactive >= lo) & (inactive <= hi)
                & (state.unsub_sec[:n_active] > (day + 1) * SECONDS_PER_DAY) & consent.any(axis=1))
    rows = np.flatnonzero(eligible)
    rows = rows[rng.random(len(rows)) < p.campaign_coverage]
    m = len(rows)
    control = rng.random(m) < p.control_share
    action = rng.integers(0, len(SEND_ACTIONS), m)
    channel = np.argmax(consent[rows] * rng.random((m, len(CHANNELS))), axis=1)
    local_hour = rng.integers(*p.send_local_hours, m)
    sent = (day * 24 + local_hour - pop.offset[rows] + rng.random(m)) * 3600.0
    local_slot = int(grid.weekday(day)) * 24 + local_hour
    p_open = open_probability(rows, channel, local_slot, pop, slot_max, p)
    opened = ~control & (rng.random(m) < p_open)
    opened_sec = np.full(m, np.nan)
    k = np.flatnonzero(opened)
    opened_sec[k] = _open_times(rows[k], sent[k], pop, grid, p, rng)

    unsub = ~control & (rng.random(m) < p.unsubscribe_per_send)
    when = np.where(opened, opened_sec, sent) + rng.random(m) * 3600.0
    state.unsub_sec[rows[unsub]] = np.minimum(state.unsub_sec[rows[unsub]], when[unsub])

    # The win-back itself: only customers who decided to leave can come back (docs/domain.md).
    cand = np.flatnonzero(opened & (state.cause_now[rows] >= 0))
    crow = rows[cand]
    resp = response_if_opened(crow, state.cause_now[crow].astype(np.int64), pop, p)
    chosen = resp[np.arange(len(cand)), action[cand]]
    none = resp[:, -1]
    # The unprompted return runs on its own clock; the action adds the rest.
    q = (chosen - none) / (1 - none)
    back = cand[rng.random(len(cand)) < q]
    target = opened_sec[back] + rng.exponential(p.campaign_return_mean_days, len(back)) \
        * SECONDS_PER_DAY
    last_day = np.floor((sent[back] + (p.attribution_days - 1.5) * SECONDS_PER_DAY)
                        / SECONDS_PER_DAY)
    first_day = np.floor(opened_sec[back] / SECONDS_PER_DAY) + 1
    comeback_day = np.clip(np.floor(target / SECONDS_PER_DAY), first_day, last_day)
    reversals = (rows[back], comeback_day.astype(np.int64), state.dec_now[rows[back]].copy())

    month = grid.dates(np.array([day]))[0].strftime("%Y-%m")
    contacts = {
        "row": rows, "sent_sec": sent, "channel": channel, "action": action,
        "control": control, "opened_sec": opened_sec, "campaign": np.full(m, f"winback-{month}"),
    }
    return contacts, reversals
