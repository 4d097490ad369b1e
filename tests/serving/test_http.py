"""The scoring service over HTTP, against a running ``churnkit serve`` process."""

from __future__ import annotations

import json
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pandas as pd
import psutil
import pytest
from _serving_helpers import API_KEY, AS_OF, MAX_IDS, start_ready, stop_service

import churnkit as ck
from churnkit.io import atomic_file

pytestmark = pytest.mark.slow


def expected_rows(scored: pd.DataFrame) -> dict:
    return {cid: row for cid, row in zip(scored.index.tolist(), scored.to_dict("records"),
                                         strict=True)}


def assert_matches(got: dict, want: dict) -> None:
    """A response row equals the ck.score row: numbers, labels, drivers."""
    assert got["churn_probability"] == pytest.approx(want["churn_probability"], abs=1e-12)
    assert got["risk_percentile"] == pytest.approx(want["risk_percentile"])
    for name in ("risk_band", "segment", "activity"):
        assert got[name] == want[name], name
    assert [d["feature"] for d in got["top_drivers"]] == \
        [d["feature"] for d in want["top_drivers"]]
    for g, w in zip(got["top_drivers"], want["top_drivers"], strict=True):
        assert g["contribution"] == pytest.approx(w["contribution"])
        if isinstance(w["value"], float):
            assert g["value"] == pytest.approx(w["value"])
        else:
            assert g["value"] == w["value"]
    # optional stages: filled exactly when the bundle's scoring gives the column
    for name in ("action", "channel", "contact_hour_local", "expected_value"):
        if name in want:
            value = want[name]
            if isinstance(value, float) and math.isnan(value):
                value = None
            assert got[name] == value, name
        else:
            assert got[name] is None, name


def test_scores_equal_ck_score_for_the_same_customers_and_as_of(service, shop, bundle):
    tables, _ = shop
    full = ck.score(tables, as_of=AS_OF, bundle=bundle)
    ids = [int(i) for i in full.index[[3, 10, 200, 900]]]
    with service.client() as client:
        r = client.post("/score", json={"customer_ids": ids, "as_of": AS_OF})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == bundle.metadata.name
    assert body["model_version"] == bundle.metadata.version
    assert pd.Timestamp(body["as_of"]) == pd.Timestamp(AS_OF)
    assert [c["customer_id"] for c in body["customers"]] == ids  # in the order asked
    assert body["not_found"] == []
    want = expected_rows(full.loc[ids])
    for row in body["customers"]:
        assert_matches(row, want[row["customer_id"]])


def test_ids_as_strings_and_unknown_ids(service, shop, bundle):
    tables, _ = shop
    known = int(tables.customers["customer_id"].iloc[5])
    # a customer who signs up after as_of does not exist yet at as_of
    late = tables.customers.loc[tables.customers["signup_at"] >= pd.Timestamp("2025-06-01",
                                                                               tz="UTC")]
    early_as_of = "2025-06-01T00:00:00Z"
    late_id = int(late["customer_id"].iloc[0])
    with service.client() as client:
        r = client.post("/score", json={"customer_ids": [str(known), 10**9, "nobody", late_id],
                                        "as_of": early_as_of})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [c["customer_id"] for c in body["customers"]] == [known]
    assert body["not_found"] == [10**9, late_id, "nobody"]
    want = ck.score(tables, as_of=early_as_of, bundle=bundle, customer_ids=[known])
    assert_matches(body["customers"][0], expected_rows(want)[known])


def test_all_ids_unknown_is_an_empty_answer_not_an_error(service):
    with service.client() as client:
        r = client.post("/score", json={"customer_ids": [0, 10**12], "as_of": AS_OF})
    assert r.status_code == 200, r.text
    assert r.json()["customers"] == [] and r.json()["not_found"] == [0, 10**12]


def test_without_as_of_scores_now(service, shop):
    tables, _ = shop
    cid = int(tables.customers["customer_id"].iloc[0])
    before = pd.Timestamp.now(tz="UTC")
    with service.client() as client:
        r = client.post("/score", json={"customer_ids": [cid]})
    assert r.status_code == 200, r.text
    scored_at = pd.Timestamp(r.json()["as_of"])
    assert before - pd.Timedelta(seconds=1) <= scored_at <= pd.Timestamp.now(tz="UTC")


