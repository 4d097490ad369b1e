"""Every knob of the synthetic shop, with its default, in one frozen dataclass.

Rates are per day, durations in days, money in the shop's currency (roubles-like magnitudes).
The defaults encode the mechanisms of docs/domain.md ("Why customers leave", "Channels, timing and
consent", "Measuring win-back"); change them by passing ``SynthParams(...)`` or
``dataclasses.replace(DEFAULT_PARAMS, ...)`` to :func:`churnkit.synth.generate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from churnkit.data.contract import SEND_ACTIONS

#: Causes of a leave decision, in the order used by the simulation's arrays.
CAUSES = ("delivery", "service", "price", "forgotten", "natural")
#: Causes driven by incident "bumps" of hazard (the others are constant rates per customer).
BUMP_CAUSES = ("delivery", "service", "price")


def _fit() -> dict[str, dict[str, float]]:
    # docs/domain.md "What to do": apology + compensation fixes our failures, free delivery / promo
    # move the price-sensitive, "we miss you" / loyalty points wake the forgotten; nothing moves
    # natural churn ("rarely worth fighting"). Values: extra probability of coming back within
    # 30 days once the message is opened (before the customer's own multipliers).
    return {
        "delivery": {"apology_compensation": 0.45, "free_delivery": 0.25, "promo_code": 0.08,
                     "loyalty_points": 0.05, "vip_gift": 0.04, "we_miss_you": 0.02},
        "service": {"apology_compensation": 0.40, "free_delivery": 0.06, "promo_code": 0.07,
                    "loyalty_points": 0.05, "vip_gift": 0.04, "we_miss_you": 0.02},
        "price": {"apology_compensation": 0.03, "free_delivery": 0.25, "promo_code": 0.32,
                  "loyalty_points": 0.10, "vip_gift": 0.04, "we_miss_you": 0.03},
        "forgotten": {"apology_compensation": 0.02, "free_delivery": 0.10, "promo_code": 0.14,
                      "loyalty_points": 0.22, "vip_gift": 0.04, "we_miss_you": 0.30},
        "natural": {a: 0.01 for a in SEND_ACTIONS},
    }


@dataclass(frozen=True)
class SynthParams:
    """All generator knobs. Units: rates per day, durations in days, money in currency units."""

    # --- population (docs/domain.md: heterogeneous customers) ---------------------------------
    share_vip: float = 0.05
    share_serial_complainer: float = 0.03
    share_discount_hunter: float = 0.08
    share_one_time: float = 0.25
    base_rate_mean: float = 1 / 40  # orders per day of an ordinary customer
    base_rate_shape: float = 1.5  # gamma shape: heterogeneity of purchase rates
    vip_rate_multiplier: float = 3.5
    one_time_rate_multiplier: float = 0.7
    basket_median: float = 2500.0  # currency per order
    basket_sigma: float = 0.55  # lognormal sigma across customers
    order_amount_sigma: float = 0.45  # lognormal sigma across one customer's orders
    vip_basket_multiplier: float = 2.5
    categories: tuple[str, ...] = (
        "electronics", "clothing", "home", "beauty", "kids", "sports", "books", "grocery",
    )
    category_concentration: float = 0.4  # Dirichlet alpha: small = few favourite categories
    price_sensitivity_beta: tuple[float, float] = (2.0, 4.0)
    hunter_price_sensitivity_floor: float = 0.6
    #: (IANA zone, weight, region, typical delivery days). Moscow most common.
    timezones: tuple[tuple[str, float, str, float], ...] = (
        ("Europe/Kaliningrad", 0.03, "Kaliningrad", 4.0),
        ("Europe/Moscow", 0.52, "Moscow", 2.0),
        ("Europe/Samara", 0.07, "Samara", 3.0),
        ("Asia/Yekaterinburg", 0.10, "Yekaterinburg", 3.5),
        ("Asia/Omsk", 0.04, "Omsk", 4.5),
        ("Asia/Novosibirsk", 0.08, "Novosibirsk", 5.0),
        ("Asia/Krasnoyarsk", 0.06, "Krasnoyarsk", 5.5),
        ("Asia/Irkutsk", 0.04, "Irkutsk", 6.0),
        ("Asia/Vladivostok", 0.06, "Vladivostok", 7.5),
    )
    #: Delivery failures grow with distance: multiplier per extra delivery day beyond 2.
    failure_per_delivery_day: float = 0.12
    signup_growth: float = 0.8  # signup density grows linearly by this fraction over the period
    activation_share: float = 0.85  # share who place a first order shortly after signup
    welcome_rate: float = 0.25  # extra first-order intensity per day while in the welcome window
    welcome_days: int = 21
    browse_ratio_mean: float = 0.5  # browsing (non-checkout) sessions per unit of order intensity
    browse_ratio_sigma: float = 0.5
    responsiveness_sigma: float = 0.3  # lognormal spread of how much win-back offers move a person

    # --- active hours (a 168-slot local hour-of-week profile per customer) ----------------
    hour_peaks: tuple[float, ...] = (8.5, 12.5, 19.5, 22.5)  # archetypal peak local hours
    hour_peak_weights: tuple[float, ...] = (0.2, 0.2, 0.45, 0.15)
    hour_width_range: tuple[float, float] = (1.2, 2.8)  # hours (std of the daily bump)
    second_peak_share: float = 0.35  # weight of a customer's secondary daily peak
    weekend_lover_share: float = 0.35
    slot_floor: float = 0.02  # relative weight of every slot (nobody is never online)

    # --- consent and unsubscribes (docs/domain.md: contact only through consented channels) ----
    consent: tuple[tuple[str, float], ...] = (
        ("email", 0.85), ("sms", 0.45), ("messenger", 0.35), ("push", 0.5), ("phone", 0.15),
    )
    random_unsubscribe_share: float = 0.08
    random_unsubscribe_mean_days: float = 400.0

    # --- leave-decision hazards (per day; docs/domain.md "Why customers leave") ---------------
    natural_hazard_mean: float = 1 / 2000
    natural_hazard_shape: float = 2.0
    forgotten_hazard_one_time: float = 1 / 12  # after the first order, until a second one
    forgotten_hazard_regular: float = 1 / 300
    hunter_price_hazard: float = 1 / 500  # discount hunters drift away over price by themselves
    bump_decay_days: float = 10.0  # an incident's extra hazard decays with this time constant
    #: Hazard mass (expected extra decisions) of an incident; P(leave because of it) ~ 1-e^-mass.
    mass_late_base: float = 0.08  # a late delivery, plus:
    mass_late_per_delay_day: float = 0.015  # per day of delay,
    mass_late_max: float = 0.25  # at most
    mass_lost: float = 0.6
    mass_not_delivered: float = 0.7
    mass_quality_resolved: float = 0.06
    mass_unresolved_complaint: float = 0.8  # service: complaint about delivery/quality ignored
    mass_unresolved_other: float = 0.4  # service: other topics ignored
    unresolved_effect_delay_days: int = 7  # when it becomes clear nobody will answer
    compensation_mass_factor: float = 0.4  # resolved with compensation: what remains of the mass
    resolved_mass_factor: float = 0.8  # resolved without compensation
    serial_complainer_mass_factor: float = 0.25  # they complain but stay
    mass_price_shock: float = 0.6  # times price_sensitivity, for a hidden delivery-cost shock

    # --- gradual leaving -------------------------------------------------------------------
    browse_fade_days: float = 7.0  # browsing fades from the decision on
    order_fade_days: float = 8.0  # buying fades after a lag
    order_lag_days_range: tuple[int, int] = (5, 25)  # per customer, uniform integer days
    #: Spontaneous return (reversal) hazards per day by cause: the 'none' column of responses.
    spontaneous_return: tuple[tuple[str, float], ...] = (
        ("delivery", 0.0003), ("service", 0.0003), ("price", 0.0005), ("forgotten", 0.0006),
        ("natural", 0.0001),
    )

    # --- orders ----------------------------------------------------------------------------
    p_late: float = 0.07
    p_lost: float = 0.01
    p_not_delivered: float = 0.01
    p_cancelled: float = 0.02
    p_returned: float = 0.05
    late_delay_gamma: tuple[float, float] = (1.5, 2.5)  # shape, scale of extra days
    free_delivery_threshold: float = 3000.0
    delivery_fee_range: tuple[float, float] = (149.0, 349.0)
    p_delivery_shock: float = 0.05  # hidden delivery-cost surge on an order
    delivery_shock_multiplier: tuple[float, float] = (3.0, 6.0)
    hunter_discount_share: float = 0.85
    hunter_discount_range: tuple[float, float] = (0.15, 0.30)
    regular_discount_share: float = 0.2
    regular_discount_range: tuple[float, float] = (0.05, 0.15)
    mean_item_price: float = 1200.0

    # --- tickets ---------------------------------------------------------------------------
    p_ticket_late: float = 0.3
    p_ticket_lost: float = 0.85
    p_ticket_not_delivered: float = 0.9
    p_ticket_returned: float = 0.6
    p_ticket_background: float = 0.02  # per order, topics price/service/payment/other
    p_ticket_serial: float = 0.6  # serial complainers, per order, on top
    p_resolve: float = 0.7
    p_resolve_serial: float = 0.9
    p_compensation: float = 0.35  # among resolved incident tickets
    p_compensation_serial: float = 0.7
    compensation_share_range: tuple[float, float] = (0.1, 0.3)  # of the customer's mean basket
    resolution_median_days: float = 1.5

    # --- seasonality (docs/domain.md: payday, pre-holiday peaks) --------------------------------
    month_multipliers: tuple[float, ...] = (
        0.85, 0.9, 0.95, 0.95, 0.9, 0.88, 0.88, 0.92, 1.0, 1.05, 1.35, 1.45,
    )
    payday_days: tuple[int, ...] = (1, 2, 3, 15, 16, 17)  # days of the month
    payday_multiplier: float = 1.3

    # --- browsing --------------------------------------------------------------------------
    browse_extra_events_mean: float = 1.0  # Poisson extra events in a browsing session
    checkout_extra_views_mean: float = 0.4
    cart_abandon_base: float = 0.12  # share of browsing sessions that fill a cart, no order
    cart_abandon_shock_gain: float = 0.6  # times price_sensitivity while a price shock is fresh
    cart_abandon_price_leaver: float = 0.3
    price_shock_reference: float = 0.02  # price-bump hazard level counted as "fresh shock"

    # --- campaigns (docs/domain.md: reactivation of 30-180 d inactive, 10-15% control) ---------
    campaigns_enabled: bool = True
    campaign_day_of_month: int = 5
    campaign_inactive_days: tuple[int, int] = (30, 180)
    campaign_coverage: float = 0.6  # share of eligible customers targeted each month
    control_share: float = 0.12
    send_local_hours: tuple[int, int] = (8, 22)  # sent uniformly at these local hours
    open_base: tuple[tuple[str, float], ...] = (
        ("messenger", 0.9), ("sms", 0.5), ("push", 0.45), ("email", 0.3), ("phone", 0.6),
    )
    #: Personal channel affinity (docs/domain.md "Channels, timing and consent"): customer i's
    #: open propensity on channel c (at their most active hour) is
    #: ``sigmoid(mu_c + open_affinity_sigma * z_ic)`` with ``z_ic`` iid standard normal, ``mu_c``
    #: solved so that the population mean equals ``open_base[c]``. Drawn from its own random
    #: stream; 0 gives every customer the population's rates.
    open_affinity_sigma: float = 1.2  # logit-scale spread across customers, per channel
    open_off_hours_floor: float = 0.5  # open probability factor when sent at a dead hour
    open_lookahead_hours: int = 72
    open_hour_decay: float = 0.93  # per hour: an unopened message sinks
    unsubscribe_per_send: float = 0.01
    campaign_return_mean_days: float = 5.0  # days from open to the comeback order
    attribution_days: int = 30
    fit: dict[str, dict[str, float]] = field(default_factory=_fit)
    vip_gift_vip_bonus: float = 0.35
    serial_apology_factor: float = 0.5
    max_response: float = 0.95

    def spontaneous_return_rates(self) -> dict[str, float]:
        """Per-day hazard of coming back unprompted, by cause."""
        return dict(self.spontaneous_return)


DEFAULT_PARAMS = SynthParams()
