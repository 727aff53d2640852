"""queue_daily — grain (ds, queue, market), over every staged decision (human and automated).

wait = decided_at - enqueued_at, in seconds. A rate is null when its denominator is 0. Columns
(types in transforms.schemas.OUTPUT_SCHEMAS; DESIGN §4):

    queue, market     string   the grain; a null one is grouped as UNKNOWN by staging
    decisions         int64    staged decisions
    automated         int64    of them, decision_mode = automated
    automation_rate   float64  automated / decisions
    violations        int64    of them, outcome = violation
    violation_rate    float64  violations / decisions
    wait_p50_s        float64  median wait (exact, linear interpolation)
    wait_p90_s        float64  90th percentile of wait (exact, linear interpolation)
    wait_max_s        float64  longest wait
    sla_s             float64  the queue's SLA: config [sla_s], else [job] default_sla_s (unknown queue)
    sla_met           int64    decisions with wait <= sla_s
    sla_rate          float64  sla_met / decisions
"""

from __future__ import annotations

import narwhals.stable.v2 as nw

from transforms._expr import Aggregate, aggregate, flag, ratio, sla_met, sla_seconds, wait_and_sla
from transforms.params import Params
from transforms.schemas import OUTPUT_SCHEMAS, select_schema

KEY = ["queue", "market"]


def queue_daily(decisions: nw.LazyFrame, params: Params, aggregate: Aggregate = aggregate) -> nw.LazyFrame:
    rows = decisions.with_columns(**wait_and_sla(params.sla_s, params.default_sla_s))
    out = (
        aggregate(
            rows,
            KEY,
            [
                nw.len().cast(nw.Int64).alias("decisions"),
                flag(nw.col("decision_mode") == "automated").sum().alias("automated"),
                flag(nw.col("outcome") == "violation").sum().alias("violations"),
                nw.col("wait_s").max().alias("wait_max_s"),
                sla_met(),
            ],
            {"wait_p50_s": ("wait_s", 0.5), "wait_p90_s": ("wait_s", 0.9)},
        )
        .with_columns(
            sla_s=sla_seconds(params.sla_s, params.default_sla_s),
            automation_rate=ratio("automated", "decisions"),
            violation_rate=ratio("violations", "decisions"),
            sla_rate=ratio("sla_met", "decisions"),
        )
    )
    return select_schema(out, OUTPUT_SCHEMAS["queue_daily"])
