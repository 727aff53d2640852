"""Independent DuckDB SQL implementation of the nightly job's output tables.

It exists for two reasons: it is the correctness oracle for the main Polars/narwhals
implementation (so it deliberately shares no code with `transforms/` or `jobs/` beyond the
column contracts in `transforms.schemas` and the parameter object `transforms.params.Params`, a
plain dataclass of values and defaults), and it is the "what would an analyst write in SQL"
baseline of the benchmarks. It takes the same parameters as the job (`reference_tables(...,
params)`), so it checks the job on any configuration, not only the defaults.

Everything follows DESIGN.md §3 (staging) and §4 (tables). Durations are computed from
integer epoch microseconds so both implementations do the same float division.

CLI (used by the benchmark harness as a separate process)::

    python -m benchmarks.duckdb_reference --input IN --output OUT --ds 2024-01-31 [--ds ...] [--config FILE]

`--config` takes the job's TOML file (`riskinsight run --config`), read by the job's own loader
(jobs.config: parsing and range checks only, no computation), so both run on the same parameters.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import duckdb
import narwhals.stable.v2 as nw
import polars as pl

from transforms.params import EPOCH, Params
from transforms.schemas import INPUT_KEYS, INPUT_SCHEMAS, OUTPUT_GRAINS, OUTPUT_SCHEMAS

US_PER_S = 1_000_000
US_PER_DAY = 86_400 * US_PER_S

# Quarantine rules per input table, in DESIGN §3 order; the first that holds wins.
# Each is a SQL predicate over the distinct raw row plus `<ts>_us` companions and the
# bound parameters $lo/$hi (the ds's epoch-microsecond range) and $ds. Every predicate is
# wrapped in coalesce(.., false) by the caller so a NULL comparison never decides a reason.
_RULES: dict[str, list[tuple[str, str]]] = {
    "decisions": [
        ("missing_key", "decision_id IS NULL OR content_id IS NULL OR creator_id IS NULL"),
        (
            "bad_timestamp",
            "enqueued_at_us IS NULL OR decided_at_us IS NULL OR enqueued_at_us > decided_at_us"
            " OR coalesce(content_created_at_us > decided_at_us, false)",
        ),
        ("wrong_partition", "NOT (decided_at_us >= $lo AND decided_at_us < $hi)"),
        (
            "bad_mode",
            "decision_mode IS NULL OR decision_mode NOT IN ('human', 'automated')"
            " OR (decision_mode = 'human' AND (reviewer_id IS NULL OR handle_time_s IS NULL))"
            " OR (decision_mode = 'automated' AND reviewer_id IS NOT NULL)",
        ),
        (
            "bad_outcome",
            "outcome IS NULL OR outcome NOT IN ('violation', 'no_violation')"
            " OR (outcome = 'violation' AND policy_category IS NULL)"
            " OR (outcome = 'no_violation' AND policy_category IS NOT NULL)",
        ),
        (
            # NaN compares greater than every number in DuckDB; isnan() makes the intent explicit.
            "bad_range",
            # DESIGN §3: a handle_time_s on an automated decision is ignored, not quarantined.
            "coalesce(decision_mode = 'human' AND (isnan(handle_time_s) OR handle_time_s < 0 OR handle_time_s > 14400), false)"
            " OR coalesce(views_before_action < 0, false)",
        ),
    ],
    "appeals": [
        ("missing_key", "appeal_id IS NULL OR decision_id IS NULL"),
        (
            "bad_timestamp",
            "appealed_at_us IS NULL OR resolved_at_us IS NULL OR appealed_at_us > resolved_at_us"
            " OR coalesce(decided_at_us > appealed_at_us, false)",
        ),
        ("wrong_partition", "NOT (resolved_at_us >= $lo AND resolved_at_us < $hi)"),
        (
            "bad_mode",
            "decision_mode IS NULL OR decision_mode NOT IN ('human', 'automated')"
            " OR (decision_mode = 'human' AND reviewer_id IS NULL)"
            " OR (decision_mode = 'automated' AND reviewer_id IS NOT NULL)",
        ),
        ("bad_outcome", "appeal_outcome IS NULL OR appeal_outcome NOT IN ('upheld', 'overturned')"),
    ],
    "qa_audits": [
        ("missing_key", "audit_id IS NULL OR decision_id IS NULL OR reviewer_id IS NULL"),
        ("bad_timestamp", "audited_at_us IS NULL"),
        ("wrong_partition", "NOT (audited_at_us >= $lo AND audited_at_us < $hi)"),
        (
            "bad_outcome",
            "original_outcome IS NULL OR original_outcome NOT IN ('violation', 'no_violation')"
            " OR expected_outcome IS NULL OR expected_outcome NOT IN ('violation', 'no_violation')"
            " OR (original_outcome = 'violation' AND original_category IS NULL)"
            " OR (expected_outcome = 'violation' AND expected_category IS NULL)",
        ),
    ],
    "shifts": [
        ("missing_key", "reviewer_id IS NULL OR shift_date IS NULL"),
        ("wrong_partition", "shift_date <> $ds"),
        ("bad_range", "logged_in_s IS NULL OR isnan(logged_in_s) OR logged_in_s < 0 OR logged_in_s > 86400"),
    ],
}

# The table's own decision_id column where it has one (quarantine.decision_id).
_DECISION_ID_COL = {"decisions": "decision_id", "appeals": "decision_id", "qa_audits": "decision_id", "shifts": None}


def _sql_type(dtype: nw.dtypes.DType) -> str:
    if dtype == nw.String:
        return "VARCHAR"
    if dtype == nw.Float64:
        return "DOUBLE"
    if dtype == nw.Int64:
        return "BIGINT"
    if dtype == nw.Boolean:
        return "BOOLEAN"
    if dtype == nw.Date:
        return "DATE"
    if dtype == nw.Datetime:
        return "TIMESTAMPTZ"
    raise TypeError(f"no SQL type for {dtype}")


def _polars_type(dtype: nw.dtypes.DType) -> pl.DataType:
    if dtype == nw.String:
        return pl.String()
    if dtype == nw.Float64:
        return pl.Float64()
    if dtype == nw.Int64:
        return pl.Int64()
    if dtype == nw.Boolean:
        return pl.Boolean()
    if dtype == nw.Date:
        return pl.Date()
    if dtype == nw.Datetime:
        return pl.Datetime("us", "UTC")
    raise TypeError(f"no polars type for {dtype}")


_UNKNOWN_COLUMNS: dict[str, tuple[str, ...]] = {
    "decisions": ("market", "queue"),
    "appeals": ("market", "policy_category"),
    "qa_audits": ("market", "queue"),
}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _epoch_day(day: dt.date) -> int:
    return (day - EPOCH).days


def _partition_files(input_dir: Path, table: str, ds: dt.date) -> list[str]:
    return sorted(glob.glob(str(input_dir / table / f"ds={ds.isoformat()}" / "*.parquet")))


def _epoch_us_expr(col: str, duck_type: str) -> str:
    """Epoch microseconds of a timestamp column of any unit, naive meaning UTC.

    Nanosecond columns are truncated (not rounded, as a plain cast would) so the result
    matches an integer cast of the nanosecond value, which is what the Polars reader does.
    """
    t = duck_type.upper()
    if t.startswith("TIMESTAMP") and "NS" in t:
        return f"(epoch_ns({_q(col)}) // 1000)"
    if t.startswith("TIMESTAMP"):
        return f"epoch_us({_q(col)})"
    if t == "DATE":
        return f"(epoch_us({_q(col)}::TIMESTAMP))"
    if t in ("BIGINT", "INTEGER"):  # a column that only ever held nulls arrives untyped
        return f"({_q(col)}::BIGINT)"
    return f"epoch_us({_q(col)}::TIMESTAMP)"


class _Day:
    """Stages one ds into temp tables st_<table>(raw columns, <ts>_us, reason)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, input_dir: Path, ds: dt.date) -> None:
        self.con = con
        self.input_dir = input_dir
        self.ds = ds
        self.lo = _epoch_day(ds) * US_PER_DAY
        self.hi = self.lo + US_PER_DAY
        self.duplicates_dropped: dict[str, int] = {}

    def _source(self, table: str) -> str:
        """A SELECT of exactly the schema's columns, with the file's own timestamp types kept."""
        schema = INPUT_SCHEMAS[table]
        files = _partition_files(self.input_dir, table, self.ds)
        if not files:
            cols = ", ".join(f"NULL::{_sql_type(t)} AS {_q(c)}" for c, t in schema.items())
            return f"SELECT {cols} WHERE false"
        rel = f"read_parquet([{', '.join(_lit(f) for f in files)}], union_by_name = true)"
        present = {r[0]: r[1] for r in self.con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()}
        cols = []
        for c, t in schema.items():
            if c not in present:
                cols.append(f"NULL::{_sql_type(t)} AS {_q(c)}")
            elif t == nw.Datetime and present[c].upper().startswith("TIMESTAMP"):
                cols.append(_q(c))  # keep the unit; _epoch_us_expr converts exactly
            else:
                cols.append(f"CAST({_q(c)} AS {_sql_type(t)}) AS {_q(c)}")
        return f"SELECT {', '.join(cols)} FROM {rel}"

    def stage(self, table: str) -> None:
        con = self.con
        schema = INPUT_SCHEMAS[table]
        con.execute(f"CREATE OR REPLACE TEMP TABLE raw_{table} AS {self._source(table)}")
        raw_n = con.execute(f"SELECT count(*) FROM raw_{table}").fetchone()[0]
        con.execute(f"CREATE OR REPLACE TEMP TABLE dist_{table} AS SELECT DISTINCT * FROM raw_{table}")
        con.execute(f"DROP TABLE raw_{table}")
        dist_n = con.execute(f"SELECT count(*) FROM dist_{table}").fetchone()[0]
        self.duplicates_dropped[table] = raw_n - dist_n

        types = {r[0]: r[1] for r in con.execute(f"DESCRIBE dist_{table}").fetchall()}
        us_cols = [
            f"{_epoch_us_expr(c, types[c])} AS {_q(c + '_us')}" for c, t in schema.items() if t == nw.Datetime
        ]
        key = INPUT_KEYS[table]
        cases = " ".join(f"WHEN coalesce(({cond}), false) THEN {_lit(r)}" for r, cond in _RULES[table])
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE st_{table} AS
            WITH d AS (
                SELECT *, {', '.join(us_cols) + ',' if us_cols else ''}
                       count(*) OVER (PARTITION BY {_q(key)}) AS _key_rows
                FROM dist_{table}
            ), r AS (
                SELECT *, CASE {cases} ELSE NULL END AS _early FROM d
            )
            SELECT * EXCLUDE (_key_rows, _early),
                   CASE WHEN _early IS NOT NULL THEN _early
                        WHEN _key_rows > 1 THEN 'conflicting_duplicate' END AS reason
            FROM r
            """,
            self._params(cases),
        )
        con.execute(f"DROP TABLE dist_{table}")
        # Staged rows group a null market / queue / category under 'UNKNOWN' (a DQ warning, never a null grain key).
        for col in _UNKNOWN_COLUMNS.get(table, ()):
            con.execute(f"UPDATE st_{table} SET {_q(col)} = 'UNKNOWN' WHERE reason IS NULL AND {_q(col)} IS NULL")
        # 'ALL' is the rollups' value: a market or category spelled so joins UNKNOWN instead of a rollup row.
        for col in ("market", "policy_category") if table in ("decisions", "appeals") else ():
            con.execute(f"UPDATE st_{table} SET {_q(col)} = 'UNKNOWN' WHERE reason IS NULL AND {_q(col)} = 'ALL'")

    def _params(self, sql: str) -> dict:
        # DuckDB rejects named parameters the statement does not use.
        given = {"lo": self.lo, "hi": self.hi, "ds": self.ds}
        return {k: v for k, v in given.items() if f"${k}" in sql}

    def stage_all(self) -> None:
        for table in INPUT_SCHEMAS:
            self.stage(table)

    def drop_all(self) -> None:
        for table in INPUT_SCHEMAS:
            self.con.execute(f"DROP TABLE IF EXISTS st_{table}")


def _rate(num: str, den: str) -> str:
    return f"CASE WHEN ({den}) = 0 THEN NULL ELSE ({num})::DOUBLE / ({den}) END"


def _secs(a: str, b: str) -> str:
    return f"(({a}) - ({b}))::DOUBLE / 1000000.0::DOUBLE"


def _quarantine_sql() -> str:
    parts = []
    for table, schema in INPUT_SCHEMAS.items():
        raw_cols = ", ".join(f"{_q(c)} := {_q(c)}" for c in schema)
        dcol = _DECISION_ID_COL[table]
        parts.append(
            f"""SELECT {_lit(table)} AS source_table, reason,
                       CAST({_q(INPUT_KEYS[table])} AS VARCHAR) AS record_id,
                       {('CAST(' + _q(dcol) + ' AS VARCHAR)') if dcol else 'NULL::VARCHAR'} AS decision_id,
                       to_json(struct_pack({raw_cols}))::VARCHAR AS "row"
                FROM st_{table} WHERE reason IS NOT NULL"""
        )
    return " UNION ALL ".join(parts) + " ORDER BY source_table, reason, record_id NULLS FIRST, \"row\""


_REVIEWER_SQL = f"""
WITH hd AS (
    SELECT d.reviewer_id, d.handle_time_s, d.outcome,
           {_secs('d.decided_at_us', 'd.enqueued_at_us')} AS wait_s,
           coalesce(s.sla_s, $default_sla) AS sla_s
    FROM st_decisions d LEFT JOIN sla s ON s.queue = d.queue
    WHERE d.reason IS NULL AND d.decision_mode = 'human'
), dec AS (
    SELECT reviewer_id, count(*) AS decisions, count(*) FILTER (WHERE outcome = 'violation') AS violations,
           sum(handle_time_s) AS handle_time_total_s, avg(handle_time_s) AS aht_s,
           quantile_cont(handle_time_s, 0.5) AS handle_p50_s, quantile_cont(handle_time_s, 0.9) AS handle_p90_s,
           count(*) FILTER (WHERE wait_s <= sla_s) AS sla_met
    FROM hd GROUP BY reviewer_id
), sh AS (
    SELECT reviewer_id, team, site, logged_in_s FROM st_shifts WHERE reason IS NULL
), qa AS (
    SELECT reviewer_id, count(*) AS qa_audits,
           count(*) FILTER (WHERE coalesce(expected_outcome = original_outcome
                             AND (original_outcome <> 'violation' OR expected_category = original_category), false))
               AS qa_agreed
    FROM st_qa_audits WHERE reason IS NULL GROUP BY reviewer_id
), ap AS (
    SELECT reviewer_id, count(*) AS appeals_resolved, count(*) FILTER (WHERE appeal_outcome = 'overturned') AS appeals_overturned
    FROM st_appeals WHERE reason IS NULL AND reviewer_id IS NOT NULL GROUP BY reviewer_id
), ids AS (
    SELECT reviewer_id FROM dec UNION SELECT reviewer_id FROM sh
    UNION SELECT reviewer_id FROM qa UNION SELECT reviewer_id FROM ap
), j AS (
    SELECT i.reviewer_id, sh.team, sh.site,
           coalesce(dec.decisions, 0) AS decisions, coalesce(dec.violations, 0) AS violations,
           coalesce(dec.handle_time_total_s, 0.0) AS handle_time_total_s,
           dec.aht_s, dec.handle_p50_s, dec.handle_p90_s, sh.logged_in_s,
           coalesce(dec.sla_met, 0) AS sla_met,
           coalesce(qa.qa_audits, 0) AS qa_audits, coalesce(qa.qa_agreed, 0) AS qa_agreed,
           coalesce(ap.appeals_resolved, 0) AS appeals_resolved,
           coalesce(ap.appeals_overturned, 0) AS appeals_overturned
    FROM ids i LEFT JOIN dec USING (reviewer_id) LEFT JOIN sh USING (reviewer_id)
               LEFT JOIN qa USING (reviewer_id) LEFT JOIN ap USING (reviewer_id)
)
SELECT reviewer_id, team, site, decisions, violations, handle_time_total_s, aht_s, handle_p50_s, handle_p90_s,
       CASE WHEN handle_time_total_s = 0 THEN NULL
            ELSE decisions::DOUBLE / (handle_time_total_s / 3600.0::DOUBLE) END AS decisions_per_hour,
       logged_in_s,
       CASE WHEN logged_in_s IS NULL OR logged_in_s = 0 THEN NULL
            ELSE handle_time_total_s / logged_in_s END AS occupancy,
       sla_met, {_rate('sla_met', 'decisions')} AS sla_rate,
       qa_audits, qa_agreed, {_rate('qa_agreed', 'qa_audits')} AS qa_accuracy,
       appeals_resolved, appeals_overturned, {_rate('appeals_overturned', 'appeals_resolved')} AS overturn_rate
