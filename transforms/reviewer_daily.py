"""reviewer_daily — grain (ds, reviewer_id).

Reviewers with a staged human decision, shift, QA audit (the audited reviewer) or resolved appeal
(of a human decision) on ds. A rate is null when its denominator is 0 or null. Columns (types in
transforms.schemas.OUTPUT_SCHEMAS; DESIGN §4):

    reviewer_id         string   the grain
    team, site          string   from the reviewer's shift; null without one
    decisions           int64    staged human decisions (0 without any)
    violations          int64    of them, outcome = violation
    handle_time_total_s float64  sum of their handle_time_s (added as whole microseconds); 0 without decisions
    aht_s               float64  handle_time_total_s / decisions; null without decisions
    handle_p50_s        float64  median handle_time_s (exact, linear interpolation); null without decisions
    handle_p90_s        float64  90th percentile of handle_time_s; null without decisions
    decisions_per_hour  float64  decisions / (handle_time_total_s / 3600); null when handle_time_total_s is 0
    logged_in_s         float64  from the shift; null without one
    occupancy           float64  handle_time_total_s / logged_in_s
    sla_met             int64    decisions whose wait (decided_at - enqueued_at) <= their queue's SLA
    sla_rate            float64  sla_met / decisions
    qa_audits           int64    staged QA audits of ds of this reviewer's decisions
    qa_agreed           int64    of them, agreeing (`qa_agrees`)
    qa_accuracy         float64  qa_agreed / qa_audits
    appeals_resolved    int64    staged appeals resolved on ds of this reviewer's decisions
    appeals_overturned  int64    of them, appeal_outcome = overturned
    overturn_rate       float64  appeals_overturned / appeals_resolved
"""

from __future__ import annotations

import narwhals.stable.v2 as nw

from transforms._expr import Aggregate, aggregate, flag, outer_combine, ratio, sla_met, wait_and_sla
from transforms.params import US_PER_S, Params
from transforms.schemas import OUTPUT_SCHEMAS, select_schema

KEY = ["reviewer_id"]


def qa_agrees() -> nw.Expr:
    """An audit agrees when the outcome matches and, for a violation, the category matches too."""
    same_outcome = nw.col("expected_outcome") == nw.col("original_outcome")
    same_category = nw.col("expected_category") == nw.col("original_category")
    return same_outcome & ((nw.col("original_outcome") != "violation") | same_category.fill_null(False))


def reviewer_daily(
    decisions: nw.LazyFrame,
    shifts: nw.LazyFrame,
    qa_audits: nw.LazyFrame,
    appeals: nw.LazyFrame,
    params: Params,
    aggregate: Aggregate = aggregate,
) -> nw.LazyFrame:
    human = decisions.filter(nw.col("decision_mode") == "human").with_columns(
        **wait_and_sla(params.sla_s, params.default_sla_s),
        # Summed as integer microseconds: a float sum depends on the order a parallel engine adds
        # the rows in, which made reruns differ in the last bit at 10 M decisions. Staging guarantees
        # every human decision a finite handle time in [0, 14400].
        _handle_us=(nw.col("handle_time_s") * US_PER_S).round(0).cast(nw.Int64),
    )
    work = aggregate(
        human,
        KEY,
        [
            nw.len().cast(nw.Int64).alias("decisions"),
            flag(nw.col("outcome") == "violation").sum().alias("violations"),
            nw.col("_handle_us").sum().alias("_handle_total_us"),
            sla_met(),
        ],
        {"handle_p50_s": ("handle_time_s", 0.5), "handle_p90_s": ("handle_time_s", 0.9)},
    ).with_columns(
        handle_time_total_s=nw.col("_handle_total_us").cast(nw.Float64) / US_PER_S,
        aht_s=nw.col("_handle_total_us").cast(nw.Float64) / US_PER_S / nw.col("decisions").cast(nw.Float64),
    )
    qa = qa_audits.group_by(KEY).agg(
        nw.len().cast(nw.Int64).alias("qa_audits"),
        flag(qa_agrees()).sum().alias("qa_agreed"),
    )
    human_appeals = appeals.filter(~nw.col("reviewer_id").is_null())
    appeal_counts = human_appeals.group_by(KEY).agg(
        nw.len().cast(nw.Int64).alias("appeals_resolved"),
        flag(nw.col("appeal_outcome") == "overturned").sum().alias("appeals_overturned"),
    )
    shift = shifts.select("reviewer_id", "team", "site", "logged_in_s")

    out = (
        outer_combine([work, shift, qa, appeal_counts], KEY)
        .with_columns(
            [
                nw.col(c).fill_null(0).cast(nw.Int64)
                for c in ("decisions", "violations", "sla_met", "qa_audits", "qa_agreed", "appeals_resolved", "appeals_overturned")
            ]
            + [nw.col("handle_time_total_s").fill_null(0.0).cast(nw.Float64)]
        )
        .with_columns(
            decisions_per_hour=nw.when(nw.col("handle_time_total_s") > 0)
            .then(nw.col("decisions") / (nw.col("handle_time_total_s") / 3600.0))
            .otherwise(nw.lit(None, nw.Float64)),
            occupancy=ratio("handle_time_total_s", "logged_in_s"),
            sla_rate=ratio("sla_met", "decisions"),
            qa_accuracy=ratio("qa_agreed", "qa_audits"),
            overturn_rate=ratio("appeals_overturned", "appeals_resolved"),
        )
    )
    return select_schema(out, OUTPUT_SCHEMAS["reviewer_daily"])
