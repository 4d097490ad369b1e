"""The churnkit scoring service (BentoML 1.4): a thin adapter over :func:`churnkit.score`.

``POST /score`` reads the requested customers' rows from the event store (fresh on every call, see
:mod:`serving.store`) and scores them with the bundle; ``POST /score_events`` scores one customer
from rows given in the request. Both call the same :func:`churnkit.score` as training and the
batch job. BentoML provides ``/healthz``, ``/livez``, ``/readyz`` (ready once the bundle and the
store are loaded: ``__is_ready__``) and Prometheus ``/metrics``.

Concurrent ``/score`` calls are merged: requests that arrive while a call is being scored wait
(at most ``CHURNKIT_BATCH_WAIT_MS`` more) and are scored together in one :func:`churnkit.score`
call per ``as_of`` — the features of 100 customers cost about what one customer's do — then the
result is split back per request.

Start it with ``churnkit serve --model URI --data SRC`` or ``bentoml serve serving.service:
ChurnService`` with ``CHURNKIT_MODEL`` and ``CHURNKIT_DATA`` set (see :mod:`serving.settings`).
Logs carry customer ids and timings, never row contents.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import bentoml
import pandas as pd
from starlette.responses import JSONResponse

import churnkit as ck
from churnkit.errors import RequestError, StoreError
from serving.schemas import (
    ScoreEventsRequest,
    ScoreRequest,
    ScoreResponse,
    rows_from_frame,
)
from serving.settings import Settings, workers_setting
from serving.store import EventStore, open_store

logger = logging.getLogger("churnkit.serving")
#: Paths served without the API key: probes, metrics and the API description.
OPEN_PATHS = ("/healthz", "/livez", "/readyz", "/metrics", "/schema.json", "/docs.json", "/docs",
              "/static_content")
#: Most customers scored in one merged call: bounds the time one call holds the queue (the
#: per-call cost is roughly fixed up to ~100 customers and grows after).
MAX_BATCH_IDS = 256

_scored_total = bentoml.metrics.Counter(
    name="churnkit_customers_scored", documentation="Customers scored, by endpoint",
    labelnames=["endpoint"])
_not_found_total = bentoml.metrics.Counter(
    name="churnkit_customers_not_found", documentation="Requested ids unknown at as_of",
    labelnames=["endpoint"])
_batch_size = bentoml.metrics.Histogram(
    name="churnkit_batch_requests", documentation="Requests merged into one scoring call",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))




def _error(status: int, message: str, detail: list | None = None) -> JSONResponse:
    body: dict[str, object] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status)


def _ids_head(ids: Sequence[object], n: int = 20) -> str:
    shown = ",".join(str(i) for i in ids[:n])
    return shown + (f",…(+{len(ids) - n})" if len(ids) > n else "")


class RequestGuard:
    """ASGI middleware in front of the scoring endpoints.

    With ``CHURNKIT_API_KEY`` set: 401 unless the request carries the key (``X-API-Key: <key>``
    or ``Authorization: Bearer <key>``); probes, metrics and the API description stay open.
    A POST whose body is not JSON: 415 (BentoML would try other decoders and fail with a 500).
    """

    def __init__(self, app) -> None:
        self.app = app
        self.key = os.environ.get("CHURNKIT_API_KEY") or None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] == "/" \
                or scope["path"].startswith(OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        if self.key is None:
            await self._checked_type(scope, receive, send, headers)
            return
        given = headers.get("x-api-key")
        auth = headers.get("authorization", "")
        if given is None and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if given is None or not hmac.compare_digest(given.encode(), self.key.encode()):
            response = _error(401, "missing or wrong API key: send it in the X-API-Key header "
                                   "(or Authorization: Bearer <key>)")
            await response(scope, receive, send)
            return
        await self._checked_type(scope, receive, send, headers)

    async def _checked_type(self, scope, receive, send, headers: dict[str, str]) -> None:
        media = headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if scope.get("method") == "POST" and media not in ("application/json", ""):
            response = _error(415, f"unsupported Content-Type {media!r}: send the request body "
                                   "as JSON with Content-Type: application/json")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _setup_logging() -> None:
    """Our request lines on stderr beside BentoML's (configured when the service starts, never at
    import); CHURNKIT_LOG_LEVEL=WARNING silences them."""
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    # the worker's process id: with several workers, which one answered
    handler.setFormatter(logging.Formatter(
        "%(asctime)s [%(levelname)s] [churnkit %(process)d] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(os.environ.get("CHURNKIT_LOG_LEVEL", "INFO").upper())
    logger.propagate = False


@dataclass
class _Pending:
    ids: list[object]
    as_of: pd.Timestamp | None
    future: asyncio.Future = field(repr=False)
    queued_at: float = field(default_factory=time.monotonic)


def parse_as_of(value: datetime | None, settings: Settings, now: pd.Timestamp) -> pd.Timestamp:
    """The request's ``as_of`` as a UTC Timestamp; refuses one beyond the allowed future."""
    if value is None:
        return now
    try:
        as_of = pd.Timestamp(value).tz_convert("UTC")
    except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime):
        raise RequestError(f"as_of {value.isoformat()} is out of range; give a date between "
                           "1900 and the present") from None
    if as_of.year < 1900:
        raise RequestError(f"as_of {value.isoformat()} is before 1900; give a date the shop "
                           "has data for")
    limit = now + pd.Timedelta(seconds=settings.max_future_seconds)
    if as_of > limit:
        raise RequestError(
            f"as_of {as_of.isoformat()} is in the future (server time {now.isoformat()}; at most "
            f"{settings.max_future_seconds:g} s ahead allowed): events after now are not known, "
            "so scores at that date would be wrong; leave as_of out to score now")
    return as_of