FROM j ORDER BY reviewer_id
"""

_QUEUE_SQL = f"""
WITH d AS (
    SELECT d.queue, d.market, d.decision_mode, d.outcome,
           {_secs('d.decided_at_us', 'd.enqueued_at_us')} AS wait_s,
           coalesce(s.sla_s, $default_sla) AS sla_s
    FROM st_decisions d LEFT JOIN sla s ON s.queue = d.queue
    WHERE d.reason IS NULL
), g AS (
    SELECT queue, market, count(*) AS decisions, count(*) FILTER (WHERE decision_mode = 'automated') AS automated,
           count(*) FILTER (WHERE outcome = 'violation') AS violations,
           quantile_cont(wait_s, 0.5) AS wait_p50_s, quantile_cont(wait_s, 0.9) AS wait_p90_s,
           max(wait_s) AS wait_max_s, any_value(sla_s) AS sla_s, count(*) FILTER (WHERE wait_s <= sla_s) AS sla_met
    FROM d GROUP BY queue, market
)
SELECT queue, market, decisions, automated, {_rate('automated', 'decisions')} AS automation_rate,
       violations, {_rate('violations', 'decisions')} AS violation_rate,
       wait_p50_s, wait_p90_s, wait_max_s, sla_s, sla_met, {_rate('sla_met', 'decisions')} AS sla_rate
