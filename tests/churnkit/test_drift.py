"""Drift reference: PSI by hand, stable vs shifted populations, shard-additive counts, save/load."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

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
