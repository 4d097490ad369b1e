"""The floor for ``benchmarks/serve.py``: a bare BentoML service that answers a constant.

Same framework, worker count (:func:`serving.settings.workers_setting`, i.e. ``CHURNKIT_WORKERS``
or one per core, at most 4), traffic timeout and routes as the scoring service, with the same
JSON request bodies, but no work behind them: what any BentoML endpoint costs on this machine
(HTTP, JSON parsing, the worker's event loop). ``/score`` is async like the service's,
``/score_events`` sync (run in BentoML's thread pool) like the service's.

Start it from the repository root::

    .venv/bin/bentoml serve benchmarks.floor_service:Floor --port 3001
"""

from __future__ import annotations

import bentoml

from serving.settings import workers_setting

#: What every call answers: the shape of a one-customer scoring answer, a few fields.
ANSWER = {
    "model": "floor", "model_version": "0", "as_of": "2025-07-01T00:00:00Z",
    "customers": [{"customer_id": 0, "churn_probability": 0.5, "risk_band": "medium"}],
    "not_found": [],
}


@bentoml.service(name="floor", workers=workers_setting(), traffic={"timeout": 120})
class Floor:
    """Answers :data:`ANSWER` to every well-formed call."""

    @bentoml.api(route="/score")
    async def score(self, customer_ids: list, as_of: str | None = None) -> dict:
        """The constant, whatever the ids."""
        return ANSWER

    @bentoml.api(route="/score_events")
    def score_events(self, customers: list, orders: list, browsing: list | None = None,
                     tickets: list | None = None, contacts: list | None = None,
                     as_of: str | None = None) -> dict:
        """The constant, whatever the rows."""
        return ANSWER


__all__ = ["ANSWER", "Floor"]
