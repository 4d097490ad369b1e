"""Request merging: concurrent requests share one scoring call and each gets its own rows."""

from __future__ import annotations

import asyncio
import threading

import pandas as pd

from churnkit.errors import RequestError
from serving.merging import RequestMerger

AS_OF = pd.Timestamp("2025-07-01", tz="UTC")


class FakeScorer:
    """Scores ids >= 0 (the others are unknown); records every call."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[list[object], pd.Timestamp]] = []
        self.fail = fail
        self.lock = threading.Lock()

    def __call__(self, ids: list[object], as_of: pd.Timestamp) -> pd.DataFrame:
        with self.lock:
            self.calls.append((list(ids), as_of))
        if self.fail:
            raise ValueError("no such table")
        known = [i for i in ids if i >= 0]
        return pd.DataFrame({"score": [i / 10 for i in known]},
                            index=pd.Index(known, name="customer_id"))


async def _submit_all(merger: RequestMerger, requests: list[tuple[list, pd.Timestamp | None]]):
    return await asyncio.gather(*(merger.submit(ids, as_of) for ids, as_of in requests),
                                return_exceptions=True)


def test_concurrent_requests_share_one_call_and_get_their_own_rows():
    scorer = FakeScorer()
    sizes: list[int] = []
    merger = RequestMerger(scorer, wait_ms=5, queue_timeout_s=10, on_batch=sizes.append)
    answers = asyncio.run(_submit_all(merger, [([3, 1], AS_OF), ([1, -2], AS_OF), ([5], AS_OF)]))
    assert scorer.calls == [([3, 1, -2, 5], AS_OF)] and sizes == [3]
    (a, a_at), (b, b_at), (c, _) = answers
    assert a.index.tolist() == [3, 1] and a["score"].tolist() == [0.3, 0.1]
    assert b.index.tolist() == [1]  # -2 is unknown: left out
    assert c.index.tolist() == [5]
    assert a_at == b_at == AS_OF


def test_one_call_per_as_of_and_without_as_of_the_batch_start():
    scorer = FakeScorer()
    merger = RequestMerger(scorer, wait_ms=5, queue_timeout_s=10)
    before = pd.Timestamp.now(tz="UTC")
    other = pd.Timestamp("2025-01-01", tz="UTC")
    answers = asyncio.run(_submit_all(merger, [([1], AS_OF), ([2], None), ([3], other),
                                               ([4], None)]))
    assert len(scorer.calls) == 3
    (_, first), (_, now_a), (_, third), (_, now_b) = answers
    assert first == AS_OF and third == other
    assert now_a == now_b and before <= now_a <= pd.Timestamp.now(tz="UTC")


def test_a_batch_holds_at_most_max_ids_customers():
    scorer = FakeScorer()
    merger = RequestMerger(scorer, wait_ms=5, queue_timeout_s=10, max_ids=2)
    asyncio.run(_submit_all(merger, [([1], AS_OF), ([2], AS_OF), ([3, 4, 5], AS_OF)]))
    assert [ids for ids, _ in scorer.calls] == [[1, 2], [3, 4, 5]]


def test_a_failing_call_fails_every_request_of_its_batch():
    merger = RequestMerger(FakeScorer(fail=True), wait_ms=5, queue_timeout_s=10)
    answers = asyncio.run(_submit_all(merger, [([1], AS_OF), ([2], AS_OF)]))
    assert all(isinstance(a, ValueError) for a in answers)


def test_requests_queued_too_long_are_shed_with_a_503():
    scorer = FakeScorer()
    sizes: list[int] = []
    merger = RequestMerger(scorer, wait_ms=50, queue_timeout_s=0.01, on_batch=sizes.append)
    answers = asyncio.run(_submit_all(merger, [([1], AS_OF), ([2], AS_OF)]))
    assert all(isinstance(a, RequestError) and a.status == 503 and "overloaded" in str(a)
               for a in answers)
    assert scorer.calls == [] and sizes == []  # no scoring call, so no batch recorded


class ThreadRecordingScorer(FakeScorer):
    """A FakeScorer that records the thread of each call and takes ``seconds`` per call."""

    def __init__(self, seconds: float = 0.0) -> None:
        super().__init__()
        self.seconds = seconds
        self.threads: list[int] = []

    def __call__(self, ids: list[object], as_of: pd.Timestamp) -> pd.DataFrame:
        self.threads.append(threading.get_ident())
        if self.seconds:
            threading.Event().wait(self.seconds)
        return super().__call__(ids, as_of)


def test_a_request_alone_is_scored_on_the_event_loop():
    scorer = ThreadRecordingScorer()
    merger = RequestMerger(scorer, wait_ms=0, queue_timeout_s=10)

    async def alone() -> tuple[int, list]:
        loop_thread = threading.get_ident()
        first = await merger.submit([1], AS_OF)
        second = await merger.submit([2], AS_OF)
        return loop_thread, [first, second]

    loop_thread, answers = asyncio.run(alone())
    assert scorer.threads == [loop_thread, loop_thread]
    assert [a.index.tolist() for a, _ in answers] == [[1], [2]]


def test_under_load_requests_merge_and_several_run_on_a_thread():
    # Requests arrive every 5 ms from outside the loop (as a socket's do) while a call takes
    # 30 ms: those arriving during a call on the loop are read together once it returns and
    # merge; a batch of several runs on a thread while the loop takes the next arrivals.
    scorer = ThreadRecordingScorer(seconds=0.03)
    sizes: list[int] = []
    merger = RequestMerger(scorer, wait_ms=0, queue_timeout_s=10, on_batch=sizes.append)

    async def steady() -> tuple[int, list]:
        loop, loop_thread = asyncio.get_running_loop(), threading.get_ident()
        futures: list = []

        def arrive() -> None:  # the clock of the arrivals is not the loop's
            for i in range(12):
                futures.append(asyncio.run_coroutine_threadsafe(merger.submit([i], AS_OF), loop))
                threading.Event().wait(0.005)

        sender = threading.Thread(target=arrive)
        sender.start()
        await asyncio.to_thread(sender.join)
        return loop_thread, await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))

    loop_thread, answers = asyncio.run(steady())
    assert [a.index.tolist() for a, _ in answers] == [[i] for i in range(12)]
    # a call of one request ran on the loop, a call of several on a thread; some merged
    assert [t == loop_thread for t in scorer.threads] == [n == 1 for n in sizes]
    assert max(sizes) > 1 and sum(sizes) == 12
