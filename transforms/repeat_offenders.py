"""creator_category_daily (the small daily intermediate), repeat_offenders and its per-category view.

creator_category_daily — grain (ds, creator_id, policy_category): staged violations of the day and
the last decided_at. repeat_offenders — grain (ds, creator_id): creators with at least
`min_violations` staged violations decided in ds-29..ds, read from the intermediate so a run never
rescans 30 days of decisions. offender_categories — grain (ds, policy_category): how many of those
creators broke the category in the window, and their violations of it (the report's figure).

repeat_offenders and offender_categories come from one aggregation of the window,
`offender_pairs`, so the window is read once. The window and threshold are the [offenders] config
keys (defaults window_days 30, min_violations 3). Columns (types in transforms.schemas.OUTPUT_SCHEMAS;
DESIGN §4):

creator_category_daily:
    creator_id, policy_category  string  the grain
    violations          int64    staged violations of ds (outcome = violation)
    last_violation_at   timestamp[us, UTC]  the latest decided_at among them

repeat_offenders:
    creator_id          string   the grain
    violations_30d      int64    the creator's violations in ds-29..ds (a day never published counts none)
    distinct_categories int64    policy categories among them
    last_violation_at   timestamp[us, UTC]  the latest decided_at among them

offender_categories (the manifest's `offender_categories`, not a table): policy_category, creators
(repeat offenders with a violation of it in the window), violations (theirs, of it).
"""

from __future__ import annotations

import datetime as dt

import narwhals.stable.v2 as nw

from transforms.params import Params
from transforms.schemas import OUTPUT_SCHEMAS, select_schema

DS = "ds"
OFFENDER_CATEGORIES = "offender_categories"
_CREATOR_TOTAL = "_violations_30d"
OFFENDER_CATEGORIES_SCHEMA: dict[str, nw.dtypes.DType] = {
    "policy_category": nw.String(),
    "creators": nw.Int64(),
    "violations": nw.Int64(),
}


def creator_category_daily(decisions: nw.LazyFrame) -> nw.LazyFrame:
    out = (
        decisions.filter(nw.col("outcome") == "violation")
        .group_by("creator_id", "policy_category")
        .agg(
            nw.len().cast(nw.Int64).alias("violations"),
            nw.col("decided_at").max().alias("last_violation_at"),
        )
    )
    return select_schema(out, OUTPUT_SCHEMAS["creator_category_daily"])


def window_pairs(creator_category_history: nw.LazyFrame, first: dt.date, last: dt.date) -> nw.LazyFrame:
    """One row per (creator, category) with violations in first..last: their sum and the last one.

    `creator_category_history`: creator_category_daily rows with a `ds` date column."""
    return (
        creator_category_history.filter((nw.col(DS) >= nw.lit(first)) & (nw.col(DS) <= nw.lit(last)))
        .group_by("creator_id", "policy_category")
        .agg(
            nw.col("violations").sum().cast(nw.Int64).alias("violations"),
            nw.col("last_violation_at").max().alias("last_violation_at"),
        )
    )


def offender_pairs(creator_category_history: nw.LazyFrame, params: Params) -> nw.LazyFrame:
    """window_pairs of ds-29..ds, kept for the creators that are repeat offenders.

    `creator_category_history`: creator_category_daily rows with a `ds` date column (ds included).
    """
    first = params.ds - dt.timedelta(days=params.offenders.window_days - 1)
    # A column, then a filter: Spark allows no window function inside a filter.
    return (
        window_pairs(creator_category_history, first, params.ds)
        .with_columns(nw.col("violations").sum().over("creator_id").alias(_CREATOR_TOTAL))
        .filter(nw.col(_CREATOR_TOTAL) >= params.offenders.min_violations)
        .drop(_CREATOR_TOTAL)
    )


def offenders_of(pairs: nw.LazyFrame) -> nw.LazyFrame:
    """repeat_offenders from `offender_pairs`: each pair is one distinct category of its creator."""
    out = pairs.group_by("creator_id").agg(
        nw.col("violations").sum().cast(nw.Int64).alias("violations_30d"),
        nw.len().cast(nw.Int64).alias("distinct_categories"),
        nw.col("last_violation_at").max().alias("last_violation_at"),
    )
    return select_schema(out, OUTPUT_SCHEMAS["repeat_offenders"])


def offender_categories(pairs: nw.LazyFrame) -> nw.LazyFrame:
    """Per category: the repeat offenders that broke it in the window, and their violations of it.

    `pairs` needs creator_id, policy_category and violations, one row per (creator, category)."""
    out = pairs.group_by("policy_category").agg(
        nw.len().cast(nw.Int64).alias("creators"),
        nw.col("violations").sum().cast(nw.Int64).alias("violations"),
    )
    return select_schema(out, OFFENDER_CATEGORIES_SCHEMA)


def add_offender_categories(partials: nw.LazyFrame) -> nw.LazyFrame:
    """offender_categories of disjoint sets of creators (parts of the key), added up."""
    out = partials.group_by("policy_category").agg(
        nw.col("creators").sum().cast(nw.Int64).alias("creators"),
        nw.col("violations").sum().cast(nw.Int64).alias("violations"),
    )
    return select_schema(out, OFFENDER_CATEGORIES_SCHEMA)


def offender_tables(pairs: nw.LazyFrame) -> dict[str, nw.LazyFrame]:
    """Both tables of `offender_pairs`: repeat_offenders, and offender_categories to be added up
    with add_offender_categories when the pairs come in parts."""
    return {"repeat_offenders": offenders_of(pairs), OFFENDER_CATEGORIES: offender_categories(pairs)}


def repeat_offenders(creator_category_history: nw.LazyFrame, params: Params) -> nw.LazyFrame:
    """`creator_category_history`: creator_category_daily rows with a `ds` date column (ds included)."""
    return offenders_of(offender_pairs(creator_category_history, params))
