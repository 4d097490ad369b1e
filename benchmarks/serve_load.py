"""Load generation and process watching for ``benchmarks/serve.py``.

Open-loop load (request ``k`` is due at ``start + k / rate`` s, whatever the answers' speed) of
prepared JSON bodies over aiohttp; each latency runs from the moment the request was due, so a
client that falls behind its schedule shows in the figures (and in ``client_lag_p99_ms``) instead
of hiding the wait. Also: the service processes (``churnkit serve`` and the floor) started and
stopped as process groups, and the resident memory of a process tree.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

AS_OF = "2025-07-01T00:00:00Z"
#: An answer with at least one scored customer (compact or spaced JSON).
SCORED = re.compile(rb'"customers"\s*:\s*\[\s*\{')


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def score_bodies(ids: Sequence[int]) -> list[bytes]:
    """One ``/score`` body per customer: that id alone, as of :data:`AS_OF`."""
    return [json.dumps({"customer_ids": [int(i)], "as_of": AS_OF}).encode() for i in ids]


def events_bodies(tables, ids: Sequence[int], table_names: Sequence[str]) -> list[bytes]:
    """One ``/score_events`` body per customer: all its rows of every table of the shop
    (timestamps as ISO strings, as a caller's JSON has them; ``null`` for a table the shop
    lacks), as of :data:`AS_OF`."""
    mine = tables.for_customers(list(ids))
    bodies: dict[int, dict] = {int(i): {"as_of": AS_OF} for i in ids}
    for name in table_names:
        frame = mine.get(name)
        for body in bodies.values():
            body[name] = None if frame is None else []
        if frame is None:
            continue
        records = json.loads(frame.to_json(orient="records", date_format="iso", date_unit="us"))
        for cid, record in zip(frame["customer_id"].tolist(), records, strict=True):
            bodies[int(cid)][name].append(record)
    return [json.dumps(bodies[int(i)]).encode() for i in ids]


async def drive(url: str, bodies: Sequence[bytes], rate: float, duration: float,
                timeout: float = 30.0, within_ms: float = 1000.0) -> dict:
    """Open loop: one POST of a random body every 1/rate s for ``duration`` s.

    Latencies in ms from the moment each request was due; an answer counts as ok when its
    status is 200 and it holds a scored customer. ``within_share`` is the share of the requests
    sent that were answered ok within ``within_ms``; ``server_errors`` counts 5xx answers and
    connections that failed (refused, reset), not client timeouts (``timeout`` s)."""
    import aiohttp

    latencies: list[float] = []
    lags: list[float] = []
    errors: dict[str, int] = {}
    server_errors = 0
    rng = random.Random(int(rate * 1000 + duration))
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=4000)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async def one(body: bytes, due: float) -> None:
            nonlocal server_errors
            lags.append(1000 * (time.perf_counter() - due))
            try:
                async with session.post(url, data=body, headers=headers) as r:
                    answer = await r.read()
                    if r.status != 200 or not SCORED.search(answer):
                        errors[str(r.status)] = errors.get(str(r.status), 0) + 1
                        server_errors += r.status >= 500
                        return
            except Exception as exc:  # timeouts, refused or reset connections
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                server_errors += not isinstance(exc, asyncio.TimeoutError)
                return
            latencies.append(1000 * (time.perf_counter() - due))

        tasks = []
        cpu = time.process_time()
        start = time.perf_counter()
        n = int(rate * duration)
        for k in range(n):
            due = start + k / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(rng.choice(bodies), due)))
        sent_in = time.perf_counter() - start
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
    return {
        "offered_rps": rate, "sent": n, "ok": len(latencies), "errors": errors,
        "server_errors": server_errors,
        "within_share": sum(v <= within_ms for v in latencies) / max(n, 1),
        "achieved_rps": len(latencies) / elapsed, "send_seconds": sent_in,
        "client_lag_p99_ms": pct(lags, 99), "client_cpu_ms_per_request": 1000 * cpu / max(n, 1),
        "p50_ms": pct(latencies, 50), "p90_ms": pct(latencies, 90),
        "p99_ms": pct(latencies, 99), "max_ms": max(latencies, default=float("nan")),
    }


def tree_rss(pid: int) -> int:
    """Resident memory (bytes) of a process and all its descendants, summed (pages shared
    between them counted once per process)."""
    try:
        import psutil
    except ImportError:
        return _proc_tree_rss(pid)
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def _proc_tree_rss(pid: int) -> int:
    """:func:`tree_rss` from ``/proc`` (``PPid`` and ``VmRSS`` of ``/proc/PID/status``)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parents[int(entry.name)] = int(fields.get("PPid", "0"))
        rss[int(entry.name)] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    tree, grew = {pid}, True
    while grew:
        more = {p for p, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(rss.get(p, 0) for p in tree)


async def soak(url: str, bodies: Sequence[bytes], rate: float, seconds: float, pid: int,
               every: float = 10.0) -> dict:
    """:func:`drive` for ``seconds`` while sampling :func:`tree_rss` of ``pid`` every ``every``
    s (the first sample as the load starts, the last once every answer is in)."""
    samples: list[tuple[float, int]] = []
    start = time.perf_counter()

    async def sample() -> None:
        while True:
            samples.append((time.perf_counter() - start, tree_rss(pid)))
            await asyncio.sleep(every)

    sampler = asyncio.create_task(sample())
    result = await drive(url, bodies, rate, seconds)
    sampler.cancel()
    samples.append((time.perf_counter() - start, tree_rss(pid)))
    first, last = samples[0][1], samples[-1][1]
    result.update({
        "rss_start_mb": first / 2**20, "rss_end_mb": last / 2**20,
        "rss_max_mb": max(s for _, s in samples) / 2**20,
        "rss_growth_pct": 100 * (last - first) / first if first else float("nan"),
        "rss_samples": [(round(t, 1), round(s / 2**20, 1)) for t, s in samples],
    })
    return result


def settle(url: str, body: bytes, limit: float = 120.0) -> None:
    """Wait until the service answers one request within 5 s (its queue has drained)."""
    import httpx

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        t = time.perf_counter()
        try:
            r = httpx.post(url, content=body, headers={"Content-Type": "application/json"},
                           timeout=limit)
            if r.status_code == 200 and time.perf_counter() - t < 5:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)


