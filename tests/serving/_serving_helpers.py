"""Helpers for the service tests: constants and running ``churnkit serve`` as a process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd

AS_OF = "2025-07-01T00:00:00Z"
API_KEY = "test-key-7"
MAX_IDS = 50
CREATED = pd.Timestamp("2025-07-02T08:00:00Z")
STARTUP_TIMEOUT = 180.0


@dataclass
class Running:
    url: str
    log: Path
    process: subprocess.Popen

    def client(self, key: str | None = API_KEY) -> httpx.Client:
        headers = {"X-API-Key": key} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(tmp: Path, env: dict[str, str], args: list[str]) -> Running:
    """``churnkit serve ARGS`` in its own process group; logs go to ``tmp/service.log``."""
    port = free_port()
    log = tmp / "service.log"
    full_env = {**os.environ, "CHURNKIT_LOG_LEVEL": "INFO", "OMP_NUM_THREADS": "1", **env}
    process = subprocess.Popen(
        [sys.executable, "-m", "churnkit", "serve", *args, "--port", str(port)],
        env=full_env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    return Running(f"http://127.0.0.1:{port}", log, process)


def wait_until(running: Running, path: str, status: int = 200) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(f"service exited: {running.log.read_text()[-3000:]}")
        try:
            if httpx.get(running.url + path, timeout=2).status_code == status:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"service not at {path}={status}: {running.log.read_text()[-3000:]}")


def wait_for_workers(running: Running, workers: int) -> None:
    """Wait until ``workers`` worker processes logged that they are ready (each loads the
    bundle and the store itself; one ready worker answers /readyz while another still loads)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        ready = {line.split("[churnkit ", 1)[1].split("]", 1)[0]
                 for line in running.log.read_text(errors="replace").splitlines()
                 if "churnkit service ready" in line and "[churnkit " in line}
        if len(ready) >= workers:
            return
        if running.process.poll() is not None:
            raise RuntimeError(f"service exited: {running.log.read_text()[-3000:]}")
        time.sleep(0.2)
    raise RuntimeError(f"{workers} workers not all ready: {running.log.read_text()[-3000:]}")


def start_ready(tmp: Path, env: dict[str, str], args: list[str], path: str = "/readyz",
                status: int = 200, attempts: int = 3) -> Running:
    """Start the service and wait for ``path`` to answer ``status``, on a new free port when the
    one picked was taken meanwhile (another test process may grab it between pick and bind)."""
    for attempt in range(attempts):
        running = start_service(tmp, env, args)
        try:
            wait_until(running, path, status)
            if path == "/readyz" and status == 200:
                # /readyz answers for the worker that took the request: wait for every one
                wait_for_workers(running, int(env.get("CHURNKIT_WORKERS", "1")))
            return running
        except RuntimeError:
            stop_service(running)
            if "Address already in use" not in running.log.read_text() or \
                    attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def stop_service(running: Running) -> None:
    if running.process.poll() is None:
        os.killpg(running.process.pid, signal.SIGTERM)
        try:
            running.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(running.process.pid, signal.SIGKILL)
            running.process.wait()
