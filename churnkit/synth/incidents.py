"""What happens to an order: its money, its fate, the complaint that follows, and the harm done.

docs/domain.md "Why customers leave": late, lost and never-delivered parcels, defects (returns),
ignored complaints and hidden delivery costs push customers towards leaving. Each order's outcome
is drawn when it is placed; the harm is an *injection* of hazard mass into one cause (delivery,
service, price) on the day the customer learns of it, which then decays (see ``simulate``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from churnkit.data.contract import ORDER_STATUSES, TICKET_TOPICS
from churnkit.synth.params import BUMP_CAUSES, SynthParams
from churnkit.synth.population import SEGMENTS, Population
from churnkit.synth.timegrid import SECONDS_PER_DAY

ST = {name: i for i, name in enumerate(ORDER_STATUSES)}
TOPIC = {name: i for i, name in enumerate(TICKET_TOPICS)}
DELIVERY, SERVICE, PRICE = (BUMP_CAUSES.index(c) for c in ("delivery", "service", "price"))


@dataclass
class Injections:
    """Hazard mass added to ``cause`` of customer ``row`` from day ``day`` on.

    ``origin_sec`` is when the order that caused it was placed: the ground truth at ``as_of`` only
    counts injections of orders placed before ``as_of``.
    """

    row: np.ndarray
    day: np.ndarray
    cause: np.ndarray
    mass: np.ndarray
    origin_sec: np.ndarray


def _days(sec: np.ndarray) -> np.ndarray:
    return np.floor(sec / SECONDS_PER_DAY).astype(np.int64)


def draw_orders(
    rows: np.ndarray,
    sec: np.ndarray,
    day: int,
    pop: Population,
    params: SynthParams,
    rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], Injections]:
    """Orders placed on UTC day ``day`` by customers ``rows`` at ``sec`` (seconds since origin).

    Returns the order columns, the ticket columns and the hazard injections they cause.
    """
    m = len(rows)
    p = params
    basket = pop.mean_basket[rows]
    gross = basket * rng.lognormal(-0.5 * p.order_amount_sigma**2, p.order_amount_sigma, m)
    hunter = pop.segment[rows] == SEGMENTS.index("discount_hunter")
    disc_share = np.where(hunter, p.hunter_discount_share, p.regular_discount_share)
    lo = np.where(hunter, p.hunter_discount_range[0], p.regular_discount_range[0])
    hi = np.where(hunter, p.hunter_discount_range[1], p.regular_discount_range[1])
    discount = np.where(rng.random(m) < disc_share, gross * rng.uniform(lo, hi), 0.0)
    fee = rng.uniform(*p.delivery_fee_range, m)
    shock = rng.random(m) < p.p_delivery_shock
    delivery_cost = np.where(gross >= p.free_delivery_threshold, 0.0, fee)
    # A hidden-cost shock: a surge fee shown only at checkout (docs/domain.md: price and hidden
    # costs).
    delivery_cost = np.where(shock, fee * rng.uniform(*p.delivery_shock_multiplier, m),
                             delivery_cost)
    n_items = np.maximum(1, rng.poisson(gross / p.mean_item_price))
    cum = pop.category_cum[rows]
    category = np.minimum((cum < rng.random(m)[:, None] * cum[:, -1:]).sum(axis=1),
                          len(p.categories) - 1)

    # Outcome: failures grow with delivery distance (far regions fail more often).
    dd = pop.delivery_days[rows]
    far = 1 + p.failure_per_delivery_day * np.maximum(dd - 2, 0)
    probs = np.column_stack([
        p.p_late * far, p.p_lost * far, p.p_not_delivered * far,
        np.full(m, p.p_cancelled), np.full(m, p.p_returned),
    ])
    cum_p = np.cumsum(probs, axis=1)
    u = rng.random(m)
    pick = (cum_p < u[:, None]).sum(axis=1)  # 0..4 = failure kinds, 5 = delivered
    status = np.array([ST["late"], ST["lost"], ST["not_delivered"], ST["cancelled"],
                       ST["returned"], ST["delivered"]])[pick]
    delay = np.where(status == ST["late"],
                     0.5 + rng.gamma(*p.late_delay_gamma, m), np.nan)
    wait = dd * rng.uniform(0.7, 1.3, m)
    wait = np.select(
        [status == ST["late"], status == ST["lost"], status == ST["not_delivered"],
         status == ST["cancelled"], status == ST["returned"]],
        [dd + np.nan_to_num(delay), rng.uniform(15, 35, m), rng.uniform(8, 20, m),
         rng.uniform(0.02, 2, m), dd + rng.uniform(3, 14, m)],
        wait,
    )
    status_sec = sec + wait * SECONDS_PER_DAY
    orders = {
        "row": rows, "sec": sec, "amount": gross - discount, "discount": discount,
        "delivery_cost": delivery_cost, "n_items": n_items, "category": category,
        "status": status, "status_sec": status_sec, "delay": delay,
    }
    tickets, inj = _complaints(rows, sec, day, status, status_sec, delay, shock, pop, p, rng)
    return orders, tickets, inj


def _complaints(rows, sec, day, status, status_sec, delay, shock, pop, p, rng):
    m = len(rows)
    serial = pop.segment[rows] == SEGMENTS.index("serial_complainer")
    failure = np.isin(status, [ST["late"], ST["lost"], ST["not_delivered"]])
    p_incident = np.select(
        [status == ST["late"], status == ST["lost"], status == ST["not_delivered"],
         status == ST["returned"]],
        [p.p_ticket_late, p.p_ticket_lost, p.p_ticket_not_delivered, p.p_ticket_returned], 0.0)
    incident_ticket = rng.random(m) < p_incident
    serial_ticket = serial & ~incident_ticket & (rng.random(m) < p.p_ticket_serial)
    background = ~incident_ticket & ~serial_ticket & (rng.random(m) < p.p_ticket_background)
    has = incident_ticket | serial_ticket | background

    topic = np.where(status == ST["returned"], TOPIC["quality"], TOPIC["delivery"])
    serial_topics = np.array([TOPIC["delivery"], TOPIC["quality"], TOPIC["service"]])
    topic = np.where(serial_ticket, serial_topics[rng.integers(0, 3, m)], topic)
    bg_topics = np.array([TOPIC["price"], TOPIC["service"], TOPIC["payment"], TOPIC["other"]])
    topic = np.where(background, bg_topics[rng.integers(0, 4, m)], topic)
    dd = pop.delivery_days[rows]
    opened = np.where(incident_ticket, status_sec + rng.uniform(0.05, 2, m) * SECONDS_PER_DAY,
                      np.where(serial_ticket,
                               sec + (dd + rng.uniform(0, 5, m)) * SECONDS_PER_DAY,
                               sec + rng.uniform(0.1, 10, m) * SECONDS_PER_DAY))
    resolved = rng.random(m) < np.where(serial, p.p_resolve_serial, p.p_resolve)
    took = rng.lognormal(np.log(p.resolution_median_days), 0.8, m) * SECONDS_PER_DAY
    resolved_sec = np.where(resolved, opened + took, np.nan)
    comp = resolved & (rng.random(m) < np.where(serial, p.p_compensation_serial,
                                                  p.p_compensation))
    # docs/domain.md: compensation scales with the customer's value, not with the damage.
    comp_amount = np.where(comp, pop.mean_basket[rows]
                           * rng.uniform(*p.compensation_share_range, m), 0.0)
    fast = took < SECONDS_PER_DAY
    sat = 3 + comp.astype(int) + fast.astype(int) - failure.astype(int) + rng.integers(-1, 2, m)
    satisfaction = np.where(resolved, np.clip(sat, 1, 5), -1)
    idx = np.flatnonzero(has)
    tickets = {
        "row": rows[idx], "opened_sec": opened[idx], "topic": topic[idx],
        "resolved_sec": resolved_sec[idx], "compensation": comp_amount[idx],
        "satisfaction": satisfaction[idx],
    }

    # Hazard injections (docs/domain.md: the failure hurts; an ignored complaint hurts more; a fix
    # with compensation takes most of the harm away). Serial complainers barely move.
    harm = np.where(serial, p.serial_complainer_mass_factor, 1.0)
    fix = np.where(~has, 1.0, np.where(~resolved, 1.0, np.where(comp, p.compensation_mass_factor,
                                                              p.resolved_mass_factor)))
    late_mass = np.minimum(p.mass_late_max,
                           p.mass_late_base + p.mass_late_per_delay_day * np.nan_to_num(delay))
    fail_mass = np.select([status == ST["late"], status == ST["lost"],
                           status == ST["not_delivered"]],
                          [late_mass, np.full(m, p.mass_lost), np.full(m, p.mass_not_delivered)],
                          0.0)
    quality_mass = np.where((status == ST["returned"]) & ~(has & ~resolved),
                            p.mass_quality_resolved, 0.0)
    complaint = np.isin(topic, [TOPIC["delivery"], TOPIC["quality"]])
    unresolved_mass = np.where(has & ~resolved, np.where(complaint, p.mass_unresolved_complaint,
                                                         p.mass_unresolved_other), 0.0)
    price_mass = np.where(shock, p.mass_price_shock * pop.price_sensitivity[rows], 0.0)
    later = _days(opened) + p.unresolved_effect_delay_days
    status_day = _days(status_sec)
    parts = [
        (DELIVERY, fail_mass * fix * harm, status_day),
        (SERVICE, quality_mass * harm, status_day),
        (SERVICE, unresolved_mass * harm, later),
        (PRICE, price_mass, np.full(m, day + 1)),
    ]
    r, d, c, ms, o = [], [], [], [], []
    for cause, mass, when in parts:
        k = np.flatnonzero(mass > 0)
        r.append(rows[k])
        d.append(np.maximum(when[k], day + 1))  # harm is felt from the next day on
        c.append(np.full(len(k), cause, dtype=np.int8))
        ms.append(mass[k])
        o.append(sec[k])
    inj = Injections(np.concatenate(r), np.concatenate(d), np.concatenate(c),
                     np.concatenate(ms), np.concatenate(o))
    return tickets, inj
