"""Run independent tasks in forked worker processes, results back in the parent as they finish.

The nightly job scores its shards this way: the parent loads and validates the tables once,
then forks; each child reads them copy-on-write (no second copy of the data, no pickling), scores
the shards it takes from a shared queue and writes each part itself. Pandas, the policy and the
reason texts hold the GIL, so processes, not threads, are what use a second core.

A child uses one thread for OpenMP (LightGBM) and BLAS: N workers on N cores, not N x N
threads. A child that raises stops the run: the parent terminates the others and re-raises the
child's exception (or a ``RuntimeError`` carrying its traceback when it cannot be pickled). A
child whose parent dies (SIGKILL included) is killed too, so no orphan keeps writing.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import queue
import signal
import sys
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from threadpoolctl import threadpool_limits

#: How often the parent checks that its workers are alive while it waits for a result (s).
POLL_SECONDS = 0.5


def can_fork() -> bool:
    """Whether this platform forks (Linux, macOS); elsewhere tasks run in this process."""
    return "fork" in mp.get_all_start_methods()


def default_workers() -> int:
    """One worker per core this process may use."""
    with contextlib.suppress(AttributeError):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def run_tasks(tasks: Iterable[Any], work: Callable[[Any], Any], *, workers: int,
              on_result: Callable[[Any, Any], None] | None = None) -> None:
    """Call ``work(task)`` for every task, in ``workers`` forked processes.

    ``on_result(task, result)`` runs in the parent as each task finishes (any order); an
    exception it raises stops the workers and propagates. With one worker, one task or no
    ``fork``, everything runs here, in order. ``work``'s results must pickle.
    """
    tasks = list(tasks)
    workers = min(workers, len(tasks))
    if workers <= 1 or not can_fork():
        for task in tasks:
            result = work(task)
            if on_result is not None:
                on_result(task, result)
        return

    ctx = mp.get_context("fork")
    todo: mp.Queue = ctx.Queue()
    done: mp.Queue = ctx.Queue()
    for task in tasks:
        todo.put(task)
    for _ in range(workers):
        todo.put(None)
    sys.stdout.flush()
    sys.stderr.flush()
    procs = [ctx.Process(target=_child, args=(work, todo, done), daemon=True,
                         name=f"churnkit-worker-{k}") for k in range(workers)]
    for proc in procs:
        proc.start()
    try:
        remaining = len(tasks)
        while remaining:
            try:
                kind, task, payload = done.get(timeout=POLL_SECONDS)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(
                        f"worker process {dead[0].name} died with exit code {dead[0].exitcode} "
                        "(killed for memory? try a smaller --shard-size or fewer --workers)"
                    ) from None
                continue
            if kind == "error":
                _reraise(task, payload)
            remaining -= 1
            if on_result is not None:
                on_result(task, payload)
        for proc in procs:
            proc.join()
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join()
        todo.close()
        done.close()


def _reraise(task: Any, payload: tuple[BaseException | None, str]) -> None:
    exc, text = payload
    if exc is not None:
        raise exc from RuntimeError(f"in the worker, task {task!r}:\n{text}")
    raise RuntimeError(f"task {task!r} failed in a worker process:\n{text}")


def _child(work: Callable[[Any], Any], todo: mp.Queue, done: mp.Queue) -> None:
    _die_with_parent()
    _one_thread_each()
    while (task := todo.get()) is not None:
        try:
            result = work(task)
        except BaseException as exc:  # handed to the parent, which re-raises it
            text = traceback.format_exc()
            try:  # the queue pickles in a background thread: check here that it can
                pickle.loads(pickle.dumps(exc))
            except Exception:
                exc = None
            done.put(("error", task, (exc, text)))
            done.close()
            done.join_thread()
            os._exit(1)
        done.put(("ok", task, result))
    done.close()
    done.join_thread()


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies (elsewhere: nothing)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)


def _one_thread_each() -> None:
    """One OpenMP / BLAS thread (LightGBM, NumPy) per worker."""
    threadpool_limits(1)
