"""A multi-day run on generated data (dirty rows included) equals an independent DuckDB SQL recomputation."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import math

import pytest

from benchmarks.duckdb_reference import diff_table, read_output_table, read_partition, reference_tables
from jobs.config import Config
from jobs.errors import DQGateFailed
from jobs import warehouse as wh
from jobs.generate import generate
from jobs.manifest import OFFENDER_CATEGORIES
from jobs.nightly import Candidate, run_days
from jobs.report import _count_offender_categories
from transforms.params import DEFAULT_SLA_S, EPOCH, OffenderParams, Params, TrendParams
from transforms.schemas import OUTPUT_TABLES

START = dt.date(2024, 2, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(16)]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    generate(root / "in", START, len(DAYS), 3000, seed=11, dirty_rate=0.002)
    run_days(root / "in", root / "out", DAYS, engine="polars", report=False)
    return root


def test_every_day_was_published(warehouse):
    assert wh.published_days(warehouse / "out", "violation_daily") == DAYS


# Not marked slow: the warehouse fixture the fast tests build is most of its cost (the reference
# adds ~2.5 s), and it is the one test that catches some wrong numbers (a mutation run: `removed`
# counting end_live, a z-score needing one baseline day too many).
def test_every_table_of_every_day_equals_the_duckdb_reference(warehouse):
    expected = reference_tables(warehouse / "in", DAYS)
    problems = []
    for ds in DAYS:
        for table in OUTPUT_TABLES:
            problems += [f"{ds} {table}: {p}" for p in diff_table(table, expected[ds][table], read_output_table(warehouse / "out", table, ds))]
    assert problems == []


def test_manifest_counts_match_the_generator_and_the_quarantine_table(warehouse):
    out = warehouse / "out"
    for ds in DAYS:
        manifest = json.loads((wh.runs_dir(out, ds) / "manifest.json").read_text())
        quarantine = read_output_table(out, "quarantine", ds)
        for table, reasons in manifest["quarantined"].items():
            got = quarantine.filter(quarantine["source_table"] == table)["reason"].value_counts()
            assert dict(zip(got["reason"], got["count"], strict=True)) == reasons
        assert manifest["rows_written"]["quarantine"] == quarantine.height
        # Generated dirty rows include every decisions reason on each day of this size.
        assert set(manifest["quarantined"]["decisions"]) >= {
            "missing_key", "bad_timestamp", "wrong_partition", "bad_mode", "bad_outcome", "bad_range", "conflicting_duplicate",
        }
        assert manifest["duplicates_dropped"]["decisions"] > 0


def test_offender_categories_in_the_manifest_match_the_published_tables(warehouse):
    # The run derives them from its own aggregation of the window; the report's count for days
    # published without them reads the published days instead. Both must agree, and add up to
    # repeat_offenders: each offender's violations and distinct categories are spread over them.
    out = warehouse / "out"
    seen = 0
    for ds in DAYS:
        figures = json.loads((wh.runs_dir(out, ds) / "manifest.json").read_text())[OFFENDER_CATEGORIES]
        offenders = read_output_table(out, "repeat_offenders", ds)
        counted = _count_offender_categories(out, ds, offenders, OffenderParams().window_days)
        expected = [] if counted is None or offenders.height == 0 else counted.sort("policy_category").to_dicts()
        assert figures == expected, ds
        assert sum(r["violations"] for r in figures) == offenders["violations_30d"].sum()
        assert sum(r["creators"] for r in figures) == offenders["distinct_categories"].sum()
        seen += len(figures)
    assert seen > len(DAYS)  # offenders in several categories on most days


@pytest.mark.parametrize(("unit", "naive"), [("ns", True), ("ms", False), ("us", False)])
def test_quarantined_rows_json_equals_the_reference(tmp_path, unit, naive):
    """The quarantine's `row` of each engine, compared as parsed values: timestamps of every unit (naive
    meaning UTC), sub-second digits, NaN and ±Infinity, a large float. Nearly every row is rejected, so
    the gate fails and the tables are read from the run's candidate."""
    from tests.test_duckdb_reference import D, T, appeal, audit, dec, shift, viol, write

    rows = [viol("v1"), dec(None), dec("v2", handle_time_s=float("nan")), dec("v3", handle_time_s=math.inf),
            dec("v4", handle_time_s=-math.inf), dec("v5", decided_at=T + dt.timedelta(days=3, microseconds=1)),
            dec("v6", outcome="x", decided_at=T.replace(microsecond=123456)),
            dec("v7", decision_mode="robot", handle_time_s=1e20)]
    write(tmp_path / "in", "decisions", D, rows, unit=unit, naive=naive)
    write(tmp_path / "in", "appeals", D, [appeal("a1", appeal_outcome="x")], unit=unit, naive=naive)
    write(tmp_path / "in", "qa_audits", D, [audit("q1", original_outcome="x")], unit=unit, naive=naive)
    write(tmp_path / "in", "shifts", D, [shift("r1", logged_in_s=float("nan")), shift("r2", logged_in_s=-1.0)])
    expected = reference_tables(tmp_path / "in", [D])[D]["quarantine"]
    assert expected.height == 11
    with contextlib.suppress(DQGateFailed):
        run_days(tmp_path / "in", tmp_path / "out", [D], engine="polars", report=False)
    published = tmp_path / "out" / "quarantine" / f"ds={D}"
    actual = read_partition(published if published.exists() else Candidate(tmp_path / "out", D).table_dir("quarantine"),
                            "quarantine")
    assert diff_table("quarantine", expected, actual) == []


