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


def _baseline(days: nw.LazyFrame, keys: list[str]) -> nw.LazyFrame:
    """baseline_days, baseline_mean and baseline_std (sample) of the integer measure `_xi` per key.

    From integer sums only, so every run gives the same bits: a float mean and std depend on the
    order their rows are added in, which joins and parallel aggregation vary from run to run, and
    |z| = 3 exactly came out 2.9999999999999996 in some runs and 3.0 in others (an anomaly or not).
    The deviations are taken from an integer pivot near the mean (floor(sum / n)), so their sums
    stay small and exact, and the variance (sum d^2 - (sum d)^2 / n) / (n - 1) loses nothing to
    cancellation.
    """
    n = nw.col("baseline_days").cast(nw.Float64)
    pivot = days.group_by(keys).agg(nw.len().cast(nw.Int64).alias("_n"), nw.col("_xi").sum().alias("_s1")).select(
        *keys, (nw.col("_s1") // nw.col("_n")).alias("_pivot")
    )
    sums = (
        days.join(pivot, on=keys, how="left")
        .with_columns((nw.col("_xi") - nw.col("_pivot")).alias("_d"))
        .group_by(keys)
        .agg(
            nw.len().cast(nw.Int64).alias("baseline_days"),
            nw.col("_pivot").max(),
            nw.col("_d").sum().alias("_sd"),
            (nw.col("_d") * nw.col("_d")).sum().alias("_sd2"),
        )
    )
    sd = nw.col("_sd").cast(nw.Float64)
    variance = (nw.col("_sd2").cast(nw.Float64) - sd * sd / n) / (n - 1.0)
    return sums.select(
        *keys,
        "baseline_days",
        (nw.col("_pivot").cast(nw.Float64) + sd / n).alias("baseline_mean"),
        # The std of one value is undefined (null), as a sample std.
        nw.when(nw.col("baseline_days") >= 2).then(variance.sqrt()).otherwise(nw.lit(None, nw.Float64)).alias("baseline_std"),
    )


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
        .with_columns(nw.col(measure).fill_null(0).cast(nw.Int64).alias("_xi"))
    )
    today = _window(dense, ds, ds).select(*keys, nw.col("_xi").cast(nw.Float64).alias("_today"))
    week = (
        _window(dense, ds - dt.timedelta(days=6), ds)
        .group_by(keys)
        .agg(nw.col("_xi").sum().alias("_s7"), nw.len().alias("_n7"))
        .select(*keys, (nw.col("_s7").cast(nw.Float64) / nw.col("_n7").cast(nw.Float64)).alias("_mean7"))
    )
    baseline = _baseline(_window(dense, start, ds - dt.timedelta(days=1)), keys)
    week_ago = _window(dense, ds - dt.timedelta(days=7), ds - dt.timedelta(days=7)).select(
        *keys, nw.col("_xi").cast(nw.Float64).alias("_week_ago")
    )
    z = nw.col("zscore")
    out = (
        combos.join(today, on=keys, how="left")
        .join(week, on=keys, how="left")
        .join(baseline, on=keys, how="left")
        .join(week_ago, on=keys, how="left")
        .with_columns(nw.col("baseline_days").fill_null(0).cast(nw.Int64))
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
