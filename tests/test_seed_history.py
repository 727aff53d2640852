"""benchmarks.seed_history: the seeded creator_category_daily equals the job's own on clean input."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from benchmarks.seed_history import main as seed
from jobs import warehouse as wh
from jobs.generate import generate
from jobs.nightly import run_days

DAY = dt.date(2024, 5, 2)


def test_seeded_days_equal_the_jobs_table(tmp_path: Path) -> None:
    generate(tmp_path / "input", DAY, 2, 3000, seed=11, dirty_rate=0.0)
    run_days(tmp_path / "input", tmp_path / "job", [DAY, DAY + dt.timedelta(days=1)], report=False)
    assert seed(["--input", str(tmp_path / "input"), "--output", str(tmp_path / "seeded"),
                 "--first", str(DAY), "--last", str(DAY + dt.timedelta(days=1))]) == 0
    for day in (DAY, DAY + dt.timedelta(days=1)):
        job = pl.read_parquet(wh.partition_dir(tmp_path / "job", "creator_category_daily", day) / "*.parquet")
        seeded = pl.read_parquet(wh.partition_dir(tmp_path / "seeded", "creator_category_daily", day) / "*.parquet")
        assert job.height > 100
        assert seeded.equals(job)
