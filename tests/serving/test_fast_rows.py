"""The ``/score_events`` rows through the array path (``churnkit.data.validate_columns``, fed by
``columns_of``) give what the pandas path gives (``DataFrame.from_records`` of the JSON records,
then ``churnkit.validate``): the same normalized tables, or the same 422 with the same problems
in the same order, on random bodies good and bad."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import churnkit as ck
from churnkit.errors import RequestError
from serving.parsing import columns_of, records_of, tables_from_rows
from serving.schemas import ScoreEventsRequest

TABLE_NAMES = list(ck.TABLES)


def pandas_path(rows: dict[str, list | None]) -> ck.Tables:
    """The endpoint's reading before the array path: one frame per table, then validate."""
    frames: dict[str, pd.DataFrame | None] = {}
    for name, records in rows.items():
        if records is None:
            frames[name] = None
            continue
        columns = list(dict.fromkeys(k for r in records for k in r))
        if not columns:
            columns = list(ck.TABLES[name].column_names)
        frames[name] = pd.DataFrame.from_records(records, columns=columns)
    try:
        tables = ck.validate(ck.Tables(**frames))  # type: ignore[arg-type]
    except ck.DataValidationError as exc:
        raise RequestError(
            f"the rows break the data contract ({len(exc.problems)} problem(s)); fix them and "
            "resend (see docs/data-contract.md)",
            status=422, detail=[str(p) for p in exc.problems]) from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise RequestError(f"the rows cannot be read as the contract's tables: {exc}",
                           status=422) from None
    if len(pd.unique(tables.customers["customer_id"])) != 1:
        raise RequestError("customers must hold exactly one customer", status=422)
    return tables


def outcome(read, rows) -> object:
    try:
        return read(rows)
    except RequestError as exc:
        return ("refused", exc.status, str(exc), exc.detail)


def array_path(rows: dict[str, list | None]) -> ck.Tables:
    """``tables_from_rows`` with its arrays; checks on the way that the engine's arrays made
    from them equal those converted from the frames, array by array and bit for bit."""
    tables, plain = tables_from_rows(rows, with_arrays=True)
    assert_same_shop(ck.ShopArrays.of(tables, plain), ck.ShopArrays.of(tables))
    return tables


def assert_same_shop(got: ck.ShopArrays, want: ck.ShopArrays) -> None:
    def same(a: np.ndarray, b: np.ndarray, where: str) -> None:
        assert a.dtype == b.dtype and a.shape == b.shape, where
        if a.dtype == object:
            assert [x if x == x else "NaN" for x in a.tolist()] == \
                [x if x == x else "NaN" for x in b.tolist()], where
        else:
            np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8), err_msg=where)

    same(got.ids, want.ids, "ids")
    assert got.categories == want.categories
    for part in ("customers", "starts"):
        g, w = getattr(got, part), getattr(want, part)
        assert list(g) == list(w), part
        for k in w:
            same(g[k], w[k], f"{part}.{k}")
    for part in ("events", "local"):
        g, w = getattr(got, part), getattr(want, part)
        assert list(g) == list(w), part
        for name in w:
            assert list(g[name]) == list(w[name]), f"{part}.{name}"
            for k in w[name]:
                same(g[name][k], w[name][k], f"{part}.{name}.{k}")


def assert_same(new: object, old: object) -> None:
    if isinstance(old, tuple) or isinstance(new, tuple):
        assert new == old
        return
    assert isinstance(new, ck.Tables) and isinstance(old, ck.Tables)
    assert new.present() == old.present()
    assert new.defaulted == old.defaulted and new.normalized and old.normalized
    for name in old.present():
        pd.testing.assert_frame_equal(new.get(name), old.get(name), check_exact=True)


