"""The request guard: API key, JSON bodies, size limits."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from churnkit.errors import RequestError
from serving.guard import RequestGuard, check_id_count, check_row_count
from serving.settings import Settings

SETTINGS = Settings.from_env({"CHURNKIT_MODEL": "m", "CHURNKIT_DATA": "d",
                              "CHURNKIT_MAX_IDS": "3", "CHURNKIT_MAX_EVENTS_ROWS": "4"})


async def _ok(request):
    return PlainTextResponse("scored")


class _Client:
    """Calls the guarded app in-process, one request at a time."""

    def __init__(self, app) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://guard") as c:
                return await c.request(method, path, **kwargs)
        return asyncio.run(call())

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.request("GET", path, **kwargs)


def _client(monkeypatch, key: str | None) -> _Client:
    if key is None:
        monkeypatch.delenv("CHURNKIT_API_KEY", raising=False)
    else:
        monkeypatch.setenv("CHURNKIT_API_KEY", key)
    app = Starlette(routes=[Route("/score", _ok, methods=["POST"]),
                            Route("/readyz", _ok), Route("/metrics", _ok)])
    return _Client(RequestGuard(app))


def test_the_key_is_required_on_scoring_calls_only(monkeypatch):
    client = _client(monkeypatch, "k-1")
    r = client.post("/score", json={})
    assert r.status_code == 401 and "X-API-Key" in r.json()["error"]
    assert client.post("/score", json={}, headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.post("/score", json={}, headers={"X-API-Key": "k-1"}).text == "scored"
    assert client.post("/score", json={},
                       headers={"Authorization": "Bearer k-1"}).status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_without_a_key_every_call_passes(monkeypatch):
    assert _client(monkeypatch, None).post("/score", json={}).status_code == 200


def test_a_body_that_is_not_json_is_415(monkeypatch):
    client = _client(monkeypatch, "k-1")
    r = client.post("/score", content=b"a=1",
                    headers={"Content-Type": "text/plain", "X-API-Key": "k-1"})
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    # the key is checked first: a stranger learns nothing about the body rules
    assert client.post("/score", content=b"a=1",
                       headers={"Content-Type": "text/plain"}).status_code == 401


def test_size_limits():
    check_id_count(3, SETTINGS)
    with pytest.raises(RequestError, match="at most 3") as caught:
        check_id_count(4, SETTINGS)
    assert caught.value.status == 413
    assert check_row_count({"customers": [{}], "orders": [{}] * 3, "tickets": None},
                           SETTINGS) == 4
    with pytest.raises(RequestError, match="too many rows: 5") as caught:
        check_row_count({"customers": [{}], "orders": [{}] * 4}, SETTINGS)
    assert caught.value.status == 413