FROM g ORDER BY queue NULLS FIRST, market NULLS FIRST
"""

# One row per actioned violation (is_v) or resolved appeal (is_a), so a single aggregate with
# grouping sets yields every combination and rollup.
_VIOLATION_UNION = """
WITH u AS (
    SELECT market, policy_category, true AS is_v, false AS is_a,
           detection_source IN (SELECT source FROM proactive) AS is_proactive,
           decision_mode = 'automated' AS is_automated,
           coalesce(views_before_action = 0, false) AS is_zero_view,
           CASE WHEN content_created_at_us IS NULL THEN NULL
                ELSE (decided_at_us - content_created_at_us)::DOUBLE / 1000000.0::DOUBLE END AS tta_s,
           coalesce(action = 'remove', false) AS is_removed,
           false AS is_overturned
    FROM st_decisions WHERE reason IS NULL AND outcome = 'violation'
    UNION ALL
    SELECT market, policy_category, false, true, false, false, false, NULL, false,
           appeal_outcome = 'overturned'
    FROM st_appeals WHERE reason IS NULL
)
"""

_VIOLATION_AGG = """
    count(*) FILTER (WHERE is_v) AS actioned,
    count(*) FILTER (WHERE is_v AND coalesce(is_proactive, false)) AS proactive,
    count(*) FILTER (WHERE is_v AND is_automated) AS automated,
    count(*) FILTER (WHERE is_v AND is_zero_view) AS zero_view,
    count(*) FILTER (WHERE is_v AND tta_s <= 86400.0) AS within_24h,
    quantile_cont(tta_s, 0.5) AS tta_p50_s,
    quantile_cont(tta_s, 0.9) AS tta_p90_s,
    count(*) FILTER (WHERE is_v AND is_removed) AS removed,
    count(*) FILTER (WHERE is_a) AS appeals_resolved,
    count(*) FILTER (WHERE is_a AND is_overturned) AS appeals_overturned
