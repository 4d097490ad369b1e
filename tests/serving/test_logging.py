"""The service's log handler carries the lines of every serving module, the event store's too."""

from __future__ import annotations

import io
import logging

from serving import service


def test_the_service_log_carries_the_store_lines(monkeypatch):
    monkeypatch.delenv("CHURNKIT_LOG_LEVEL", raising=False)
    package = logging.getLogger("serving")
    saved = package.handlers[:], package.level, package.propagate
    try:
        package.handlers.clear()
        service._setup_logging()
        stream = io.StringIO()
        package.handlers[-1].setStream(stream)
        logging.getLogger("serving.store").info("event store: held in memory")
        logging.getLogger("serving.service").info("score ids=1 found=1")
        lines = stream.getvalue().splitlines()
        assert len(lines) == 2 and all("[INFO] [churnkit " in line for line in lines)
        assert "event store: held in memory" in lines[0]
    finally:
        package.handlers[:] = saved[0]
        package.setLevel(saved[1])
        package.propagate = saved[2]
