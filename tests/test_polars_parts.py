"""The Polars engine's memory bounds (key-count buckets, by_key_parts) must not change a single row.

A small generated stretch of days runs once with every bound far above the data and once with
bounds of a few rows, so staging counts keys in many buckets and queue_daily,
creator_category_daily and repeat_offenders are computed part by part; the tables must be equal.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from jobs.engines.polars_engine import PolarsEngine
from jobs.generate import generate
from jobs.nightly import run_days
from tests.test_spark_parity import assert_same_table, read_outputs
from transforms.schemas import OUTPUT_TABLES

START = dt.date(2024, 3, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(3)]


def _engine(rows: int) -> PolarsEngine:
    engine = PolarsEngine()
    engine.keys_per_bucket = rows
    engine.rows_per_part = rows
    return engine


def test_parts_and_buckets_give_the_same_tables(tmp_path: Path) -> None:
    generate(tmp_path / "input", START, len(DAYS), 800, seed=5, dirty_rate=0.006)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    run_days(tmp_path / "input", whole, DAYS, engine=_engine(10**9), report=False)
    run_days(tmp_path / "input", parts, DAYS, engine=_engine(97), report=False)
    for ds in DAYS:
        expected, got = read_outputs(whole, ds), read_outputs(parts, ds)
        for table in OUTPUT_TABLES:
            assert_same_table(table, expected[table], got[table], where=f"{ds} ")
    last = read_outputs(parts, DAYS[-1])
    # Non-trivial: the split tables have many groups and the offenders read earlier days.
    assert last["creator_category_daily"].height > 97 and last["repeat_offenders"].height > 0
    assert last["queue_daily"].height > 1


def test_by_key_parts_evaluates_each_part_of_the_key(tmp_path: Path) -> None:
    import narwhals.stable.v2 as nw

    engine = _engine(4)
    frame = engine.frame(pl.DataFrame({"k": [f"k{i % 5}" for i in range(40)], "v": list(range(40))}))
    seen: list[int] = []

    def build(part: nw.LazyFrame) -> nw.LazyFrame:
        seen.append(1)
        return part.group_by("k").agg(nw.col("v").sum(), nw.len().alias("n"))

    out = engine.collect({"t": engine.by_key_parts(frame, ["k"], build)})["t"].sort("k")
    assert len(seen) == 10  # 40 rows / 4 per part
    assert out.to_dicts() == [{"k": f"k{j}", "v": sum(range(j, 40, 5)), "n": 8} for j in range(5)]