"""

_VIOLATION_SQL = f"""
{_VIOLATION_UNION}
, g AS (
    SELECT CASE WHEN grouping(market) = 1 THEN 'ALL' ELSE market END AS market,
           CASE WHEN grouping(policy_category) = 1 THEN 'ALL' ELSE policy_category END AS policy_category,
           {_VIOLATION_AGG}
    FROM u GROUP BY GROUPING SETS ((market, policy_category), (market), (policy_category))
    UNION ALL
    -- No GROUP BY: always exactly one row, so ALL/ALL exists even on a day without violations.
    SELECT 'ALL', 'ALL', {_VIOLATION_AGG} FROM u
)
SELECT market, policy_category, actioned,
       proactive, {_rate('proactive', 'actioned')} AS proactive_rate,
       automated, {_rate('automated', 'actioned')} AS automated_rate,
       zero_view, {_rate('zero_view', 'actioned')} AS zero_view_rate,
       within_24h, {_rate('within_24h', 'actioned')} AS within_24h_rate,
       tta_p50_s, tta_p90_s, removed,
       appeals_resolved, appeals_overturned, {_rate('appeals_overturned', 'appeals_resolved')} AS overturn_rate
FROM g ORDER BY market NULLS FIRST, policy_category NULLS FIRST
"""

_CREATOR_CATEGORY_SQL = """
SELECT creator_id, policy_category, count(*) AS violations, max(decided_at_us) AS last_violation_at
FROM st_decisions WHERE reason IS NULL AND outcome = 'violation'
GROUP BY creator_id, policy_category ORDER BY creator_id, policy_category
"""

# Over every run day at once, with $window = trends.window_days (W, default 28): `win` pairs each
# target ds with its observed days (run days in ds-max(W, 7)..ds: the baseline ds-W..ds-1, and
# never less than the week that the 7-day mean, ds-6..ds, and the week-ago value, ds-7, need);
# combinations are those with a violation_daily row on an observed day of ds-W..ds, and an observed
# day without a row contributes actioned 0 (LEFT JOIN + coalesce), an unobserved one nothing.
_TRENDS_SQL = """
WITH win AS (
    SELECT t.ds AS target, o.ds AS d FROM run_days t JOIN run_days o ON o.ds BETWEEN t.ds - greatest($window, 7) AND t.ds
), combos AS (
    SELECT DISTINCT w.target, v.market, v.policy_category
    FROM win w JOIN vd_hist v ON v.ds = w.d WHERE w.d >= w.target - $window
), grid AS (
    SELECT c.target, c.market, c.policy_category, w.d, coalesce(v.actioned, 0) AS a
    FROM combos c JOIN win w ON w.target = c.target
    LEFT JOIN vd_hist v ON v.ds = w.d AND v.market IS NOT DISTINCT FROM c.market
                       AND v.policy_category IS NOT DISTINCT FROM c.policy_category
), agg AS (
    SELECT target, market, policy_category,
           max(a) FILTER (WHERE d = target) AS actioned,
           avg(a::DOUBLE) FILTER (WHERE d >= target - 6) AS actioned_7d_mean,
           count(*) FILTER (WHERE d < target AND d >= target - $window) AS baseline_days,
           avg(a::DOUBLE) FILTER (WHERE d < target AND d >= target - $window) AS baseline_mean,
           stddev_samp(a::DOUBLE) FILTER (WHERE d < target AND d >= target - $window) AS baseline_std,
           count(*) FILTER (WHERE d = target - 7) AS has_wow,
           max(a) FILTER (WHERE d = target - 7) AS actioned_wow
    FROM grid GROUP BY target, market, policy_category
), z AS (
    SELECT *,
           CASE WHEN baseline_days >= $min_baseline_days AND baseline_std IS NOT NULL AND baseline_std <> 0
                THEN (actioned::DOUBLE - baseline_mean) / baseline_std END AS zscore
    FROM agg
), an AS (
    SELECT *,
           coalesce(abs(zscore) >= $zscore_threshold
                    AND greatest(actioned::DOUBLE, baseline_mean) >= $min_volume, false) AS is_anomaly
    FROM z
)
SELECT target AS ds, market, policy_category, actioned, actioned_7d_mean, baseline_days, baseline_mean,
       baseline_std, zscore,
       CASE WHEN has_wow > 0 AND actioned_wow <> 0 THEN actioned::DOUBLE / actioned_wow - 1 END AS wow_change,
       is_anomaly,
       CASE WHEN is_anomaly AND zscore > 0 THEN 'spike' WHEN is_anomaly AND zscore < 0 THEN 'drop' END AS direction
