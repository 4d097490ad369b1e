"""The served OpenAPI spec tells the truth: schemathesis with every check passes against it, and
what the spec promises (bodies per status, limits, required fields) is what the service does."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from _serving_helpers import API_KEY, AS_OF, MAX_IDS

import churnkit as ck
from serving.openapi import ERRORS, describe, tables_read
from serving.service import ChurnService
from serving.settings import Settings

CONFIG = Path(__file__).with_name("schemathesis.toml")
#: Fuzzed cases per operation and mode; the coverage phase adds its own (over 1,000 in all).
MAX_EXAMPLES = 50
MIN_REQUESTS = 1000


def _settings(**extra: str) -> Settings:
    return Settings.from_env({"CHURNKIT_MODEL": "m", "CHURNKIT_DATA": "d",
                              "CHURNKIT_MAX_IDS": "7", **extra})


def _spec(settings: Settings, tables: tuple[str, ...] = ()) -> dict:
    return describe(ChurnService.openapi_spec.asdict(), settings, tables)


def _resolve(spec: dict, schema: dict) -> dict:
    name = schema["$ref"].rsplit("/", 1)[1]
    return spec["components"]["schemas"][name]


def _error_schema(spec: dict, path: str, status: int) -> dict:
    content = spec["paths"][path]["post"]["responses"][str(status)]["content"]
    return _resolve(spec, content["application/json"]["schema"])


@pytest.mark.parametrize("path", ["/score", "/score_events"])
def test_every_error_status_has_the_body_the_service_sends(path):
    spec = _spec(_settings(CHURNKIT_API_KEY="k"))
    responses = spec["paths"][path]["post"]["responses"]
    assert set(responses) == {"200", *(str(s) for s in ERRORS)}
    assert "404" not in responses  # BentoML's default, never answered by these endpoints
    bad = _error_schema(spec, path, 400)
    assert bad["properties"]["detail"]["type"] == "array"
    field = _resolve(spec, bad["properties"]["detail"]["items"])
    assert {"type", "loc", "msg"} <= set(field["required"])
    contract = _error_schema(spec, path, 422)["properties"]["detail"]
    assert {"type": "array", "items": {"type": "string"}} in contract["anyOf"]
    for status in (401, 413, 415, 503):
        assert _error_schema(spec, path, status)["required"] == ["error"]


def test_the_spec_states_the_configured_limits_and_the_key():
    spec = _spec(_settings())
    ids = spec["components"]["schemas"]["ScoreRequest"]["properties"]["customer_ids"]
    assert ids["maxItems"] == 7 and ids["minItems"] == 1
    assert "401" not in spec["paths"]["/score"]["post"]["responses"]
    assert "security" not in spec["paths"]["/score"]["post"]
    keyed = _spec(_settings(CHURNKIT_API_KEY="k"))
    assert keyed["paths"]["/score"]["post"]["security"] == [{"ApiKey": []}, {"Bearer": []}]
    assert keyed["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"


def test_event_rows_state_the_contract_per_column():
    schemas = _spec(_settings(), ("customers", "orders", "browsing"))["components"]["schemas"]
    events = schemas["ScoreEventsRequest"]
    assert events["required"] == ["customers", "browsing"]
    assert events["properties"]["browsing"]["type"] == "array"
    assert {"type": "null"} in events["properties"]["tickets"]["anyOf"]
    for name, spec in ck.TABLES.items():
        row = schemas[f"{name.capitalize()}Row"]
        assert set(row["required"]) == {c.name for c in spec.columns if not c.optional}, name
        assert row["additionalProperties"] is False
    orders = schemas["OrdersRow"]["properties"]
    assert orders["status"]["enum"] == list(ck.TABLES["orders"].column("status").values)
    assert orders["amount"]["minimum"] == 0 and orders["n_items"]["minimum"] == 1
    assert orders["ordered_at"]["format"] == "date-time"
    assert orders["ordered_at"]["pattern"].startswith("^(1990|")


@pytest.mark.slow
def test_tables_read_are_those_of_the_bundles_feature_families(bundle):
    assert {"customers", "orders", "browsing", "tickets", "contacts"} == set(tables_read(bundle))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"customers": [{}]}, 400, ["customer_id", "signup_at", "missing"]),
        ({"customer_ids": [1], "as_of": 0}, 400, ["as_of", "datetime"]),
        ({"customer_ids": [1], "as_of": "2999-01-01T00:00:00Z"}, 422, ["in the future"]),
        ({"customer_ids": [1.0, "1"], "as_of": AS_OF}, 200, ['"not_found":[]']),
    ],
)
def test_requests_get_what_the_spec_promises(service, body, status, words):
    path = "/score_events" if "customers" in body else "/score"
    with service.client() as client:
        r = client.post(path, json=body)
    assert r.status_code == status, r.text
    for word in words:
        assert word in r.text


@pytest.mark.slow
def test_the_served_spec_requires_the_tables_the_model_reads(service, bundle):
    with service.client(key=None) as client:
        spec = client.get("/docs.json").json()
    events = spec["components"]["schemas"]["ScoreEventsRequest"]
    assert set(events["required"]) == {"customers"} | (set(tables_read(bundle)) - {"orders"})
    ids = spec["components"]["schemas"]["ScoreRequest"]["properties"]["customer_ids"]
    assert ids["maxItems"] == MAX_IDS


@pytest.mark.slow
def test_schemathesis_with_every_check_passes(service, tmp_path):
    cassette = tmp_path / "requests.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
         f"{service.url}/docs.json", "--checks", "all", "--max-examples", str(MAX_EXAMPLES),
         "--generation-deterministic", "--workers", "2", "-H", f"X-API-Key: {API_KEY}",
         "--request-timeout", "60", "--report", "vcr", "--report-vcr-path", str(cassette)],
        capture_output=True, text=True, cwd=tmp_path, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    interactions = yaml.safe_load(cassette.read_text())["http_interactions"]
    assert len(interactions) >= MIN_REQUESTS
    answered = Counter((i["request"]["uri"].removeprefix(service.url),
                        i["generation"]["mode"], i["response"]["status"]["code"][0])
                       for i in interactions)
    assert not [key for key in answered if key[2] == "5"]
    # the spec is tight: schema-valid bodies are mostly scored, not refused as semantically wrong
    for path in ("/score", "/score_events"):
        scored = answered[(path, "positive", "2")]
        assert scored >= 25 and scored >= 4 * answered[(path, "positive", "4")], answered
