"""Spark's physical plans: how often a query reads its input and shuffles it.

At 10 M decisions each extra read of the day or shuffle of its rows costs seconds on two cores,
and nothing but the plan shows one: the numbers come out the same. These tests count scans and
exchanges in the plans Spark would execute (parity with Polars is tested elsewhere).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import narwhals.stable.v2 as nw
import polars as pl
import pytest

from jobs.config import Config
from tests.builders import decision, frame
from transforms.repeat_offenders import offender_pairs

pytestmark = pytest.mark.spark


def _plan(frame: nw.LazyFrame) -> str:
    # Once executed, adaptive execution prints its final plan and then the initial one: keep the first.
    plan = str(frame.to_native()._jdf.queryExecution().executedPlan().toString())
    return plan.split("== Initial Plan ==")[0]


def _scans(plan: str) -> int:
    return len(re.findall(r"FileScan parquet", plan))


def _exchanges(plan: str) -> list[str]:
    """Each shuffle's partitioning (broadcasts aside)."""
    return re.findall(r"Exchange (hashpartitioning\([^)]*\)|SinglePartition|rangepartitioning\([^)]*\))[^\n]*", plan)


def _parquet(spark_engine, tmp_path: Path, data: pl.DataFrame) -> nw.LazyFrame:
    data.write_parquet(tmp_path / "part.parquet")
    return nw.from_native(spark_engine.spark.read.parquet(str(tmp_path / "part.parquet")))


def test_grouping_sets_read_the_frame_once_per_pass_not_once_per_set(spark_engine, tmp_path: Path) -> None:
    """Four sets with quantiles: one read for the aggregations and two for the quantiles' ranks,
    where set by set it took twelve."""
    frame = _parquet(
        spark_engine, tmp_path, pl.DataFrame({"m": ["a", "b", "a"], "c": ["x", "x", "y"], "v": [1.0, 2.0, 3.0]})
    )
    sets = (("m", "c"), ("c",), ("m",), ())
    out = spark_engine.aggregate_sets(frame, ["m", "c"], sets, [nw.len().alias("n")], {"p50": ("v", 0.5)}, "ALL")
    assert _scans(_plan(out)) == 3
    assert spark_engine.collect({"t": out})["t"].height == 3 + 2 + 2 + 1


def test_keyed_quantiles_read_the_frame_once_for_all_quantiles_of_a_column(spark_engine, tmp_path: Path) -> None:
    """Per key, a column's quantiles come from one sorted list per group: one read and one shuffle
    beside the aggregations' own, where ranking by bucket read the frame twice more and shuffled
    three times more."""
    frame = _parquet(
        spark_engine, tmp_path, pl.DataFrame({"k": ["a", "b", "a", None], "v": [1.0, 2.0, 3.0, 4.0]})
    )
    out = spark_engine.aggregate(frame, ["k"], [nw.len().alias("n")], {"p50": ("v", 0.5), "p90": ("v", 0.9)})
    plan = _plan(out)
    assert _scans(plan) == 2
    # One shuffle by the key for the aggregations and one for the lists (the join of the two is broadcast).
    assert sorted(e.split("(")[1].split("#")[0] for e in _exchanges(plan)) == ["_key_k", "k"], _exchanges(plan)
    got = spark_engine.collect({"t": out})["t"]
    assert {r["k"]: (r["n"], r["p50"], r["p90"]) for r in got.iter_rows(named=True)} == {
        "a": (2, 2.0, pytest.approx(2.8, rel=1e-12)), "b": (1, 2.0, 2.0), None: (1, 4.0, 4.0)
    }


def test_offender_pairs_shuffle_the_window_once_by_creator(spark_engine, tmp_path: Path) -> None:
    """by_key_parts_tables partitions by the key once; the pairs' group-by and the per-creator
    window both run inside those partitions."""
    params = Config().params(dt.date(2024, 3, 14))
    history = _parquet(
        spark_engine,
        tmp_path,
        pl.DataFrame(
            {
                "creator_id": ["c1", "c1", "c2"],
                "policy_category": ["spam", "hate", "spam"],
                "violations": [2, 1, 1],
                "last_violation_at": [dt.datetime(2024, 3, 14, 1)] * 3,
                "ds": [dt.date(2024, 3, 14)] * 3,
            }
        ),
    )
    handed: list[nw.LazyFrame] = []

    def build(frame: nw.LazyFrame) -> nw.LazyFrame:
        handed.append(frame)
        return offender_pairs(frame, params)

    tables = spark_engine.by_key_parts_tables(history, ["creator_id"], build, lambda pairs: {"pairs": pairs})
    shuffles = _exchanges(_plan(offender_pairs(handed[0], params)))
    assert len(shuffles) == 1 and shuffles[0].startswith("hashpartitioning(creator_id"), shuffles
    # c1 has 3 violations in two categories (the threshold is 3), c2 one.
    pairs = spark_engine.collect(tables)["pairs"]
    assert sorted(pairs.select("creator_id", "policy_category").rows()) == [("c1", "hate"), ("c1", "spam")]


def test_repeated_keys_are_counted_after_one_shuffle_of_the_key_alone(spark_engine, tmp_path: Path, monkeypatch) -> None:
    """No map-side count of the keys (they nearly all occur once): the key column alone is
    hash-partitioned and counted where it lands."""
    from jobs.engines import spark_engine as module

    raw = spark_engine.read_input("decisions", _decisions_partition(tmp_path))
    counted: list[nw.LazyFrame] = []
    real = module.staging.repeated_keys

    def spy(frame: nw.LazyFrame, table: str) -> nw.LazyFrame:
        counted.append(real(frame, table))
        return counted[-1]

    monkeypatch.setattr(module.staging, "repeated_keys", spy)
    keys = spark_engine.collect({"k": spark_engine._repeated_keys(raw, "decisions")})["k"]
    assert keys["decision_id"].to_list() == ["d1"]
    plan = _plan(counted[0])
    shuffles = _exchanges(plan)
    assert len(shuffles) == 1 and shuffles[0].startswith("hashpartitioning(decision_id"), shuffles
    assert "partial_count" not in plan.split("Exchange")[-1], "no count below the shuffle"
    assert re.search(r"FileScan parquet \[decision_id#\d+\]", plan), "the key column alone is read"


def _decisions_partition(tmp_path: Path) -> Path:
    partition = tmp_path / "decisions" / "ds=2024-03-14"
    partition.mkdir(parents=True)
    rows = [decision(decision_id="d1"), decision(decision_id="d1"), decision(decision_id="d2")]
    frame("decisions", rows).write_parquet(partition / "part-0.parquet")
    return partition