def wait_idle(pids: Sequence[int], limit: float = 300.0, cores: float = 0.1,
              window: float = 1.0) -> float:
    """Until the process trees of ``pids`` together use less than ``cores`` cores over
    ``window`` s (the work queued by an earlier run is done, including requests the client
    gave up on), at most ``limit`` s; the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        before = sum(service_cpu(pid) for pid in pids)
        time.sleep(window)
        if sum(service_cpu(pid) for pid in pids) - before < cores * window:
            break
    else:
        print(f"the services were still busy after {limit:g} s; measuring anyway", flush=True)
    return time.monotonic() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen:
    """``argv`` in its own process group in ``cwd``, output to ``log``."""
    return subprocess.Popen(argv, env=env, cwd=cwd, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def code_root() -> dict:
    """The checkout this process imports ``churnkit`` and ``serving`` from (the services are
    started in it, so that ``python -m`` imports the same code), and its commit."""
    import serving

    root = Path(serving.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "churnkit", "serving"], capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", ""
    return {"path": str(root), "commit": commit + (" (modified)" if dirty else "")}


def wait_ready(url: str, process: subprocess.Popen, log: Path, limit: float = 300.0) -> None:
    """Until ``url/readyz`` answers 200; stops the run if the process exits or ``limit`` s
    pass."""
    import httpx

    deadline = time.monotonic() + limit
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit(f"{url} did not start; see {log}")
        time.sleep(0.5)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process group, SIGKILL after 30 s."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def service_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its descendants (BentoML workers)."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def shop_facts(data: Path, customers: pd.DataFrame) -> dict:
    """Customers, rows per table (from the Parquet footers) and MB on disk of a shop."""
    import pyarrow.parquet as pq

    rows, size = {}, 0
    for path in sorted(data.glob("*.parquet")):
        rows[path.stem] = pq.ParquetFile(path).metadata.num_rows
        size += path.stat().st_size
    return {"customers": len(customers), "rows": rows, "total_rows": sum(rows.values()),
            "parquet_mb": round(size / 2**20, 1)}


#: What :func:`bare_server` answers to every request.
BARE_ANSWER = b'{"customers": [{"customer_id": 0}], "not_found": []}'


async def bare_server(port: int) -> None:
    """A bare asyncio HTTP/1.1 server (keep-alive, ``Content-Length`` bodies) on 127.0.0.1
    that answers :data:`BARE_ANSWER` to every request: nearly free, so driving it shows what
    the load generator alone can send and receive."""
    response = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                b"\r\n%s" % (len(BARE_ANSWER), BARE_ANSWER))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                for line in head.lower().split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        await reader.readexactly(int(line.split(b":", 1)[1]))
                writer.write(response)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":  # python benchmarks/serve_load.py bare-server PORT
    import sys

    if sys.argv[1:2] != ["bare-server"] or len(sys.argv) != 3:
        raise SystemExit("usage: serve_load.py bare-server PORT")
    asyncio.run(bare_server(int(sys.argv[2])))
