"""Forked worker processes: every task once, errors and deaths reach the parent."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading

import pytest

from churnkit.jobs.workers import can_fork, run_tasks

pytestmark = pytest.mark.skipif(not can_fork(), reason="this platform cannot fork")


def _collect(tasks, work, workers):
    got: dict = {}
    run_tasks(tasks, work, workers=workers, on_result=lambda t, r: got.__setitem__(t, r))
    return got


def test_every_task_runs_once_in_worker_processes():
    got = _collect(range(12), lambda t: (t * t, os.getpid()), workers=3)
    assert {t: r[0] for t, r in got.items()} == {t: t * t for t in range(12)}
    pids = {r[1] for r in got.values()}
    assert os.getpid() not in pids and 1 <= len(pids) <= 3


def test_one_worker_runs_in_this_process_in_order():
    order = []
    run_tasks([3, 1, 2], lambda t: os.getpid(), workers=1,
              on_result=lambda t, pid: order.append((t, pid)))
    assert order == [(3, os.getpid()), (1, os.getpid()), (2, os.getpid())]


def test_a_workers_exception_is_raised_in_the_parent():
    def work(t):
        if t == 4:
            raise KeyError("task four")
        return t

    with pytest.raises(KeyError, match="task four"):
        run_tasks(range(8), work, workers=2)


def test_an_exception_that_does_not_pickle_arrives_as_its_traceback():
    class Local(Exception):  # a class defined in a function cannot be pickled
        pass

    def work(t):
        raise Local(f"unpicklable {t}")

    # both tasks fail; whichever worker reports first is the one raised
    with pytest.raises(RuntimeError, match=r"task [01] failed in a worker process") as info:
        run_tasks([0, 1], work, workers=2)
    assert "Traceback" in str(info.value) and "unpicklable" in str(info.value)


def test_a_killed_worker_is_reported_with_its_exit_code():
    def work(t):
        if t == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return t

    with pytest.raises(RuntimeError, match="died with exit code -9"):
        run_tasks(range(4), work, workers=2)


def test_an_error_in_on_result_stops_the_workers():
    started = threading.Event()

    def stop(task, result):
        started.set()
        raise InterruptedError("stop here")

    with pytest.raises(InterruptedError):
        run_tasks(range(50), lambda t: t, workers=2, on_result=stop)
    assert started.is_set()
    assert multiprocessing.active_children() == []  # terminated and reaped
