"""Compiled forests: LightGBM's values to a few units in the last place, every row count through
the same code, kept machine code reused, and a compiled bundle scoring one customer exactly as
its batch does."""

from __future__ import annotations

import shutil
import subprocess
import sys

import _batch_shop as shop_
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from test_scoring_parity import assert_same_rows, pick

import churnkit as ck
from churnkit.models import compiled
from churnkit.models.prediction import predict
from churnkit.scoring import score_features

AS_OF = pd.Timestamp(shop_.AS_OF, tz="UTC")


def _churnkit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "churnkit", *args], capture_output=True,
                          text=True, timeout=600)


def _rows(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    X = rng.normal(size=(n, k)) * 3
    X[:, 0] = rng.integers(-1, 9, size=n)  # a category code: unseen (7, 8) and negative too
    X[rng.random(X.shape) < 0.15] = np.nan
    return X


def _booster(objective: str, rng: np.random.Generator, **params: object) -> lgb.Booster:
    X = _rows(rng, 3000, 6)
    signal = np.nan_to_num(X[:, 1]) + (np.nan_to_num(X[:, 0]) % 3) - np.nan_to_num(X[:, 2]) ** 2 / 4
    y = {"binary": (signal + rng.normal(size=len(X)) > 0).astype(float),
         "multiclass": np.digitize(signal, [-1.5, 0.0, 1.5]).astype(float),
         "gamma": np.exp(signal / 3) * rng.gamma(2.0, size=len(X))}[objective]
    data = lgb.Dataset(X, label=y, categorical_feature=[0], free_raw_data=False)
    return lgb.train({"objective": objective, "num_leaves": 15, "min_data_in_leaf": 20,
                      "verbosity": -1, "seed": 0, **params}, data, num_boost_round=30)


@pytest.mark.parametrize("objective, params", [
    ("binary", {}), ("multiclass", {"num_class": 4}), ("gamma", {})])
def test_a_compiled_forest_predicts_what_lightgbm_predicts(objective, params, tmp_path):
    rng = np.random.default_rng(1)
    booster = _booster(objective, rng, **params)
    X = _rows(rng, 2000, 6)
    want = booster.predict(X)
    compiled.attach(booster, tmp_path)
    got = predict(booster, X)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    # the trees up to an earlier iteration: compiled when first asked for
    np.testing.assert_allclose(predict(booster, X, num_iteration=10),
                               booster.predict(X, num_iteration=10), rtol=1e-12, atol=1e-15)
    assert len(list(tmp_path.glob("*.bin"))) == 2


def test_every_row_count_goes_through_the_same_compiled_code(tmp_path):
    rng = np.random.default_rng(2)
    booster = _booster("binary", rng)
    X = _rows(rng, 600, 6)
    compiled.attach(booster, tmp_path)
    whole = predict(booster, X)
    for rows in ([3], [5, 9], list(range(40)), list(range(300))):
        np.testing.assert_array_equal(predict(booster, X[rows]), whole[rows])
    # contributions stay LightGBM's own
    np.testing.assert_array_equal(predict(booster, X[:5], pred_contrib=True),
                                  booster.predict(X[:5], pred_contrib=True))


def test_kept_machine_code_is_reused_and_a_changed_forest_gets_its_own(tmp_path):
    rng = np.random.default_rng(3)
    booster = _booster("binary", rng)
    compiled.attach(booster, tmp_path)
    (kept,) = tmp_path.glob("*.bin")
    stamp = kept.stat().st_mtime_ns
    again = lgb.Booster(model_str=booster.model_to_string())  # the same trees, loaded anew
    compiled.attach(again, tmp_path)
    assert list(tmp_path.glob("*.bin")) == [kept] and kept.stat().st_mtime_ns == stamp
    other = _booster("binary", rng)
    compiled.attach(other, tmp_path)
    assert len(list(tmp_path.glob("*.bin"))) == 2
    assert not list(tmp_path.glob(".*"))  # no scratch file left behind


def test_a_read_only_folder_still_gets_compiled_forests(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    booster = _booster("binary", rng)
    X = _rows(rng, 50, 6)

    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(compiled, "_compile_into", lambda model, cache: (
        refuse() if cache.parent == tmp_path / "ro" else model.compile(cache=str(cache))))
    compiled.attach(booster, tmp_path / "ro")
    np.testing.assert_allclose(predict(booster, X), booster.predict(X), rtol=1e-12)
    assert not (tmp_path / "ro").exists() or not list((tmp_path / "ro").iterdir())


def test_boosters_are_found_in_nested_parts():
    rng = np.random.default_rng(4)
    a, b = _booster("binary", rng), _booster("binary", rng)

    class Part:  # a model part as churnkit's hold them: boosters in attributes and dicts
        __module__ = "churnkit.models.example"

        def __init__(self):
            self.booster_ = a
            self.inner_ = type(self).__new__(type(self))
            self.inner_.__dict__.update(boosters_={"x": b, "y": a}, name_="inner")

    assert compiled.boosters_in(Part()) == [a, b]


@pytest.mark.slow  # trains the batch tests' bundle and compiles its forests (~30 s)
def test_a_compiled_bundle_scores_one_customer_as_its_whole_base(tmp_path):
    folder = shutil.copytree(shop_.bundle_path(), tmp_path / "bundle")
    result = _churnkit("compile", "--model", str(folder))
    assert result.returncode == 0, result.stderr
    assert "Compiled" in result.stdout
    plain, fast = ck.ModelBundle.load(shop_.bundle_path()), ck.ModelBundle.load(folder)
    assert all(compiled.forest_for(b, i) is not None for b, i in fast.forests())
    assert all(compiled.forest_for(b, i) is None for b, i in plain.forests())
    features = ck.build_features(shop_.shop(), as_of=AS_OF, population=fast.population)
    whole = score_features(features, fast, as_of=AS_OF)
    for i in pick(whole, features, n=40):
        assert_same_rows(score_features(features.iloc[[i]], fast, as_of=AS_OF),
                         whole.iloc[[i]])
    # saved again (as the Spark job ships a bundle), the machine code goes with it
    again = ck.ModelBundle.load(fast.save(tmp_path / "again"))
    assert again.is_compiled() and not plain.is_compiled()
    assert len(list((tmp_path / "again" / "compiled").glob("*.bin"))) == len(fast.forests())
    assert_same_rows(score_features(features.iloc[:200], again, as_of=AS_OF), whole.iloc[:200])
    # against LightGBM: the same decisions, the numbers within 1e-9 relative
    want = score_features(features, plain, as_of=AS_OF)
    for column in want.columns:
        if want[column].dtype == np.float64:
            np.testing.assert_allclose(whole[column], want[column], rtol=1e-9, atol=1e-12,
                                       err_msg=column)
        else:
            assert whole[column].astype(str).equals(want[column].astype(str)), column


def test_compile_names_a_missing_bundle(tmp_path):
    result = _churnkit("compile", "--model", str(tmp_path / "nope"))
    assert result.returncode == 3
    assert "churnkit: error:" in result.stderr and "nope" in result.stderr