def test_concurrent_requests_are_merged_and_each_gets_its_own_rows(service, shop, bundle):
    tables, _ = shop
    ids = [int(i) for i in tables.customers["customer_id"].iloc[100:124]]
    full = expected_rows(ck.score(tables, as_of=AS_OF, bundle=bundle, customer_ids=ids))

    def one(cid):
        with service.client() as client:
            return client.post("/score", json={"customer_ids": [cid], "as_of": AS_OF})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, ids))
    for cid, r in zip(ids, answers, strict=True):
        assert r.status_code == 200, r.text
        (row,) = r.json()["customers"]
        assert row["customer_id"] == cid
        assert_matches(row, full[cid])
    with service.client() as client:
        metrics = client.get("/metrics").text
    counts = [float(line.split()[-1]) for line in metrics.splitlines()
              if line.startswith("churnkit_batch_requests_count")]
    total = [float(line.split()[-1]) for line in metrics.splitlines()
             if line.startswith("churnkit_batch_requests_sum")]
    assert counts and total and counts[0] < total[0], "some requests shared a scoring call"


def test_two_worker_processes_share_the_requests(service, shop, bundle):
    workers = [p for p in psutil.Process(service.process.pid).children(recursive=True)
               if "--worker-id" in p.cmdline()]
    assert len(workers) == 2, [p.cmdline() for p in workers]
    tables, _ = shop
    ids = [int(i) for i in tables.customers["customer_id"].iloc[300:360]]
    full = expected_rows(ck.score(tables, as_of=AS_OF, bundle=bundle, customer_ids=ids))

    def one(cid):
        with service.client() as client:  # a new connection each: spread over the workers
            return client.post("/score", json={"customer_ids": [cid], "as_of": AS_OF})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, ids))
    for cid, r in zip(ids, answers, strict=True):
        assert r.status_code == 200, r.text
        assert_matches(r.json()["customers"][0], full[cid])
    answered_by = {int(pid) for pid, cid in re.findall(r"\[churnkit (\d+)\] score ids=(\d+) ",
                                                      service.log.read_text())
                   if int(cid) in ids}
    assert answered_by == {p.pid for p in workers}, answered_by


def _with_complaints(tickets: pd.DataFrame, ids: list[int]) -> pd.DataFrame:
    """``tickets`` plus three unresolved delivery complaints per customer, filed 30 days,
    10 days and 2 hours before AS_OF."""
    cutoff = pd.Timestamp(AS_OF)
    n = 3 * len(ids)
    new = pd.DataFrame({
        "ticket_id": np.arange(n) + int(tickets["ticket_id"].max()) + 1,
        "customer_id": np.repeat(ids, 3),
        "opened_at": [cutoff - pd.Timedelta(hours=h) for _ in ids for h in (720, 240, 2)],
        "topic": "delivery",
        "resolved_at": pd.Series([pd.NaT] * n, dtype=tickets["resolved_at"].dtype),
        "compensation_amount": 0.0,
        "satisfaction": pd.Series([None] * n, dtype=tickets["satisfaction"].dtype),
    }).astype(tickets.dtypes.to_dict())
    return pd.concat([tickets, new], ignore_index=True)


