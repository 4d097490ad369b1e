"""The PostgreSQL server of the tests marked ``postgres``: ``CHURNKIT_TEST_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``), and a skip mark that says why when it cannot be
used (psycopg missing, or the server not reachable)."""

from __future__ import annotations

import functools
import os
from urllib.parse import urlsplit

import pytest

PG_URL = os.environ.get("CHURNKIT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@functools.cache
def pg_unavailable() -> str | None:
    """Why the tests cannot use :data:`PG_URL` (None when a connection opens within 3 s).

    The message names the host and port only, never a password the URL may carry."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'churnkit[postgres]')"
    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        parts = urlsplit(PG_URL)
        where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
        return f"PostgreSQL not reachable at {where}: {' '.join(str(exc).split())[:160]}"
    return None


def requires_pg() -> pytest.MarkDecorator:
    """Skip, saying why, unless :data:`PG_URL` accepts a connection (checked once per process)."""
    reason = pg_unavailable()
    return pytest.mark.skipif(reason is not None, reason=reason or "")
