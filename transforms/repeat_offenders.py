"""creator_category_daily (the small daily intermediate) and repeat_offenders.

creator_category_daily — grain (ds, creator_id, policy_category): staged violations of the day and
the last decided_at. repeat_offenders — grain (ds, creator_id): creators with at least
`min_violations` staged violations decided in ds-29..ds, read from the intermediate so a run never
rescans 30 days of decisions.
"""

from __future__ import annotations

import datetime as dt

import narwhals.stable.v2 as nw

from transforms.params import Params
from transforms.schemas import OUTPUT_SCHEMAS, select_schema

DS = "ds"


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


def repeat_offenders(creator_category_history: nw.LazyFrame, params: Params) -> nw.LazyFrame:
    """`creator_category_history`: creator_category_daily rows with a `ds` date column (ds included)."""
    first = params.ds - dt.timedelta(days=params.offenders.window_days - 1)
    out = (
        creator_category_history.filter((nw.col(DS) >= nw.lit(first)) & (nw.col(DS) <= nw.lit(params.ds)))
        .group_by("creator_id")
        .agg(
            nw.col("violations").sum().cast(nw.Int64).alias("violations_30d"),
            nw.col("policy_category").n_unique().cast(nw.Int64).alias("distinct_categories"),
            nw.col("last_violation_at").max().alias("last_violation_at"),
        )
        .filter(nw.col("violations_30d") >= params.offenders.min_violations)
    )
    return select_schema(out, OUTPUT_SCHEMAS["repeat_offenders"])
