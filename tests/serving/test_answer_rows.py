"""The service answers from the scores' columns (``ck.score(..., as_frame=False)``): its rows are,
field by field, those it would read from the scores frame."""

from __future__ import annotations

import pandas as pd

import churnkit as ck
from serving.schemas import rows_from_frame

AS_OF = pd.Timestamp("2025-07-01", tz="UTC")


def test_rows_from_the_columns_are_the_rows_from_the_frame(shop, bundle):
    tables, _ = shop
    for explain in ("at_risk", True):
        frame = ck.score(tables, as_of=AS_OF, bundle=bundle, explain=explain)
        columns = ck.score(tables, as_of=AS_OF, bundle=bundle, explain=explain, as_frame=False)
        assert len(frame) > 100
        want = [row.model_dump_json() for row in rows_from_frame(frame)]
        assert [row.model_dump_json() for row in rows_from_frame(columns)] == want
        ids = frame.index[[9, 2, 40]].tolist()
        picked = [row.model_dump_json() for row in rows_from_frame(columns.select(ids))]
        assert picked == [row.model_dump_json() for row in rows_from_frame(frame.loc[ids])]
