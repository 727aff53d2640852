"""sor_daily — DSA statements of reasons of one day, grain (platform_name, category) with rollups.

Rows exist for every (platform_name, category) with a statement, for the rollups platform_name = "ALL",
category = "ALL", and both; the ALL/ALL row exists even on a day without statements, so that the day
counts as observed by the trends (transforms.trends). A null platform or category is "(null)", and one
spelled "ALL" is "(ALL)" (`sor_key`).

Input: the day's `sor` rows with the `<ts>_us` epoch-microsecond companions of content_date,
application_date and created_at added by the reader (narwhals has no duration-to-seconds on Spark).
Delays: moderation = application_date - content_date, disclosure = created_at - application_date,
in seconds; a negative delay (content dated after the decision, which platforms do submit) says
nothing about speed, so it is left out of the percentiles and counted instead.
"""

from __future__ import annotations

import narwhals.stable.v2 as nw

from transforms.params import US_PER_S
from transforms.schemas import ALL
from transforms.schemas import F64 as _F64
from transforms.schemas import I64 as _I64
from transforms.schemas import STR as _STR

KEYS = ["platform_name", "category"]


# Flag column -> the condition it counts; each becomes an int64 count in the output.
_FLAGS: dict[str, nw.Expr] = {
    "automated_detection": nw.col("automated_detection") == "Yes",
    "automated_fully": nw.col("automated_decision") == "AUTOMATED_DECISION_FULLY",
    "automated_partially": nw.col("automated_decision") == "AUTOMATED_DECISION_PARTIALLY",
    "automated_not": nw.col("automated_decision") == "AUTOMATED_DECISION_NOT_AUTOMATED",
    "source_article_16": nw.col("source_type") == "SOURCE_ARTICLE_16",
    "source_trusted_notifier": nw.col("source_type") == "SOURCE_TRUSTED_NOTIFIER",
    "source_other_notification": nw.col("source_type") == "SOURCE_TYPE_OTHER_NOTIFICATION",
    "source_voluntary": nw.col("source_type") == "SOURCE_VOLUNTARY",
    "ground_illegal": nw.col("decision_ground") == "DECISION_GROUND_ILLEGAL_CONTENT",
    "ground_incompatible": nw.col("decision_ground") == "DECISION_GROUND_INCOMPATIBLE_CONTENT",
    "restriction_visibility": ~nw.col("decision_visibility").is_null(),
    "restriction_monetary": ~nw.col("decision_monetary").is_null(),
    "restriction_provision": ~nw.col("decision_provision").is_null(),
    "restriction_account": ~nw.col("decision_account").is_null(),
    "visibility_removed": nw.col("decision_visibility").list.contains("DECISION_VISIBILITY_CONTENT_REMOVED"),
    "visibility_disabled": nw.col("decision_visibility").list.contains("DECISION_VISIBILITY_CONTENT_DISABLED"),
    "visibility_demoted": nw.col("decision_visibility").list.contains("DECISION_VISIBILITY_CONTENT_DEMOTED"),
    "account_suspended": nw.col("decision_account") == "DECISION_ACCOUNT_SUSPENDED",
    "account_terminated": nw.col("decision_account") == "DECISION_ACCOUNT_TERMINATED",
}

SOR_DAILY_SCHEMA: dict[str, nw.dtypes.DType] = {
    "platform_name": _STR,
    "category": _STR,
    "statements": _I64,
    **{flag: _I64 for flag in _FLAGS},
    "automated_detection_rate": _F64,
    "fully_automated_rate": _F64,
    "moderation_delay_p50_s": _F64,
    "moderation_delay_p90_s": _F64,
    "negative_moderation_delay": _I64,
    "disclosure_delay_p50_s": _F64,
    "disclosure_delay_p90_s": _F64,
    "negative_disclosure_delay": _I64,
}

SOR_INPUT_COLUMNS: tuple[str, ...] = (
    "uuid", "platform_name", "category", "automated_detection", "automated_decision", "source_type",
    "decision_ground", "decision_visibility", "decision_monetary", "decision_provision", "decision_account",
    "content_date_us", "application_date_us", "created_at_us",
)  # fmt: skip


def _count(cond: nw.Expr) -> nw.Expr:
    # A null condition (null enum, null list) is not a match.
    return nw.when(cond.fill_null(False)).then(nw.lit(1, _I64)).otherwise(nw.lit(0, _I64))


def sor_key(column: str) -> nw.Expr:
    """A grouping column of the DSA tables: null is "(null)", and a value spelled like the rollup's ALL
    is "(ALL)", so that it is not merged into a rollup row (which would make the grain repeat)."""
    value = nw.col(column)
    return nw.when(value == nw.lit(ALL)).then(nw.lit(f"({ALL})")).otherwise(value).fill_null("(null)").cast(_STR).alias(column)


