"""LightGBM in the model parts: the size and seed of one model, and saving a part made of
boosters."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import lightgbm as lgb

from churnkit.models.part import ModelPart, read_document, write_document

T = TypeVar("T", bound=ModelPart)


@dataclass(frozen=True)
class TreeSettings:
    """LightGBM boosting rounds, learning rate, tree size, seed and threads (None: every core).

    ``min_child_samples`` is the fewest training rows a leaf may hold.
    """

    n_estimators: int = 100
    learning_rate: float = 0.1
    num_leaves: int = 31
    min_child_samples: int = 50
    random_state: int = 0
    n_jobs: int | None = 1

    def classifier_params(self, **extra: object) -> dict:
        """Keyword arguments of ``lightgbm.LGBMClassifier``: these settings, row and column
        subsampling of 0.8, 63 histogram bins, silent; ``extra`` adds or overrides."""
        params = {**asdict(self), "n_jobs": self.n_jobs or 0, "subsample": 0.8,
                  "subsample_freq": 1, "colsample_bytree": 0.8, "max_bin": 63, "verbose": -1}
        return {**params, **extra}


def save_boosted(part: Any, directory: str | Path, name: str, fitted: dict,
                 boosters: Mapping[str, lgb.Booster | None], *,
                 num_iteration: int | None = None) -> None:
    """Save a scikit-learn style part made of LightGBM models into ``directory``: each booster
    as LightGBM text ``<key>.txt`` (None: not written), and the JSON document ``name`` with
    the part's ``get_params()`` and ``fitted`` (see :func:`churnkit.models.part.write_document`).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stem, booster in boosters.items():
        if booster is not None:
            booster.save_model(str(directory / f"{stem}.txt"), num_iteration=num_iteration)
    write_document(directory, name, {"params": part.get_params(), **fitted}, format=part.FORMAT)


def load_boosted(cls: type[T], directory: str | Path, name: str, *, part: str
                 ) -> tuple[T, dict, Callable[[str], lgb.Booster | None]]:
    """What :func:`save_boosted` wrote: the part built from its saved parameters (not yet
    fitted), the document, and a reader of booster ``<key>.txt`` (None when absent)."""
    directory = Path(directory)
    doc = read_document(directory, name, part=part, format=cls.FORMAT)

    def booster(stem: str) -> lgb.Booster | None:
        path = directory / f"{stem}.txt"
        return lgb.Booster(model_file=str(path)) if path.exists() else None

    return cls(**doc["params"]), doc, booster
