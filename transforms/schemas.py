"""Column contracts of every input and output table (DESIGN §2 and §4).

One place names each table's columns, their order and their types: the engines' readers select
the input columns at entry, every output transform selects its columns at exit, and history reads
earlier partitions through `select_published_schema`. The DuckDB reference (benchmarks/) and the DQ
suites name columns too, on purpose independently; docs/INTERFACES.md ("Extending") lists where a
new column goes and which test notices a place forgotten.
"""

from __future__ import annotations

import narwhals.stable.v2 as nw

TS = nw.Datetime("us", "UTC")
STR = nw.String()
F64 = nw.Float64()
I64 = nw.Int64()
BOOL = nw.Boolean()
DATE = nw.Date()

# ---------------------------------------------------------------- inputs
INPUT_SCHEMAS: dict[str, dict[str, nw.dtypes.DType]] = {
    "decisions": {
        "decision_id": STR,
        "content_id": STR,
        "content_type": STR,
        "creator_id": STR,
        "market": STR,
        "queue": STR,
        "detection_source": STR,
        "content_created_at": TS,
        "enqueued_at": TS,
        "decided_at": TS,
        "decision_mode": STR,
        "reviewer_id": STR,
        "outcome": STR,
        "policy_category": STR,
        "action": STR,
        "handle_time_s": F64,
        "views_before_action": I64,
    },
    "appeals": {
        "appeal_id": STR,
        "decision_id": STR,
        "appealed_at": TS,
        "resolved_at": TS,
        "appeal_outcome": STR,
        "reviewer_id": STR,
        "decision_mode": STR,
        "market": STR,
        "policy_category": STR,
        "decided_at": TS,
    },
    "qa_audits": {
        "audit_id": STR,
        "decision_id": STR,
        "auditor_id": STR,
        "audited_at": TS,
        "reviewer_id": STR,
        "market": STR,
        "queue": STR,
        "original_outcome": STR,
        "original_category": STR,
        "expected_outcome": STR,
        "expected_category": STR,
    },
    "shifts": {
        "reviewer_id": STR,
        "shift_date": DATE,
        "team": STR,
        "site": STR,
        "logged_in_s": F64,
    },
}
INPUT_TABLES: tuple[str, ...] = tuple(INPUT_SCHEMAS)

# Key of each input table (the quarantine's record_id and the conflicting-duplicate key).
INPUT_KEYS: dict[str, str] = {
    "decisions": "decision_id",
    "appeals": "appeal_id",
    "qa_audits": "audit_id",
    "shifts": "reviewer_id",
}

# Column whose UTC date must equal the partition's ds (wrong_partition).
EVENT_TIME: dict[str, str] = {
    "decisions": "decided_at",
    "appeals": "resolved_at",
    "qa_audits": "audited_at",
    "shifts": "shift_date",
}


def epoch_us_column(ts_column: str) -> str:
    """Name of the int64 epoch-microseconds companion the I/O layer adds to each timestamp.

    narwhals has no duration-to-seconds on Spark, so every engine's reader adds
    `<col>_us` (microseconds since the Unix epoch, int64) and transforms do exact
    integer arithmetic on those.
    """
    return f"{ts_column}_us"


def timestamp_columns(table: str) -> list[str]:
    return [c for c, t in INPUT_SCHEMAS[table].items() if t == TS]


def epoch_us_columns(table: str) -> list[str]:
    """The `<ts>_us` companions of a table's timestamps (what a checkpoint need not store)."""
    return [epoch_us_column(c) for c in timestamp_columns(table)]


# ---------------------------------------------------------------- outputs
# Grain of each output table (ds lives in the directory name only).
OUTPUT_GRAINS: dict[str, tuple[str, ...]] = {
    "reviewer_daily": ("reviewer_id",),
    "queue_daily": ("queue", "market"),
    "violation_daily": ("market", "policy_category"),
    "violation_trends": ("market", "policy_category"),
    "repeat_offenders": ("creator_id",),
    "creator_category_daily": ("creator_id", "policy_category"),
    "quarantine": (),
}

