"""Trend statistics over a daily measure, shared by violation_trends and the DSA sor trends.

Semantics (DESIGN §4, violation_trends): a day is observed when its daily partition exists, so the
history holds one row per key combination per observed day, and every observed day has at least
one row (the ALL/ALL rollup). On an observed day a missing combination counts 0; an unobserved day
is missing, not zero.
"""

from __future__ import annotations

import datetime as dt

import narwhals.stable.v2 as nw

from transforms.params import TrendParams

DS = "ds"


def _window(frame: nw.LazyFrame, first: dt.date, last: dt.date) -> nw.LazyFrame:
    return frame.filter((nw.col(DS) >= nw.lit(first)) & (nw.col(DS) <= nw.lit(last)))


def trend_table(
    history: nw.LazyFrame, ds: dt.date, keys: list[str], measure: str, params: TrendParams
) -> nw.LazyFrame:
    """One row per key combination seen on an observed day of ds-window..ds.

    Columns: keys, <measure> (on ds), <measure>_7d_mean, baseline_days, baseline_mean,
    baseline_std, zscore, wow_change, is_anomaly, direction.
    """
    start = ds - dt.timedelta(days=params.window_days)
    # The week's figures reach back 7 days even when the baseline window is shorter.
    hist = _window(history.select([DS, *keys, measure]), ds - dt.timedelta(days=params.history_days), ds)
    combos = _window(hist, start, ds).select(keys).unique(keys)
    days = hist.select(DS).unique([DS])
    dense = (
        combos.join(days, how="cross")
        .join(hist, on=[DS, *keys], how="left")
        .with_columns(nw.col(measure).fill_null(0).cast(nw.Float64).alias("_x"))
    )
    today = _window(dense, ds, ds).select(*keys, nw.col("_x").alias("_today"))
    week = _window(dense, ds - dt.timedelta(days=6), ds).group_by(keys).agg(nw.col("_x").mean().alias("_mean7"))
    baseline = (
        _window(dense, start, ds - dt.timedelta(days=1))
        .group_by(keys)
        .agg(
            nw.len().cast(nw.Int64).alias("baseline_days"),
            nw.col("_x").mean().alias("baseline_mean"),
            nw.col("_x").std(ddof=1).alias("baseline_std"),
        )
    )
    week_ago = _window(dense, ds - dt.timedelta(days=7), ds - dt.timedelta(days=7)).select(
        *keys, nw.col("_x").alias("_week_ago")
    )
    z = nw.col("zscore")
    out = (
        combos.join(today, on=keys, how="left")
        .join(week, on=keys, how="left")
        .join(baseline, on=keys, how="left")
        .join(week_ago, on=keys, how="left")
        .with_columns(
            nw.col("baseline_days").fill_null(0).cast(nw.Int64),
            # Spark gives NaN where Polars gives null for the std of one value: both mean "undefined".
            nw.when(nw.col("baseline_std").is_nan().fill_null(True))
            .then(nw.lit(None, nw.Float64))
            .otherwise(nw.col("baseline_std"))
            .alias("baseline_std"),
        )
        .with_columns(
            zscore=nw.when(
                (nw.col("baseline_days") >= params.min_baseline_days) & (nw.col("baseline_std").fill_null(0) > 0)
            )
            .then((nw.col("_today") - nw.col("baseline_mean")) / nw.col("baseline_std"))
            .otherwise(nw.lit(None, nw.Float64)),
            wow_change=nw.when(nw.col("_week_ago").fill_null(0) > 0)
            .then(nw.col("_today") / nw.col("_week_ago") - 1.0)
            .otherwise(nw.lit(None, nw.Float64)),
        )
        .with_columns(
            is_anomaly=(
                (z.abs() >= params.zscore_threshold)
                & (nw.max_horizontal(nw.col("_today"), nw.col("baseline_mean")) >= params.min_volume)
            ).fill_null(False),
        )
        .with_columns(
            direction=nw.when(nw.col("is_anomaly") & (z > 0))
            .then(nw.lit("spike"))
            .when(nw.col("is_anomaly") & (z < 0))
            .then(nw.lit("drop"))
            .otherwise(nw.lit(None, nw.String)),
        )
        .with_columns(
            nw.col("_today").fill_null(0).cast(nw.Int64).alias(measure),
            nw.col("_mean7").alias(f"{measure}_7d_mean"),
        )
    )
    return out.select(
        *keys,
        measure,
        f"{measure}_7d_mean",
        "baseline_days",
        "baseline_mean",
        "baseline_std",
        "zscore",
        "wow_change",
        "is_anomaly",
        "direction",
    )
