"""input_profile on hand-built staged frames, Polars and (marked) PySpark."""

from __future__ import annotations

import datetime as dt
from typing import Any

import narwhals.stable.v2 as nw
import polars as pl
import pytest

from transforms.input_profile import input_profile, profile_dict
from transforms.params import Params
from transforms.schemas import INPUT_SCHEMAS, TS

DS = dt.date(2024, 1, 31)
NOON = dt.datetime(2024, 1, 31, 12, tzinfo=dt.timezone.utc)

_PL_TYPES = {
    "String": pl.String,
    "Float64": pl.Float64,
    "Int64": pl.Int64,
    "Date": pl.Date,
    "Boolean": pl.Boolean,
}


def _pl_schema(table: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, dtype in INPUT_SCHEMAS[table].items():
        out[name] = pl.Datetime("us", "UTC") if dtype == TS else _PL_TYPES[str(dtype)]
    return out


def _rows(table: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A staged frame: every INPUT_SCHEMAS column (null unless given) plus the `<ts>_us` companions."""
    schema = _pl_schema(table)
    full = [{c: row.get(c) for c in schema} for row in rows]
    frame = pl.DataFrame(full, schema=schema, orient="row")
    ts_cols = [c for c, d in INPUT_SCHEMAS[table].items() if d == TS]
    return frame.with_columns([pl.col(c).dt.epoch("us").alias(f"{c}_us") for c in ts_cols])


def _decision(**kw: Any) -> dict[str, Any]:
    base = {
        "decision_id": "d", "content_id": "c", "creator_id": "cr", "market": "US",
        "queue": "comments", "detection_source": "ml_model", "enqueued_at": NOON, "decided_at": NOON,
        "decision_mode": "automated", "outcome": "no_violation", "action": "none",
    }
    return base | kw


def _staged_frames() -> dict[str, pl.DataFrame]:
    decisions = _rows("decisions", [
        _decision(decision_id="1"),  # clean automated no_violation
        _decision(decision_id="2", decision_mode="human", reviewer_id="r1", handle_time_s=10.0,
                  outcome="violation", policy_category="spam", action="remove"),
        _decision(decision_id="3", market=None, outcome="violation", policy_category="made_up",
                  action="none"),  # unknown market (null), unknown category, action mismatch
        _decision(decision_id="4", market="XX", queue="nonexistent", action="remove"),  # market, queue, mismatch
        _decision(decision_id="5", market="us", queue=None, decision_mode="human", reviewer_id="r2",
                  handle_time_s=5.0, outcome="violation", policy_category="hate_speech", action=None),
        # DESIGN §2 spells actions in lower case from a fixed set: these are unknown, not mismatches.
        _decision(decision_id="6", outcome="violation", policy_category="spam", action="banana"),
        _decision(decision_id="7", outcome="violation", policy_category="spam", action="REMOVE"),
        _decision(decision_id="8", action="banana"),  # no_violation: unknown once, not a mismatch too
    ])
    appeals = _rows("appeals", [
        {"appeal_id": "a1", "decision_id": "2", "decision_mode": "human", "reviewer_id": "r1",
         "market": "US", "policy_category": "spam", "appeal_outcome": "upheld"},
        {"appeal_id": "a2", "decision_id": "9", "decision_mode": "automated",
         "market": "ZZ", "policy_category": None, "appeal_outcome": "overturned"},
    ])
    qa = _rows("qa_audits", [
        {"audit_id": "q1", "decision_id": "2", "reviewer_id": "r1", "market": "DE", "queue": "comments",
         "original_outcome": "violation", "original_category": "spam",
         "expected_outcome": "violation", "expected_category": "bogus"},
        {"audit_id": "q2", "decision_id": "5", "reviewer_id": "r2", "market": None, "queue": "weird",
         "original_outcome": "no_violation", "expected_outcome": "no_violation"},
    ])
    shifts = _rows("shifts", [
        {"reviewer_id": "r1", "shift_date": DS, "logged_in_s": 3600.0},
    ])
    return {"decisions": decisions, "appeals": appeals, "qa_audits": qa, "shifts": shifts}


EXPECTED: dict[tuple[str, str], float] = {
    ("decisions", "staged_rows"): 8,
    ("decisions", "human_decisions"): 2,
    ("decisions", "automated_decisions"): 6,
    ("decisions", "violations"): 5,
    ("decisions", "unknown_market"): 3,  # null, XX, lower-case us
    ("decisions", "unknown_category"): 1,
    ("decisions", "unknown_queue"): 2,  # nonexistent, null
    ("decisions", "unknown_action"): 4,  # null, banana (violation), REMOVE, banana (no_violation)
    ("decisions", "action_mismatch"): 2,  # violation+none, no_violation+remove
    ("appeals", "staged_rows"): 2,
    ("appeals", "human_appeals"): 1,
    ("appeals", "unknown_market"): 1,
    ("appeals", "unknown_category"): 1,
    ("qa_audits", "staged_rows"): 2,
    ("qa_audits", "unknown_market"): 1,
    ("qa_audits", "unknown_queue"): 1,
    ("qa_audits", "unknown_category"): 1,
    ("shifts", "staged_rows"): 1,
}


def _collect(profile: nw.LazyFrame) -> dict[tuple[str, str], float]:
    frame = profile.collect()
    assert frame.schema == {"table": nw.String(), "figure": nw.String(), "value": nw.Float64()}
    return profile_dict(frame)


def test_profile_polars_counts_every_figure() -> None:
    staged = {t: nw.from_native(f.lazy()) for t, f in _staged_frames().items()}
    assert _collect(input_profile(staged, Params(ds=DS))) == EXPECTED


def test_profile_polars_empty_day_is_all_zero() -> None:
    staged = {t: nw.from_native(f.clear().lazy()) for t, f in _staged_frames().items()}
    got = _collect(input_profile(staged, Params(ds=DS)))
    assert set(got) == set(EXPECTED)
    assert all(v == 0.0 for v in got.values())


def test_profile_follows_params_taxonomy_and_queues() -> None:
    frames = _staged_frames()
    params = Params(ds=DS, taxonomy=("spam", "hate_speech", "made_up"), sla_s={"comments": 60.0, "nonexistent": 1.0})
    got = _collect(input_profile({"decisions": nw.from_native(frames["decisions"].lazy())}, params))
    assert got[("decisions", "unknown_category")] == 0
    assert got[("decisions", "unknown_queue")] == 1  # only the null queue now


@pytest.fixture(scope="module")
def profile_spark():
    pyspark_sql = pytest.importorskip("pyspark.sql")
    # Reuse a session another test module started, and then leave it running for them.
    existing = pyspark_sql.SparkSession.getActiveSession()
    if existing is not None:
        yield existing
        return
    session = (
        pyspark_sql.SparkSession.builder.master("local[2]")
        .appName("test_input_profile")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.mark.spark
@pytest.mark.parametrize("empty", [False, True])
def test_profile_spark_matches_polars(profile_spark, empty: bool) -> None:
    staged = {}
    for table, frame in _staged_frames().items():
        if empty:
            frame = frame.clear()
        # An explicit schema: Spark cannot infer the type of a column that is all null.
        pdf = frame.to_pandas()
        staged[table] = nw.from_native(profile_spark.createDataFrame(pdf, schema=_spark_ddl(frame)))
    got = _collect(input_profile(staged, Params(ds=DS)))
    expected = {k: (0.0 if empty else float(v)) for k, v in EXPECTED.items()}
    assert got == expected


def _spark_ddl(frame: pl.DataFrame) -> str:
    names = {pl.String: "string", pl.Float64: "double", pl.Int64: "bigint", pl.Date: "date", pl.Boolean: "boolean"}
    cols = []
    for name, dtype in frame.schema.items():
        cols.append(f"`{name}` {'timestamp' if isinstance(dtype, pl.Datetime) else names[dtype.base_type()]}")
    return ", ".join(cols)
