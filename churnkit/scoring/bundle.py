"""The model bundle: everything scoring needs, saved together and checked on load.

A bundle directory holds ``bundle.json`` (feature spec, population fit, risk reference,
training metadata and metrics), ``churn_model/`` (LightGBM text model + calibrator) and one
subdirectory per optional component present (``timing/``, ``value/``, ``uplift/``, ``policy/``,
``drift/``; see :data:`COMPONENTS`). Loading
compares the bundle's feature spec with the features this code computes and refuses a mismatch,
naming each difference, so a model never silently scores features that changed meaning.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from churnkit.errors import BundleMismatchError
from churnkit.features.population import PopulationFit
from churnkit.features.registry import all_features
from churnkit.io.atomic import atomic_directory
from churnkit.models import ChurnModel, DriftReference, TimingModel, UpliftModel, ValueModel
from churnkit.models.compiled import FOLDER as COMPILED
from churnkit.models.compiled import MARKER as COMPILED_MARKER
from churnkit.models.compiled import attach, boosters_in, forest_for, toolchain
from churnkit.models.part import ModelPart, read_document
from churnkit.policy import PolicyConfig

#: Risk bands by percentile of churn probability among the reference population (lowest bound).
DEFAULT_RISK_BANDS = {"critical": 95.0, "high": 80.0, "medium": 50.0, "low": 0.0}


#: Optional parts of a bundle: attribute -> class. Each class follows
#: :class:`~churnkit.models.part.ModelPart` (``FORMAT``, ``save(directory)``, classmethod
#: ``load(directory)``); a bundle saves each present part in ``<name>/`` and loads it when that
#: directory exists, so older bundles without a part still load.
COMPONENTS: dict[str, type[ModelPart]] = {
    "timing": TimingModel,
    "value": ValueModel,
    "uplift": UpliftModel,
    "policy": PolicyConfig,
    "drift": DriftReference,
}


@dataclass(frozen=True)
class FeatureSpec:
    """The features a model was trained on: names, registry dtypes, families, code version."""

    names: tuple[str, ...]
    dtypes: tuple[str, ...]
    families: tuple[str, ...]

    @classmethod
    def from_names(cls, names: list[str] | tuple[str, ...]) -> FeatureSpec:
        """The spec of these feature columns as the current code's registry defines them."""
        registry = {f.name: f for f in all_features()}
        unknown = [n for n in names if n not in registry]
        if unknown:
            raise ValueError(f"not churnkit features: {', '.join(unknown)}")
        families = tuple(dict.fromkeys(registry[n].family for n in names))
        return cls(tuple(names), tuple(registry[n].dtype for n in names), families)

    def differences(self) -> list[str]:
        """How the current code's registry differs for these features (empty when it agrees)."""
        registry = {f.name: f for f in all_features()}
        problems = []
        for name, dtype in zip(self.names, self.dtypes, strict=True):
            if name not in registry:
                problems.append(f"feature {name!r} is no longer computed")
            elif registry[name].dtype != dtype:
                problems.append(f"feature {name!r} was {dtype}, the code now gives "
                                f"{registry[name].dtype}")
        return problems

    def to_dict(self) -> dict:
        return {"names": list(self.names), "dtypes": list(self.dtypes),
                "families": list(self.families)}

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSpec:
        return cls(tuple(data["names"]), tuple(data["dtypes"]), tuple(data["families"]))


