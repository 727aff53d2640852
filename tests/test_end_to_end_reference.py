"""A multi-day run on generated data (dirty rows included) equals an independent DuckDB SQL recomputation."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math

import pytest

from benchmarks.duckdb_reference import diff_table, read_output_table, read_partition, reference_tables
from jobs.errors import DQGateFailed
from jobs import warehouse as wh
from jobs.generate import generate
from jobs.manifest import OFFENDER_CATEGORIES
from jobs.nightly import Candidate, run_days
from jobs.report import _count_offender_categories
from transforms.params import OffenderParams
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