FROM an ORDER BY ds, market NULLS FIRST, policy_category NULLS FIRST
"""

# $window = offenders.window_days (default 30): the run days ds-($window-1)..ds.
_OFFENDERS_SQL = """
SELECT t.ds, c.creator_id, sum(c.violations)::BIGINT AS violations_30d,
       count(DISTINCT c.policy_category) AS distinct_categories, max(c.last_violation_at) AS last_violation_at
FROM run_days t JOIN ccd_hist c ON c.ds BETWEEN t.ds - ($window - 1) AND t.ds
GROUP BY t.ds, c.creator_id
HAVING sum(c.violations) >= $offender_min
ORDER BY t.ds, c.creator_id
"""


def _to_polars(con: duckdb.DuckDBPyConnection, sql: str, table: str, params: dict | None = None) -> pl.DataFrame:
    """Run a query and give it the table's exact output schema (timestamps arrive as epoch us)."""
    df = con.sql(sql, params=params or None).pl()
    return _conform(df, table)


def _conform(df: pl.DataFrame, table: str, extra: dict[str, pl.DataType] | None = None) -> pl.DataFrame:
    schema = {**(extra or {}), **{c: _polars_type(t) for c, t in OUTPUT_SCHEMAS[table].items()}}
    exprs = []
    for c, target in schema.items():
        # Timestamps travel as int64 epoch microseconds so no engine applies a zone on the way.
        src = pl.col(c).cast(pl.Int64) if isinstance(target, pl.Datetime) else pl.col(c)
        exprs.append(src.cast(target))
    return df.select(exprs)