@pytest.fixture(scope="module")
def bodies():
    tables, _ = ck.synth.generate(80, seed=5, start="2024-01-01", end="2025-07-01")
    counts = tables.orders["customer_id"].value_counts()
    picked = [int(counts.index[0]), int(counts.index[len(counts) // 2]),
              int(counts.index[-1])]
    out = []
    for cid in picked:
        mine = tables.for_customers([cid])
        body = {}
        for name in TABLE_NAMES:
            frame = mine.get(name)
            body[name] = None if frame is None else json.loads(
                frame.to_json(orient="records", date_format="iso", date_unit="us"))
        out.append(body)
    other = int(counts.index[1])
    return out, other


def _mutate(data, body: dict, other: int) -> dict:
    """A copy of ``body`` with a few random changes, most of them breaking the contract."""
    body = {k: None if v is None else [dict(r) for r in v] for k, v in body.items()}
    for _ in range(data.draw(st.integers(0, 4))):
        name = data.draw(st.sampled_from(TABLE_NAMES))
        rows = body[name]
        kind = data.draw(st.sampled_from([
            "none_table", "empty_table", "drop_column", "drop_in_one_row", "wrong_type",
            "null", "negative", "naive_ts", "garbage_ts", "dup_id", "other_customer",
            "extra_column", "text_number", "float_id", "shuffle", "big_year", "text_id",
            "zone_ts", "bool_text"]))
        if kind == "none_table":
            body[name] = None
            continue
        if kind == "empty_table":
            body[name] = []
            continue
        if not rows:
            continue
        i = data.draw(st.integers(0, len(rows) - 1))
        column = data.draw(st.sampled_from(sorted(rows[i])))
        if kind == "drop_column":
            for r in rows:
                r.pop(column, None)
        elif kind == "drop_in_one_row":
            rows[i].pop(column, None)
        elif kind == "wrong_type":
            rows[i][column] = data.draw(st.sampled_from(["abc", 3, 2.5, True, [1], ""]))
        elif kind == "null":
            rows[i][column] = None
        elif kind == "negative":
            for c in ("amount", "discount_amount", "compensation_amount", "n_items",
                      "satisfaction", "delivery_delay_days"):
                if c in rows[i]:
                    rows[i][c] = data.draw(st.sampled_from([-5.0, -1, 0, 7, 1e300]))
        elif kind in ("naive_ts", "garbage_ts", "big_year", "zone_ts"):
            stamps = [c for c, v in rows[i].items() if isinstance(v, str) and "T" in v
                      and v[:4].isdigit()]
            if stamps:
                c = data.draw(st.sampled_from(stamps))
                value = rows[i][c]
                rows[i][c] = {"naive_ts": value[:19], "garbage_ts": "not a time",
                              "big_year": "2150" + value[4:], "zone_ts": value[:19] + "+05:30",
                              }[kind]
        elif kind == "dup_id" and len(rows) > 1:
            key = ck.TABLES[name].key
            if key in rows[i]:
                rows[(i + 1) % len(rows)][key] = rows[i][key]
        elif kind == "other_customer":
            rows[i]["customer_id"] = other
        elif kind == "extra_column":
            rows[i]["note"] = "x"
        elif kind == "text_number":
            if isinstance(rows[i].get(column), (int, float)) and not isinstance(
                    rows[i][column], bool):
                rows[i][column] = str(rows[i][column])
        elif kind == "float_id":
            if isinstance(rows[i].get("customer_id"), int):
                for r in rows:  # (a row whose id an earlier change removed keeps it so)
                    if isinstance(r.get("customer_id"), int):
                        r["customer_id"] = float(r["customer_id"])
        elif kind == "text_id":
            for t in body.values():
                for r in t or []:
                    if isinstance(r.get("customer_id"), int):
                        r["customer_id"] = data.draw(st.sampled_from(
                            [str(r["customer_id"]), f"c{r['customer_id']}"]))
        elif kind == "shuffle":
            rows.reverse()
        elif kind == "bool_text":
            for c, v in rows[i].items():
                if isinstance(v, bool):
                    rows[i][c] = data.draw(st.sampled_from(["yes", 1, None]))
    return body


SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@SETTINGS
@given(data=st.data())
def test_records_give_what_the_pandas_path_gives(bodies, data):
    good, other = bodies
    body = _mutate(data, data.draw(st.sampled_from(good)), other)
    assert_same(outcome(array_path, body), outcome(pandas_path, body))


@SETTINGS
@given(data=st.data())
def test_requests_give_what_the_pandas_path_gives(bodies, data):
    """Bodies the request model accepts (its checks come first), read from the models: the
    columns of ``columns_of`` against the JSON records of ``records_of``."""
    good, other = bodies
    body = _mutate(data, data.draw(st.sampled_from(good)), other)
    body["customers"] = body["customers"] or good[0]["customers"]
    try:
        request = ScoreEventsRequest.model_validate_json(json.dumps(body))
    except ValidationError:
        return
    new = {n: columns_of(getattr(request, n)) for n in TABLE_NAMES}
    old = {n: records_of(getattr(request, n)) for n in TABLE_NAMES}
    assert_same(outcome(array_path, new), outcome(pandas_path, old))


def test_the_mutations_reach_both_answers(bodies):
    """The property tests see refusals and accepted bodies alike (they can fail)."""
    good, _ = bodies
    assert isinstance(outcome(pandas_path, good[0]), ck.Tables)
    _, plain = tables_from_rows(good[0], with_arrays=True)
    assert plain is not None and plain["orders"] is not None  # the arrays' path is the one tested
    assert_same(outcome(tables_from_rows, good[0]), outcome(pandas_path, good[0]))
    body = {k: None if v is None else [dict(r) for r in v] for k, v in good[0].items()}
    body["orders"][0]["amount"] = -5.0
    body["orders"][0]["ordered_at"] = "2024-05-01T10:00:00"
    refused = outcome(tables_from_rows, body)
    assert isinstance(refused, tuple) and "orders.amount" in " ".join(refused[3])
    assert_same(refused, outcome(pandas_path, body))


def test_columns_of_reads_what_the_json_dump_holds():
    request = ScoreEventsRequest.model_validate_json(json.dumps({
        "customers": [{"customer_id": 7, "signup_at": "2024-01-01T00:00:00+02:00"}],
        "orders": [{"order_id": 1, "customer_id": 7, "ordered_at": "2024-02-01T00:00:00Z",
                    "amount": 5.0},
                   {"order_id": 2, "customer_id": 7, "ordered_at": "2024-02-02T00:00:00Z",
                    "amount": 6.0, "n_items": 2}]}))
    columns = columns_of(request.orders)
    assert list(columns) == ["order_id", "customer_id", "ordered_at", "amount", "n_items"]
    assert columns["n_items"][1] == 2 and math.isnan(columns["n_items"][0])
    assert columns_of(None) is None and columns_of([]) == {}