# ---------------------------------------------------------------- non-default parameters

# Every parameter that changes an output table, away from its default: SLAs changed and one
# generated queue (comments) left to default_sla_s; a proactive set with a reactive source in it; a
# trend window shorter than the week the 7-day mean and week-ago value read; thresholds low enough
# for this small volume to flag anomalies; a short offender window with a lower bar.
NON_DEFAULT = Params(
    ds=EPOCH,
    sla_s={**{q: s for q, s in DEFAULT_SLA_S.items() if q != "comments"},
           "live_realtime": 120.0, "live_escalation": 600.0, "video_standard": 3600.0},
    default_sla_s=1800.0,
    proactive_sources=("ml_model", "user_report"),
    trends=TrendParams(min_baseline_days=3, zscore_threshold=1.5, min_volume=5.0, window_days=5),
    offenders=OffenderParams(min_violations=2, window_days=4),
)
# The fields of Params that change an output table ("section.field" for the nested ones). taxonomy
# changes none (only the DQ gate's unknown-category checks); ds is each run's own.
TABLE_PARAMS = ("sla_s", "default_sla_s", "proactive_sources", "trends.min_baseline_days", "trends.zscore_threshold",
                "trends.min_volume", "trends.window_days", "offenders.min_violations", "offenders.window_days")
ND_DAYS = [START + dt.timedelta(days=i) for i in range(8)]


def _at_default(params: Params, name: str) -> Params:
    """`params` with the one field `name` put back to its default."""
    default = Params(ds=params.ds)
    if "." not in name:
        return dataclasses.replace(params, **{name: getattr(default, name)})
    section, field = name.split(".")
    inner = dataclasses.replace(getattr(params, section), **{field: getattr(getattr(default, section), field)})
    return dataclasses.replace(params, **{section: inner})


def _differences(expected: dict, actual_of) -> list[str]:
    return [f"{ds} {table}: {p}" for ds in ND_DAYS for table in OUTPUT_TABLES
            for p in diff_table(table, expected[ds][table], actual_of(ds, table))]


@pytest.fixture(scope="module")
def non_default(tmp_path_factory):
    """The Polars job run with NON_DEFAULT on generated days (dirty rows included), and the reference's tables."""
    root = tmp_path_factory.mktemp("e2e_params")
    generate(root / "in", START, len(ND_DAYS), 500, seed=5, dirty_rate=0.002)
    run_days(root / "in", root / "out", ND_DAYS, engine="polars", config=Config(job=NON_DEFAULT), report=False)
    return root, reference_tables(root / "in", ND_DAYS, NON_DEFAULT)


def test_every_table_equals_the_reference_with_non_default_params(non_default):
    root, expected = non_default
    # A field added to Params must be added here (and to the reference) or named as changing no table.
    top = {f.name for f in dataclasses.fields(Params)} - {"ds", "taxonomy", "trends", "offenders"}
    nested = {f"{section}.{f.name}" for section, cls in (("trends", TrendParams), ("offenders", OffenderParams))
              for f in dataclasses.fields(cls)}
    assert set(TABLE_PARAMS) == top | nested
    assert _differences(expected, lambda ds, table: read_output_table(root / "out", table, ds)) == []
    # Not vacuous: anomalies flagged and repeat offenders found under these parameters.
    assert any(expected[ds]["violation_trends"]["is_anomaly"].any() for ds in ND_DAYS)
    assert any(expected[ds]["repeat_offenders"].height for ds in ND_DAYS)


@pytest.mark.parametrize("name", TABLE_PARAMS)
def test_each_non_default_param_changes_the_tables(non_default, name):
    """On this input every parameter of NON_DEFAULT matters: put back to its default alone, some table
    differs. So the equality above fails if either side ignored any one of them (a reference with a
    window hard-coded, say), instead of the two agreeing on the defaults."""
    root, expected = non_default
    other = reference_tables(root / "in", ND_DAYS, _at_default(NON_DEFAULT, name))
    assert _differences(expected, lambda ds, table: other[ds][table]), name