def _split_by_ds(df: pl.DataFrame, table: str, days: Iterable[dt.date]) -> dict[dt.date, pl.DataFrame]:
    cols = list(OUTPUT_SCHEMAS[table])
    parts = {k[0]: v.select(cols) for k, v in df.partition_by("ds", as_dict=True, maintain_order=True).items()}
    empty = _to_empty(table)
    return {d: parts.get(d, empty) for d in days}


def _to_empty(table: str) -> pl.DataFrame:
    return pl.DataFrame({c: pl.Series(c, [], dtype=_polars_type(t)) for c, t in OUTPUT_SCHEMAS[table].items()})


def _connect(memory_limit: str | None, threads: int | None, temp_dir: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    # Naive timestamps mean UTC, and timestamptz casts must never depend on the machine's zone.
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET temp_directory = {_lit(temp_dir)}")
    con.execute("SET preserve_insertion_order = false")
    if memory_limit:
        con.execute(f"SET memory_limit = {_lit(memory_limit)}")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def _checked_params(params: Params | None) -> Params:
    """`params` (defaults when None), refusing what would make the SQL meaningless or that the
    config loader (jobs.config) never lets through: the integers bound into the SQL are checked to
    be integers here, so no float or string ever reaches a day window or a count threshold."""
    p = Params(ds=EPOCH) if params is None else params
    if not isinstance(p, Params):
        raise TypeError(f"params must be a transforms.params.Params, not {type(p).__name__}")
    ints = {
        "trends.min_baseline_days": (p.trends.min_baseline_days, 0),
        "trends.window_days": (p.trends.window_days, 1),
        "offenders.min_violations": (p.offenders.min_violations, 0),
        "offenders.window_days": (p.offenders.window_days, 1),
    }
    for name, (value, low) in ints.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, not {value!r}")
    for name, value in (("trends.zscore_threshold", p.trends.zscore_threshold),
                        ("trends.min_volume", p.trends.min_volume), ("default_sla_s", p.default_sla_s),
                        *((f"sla_s.{q}", v) for q, v in p.sla_s.items())):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, not {value!r}")
    return p


def reference_tables(
    input_dir: str | Path,
    days: Sequence[dt.date],
    params: Params | None = None,
    *,
    memory_limit: str | None = None,
    threads: int | None = None,
    stats: dict | None = None,
) -> dict[dt.date, dict[str, pl.DataFrame]]:
    """Every output table for every day in `days`, computed in DuckDB SQL.

    `params`: the job's parameter object (`transforms.params.Params`, defaults when None); its `ds`
    is ignored (every day of `days` is computed). Every field that changes an output table is
    used, each bound into the SQL as a parameter or a temp table: `sla_s` and `default_sla_s`
    (reviewer_daily, queue_daily), `proactive_sources` (violation_daily), `trends.*` (window,
    min_baseline_days, zscore_threshold, min_volume: violation_trends) and `offenders.*` (window,
    min_violations: repeat_offenders). `taxonomy` changes no table (only the DQ gate's
    unknown-category checks), so it is not read.

    `days` are the days that were run: they alone are observed for violation_trends and
    counted for repeat_offenders. A missing input partition is read as empty (the main job
    refuses to run instead; the oracle has no reason to). If `stats` is given it receives
    {ds: {"duplicates_dropped": {table: n}}} for manifest checks.
    """
    p = _checked_params(params)
    input_dir = Path(input_dir)
    run_days = sorted(set(days))
    sla = p.sla_s
    proactive_sources = p.proactive_sources
    out: dict[dt.date, dict[str, pl.DataFrame]] = {d: {} for d in run_days}

    with tempfile.TemporaryDirectory(prefix="duckdb_ref_") as tmp:
        con = _connect(memory_limit, threads, tmp)
        try:
            con.execute("CREATE TEMP TABLE sla (queue VARCHAR, sla_s DOUBLE)")
            if sla:
                con.executemany("INSERT INTO sla VALUES (?, ?)", [(q, float(s)) for q, s in sla.items()])
            con.execute("CREATE TEMP TABLE proactive (source VARCHAR)")
            if proactive_sources:
                con.executemany("INSERT INTO proactive VALUES (?)", [(s,) for s in proactive_sources])
            con.execute("CREATE TEMP TABLE run_days (ds DATE)")
            if run_days:
                con.executemany("INSERT INTO run_days VALUES (?)", [(d,) for d in run_days])
            con.execute(
                "CREATE TEMP TABLE vd_hist (ds DATE, market VARCHAR, policy_category VARCHAR, actioned BIGINT)"
            )
            con.execute(
                "CREATE TEMP TABLE ccd_hist (ds DATE, creator_id VARCHAR, policy_category VARCHAR,"
                " violations BIGINT, last_violation_at BIGINT)"
            )
            dparams = {"default_sla": float(p.default_sla_s)}

            for ds in run_days:
                day = _Day(con, input_dir, ds)
                day.stage_all()
                if stats is not None:
                    stats[ds] = {"duplicates_dropped": dict(day.duplicates_dropped)}
                tables = out[ds]
                tables["quarantine"] = _to_polars(con, _quarantine_sql(), "quarantine")
                tables["reviewer_daily"] = _to_polars(con, _REVIEWER_SQL, "reviewer_daily", dparams)
                tables["queue_daily"] = _to_polars(con, _QUEUE_SQL, "queue_daily", dparams)
                con.execute(f"CREATE OR REPLACE TEMP TABLE vd_day AS {_VIOLATION_SQL}")
                tables["violation_daily"] = _to_polars(con, "SELECT * FROM vd_day", "violation_daily")
                con.execute(
                    "INSERT INTO vd_hist SELECT ?, market, policy_category, actioned FROM vd_day", [ds]
                )
                con.execute(f"CREATE OR REPLACE TEMP TABLE ccd_day AS {_CREATOR_CATEGORY_SQL}")
                tables["creator_category_daily"] = _to_polars(
                    con, "SELECT * FROM ccd_day", "creator_category_daily"
                )
                con.execute("INSERT INTO ccd_hist SELECT ?, * FROM ccd_day", [ds])
                day.drop_all()

            trends = _to_polars_with_ds(
                con,
                _TRENDS_SQL,
                "violation_trends",
                {
                    "window": p.trends.window_days,
                    "min_baseline_days": p.trends.min_baseline_days,
                    "zscore_threshold": float(p.trends.zscore_threshold),
                    "min_volume": float(p.trends.min_volume),
                },
            )
            offenders = _to_polars_with_ds(
                con,
                _OFFENDERS_SQL,
                "repeat_offenders",
                {"window": p.offenders.window_days, "offender_min": p.offenders.min_violations},
            )
        finally:
            con.close()

    for table, df in (("violation_trends", trends), ("repeat_offenders", offenders)):
        for d, part in _split_by_ds(df, table, run_days).items():
            out[d][table] = part
    return {d: {t: out[d][t] for t in OUTPUT_SCHEMAS} for d in run_days}


def _to_polars_with_ds(con: duckdb.DuckDBPyConnection, sql: str, table: str, params: dict) -> pl.DataFrame:
    return _conform(con.sql(sql, params=params).pl(), table, {"ds": pl.Date()})


# ---------------------------------------------------------------- comparison (the oracle's use)

# `row` last: rows that share the other four (conflicting duplicates) pair up by their content.
_QUARANTINE_SORT = ("source_table", "reason", "record_id", "decision_id", "row")
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


class MissingPartition(FileNotFoundError):
    """An output table's partition for the ds is not there (DESIGN §4: a run writes every one)."""


def _canonical_value(dtype: nw.dtypes.DType | None, value: object) -> object:
    """One spelling of a raw value as the engines write it into quarantine JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        # DuckDB writes bare NaN / Infinity tokens; the job writes the strings Spark's to_json uses.
        return "NaN" if math.isnan(value) else _NON_FINITE[value]
    if dtype == nw.Float64 and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if dtype == nw.Datetime and isinstance(value, str):
        # DuckDB: `2024-01-01 18:49:46.33475+00` (zeros trimmed, no offset when the file's column is
        # naive); the job: `2024-01-01T18:49:46.334750Z`. Naive means UTC (DESIGN §2).
        try:
            t = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
        t = t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
        return t.isoformat(timespec="microseconds")
    return value


def canonical_row(source_table: str | None, row: str | None) -> str | None:
    """A quarantine `row` as sorted-key JSON with its timestamps and non-finite floats spelled one way,
    so two engines' encodings of the same rejected row compare equal and different rows do not."""
    if row is None:
        return None
    try:
        parsed = json.loads(row)
    except ValueError:
        return f"<not JSON> {row}"
    if not isinstance(parsed, dict):
        return f"<not a JSON object> {row}"
    schema = INPUT_SCHEMAS.get(source_table or "", {})
    return json.dumps({k: _canonical_value(schema.get(k), v) for k, v in parsed.items()}, sort_keys=True)


def _comparable(table: str, df: pl.DataFrame) -> pl.DataFrame:
    if table != "quarantine":
        return df
    rows = [canonical_row(t, r) for t, r in zip(df["source_table"].to_list(), df["row"].to_list(), strict=True)]
    return df.with_columns(pl.Series("row", rows, dtype=pl.String))


def _schema_problems(table: str, frame: pl.DataFrame, side: str = "") -> list[str]:
    """How `frame`'s schema departs from the table's contract (transforms.schemas.OUTPUT_SCHEMAS,
    DESIGN §4): a missing or extra column, a dtype, the column order."""
    schema = OUTPUT_SCHEMAS[table]
    want_types = {c: _polars_type(t) for c, t in schema.items()}
    problems = []
    for c in schema:
        if c not in frame.columns:
            problems.append(f"{table}{side}: missing column {c}")
        elif frame.schema[c] != want_types[c]:
            problems.append(f"{table}.{c}{side}: dtype {frame.schema[c]} != {want_types[c]}")
    if list(frame.columns) != list(schema):
        problems.append(f"{table}{side}: columns {list(frame.columns)} != {list(schema)}")
    return problems


def _float_mismatches(es: pl.Series, as_: pl.Series, rel_tol: float, abs_tol: float) -> list[int]:
    """Positions where two float columns differ: null only equals null, NaN only NaN."""
    bad = []
    for i, (x, y) in enumerate(zip(es.to_list(), as_.to_list(), strict=True)):
        if x is None or y is None:
            if x is not y:
                bad.append(i)
        elif math.isnan(x) or math.isnan(y):
            if not (math.isnan(x) and math.isnan(y)):
                bad.append(i)
        elif not math.isclose(x, y, rel_tol=rel_tol, abs_tol=abs_tol):
            bad.append(i)
    return bad


def diff_table(
    table: str, expected: pl.DataFrame, actual: pl.DataFrame, *, rel_tol: float = 1e-9, abs_tol: float = 1e-9
) -> list[str]:
    """Human-readable differences between two versions of one output table (empty when equal).

    What is compared, all of it: the schema of both sides against the table's contract
    (`transforms.schemas.OUTPUT_SCHEMAS`: the column names, their order and dtypes; `expected`'s
    too, so a reference that drops or mistypes a column is a difference, not a pass), the row
    count, and every column's value in every row. Rows are matched after sorting by the grain
    (quarantine: every column, its `row` JSON compared as parsed values, see `canonical_row`).
    Non-float values must be equal (null only equals null). Float64 values must satisfy
    `math.isclose(x, y, rel_tol=rel_tol, abs_tol=abs_tol)` (default 1e-9 each: the two engines
    sum and divide in different orders, which moves the last bits, never the ninth significant
    digit); null only equals null and NaN only NaN.
    """
    if table not in OUTPUT_SCHEMAS:
        raise KeyError(f"{table}: not an output table")
    problems = _schema_problems(table, expected, " (expected)") + _schema_problems(table, actual)
    if problems:
        return problems
    cols = list(OUTPUT_SCHEMAS[table])
    if expected.height != actual.height:
        problems.append(f"{table}: {actual.height} rows, expected {expected.height}")
    keys = list(_QUARANTINE_SORT if table == "quarantine" else OUTPUT_GRAINS[table])
    e = _comparable(table, expected.select(cols)).sort(keys, nulls_last=False)
    a = _comparable(table, actual.select(cols)).sort(keys, nulls_last=False)
    if e.height != a.height:
        ek = e.select(keys).unique()
        ak = a.select(keys).unique()
        only_e = ek.join(ak, on=keys, how="anti", nulls_equal=True).head(5).rows()
        only_a = ak.join(ek, on=keys, how="anti", nulls_equal=True).head(5).rows()
        problems.append(f"{table}: keys only in expected {only_e}; only in actual {only_a}")
        return problems
    # The row JSON is a sort key, not a name for the row in a message.
    shown = [k for k in keys if k != "row"]
    for c in cols:
        es, as_ = e[c], a[c]
        if es.dtype == pl.Float64:
            bad = _float_mismatches(es, as_, rel_tol, abs_tol)
        else:
            neq = (es != as_) | (es.is_null() != as_.is_null())
            bad = neq.fill_null(False).arg_true().to_list()
        for i in bad[:5]:
            key = tuple(e.row(i, named=True)[k] for k in shown)
            problems.append(f"{table}.{c} at {key}: expected {es[i]!r}, got {as_[i]!r}")
        if len(bad) > 5:
            problems.append(f"{table}.{c}: {len(bad) - 5} more differences")
    return problems


def read_partition(part: str | Path, table: str) -> pl.DataFrame:
    """One table's partition directory; MissingPartition when it is not there or holds no file
    (every writer, the job and `write_tables`, writes a file even for no rows)."""
    files = sorted(glob.glob(str(Path(part) / "*.parquet")))
    if not files:
        raise MissingPartition(f"{table}: missing partition {part}")
    return pl.concat([pl.read_parquet(f) for f in files], how="vertical")


def read_output_table(output_dir: str | Path, table: str, ds: dt.date) -> pl.DataFrame:
    """A published table's partition for ds; MissingPartition when the run did not write it."""
    return read_partition(Path(output_dir) / table / f"ds={ds.isoformat()}", table)


def write_tables(output_dir: str | Path, tables: dict[dt.date, dict[str, pl.DataFrame]]) -> None:
    """Warehouse layout of DESIGN §4 (no manifest, no DQ: the oracle publishes nothing)."""
    for ds, by_table in tables.items():
        for table, df in by_table.items():
            part = Path(output_dir) / table / f"ds={ds.isoformat()}"
            part.mkdir(parents=True, exist_ok=True)
            df.write_parquet(part / "part-00000.parquet")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.duckdb_reference", description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--ds", action="append", required=True, type=dt.date.fromisoformat)
    p.add_argument("--memory-limit", default=os.environ.get("RISKINSIGHT_DUCKDB_MEMORY"))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--config", default=None, help="the job's TOML config (default: every parameter at its default)")
    args = p.parse_args(argv)
    params = None
    if args.config is not None:
        from jobs.config import load_config
        from jobs.errors import UsageError

        try:
            params = load_config(args.config).job
        except UsageError as exc:
            p.error(str(exc))
    tables = reference_tables(args.input, args.ds, params, memory_limit=args.memory_limit, threads=args.threads)
    write_tables(args.output, tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
