"""Drift reference: PSI by hand, stable vs shifted populations, shard-additive counts, save/load."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from churnkit.errors import BundleMismatchError
from churnkit.models.drift import EPSILON, DriftReference


def frame(n: int, seed: int, *, shift: float = 0.0, city_b: float = 0.3,
          missing: float = 0.05) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    spend = rng.gamma(2.0, 50.0, n) * (1 + shift)
    spend[rng.random(n) < missing] = np.nan
    return pd.DataFrame({
        "spend": spend,
        "orders": rng.poisson(1.5, n).astype("int64"),
        "vip": rng.random(n) < 0.1,
        "city": np.where(rng.random(n) < city_b, "b", "a"),
        "late": pd.array(np.where(rng.random(n) < 0.5, 1, 0), dtype="Int64"),
    })


@pytest.fixture(scope="module")
def reference():
    return DriftReference().fit(frame(20_000, seed=0))


def test_psi_matches_the_formula_by_hand():
    train = pd.DataFrame({"x": [0.0] * 50 + [1.0] * 50, "c": ["a"] * 80 + ["b"] * 20})
    ref = DriftReference(n_bins=2).fit(train)
    now = pd.DataFrame({"x": [0.0] * 20 + [1.0] * 80, "c": ["a"] * 50 + ["b"] * 50})
    psi = ref.psi(now)
    # x: bins (-inf, 0.5?) — the median edge of {0, 1} is 0.5: shares 0.5/0.5 -> 0.2/0.8
    expected_x = (0.2 - 0.5) * math.log(0.2 / 0.5) + (0.8 - 0.5) * math.log(0.8 / 0.5)
    # c: a 0.8 -> 0.5, b 0.2 -> 0.5; "(other)" and "missing" empty in both (floored equally)
    expected_c = (0.5 - 0.8) * math.log(0.5 / 0.8) + (0.5 - 0.2) * math.log(0.5 / 0.2)
    assert psi["x"] == pytest.approx(expected_x, rel=1e-9)
    assert psi["c"] == pytest.approx(expected_c, rel=1e-9)
    assert ref.bins("c") == ["a", "b", "(other)", "missing"]


def test_same_population_is_stable_and_a_shift_is_flagged(reference):
    same = reference.psi(frame(20_000, seed=1))
    assert (same < 0.02).all(), same
    shifted = reference.psi(frame(20_000, seed=2, shift=0.6, city_b=0.7))
    assert shifted["spend"] > 0.25 and shifted["city"] > 0.25
    assert shifted[["orders", "vip", "late"]].max() < 0.02
    report = reference.report(shifted, threshold=0.25)
    assert set(report["drifted"]) == {"spend", "city"}
    assert report["max_feature"] in {"spend", "city"}
    assert list(report["drifted"].values()) == sorted(report["drifted"].values(), reverse=True)


def test_more_missing_values_raise_psi(reference):
    psi = reference.psi(frame(20_000, seed=3, missing=0.5))
    assert psi["spend"] > 0.25
    assert psi.drop("spend").max() < 0.02


def test_a_feature_absent_now_counts_as_all_missing(reference):
    psi = reference.psi(frame(5000, seed=4).drop(columns=["city"]))
    expected = np.maximum(np.asarray(reference.expected_["city"]), EPSILON)
    actual = np.full(len(expected), EPSILON)
    actual[-1] = 1.0  # every row in the "missing" bin
    assert reference.bins("city")[-1] == "missing"
    assert psi["city"] == pytest.approx(float(np.sum((actual - expected)
                                                     * np.log(actual / expected))), rel=1e-9)
    assert psi["city"] > 5


def test_counts_of_shards_add_up_to_the_whole(reference):
    whole = frame(9000, seed=5, shift=0.2)
    parts = [whole.iloc[i:i + 2000] for i in range(0, len(whole), 2000)]
    counts = [reference.bin_counts(p) for p in parts]
    summed = {k: sum(c[k] for c in counts) for k in counts[0]}
    for name, c in reference.bin_counts(whole).items():
        np.testing.assert_array_equal(summed[name], c)
        assert c.sum() == len(whole)
    pd.testing.assert_series_equal(reference.psi_from_counts(summed), reference.psi(whole))


def test_mostly_zero_feature_gets_merged_bins():
    train = pd.DataFrame({"n": [0] * 950 + list(range(1, 51))})
    ref = DriftReference().fit(train)
    assert len(ref.edges_["n"]) < 9  # tied deciles merged
    assert ref.psi(train)["n"] == pytest.approx(0.0, abs=1e-12)


def test_save_and_load_round_trip(reference, tmp_path):
    reference.save(tmp_path)
    loaded = DriftReference.load(tmp_path)
    now = frame(3000, seed=6, shift=0.3)
    pd.testing.assert_series_equal(loaded.psi(now), reference.psi(now))
    assert loaded.to_dict() == reference.to_dict()
    with pytest.raises(FileNotFoundError):
        DriftReference.load(tmp_path / "nothing")


def test_empty_training_frame_is_refused():
    with pytest.raises(ValueError, match="empty"):
        DriftReference().fit(pd.DataFrame({"x": []}))


# -- features that move with the calendar, event rates, the old format ---------------------------

def test_ages_are_compared_in_their_young_part_so_aging_alone_does_not_fire():
    rng = np.random.default_rng(7)
    # a steady flow of new customers: tenure uniform up to the shop's age, which doubled since
    train = pd.DataFrame({"tenure": rng.uniform(0, 400, 20_000)})
    later = pd.DataFrame({"tenure": rng.uniform(0, 800, 20_000)})
    aged = DriftReference().fit(train, trends={"tenure": "age"})
    plain = DriftReference().fit(train, trends={})
    assert aged.age_limits_["tenure"] == pytest.approx(200, rel=0.05)
    assert plain.psi(later)["tenure"] > 0.5
    assert aged.psi(later)["tenure"] < 0.02
    # no new customer in the last 100 days: the young part shifts, and that is reported
    stopped = pd.DataFrame({"tenure": rng.uniform(100, 800, 20_000)})
    assert aged.psi(stopped)["tenure"] > 0.25
    counts = aged.bin_counts(later)
    assert counts["tenure"].sum() == pytest.approx(0.25 * len(later), rel=0.05)  # young part only


def test_sending_cycles_are_taken_relative_to_the_shops_latest_send():
    rng = np.random.default_rng(8)

    def rows(n, send_age, spacing=30.0):
        # each customer was last written to some campaigns before the shop's latest send
        behind = spacing * rng.integers(0, 4, n) + rng.uniform(0, 2, n)
        return pd.DataFrame({"last_contact": send_age + behind})

    train = pd.concat([rows(10_000, 2.0), rows(10_000, 24.0)], ignore_index=True)
    ages = np.r_[np.full(10_000, 2.0), np.full(10_000, 24.0)]
    ref = DriftReference().fit(train, trends={"last_contact": "cycle"}, send_age=ages)
    plain = DriftReference().fit(train, trends={})
    tonight = rows(10_000, 13.0)  # mid-way between two campaigns
    assert plain.psi(tonight)["last_contact"] > 0.25
    assert ref.psi(tonight, send_age=13.0)["last_contact"] < 0.02
    # the shop writes half as often: the cycle itself moved, and that fires
    sparse = rows(10_000, 13.0, spacing=60.0)
    assert ref.psi(sparse, send_age=13.0)["last_contact"] > 0.25


def test_a_rare_event_tripling_is_a_rate_shift_by_the_formula():
    rng = np.random.default_rng(9)
    train = pd.DataFrame({"failures": (rng.random(20_000) < 0.03).astype("int64")})
    now = pd.DataFrame({"failures": (rng.random(20_000) < 0.09).astype("int64")})
    ref = DriftReference().fit(train, counts=["failures"])
    assert ref.bins("failures")[:2] == ["[-inf, 0)", "[0, 4.94066e-324)"]  # zeros on their own
    shifts = ref.rate_shifts_from_counts(ref.bin_counts(now))
    m0, m1 = train["failures"].mean(), now["failures"].mean()
    se = math.sqrt(train["failures"].var(ddof=0) / 20_000 + now["failures"].var(ddof=0) / 20_000)
    assert shifts["failures"]["ratio"] == pytest.approx(m1 / m0, abs=1e-3)
    assert shifts["failures"]["z"] == pytest.approx(abs(m1 - m0) / se, abs=0.1)
    # the same population again: no shift; a rise of half: not the factor asked for
    assert ref.rate_shifts_from_counts(ref.bin_counts(train)) == {}
    half = pd.DataFrame({"failures": (rng.random(20_000) < 0.045).astype("int64")})
    assert ref.rate_shifts_from_counts(ref.bin_counts(half)) == {}
    report = ref.check(ref.bin_counts(now))
    assert list(report["rate_shifts"]) == ["failures"]


def test_rate_counts_of_shards_add_up(reference):
    ref = DriftReference().fit(frame(5000, seed=10), counts=["orders"])
    whole = frame(6000, seed=11)
    parts = [ref.bin_counts(whole.iloc[i:i + 1500]) for i in range(0, 6000, 1500)]
    summed = {k: sum(p[k] for p in parts) for k in parts[0]}
    np.testing.assert_array_equal(summed["rate:orders"], ref.bin_counts(whole)["rate:orders"])
    assert summed["rate:orders"][0] == 6000


def test_a_format_1_reference_still_loads_and_compares_every_feature_as_it_is(reference,
                                                                               tmp_path):
    plain = DriftReference().fit(frame(20_000, seed=0), trends={}, counts=[])
    doc = plain.to_dict()
    doc["format"] = 1
    for key in ("trends", "age_limits", "rates"):
        del doc[key]
    old = DriftReference.from_dict(doc)
    now = frame(3000, seed=12, shift=0.4)
    pd.testing.assert_series_equal(old.psi(now), plain.psi(now))
    assert old.check(old.bin_counts(now))["rate_shifts"] == {}
    doc["format"] = 7
    with pytest.raises(BundleMismatchError, match="format 7"):
        DriftReference.from_dict(doc)


@pytest.fixture(scope="module")
def shop_reference():
    """A synthetic shop and a reference fitted as training fits it: three monthly cutoffs."""
    import churnkit as ck
    from churnkit.features import latest_send_age

    tables, _ = ck.synth.generate(3000, seed=5, start="2023-01-01", end="2025-07-01")
    rows = [ck.build_features(tables, as_of=c).assign(cutoff=pd.Timestamp(c, tz="UTC"))
            for c in ("2024-11-01", "2024-12-01", "2025-01-01")]
    train = pd.concat(rows)
    ages = [latest_send_age(tables.contacts, c) for c in train.pop("cutoff")]
    return tables, DriftReference().fit(train, send_age=np.array(ages, dtype=float))


def _check_at(tables, ref, as_of="2025-06-01"):
    import churnkit as ck
    from churnkit.features import latest_send_age

    at = pd.Timestamp(as_of, tz="UTC")
    counts = ref.bin_counts(ck.build_features(tables, as_of=at),
                            send_age=latest_send_age(tables.contacts, at))
    return ref.check(counts)


def test_the_marked_features_are_the_registrys_and_a_quiet_shop_gives_no_warning(
        shop_reference):
    tables, ref = shop_reference
    assert ref.trends_["days_since_signup"] == "age"
    assert ref.trends_["btyd_T_days"] == "age"
    assert ref.trends_["days_since_last_contact"] == "cycle"
    assert "delivery_failures_90d" in ref.rates_
    report = _check_at(tables, ref)
    assert report["drifted"] == {} and report["rate_shifts"] == {}, report["max_feature"]


def test_planted_shifts_are_named(shop_reference):
    tables, ref = shop_reference
    at = pd.Timestamp("2025-06-01", tz="UTC")
    rng = np.random.default_rng(0)
    # browsing halves: half the sessions of the last 120 days are gone
    b = tables.browsing
    recent = b["ts"] >= at - pd.Timedelta(days=120)
    sessions = b.loc[recent, "session_id"].unique()
    gone = rng.choice(sessions, size=len(sessions) // 2, replace=False)
    halved = _check_at(tables.replace(browsing=b[~(recent & b["session_id"].isin(gone))]), ref)
    assert {"sessions_30d", "sessions_90d"} <= set(halved["drifted"]) | set(
        halved["rate_shifts"])
    assert halved["rate_shifts"]["sessions_30d"]["ratio"] < 0.5
    # delivery failures triple: twice as many delivered orders of the last 90 days turn late
    o = tables.orders.copy()
    window = (o["status_at"] >= at - pd.Timedelta(days=90)) & (o["status_at"] < at)
    failed = int((window & o["status"].isin(["late", "lost", "not_delivered"])).sum())
    delivered = np.flatnonzero((window & (o["status"] == "delivered")).to_numpy())
    o.loc[o.index[rng.choice(delivered, size=2 * failed, replace=False)], "status"] = "late"
    tripled = _check_at(tables.replace(orders=o), ref)
    assert tripled["rate_shifts"]["delivery_failures_90d"]["ratio"] > 2
    assert "late_orders_90d" in tripled["rate_shifts"]
    assert not set(tripled["rate_shifts"]) & {"sessions_30d", "orders_90d"}