def test_a_complaint_added_to_the_store_changes_the_next_answer(service, shop, bundle,
                                                                 store_dir):
    tables, _ = shop
    # customers not used by the other tests; pick the one whose score the complaints move most
    # (a small test model does not react to complaints for every customer)
    candidates = [int(i) for i in tables.customers["customer_id"].iloc[1000:1200]]
    old = ck.score(tables, as_of=AS_OF, bundle=bundle, customer_ids=candidates)
    moved = ck.score(tables.replace(tickets=_with_complaints(tables.tickets, candidates)),
                     as_of=AS_OF, bundle=bundle, customer_ids=candidates)
    shift = (moved["churn_probability"] - old["churn_probability"]).abs()
    assert shift.max() > 0, "the complaints move no candidate's score"
    cid = int(shift.idxmax())
    with service.client() as client:
        before = client.post("/score", json={"customer_ids": [cid], "as_of": AS_OF}).json()
    assert_matches(before["customers"][0], expected_rows(old)[cid])
    # the support desk files the complaints: the store's tickets file is rewritten in place
    stored = pd.read_parquet(store_dir / "tickets.parquet")
    with atomic_file(store_dir / "tickets.parquet") as tmp:
        _with_complaints(stored, [cid]).to_parquet(tmp, index=False)
    with service.client() as client:
        after = client.post("/score", json={"customer_ids": [cid], "as_of": AS_OF}).json()
    assert after["customers"][0]["churn_probability"] != \
        before["customers"][0]["churn_probability"]
    want = ck.score(ck.load_tables(store_dir), as_of=AS_OF, bundle=bundle, customer_ids=[cid])
    assert_matches(after["customers"][0], expected_rows(want)[cid])
    # an as_of before the complaints still gives the old answer (time travel)
    with service.client() as client:
        earlier = client.post("/score", json={"customer_ids": [cid],
                                              "as_of": "2025-05-31T00:00:00Z"}).json()
    then = ck.score(tables, as_of="2025-05-31", bundle=bundle, customer_ids=[cid])
    assert_matches(earlier["customers"][0], expected_rows(then)[cid])


def _rows(frame: pd.DataFrame | None) -> list[dict] | None:
    if frame is None:
        return None
    return json.loads(frame.to_json(orient="records", date_format="iso", date_unit="us"))


def test_score_events_equals_ck_score_on_the_same_rows(service, shop, bundle):
    tables, _ = shop
    cid = int(tables.customers["customer_id"].iloc[321])
    mine = tables.for_customers([cid])
    body = {name: _rows(mine.get(name)) for name in ck.TABLES}
    body["as_of"] = AS_OF
    with service.client() as client:
        r = client.post("/score_events", json=body)
    assert r.status_code == 200, r.text
    want = ck.score(tables, as_of=AS_OF, bundle=bundle, customer_ids=[cid])
    (row,) = r.json()["customers"]
    assert row["customer_id"] == cid
    assert_matches(row, expected_rows(want)[cid])
    # without the optional tables: scored from what is given (families absent -> model refuses
    # or scores; either way a clear answer, never a 500)
    with service.client() as client:
        r = client.post("/score_events", json={"customers": body["customers"],
                                                "orders": body["orders"], "as_of": AS_OF})
    assert r.status_code in (200, 422), r.text


def test_score_events_lists_every_problem_with_its_field(service, shop):
    tables, _ = shop
    cid = int(tables.customers["customer_id"].iloc[321])
    mine = tables.for_customers([cid])
    orders = _rows(mine.orders)
    # a row alone breaks the schema: 400, pydantic's errors naming each field
    wrong = [{**orders[0], "amount": -5, "status": "teleported"}]
    body = {"customers": _rows(mine.customers), "orders": wrong, "as_of": AS_OF}
    with service.client() as client:
        r = client.post("/score_events", json=body)
    assert r.status_code == 400, r.text
    assert {tuple(d["loc"]) for d in r.json()["detail"]} == {("orders", 0, "amount"),
                                                            ("orders", 0, "status")}
    # rows that fit the schema but break the contract across rows: 422, every problem listed
    crossed = [{**orders[0], "customer_id": cid + 10**9}, orders[0]]
    body = {"customers": _rows(mine.customers), "orders": crossed, "as_of": AS_OF}
    with service.client() as client:
        r = client.post("/score_events", json=body)
    assert r.status_code == 422, r.text
    detail = " ".join(r.json()["detail"])
    assert "orders.customer_id" in detail and "orders.order_id: " in detail
    assert "duplicate ids" in detail
    two = {"customers": _rows(tables.customers.iloc[:2]), "orders": []}
    with service.client() as client:
        r = client.post("/score_events", json=two)
    assert r.status_code == 400 and "customers" in r.text


