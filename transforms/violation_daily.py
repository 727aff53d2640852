"""violation_daily — grain (ds, market, policy_category), with ALL rollups.

Over staged violations plus staged appeals resolved on ds (appeals of automated decisions
included). Rows: every (market, category) with an actioned violation or a resolved appeal, and the
rollups (ALL, category), (market, ALL), (ALL, ALL); the ALL/ALL row exists every day.
Every rate is over `actioned` except overturn_rate (over appeals_resolved), and null when its
denominator is 0. tta (time to action) = decided_at - content_created_at, in seconds. Columns
(types in transforms.schemas.OUTPUT_SCHEMAS; DESIGN §4):

    market, policy_category  string   the grain, "ALL" in the rollups; a null market, or a market or
                                      category spelled ALL, is grouped as UNKNOWN by staging
    actioned            int64    staged decisions with outcome = violation (0 on a row of appeals only)
    proactive           int64    of them, detection_source in [job] proactive_sources
    proactive_rate      float64  proactive / actioned
    automated           int64    of them, decision_mode = automated
    automated_rate      float64  automated / actioned
    zero_view           int64    of them, views_before_action = 0 (a null view count is not zero)
    zero_view_rate      float64  zero_view / actioned
    within_24h          int64    of them, tta <= 86400 s (a null content_created_at is not within)
    within_24h_rate     float64  within_24h / actioned
    tta_p50_s           float64  median tta (exact, linear interpolation; null tta left out)
    tta_p90_s           float64  90th percentile of tta
    removed             int64    of them, action = remove
    appeals_resolved    int64    staged appeals resolved on ds, by the appealed decision's market and category
    appeals_overturned  int64    of them, appeal_outcome = overturned
    overturn_rate       float64  appeals_overturned / appeals_resolved
"""

from __future__ import annotations

import narwhals.stable.v2 as nw

from transforms._expr import AggregateSets, aggregate_sets, flag, is_in, outer_combine, ratio, seconds_between
from transforms.params import Params
from transforms.schemas import ALL, OUTPUT_SCHEMAS, select_schema

KEY = ["market", "policy_category"]
# Each grouping set names the key columns kept; the others become ALL.
GROUPING_SETS: tuple[tuple[str, ...], ...] = (("market", "policy_category"), ("policy_category",), ("market",), ())
TTA_24H_S = 86400.0


def violation_daily(
    decisions: nw.LazyFrame, appeals: nw.LazyFrame, params: Params, aggregate_sets: AggregateSets = aggregate_sets
) -> nw.LazyFrame:
    violations = decisions.filter(nw.col("outcome") == "violation").with_columns(
        tta_s=seconds_between("decided_at", "content_created_at"),
    )
    actioned = aggregate_sets(
        violations,
        KEY,
        GROUPING_SETS,
        [
            nw.len().cast(nw.Int64).alias("actioned"),
            flag(is_in("detection_source", params.proactive_sources)).sum().alias("proactive"),
            flag(nw.col("decision_mode") == "automated").sum().alias("automated"),
            # null views: actioned but not zero_view; null content_created_at: not within_24h.
            flag(nw.col("views_before_action") == 0).sum().alias("zero_view"),
            flag(nw.col("tta_s") <= TTA_24H_S).sum().alias("within_24h"),
            flag(nw.col("action") == "remove").sum().alias("removed"),
        ],
        {"tta_p50_s": ("tta_s", 0.5), "tta_p90_s": ("tta_s", 0.9)},
        ALL,
    )
    appealed = aggregate_sets(
        appeals,
        KEY,
        GROUPING_SETS,
        [
            nw.len().cast(nw.Int64).alias("appeals_resolved"),
            flag(nw.col("appeal_outcome") == "overturned").sum().alias("appeals_overturned"),
        ],
        {},
        ALL,
    )
    # A global aggregate over no appeals still yields an ALL/ALL row with 0 appeals; dropping
    # zero-appeal rows keeps the universe to combinations that really had activity.
    appealed = appealed.filter(nw.col("appeals_resolved") > 0)
    counts = ("actioned", "proactive", "automated", "zero_view", "within_24h", "removed", "appeals_resolved", "appeals_overturned")
    out = (
        # Every actioned key has actioned > 0 but the ALL/ALL row, which exists every day.
        outer_combine([actioned, appealed], KEY)
        .with_columns([nw.col(c).fill_null(0).cast(nw.Int64) for c in counts])
        .with_columns(
            proactive_rate=ratio("proactive", "actioned"),
            automated_rate=ratio("automated", "actioned"),
            zero_view_rate=ratio("zero_view", "actioned"),
            within_24h_rate=ratio("within_24h", "actioned"),
            overturn_rate=ratio("appeals_overturned", "appeals_resolved"),
        )
    )
    return select_schema(out, OUTPUT_SCHEMAS["violation_daily"])