def _delay(later_us: str, earlier_us: str) -> nw.Expr:
    return nw.col(later_us) - nw.col(earlier_us)


def sor_dedup(sor: nw.LazyFrame) -> nw.LazyFrame:
    """One row per uuid; only the columns used.

    Copies of a uuid usually carry the same statement, but copies in different chunks may differ:
    the one kept is the first by its own columns (created_at first), not by the order the chunk
    files were read in, so a rerun counts the same copy. Rows tied on every column kept are equal.
    """
    order = ["created_at_us", *(c for c in SOR_INPUT_COLUMNS if c not in ("uuid", "created_at_us"))]
    return sor.select(SOR_INPUT_COLUMNS).unique(subset=["uuid"], keep="first", order_by=order)


def sor_duplicates(sor: nw.LazyFrame) -> nw.LazyFrame:
    """One row: rows, distinct_uuids, duplicate_uuids (rows dropped by sor_dedup)."""
    return sor.select(
        nw.len().cast(_I64).alias("rows"),
        nw.col("uuid").n_unique().cast(_I64).alias("distinct_uuids"),
    ).with_columns((nw.col("rows") - nw.col("distinct_uuids")).alias("duplicate_uuids"))


def _rows(sor: nw.LazyFrame) -> nw.LazyFrame:
    mod = _delay("application_date_us", "content_date_us")
    dis = _delay("created_at_us", "application_date_us")
    return sor.select(
        sor_key("platform_name"),
        sor_key("category"),
        *[_count(cond).alias(flag) for flag, cond in _FLAGS.items()],
        _count(mod < 0).alias("negative_moderation_delay"),
        _count(dis < 0).alias("negative_disclosure_delay"),
        nw.when(mod >= 0).then(mod.cast(_F64) / US_PER_S).otherwise(nw.lit(None, _F64)).alias("_mod_s"),
        nw.when(dis >= 0).then(dis.cast(_F64) / US_PER_S).otherwise(nw.lit(None, _F64)).alias("_dis_s"),
    )


def _aggs() -> list[nw.Expr]:
    return [
        nw.len().cast(_I64).alias("statements"),
        *[nw.col(flag).sum().cast(_I64).alias(flag) for flag in _FLAGS],
        nw.col("negative_moderation_delay").sum().cast(_I64),
        nw.col("negative_disclosure_delay").sum().cast(_I64),
        nw.col("_mod_s").quantile(0.5, interpolation="linear").alias("moderation_delay_p50_s"),
        nw.col("_mod_s").quantile(0.9, interpolation="linear").alias("moderation_delay_p90_s"),
        nw.col("_dis_s").quantile(0.5, interpolation="linear").alias("disclosure_delay_p50_s"),
        nw.col("_dis_s").quantile(0.9, interpolation="linear").alias("disclosure_delay_p90_s"),
    ]


def _rate(num: str) -> nw.Expr:
    return (
        nw.when(nw.col("statements") > 0)
        .then(nw.col(num).cast(_F64) / nw.col("statements").cast(_F64))
        .otherwise(nw.lit(None, _F64))
    )


def sor_daily(sor: nw.LazyFrame, *, dedup: bool = True) -> nw.LazyFrame:
    """The day's sor_daily table (columns and types of SOR_DAILY_SCHEMA), sorted by its grain.

    `dedup` drops duplicated uuids first (across the chunks and parts of the day); pass False only for
    input already deduplicated.
    """
    rows = _rows(sor_dedup(sor) if dedup else sor)
    by_both = rows.group_by(KEYS).agg(*_aggs())
    by_platform = rows.group_by("platform_name").agg(*_aggs()).with_columns(nw.lit(ALL, _STR).alias("category"))
    by_category = rows.group_by("category").agg(*_aggs()).with_columns(nw.lit(ALL, _STR).alias("platform_name"))
    # A global aggregation yields its row on an empty day too, which keeps the day observed.
    total = rows.select(*_aggs()).with_columns(
        nw.lit(ALL, _STR).alias("platform_name"), nw.lit(ALL, _STR).alias("category")
    )
    cols = list(SOR_DAILY_SCHEMA)
    parts = [f.with_columns(
        _rate("automated_detection").alias("automated_detection_rate"),
        _rate("automated_fully").alias("fully_automated_rate"),
    ).select([nw.col(c).cast(t) for c, t in SOR_DAILY_SCHEMA.items()]) for f in (by_both, by_platform, by_category, total)]  # fmt: skip
    return nw.concat(parts, how="vertical").sort(KEYS).select(cols)
