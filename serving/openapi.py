"""The OpenAPI description the service serves at ``/docs.json``: BentoML's, made to tell the truth.

BentoML 1.4 builds the spec from the endpoints' signatures, declares 400/404/500 bodies that are
not the ones sent (``detail`` as a string) and cannot know the service's settings. :func:`describe`
rewrites it in one place, and :class:`ServedSpec` (an ASGI middleware) answers ``/docs.json``
with the result: OpenAPI 3.1, the request and response bodies as JSON Schema straight from the
pydantic models of :mod:`serving.schemas`, one error body per status the service really returns,
``maxItems`` of ``customer_ids`` at the configured maximum, the optional tables of
``/score_events`` that the loaded bundle's features read marked required, and the API key as a
security scheme when one is set.
"""

from __future__ import annotations

from typing import Any

import bentoml
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

import churnkit as ck
from serving.schemas import ScoreEventsRequest, ScoreRequest, ScoreResponse
from serving.settings import Settings

_REF = "#/components/schemas/{model}"


class FieldError(BaseModel):
    """One way the body does not fit the request schema (pydantic's error, as BentoML sends it)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="Error kind, e.g. missing, int_type, extra_forbidden.")
    loc: list[str | int] = Field(description="Where: field names and list positions.")
    msg: str = Field(description="What was expected.")
    url: str | None = Field(default=None, description="pydantic's page on this error kind.")


class SchemaErrorBody(BaseModel):
    """400: the body is not JSON or does not fit the request schema."""

    error: str = Field(description="How many errors, in one line.")
    detail: list[FieldError] = Field(description="Every error, with the field it is about.")


class ContractErrorBody(BaseModel):
    """422: the body fits the schema but breaks a rule it cannot state (``as_of`` in the
    future; rows against the data contract's rules across rows or tables)."""

    error: str = Field(description="What is wrong and what to send instead.")
    detail: list[str] | None = Field(
        default=None, description="Every data-contract problem: table.column, rows, expected.")


class ErrorBody(BaseModel):
    """401, 413, 415, 500, 503: one message saying what to fix (or to retry)."""

    error: str = Field(description="What is wrong and what to send instead.")


#: status -> (description, body model) of the errors both scoring endpoints answer with.
ERRORS: dict[int, tuple[str, type[BaseModel]]] = {
    400: ("Not JSON, or does not fit the request schema", SchemaErrorBody),
    401: ("Missing or wrong API key", ErrorBody),
    413: ("Too many customer ids or rows for one call", ErrorBody),
    415: ("The body is not sent as application/json", ErrorBody),
    422: ("Fits the schema but cannot be scored as sent", ContractErrorBody),
    500: ("A fault of the service (never caused by the request)", ErrorBody),
    503: ("Still loading, the event store cannot be read, or overloaded; retry", ErrorBody),
}

_ENDPOINTS: dict[str, type[BaseModel]] = {"/score": ScoreRequest,
                                          "/score_events": ScoreEventsRequest}


def _schema_of(model: type[BaseModel], components: dict[str, Any], mode: str) -> dict[str, Any]:
    """``model``'s JSON Schema, its nested models moved into ``components``."""
    schema = model.model_json_schema(ref_template=_REF, mode=mode)  # type: ignore[arg-type]
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": _REF.format(model=model.__name__)}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def tables_read(bundle: ck.ModelBundle) -> tuple[str, ...]:
    """The contract tables the bundle's feature families need (a ``/score_events`` body
    without one of them cannot be scored)."""
    needed = [table for family in ck.features.families()
              if family.name in bundle.feature_spec.families
              for table in family.required_tables]
    return tuple(dict.fromkeys(needed))


def _require(schema: dict[str, Any], tables: tuple[str, ...]) -> None:
    """Mark these tables of the ``/score_events`` schema required and not ``null`` (those that
    may be left out: ``customers`` is always required, ``orders`` defaults to no rows)."""
    for name in tables:
        prop = schema["properties"][name]
        if "anyOf" not in prop:
            continue
        prop.update(next(s for s in prop.pop("anyOf") if s.get("type") != "null"))
        prop.pop("default")
        prop["description"] += " Required here: the service's model reads this table."
        schema["required"].append(name)


def describe(spec: dict[str, Any], settings: Settings,
             tables: tuple[str, ...] = ()) -> dict[str, Any]:
    """The served spec: BentoML's ``spec`` (an ``asdict()``, changed in place) with the scoring
    endpoints' bodies, error bodies, limits and security as the service enforces them, and
    ``tables`` (see :func:`tables_read`) required in ``/score_events`` bodies."""
    spec["openapi"] = "3.1.0"
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in ("InvalidArgument", "NotFound", "InternalServerError"):
        components.pop(name, None)
    errors = {status: _schema_of(model, components, "serialization")
              for status, (_, model) in ERRORS.items()}
    answer = _schema_of(ScoreResponse, components, "serialization")
    for path, request in _ENDPOINTS.items():
        operation = spec["paths"][path]["post"]
        components.pop(f"{request.__name__}IODescriptor", None)
        operation["requestBody"] = {"required": True,
                                    "content": _json(_schema_of(request, components,
                                                                "validation"))}
        responses = {"200": {"description": "Scored", "content": _json(answer)}}
        for status, (text, _) in ERRORS.items():
            if status != 401 or settings.api_key is not None:
                responses[str(status)] = {"description": text, "content": _json(errors[status])}
        operation["responses"] = responses
        if settings.api_key is not None:
            operation["security"] = [{"ApiKey": []}, {"Bearer": []}]
    components.pop("ScoreResponseIODescriptor", None)
    ids = components["ScoreRequest"]["properties"]["customer_ids"]
    ids["maxItems"] = settings.max_ids
    _require(components["ScoreEventsRequest"], tables)
    if settings.api_key is not None:
        spec["components"]["securitySchemes"] = {
            "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "Bearer": {"type": "http", "scheme": "bearer"},
        }
    return spec


class ServedSpec:
    """ASGI middleware answering ``GET /docs.json`` with :func:`describe` of the service's spec;
    every other request goes on to the service. Built per request until the bundle is loaded
    (its tables are known only then), then kept."""

    def __init__(self, app, service) -> None:
        self.app = app
        self.service = service
        self.body: dict[str, Any] | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != "/docs.json":
            await self.app(scope, receive, send)
            return
        body = self.body
        if body is None:
            running = bentoml.get_current_service()
            bundle = running.bundle
            body = describe(self.service.openapi_spec.asdict(), running.settings,
                            () if bundle is None else tables_read(bundle))
            if bundle is not None:
                self.body = body
        await JSONResponse(body)(scope, receive, send)
