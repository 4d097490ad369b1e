"""BG/NBD expected purchases where the closed form's hypergeometric function breaks down (a fit
on little history with a, b > 1e6; a = 1; z near 1; b huge), against the published closed form
evaluated with 80 significant digits."""

from __future__ import annotations

import warnings
from decimal import Decimal, localcontext

import numpy as np
import pytest

from churnkit.stats.btyd import BGNBDParams, expected_purchases, p_alive

HORIZON = 90.0


def _closed_form(params: BGNBDParams, t: float, x: int, big_t: float, *, a: Decimal) -> Decimal:
    """Fader, Hardie & Lee (2005) eq. 10 without P(alive), with the drop-out shape ``a``:
    ``(a+b+x-1)/(a-1) * [1 - (1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z)]``, the Gauss series summed
    until its terms, past their peak, are below 1e-70 of the sum in size."""
    r, b = Decimal(params.r) + x, Decimal(params.b) + x
    z = Decimal(t) / (Decimal(params.alpha) + Decimal(big_t) + Decimal(t))
    c = a + b - 1
    term, total, k = Decimal(1), Decimal(1), 0
    while True:
        term *= (r + k) * (b + k) / ((c + k) * (k + 1)) * z
        total += term
        k += 1
        if abs(term) < abs(total) * Decimal("1e-70") and (r + k) * (b + k) * z < (c + k) * (k + 1):
            break
    return c / (a - 1) * (1 - ((1 - z).ln() * r).exp() * total)


def reference(params: BGNBDParams, t: float, x: int, t_x: float, big_t: float) -> float:
    """Expected purchases in ``(T, T + t]`` to about 60 digits (a = 1: the limit, as the mean of
    a = 1 +- 1e-30, whose error is of order 1e-60)."""
    with localcontext() as ctx:
        ctx.prec = 80
        a = Decimal(params.a)
        if a == 1:
            eps = Decimal("1e-30")
            if_alive = (_closed_form(params, t, x, big_t, a=a - eps)
                        + _closed_form(params, t, x, big_t, a=a + eps)) / 2
        else:
            if_alive = _closed_form(params, t, x, big_t, a=a)
        return float(if_alive) * float(p_alive(params, x, t_x, big_t))


#: (params, frequency, recency, T): the inputs that made the hypergeometric form return NaN
#: (0 x inf, "invalid value encountered in multiply") or lose its digits.
CASES = [
    # fitted on a synthetic shop's first three months: everyone drops out alike, a, b -> infinity
    (BGNBDParams(r=1.7751095633, alpha=72.186683947, a=1433432.988, b=34691240.74), 1, 40.0, 90.0),
    (BGNBDParams(r=1.7751095633, alpha=72.186683947, a=1433432.988, b=34691240.74), 6, 80.0, 90.0),
    (BGNBDParams(r=1.7751095633, alpha=72.186683947, a=1433432.988, b=34691240.74), 0, 0.0, 6.0),
    (BGNBDParams(r=1.7382851639, alpha=72.086547814, a=40473.28313, b=1082696.318), 3, 20.0, 30.0),
    # a = 1 exactly (0/0 in the closed form) and next to it
    (BGNBDParams(r=0.5, alpha=10.0, a=1.0, b=2.0), 3, 20.0, 50.0),
    (BGNBDParams(r=0.5, alpha=10.0, a=1.0 + 1e-9, b=2.0), 3, 20.0, 50.0),
    (BGNBDParams(r=0.5, alpha=10.0, a=1.0 - 1e-7, b=2.0), 40, 45.0, 50.0),
    # z near 1: a tiny alpha and a short history (z = 90 / 90.09)
    (BGNBDParams(r=0.7, alpha=0.05, a=2.5, b=40.0), 0, 0.0, 0.04),
    (BGNBDParams(r=0.7, alpha=0.05, a=0.3, b=0.5), 0, 0.0, 0.04),
    # nobody drops out (b at the optimizer's bound) and a frequent buyer
    (BGNBDParams(r=0.7, alpha=25.0, a=1.02, b=4.8e8), 300, 299.0, 300.0),
    (BGNBDParams(r=0.05, alpha=25.0, a=0.99, b=3e4), 30, 100.0, 101.0),
]


@pytest.mark.parametrize(("params", "x", "t_x", "big_t"), CASES)
def test_expected_purchases_match_the_closed_form_to_high_precision(params, x, t_x, big_t):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = expected_purchases(params, HORIZON, x, t_x, big_t)
    assert np.isfinite(got)
    assert got == pytest.approx(reference(params, HORIZON, x, t_x, big_t), rel=1e-11)


def test_a_whole_frame_of_such_customers_scores_without_warnings():
    params = CASES[0][0]
    rng = np.random.default_rng(0)
    big_t = rng.uniform(0, 120, 500)
    x = np.floor(rng.uniform(0, 1, 500) * big_t)
    t_x = np.minimum(big_t, x + rng.uniform(0, 5, 500))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = expected_purchases(params, HORIZON, x, t_x, big_t)
    assert np.all(np.isfinite(got)) and np.all(got > 0)
    for i in (0, 1, 2):
        assert got[i] == pytest.approx(reference(params, HORIZON, int(x[i]), t_x[i], big_t[i]),
                                       rel=1e-11)


def test_a_window_in_the_wrong_unit_is_refused():
    days = BGNBDParams(r=0.7, alpha=25.0, a=2.5, b=40.0)
    with pytest.raises(ValueError, match="unit alpha was fitted in"):
        expected_purchases(days, 90.0 * 86400 * 1e6, 300, 299.0, 300.0)  # microseconds
