"""Labels: hand-computed windows, local time slots, time-travel safety, refusal past data end."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from churnkit import Tables, build_features, validate
from churnkit.labels import LABEL_COLUMNS, build_labels, build_training_set, latest_timestamp

AS_OF = "2024-03-04T00:00Z"  # a Monday
H = 30  # window [2024-03-04, 2024-04-03)


def _frames() -> dict[str, pd.DataFrame]:
    customers = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4, 5, 6, 7, 8, 9],
            "signup_at": [
                "2024-01-01", "2024-01-01", "2024-01-01", "2024-01-01",
                "2024-03-05",  # signs up after as_of: absent
                "2024-03-04T00:00Z",  # signs up exactly at as_of: not yet a customer
                "2024-01-01", "2024-01-01", "2024-01-01",
            ],
            "timezone": [
                "Asia/Vladivostok", "UTC", "Europe/Moscow", "America/New_York", "UTC", "UTC",
                None,  # missing means UTC
                "Europe/Berlin", "America/New_York",
            ],
        }
    )
    orders = pd.DataFrame(
        {
            "order_id": [10, 11, 12, 13, 14, 15, 16],
            "customer_id": [1, 2, 3, 4, 7, 5, 9],
            "ordered_at": [
                "2024-03-04T06:30Z",  # Vladivostok (UTC+10): Monday 16:30 -> slot 16
                "2024-03-04T00:00Z",  # exactly at as_of: counts
                "2024-04-03T00:00Z",  # exactly at as_of + h: does not count
                "2024-02-01T00:00Z",  # before as_of: does not matter
                "2024-03-20T12:00Z",  # cancelled, still a return
                "2024-03-06T00:00Z",
                "2024-03-12T03:00Z",  # New York after the DST switch (UTC-4): Mon 23:00
            ],
            "amount": 10.0,
            "status": ["delivered", "delivered", "delivered", "delivered", "cancelled", "placed",
                       "delivered"],
            "status_at": ["2024-03-06", "2024-03-05", "2024-04-03", "2024-02-03", "2024-03-21",
                          "2024-03-06", "2024-03-13"],
        }
    )
    browsing = pd.DataFrame(
        {
            "customer_id": [3, 3, 7],
            "session_id": [100, 101, 102],
            "ts": [
                "2024-03-01T10:00Z",  # before as_of
                "2024-03-10T22:15Z",  # Sunday UTC = Monday 01:15 in Moscow -> slot 1
                "2024-03-05T09:00Z",  # Tuesday 09:00 UTC, before customer 7's order -> slot 33
            ],
            "event": ["view", "search", "product_view"],
        }
    )
    contacts = pd.DataFrame(
        {
            "contact_id": [200, 201],
            "customer_id": [4, 8],
            "sent_at": ["2024-02-20T09:00Z", "2024-02-20T09:00Z"],
            "channel": ["email", "sms"],
            "action": ["we_miss_you", "promo_code"],
            "group": ["treatment", "treatment"],
            # New York before DST (UTC-5): Friday 2024-03-08 22:00 -> slot 4 * 24 + 22 = 118
            "opened_at": ["2024-03-09T03:00Z", "2024-02-28T10:00Z"],  # 8's open is before as_of
            "converted_at": [None, None],
        }
    )
    return {"customers": customers, "orders": orders, "browsing": browsing, "contacts": contacts}


def _tables(**overrides: pd.DataFrame) -> Tables:
    frames = _frames() | overrides
    return validate(Tables(**frames))


EXPECTED = pd.DataFrame(
    {
        "churned": [False, False, True, True, False, True, False],
        "days_to_next_order": [6.5 / 24, 0.0, 30.0, 30.0, 16.5, 30.0, 8 + 3 / 24],
        "censored": [False, False, True, True, False, True, False],
        "next_engagement_slot": pd.array([16, 0, 1, 118, 33, None, 23], dtype="Int64"),
        "next_engagement_weekday": pd.array([0, 0, 0, 4, 1, None, 0], dtype="Int64"),
        "next_engagement_hour": pd.array([16, 0, 1, 22, 9, None, 23], dtype="Int64"),
    },
    index=pd.Index([1, 2, 3, 4, 7, 8, 9], name="customer_id"),
)


def test_hand_computed_labels() -> None:
    labels = build_labels(_tables(), as_of=AS_OF, horizon_days=H)
    pd.testing.assert_frame_equal(labels, EXPECTED)
    assert tuple(labels.columns) == LABEL_COLUMNS


def test_naive_as_of_is_utc_and_unvalidated_tables_are_validated() -> None:
    raw = Tables(**_frames())
    labels = build_labels(raw, as_of=datetime(2024, 3, 4), horizon_days=H)
    pd.testing.assert_frame_equal(labels, EXPECTED)


def test_window_past_data_end_is_refused() -> None:
    tables = _tables()
    # the latest timestamp is the order at 2024-04-03T00:00Z: a window ending there is observed
    assert latest_timestamp(tables) == pd.Timestamp("2024-04-03", tz="UTC")
    build_labels(tables, as_of=AS_OF, horizon_days=H)
    with pytest.raises(ValueError, match=r"runs past the end of the data \(2024-04-03"):
        build_labels(tables, as_of="2024-03-04T00:00:01Z", horizon_days=H)
    with pytest.raises(ValueError, match="past the end of the data"):
        build_labels(tables, as_of=AS_OF, horizon_days=H, data_end="2024-04-02")
    # the caller may know the data cover more than their last event
    later = build_labels(tables, as_of="2024-03-05", horizon_days=H, data_end="2024-06-01")
    assert later.loc[2, "churned"]


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "90"])
def test_horizon_must_be_positive_whole_days(bad) -> None:
    with pytest.raises(ValueError, match="horizon_days"):
        build_labels(_tables(), as_of=AS_OF, horizon_days=bad)


def test_as_of_is_required() -> None:
    with pytest.raises(ValueError, match="as_of is required"):
        build_labels(_tables(), as_of=None, horizon_days=H)


def test_rows_before_as_of_change_nothing() -> None:
    frames = _frames()
    before = "2024-03-03T23:59:59Z"
    browsing = pd.concat(
        [
            frames["browsing"],
            pd.DataFrame({"customer_id": [1, 4, 8], "session_id": [900, 901, 902],
                          "ts": [before] * 3, "event": ["checkout"] * 3}),
        ]
    )
    contacts = pd.concat(
        [
            frames["contacts"],
            pd.DataFrame({"contact_id": [902], "customer_id": [8], "sent_at": ["2024-03-01"],
                          "channel": ["push"], "action": ["we_miss_you"], "group": ["control"],
                          "opened_at": [before], "converted_at": [None]}),
        ]
    )
    tickets = pd.DataFrame({"ticket_id": [1], "customer_id": [3], "opened_at": [before],
                            "topic": ["delivery"], "resolved_at": [None]})
    labels = build_labels(
        _tables(browsing=browsing, contacts=contacts, tickets=tickets), as_of=AS_OF, horizon_days=H
    )
    pd.testing.assert_frame_equal(labels, EXPECTED)

    orders = pd.concat(
        [
            frames["orders"],
            pd.DataFrame({"order_id": [990, 991], "customer_id": [3, 8], "ordered_at": [before] * 2,
                          "amount": 5.0, "status": "delivered", "status_at": [before] * 2}),
        ]
    )
    labels = build_labels(_tables(orders=orders), as_of=AS_OF, horizon_days=H)
    pd.testing.assert_frame_equal(labels, EXPECTED)


def test_rows_after_the_window_change_nothing() -> None:
    frames = _frames()
    after = "2024-04-03T00:00Z"
    orders = pd.concat(
        [
            frames["orders"],
            pd.DataFrame({"order_id": [990, 991], "customer_id": [4, 8], "ordered_at": [after] * 2,
                          "amount": 5.0, "status": "delivered", "status_at": ["2024-05-01"] * 2}),
        ]
    )
    browsing = pd.concat(
        [
            frames["browsing"],
            pd.DataFrame({"customer_id": [8], "session_id": [900], "ts": ["2024-04-10"],
                          "event": ["view"]}),
        ]
    )
    labels = build_labels(_tables(orders=orders, browsing=browsing), as_of=AS_OF, horizon_days=H)
    pd.testing.assert_frame_equal(labels, EXPECTED)


def test_row_order_does_not_matter() -> None:
    rng = np.random.default_rng(5)
    shuffled = {
        name: frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
        for name, frame in _frames().items()
    }
    labels = build_labels(validate(Tables(**shuffled)), as_of=AS_OF, horizon_days=H)
    pd.testing.assert_frame_equal(labels, EXPECTED)


def test_string_ids() -> None:
    frames = _frames()
    for frame in frames.values():
        frame["customer_id"] = "c" + frame["customer_id"].astype(str)
    labels = build_labels(validate(Tables(**frames)), as_of=AS_OF, horizon_days=H)
    expected = EXPECTED.set_axis(pd.Index([f"c{i}" for i in EXPECTED.index], name="customer_id"))
    pd.testing.assert_frame_equal(labels, expected, check_index_type=False)


def test_optional_tables_absent() -> None:
    frames = _frames()
    tables = validate(Tables(customers=frames["customers"], orders=frames["orders"]))
    labels = build_labels(tables, as_of=AS_OF, horizon_days=H)
    # without browsing and contacts, engagement is the first order only
    assert labels.loc[3, "next_engagement_slot"] is pd.NA
    assert labels.loc[7, "next_engagement_slot"] == 2 * 24 + 12  # Wednesday 12:00 UTC
    assert labels["churned"].equals(EXPECTED["churned"])


def _reference_labels(frames: dict[str, pd.DataFrame], as_of: datetime, h: int) -> pd.DataFrame:
    """Row-by-row labels with the standard library, to check the vectorized version against."""
    stop = as_of + timedelta(days=h)
    rows = {}
    for c in frames["customers"].itertuples():
        if not c.signup_at < as_of:
            continue
        orders = [o.ordered_at for o in frames["orders"].itertuples()
                  if o.customer_id == c.customer_id and as_of <= o.ordered_at < stop]
        seen = list(orders)
        seen += [b.ts for b in frames["browsing"].itertuples()
                 if b.customer_id == c.customer_id and as_of <= b.ts < stop]
        seen += [k.opened_at for k in frames["contacts"].itertuples()
                 if k.customer_id == c.customer_id and pd.notna(k.opened_at)
                 and as_of <= k.opened_at < stop]
        first_order = min(orders) if orders else None
        if seen:
            local = min(seen).to_pydatetime().astimezone(ZoneInfo(c.timezone))
            weekday, hour = local.weekday(), local.hour
        else:
            weekday = hour = None
        rows[c.customer_id] = {
            "churned": first_order is None,
            "days_to_next_order": float(h) if first_order is None
            else (first_order - as_of).total_seconds() / 86400,
            "censored": first_order is None,
            "next_engagement_slot": None if weekday is None else weekday * 24 + hour,
            "next_engagement_weekday": weekday,
            "next_engagement_hour": hour,
        }
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "customer_id"
    for col in ("next_engagement_slot", "next_engagement_weekday", "next_engagement_hour"):
        out[col] = pd.array(out[col].tolist(), dtype="Int64")
    return out.astype({"churned": bool, "censored": bool, "days_to_next_order": "float64"})


def test_matches_row_by_row_reference() -> None:
    rng = np.random.default_rng(42)
    n = 150
    zones = ["UTC", "Europe/Moscow", "Asia/Vladivostok", "America/New_York", "Asia/Kolkata",
             "Australia/Lord_Howe"]  # the last has a 30-minute DST shift
    t0 = pd.Timestamp("2024-01-01", tz="UTC")

    def moments(k: int) -> pd.Series:
        return pd.Series(t0 + pd.to_timedelta(rng.integers(0, 300 * 24 * 60, k), unit="min"))

    customers = pd.DataFrame({"customer_id": np.arange(n), "signup_at": moments(n),
                              "timezone": rng.choice(zones, n)})
    k = 600
    orders = pd.DataFrame({"order_id": np.arange(k), "customer_id": rng.integers(0, n, k),
                           "ordered_at": moments(k), "amount": 1.0, "status": "placed"})
    orders["status_at"] = orders["ordered_at"]
    browsing = pd.DataFrame({"customer_id": rng.integers(0, n, 2 * k), "session_id": 1,
                             "ts": moments(2 * k), "event": "view"})
    sent = moments(k)
    opened = (sent + pd.to_timedelta(rng.integers(0, 20 * 24, k), unit="h")).where(
        rng.random(k) < 0.5
    )
    contacts = pd.DataFrame({"contact_id": np.arange(k), "customer_id": rng.integers(0, n, k),
                             "sent_at": sent, "channel": "email", "action": "we_miss_you",
                             "group": "treatment", "opened_at": opened, "converted_at": pd.NaT})
    frames = {"customers": customers, "orders": orders, "browsing": browsing,
              "contacts": contacts}
    tables = validate(Tables(**frames))
    for as_of in (datetime(2024, 5, 1, tzinfo=ZoneInfo("UTC")),
                  datetime(2024, 7, 15, 13, 30, tzinfo=ZoneInfo("UTC"))):
        got = build_labels(tables, as_of=as_of, horizon_days=60, data_end="2025-01-01")
        expected = _reference_labels(frames, pd.Timestamp(as_of), 60)
        pd.testing.assert_frame_equal(got, expected.loc[got.index], check_index_type=False)
        assert len(got) == len(expected)


# ---------------------------------------------------------------------------------------------
# build_training_set


def _toy_features(tables: Tables, *, as_of) -> pd.DataFrame:
    """Orders strictly before as_of per customer who exists then, in reverse order on purpose."""
    known = tables.until(as_of)
    counts = known.orders.groupby("customer_id").size()
    ids = known.customers["customer_id"]
    out = pd.DataFrame({"n_orders": counts.reindex(ids, fill_value=0).to_numpy()},
                       index=pd.Index(ids, name="customer_id"))
    return out.iloc[::-1]


def test_training_set_stacks_cutoffs() -> None:
    tables = _tables()
    cutoffs = ["2024-03-04", "2024-02-15", "2024-03-04T00:00Z"]  # unsorted, with a duplicate
    out = build_training_set(tables, cutoffs=cutoffs, horizon_days=H, features=_toy_features)
    assert isinstance(out.index, pd.RangeIndex)
    assert list(out.columns) == ["customer_id", "cutoff", "n_orders", *LABEL_COLUMNS]
    assert out["cutoff"].dtype == "datetime64[us, UTC]"
    assert out["cutoff"].is_monotonic_increasing
    assert sorted(out["cutoff"].unique()) == [pd.Timestamp("2024-02-15", tz="UTC"),
                                               pd.Timestamp("2024-03-04", tz="UTC")]
    for cutoff, part in out.groupby("cutoff"):
        labels = build_labels(tables, as_of=cutoff, horizon_days=H)
        pd.testing.assert_frame_equal(
            part.set_index("customer_id")[list(LABEL_COLUMNS)], labels
        )
        assert part["customer_id"].is_monotonic_increasing
    late = out[out["cutoff"] == pd.Timestamp("2024-03-04", tz="UTC")].set_index("customer_id")
    assert late.loc[4, "n_orders"] == 1 and late.loc[1, "n_orders"] == 0


def test_training_set_refuses_late_cutoffs_before_computing() -> None:
    calls = []

    def spy(tables: Tables, *, as_of) -> pd.DataFrame:
        calls.append(as_of)
        return _toy_features(tables, as_of=as_of)

    with pytest.raises(ValueError, match=r"2024-03-10T00:00:00\+00:00.*2024-04-03T00:00:00"):
        build_training_set(_tables(), cutoffs=["2024-02-01", "2024-03-10"], horizon_days=H,
                           features=spy)
    assert calls == []


def test_training_set_checks_features() -> None:
    tables = _tables()

    def clash(tables: Tables, *, as_of) -> pd.DataFrame:
        return _toy_features(tables, as_of=as_of).rename(columns={"n_orders": "churned"})

    with pytest.raises(ValueError, match="clash"):
        build_training_set(tables, cutoffs=[AS_OF], horizon_days=H, features=clash)

    def unindexed(tables: Tables, *, as_of) -> pd.DataFrame:
        return _toy_features(tables, as_of=as_of).reset_index()

    with pytest.raises(ValueError, match="indexed by customer_id"):
        build_training_set(tables, cutoffs=[AS_OF], horizon_days=H, features=unindexed)
    with pytest.raises(ValueError, match="cutoffs is empty"):
        build_training_set(tables, cutoffs=[], horizon_days=H, features=_toy_features)


def test_training_set_inner_join_on_feature_population() -> None:
    def buyers_only(tables: Tables, *, as_of) -> pd.DataFrame:
        feats = _toy_features(tables, as_of=as_of)
        return feats[feats["n_orders"] > 0]

    out = build_training_set(_tables(), cutoffs=[AS_OF], horizon_days=H, features=buyers_only)
    assert out["customer_id"].tolist() == [4]


def test_training_set_features_default_to_build_features() -> None:
    tables = _tables()
    default = build_training_set(tables, cutoffs=[AS_OF], horizon_days=H)
    explicit = build_training_set(tables, cutoffs=[AS_OF], horizon_days=H,
                                  features=build_features)
    pd.testing.assert_frame_equal(default, explicit)
    assert "days_since_last_order" in default.columns
