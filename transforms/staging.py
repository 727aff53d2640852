"""Staging (DESIGN §3): dedupe, then give each distinct row its first quarantine reason.

Grain in = grain out: one row per distinct raw row, with `reason` null for rows that pass.
The rules are data (an ordered list per table), so the order of DESIGN §3 is visible in one place.
"""

from __future__ import annotations

from collections.abc import Callable

import narwhals.stable.v2 as nw

from transforms._expr import is_in
from transforms.params import US_PER_DAY, Params, epoch_day
from transforms.schemas import (
    ALL,
    EVENT_TIME,
    INPUT_KEYS,
    INPUT_SCHEMAS,
    UNKNOWN,
    epoch_us_column,
)

REASON = "reason"

MODES = ("human", "automated")
OUTCOMES = ("violation", "no_violation")
APPEAL_OUTCOMES = ("upheld", "overturned")

Rule = tuple[str, Callable[[Params], nw.Expr]]


def _any_null(*cols: str) -> nw.Expr:
    return nw.any_horizontal(*[nw.col(c).is_null() for c in cols], ignore_nulls=False)


def _after(a: str, b: str) -> nw.Expr:
    """a later than b; false when either is null (nulls are handled by their own rule)."""
    return (nw.col(epoch_us_column(a)) > nw.col(epoch_us_column(b))).fill_null(False)


