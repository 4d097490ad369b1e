"""Every model part follows one contract: scikit-learn's where a part claims it, and
:class:`churnkit.models.part.ModelPart` (format version, save, load) for the bundle."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator,
    check_estimator_cloneable,
    check_estimator_repr,
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from churnkit.errors import BundleMismatchError
from churnkit.models import ChurnModel, DriftReference, UpliftModel, ValueModel
from churnkit.models.part import ModelPart, read_document, write_document
from churnkit.scoring.bundle import COMPONENTS


def _run_checks(estimator: object, expected_failed: dict[str, str] | None = None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's own warnings about its test data
        check_estimator(estimator, expected_failed_checks=expected_failed or {})


def test_churn_model_passes_scikit_learns_estimator_checks():
    _run_checks(ChurnModel(n_estimators=5, min_child_samples=1, n_jobs=1))


def test_value_model_passes_scikit_learns_estimator_checks():
    _run_checks(ValueModel(n_estimators=30, learning_rate=0.3, min_child_samples=1, n_jobs=1),
                {"check_supervised_y_2d": "predict returns a Series indexed like the features "
                                          "(scoring joins it by customer), not an array"})


@pytest.mark.parametrize("check", [
    check_parameters_default_constructible, check_no_attributes_set_in_init,
    check_get_params_invariance, check_set_params, check_estimator_cloneable,
    check_estimator_repr, check_do_not_raise_errors_in_init_or_set_params,
])
def test_uplift_model_follows_scikit_learns_parameter_checks(check):
    # fit(features, arm, outcome) is an experiment's three columns, not (X, y): the checks
    # that fit on (X, y) do not apply; those of construction and parameters do.
    check("UpliftModel", UpliftModel())


def test_uplift_model_clones_with_unresolved_tree_defaults():
    model = UpliftModel(learner="t", n_estimators=7)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert copy.num_leaves is None and copy.min_child_samples is None


@pytest.mark.parametrize("part", [ChurnModel, *COMPONENTS.values()],
                         ids=lambda c: c.__name__)
def test_every_bundle_part_follows_the_part_protocol(part):
    # What ModelPart declares (a protocol with a data member supports no issubclass()).
    assert isinstance(part.FORMAT, int) and part.FORMAT >= 1
    assert callable(part.save) and callable(part.load)
    assert isinstance(part.load.__self__, type)  # a classmethod
    assert all(hasattr(part, member) for member in (*ModelPart.__annotations__, "save", "load"))


def test_a_part_refuses_another_format_and_reads_a_document_without_one(tmp_path):
    features = pd.DataFrame({"x": np.arange(50.0), "y": ["a", "b"] * 25})
    reference = DriftReference().fit(features)
    reference.save(tmp_path)
    doc = json.loads((tmp_path / "drift.json").read_text())
    assert doc["format"] == DriftReference.FORMAT
    write_document(tmp_path, "drift.json", {**doc, "format": DriftReference.FORMAT + 1},
                   format=DriftReference.FORMAT + 1)
    with pytest.raises(BundleMismatchError,
                       match=f"drift reference format {DriftReference.FORMAT + 1}"):
        DriftReference.load(tmp_path)
    # Parts saved before they recorded a format read as format 1.
    (tmp_path / "old.json").write_text(json.dumps({"params": {}}))
    assert read_document(tmp_path, "old.json", part="test part", format=1) == {"params": {}}
    with pytest.raises(FileNotFoundError, match="no test part"):
        read_document(tmp_path, "absent.json", part="test part", format=1)


@pytest.mark.parametrize("make", [
    lambda: ChurnModel(n_estimators=5, min_child_samples=1, n_jobs=1),
    lambda: ValueModel(n_estimators=5, min_child_samples=1, n_jobs=1),
], ids=["churn", "value"])
def test_parts_saved_before_they_recorded_a_format_still_load(make, tmp_path):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"orders_lifetime": rng.integers(0, 9, 200).astype(float),
                      "revenue_365d": rng.gamma(2.0, 50.0, 200)})
    y = (X["orders_lifetime"] > 4).to_numpy()
    model = make().fit(X, y if isinstance(make(), ChurnModel) else y * X["revenue_365d"])
    model.save(tmp_path)
    (document,) = tmp_path.glob("*.json")
    old = json.loads(document.read_text())
    old.pop("format")
    for newer_key in ("classes", "n_features_in", "order_rate"):
        old.pop(newer_key, None)
    document.write_text(json.dumps(old))
    np.testing.assert_array_equal(type(model).load(tmp_path).predict(X), model.predict(X))
