"""Training labels: what each customer did in the window ``[as_of, as_of + horizon)`` (UTC).

A label looks only inside its window (docs/architecture.md "The `as_of` rule": "a label looks only
at [as_of, as_of + horizon)"), so features built strictly before ``as_of`` and labels built from
``as_of`` on never share a row. A window that the data do not fully cover is refused rather than
silently read as "no order": the customer may well have ordered after the data were extracted.

Labels per customer who exists at ``as_of`` (``signup_at < as_of``):

``churned``
    No order placed in the window. A cancelled (or later returned, lost, ...) order still counts
    as an order: placing it is the customer coming back, which is what the churn label measures;
    the order's fate is a feature of the *next* cutoff, not part of this label.
``days_to_next_order``, ``censored``
    Days (float) from ``as_of`` to the first order in the window; when there is none it is
    censored at the horizon (``days_to_next_order == horizon_days`` and ``censored``), the usual
    survival-analysis encoding for the timing model.
``next_engagement_slot``, ``next_engagement_weekday``, ``next_engagement_hour``
    When the customer next showed up, in *their* local time (``customers.timezone``, IANA): the
    first order, browsing event or opened contact (``contacts.opened_at``) in the window. Slot is
    the hour of the week, Monday 00:00 local = 0 .. Sunday 23:00 = 167; weekday 0 = Monday; hour
    0..23. Missing (``<NA>``) when the customer did not engage in the window. These are the
    targets of "when to reach the customer" (docs/domain.md: the customer's own active hours and
    days).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from churnkit.data.contract import TABLES, as_utc_timestamp
from churnkit.data.tables import Tables
from churnkit.data.validation import validated
from churnkit.features import build_features

LABEL_COLUMNS = (
    "churned",
    "days_to_next_order",
    "censored",
    "next_engagement_slot",
    "next_engagement_weekday",
    "next_engagement_hour",
)
_DAY = pd.Timedelta(days=1)
#: (table, time column) pairs that count as the customer engaging with the shop.
_ENGAGEMENTS = (("orders", "ordered_at"), ("browsing", "ts"), ("contacts", "opened_at"))

FeatureBuilder = Callable[..., pd.DataFrame]


def latest_timestamp(tables: Tables) -> pd.Timestamp:
    """The latest timestamp in any timestamp column of any present table (UTC).

    The data were extracted at or after this moment, so it is the latest end of the observation
    period that the data themselves prove. Label windows must end at or before it unless the
    caller knows better (``data_end=``).
    """
    tables = validated(tables)
    latest: pd.Timestamp | None = None
    for name, frame in tables.items():
        for col in TABLES[name].columns:
            if col.kind != "timestamp" or col.name not in frame.columns or frame.empty:
                continue
            value = frame[col.name].max()
            if value is not pd.NaT and pd.notna(value) and (latest is None or value > latest):
                latest = value
    if latest is None:
        raise ValueError("the tables hold no timestamps; pass data_end= explicitly")
    return as_utc_timestamp(latest, name="data_end")


def build_labels(
    tables: Tables,
    *,
    as_of,
    horizon_days: int = 90,
    data_end=None,
) -> pd.DataFrame:
    """Labels of every customer who exists at ``as_of``, from the window ``[as_of, as_of + h)``.

    Parameters
    ----------
    tables
        The shop's tables; validated here if they are not already (:func:`churnkit.validate`).
    as_of
        Start of the label window (UTC; a naive value is read as UTC). Required: there is no
        default "now".
    horizon_days
        Window length h in days (a positive whole number).
    data_end
        When the data stop being complete (UTC). Defaults to :func:`latest_timestamp`, the latest
        timestamp in the tables; pass the extraction time when you know it.

    Returns
    -------
    pandas.DataFrame
        Index ``customer_id`` (customers with ``signup_at < as_of``, in customer order), columns
        ``churned`` (bool), ``days_to_next_order`` (float64 days, ``h`` when censored),
        ``censored`` (bool), ``next_engagement_slot`` (Int64, 0..167, local hour of the week),
        ``next_engagement_weekday`` (Int64, 0 = Monday), ``next_engagement_hour`` (Int64, 0..23,
        local); see the module docstring.

    Raises
    ------
    ValueError
        ``as_of + h`` is after ``data_end``: the window is not fully observed, and a customer who
        ordered after the extraction would wrongly look churned.
    """
    tables = validated(tables)
    start = as_utc_timestamp(as_of)
    horizon = _horizon(horizon_days)
    end = latest_timestamp(tables) if data_end is None else as_utc_timestamp(data_end,
                                                                              name="data_end")
    _check_window(start, horizon, end, what="as_of")
    return _labels(tables, start, start + horizon, horizon_days)


def build_training_set(
    tables: Tables,
    *,
    cutoffs: Iterable,
    horizon_days: int = 90,
    features: FeatureBuilder | None = None,
    data_end=None,
) -> pd.DataFrame:
    """Stack ``features(as_of=cutoff)`` joined with ``build_labels(as_of=cutoff)`` over cutoffs.

    Parameters
    ----------
    tables
        The shop's tables; validated here if they are not already.
    cutoffs
        The ``as_of`` dates (UTC; naive read as UTC). Duplicates are dropped and the rows come in
        cutoff order. Every cutoff's window ``[cutoff, cutoff + h)`` must end by ``data_end``;
        otherwise nothing is computed and the error names each offending cutoff.
    horizon_days
        Label window length in days.
    features
        ``features(tables, as_of=cutoff) -> DataFrame`` indexed by ``customer_id``, which must use
        only what was known strictly before ``cutoff``. Defaults to
        :func:`churnkit.features.build_features`.
    data_end
        As for :func:`build_labels`.

    Returns
    -------
    pandas.DataFrame
        Plain ``RangeIndex``; columns ``customer_id``, ``cutoff`` (UTC timestamp), the feature
        columns, then the label columns (:data:`LABEL_COLUMNS`). One row per customer and cutoff
        for customers who exist at the cutoff *and* have a feature row (an inner join: a feature
        builder that restricts its population restricts the training set), sorted by cutoff then
        customer.

    Raises
    ------
    ValueError
        No cutoffs; a cutoff's window runs past ``data_end``; feature columns clash with
        ``customer_id``, ``cutoff`` or a label column; features not indexed by ``customer_id``.
    ImportError
        ``features`` is None and :mod:`churnkit.features` is not available.
    """
    tables = validated(tables)
    horizon = _horizon(horizon_days)
    points = sorted({as_utc_timestamp(c, name="cutoff") for c in cutoffs})
    if not points:
        raise ValueError("cutoffs is empty; give at least one as_of date")
    end = latest_timestamp(tables) if data_end is None else as_utc_timestamp(data_end,
                                                                              name="data_end")
    # Check every cutoff before computing anything: a long run should not fail at its last cutoff.
    late = [c for c in points if c + horizon > end]
    if late:
        shown = ", ".join(
            f"{c.isoformat()} (window ends {(c + horizon).isoformat()})" for c in late
        )
        raise ValueError(
            f"the {horizon_days}-day label windows of cutoff(s) {shown} run past the end of the "
            f"data ({end.isoformat()}); use cutoffs at or before "
            f"{(end - horizon).isoformat()}, or pass data_end= if the data cover more"
        )
    if features is None:
        features = build_features

    parts = []
    for cutoff in points:
        labels = _labels(tables, cutoff, cutoff + horizon, horizon_days)
        feats = features(tables, as_of=cutoff)
        parts.append(_join(feats, labels, cutoff))
    return pd.concat(parts, ignore_index=True)


# ---------------------------------------------------------------------------------------------


def _horizon(horizon_days: object) -> pd.Timedelta:
    if (
        isinstance(horizon_days, bool)
        or not isinstance(horizon_days, numbers.Integral)
        or horizon_days <= 0
    ):
        raise ValueError(f"horizon_days must be a positive whole number of days, got "
                         f"{horizon_days!r}")
    return pd.Timedelta(days=int(horizon_days))


def _check_window(start: pd.Timestamp, horizon: pd.Timedelta, end: pd.Timestamp, *,
                  what: str) -> None:
    if start + horizon > end:
        raise ValueError(
            f"the label window [{what}, {what} + {horizon.days} days) = [{start.isoformat()}, "
            f"{(start + horizon).isoformat()}) runs past the end of the data ({end.isoformat()}): "
            "orders after the data end are unknown, so churn labels would be wrong; use "
            f"{what} <= {(end - horizon).isoformat()}, or pass data_end= if the data cover more"
        )


def _first_in_window(
    frame: pd.DataFrame | None, column: str, start: pd.Timestamp, stop: pd.Timestamp
) -> pd.Series:
    """Earliest ``column`` per customer among rows with ``start <= column < stop``."""
    if frame is None:
        return pd.Series(dtype="datetime64[us, UTC]")
    times = frame[column]
    inside = (times >= start) & (times < stop)  # NaT compares False: unopened contacts drop out
    return times[inside].groupby(frame["customer_id"][inside], sort=False).min()


def _labels(tables: Tables, start: pd.Timestamp, stop: pd.Timestamp, horizon_days: int
            ) -> pd.DataFrame:
    customers = tables.customers
    exists = (customers["signup_at"] < start).to_numpy()
    ids = pd.Index(customers["customer_id"].to_numpy()[exists], name="customer_id")
    zones = customers["timezone"].to_numpy()[exists]

    first_order = _first_in_window(tables.orders, "ordered_at", start, stop).reindex(ids)
    churned = first_order.isna().to_numpy()
    days = ((first_order - start) / _DAY).to_numpy(dtype="float64", na_value=np.nan)
    days = np.where(churned, float(horizon_days), days)

    firsts = [
        _first_in_window(tables.get(name), column, start, stop) for name, column in _ENGAGEMENTS
    ]
    engaged = pd.concat([s for s in firsts if len(s)] or [firsts[0]])
    engaged = engaged.groupby(level=0, sort=False).min().reindex(ids)
    weekday, hour = _local_weekday_hour(engaged, zones)

    missing = weekday < 0

    def nullable(values: np.ndarray) -> pd.arrays.IntegerArray:
        return pd.arrays.IntegerArray(np.where(missing, 0, values), missing.copy())

    return pd.DataFrame(
        {
            "churned": churned,
            "days_to_next_order": days,
            "censored": churned.copy(),
            "next_engagement_slot": nullable(weekday * 24 + hour),
            "next_engagement_weekday": nullable(weekday),
            "next_engagement_hour": nullable(hour),
        },
        index=ids,
    )


def _local_weekday_hour(moments: pd.Series, zones: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local weekday (0 = Monday) and hour of UTC ``moments``, -1 where the moment is missing.

    Converted one time zone at a time: shops have few zones, and a vectorized conversion per zone
    is far faster than a per-row one.
    """
    weekday = np.full(len(moments), -1, dtype="int64")
    hour = np.full(len(moments), -1, dtype="int64")
    present = moments.notna().to_numpy()
    if not present.any():
        return weekday, hour
    positions = np.flatnonzero(present)
    by_zone = pd.Series(positions).groupby(zones[present], sort=False).indices
    for zone, idx in by_zone.items():
        rows = positions[idx]
        local = moments.iloc[rows].dt.tz_convert(zone)
        weekday[rows] = local.dt.day_of_week.to_numpy()
        hour[rows] = local.dt.hour.to_numpy()
    return weekday, hour


def _join(feats: pd.DataFrame, labels: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    if not isinstance(feats, pd.DataFrame) or feats.index.name != "customer_id":
        raise ValueError(
            f"features for cutoff {cutoff.isoformat()} must be a DataFrame indexed by customer_id"
        )
    if not feats.index.is_unique:
        raise ValueError(f"features for cutoff {cutoff.isoformat()} repeat some customer_id")
    clash = sorted(set(feats.columns) & ({"customer_id", "cutoff"} | set(LABEL_COLUMNS)))
    if clash:
        raise ValueError(f"feature columns {clash} clash with the training set's own columns")
    keep = labels.index.isin(feats.index)
    if not keep.any() and len(feats) and len(labels):
        raise ValueError(
            f"features and labels share no customer_id at cutoff {cutoff.isoformat()} "
            f"(feature index dtype {feats.index.dtype}, labels {labels.index.dtype})"
        )
    labels = labels[keep]
    # Label order (customer order of the validated tables), so the result does not depend on the
    # order in which the feature builder returns its rows.
    aligned = feats.reindex(labels.index)
    stamp = pd.Series(cutoff, index=labels.index, dtype="datetime64[us, UTC]", name="cutoff")
    return pd.concat([stamp, aligned, labels], axis=1).reset_index()
