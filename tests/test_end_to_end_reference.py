"""A multi-day run on generated data (dirty rows included) equals an independent DuckDB SQL recomputation."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from benchmarks.duckdb_reference import diff_table, read_output_table, reference_tables
from jobs import warehouse as wh
from jobs.generate import generate
from jobs.manifest import OFFENDER_CATEGORIES
from jobs.nightly import run_days
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


@pytest.mark.slow
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
