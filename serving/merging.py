"""Request merging: concurrent ``/score`` requests share one scoring call.

A request queues its ids and waits. While the queue is not empty, a drain task waits
``wait_ms`` for more requests to arrive, takes the queued requests (up to ``max_ids`` customers
in all) and scores them: one call of the scoring function per distinct ``as_of``, requests
without one scored at the moment the batch starts. Each request then gets its own customers'
rows. Features of many customers cost about as much as those of one, so under load many requests
are answered for the price of one.

Where a batch is scored depends on what is queued. A request alone in its batch is scored on
the event loop itself: the hand-off to a thread and back, with the two threads taking turns at
the interpreter, costs more than it saves (``benchmarks/RESULTS.md``). Requests that arrive
during that call wait in the socket and are read together once it returns, so under load they
reach the queue together and merge. A batch of several requests runs on a worker thread, so
that the loop reads the requests arriving meanwhile and they merge into the next call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from churnkit.errors import RequestError
from churnkit.scoring import Scores

#: Most customers scored in one merged call: bounds the time one call holds the queue (the
#: cost of a call is roughly fixed for small batches and grows with their size after).
MAX_BATCH_IDS = 256

#: Scores the ids as of a UTC Timestamp: one row per id known at that moment, indexed by id
#: (a frame, or its columns as :class:`churnkit.scoring.Scores`).
ScoreIds = Callable[[list[object], pd.Timestamp], pd.DataFrame | Scores]


def _select(scored: pd.DataFrame | Scores, ids: list[object]) -> pd.DataFrame | Scores:
    """The rows of ``ids`` (all scored), in their order."""
    return scored.loc[ids] if isinstance(scored, pd.DataFrame) else scored.select(ids)


@dataclass
class _Pending:
    ids: list[object]
    as_of: pd.Timestamp | None
    future: asyncio.Future = field(repr=False)
    queued_at: float = field(default_factory=time.monotonic)


class RequestMerger:
    """Merges the requests that arrive while a scoring call runs into the next call.

    Parameters
    ----------
    score_ids
        The scoring function; one call at a time, on the event loop for a request alone and on
        a worker thread for several (see the module docstring).
    wait_ms
        How long the drain waits for more requests before each call (milliseconds; 0 = merge
        only the requests already queued).
    queue_timeout_s
        A request queued longer than this (seconds) is answered with a 503
        :class:`~churnkit.errors.RequestError` instead of being scored: under overload its
        caller has likely given up, and scoring it would only delay everyone behind.
    max_ids
        Most customers in one call; a single larger request is still scored alone.
    on_batch
        Called with the number of requests of each call (e.g. a metrics histogram).
    """

    def __init__(self, score_ids: ScoreIds, *, wait_ms: float, queue_timeout_s: float,
                 max_ids: int = MAX_BATCH_IDS,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.score_ids = score_ids
        self.wait_ms = wait_ms
        self.queue_timeout_s = queue_timeout_s
        self.max_ids = max_ids
        self.on_batch = on_batch
        self._pending: list[_Pending] = []
        self._draining = False
        # the running drain: the loop holds tasks only weakly, so it is kept here
        self._drain_task: asyncio.Task | None = None

    async def submit(self, ids: list[object],
                     as_of: pd.Timestamp | None) -> tuple[pd.DataFrame, pd.Timestamp]:
        """These customers' rows (in the order of ``ids``, unknown ids left out) and the moment
        they were scored at: ``as_of``, or the start of their batch when ``as_of`` is None.
        Raises what the scoring function raised for their batch."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append(_Pending(ids, as_of, future))
        if not self._draining:
            self._draining = True
            self._drain_task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                if self.wait_ms > 0:
                    await asyncio.sleep(self.wait_ms / 1000)
                self._shed_stale()
                batch = self._next_batch()
                if not batch:
                    continue
                if self.on_batch is not None:
                    self.on_batch(len(batch))
                try:
                    if len(batch) == 1:
                        results = self._score_batch(batch)  # alone: on the loop (see above)
                    else:
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

    def _next_batch(self) -> list[_Pending]:
        """The queued requests in order, up to ``max_ids`` customers (at least one request)."""
        batch, n = [], 0
        while self._pending and (not batch or n + len(self._pending[0].ids) <= self.max_ids):
            item = self._pending.pop(0)
            batch.append(item)
            n += len(item.ids)
        return batch

    def _shed_stale(self) -> None:
        """Answer 503 to the requests queued longer than ``queue_timeout_s``; drop those whose
        caller went away."""
        limit = time.monotonic() - self.queue_timeout_s
        keep = []
        for item in self._pending:
            if item.queued_at < limit and not item.future.done():
                item.future.set_exception(RequestError(
                    f"the service is overloaded: the request waited more than "
                    f"{self.queue_timeout_s:g} s (CHURNKIT_QUEUE_TIMEOUT_S); retry later",
                    status=503))
            elif not item.future.done():
                keep.append(item)
        self._pending = keep

    def _score_batch(self, batch: list[_Pending]) -> list[tuple[pd.DataFrame, pd.Timestamp]]:
        """One scoring call per distinct ``as_of`` of the batch, split back per request."""
        now = pd.Timestamp.now(tz="UTC")
        groups: dict[pd.Timestamp, list[_Pending]] = {}
        for item in batch:
            groups.setdefault(item.as_of if item.as_of is not None else now, []).append(item)
        out: dict[int, tuple[pd.DataFrame, pd.Timestamp]] = {}
        for as_of, members in groups.items():
            ids = list(dict.fromkeys(i for item in members for i in item.ids))
            scored = self.score_ids(ids, as_of)
            order = scored.index.tolist()
            found = set(order)
            for item in members:
                wanted = [i for i in item.ids if i in found]
                # a request alone in its call (the usual case) takes the scores as they are
                out[id(item)] = (scored if wanted == order else _select(scored, wanted), as_of)
        return [out[id(item)] for item in batch]
