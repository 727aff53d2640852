"""The Polars engine's memory bounds (key-count buckets, by_key_parts) must not change a single row.

A small generated stretch of days runs once with every bound far above the data and once with
bounds of a few rows, so staging counts keys in many buckets and creator_category_daily and
repeat_offenders are computed part by part; the tables must be equal.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import narwhals.stable.v2 as nw
import polars as pl
import pytest

from jobs import nightly
from jobs import warehouse as wh
from jobs.engines.polars_engine import PolarsEngine
from jobs.generate import generate
from jobs.manifest import OFFENDER_CATEGORIES
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


def test_parts_and_buckets_give_the_same_tables(tmp_path: Path, monkeypatch) -> None:
    generate(tmp_path / "input", START, len(DAYS), 800, seed=5, dirty_rate=0.006)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    run_days(tmp_path / "input", whole, DAYS, engine=_engine(10**9), report=False)
    monkeypatch.setattr(nightly, "HISTORY_ROWS_PER_PART", 97)
    run_days(tmp_path / "input", parts, DAYS, engine=_engine(97), report=False)
    for ds in DAYS:
        expected, got = read_outputs(whole, ds), read_outputs(parts, ds)
        for table in OUTPUT_TABLES:
            assert_same_table(table, expected[table], got[table], where=f"{ds} ")
        assert _offender_categories(parts, ds) == _offender_categories(whole, ds)
    assert sum(r["creators"] for r in _offender_categories(parts, DAYS[-1])) > 0
    last = read_outputs(parts, DAYS[-1])
    # Non-trivial: the split tables have many groups and the offenders read earlier days.
    assert last["creator_category_daily"].height > 97 and last["repeat_offenders"].height > 0
    assert last["queue_daily"].height > 1


def _offender_categories(output: Path, ds: dt.date) -> list[dict]:
    return json.loads((wh.runs_dir(output, ds) / "manifest.json").read_text())[OFFENDER_CATEGORIES]


def _parts_seen(engine: PolarsEngine, data: pl.DataFrame, **kwargs) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """by_key_parts' result, and the input rows each part's build was given."""
    seen: list[nw.LazyFrame] = []

    def build(part: nw.LazyFrame) -> nw.LazyFrame:
        seen.append(part)
        return part.group_by("k").agg(nw.col("v").sum(), nw.len().alias("n"))

    out = engine.collect({"t": engine.by_key_parts(engine.frame(data), ["k"], build, **kwargs)})["t"]
    return out.sort("k", nulls_last=True), [p.to_native().collect() for p in seen]


@pytest.mark.parametrize("key", ["string", "integer"])
def test_by_key_parts_gives_each_key_to_exactly_one_part(key: str) -> None:
    # Strings are split into ranges (so a file sorted by the key is read a range at a time), other
    # keys by hash; either way every row lands in exactly one part, nulls included.
    keys = [None if i % 13 == 0 else (f"k{i % 29:02d}" if key == "string" else i % 29) for i in range(400)]
    data = pl.DataFrame({"k": keys, "v": list(range(400))})
    out, parts = _parts_seen(_engine(40), data)
    assert len(parts) > 3
    assert sum(p.height for p in parts) == 400
    key_sets = [set(p["k"].to_list()) for p in parts]
    assert all(not (a & b) for i, a in enumerate(key_sets) for b in key_sets[i + 1:])
    expected = data.group_by("k").agg(pl.col("v").sum(), pl.len().cast(pl.UInt32).alias("n")).sort("k", nulls_last=True)
    assert out.select("k", "v", pl.col("n").cast(pl.UInt32)).to_dicts() == expected.to_dicts()


def test_by_key_parts_takes_the_callers_part_size() -> None:
    data = pl.DataFrame({"k": [f"k{i % 50:02d}" for i in range(200)], "v": list(range(200))})
    assert len(_parts_seen(_engine(10**9), data)[1]) == 1
    out, parts = _parts_seen(_engine(10**9), data, rows_per_part=20)
    assert len(parts) == 10  # 200 rows / 20, on 50 distinct keys spread evenly
    assert out.height == 50 and out["n"].to_list() == [4] * 50


@pytest.mark.parametrize("rows_per_part", [1, 3, 10**9])
def test_by_key_parts_tables_builds_each_part_once_and_stacks_each_table(rows_per_part: int) -> None:
    data = pl.DataFrame({"k": ["a", "b", "b", "c", "d", "d", "d", None], "v": [1, 2, 3, 4, 5, 6, 7, 8]})
    engine = PolarsEngine()
    built: list[pl.DataFrame] = []

    def build(part: nw.LazyFrame) -> nw.LazyFrame:
        return part.group_by("k").agg(nw.col("v").sum())

    def finish(per_key: nw.LazyFrame) -> dict[str, nw.LazyFrame]:
        built.append(per_key.to_native().collect())
        return {"per_key": per_key, "total": per_key.select(nw.col("v").sum(), nw.len().alias("keys"))}

    out = engine.collect(engine.by_key_parts_tables(engine.frame(data), ["k"], build, finish, rows_per_part=rows_per_part))
    assert dict(out["per_key"].sort("k", nulls_last=True).iter_rows()) == {"a": 1, "b": 5, "c": 4, "d": 18, None: 8}
    # One partial total per part, which add up to the whole.
    assert out["total"].height == len(built) and (len(built) > 1) == (rows_per_part < data.height)
    assert (out["total"]["v"].sum(), out["total"]["keys"].sum()) == (36, 5)
    assert sorted(k for b in built for k in b["k"].to_list() if k is not None) == ["a", "b", "c", "d"]


@pytest.mark.parametrize("keys_per_bucket", [10**9, 7, 1])
def test_key_count_marks_exactly_the_rows_whose_key_repeats_or_is_null(keys_per_bucket: int) -> None:
    """The candidates staging deduplicates in memory: every row of a repeated key (whichever bucket
    its hash falls in) and every null key, and no other row (no hash collides among these few)."""
    keys = [f"d{i}" for i in range(40)] + ["d3", "d3", "d17", "d39", None, None]
    day = pl.LazyFrame({"decision_id": keys, "n": range(len(keys))})
    marked = day.filter(_engine(keys_per_bucket)._candidates(day, "decisions")).collect()
    assert sorted(marked["n"].to_list()) == [3, 17, 39, 40, 41, 42, 43, 44, 45]
