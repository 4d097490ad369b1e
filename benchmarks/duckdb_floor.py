"""DuckDB's floor for one customer: what one statement of N windowed aggregates costs (issue 3).

Usage::

    .venv/bin/python benchmarks/duckdb_floor.py [--customers 2000] [--repeats 40]

Issue 3 asks for <= 10 ms to build one customer's features "with the same query" that serves the
whole base. This measures the part of that time no rewrite of our SQL can remove: DuckDB's
fixed work per expression (binding, planning, operator setup, the result) on a handful of rows.
On one customer's ``orders`` rows of a synthetic shop (the customer with the most orders), on
the connection the engine uses for small scopes (one thread; optimizer off, as the engine runs
it, and on), it times one statement of N aggregates over 5 windows in three forms:
``sum(...) FILTER (WHERE ...)``, ``sum(CASE WHEN ... END)`` (what the families use) and sums of
per-window columns computed once in a subquery (the cheapest form found). Then the real feature
statement (all families, all tables) for the same customer, and how many features it returns.
Medians of ``--repeats`` calls of a parsed statement, after a warm-up.
"""

from __future__ import annotations

import argparse
import time

import duckdb
import numpy as np
import pandas as pd

import churnkit as ck
from churnkit.features.engine import computed_families
from churnkit.features.oracle import _connect, _registered, engine
from churnkit.features.views import compose_sql

AS_OF = "2025-01-01"
WINDOWS = (30, 90, 180, 365, 730)
COLUMNS = ("amount", "discount_amount", "delivery_cost", "n_items")


def statements(n: int) -> dict[str, str]:
    """Three forms of one statement with ``n`` windowed aggregates over ``raw``."""
    def parts(i: int) -> tuple[int, str, int]:
        return WINDOWS[i % len(WINDOWS)], COLUMNS[i % len(COLUMNS)], 1 + i // 20

    filt = ", ".join(f"sum({c} * {k}) FILTER (WHERE ordered_at >= $as_of - INTERVAL {w} DAY) "
                     f"AS f{i}" for i, (w, c, k) in enumerate(map(parts, range(n))))
    case = ", ".join(f"sum(CASE WHEN age < {w} THEN {c} * {k} ELSE 0 END) AS f{i}"
                     for i, (w, c, k) in enumerate(map(parts, range(n))))
    flags = ", ".join(f"CASE WHEN age < {w} THEN {c} ELSE 0 END AS {c}_{w}"
                      for w in WINDOWS for c in COLUMNS)
    pre = ", ".join(f"sum({c}_{w} * {k}) AS f{i}" for i, (w, c, k) in
                    enumerate(map(parts, range(n))))
    age = "(epoch_us($as_of) - epoch_us(ordered_at)) / 86400000000.0"
    return {
        "FILTER": f"SELECT customer_id, {filt} FROM raw WHERE ordered_at < $as_of "
                  "GROUP BY customer_id",
        "CASE": f"SELECT customer_id, {case} FROM (SELECT *, {age} AS age FROM raw "
                "WHERE ordered_at < $as_of) GROUP BY customer_id",
        "per-window columns": f"SELECT customer_id, {pre} FROM (SELECT customer_id, {flags} "
                              f"FROM (SELECT *, {age} AS age FROM raw WHERE ordered_at < $as_of)) "
                              "GROUP BY customer_id",
    }


def median_ms(con: duckdb.DuckDBPyConnection, sql: str, params: dict, repeats: int) -> float:
    statement = con.extract_statements(sql)[0]
    con.execute(statement, params).fetchnumpy()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        con.execute(statement, params).fetchnumpy()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=40)
    args = ap.parse_args()

    tables, _ = ck.synth.generate(args.customers, seed=7, start="2023-01-01", end="2025-07-01")
    tables = ck.validate(tables)
    as_of = ck.as_utc_timestamp(AS_OF)
    params = {"as_of": as_of.to_pydatetime()}
    known = tables.orders[tables.orders["ordered_at"] < as_of]
    cid = known["customer_id"].value_counts().index[0]
    one = tables.for_customers([cid])
    rows = one.orders.copy()
    print(f"one customer ({cid}): {len(rows)} orders, "
          f"{sum(one.n_rows().values())} rows in all tables; as_of {AS_OF}\n")

    print("| statement on one table | aggregates | optimizer off (engine) | optimizer on |")
    print("|---|---|---|---|")
    cons = {opt: _connect(1, optimize=opt) for opt in (False, True)}
    for con in cons.values():
        con.register("raw", rows)
    for n in (50, 100, 150, 220):
        for form, sql in statements(n).items():
            off, on = (median_ms(cons[opt], sql, params, args.repeats) for opt in (False, True))
            print(f"| {form} | {n} | {off:.1f} ms | {on:.1f} ms |")

    eng, fams = engine(), computed_families(tables)
    sql = compose_sql(tuple(f.name for f in fams), frozenset(tables.present()))
    with _registered(eng.small, one):
        full = median_ms(eng.small, sql, params, args.repeats)
    n_features = sum(len(f.features) for f in fams)
    built = ck.build_features(one, as_of=as_of)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ck.build_features(one, as_of=as_of, population=built.attrs["population"])
        times.append(time.perf_counter() - t0)
    print(f"\nthe feature statement (all {len(fams)} families, {len(sql):,} characters of SQL, "
          f"{n_features} features): {full:.1f} ms; `ck.build_features` of this customer: "
          f"{1000 * np.median(times):.1f} ms")


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    main()
