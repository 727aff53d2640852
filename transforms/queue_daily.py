"""queue_daily — grain (ds, queue, market), over every staged decision (human and automated).

wait = decided_at - enqueued_at; sla_s is the queue's configured SLA (the default for unknown queues).
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