@dataclass(frozen=True)
class TrainingMetadata:
    """Where a bundle came from and how good it was at its evaluation cutoff."""

    name: str
    version: str
    created_at: str
    as_of: str
    horizon_days: int
    cutoffs: dict
    n_train_rows: int
    code_version: str
    params: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ModelBundle:
    """The unit of deployment (docs/architecture.md "The bundle is the unit of deployment"): one
    object that training saves and scoring loads."""

    #: Version of ``bundle.json``'s layout.
    FORMAT = 1

    churn_model: ChurnModel
    feature_spec: FeatureSpec
    population: PopulationFit
    metadata: TrainingMetadata
    #: 1001 quantiles (0.0 .. 100.0 %) of churn probability in the reference population (the
    #: customers who bought in the year before the evaluation cutoff), so that a customer scored
    #: alone gets the percentile of the full run.
    risk_reference: np.ndarray
    risk_bands: dict = field(default_factory=lambda: dict(DEFAULT_RISK_BANDS))
    #: Contact timing: day, local hour and weekday, channel (None: not trained).
    timing: TimingModel | None = None
    #: Expected customer value over the horizon (None: the policy falls back to past spend).
    value: ValueModel | None = None
    #: Per-action uplift on coming back, learned from campaign holdouts (None: rules only).
    uplift: UpliftModel | None = None
    #: The win-back policy config the bundle scores with (None: the packaged defaults).
    policy: PolicyConfig | None = None
    #: Feature distributions at training time, for drift checks (None: no drift check).
    drift: DriftReference | None = None

    def components(self) -> dict[str, ModelPart]:
        """The optional parts this bundle holds, by name."""
        return {name: getattr(self, name) for name in COMPONENTS
                if getattr(self, name) is not None}

    def risk_percentile(self, probability: np.ndarray) -> np.ndarray:
        """Percent of the reference population with a lower churn probability (0-100)."""
        grid = np.linspace(0.0, 100.0, len(self.risk_reference))
        ref = self.risk_reference
        return np.interp(probability, ref, grid, left=0.0, right=100.0)

    def risk_band(self, percentile: np.ndarray) -> np.ndarray:
        """The band whose lower percentile bound is the highest one not above ``percentile``."""
        bands = sorted(self.risk_bands.items(), key=lambda kv: kv[1])
        out = np.full(len(percentile), bands[0][0], dtype=object)
        for name, low in bands[1:]:
            out[np.asarray(percentile) >= low] = name
        return out

    def warm_up(self) -> None:
        """Score one made-up customer through every stage of the bundle, so that LightGBM's
        first predictions and the stages' first-use set-up are paid now, not by the first
        request (a service calls this once after loading)."""
        from churnkit.scoring.score import warm_up  # the scoring call needs the bundle class

        warm_up(self)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the bundle to the directory ``path`` atomically (whole or not at all)."""
        with atomic_directory(path, overwrite=overwrite) as tmp:
            self.churn_model.save(tmp / "churn_model")
            for name, part in self.components().items():
                (tmp / name).mkdir()
                part.save(tmp / name)
            doc = {
                "format": self.FORMAT,
                "feature_spec": self.feature_spec.to_dict(),
                "population": self.population.to_dict(),
                "metadata": asdict(self.metadata),
                "risk_reference": [float(x) for x in self.risk_reference],
                "risk_bands": self.risk_bands,
            }
            (tmp / "bundle.json").write_text(json.dumps(doc, indent=1, default=str))
            if self.is_compiled():  # the machine code goes with the trees
                (tmp / COMPILED).mkdir()
                for booster, iteration in self.forests():
                    kept = forest_for(booster, iteration).path
                    if kept.exists():  # (one compiled for a read-only bundle is not kept)
                        shutil.copyfile(kept, tmp / COMPILED / kept.name)
                _mark_compiled(tmp / COMPILED, len(self.forests()))
        return Path(path)

    @classmethod
    def load(cls, path_or_uri: str | Path) -> ModelBundle:
        """Load from a directory or an MLflow URI (``models:/NAME@champion``, ``runs:/...``).

        Raises
        ------
        FileNotFoundError
            No bundle at that place.
        BundleMismatchError
            The bundle's feature spec differs from what this code computes (each difference
            named).
        """
        directory = _resolve(str(path_or_uri))
        doc = read_document(directory, "bundle.json", part="model bundle", format=cls.FORMAT)
        spec = FeatureSpec.from_dict(doc["feature_spec"])
        problems = spec.differences()
        if problems:
            raise BundleMismatchError(
                f"the bundle at {path_or_uri} does not match this code's features: "
                + "; ".join(problems) + ". Retrain it with this version of churnkit."
            )
        parts = {name: COMPONENTS[name].load(directory / name)
                 for name in COMPONENTS if (directory / name).is_dir()}
        bundle = cls(
            churn_model=ChurnModel.load(directory / "churn_model"),
            feature_spec=spec,
            population=PopulationFit.from_dict(doc["population"]),
            metadata=TrainingMetadata(**doc["metadata"]),
            risk_reference=np.asarray(doc["risk_reference"], dtype=float),
            risk_bands=doc["risk_bands"],
            **parts,
        )
        if (directory / COMPILED / COMPILED_MARKER).exists():
            bundle.attach_compiled(directory / COMPILED)
        return bundle

    # -- compiled forests ----------------------------------------------------------------------
    def forests(self) -> list[tuple[lgb.Booster, int | None]]:
        """Every LightGBM booster of the bundle with the iteration scoring predicts it at."""
        churn = self.churn_model
        found = [(churn.booster_, churn.best_iteration_)]
        for part in self.components().values():
            found += [(b, None) for b in boosters_in(part)]
        return found

    def is_compiled(self) -> bool:
        """Whether this bundle predicts through compiled forests (:meth:`attach_compiled`)."""
        churn = self.churn_model
        return forest_for(churn.booster_, churn.best_iteration_) is not None

    def attach_compiled(self, folder: str | Path) -> None:
        """Predict every normal value of this bundle through compiled forests kept in
        ``folder`` (loaded, or compiled first where missing: see
        :mod:`churnkit.models.compiled`)."""
        for booster, iteration in self.forests():
            attach(booster, folder, iteration)


def compile_bundle(path: str | Path) -> int:
    """Compile the forests of the bundle directory ``path`` into ``path/compiled/`` (kept
    forests reused) and mark it compiled, so that loading it predicts through them. Returns
    the number of forests."""
    directory = Path(path)
    bundle = ModelBundle.load(directory)
    folder = directory / COMPILED
    bundle.attach_compiled(folder)
    _mark_compiled(folder, len(bundle.forests()))
    return len(bundle.forests())


def _mark_compiled(folder: Path, forests: int) -> None:
    tmp = folder / f".{COMPILED_MARKER}.tmp"
    tmp.write_text(json.dumps({"forests": forests, **toolchain()}, indent=1))
    os.replace(tmp, folder / COMPILED_MARKER)


def reference_quantiles(probabilities: np.ndarray) -> np.ndarray:
    """The 1001 quantiles stored as a bundle's risk reference."""
    return np.quantile(np.asarray(probabilities, dtype=float), np.linspace(0, 1, 1001))


def _resolve(location: str) -> Path:
    """A local directory holding ``bundle.json`` for a path or an MLflow URI."""
    if location.startswith(("models:/", "runs:/", "mlflow-artifacts:/")):
        import mlflow

        tracking = os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlruns.db")
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=location,
                                                         tracking_uri=tracking))
        found = sorted(local.rglob("bundle.json"))
        if not found:
            raise FileNotFoundError(f"{location} holds no churnkit bundle")
        return found[0].parent
    return Path(location)


def version_stamp(now: pd.Timestamp) -> str:
    """A sortable bundle version from the (explicit) creation time, e.g. 20250701T120000."""
    return now.strftime("%Y%m%dT%H%M%S")
