"""What the nightly job needs from an engine. Transforms never see any of this."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import narwhals.stable.v2 as nw
import polars as pl

from jobs.errors import InputUnreadable, RiskInsightError, WarehouseUnavailable
from transforms._expr import Quantiles
from transforms.params import US_PER_DAY, Params

# The instants both engines hold in microseconds and print: about 253 000 years either side of 1970
# (Polars' calendar ends near year 262 000). A Parquet value beyond them (nanoseconds written under a
# millisecond label, a date of year 5 million, an int64 of microseconds near either end) made Polars
# panic, a traceback past every handler, and Spark's reader or its arithmetic overflow (exit 4, exit 1).
# Each engine's reader holds such a value at the bound, from the raw epoch value Parquet stores: it
# still compares as before with every ds and every other timestamp of its row, so staging gives the
# row the reason its real value would (DESIGN §3 has only order and day comparisons), and both
# engines print it alike in a quarantined row.
INSTANT_LIMIT_US = 8 * 10**18
DATE_LIMIT_DAYS = INSTANT_LIMIT_US // US_PER_DAY
US_PER_UNIT = {"ms": 1000, "us": 1}
# views_before_action is int64 (DESIGN §2). An unsigned 64-bit count above int64's maximum has no
# int64 value: both readers take its 64 bits as int64 (two's complement), which makes exactly those
# values negative, so staging quarantines the row as bad_range instead of the day stopping on it.
UINT64_WRAP = 2**64


def accept_any_time_zone_label() -> None:
    """Let Polars read a zone-aware Parquet timestamp whatever its zone's label.

    Parquet stores such a timestamp as a UTC instant; the zone is a label the readers convert away
    (to UTC, DESIGN §2). Polars panics, a traceback past every handler, on a label its zone database
    lacks: the fixed offsets ("+05:30", "Z") that pandas and pyarrow write for a datetime.timezone.
    Its own switch turns that check off; every value is still the instant stored.
    """
    os.environ["POLARS_IGNORE_TIMEZONE_PARSE_ERROR"] = "1"


def staging_failure(input_readable: Callable[[], object], source: str, scratch: Path, detail: str) -> RiskInsightError:
    """The error of a staging pass that failed, which read the input and wrote the checkpoint at once.

    The pass's own error cannot say which side failed, and taken for the input's, a full or
    read-only output volume read as unreadable input (exit 4): the DAG does not retry that, and it
    sends on-call to the upstream logs. So, and only after a failure, the input is read again on
    its own (`input_readable` decodes every column, returning anything or raising): read whole, the
    fault was the checkpoint's (exit 1, retryable).
    """
    try:
        input_readable()
    except Exception:
        return InputUnreadable(f"input {source}: cannot read its data: {detail}")
    return WarehouseUnavailable(f"output {scratch}: cannot write the staging checkpoint: {detail}")


class Engine(Protocol):
    name: str

    def input_partition(self, input_dir: Path | str, table: str, ds: dt.date) -> Path | str:
        """The complete input partition of (table, ds) (warehouse.input_partition's checks and errors);
        an engine that reads Hadoop filesystem URIs returns them as str."""

    def input_files(self, partition: Path | str) -> list[Path | str]:
        """The partition's Parquet files, sorted."""

    def read_input(self, table: str, partition: Path | str) -> nw.LazyFrame:
        """One input partition with the contract's columns and types, timestamps UTC/us, plus `<ts>_us`."""

    def input_frame(self, table: str, data: pl.DataFrame) -> nw.LazyFrame:
        """An in-memory input table (tests, small sources) normalised exactly as read_input does."""

    def read_history(self, table: str, partitions: dict[dt.date, Path | str]) -> nw.LazyFrame | None:
        """Published output partitions with a `ds` date column; None when there are none. Spark also
        takes URIs (a warehouse behind a Hadoop filesystem)."""

    def frame(self, data: pl.DataFrame) -> nw.LazyFrame:
        """A small in-memory table (e.g. today's violation_daily) as a lazy frame of this engine."""

    def stage(self, raw: nw.LazyFrame, table: str, params: Params, scratch: Path, source: str) -> nw.LazyFrame:
        """`staging.classify(raw, table, params)`, in whatever form this engine reads fastest
        (a checkpoint, or a lazy scan plus the few deduplicated rows). May use `scratch` for the
        run. Unreadable data raises InputUnreadable naming `source`; a checkpoint that cannot be
        written, WarehouseUnavailable naming `scratch` (`staging_failure` tells them apart)."""

    def by_key_parts(
        self,
        frame: nw.LazyFrame,
        by: list[str],
        build: Callable[[nw.LazyFrame], nw.LazyFrame],
        rows_per_part: int | None = None,
    ) -> nw.LazyFrame:
        """build(frame), which the engine may evaluate as the union of build over parts of the
        columns `by`: only for builds whose every output row depends on the rows of one `by` value.
        `rows_per_part`: how many input rows one part of this build may hold, where the engine
        splits by rows (None: its default)."""

    def by_key_parts_tables(
        self,
        frame: nw.LazyFrame,
        by: list[str],
        build: Callable[[nw.LazyFrame], nw.LazyFrame],
        finish: Callable[[nw.LazyFrame], dict[str, nw.LazyFrame]],
        rows_per_part: int | None = None,
    ) -> dict[str, nw.LazyFrame]:
        """finish(build(frame)): several tables from one build, built once. Like by_key_parts, the
        engine may evaluate it over parts of `by`, finishing each part's built rows and stacking
        each table over the parts: a finished table whose rows span several `by` values then holds
        one partial row per part, which the caller adds up."""

    def aggregate(self, frame: nw.LazyFrame, by: list[str], aggs: list[nw.Expr], quantiles: Quantiles) -> nw.LazyFrame:
        """What `transforms._expr.aggregate` returns (aggregations and exact quantiles per group),
        computed the engine's fastest way."""

    def aggregate_sets(
        self,
        frame: nw.LazyFrame,
        keys: list[str],
        sets: Sequence[Sequence[str]],
        aggs: list[nw.Expr],
        quantiles: Quantiles,
        rolled_up: str,
    ) -> nw.LazyFrame:
        """What `transforms._expr.aggregate_sets` returns (`aggregate` per grouping set, stacked),
        computed the engine's fastest way."""

    def encode_rows(self, frame: nw.LazyFrame, columns: list[str]) -> nw.LazyFrame:
        """Add `row`: the given columns as a JSON object string (timestamps ISO-8601 UTC)."""

    def collect(self, frames: dict[str, nw.LazyFrame]) -> dict[str, pl.DataFrame]:
        """Compute the (small) output frames and bring them to the driver as Polars."""

    def versions(self) -> dict[str, str]: ...

    def close(self) -> None: ...
