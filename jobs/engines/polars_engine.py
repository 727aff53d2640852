"""Polars: lazy scans and the streaming engine, so a day's memory stays bounded."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path

import narwhals.stable.v2 as nw
import polars as pl

from jobs.errors import InputUnreadable
from transforms.schemas import INPUT_SCHEMAS, TS, epoch_us_column

_STRING_OK = (pl.String, pl.Categorical, pl.Enum)
# Scratch files live for one run: lz4 costs less CPU than zstd for a little more disk.
_SCRATCH = {"engine": "streaming", "compression": "lz4"}
_BUCKET = "_bucket"
_MAX_RESCANS = 4


def _check_type(table: str, file: Path, column: str, want: nw.dtypes.DType, got: pl.DataType) -> None:
    """Reject types whose cast would invent or lose meaning (string timestamps, float ids)."""
    ok = {
        "String": isinstance(got, _STRING_OK) or got == pl.Null,
        "Datetime": isinstance(got, pl.Datetime) or got == pl.Null,
        "Date": got == pl.Date or got == pl.Null,
        "Float64": got.is_numeric() or got == pl.Null,
        "Int64": got.is_integer() or got == pl.Null,
    }[type(want).__name__]
    if not ok:
        raise InputUnreadable(
            f"input {table}: column {column} in {file} has type {got}, expected {type(want).__name__}"
        )


def _normalise(lf: pl.LazyFrame, table: str, schema: dict[str, pl.DataType], file: Path) -> pl.LazyFrame:
    exprs = []
    for column, want in INPUT_SCHEMAS[table].items():
        if column not in schema:
            raise InputUnreadable(f"input {table}: column {column} missing in {file}")
        got = schema[column]
        _check_type(table, file, column, want, got)
        col = pl.col(column)
        if want == TS:
            if isinstance(got, pl.Datetime):
                # Naive timestamps mean UTC (DESIGN §2); aware ones are converted to UTC.
                col = col.dt.replace_time_zone("UTC") if got.time_zone is None else col.dt.convert_time_zone("UTC")
                col = col.dt.cast_time_unit("us")
            else:
                col = col.cast(pl.Datetime("us", "UTC"))
        else:
            col = col.cast(_POLARS[type(want).__name__])
        exprs.append(col.alias(column))
    lf = lf.select(exprs)
    return lf.with_columns(pl.col(c).dt.epoch("us").alias(epoch_us_column(c)) for c, t in INPUT_SCHEMAS[table].items() if t == TS)


_POLARS = {"String": pl.String, "Float64": pl.Float64, "Int64": pl.Int64, "Date": pl.Date}


def empty_input(table: str) -> pl.LazyFrame:
    schema = {}
    for column, dtype in INPUT_SCHEMAS[table].items():
        schema[column] = pl.Datetime("us", "UTC") if dtype == TS else _POLARS[type(dtype).__name__]
    lf = pl.LazyFrame(schema=schema)
    return lf.with_columns(pl.col(c).dt.epoch("us").alias(epoch_us_column(c)) for c, t in INPUT_SCHEMAS[table].items() if t == TS)


class PolarsEngine:
    name = "polars"
    # Counting keys holds a bucket's keys in memory; above this a day is split by key hash.
    rows_per_bucket = 4_000_000

    def read_input(self, table: str, partition: Path) -> nw.LazyFrame:
        files = sorted(partition.glob("*.parquet"))
        if not files:
            return nw.from_native(empty_input(table))
        parts = []
        for file in files:
            try:
                schema = dict(pl.read_parquet_schema(file))
            except Exception as exc:  # polars raises several types for a corrupt/non-Parquet file
                raise InputUnreadable(f"input {table}: cannot read {file}: {str(exc).splitlines()[0]}") from exc
            parts.append(_normalise(pl.scan_parquet(file), table, schema, file))
        return nw.from_native(pl.concat(parts, how="vertical"))

    def input_frame(self, table: str, data: pl.DataFrame) -> nw.LazyFrame:
        return nw.from_native(_normalise(data.lazy(), table, dict(data.schema), Path("<memory>")))

    def read_history(self, table: str, partitions: dict[dt.date, Path]) -> nw.LazyFrame | None:
        parts = [
            pl.scan_parquet(sorted(path.glob("*.parquet"))).with_columns(pl.lit(day).alias("ds"))
            for day, path in sorted(partitions.items())
            if any(path.glob("*.parquet"))
        ]
        return nw.from_native(pl.concat(parts, how="vertical")) if parts else None

    def frame(self, data: pl.DataFrame) -> nw.LazyFrame:
        return nw.from_native(data.lazy())

    def stage_by_key(
        self, raw: nw.LazyFrame, key: str, classify: Callable[[nw.LazyFrame], nw.LazyFrame], scratch: Path, source: str
    ) -> nw.LazyFrame:
        """Classify a raw day in buckets of its key and read the result back.

        Staging only ever compares rows that share a key (exact duplicates share every column,
        conflicting ones their key), so classifying each hash bucket of the key on its own gives the
        same rows as classifying the whole day, with memory bounded by one bucket instead of the day.
        """
        if scratch.exists():
            shutil.rmtree(scratch)
        scratch.mkdir(parents=True)
        try:
            self._stage_by_key(raw, key, classify, scratch)
        except (pl.exceptions.PolarsError, OSError) as exc:
            # The footer and schema were readable (read_input checked them) but the data is not.
            raise InputUnreadable(f"input {source}: cannot read its data: {str(exc).strip().splitlines()[0]}") from exc
        return nw.from_native(pl.scan_parquet(scratch / "part-*.parquet"))

    def _stage_by_key(
        self, raw: nw.LazyFrame, key: str, classify: Callable[[nw.LazyFrame], nw.LazyFrame], scratch: Path
    ) -> None:
        native: pl.LazyFrame = raw.to_native()
        rows = native.select(pl.len()).collect().item()
        buckets = max(1, -(-rows // self.rows_per_bucket))
        if buckets == 1:
            classify(raw).to_native().sink_parquet(scratch / "part-00000.parquet", **_SCRATCH)
            return
        bucket_of = pl.col(key).hash(seed=0) % buckets
        if buckets <= _MAX_RESCANS:
            # A few buckets: each re-reads the raw day and keeps its share of keys (a streaming filter).
            parts = [native.filter(bucket_of == b) for b in range(buckets)]
        else:
            # Many buckets: write the day out once, spread by bucket (about three reads' worth of work).
            spread = scratch / "_buckets"
            native.with_columns(bucket_of.alias(_BUCKET)).sink_parquet(pl.PartitionBy(spread, key=_BUCKET), mkdir=True, **_SCRATCH)
            parts = [
                pl.scan_parquet(d / "*.parquet", hive_partitioning=False).drop(_BUCKET, strict=False)
                for d in sorted(spread.iterdir())
            ]
        for b, part in enumerate(parts):
            classify(nw.from_native(part)).to_native().sink_parquet(scratch / f"part-{b:05d}.parquet", **_SCRATCH)
        shutil.rmtree(scratch / "_buckets", ignore_errors=True)

    def encode_rows(self, frame: nw.LazyFrame, columns: list[str]) -> nw.LazyFrame:
        native: pl.LazyFrame = frame.to_native()
        schema = native.collect_schema()
        fields = []
        for c in columns:
            if isinstance(schema[c], pl.Datetime):
                fields.append(pl.col(c).dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ").alias(c))
            elif schema[c] == pl.Date:
                fields.append(pl.col(c).dt.to_string("%Y-%m-%d").alias(c))
            else:
                fields.append(pl.col(c))
        return nw.from_native(native.with_columns(pl.struct(fields).struct.json_encode().alias("row")))

    def collect(self, frames: dict[str, nw.LazyFrame]) -> dict[str, pl.DataFrame]:
        names = list(frames)
        # One query at a time: measured faster than collect_all here (21 s vs 31 s at 10 M rows),
        # since every frame already reads the staged checkpoint rather than the raw day.
        results = [frames[n].to_native().collect(engine="streaming") for n in names]
        return dict(zip(names, results, strict=True))

    def versions(self) -> dict[str, str]:
        return {"polars": pl.__version__}

    def close(self) -> None:
        return None
