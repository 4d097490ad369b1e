"""Rows appended out of order (a support desk's new complaints at the end of the table) give the
features of the same rows sorted: replaced tables are validated again before the engine reads
them (the engine reads rows as sorted by customer, then time)."""

from __future__ import annotations

import numpy as np
import pandas as pd

import churnkit as ck

AS_OF = "2025-07-01"


def test_appended_rows_out_of_order_give_the_features_of_the_sorted_rows():
    tables, _ = ck.synth.generate(600, seed=11, start="2024-01-01", end=AS_OF)
    t = tables.tickets
    ids = [int(i) for i in tables.customers["customer_id"].iloc[[10, 20, 30]]]
    cutoff = pd.Timestamp(AS_OF, tz="UTC")
    new = pd.DataFrame({
        "ticket_id": np.arange(9) + int(t["ticket_id"].max()) + 1,
        "customer_id": np.repeat(ids, 3),
        "opened_at": [cutoff - pd.Timedelta(hours=h) for _ in ids for h in (720, 240, 2)],
        "topic": "delivery",
        "resolved_at": pd.Series([pd.NaT] * 9, dtype=t["resolved_at"].dtype),
        "compensation_amount": 0.0,
        "satisfaction": pd.Series([None] * 9, dtype=t["satisfaction"].dtype),
    }).astype(t.dtypes.to_dict())
    appended = tables.replace(tickets=pd.concat([t, new], ignore_index=True))
    assert tables.normalized and not appended.normalized
    got = ck.build_features(appended, as_of=AS_OF, customer_ids=ids)
    want = ck.build_features(ck.validate(appended), as_of=AS_OF, customer_ids=ids)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert (got["tickets_30d"] >= 3).all()  # the three new complaints, in the window
    # removing a table keeps the others' order; filtering rows keeps it too, and says so
    assert tables.replace(browsing=None).normalized
    assert tables.replace(keep_normalized=True, tickets=t[t["topic"] != "delivery"]).normalized