OUTPUT_SCHEMAS: dict[str, dict[str, nw.dtypes.DType]] = {
    "reviewer_daily": {
        "reviewer_id": STR,
        "team": STR,
        "site": STR,
        "decisions": I64,
        "violations": I64,
        "handle_time_total_s": F64,
        "aht_s": F64,
        "handle_p50_s": F64,
        "handle_p90_s": F64,
        "decisions_per_hour": F64,
        "logged_in_s": F64,
        "occupancy": F64,
        "sla_met": I64,
        "sla_rate": F64,
        "qa_audits": I64,
        "qa_agreed": I64,
        "qa_accuracy": F64,
        "appeals_resolved": I64,
        "appeals_overturned": I64,
        "overturn_rate": F64,
    },
    "queue_daily": {
        "queue": STR,
        "market": STR,
        "decisions": I64,
        "automated": I64,
        "automation_rate": F64,
        "violations": I64,
        "violation_rate": F64,
        "wait_p50_s": F64,
        "wait_p90_s": F64,
        "wait_max_s": F64,
        "sla_s": F64,
        "sla_met": I64,
        "sla_rate": F64,
    },
    "violation_daily": {
        "market": STR,
        "policy_category": STR,
        "actioned": I64,
        "proactive": I64,
        "proactive_rate": F64,
        "automated": I64,
        "automated_rate": F64,
        "zero_view": I64,
        "zero_view_rate": F64,
        "within_24h": I64,
        "within_24h_rate": F64,
        "tta_p50_s": F64,
        "tta_p90_s": F64,
        "removed": I64,
        "appeals_resolved": I64,
        "appeals_overturned": I64,
        "overturn_rate": F64,
    },
    "violation_trends": {
        "market": STR,
        "policy_category": STR,
        "actioned": I64,
        "actioned_7d_mean": F64,
        "baseline_days": I64,
        "baseline_mean": F64,
        "baseline_std": F64,
        "zscore": F64,
        "wow_change": F64,
        "is_anomaly": BOOL,
        "direction": STR,
    },
    "repeat_offenders": {
        "creator_id": STR,
        "violations_30d": I64,
        "distinct_categories": I64,
        "last_violation_at": TS,
    },
    # Small daily intermediate so repeat_offenders never rescans 30 days of decisions.
    "creator_category_daily": {
        "creator_id": STR,
        "policy_category": STR,
        "violations": I64,
        "last_violation_at": TS,
    },
    "quarantine": {
        "source_table": STR,
        "reason": STR,
        "record_id": STR,
        "decision_id": STR,
        "row": STR,
    },
}
OUTPUT_TABLES: tuple[str, ...] = tuple(OUTPUT_SCHEMAS)

ALL = "ALL"  # the rollup value: market / policy_category (violation_daily, trends), platform / category (DSA)
UNKNOWN = "UNKNOWN"  # grouping value for a null market / queue / category (a DQ warning, not a rejection)


def select_schema(frame: nw.LazyFrame, schema: dict[str, nw.dtypes.DType]) -> nw.LazyFrame:
    """The schema contract at a table's exit: exactly these columns, in order, with these types."""
    return frame.select([nw.col(name).cast(dtype) for name, dtype in schema.items()])


def select_published_schema(frame: nw.LazyFrame, schema: dict[str, nw.dtypes.DType]) -> nw.LazyFrame:
    """The schema contract at a published partition's entry, whichever contract it was written under.

    A later day's history reads up to 30 earlier partitions; one written before a release added a
    column gets it as null, one since dropped is left out. Required whole, a release that added a
    column failed every run until its window had rolled past the partitions written before it.
    """
    have = set(frame.collect_schema().names())
    return frame.select([
        nw.col(name).cast(dtype) if name in have else nw.lit(None, dtype).alias(name) for name, dtype in schema.items()
    ])
