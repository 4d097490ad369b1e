"""The policy's sentences come out the same whether assembled as Python strings (a few rows)
or by Arrow kernels (many rows)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from churnkit.policy import text
from churnkit.policy.text import SMALL_TEXT_ROWS, Text, _int, _plural, _unique


def both(values: list[str]) -> tuple[Text, Text]:
    return Text(list(values)), Text(pa.array(values, pa.string()))


def test_list_and_arrow_texts_assemble_the_same_strings():
    rng = np.random.default_rng(0)
    for n in (0, 1, 3, 40):
        words = [str(w) for w in rng.choice(["a", "bb", "", "é", "x y"], n)]
        small, big = both(words)
        for t in (small, big):
            mask = np.arange(n) % 2 == 0
            t[mask] = "set"
            t[~mask] = Text.of(["v"] * int((~mask).sum())) + t[~mask]
            t2 = "<" + t + ">" + t
            t2[np.arange(n) % 3 == 0] = "third"
            t.a = t2.a
        assert small.strings() == big.strings()
        assert small.to_pandas().dtype == big.to_pandas().dtype
        pd.testing.assert_extension_array_equal(small.to_pandas(), big.to_pandas())


def test_numbers_and_plurals_read_alike_in_both_forms(monkeypatch):
    x = np.array([0.0, 1.0, 1.4, 2.5, -3.0, np.nan, 12345.6])
    small = (_int(x) + _plural(x, " order", " orders")).strings()
    monkeypatch.setattr(text, "SMALL_TEXT_ROWS", -1)  # Arrow kernels at any size
    big = (_int(x) + _plural(x, " order", " orders")).strings()
    assert small == big == ["0 orders", "1 order", "1 order", "2 orders", "-3 orders",
                            "? orders", "12346 orders"]


def test_the_dictionary_grouping_of_a_few_rows_is_np_unique():
    rng = np.random.default_rng(1)
    for n in (0, 1, 2, SMALL_TEXT_ROWS):
        key = rng.integers(0, 4, n) * 10**15 + rng.integers(0, 3, n)
        for got, want in zip(_unique(key), np.unique(key, return_index=True,
                                                     return_inverse=True), strict=True):
            np.testing.assert_array_equal(got, want)
            assert got.dtype == want.dtype
