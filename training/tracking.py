"""MLflow tracking and registry: log a training run, register its bundle, promote champions.

Runs go to a local SQLite store (``sqlite:///mlruns.db``) unless configured otherwise. A bundle
is logged as an MLflow pyfunc model whose artifact is the bundle directory, so
``ck.ModelBundle.load("models:/NAME@champion")`` and ``mlflow.pyfunc.load_model`` both work.
Registry aliases (``challenger``, ``champion``) replace the deprecated stages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow import MlflowClient

CHALLENGER, CHAMPION = "challenger", "champion"
#: The metric that decides promotions, and its direction (higher is better).
PROMOTION_METRIC = "model.roc_auc"


class BundlePyfunc(mlflow.pyfunc.PythonModel):
    """Scores a frame of churnkit features with the logged bundle (``churn_probability`` …)."""

    def load_context(self, context) -> None:
        from churnkit.scoring import ModelBundle

        self.bundle = ModelBundle.load(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from churnkit.scoring import score_features

        return score_features(model_input, self.bundle, as_of=model_input.attrs.get("as_of"),
                              explain=False)


def _client(tracking_uri: str) -> MlflowClient:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    registered_version: str | None


def log_training_run(
    *,
    tracking_uri: str,
    experiment: str,
    bundle_path: Path,
    params: dict,
    metrics: dict[str, float],
    artifacts: list[Path],
    evaluation: dict,
    register_as: str | None = None,
) -> LoggedRun:
    """Log parameters, metrics, the report and the bundle; register it as ``challenger``."""
    client = _client(tracking_uri)
    mlflow.set_experiment(experiment)
    bundle_doc = json.loads((bundle_path / "bundle.json").read_text())
    with mlflow.start_run(run_name=f"{bundle_doc['metadata']['name']}-"
                                   f"{bundle_doc['metadata']['version']}") as run:
        mlflow.log_params({k: v for k, v in params.items() if v is not None})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        mlflow.log_dict(evaluation, "evaluation.json")
        mlflow.log_dict(bundle_doc["feature_spec"], "feature_spec.json")
        for path in artifacts:
            mlflow.log_artifact(str(path))
        info = mlflow.pyfunc.log_model(
            name="bundle",
            python_model=BundlePyfunc(),
            artifacts={"bundle": str(bundle_path)},
            pip_requirements=["churnkit"],
            registered_model_name=register_as,
        )
        version = None
        if register_as:
            version = str(info.registered_model_version)
            client.set_registered_model_alias(register_as, CHALLENGER, version)
            client.set_model_version_tag(register_as, version, "evaluation_cutoff",
                                         bundle_doc["metadata"]["cutoffs"]["evaluation"])
        return LoggedRun(run.info.run_id, version)


@dataclass(frozen=True)
class Promotion:
    promoted: bool
    reason: str
    challenger: str | None = None
    champion: str | None = None

    def __post_init__(self) -> None:  # the registry hands out int versions; keep them as text
        for name in ("challenger", "champion"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, str(value))


def _metrics_of(client: MlflowClient, name: str, alias: str):
    mv = client.get_model_version_by_alias(name, alias)
    run = client.get_run(mv.run_id)
    return mv, run.data.metrics, mv.tags.get("evaluation_cutoff")


def promote(name: str, *, tracking_uri: str) -> Promotion:
    """Point ``champion`` at the ``challenger`` if it is better on the same evaluation cutoff.

    Better means a higher ROC-AUC with the paired bootstrap interval of its difference to the
    best baseline above zero. A challenger evaluated at another cutoff than the champion is not
    compared (the numbers would not be comparable): retrain both on the same data or promote
    explicitly after an offline comparison.
    """
    client = _client(tracking_uri)
    try:
        challenger, c_metrics, c_cutoff = _metrics_of(client, name, CHALLENGER)
    except mlflow.exceptions.MlflowException:
        return Promotion(False, f"no model registered as {name}@{CHALLENGER}")
    if c_metrics.get("diff_best.roc_auc_low", 0.0) <= 0.0:
        return Promotion(False, f"{name} v{challenger.version} does not beat its best baseline "
                         "with a paired interval above zero", challenger.version)
    try:
        champion, m_metrics, m_cutoff = _metrics_of(client, name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        client.set_registered_model_alias(name, CHAMPION, challenger.version)
        return Promotion(True, f"{name} v{challenger.version} is the first champion",
                         challenger.version)
    if champion.version == challenger.version:
        return Promotion(False, f"v{challenger.version} is already the champion",
                         challenger.version, champion.version)
    if c_cutoff != m_cutoff:
        return Promotion(False, f"challenger v{challenger.version} was evaluated at {c_cutoff}, "
                         f"champion v{champion.version} at {m_cutoff}: not comparable",
                         challenger.version, champion.version)
    new, old = c_metrics.get(PROMOTION_METRIC), m_metrics.get(PROMOTION_METRIC)
    if new is None or old is None or new <= old:
        return Promotion(False, f"challenger v{challenger.version} ROC-AUC {new:.4f} does not "
                         f"beat champion v{champion.version} {old:.4f}", challenger.version,
                         champion.version)
    client.set_registered_model_alias(name, CHAMPION, challenger.version)
    return Promotion(True, f"challenger v{challenger.version} ROC-AUC {new:.4f} beats champion "
                     f"v{champion.version} {old:.4f} at {c_cutoff}", challenger.version,
                     champion.version)
