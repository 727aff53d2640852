"""dsa_transparency — the DSA transparency-report table of a period (e.g. a half-year).

Grain (category, source_type) with rollups category = "ALL", source_type = "ALL" and both:
actions (statements of reasons), fully_automated (automated_decision = AUTOMATED_DECISION_FULLY),
fully_automated_share, median_time_to_action_s (moderation delay application_date - content_date, p50,
negative delays left out and counted in negative_delays) and p90.

Built from statements rather than from sor_daily because a median over a period cannot be recombined
from daily medians. Input: `sor` rows of the period with `content_date_us` / `application_date_us`.
"""

from __future__ import annotations

from collections.abc import Sequence

import narwhals.stable.v2 as nw

from transforms.params import US_PER_S
from transforms.schemas import ALL
from transforms.sor_daily import sor_dedup, sor_key
from transforms.schemas import F64 as _F64
from transforms.schemas import I64 as _I64
from transforms.schemas import STR as _STR

KEYS = ["category", "source_type"]

TRANSPARENCY_SCHEMA: dict[str, nw.dtypes.DType] = {
    "category": _STR,
    "source_type": _STR,
    "actions": _I64,
    "fully_automated": _I64,
    "fully_automated_share": _F64,
    "median_time_to_action_s": _F64,
    "p90_time_to_action_s": _F64,
    "negative_delays": _I64,
}


def dsa_transparency(sor: nw.LazyFrame, *, platforms: Sequence[str] | None = None) -> nw.LazyFrame:
    """The table (TRANSPARENCY_SCHEMA) over every statement of `sor`, optionally of some platforms only.

    Duplicated uuids are counted once, the same copy as sor_daily counts (`sor_dedup`); the platforms
    are those of the copies kept, so a platform's figures agree with its sor_daily rows.
    """
    sor = sor_dedup(sor)
    if platforms is not None:
        sor = sor.filter(nw.col("platform_name").is_in(list(platforms)))
    delay = nw.col("application_date_us") - nw.col("content_date_us")
    rows = (
        sor.select(
            sor_key("category"),
            sor_key("source_type"),
            nw.when((nw.col("automated_decision") == "AUTOMATED_DECISION_FULLY").fill_null(False))
            .then(nw.lit(1, _I64))
            .otherwise(nw.lit(0, _I64))
            .alias("_fully"),
            nw.when((delay < 0).fill_null(False)).then(nw.lit(1, _I64)).otherwise(nw.lit(0, _I64)).alias("_neg"),
            nw.when(delay >= 0).then(delay.cast(_F64) / US_PER_S).otherwise(nw.lit(None, _F64)).alias("_tta_s"),
        )
    )
    aggs = [
        nw.len().cast(_I64).alias("actions"),
        nw.col("_fully").sum().cast(_I64).alias("fully_automated"),
        nw.col("_tta_s").quantile(0.5, interpolation="linear").alias("median_time_to_action_s"),
        nw.col("_tta_s").quantile(0.9, interpolation="linear").alias("p90_time_to_action_s"),
        nw.col("_neg").sum().cast(_I64).alias("negative_delays"),
    ]
    all_ = nw.lit(ALL, _STR)
    levels = [
        rows.group_by(KEYS).agg(*aggs),
        rows.group_by("category").agg(*aggs).with_columns(all_.alias("source_type")),
        rows.group_by("source_type").agg(*aggs).with_columns(all_.alias("category")),
        rows.select(*aggs).with_columns(all_.alias("category"), all_.alias("source_type")),
    ]
    share = (
        nw.when(nw.col("actions") > 0)
        .then(nw.col("fully_automated").cast(_F64) / nw.col("actions").cast(_F64))
        .otherwise(nw.lit(None, _F64))
        .alias("fully_automated_share")
    )
    parts = [
        lvl.with_columns(share).select([nw.col(c).cast(t) for c, t in TRANSPARENCY_SCHEMA.items()]) for lvl in levels
    ]
    return nw.concat(parts, how="vertical").sort(KEYS)