def _coerce_ids(ids: Sequence[object], kind: str) -> tuple[list[object], list[object]]:
    """(ids of the store's kind, ids that cannot be such an id)."""
    ok, bad = [], []
    for i in ids:
        if kind == "int":
            if isinstance(i, int) and not isinstance(i, bool):
                ok.append(i)
            elif isinstance(i, str) and i.strip().lstrip("-").isdigit():
                ok.append(int(i.strip()))
            else:
                bad.append(i)
        else:
            ok.append(str(i))
    return ok, bad


@bentoml.service(name="churnkit", workers=workers_setting(), traffic={"timeout": 120})
class ChurnService:
    """Scores customers for the CRM, the support desk and the checkout."""

    def __init__(self) -> None:
        _setup_logging()
        self.settings = Settings.from_env()
        self.bundle: ck.ModelBundle | None = None
        self.store: EventStore | None = None
        self.load_error: str | None = None
        self._pending: list[_Pending] = []
        self._draining = False
        # Load in the background: /healthz answers at once, /readyz once both are loaded.
        threading.Thread(target=self._load, name="churnkit-load", daemon=True).start()

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            bundle = ck.ModelBundle.load(self.settings.model)
            store = open_store(self.settings.data, memory_mb=self.settings.store_memory_mb)
            # Warm up the feature engine on this (the scoring) thread's connection.
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
            if len(customer_ids) > self.settings.max_ids:
                raise RequestError(f"too many customer_ids: {len(customer_ids)} given, at most "
                                   f"{self.settings.max_ids} per call (CHURNKIT_MAX_IDS); split "
                                   "the list", status=413)
            now = pd.Timestamp.now(tz="UTC")
            cutoff = None if as_of is None else parse_as_of(as_of, self.settings, now)
            assert self.store is not None
            ids, bad = _coerce_ids(list(dict.fromkeys(customer_ids)), self.store.id_kind)
            ids = list(dict.fromkeys(ids))  # "7" and 7 are one customer
            if ids:
                scored = await self._submit(ids, cutoff)
            else:
                scored = self._empty_score(cutoff or now)
        except RequestError as exc:
            logger.info("score refused (%s): %s", exc.status, exc)
            return _error(exc.status, str(exc), exc.detail)  # type: ignore[return-value]
        except StoreError as exc:
            logger.error("score failed: %s", exc)
            return _error(503, f"the event store cannot be read: {exc}")  # type: ignore
        found = set(scored.index.tolist())
        not_found = [i for i in ids if i not in found] + bad
        _scored_total.labels(endpoint="score").inc(len(scored))
        _not_found_total.labels(endpoint="score").inc(len(not_found))
        logger.info("score ids=%s found=%d not_found=%d as_of=%s %.1f ms",
                    _ids_head(customer_ids), len(scored), len(not_found),
                    scored.attrs["as_of"].isoformat(), 1000 * (time.perf_counter() - started))
        return self._response(scored, not_found)

    def _check_ready(self) -> None:
        if self.load_error is not None:
            raise RequestError(f"the service could not load: {self.load_error}", status=503)
        if not self.__is_ready__():
            raise RequestError("the service is still loading the model and the event store; "
                               "retry when /readyz answers 200", status=503)

    def _empty_score(self, as_of: pd.Timestamp) -> pd.DataFrame:
        frame = pd.DataFrame(index=pd.Index([], name="customer_id"))
        frame.attrs = {"as_of": as_of}
        return frame

    def _response(self, scored: pd.DataFrame, not_found: list[object]) -> ScoreResponse:
        assert self.bundle is not None
        return ScoreResponse(
            model=self.bundle.metadata.name, model_version=self.bundle.metadata.version,
            as_of=scored.attrs["as_of"].to_pydatetime(), customers=rows_from_frame(scored),
            not_found=not_found)

    async def _submit(self, ids: list[object], as_of: pd.Timestamp | None) -> pd.DataFrame:
        """Queue a request for the next merged scoring call and wait for its rows."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(ids, as_of, future))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                if self.settings.batch_wait_ms > 0:
                    await asyncio.sleep(self.settings.batch_wait_ms / 1000)
                self._shed_stale()
                batch, n = [], 0
                while self._pending and (not batch or n + len(self._pending[0].ids)
                                         <= MAX_BATCH_IDS):
                    item = self._pending.pop(0)
                    batch.append(item)
                    n += len(item.ids)
                _batch_size.observe(len(batch))
                try:
                    results = await asyncio.to_thread(self._score_batch, batch)
                except Exception as exc:
                    for item in batch:
                        if not item.future.done():
                            item.future.set_exception(exc)
                    continue
                for item, result in zip(batch, results, strict=True):
                    if not item.future.done():
                        item.future.set_result(result)
        finally:
            self._draining = False

    def _shed_stale(self) -> None:
        """Answer 503 to requests queued longer than ``CHURNKIT_QUEUE_TIMEOUT_S`` instead of
        scoring them: under overload their callers have likely given up, and scoring them would
        only delay everyone behind."""
        limit = time.monotonic() - self.settings.queue_timeout_s
        keep = []
        for item in self._pending:
            if item.queued_at < limit and not item.future.done():
                item.future.set_exception(RequestError(
                    f"the service is overloaded: the request waited more than "
                    f"{self.settings.queue_timeout_s:g} s (CHURNKIT_QUEUE_TIMEOUT_S); retry "
                    "later", status=503))
            elif not item.future.done():
                keep.append(item)
        self._pending = keep

    def _score_batch(self, batch: list[_Pending]) -> list[pd.DataFrame]:
        """One store read and one :func:`churnkit.score` per distinct ``as_of`` of the batch;
        requests without ``as_of`` are scored at the moment the batch starts."""
        assert self.store is not None and self.bundle is not None
        now = pd.Timestamp.now(tz="UTC")
        groups: dict[pd.Timestamp, list[int]] = {}
        for k, item in enumerate(batch):
            groups.setdefault(item.as_of if item.as_of is not None else now, []).append(k)
        out: list[pd.DataFrame | None] = [None] * len(batch)
        for as_of, members in groups.items():
            ids = list(dict.fromkeys(i for k in members for i in batch[k].ids))
            tables = self.store.tables_for(ids)
            try:
                scored = self._score_tables(tables, as_of)
            except ValueError as exc:  # e.g. the store lacks a table the model was trained on
                raise StoreError(f"the store's data cannot be scored by this model: {exc}") \
                    from exc
            for k in members:
                mine = scored.loc[[i for i in batch[k].ids if i in scored.index]]
                mine.attrs = dict(scored.attrs)
                out[k] = mine
        return out  # type: ignore[return-value]

    def _score_tables(self, tables: ck.Tables, as_of: pd.Timestamp) -> pd.DataFrame:
        """:func:`churnkit.score`, or an empty frame when no customer exists at ``as_of`` (a
        customer who signs up at or after ``as_of`` does not exist yet)."""
        assert self.bundle is not None
        if not (tables.customers["signup_at"] < as_of).any():
            return self._empty_score(as_of)
        return ck.score(tables, as_of=as_of, bundle=self.bundle)

    # --- /score_events -----------------------------------------------------------------------

    @bentoml.api(route="/score_events", input_spec=ScoreEventsRequest)
    def score_events(self, customers: list, orders: list, browsing: list | None = None,
                     tickets: list | None = None, contacts: list | None = None,
                     as_of: datetime | None = None) -> ScoreResponse:
        """Score one customer from the rows given in the request (validated against the
        data contract; every problem is listed in the 400 answer)."""
        started = time.perf_counter()
        rows = {"customers": customers, "orders": orders, "browsing": browsing,
                "tickets": tickets, "contacts": contacts}
        try:
            self._check_ready()
            total = sum(len(r) for r in rows.values() if r is not None)
            if total > self.settings.max_events_rows:
                raise RequestError(f"too many rows: {total} given, at most "
                                   f"{self.settings.max_events_rows} per call "
                                   "(CHURNKIT_MAX_EVENTS_ROWS)", status=413)
            now = pd.Timestamp.now(tz="UTC")
            cutoff = parse_as_of(as_of, self.settings, now)
            tables = _tables_from_rows(rows)
            assert self.bundle is not None
            try:
                scored = self._score_tables(tables, cutoff)
            except ValueError as exc:  # e.g. a table the model needs was left out
                raise RequestError(
                    f"these rows cannot be scored by this model: {exc}. Send every table the "
                    "shop has, as an empty list when the customer has no rows in it",
                    status=422) from None
        except RequestError as exc:
            logger.info("score_events refused (%s): %s", exc.status, exc)
            return _error(exc.status, str(exc), exc.detail)  # type: ignore[return-value]
        customer_id = tables.customers["customer_id"].iloc[0]
        customer_id = customer_id.item() if hasattr(customer_id, "item") else customer_id
        not_found = [] if len(scored) else [customer_id]
        _scored_total.labels(endpoint="score_events").inc(len(scored))
        logger.info("score_events id=%s rows=%d as_of=%s %.1f ms", customer_id,
                    sum(len(r) for r in rows.values() if r is not None), cutoff.isoformat(),
                    1000 * (time.perf_counter() - started))
        return self._response(scored, not_found)


def _tables_from_rows(rows: dict[str, list | None]) -> ck.Tables:
    """Validated tables from the request's rows; a 400 listing every contract problem."""
    frames: dict[str, pd.DataFrame | None] = {}
    for name, records in rows.items():
        if records is None:
            frames[name] = None
            continue
        columns = list(dict.fromkeys(k for r in records for k in r))
        if not columns:  # no rows: the contract's columns, empty
            columns = list(ck.TABLES[name].column_names)
        frames[name] = pd.DataFrame.from_records(records, columns=columns)
    try:
        tables = ck.validate(ck.Tables(**frames))  # type: ignore[arg-type]
    except ck.DataValidationError as exc:
        raise RequestError(
            f"the rows break the data contract ({len(exc.problems)} problem(s)); fix them and "
            "resend (see docs/data-contract.md)",
            status=422, detail=[str(p) for p in exc.problems]) from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise RequestError(f"the rows cannot be read as the contract's tables: {exc}",
                           status=422) from None
    ids = pd.unique(tables.customers["customer_id"])
    if len(ids) != 1:
        raise RequestError("customers must hold exactly one customer", status=422)
    return tables


ChurnService.add_asgi_middleware(RequestGuard)


__all__ = ["ChurnService", "RequestError", "RequestGuard", "parse_as_of"]
