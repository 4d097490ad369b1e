"""The MLflow pyfunc of a churnkit bundle, logged as a model from code (no pickled object).

:func:`training.tracking.log_training_run` logs this file with the bundle directory as the
``bundle`` artifact; MLflow runs it when the model is loaded, and :func:`mlflow.models.set_model`
below names the model. Do not import it from churnkit code: it exists to be run by MLflow.

Input: a DataFrame of feature rows, one per customer: ``customer_id``, ``as_of`` (the scoring
cutoff, an ISO date or timestamp, UTC when naive) and the columns of ``ck.build_features`` at
that cutoff with the bundle's population (:func:`training.tracking.pyfunc_input` builds it).
Output: one row per input row, in order: ``customer_id`` and the columns of
:func:`churnkit.scoring.score_features` (``churn_probability``, ``risk_percentile``,
``risk_band``, ``segment``, the timing, value and policy columns), without the SHAP drivers.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

import churnkit as ck
from training.tracking import score_rows


class BundleModel(PythonModel):
    """Scores feature rows with the logged bundle, exactly as ``churnkit.scoring`` does."""

    def load_context(self, context) -> None:
        self.bundle = ck.ModelBundle.load(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """The scored rows of ``model_input`` (see the module docstring), in input order."""
        return score_rows(model_input, self.bundle)


mlflow.models.set_model(BundleModel())