def _wrong_day(ts: str) -> Callable[[Params], nw.Expr]:
    # Integer day arithmetic on epoch microseconds: identical on every engine, no time-zone setting involved.
    return lambda p: (nw.col(epoch_us_column(ts)) // US_PER_DAY) != epoch_day(p.ds)


def _out_of_range(col: str, low: float, high: float) -> nw.Expr:
    c = nw.col(col)
    return (c.is_nan() | (c < low) | (c > high)).fill_null(False)


def _mode_rule(*, requires_handle_time: bool) -> Callable[[Params], nw.Expr]:
    def rule(_: Params) -> nw.Expr:
        human = nw.col("decision_mode") == "human"
        missing = nw.col("reviewer_id").is_null()
        if requires_handle_time:
            missing = missing | nw.col("handle_time_s").is_null()
        automated_with_reviewer = (nw.col("decision_mode") == "automated") & ~nw.col("reviewer_id").is_null()
        return ~is_in("decision_mode", MODES) | (human & missing).fill_null(False) | automated_with_reviewer.fill_null(False)

    return rule


def _outcome_with_category(outcome: str, category: str) -> nw.Expr:
    """Outside the set, a violation without its category."""
    violation_without = (nw.col(outcome) == "violation") & nw.col(category).is_null()
    return ~is_in(outcome, OUTCOMES) | violation_without.fill_null(False)


RULES: dict[str, list[Rule]] = {
    "decisions": [
        ("missing_key", lambda p: _any_null("decision_id", "content_id", "creator_id")),
        (
            "bad_timestamp",
            lambda p: _any_null("enqueued_at", "decided_at")
            | _after("enqueued_at", "decided_at")
            | _after("content_created_at", "decided_at"),
        ),
        ("wrong_partition", _wrong_day("decided_at")),
        ("bad_mode", _mode_rule(requires_handle_time=True)),
        (
            "bad_outcome",
            lambda p: _outcome_with_category("outcome", "policy_category")
            | ((nw.col("outcome") == "no_violation") & ~nw.col("policy_category").is_null()).fill_null(False),
        ),
        (
            "bad_range",
            # handle_time_s on an automated decision is ignored, not checked (DESIGN §3).
            lambda p: ((nw.col("decision_mode") == "human") & _out_of_range("handle_time_s", 0, 14400)).fill_null(False)
            | (nw.col("views_before_action") < 0).fill_null(False),
        ),
    ],
    "appeals": [
        ("missing_key", lambda p: _any_null("appeal_id", "decision_id")),
        (
            "bad_timestamp",
            lambda p: _any_null("appealed_at", "resolved_at")
            | _after("appealed_at", "resolved_at")
            | _after("decided_at", "appealed_at"),
        ),
        ("wrong_partition", _wrong_day("resolved_at")),
        ("bad_mode", _mode_rule(requires_handle_time=False)),
        ("bad_outcome", lambda p: ~is_in("appeal_outcome", APPEAL_OUTCOMES)),
    ],
    "qa_audits": [
        ("missing_key", lambda p: _any_null("audit_id", "decision_id", "reviewer_id")),
        ("bad_timestamp", lambda p: _any_null("audited_at")),
        ("wrong_partition", _wrong_day("audited_at")),
        (
            "bad_outcome",
            lambda p: _outcome_with_category("original_outcome", "original_category")
            | _outcome_with_category("expected_outcome", "expected_category"),
        ),
    ],
    "shifts": [
        ("missing_key", lambda p: _any_null("reviewer_id", "shift_date")),
        ("wrong_partition", lambda p: (nw.col("shift_date") != nw.lit(p.ds)).fill_null(True)),
        (
            "bad_range",
            lambda p: nw.col("logged_in_s").is_null() | _out_of_range("logged_in_s", 0, 86400),
        ),
    ],
}
CONFLICTING_DUPLICATE = "conflicting_duplicate"


def reasons(table: str) -> list[str]:
    """Every quarantine reason of a table, in the order they are tried."""
    return [name for name, _ in RULES[table]] + [CONFLICTING_DUPLICATE]


# Columns that group output rows: a null becomes UNKNOWN so that a grain key is never null.
_GROUPING_COLUMNS: dict[str, tuple[str, ...]] = {
    "decisions": ("market", "queue"),
    "appeals": ("market", "policy_category"),
    "qa_audits": ("market", "queue"),
    "shifts": (),
}


def repeated_keys(raw: nw.LazyFrame, table: str) -> nw.LazyFrame:
    """The keys (one column) that occur on more than one raw row of the day: a key-only count."""
    key = INPUT_KEYS[table]
    counts = raw.filter(~nw.col(key).is_null()).group_by(key).agg(nw.len().alias("_rows"))
    return counts.filter(nw.col("_rows") > 1).select(key)


def classify_unique(raw: nw.LazyFrame, table: str, params: Params, repeated: nw.LazyFrame) -> nw.LazyFrame:
    """classify() of the rows whose key occurs once: no duplicate of any kind, so no dedupe at all.

    This is nearly the whole day and needs only a streaming anti-join against the small key set.
    """
    key = INPUT_KEYS[table]
    return classify_distinct(raw.filter(~nw.col(key).is_null()).join(repeated, on=key, how="anti"), table, params)


def classify_distinct(rows: nw.LazyFrame, table: str, params: Params) -> nw.LazyFrame:
    """classify() of rows whose key is known to be non-null and to occur on no other row of the day.

    For an engine that has split those rows off the day its own way (Polars: by a hash of the key).
    """
    return _with_reason(rows.with_columns(nw.lit(False).alias(_SHARED)), table, params)


def classify_shared(raw: nw.LazyFrame, table: str, params: Params, repeated: nw.LazyFrame) -> nw.LazyFrame:
    """classify() of the rows whose key repeats or is null: the few rows that need deduplicating."""
    key = INPUT_KEYS[table]
    several = (
        raw.join(repeated, on=key, how="semi")
        .unique()
        # A key shared by several distinct rows of the day: rows that broke no earlier rule are conflicting.
        .with_columns((nw.col(key).count().over(key) > 1).alias(_SHARED))
    )
    # Null keys never match in a join; those rows are all missing_key, only deduplicated here.
    keyless = raw.filter(nw.col(key).is_null()).unique().with_columns(nw.lit(False).alias(_SHARED))
    return _with_reason(nw.concat([several, keyless], how="vertical"), table, params)


def classify(raw: nw.LazyFrame, table: str, params: Params, repeated: nw.LazyFrame | None = None) -> nw.LazyFrame:
    """Distinct rows of one input table with `reason` = first rule broken (null when the row is clean).

    `raw` holds the table's contract columns (and the readers' `<ts>_us` companions).
    Exact duplicates share their key, and so do conflicting ones, so only rows whose key occurs
    more than once need deduplicating and the per-key count (`classify_shared`); the rest of the day
    passes through untouched (`classify_unique`). An engine may compute `repeated` (the
    `repeated_keys` of raw) its own way, e.g. per hash bucket of the key.
    """
    repeated = repeated_keys(raw, table) if repeated is None else repeated
    return nw.concat(
        [classify_unique(raw, table, params, repeated), classify_shared(raw, table, params, repeated)],
        how="vertical",
    )


def _with_reason(distinct: nw.LazyFrame, table: str, params: Params) -> nw.LazyFrame:
    first_reason = None
    for name, rule in RULES[table]:
        cond = rule(params)
        first_reason = (
            nw.when(cond).then(nw.lit(name)) if first_reason is None else first_reason.when(cond).then(nw.lit(name))
        )
    first_reason = first_reason.when(nw.col(_SHARED)).then(nw.lit(CONFLICTING_DUPLICATE))
    return distinct.with_columns(first_reason.otherwise(nw.lit(None, nw.String)).alias(REASON)).drop(_SHARED)


_SHARED = "_key_shared"


# Columns only the quarantine reads (for rejected rows): no output table reads them from staged rows,
# so staged() drops them and the engines blank them on passing rows before checkpointing a day
# (blank_quarantine_only).
QUARANTINE_ONLY: dict[str, tuple[str, ...]] = {"decisions": ("decision_id", "content_id", "content_type")}


def blank_quarantine_only(classified: nw.LazyFrame, table: str) -> nw.LazyFrame:
    """classified with the QUARANTINE_ONLY columns null on passing rows: what an engine checkpoints.

    The ids are the costliest columns of a day to write and read back (Spark's checkpoint of
    10 M decisions took 51 s with them, 37 s without), and only rejected rows still need them.
    """
    schema = classified.collect_schema()
    passed = nw.col(REASON).is_null()
    return classified.with_columns(
        [nw.when(passed).then(nw.lit(None, schema[c])).otherwise(nw.col(c)).alias(c) for c in QUARANTINE_ONLY.get(table, ())]
    )


# Columns violation_daily rolls up: a data value equal to the rollup's ALL would be merged into the
# rollup row (and the rows of that "market" would vanish from the table), so it is grouped as
# UNKNOWN, like a null. It is no ISO market and no taxonomy category: the DQ gate warns about it.
_ROLLED_UP: dict[str, tuple[str, ...]] = {"decisions": ("market", "policy_category"), "appeals": ("market", "policy_category")}


def _grouping_value(column: str, table: str) -> nw.Expr:
    value = nw.col(column)
    if column in _ROLLED_UP.get(table, ()):
        value = nw.when(value == nw.lit(ALL)).then(nw.lit(UNKNOWN)).otherwise(value)
    # A decision's null policy_category means no violation: it stays null.
    return value.fill_null(nw.lit(UNKNOWN)) if column in _GROUPING_COLUMNS[table] else value


def staged(classified: nw.LazyFrame, table: str) -> nw.LazyFrame:
    """Rows that passed staging, with null grouping values (and the reserved ALL) mapped to UNKNOWN."""
    clean = classified.filter(nw.col(REASON).is_null()).drop(REASON, *QUARANTINE_ONLY.get(table, ()))
    columns = dict.fromkeys([*_GROUPING_COLUMNS[table], *_ROLLED_UP.get(table, ())])
    return clean.with_columns([_grouping_value(c, table).alias(c) for c in columns])


def rejected(classified: nw.LazyFrame) -> nw.LazyFrame:
    return classified.filter(~nw.col(REASON).is_null())


def reason_counts(classified: nw.LazyFrame) -> nw.LazyFrame:
    """Rows per reason (null reason = staged rows); small, for the manifest and the DQ gate."""
    return classified.group_by(REASON).agg(nw.len().alias("rows"))


def row_columns(table: str) -> list[str]:
    """The raw columns serialised into quarantine.row (not the readers' helper columns)."""
    return list(INPUT_SCHEMAS[table])


__all__ = [
    "EVENT_TIME",
    "REASON",
    "RULES",
    "blank_quarantine_only",
    "classify",
    "classify_distinct",
    "classify_shared",
    "classify_unique",
    "reason_counts",
    "reasons",
    "rejected",
    "repeated_keys",
    "row_columns",
    "staged",
]