def test_api_key_is_required(service):
    body = {"customer_ids": [1], "as_of": AS_OF}
    with service.client(key=None) as client:
        r = client.post("/score", json=body)
        assert r.status_code == 401 and "X-API-Key" in r.json()["error"]
        assert client.post("/score_events", json={"customers": [{}]}).status_code == 401
        assert client.post("/score", json=body,
                           headers={"X-API-Key": "wrong"}).status_code == 401
        ok = client.post("/score", json=body, headers={"Authorization": f"Bearer {API_KEY}"})
        assert ok.status_code == 200, ok.text
        # probes and metrics stay open
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ('{"customer_ids": [1', 400, "Invalid JSON"),
        ('{"customer_ids": "1"}', 400, "valid array"),
        ('{"customer_ids": [1], "since": "x"}', 400, "Extra inputs"),
        ('{"customer_ids": [1], "as_of": "2025-07-01T00:00:00"}', 400, "timezone"),
        ('{"customer_ids": [1], "as_of": "yesterday"}', 400, "datetime"),
        ('{"customer_ids": [1], "as_of": "2999-01-01T00:00:00Z"}', 422, "in the future"),
        ('{"customer_ids": [1], "as_of": "0001-01-01T00:00:00Z"}', 422, "before 1900"),
        ('{"customer_ids": []}', 400, "at least 1"),
        ('{"customer_ids": [true]}', 400, "customer_ids"),
        ('{"customer_ids": [{"id": 1}]}', 400, "customer_ids"),
        ("[]", 400, "object"),
        (json.dumps({"customer_ids": list(range(MAX_IDS + 1))}), 413, "at most 50"),
    ],
)
def test_bad_requests_get_a_4xx_that_says_what_to_fix(service, body, status, words):
    with service.client() as client:
        r = client.post("/score", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert words in r.text


def test_non_json_body_is_415(service):
    with service.client() as client:
        r = client.post("/score", content=b"a=1", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["error"]


def test_metrics_count_scored_customers(service):
    with service.client() as client:
        # /readyz answered from one worker; the other may still be loading (503): retry
        for _ in range(100):
            if client.post("/score", json={"customer_ids": [1, 2], "as_of": AS_OF}
                           ).status_code == 200:
                break
            time.sleep(0.1)
        else:
            pytest.fail("/score never answered 200")
        text = client.get("/metrics").text
    assert "churnkit_customers_scored_total" in text
    assert "bentoml_service_request_duration_seconds" in text


def test_logs_carry_customer_ids_not_row_contents(service, shop):
    tables, _ = shop
    cid = int(tables.customers["customer_id"].iloc[42])
    mine = tables.for_customers([cid])
    customers = _rows(mine.customers)
    customers[0]["region"] = "Zzyzx-Marker-Region"
    body = {name: _rows(mine.get(name)) for name in ck.TABLES}
    body.update(customers=customers, as_of=AS_OF)
    with service.client() as client:
        assert client.post("/score", json={"customer_ids": [cid], "as_of": AS_OF}
                           ).status_code == 200
        assert client.post("/score_events", json=body).status_code == 200
    log = service.log.read_text()
    assert f"score ids={cid} " in log and f"score_events id={cid} " in log
    assert "Zzyzx-Marker-Region" not in log


def test_not_ready_until_the_bundle_loads(store_dir, tmp_path):
    """A bundle that cannot be loaded: alive (/healthz) but never ready, and scoring says why."""
    broken = tmp_path / "bundle"
    broken.mkdir()
    (broken / "bundle.json").write_text("{not json")
    running = start_ready(tmp_path, {}, ["--model", str(broken), "--data", str(store_dir)],
                          path="/healthz")
    try:
        deadline = time.monotonic() + 60
        while "failed to load" not in running.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert httpx.get(running.url + "/readyz").status_code == 503
        r = httpx.post(running.url + "/score", json={"customer_ids": [1], "as_of": AS_OF})
        assert r.status_code == 503 and "could not load" in r.json()["error"]
    finally:
        stop_service(running)
