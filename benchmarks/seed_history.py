"""Seed a warehouse with earlier days of creator_category_daily, to time a run a month into production.

    python -m benchmarks.seed_history --input /tmp/histgen --output WAREHOUSE --first 2023-12-03 --last 2023-12-31

The harness (`benchmarks.run`) times a day on an empty warehouse; a nightly run a month in also
reads 30 published days of `creator_category_daily` (the history stage's `repeat_offenders` and the
report's offender categories). Each seeded day is that table computed by its own transform from
the day's raw decisions that staging would pass for it (a creator, a violation with its category,
decided that day), without the rest of staging. At 10 M decisions a day that takes 4 s a day,
where running the job itself for 29 days would take most of an hour; on input without dirty rows it
equals the job's own table (tests/test_seed_history.py). Nothing else of those days is written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import narwhals.stable.v2 as nw
import polars as pl

from jobs import warehouse as wh
from jobs.engines.polars_engine import PolarsEngine
from transforms.repeat_offenders import creator_category_daily
from transforms.schemas import OUTPUT_GRAINS

TABLE = "creator_category_daily"


def seed_day(input_dir: Path, output: Path, day: dt.date) -> int:
    """Write `day`'s creator_category_daily into output's partition of it; returns its rows."""
    engine = PolarsEngine()
    decisions: pl.LazyFrame = engine.read_input("decisions", engine.input_partition(input_dir, "decisions", day)).to_native()
    passing = decisions.filter(
        pl.col("creator_id").is_not_null(),
        pl.col("outcome") == "violation",
        pl.col("policy_category").is_not_null(),
        pl.col("decided_at").dt.date() == day,
    )
    table = creator_category_daily(nw.from_native(passing)).to_native()
    rows = table.sort(list(OUTPUT_GRAINS[TABLE])).collect(engine="streaming")
    target = wh.partition_dir(output, TABLE, day)
    target.mkdir(parents=True, exist_ok=True)
    rows.write_parquet(target / "part-00000.parquet")
    return rows.height


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", required=True, type=Path, help="generated logs of the days to seed")
    p.add_argument("--output", required=True, type=Path, help="the warehouse to seed")
    p.add_argument("--first", required=True, type=dt.date.fromisoformat)
    p.add_argument("--last", required=True, type=dt.date.fromisoformat)
    args = p.parse_args(argv)
    day = args.first
    while day <= args.last:
        started = time.perf_counter()
        rows = seed_day(args.input, args.output, day)
        print(f"{day}: {rows:,} rows in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        day += dt.timedelta(days=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
