"""The serving side of churnkit: the BentoML scoring service (``serving/service.py``,
``bentofile.yaml``) and the nightly batch job entry. Both are thin adapters over
``churnkit.score``; they arrive with the service and batch issues."""
