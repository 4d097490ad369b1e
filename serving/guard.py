"""What a request must pass before it is scored: the API key and the body's media type (an ASGI
middleware in front of the endpoints), and the size limits of each endpoint. A refused request
gets :func:`error_response`: a JSON body ``{"error": ..., "detail": [...]}`` that says what to
fix."""

from __future__ import annotations

import hmac
import os

from starlette.responses import JSONResponse

from churnkit.errors import RequestError
from serving.settings import Settings

#: Paths served without the API key: probes, metrics and the API description.
OPEN_PATHS = ("/healthz", "/livez", "/readyz", "/metrics", "/schema.json", "/docs.json", "/docs",
              "/static_content")


def error_response(status: int, message: str, detail: list | None = None) -> JSONResponse:
    """The answer to a refused request: HTTP ``status`` with ``{"error": message}`` (and
    ``"detail"`` when given, e.g. every contract problem)."""
    body: dict[str, object] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status)


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
        if self.key is not None and not self._has_key(headers):
            response = error_response(401, "missing or wrong API key: send it in the X-API-Key "
                                           "header (or Authorization: Bearer <key>)")
            await response(scope, receive, send)
            return
        media = headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if scope.get("method") == "POST" and media not in ("application/json", ""):
            response = error_response(415, f"unsupported Content-Type {media!r}: send the "
                                           "request body as JSON with Content-Type: "
                                           "application/json")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _has_key(self, headers: dict[str, str]) -> bool:
        assert self.key is not None
        given = headers.get("x-api-key")
        auth = headers.get("authorization", "")
        if given is None and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return given is not None and hmac.compare_digest(given.encode(), self.key.encode())


def check_id_count(count: int, settings: Settings) -> None:
    """Refuse (413) a ``/score`` call with more than ``settings.max_ids`` ids."""
    if count > settings.max_ids:
        raise RequestError(f"too many customer_ids: {count} given, at most "
                           f"{settings.max_ids} per call (CHURNKIT_MAX_IDS); split the list",
                           status=413)


def check_row_count(rows: dict[str, list | None], settings: Settings) -> int:
    """The number of rows over all tables of a ``/score_events`` body; refuses (413) more than
    ``settings.max_events_rows``."""
    total = sum(len(r) for r in rows.values() if r is not None)
    if total > settings.max_events_rows:
        raise RequestError(f"too many rows: {total} given, at most "
                           f"{settings.max_events_rows} per call (CHURNKIT_MAX_EVENTS_ROWS)",
                           status=413)
    return total
