"""FeatureColumns: a feature frame's columns as arrays, with the values the frame gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnkit.data import columns as columns_module
from churnkit.data.columns import SMALL_FRAME_ROWS, FeatureColumns
from churnkit.data.frames import numeric_matrix


@pytest.fixture(params=["blocks", "public"])
def reader(request, monkeypatch):
    """Both ways of reading a frame: its storage blocks, and its public conversions."""
    if request.param == "public":
        monkeypatch.setattr(columns_module, "_blocks", lambda frame: None)
    return request.param


def frame(n: int, *, nullable: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    out = pd.DataFrame({
        "count": rng.integers(0, 5, n),
        "share": np.where(rng.random(n) < 0.3, np.nan, rng.random(n)),
        "flag": rng.random(n) < 0.5,
        "category": pd.Series(rng.choice(["a", "b", None], n), dtype="str"),
        "small": rng.random(n).astype("float32"),
    }, index=pd.Index(np.arange(100, 100 + n), name="customer_id"))
    if nullable:
        out["maybe"] = pd.array(np.where(rng.random(n) < 0.5, None, 3), dtype="Int64")
        out["yes"] = pd.array(np.where(rng.random(n) < 0.5, None, True), dtype="boolean")
    return out


def assert_same_objects(got: np.ndarray, want: np.ndarray) -> None:
    assert len(got) == len(want)
    for x, y in zip(got.tolist(), want.tolist(), strict=True):
        assert x == y or (pd.isna(x) and pd.isna(y)), (x, y)


@pytest.mark.parametrize("n", [1, 2, SMALL_FRAME_ROWS, SMALL_FRAME_ROWS + 1, 500])
@pytest.mark.parametrize("nullable", [False, True])
def test_numbers_and_flags_are_the_frames_floats(n, nullable, reader):
    f = frame(n, nullable=nullable)
    if nullable:  # a frame assembled column by column: many storage blocks
        f["when"] = pd.Timestamp("2025-07-01", tz="UTC")
        f = pd.concat([f[["share"]], f.drop(columns="share")], axis=1)
    cols = FeatureColumns.from_frame(f)
    assert len(cols) == n and cols.index.equals(f.index)
    assert list(cols.columns) == list(f.columns)
    for name in f.columns:
        if name == "when":
            assert cols.is_text(name)
            assert cols.text(name).tolist() == f[name].to_numpy(dtype=object).tolist()
            continue
        if name == "category":
            assert cols.is_text(name)
            assert_same_objects(cols.text(name), f[name].to_numpy(dtype=object))
            continue
        want = f[name].to_numpy(dtype=float, na_value=np.nan)
        np.testing.assert_array_equal(cols.number(name), want)
    np.testing.assert_array_equal(cols.number("absent"), np.full(n, np.nan))
    np.testing.assert_array_equal(cols.number("absent", 0.0), np.zeros(n))


def test_matrix_is_numeric_matrix_of_the_frame(reader):
    f = frame(7)
    names = ["share", "absent", "flag", "category", "count"]
    np.testing.assert_array_equal(FeatureColumns.from_frame(f).matrix(names),
                                  numeric_matrix(f, names))
    np.testing.assert_array_equal(numeric_matrix(FeatureColumns.from_frame(f), names),
                                  numeric_matrix(f, names))
    f["category"] = pd.Series(["1.5", "x", None, "2", "a", "b", "3"], dtype="str",
                              index=f.index)  # numbers written as text read as numbers
    np.testing.assert_array_equal(FeatureColumns.from_frame(f).matrix(["category"]),
                                  numeric_matrix(f, ["category"]))


def test_rows_taken_keep_their_values_and_index(reader):
    f = frame(30)
    cols = FeatureColumns.from_frame(f)
    part = cols.take(np.array([3, 0, 29]))
    np.testing.assert_array_equal(part.matrix(["count", "share"]),
                                  numeric_matrix(f.iloc[[3, 0, 29]], ["count", "share"]))
    assert part.index.tolist() == [103, 100, 129]
    assert_same_objects(part.text("category"),
                        f["category"].iloc[[3, 0, 29]].to_numpy(dtype=object))
    pd.testing.assert_frame_equal(part.frame, f.iloc[[3, 0, 29]])


def test_columns_handed_out_are_read_only():
    cols = FeatureColumns.from_frame(frame(3))
    with pytest.raises(ValueError, match="read-only"):
        cols.number("count")[0] = 1.0


def test_a_frame_with_other_columns_or_dtypes_gets_its_own_layout():
    a, b = frame(2), frame(2)
    b["share"] = b["share"].astype("float32")
    assert FeatureColumns.from_frame(a).dtype("share") == np.float64
    assert FeatureColumns.from_frame(b).dtype("share") == np.float32
    c = a[["flag", "count"]]
    np.testing.assert_array_equal(FeatureColumns.from_frame(c).matrix(["count", "flag"]),
                                  numeric_matrix(c, ["count", "flag"]))


def _same_columns(got: FeatureColumns, want: FeatureColumns) -> None:
    assert got.index.equals(want.index) and got.index.dtype == want.index.dtype
    assert list(got.columns) == list(want.columns)
    for name in want.columns:
        assert got.dtype(name) == want.dtype(name), name
        assert got.is_text(name) == want.is_text(name), name
        if want.is_text(name):
            assert_same_objects(got.text(name), want.text(name))
        else:  # bitwise: the engine's arrays give the frame's floats
            np.testing.assert_array_equal(got.number(name).view(np.int64),
                                          want.number(name).view(np.int64), err_msg=name)


@pytest.mark.parametrize("ids", [None, "one", "several"])
def test_columns_from_the_engine_are_those_of_its_frame(ids):
    import churnkit as ck
    from churnkit.features import feature_columns

    tables, _ = ck.synth.generate(300, seed=5, start="2024-01-01", end="2025-01-01")
    as_of = "2024-11-01"
    known = ck.build_features(tables, as_of=as_of).index
    chosen = {None: None, "one": [known[7]], "several": [known[40], known[3], "nobody"]}[ids]
    frame = ck.build_features(tables, as_of=as_of, customer_ids=chosen)
    got = feature_columns(tables, as_of=as_of, customer_ids=chosen)
    want = FeatureColumns.from_frame(frame)
    _same_columns(got, want)
    assert any(want.is_text(n) for n in want.columns)  # the text path is exercised
    rows = np.arange(len(want))[::-1]
    _same_columns(got.take(rows), want.take(rows))
    # The frame is built only when read, and is build_features' frame without its attrs.
    frame.attrs = {}
    pd.testing.assert_frame_equal(got.take(rows).frame, frame.iloc[rows])
    pd.testing.assert_frame_equal(got.frame, frame)


@pytest.mark.parametrize("values", [
    ["a", None, np.nan], [None], ["x"], [], ["a", 3, None], [np.float64("nan"), "b"],
    ["é", "", None, "z"],
])
def test_few_text_values_read_as_pandas_reads_them(values):
    # A few rows are read value by value; the objects are those of pd.array(...).to_numpy.
    dtype = pd.StringDtype(na_value=np.nan)
    array = np.array(values, dtype=object)
    got = columns_module._text_objects(array, dtype)
    want = pd.array(array, dtype=dtype).to_numpy(dtype=object)
    assert got.dtype == object and len(got) == len(want)
    for x, y in zip(got.tolist(), want.tolist(), strict=True):
        assert type(x) is type(y) and (x == y or (x != x and y != y)), (x, y)


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("n", [0, 1, 5])
def test_utc_datetime_arrays_are_those_pandas_converts(unit, n):
    from churnkit.data.frames import utc_datetime_array

    dtype = pd.DatetimeTZDtype(unit, "UTC")
    values = (np.datetime64("2025-03-30T01:00:00", unit)
              + np.arange(n) * np.timedelta64(3_601, "s")).astype(f"M8[{unit}]")
    got, expected = utc_datetime_array(values, dtype), pd.array(values, dtype=dtype)
    assert got.dtype == expected.dtype and pd.Series(got).equals(pd.Series(expected))
    # another unit or zone: pandas' conversion
    other = utc_datetime_array(values.astype("M8[ms]"), dtype)
    assert other.dtype == dtype and pd.Series(other).equals(pd.Series(expected))
    zoned = pd.DatetimeTZDtype(unit, "Asia/Tokyo")  # read as wall times there, as pandas does
    assert pd.Series(utc_datetime_array(values, zoned)).equals(
        pd.Series(pd.array(values, dtype=zoned)))
