"""The bundle in MLflow: a models-from-code pyfunc with a signature, loadable and servable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from _bundles import small_bundle

import churnkit as ck
from training.tracking import log_training_run, pyfunc_input

pytestmark = pytest.mark.slow
AS_OF = "2025-07-01"
NAME = "churn-mlflow-test"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    tables, _ = ck.synth.generate(800, seed=2, start="2023-06-01", end=AS_OF)
    bundle = small_bundle(tables, as_of=AS_OF, train_cutoff="2025-01-01", name=NAME)
    bundle.save(root / "bundle")
    ids = tables.customers["customer_id"].head(8)
    features = ck.build_features(tables, as_of=AS_OF, customer_ids=ids,
                                 population=bundle.population)
    uri = f"sqlite:///{root / 'mlruns.db'}"
    cwd = Path.cwd()
    os.chdir(root)  # the default artifact root (./mlruns) lands in the temp dir
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run = log_training_run(tracking_uri=uri, experiment="test", bundle_path=root / "bundle",
                                   params={"trials": 1}, metrics={"model.roc_auc": 0.7},
                                   artifacts=[], evaluation={},
                                   example=pyfunc_input(features, as_of=AS_OF),
                                   register_as=NAME)
    finally:
        os.chdir(cwd)
    return {"root": root, "uri": uri, "run": run, "bundle": bundle, "features": features,
            "warnings": [str(w.message) for w in caught]}


def test_logged_from_code_with_a_signature_and_no_warning(logged):
    assert logged["run"].registered_version == "1"
    assert not [w for w in logged["warnings"] if "mlflow" in w.lower() or "pickle" in w.lower()
                or "integer column" in w.lower()], logged["warnings"]
    mlflow.set_tracking_uri(logged["uri"])
    info = mlflow.models.get_model_info(f"models:/{NAME}@challenger")
    inputs = info.signature.inputs.input_names()
    assert inputs[:2] == ["customer_id", "as_of"]
    assert "orders_365d" in inputs
    assert "churn_probability" in info.signature.outputs.input_names()
    assert info.flavors["python_function"].get("model_code_path"), "models from code"


def test_pyfunc_scores_like_the_library(logged, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", logged["uri"])
    mlflow.set_tracking_uri(logged["uri"])
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@challenger")
    features = logged["features"]
    got = model.predict(pyfunc_input(features, as_of=AS_OF))
    want = ck.scoring.score_features(features, logged["bundle"], explain=False, as_of=AS_OF)
    assert got["customer_id"].tolist() == [str(i) for i in features.index]
    np.testing.assert_allclose(got["churn_probability"], want["churn_probability"])
    assert got["action"].tolist() == want["action"].tolist()
    # and the registry still hands out the bundle itself
    bundle = ck.ModelBundle.load(f"models:/{NAME}@challenger")
    assert bundle.metadata.name == NAME
    assert bundle.feature_spec == logged["bundle"].feature_spec


def test_mlflow_models_predict_on_a_small_input(logged, tmp_path):
    rows = pyfunc_input(logged["features"].head(3), as_of=AS_OF)
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"dataframe_split": json.loads(
        rows.to_json(orient="split", index=False))}))
    out = tmp_path / "predictions.json"
    env = {**os.environ, "MLFLOW_TRACKING_URI": logged["uri"],
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    done = subprocess.run([str(mlflow_cli), "models", "predict", "-m",
                           f"models:/{NAME}@challenger", "-i", str(request), "-t", "json",
                           "-o", str(out), "--env-manager", "local"],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    predictions = pd.DataFrame(json.loads(out.read_text())["predictions"])
    assert predictions["customer_id"].tolist() == rows["customer_id"].tolist()
    assert predictions["churn_probability"].between(0, 1).all()


def test_the_commands_keep_mlflow_quiet(tmp_path):
    """A command that opens a new MLflow store prints no MLflow INFO lines (they would with
    CHURNKIT_VERBOSE=1)."""
    command = [sys.executable, "-m", "churnkit", "promote", "no-such-model",
               "--tracking-uri", f"sqlite:///{tmp_path / 'mlruns.db'}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CHURNKIT_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    quiet = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120,
                           cwd=tmp_path)
    assert quiet.returncode == 4, quiet.stderr[-2000:]
    assert "INFO" not in quiet.stderr and "Warning" not in quiet.stderr, quiet.stderr
    (tmp_path / "mlruns.db").unlink()
    loud = subprocess.run(command, env={**env, "CHURNKIT_VERBOSE": "1"}, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert "INFO mlflow" in loud.stderr
