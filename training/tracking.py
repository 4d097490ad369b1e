"""MLflow tracking and registry: log a training run, register its bundle, promote champions.

Runs go to a local SQLite store (``sqlite:///mlruns.db``) unless configured otherwise. A bundle
is logged as an MLflow pyfunc *model from code* (:mod:`training.pyfunc_model`, nothing pickled)
with a signature and an input example, its artifact the bundle directory: so
``ck.ModelBundle.load("models:/NAME@champion")``, ``mlflow.pyfunc.load_model(uri)`` and
``mlflow models predict -m URI --env-manager local`` all work. Registry aliases
(``challenger``, ``champion``) replace the deprecated stages.

MLflow is imported inside the functions: importing this module (the ``churnkit`` command line
does, through :mod:`training.run`) stays cheap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

import churnkit as ck

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHALLENGER, CHAMPION = "challenger", "champion"
#: The metric that decides promotions, and its direction (higher is better).
PROMOTION_METRIC = "model.roc_auc"


#: The models-from-code file MLflow runs to build the pyfunc.
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
#: Rows of the input example logged with the model.
EXAMPLE_ROWS = 5
INPUT_NOTE = ("customer_id, as_of, then the features of ck.build_features(tables, as_of=as_of, "
              "population=bundle.population)")


def pyfunc_input(features: pd.DataFrame, *, as_of: object) -> pd.DataFrame:
    """The pyfunc's input frame from a feature frame (index ``customer_id``) at ``as_of``:
    ``customer_id`` (as text), ``as_of`` (ISO, UTC) and the features, integer columns as floats
    (so that the signature accepts missing values)."""
    values = features.reset_index(drop=True)
    ints = [c for c, t in values.dtypes.items() if pd.api.types.is_integer_dtype(t)]
    ids = pd.DataFrame({"customer_id": features.index.astype(str),
                        "as_of": ck.as_utc_timestamp(as_of).isoformat()})
    return pd.concat([ids, values.astype(dict.fromkeys(ints, "float64"))], axis=1)


def pyfunc_example(tables: ck.Tables, bundle: ck.ModelBundle, *,
                   rows: int = EXAMPLE_ROWS) -> pd.DataFrame:
    """:func:`pyfunc_input` for the first ``rows`` customers known at the bundle's ``as_of``
    (the logged model's signature and input example)."""
    as_of = ck.as_utc_timestamp(bundle.metadata.as_of)
    known = tables.customers["signup_at"] < as_of
    ids = tables.customers.loc[known, "customer_id"].head(rows)
    features = ck.build_features(tables, as_of=as_of, customer_ids=ids,
                                 population=bundle.population)
    return pyfunc_input(features, as_of=as_of)


def score_rows(rows: pd.DataFrame, bundle: ck.ModelBundle) -> pd.DataFrame:
    """``customer_id`` and the :func:`churnkit.scoring.score_features` columns (no SHAP
    drivers; integer columns as floats, timestamps as naive UTC) for every row of a pyfunc
    input frame, in order."""
    missing = [c for c in ("customer_id", "as_of") if c not in rows.columns]
    if missing:
        raise ValueError(f"model input lacks columns {missing}; expected {INPUT_NOTE}")
    frames = []
    cutoffs = pd.to_datetime(rows["as_of"], utc=True)
    for cutoff in cutoffs.unique():
        at = (cutoffs == cutoff).to_numpy()
        features = rows[at].drop(columns="as_of").set_index("customer_id")
        scored = ck.scoring.score_features(features, bundle, explain=False,
                                           as_of=ck.as_utc_timestamp(cutoff))
        frames.append(scored.set_axis(rows.index[at]))
    out = pd.concat(frames).loc[rows.index]
    out.insert(0, "customer_id", rows["customer_id"].to_numpy())
    # Integer columns as floats, as in the input: the signature then allows missing values.
    # Timestamps as naive UTC: MLflow's datetime type carries no time zone.
    ints = [c for c, t in out.dtypes.items() if pd.api.types.is_integer_dtype(t)]
    out = out.astype(dict.fromkeys(ints, "float64"))
    for c, t in out.dtypes.items():
        if isinstance(t, pd.DatetimeTZDtype):
            out[c] = out[c].dt.tz_convert("UTC").dt.tz_localize(None)
    return out.reset_index(drop=True)


def _client(tracking_uri: str) -> MlflowClient:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


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
    example: pd.DataFrame,
    register_as: str | None = None,
) -> LoggedRun:
    """Log parameters, metrics, the report and the bundle; register it as ``challenger``.

    ``example``: a few rows of :func:`pyfunc_input`, e.g. :func:`pyfunc_example` (they give
    the model's signature and input example).
    """
    import mlflow
    from mlflow.models import infer_signature

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
        example = example.head(EXAMPLE_ROWS)
        scored = score_rows(example, ck.ModelBundle.load(bundle_path))
        info = mlflow.pyfunc.log_model(
            name="bundle",
            python_model=str(PYFUNC_CODE),
            artifacts={"bundle": str(bundle_path)},
            signature=infer_signature(example, scored),
            input_example=example,
            pip_requirements=[f"churnkit=={ck.__version__}"],
        )
        version = None
        if register_as:
            version = _register(client, register_as, info, run.info.run_id)
            client.set_registered_model_alias(register_as, CHALLENGER, version)
            client.set_model_version_tag(register_as, version, "evaluation_cutoff",
                                         bundle_doc["metadata"]["cutoffs"]["evaluation"])
        return LoggedRun(run.info.run_id, version)


def _register(client: MlflowClient, name: str, info, run_id: str) -> str:
    """A new version of registered model ``name`` for the logged model ``info`` (the registry
    calls of ``registered_model_name=``, without their messages on stderr)."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
    version = client.create_model_version(name, source=info.model_uri, run_id=run_id,
                                          model_id=info.model_id)
    return str(version.version)


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
    best baseline above zero, on an independent (held-out) evaluation: a challenger trained on
    too short a history to hold a cutoff out is not promoted. A challenger evaluated at another
    cutoff than the champion is not compared (the numbers would not be comparable): retrain
    both on the same data or promote
    explicitly after an offline comparison.
    """
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        challenger, c_metrics, c_cutoff = _metrics_of(client, name, CHALLENGER)
    except MlflowException:
        return Promotion(False, f"no model registered as {name}@{CHALLENGER}")
    if c_metrics.get("independent_evaluation", 1.0) == 0.0:
        return Promotion(False, f"{name} v{challenger.version} has no independent evaluation "
                         "(its history was too short for a held-out cutoff): judge it on later "
                         "data (churnkit evaluate) and set the champion alias by hand, or "
                         "retrain once the history holds a cutoff out", challenger.version)
    if c_metrics.get("diff_best.roc_auc_low", 0.0) <= 0.0:
        return Promotion(False, f"{name} v{challenger.version} does not beat its best baseline "
                         "with a paired interval above zero", challenger.version)
    try:
        champion, m_metrics, m_cutoff = _metrics_of(client, name, CHAMPION)
    except MlflowException:
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
