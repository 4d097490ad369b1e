"""Retraining pipelines for churnkit: cutoffs, baselines, Optuna search, evaluation reports and
MLflow tracking. Imports only the public churnkit API and its own modules."""
