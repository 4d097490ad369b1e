"""The BentoML scoring service, a thin adapter over ``churnkit.score``: the service and its
endpoints (``service.py``), the request guard (``guard.py``), request merging (``merging.py``),
request parsing (``parsing.py``), request and response models (``schemas.py``), settings
(``settings.py``), the event store (``store.py``), ``churnkit serve`` (``cli.py``) and the Bento
build file (``bentofile.yaml``)."""
