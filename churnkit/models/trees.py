"""The size and seed of one LightGBM model, shared by the parts that fit several of them."""

from __future__ import annotations

from dataclasses import asdict, dataclass


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
