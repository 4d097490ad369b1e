"""The churnkit scoring service (BentoML 1.4): a thin adapter over :func:`churnkit.score`.

``POST /score`` reads the requested customers' rows from the event store (fresh on every call, see
:mod:`serving.store`) and scores them with the bundle; ``POST /score_events`` scores one customer
from rows given in the request. Both call the same :func:`churnkit.score` as training and the
batch job. BentoML provides ``/healthz``, ``/livez``, ``/readyz`` (ready once the bundle and the
store are loaded: ``__is_ready__``) and Prometheus ``/metrics``.

What a request must pass is in :mod:`serving.guard`, how it is read in :mod:`serving.parsing`;
concurrent ``/score`` calls share one scoring call through :mod:`serving.merging`.

Start it with ``churnkit serve --model URI --data SRC`` or ``bentoml serve serving.service:
ChurnService`` with ``CHURNKIT_MODEL`` and ``CHURNKIT_DATA`` set (see :mod:`serving.settings`).
Logs carry customer ids and timings, never row contents.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from datetime import datetime

import bentoml
import pandas as pd

import churnkit as ck
from churnkit.errors import RequestError, StoreError
from churnkit.scoring import Scores
from serving.guard import RequestGuard, check_id_count, check_row_count, error_response
from serving.merging import RequestMerger
from serving.openapi import ServedSpec
from serving.parsing import (
    columns_of,
    customer_id_of,
    parse_as_of,
    parse_ids,
    tables_from_rows,
)
from serving.schemas import ScoreEventsRequest, ScoreRequest, ScoreResponse, rows_from_frame
from serving.settings import Settings, workers_setting
from serving.store import EventStore, open_store

logger = logging.getLogger(__name__)

_scored_total = bentoml.metrics.Counter(
    name="churnkit_customers_scored", documentation="Customers scored, by endpoint",
    labelnames=["endpoint"])
_not_found_total = bentoml.metrics.Counter(
    name="churnkit_customers_not_found", documentation="Requested ids unknown at as_of",
    labelnames=["endpoint"])
_batch_size = bentoml.metrics.Histogram(
    name="churnkit_batch_requests", documentation="Requests merged into one scoring call",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))


def _ids_head(ids: Sequence[object], n: int = 20) -> str:
    shown = ",".join(str(i) for i in ids[:n])
    return shown + (f",…(+{len(ids) - n})" if len(ids) > n else "")


def _setup_logging() -> None:
    """The lines of every ``serving`` module (loggers named after the module: ``serving.service``,
    ``serving.store``) on stderr beside BentoML's, configured when the service starts, never at
    import; CHURNKIT_LOG_LEVEL=WARNING silences the INFO ones."""
    package = logging.getLogger(__name__.partition(".")[0])
    if package.handlers:
        return
    handler = logging.StreamHandler()
    # the worker's process id: with several workers, which one answered
    handler.setFormatter(logging.Formatter(
        "%(asctime)s [%(levelname)s] [churnkit %(process)d] %(message)s"))
    package.addHandler(handler)
    package.setLevel(os.environ.get("CHURNKIT_LOG_LEVEL", "INFO").upper())
    package.propagate = False


def _no_rows() -> pd.DataFrame:
    """A scored frame without customers."""
    return pd.DataFrame(index=pd.Index([], name="customer_id"))


@bentoml.service(name="churnkit", workers=workers_setting(), traffic={"timeout": 120})
class ChurnService:
    """Scores customers for the CRM, the support desk and the checkout."""

    def __init__(self) -> None:
        _setup_logging()
        self.settings = Settings.from_env()
        self.bundle: ck.ModelBundle | None = None
        self.store: EventStore | None = None
        self.load_error: str | None = None
        self.merger = RequestMerger(self._score_ids, wait_ms=self.settings.batch_wait_ms,
                                    queue_timeout_s=self.settings.queue_timeout_s,
                                    on_batch=_batch_size.observe)
        # Load in the background: /healthz answers at once, /readyz once both are loaded.
        threading.Thread(target=self._load, name="churnkit-load", daemon=True).start()

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            bundle = ck.ModelBundle.load(self.settings.model)
            bundle.warm_up()  # ready means the first request scores at full speed
            store = open_store(self.settings.data, memory_mb=self.settings.store_memory_mb)
            self.bundle, self.store = bundle, store
        except Exception as exc:  # reported by /readyz and every scoring call
            self.load_error = f"{type(exc).__name__}: {exc}"
            logger.error("churnkit service failed to load: %s", self.load_error)
            return
        logger.info("churnkit service ready: model %s %s, store %s (%.1f s)",
                    bundle.metadata.name, bundle.metadata.version, store.describe(),
                    time.perf_counter() - started)

    def __is_ready__(self) -> bool:
        return self.bundle is not None and self.store is not None

    # --- /score ------------------------------------------------------------------------------

    @bentoml.api(route="/score", input_spec=ScoreRequest)
    async def score(self, customer_ids: list, as_of: datetime | None = None) -> ScoreResponse:
        """Score customers from the event store as of ``as_of`` (default: now)."""
        started = time.perf_counter()
        try:
            self._check_ready()
            check_id_count(len(customer_ids), self.settings)
            now = pd.Timestamp.now(tz="UTC")
            cutoff = None if as_of is None else parse_as_of(as_of, self.settings, now)
            assert self.store is not None
            ids, bad = parse_ids(customer_ids, self.store.id_kind)
            if ids:
                scored, scored_at = await self.merger.submit(ids, cutoff)
            else:
                scored, scored_at = _no_rows(), cutoff or now
        except RequestError as exc:
            logger.info("score refused (%s): %s", exc.status, exc)
            return error_response(exc.status, str(exc), exc.detail)  # type: ignore[return-value]
        except StoreError as exc:
            logger.error("score failed: %s", exc)
            return error_response(503, f"the event store cannot be read: {exc}")  # type: ignore
        found = set(scored.index.tolist())
        not_found = [i for i in ids if i not in found] + bad
        _scored_total.labels(endpoint="score").inc(len(scored))
        _not_found_total.labels(endpoint="score").inc(len(not_found))
        logger.info("score ids=%s found=%d not_found=%d as_of=%s %.1f ms",
                    _ids_head(customer_ids), len(scored), len(not_found),
                    scored_at.isoformat(), 1000 * (time.perf_counter() - started))
        return self._response(scored, scored_at, not_found)

    def _check_ready(self) -> None:
        if self.load_error is not None:
            raise RequestError(f"the service could not load: {self.load_error}", status=503)
        if not self.__is_ready__():
            raise RequestError("the service is still loading the model and the event store; "
                               "retry when /readyz answers 200", status=503)

    def _response(self, scored: pd.DataFrame | Scores, as_of: pd.Timestamp,
                  not_found: list[object]) -> ScoreResponse:
        assert self.bundle is not None
        return ScoreResponse(
            model=self.bundle.metadata.name, model_version=self.bundle.metadata.version,
            as_of=as_of.to_pydatetime(), customers=rows_from_frame(scored), not_found=not_found)

    def _score_ids(self, ids: list[object], as_of: pd.Timestamp) -> Scores:
        """The store's rows of these customers, scored as of ``as_of`` (one merged call)."""
        assert self.store is not None
        data = self.store.data_for(ids)
        try:
            return self._score_tables(data, as_of)
        except ValueError as exc:  # e.g. the store lacks a table the model was trained on
            raise StoreError(f"the store's data cannot be scored by this model: {exc}") from exc

    def _score_tables(self, data: ck.Tables | ck.ShopArrays, as_of: pd.Timestamp
                      ) -> Scores:
        """:func:`churnkit.score` (no rows when no customer exists at ``as_of``: a customer
        who signs up at or after ``as_of`` does not exist yet)."""
        assert self.bundle is not None
        # the columns, not a frame: the answer reads them as they are (Scores)
        return ck.score(data, as_of=as_of, bundle=self.bundle, as_frame=False)

    # --- /score_events -----------------------------------------------------------------------

    @bentoml.api(route="/score_events", input_spec=ScoreEventsRequest)
    async def score_events(self, customers: list, orders: list, browsing: list | None = None,
                           tickets: list | None = None, contacts: list | None = None,
                           as_of: datetime | None = None) -> ScoreResponse:
        """Score one customer from the rows given in the request (validated against the
        data contract; every problem is listed in the 422 answer).

        The call runs on the event loop, not on a thread of BentoML's pool: it is a few
        milliseconds of work that holds the interpreter throughout, and the hand-off to a
        thread and back (two threads taking turns at the interpreter) cost more than it
        saved (``benchmarks/RESULTS.md``)."""
        started = time.perf_counter()
        given = {"customers": customers, "orders": orders, "browsing": browsing,
                 "tickets": tickets, "contacts": contacts}
        try:
            self._check_ready()
            total = check_row_count(given, self.settings)
            cutoff = parse_as_of(as_of, self.settings, pd.Timestamp.now(tz="UTC"))
            tables, plain = tables_from_rows({name: columns_of(rows)
                                              for name, rows in given.items()}, with_arrays=True)
            try:  # the engine's arrays from the validation's own (no pandas column reads)
                scored = self._score_tables(ck.ShopArrays.of(tables, plain), cutoff)
            except ValueError as exc:  # e.g. a table the model needs was left out
                raise RequestError(
                    f"these rows cannot be scored by this model: {exc}. Send every table the "
                    "shop has, as an empty list when the customer has no rows in it",
                    status=422) from None
        except RequestError as exc:
            logger.info("score_events refused (%s): %s", exc.status, exc)
            return error_response(exc.status, str(exc), exc.detail)  # type: ignore[return-value]
        customer_id = customer_id_of(tables)
        not_found = [] if len(scored) else [customer_id]
        _scored_total.labels(endpoint="score_events").inc(len(scored))
        logger.info("score_events id=%s rows=%d as_of=%s %.1f ms", customer_id, total,
                    cutoff.isoformat(), 1000 * (time.perf_counter() - started))
        return self._response(scored, cutoff, not_found)


ChurnService.add_asgi_middleware(RequestGuard)
ChurnService.add_asgi_middleware(ServedSpec, service=ChurnService)


__all__ = ["ChurnService"]
