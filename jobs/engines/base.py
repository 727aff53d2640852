"""What the nightly job needs from an engine. Transforms never see any of this."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import narwhals.stable.v2 as nw
import polars as pl


class Engine(Protocol):
    name: str

    def read_input(self, table: str, partition: Path) -> nw.LazyFrame:
        """One input partition with the contract's columns and types, timestamps UTC/us, plus `<ts>_us`."""

    def input_frame(self, table: str, data: pl.DataFrame) -> nw.LazyFrame:
        """An in-memory input table (tests, small sources) normalised exactly as read_input does."""

    def read_history(self, table: str, partitions: dict[dt.date, Path]) -> nw.LazyFrame | None:
        """Published output partitions with a `ds` date column; None when there are none."""

    def frame(self, data: pl.DataFrame) -> nw.LazyFrame:
        """A small in-memory table (e.g. today's violation_daily) as a lazy frame of this engine."""

    def stage_by_key(
        self, raw: nw.LazyFrame, key: str, classify: Callable[[nw.LazyFrame], nw.LazyFrame], scratch: Path, source: str
    ) -> nw.LazyFrame:
        """classify(raw), computed once and read back; the engine may classify per bucket of `key`
        (staging only compares rows sharing a key) to bound memory. Unreadable data raises
        InputUnreadable naming `source`."""

    def encode_rows(self, frame: nw.LazyFrame, columns: list[str]) -> nw.LazyFrame:
        """Add `row`: the given columns as a JSON object string (timestamps ISO-8601 UTC)."""

    def collect(self, frames: dict[str, nw.LazyFrame]) -> dict[str, pl.DataFrame]:
        """Compute the (small) output frames and bring them to the driver as Polars."""

    def versions(self) -> dict[str, str]: ...

    def close(self) -> None: ...
