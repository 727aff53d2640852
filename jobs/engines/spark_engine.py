"""PySpark: the same transforms as Polars, with reading, encoding and collecting in Spark's own API.

Everything a transform relies on is made identical to the Polars engine here, at the edge:
the same schema checks and one-line errors (from the same Parquet footers), timestamps as UTC
instants with microseconds plus `<ts>_us`, quarantine rows encoded like Polars' json_encode,
and collected frames with Polars' dtypes.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from decimal import Decimal
import shutil
import tempfile
import weakref
from functools import cached_property, reduce
from pathlib import Path
from typing import Literal

import narwhals.stable.v2 as nw
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pyspark
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs import warehouse as wh
from jobs.engines.base import (
    DATE_LIMIT_DAYS,
    INSTANT_LIMIT_US,
    UINT64_WRAP,
    US_PER_UNIT,
    accept_any_time_zone_label,
    staging_failure,
)
from jobs.engines.hadoop_fs import HadoopFS
from jobs.engines.polars_engine import _check_type
from jobs.engines.polars_quantiles import _OFFSET, _PER_OCTAVE, _TOP
from jobs.engines.spark_session import UTC_CONF, session
from jobs.errors import EngineFailed, InputUnreadable, RiskInsightError
from transforms import _expr, staging
from transforms._expr import Quantiles
from transforms.params import Params
from transforms.schemas import (
    DATE,
    I64,
    INPUT_KEYS,
    INPUT_SCHEMAS,
    OUTPUT_SCHEMAS,
    TS,
    epoch_us_column,
    epoch_us_columns,
    select_published_schema,
    timestamp_columns,
)

Checkpoint = Literal["parquet", "memory"]
# parquet-mr's write options for the day's checkpoint, a scratch file read back by each output query.
# No dictionaries: the encoder hashes every value of every column, and on the high-cardinality ones
# (creator ids, timestamps) it fills a dictionary page, gives up and writes plain pages after all.
# No statistics, size statistics or page checksums: no reader filters the checkpoint by them, and a
# scratch file read back by the same run needs no checksum. Snappy is kept (uncompressed, the file
# was 2.7x larger for 2 s less). 10 M decisions, interleaved full runs at load ~2.4: writing the
# checkpoint 41.5 / 36.0 -> 28.4 / 24.3 s, and no output query slower.
_SCRATCH = {
    "parquet.enable.dictionary": "false",
    "parquet.column.statistics.enabled": "false",
    "parquet.size.statistics.enabled": "false",
    "parquet.page.write-checksum.enabled": "false",
}

_SPARK = {
    "String": T.StringType(),
    "Float64": T.DoubleType(),
    "Int64": T.LongType(),
    "Date": T.DateType(),
    "Datetime": T.TimestampType(),
}
# Same text as Polars' `%Y-%m-%dT%H:%M:%S%.6fZ`; Spark formats in the session time zone (UTC).
TS_JSON_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'"
DATE_JSON_FORMAT = "yyyy-MM-dd"
_NS_PER_US = 1000


def _spark_type(dtype: nw.dtypes.DType) -> T.DataType:
    return _SPARK[type(dtype).__name__]


def _input_struct(table: str) -> T.StructType:
    return T.StructType([T.StructField(c, _spark_type(t), True) for c, t in INPUT_SCHEMAS[table].items()])


def _to_utc_instant(col: Column, spark_type: T.DataType) -> Column:
    if isinstance(spark_type, T.TimestampType):
        return col
    if isinstance(spark_type, T.TimestampNTZType):
        # Naive means UTC (DESIGN §2); the cast reads the wall clock in the session zone, forced to UTC.
        return col.cast(T.TimestampType())
    raise TypeError(f"no conversion from {spark_type} to a UTC timestamp")


def _epoch_to_utc_instant(col: Column, unit: str) -> Column:
    """An int64 Parquet timestamp read as its raw epoch value in `unit` (naive or zone-aware alike:
    Parquet stores the UTC instant, or UTC's wall clock for naive), as a UTC instant."""
    if unit == "ns":
        # Spark has no nanosecond type. Decimal division keeps every digit; a double would lose the
        # microseconds. Every int64 of nanoseconds is within the bounds.
        return F.timestamp_micros(F.floor(col.cast(T.DecimalType(20, 0)) / F.lit(_NS_PER_US)).cast(T.LongType()))
    # Held within the bounds (base.py) before scaling: Spark's own reader scales milliseconds with an
    # exact multiply that failed the whole read (long overflow, exit 4).
    per = US_PER_UNIT[unit]
    return F.timestamp_micros(_held(col, INSTANT_LIMIT_US // per) * F.lit(per))


def _held(value: Column, limit: int) -> Column:
    """value held within -limit..limit, null kept null (`least` and `greatest` skip a null)."""
    return F.when(value < -limit, F.lit(-limit)).when(value > limit, F.lit(limit)).otherwise(value)


def _int64_time_units(schema: pq.ParquetSchema) -> dict[str, str]:
    """Top-level columns stored as int64 timestamps, and their unit (ms, us, ns), from the Parquet
    schema itself: the Arrow schema a writer stores beside it may name another unit (pyarrow's INT96
    of millisecond data says ms)."""
    units = {}
    for i in range(len(schema)):
        column = schema.column(i)
        if column.physical_type != "INT64" or column.max_repetition_level or "." in column.path:
            continue
        logical = column.logical_type
        if logical.type == "TIMESTAMP":
            unit = json.loads(logical.to_json())["timeUnit"]
        else:
            unit = {"TIMESTAMP_MILLIS": "milliseconds", "TIMESTAMP_MICROS": "microseconds"}.get(column.converted_type)
        if unit:
            units[column.name] = {"milliseconds": "ms", "microseconds": "us", "nanoseconds": "ns"}[unit]
    return units


def _read_epochs(df: DataFrame, columns: Sequence[str]) -> T.StructType:
    """The schema to read `df`'s files with, `columns` (int64 timestamps) as their raw epoch longs."""
    return T.StructType([T.StructField(f.name, T.LongType(), True) if f.name in columns else f for f in df.schema.fields])


def _normalise(df: DataFrame, table: str, footer: dict[str, pl.DataType], epochs: dict[str, str] | None = None) -> DataFrame:
    """Contract columns, in order, with contract types; footer = the Polars view of the file's schema
    (already checked), which tells an all-null column from a typed one; epochs = the timestamp columns
    read as raw int64 epoch values, with their units."""
    epochs = epochs or {}
    spark_types = {f.name: f.dataType for f in df.schema.fields}
    cols = []
    for column, want in INPUT_SCHEMAS[table].items():
        target = _spark_type(want)
        if footer[column] == pl.Null or isinstance(spark_types[column], T.NullType):
            col = F.lit(None).cast(target)
        elif want == TS and column in epochs:
            col = _epoch_to_utc_instant(F.col(column), epochs[column])
        elif want == TS:
            col = _to_utc_instant(F.col(column), spark_types[column])
        elif want == DATE and isinstance(spark_types[column], T.DateType):
            col = F.date_from_unix_date(_held(F.unix_date(F.col(column)), DATE_LIMIT_DAYS))
        elif want == I64 and footer[column] == pl.UInt64:
            # Read as decimal(20,0); above int64's maximum its 64 bits as int64 (base.UINT64_WRAP).
            value = F.col(column)
            col = F.when(value >= F.lit(Decimal(UINT64_WRAP // 2)), value - F.lit(Decimal(UINT64_WRAP))).otherwise(value).cast(target)
        else:
            col = F.col(column).cast(target)
        cols.append(col.alias(column))
    return _with_epoch_us(df.select(cols), table)


def _check(table: str, schema: dict[str, pl.DataType], file: Path | str) -> dict[str, pl.DataType]:
    """The Polars engine's checks and messages, on the same footer; returns the contract columns' types."""
    for column, want in INPUT_SCHEMAS[table].items():
        if column not in schema:
            raise InputUnreadable(f"input {table}: column {column} missing in {file}")
        _check_type(table, file, column, want, schema[column])
    return {c: schema[c] for c in INPUT_SCHEMAS[table]}


def _arrow_for_spark(data: pl.DataFrame) -> pa.Table:
    """Polars -> Arrow that Spark's createDataFrame accepts: plain strings, UTC microsecond timestamps.

    Arrow keeps NaN and null apart; a detour through pandas would turn both into NaN.
    """
    fixed = []
    for name, dtype in data.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            col = col.dt.replace_time_zone("UTC") if dtype.time_zone is None else col.dt.convert_time_zone("UTC")
            col = col.dt.cast_time_unit("us")
        elif isinstance(dtype, (pl.Categorical, pl.Enum)) or dtype == pl.Null:
            col = col.cast(pl.String)
        fixed.append(col.alias(name))
    return data.select(fixed).to_arrow(compat_level=pl.CompatLevel.oldest())


def _spark_struct(data: pl.DataFrame) -> T.StructType:
    fields = []
    for name, dtype in data.schema.items():
        if isinstance(dtype, pl.Datetime):
            spark_type: T.DataType = T.TimestampType()
        elif dtype == pl.Float64 or dtype == pl.Float32:
            spark_type = T.DoubleType() if dtype == pl.Float64 else T.FloatType()
        elif dtype == pl.Boolean:
            spark_type = T.BooleanType()
        elif dtype == pl.Date:
            spark_type = T.DateType()
        elif dtype.is_integer():
            spark_type = {pl.Int8: T.ByteType(), pl.Int16: T.ShortType(), pl.Int32: T.IntegerType()}.get(dtype, T.LongType())
        else:
            spark_type = T.StringType()
        fields.append(T.StructField(name, spark_type, True))
    return T.StructType(fields)


def _to_polars(table: pa.Table) -> pl.DataFrame:
    """Arrow from Spark -> Polars with the Polars engine's dtypes (timestamps Datetime(us, UTC))."""
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    return _polars_dtypes(df)


def _polars_dtypes(df: pl.DataFrame) -> pl.DataFrame:
    """A frame Spark produced, with the Polars engine's dtypes (timestamps Datetime(us, UTC))."""
    casts = []
    for name, dtype in df.schema.items():
        if isinstance(dtype, pl.Datetime) and (dtype.time_zone != "UTC" or dtype.time_unit != "us"):
            col = pl.col(name)
            col = col.dt.replace_time_zone("UTC") if dtype.time_zone is None else col.dt.convert_time_zone("UTC")
            casts.append(col.dt.cast_time_unit("us").alias(name))
    return df.with_columns(casts) if casts else df


class SparkEngine:
    name = "spark"

    def __init__(
        self,
        spark: SparkSession | None = None,
        *,
        master: str | None = None,
        app_name: str = "riskinsight",
        checkpoint: Checkpoint | None = None,
    ) -> None:
        existing = spark or SparkSession.getActiveSession()
        self._owns_session = existing is None
        self.spark = existing if existing is not None else session(master, app_name)
        for key, value in UTC_CONF.items():
            self.spark.conf.set(key, value)
        # Spark has no nanosecond timestamp and refuses such Parquet columns unless read as longs.
        self.spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
        # The day's checkpoint is the one Parquet Spark writes: int64 microseconds (the readers' own
        # precision) instead of the legacy 12-byte INT96, a tenth less to write and to read back.
        self.spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        # A Parquet checkpoint under the output's scratch dir is compact and column-pruned on reread,
        # but only correct where driver and executors share that filesystem: local mode. On a cluster
        # executors keep the checkpoint in their block managers instead.
        self._local = self.spark.sparkContext.master.startswith("local")
        self.checkpoint_mode: Checkpoint = checkpoint or ("parquet" if self._local else "memory")
        self._frames_dir: Path | None = None
        self._frame_ids = itertools.count()

    # ------------------------------------------------------------ inputs
    @cached_property
    def fs(self) -> HadoopFS:
        return HadoopFS(self.spark)

    def input_partition(self, input_dir: Path | str, table: str, ds: dt.date) -> Path | str:
        # A URI (hdfs://, s3a://, file://...) is checked through Hadoop, the way the executors will read it;
        # its refusal (permission denied, unknown scheme, namenode down) is one line, not a JVM trace.
        with _as_one_line(InputUnreadable, f"input {table} ds={ds}: {input_dir}"):
            return wh.input_partition(input_dir, table, ds, fs=self.fs if wh.is_uri(input_dir) else None)

    def input_files(self, partition: Path | str) -> list[Path | str]:
        if isinstance(partition, str) and wh.is_uri(partition):
            return list(self.fs.parquet_files(partition))
        return wh.local_parquet_files(partition)

    def _footer(self, file: Path | str) -> tuple[dict[str, pl.DataType], dict[str, str]]:
        """The file's columns as Polars sees them (for the Polars engine's checks and messages), and
        its int64 timestamp columns' units (`_int64_time_units`)."""
        if isinstance(file, str) and wh.is_uri(file):
            footer = self.fs.parquet_footer(file)
            return dict(pl.from_arrow(footer.schema_arrow.empty_table()).schema), _int64_time_units(footer.schema)
        return dict(pl.read_parquet_schema(file)), _int64_time_units(pq.read_metadata(file).schema)

    def read_input(self, table: str, partition: Path | str) -> nw.LazyFrame:
        files = self.input_files(partition)
        if not files:
            return nw.from_native(_with_epoch_us(self.spark.createDataFrame([], _input_struct(table)), table))
        accept_any_time_zone_label()  # for the footers; Spark's own reader takes any label
        # Files with the same contract types are read in one scan; a partition whose writers
        # disagreed (int32 vs int64 views, ms vs us timestamps) is normalised per group and unioned.
        # Timestamps stored as int64 are read as their raw epoch values and converted here
        # (`_epoch_to_utc_instant`), so files whose units differ are grouped apart too.
        groups: dict[tuple[tuple[tuple[str, pl.DataType], ...], tuple[tuple[str, str], ...]], list[Path | str]] = {}
        stamps = timestamp_columns(table)
        for file in files:
            try:
                footer, units = self._footer(file)
            except Exception as exc:  # polars raises several types for a corrupt/non-Parquet file
                raise InputUnreadable(f"input {table}: cannot read {file}: {str(exc).splitlines()[0]}") from exc
            epochs = tuple((c, units[c]) for c in stamps if c in units and footer[c] != pl.Null)
            groups.setdefault((tuple(_check(table, footer, file).items()), epochs), []).append(file)
        parts = []
        for (footer, epochs), group in groups.items():
            paths = [str(f) for f in group]
            df = self.spark.read.parquet(*paths)
            if epochs:
                df = self.spark.read.schema(_read_epochs(df, dict(epochs))).parquet(*paths)
            parts.append(_normalise(df, table, dict(footer), dict(epochs)))
        return nw.from_native(reduce(DataFrame.unionByName, parts))

    def input_frame(self, table: str, data: pl.DataFrame) -> nw.LazyFrame:
        footer = _check(table, dict(data.schema), Path("<memory>"))
        return nw.from_native(_normalise(self._from_polars(data), table, footer))

    def read_history(self, table: str, partitions: dict[dt.date, Path | str]) -> nw.LazyFrame | None:
        # Partitions may be URIs of a remote warehouse: the executors read them where they are.
        files = {day: self.input_files(path) for day, path in sorted(partitions.items())}
        parts = [
            select_published_schema(nw.from_native(self.spark.read.parquet(*[str(f) for f in day_files])), OUTPUT_SCHEMAS[table])
            .to_native().withColumn("ds", F.lit(day).cast(T.DateType()))
            for day, day_files in files.items()
            if day_files
        ]
        return nw.from_native(reduce(DataFrame.unionByName, parts)) if parts else None

    # Up to this many rows a driver-side table reaches Spark through Arrow. A larger one (today's
    # 3 M-row creator_category_daily, for the offenders' history) goes through a Parquet file that
    # the tasks read in parallel: 0.9 s instead of 3.9 s at 10 M decisions. Local mode only, where
    # the driver and the executors share a filesystem; the files go when the engine closes.
    frame_rows_via_file = 100_000

    def frame(self, data: pl.DataFrame) -> nw.LazyFrame:
        if not self._local or data.height <= self.frame_rows_via_file:
            return nw.from_native(self._from_polars(data))
        path = self._frame_path("frame", ".parquet")
        pq.write_table(_arrow_for_spark(data), path, compression="snappy")
        return nw.from_native(self.spark.read.schema(_spark_struct(data)).parquet(str(path)))

    def _frame_path(self, kind: str, suffix: str = "") -> Path:
        """A new path in the engine's local scratch directory (made on first use, gone at close)."""
        if self._frames_dir is None:
            self._frames_dir = Path(tempfile.mkdtemp(prefix="riskinsight-frames-"))
            # Removed at close(), and also when an engine nobody closed is collected or the
            # interpreter exits: test fixtures and library callers that drop an engine left one
            # empty directory each in the temp dir (a thousand after a day of CI runs).
            self._frames_cleanup = weakref.finalize(self, shutil.rmtree, self._frames_dir, True)
        return self._frames_dir / f"{kind}-{next(self._frame_ids)}{suffix}"

    def _from_polars(self, data: pl.DataFrame) -> DataFrame:
        return self.spark.createDataFrame(_arrow_for_spark(data), schema=_spark_struct(data))

    # ------------------------------------------------------------ compute
    def stage(self, raw: nw.LazyFrame, table: str, params: Params, scratch: Path, source: str) -> nw.LazyFrame:
        # One checkpoint of the classified day: Spark's shuffle hash-partitions the dedupe and the
        # per-key window by key and spills to disk, so memory is bounded per task without buckets.
        # The plan is built (and analysed) outside `_reading`: only executing it reads the raw data.
        with _reading(source):
            repeated = self._repeated_keys(raw, table)
        classified: DataFrame = staging.blank_quarantine_only(staging.classify(raw, table, params, repeated), table).to_native()
        # `<ts>_us` is derived from its timestamp (read_input), so it is derived again after the
        # checkpoint rather than written and read back: a third of a decisions checkpoint's bytes.
        epoch_us = epoch_us_columns(table)
        try:
            back: DataFrame = self.checkpoint(nw.from_native(classified.drop(*epoch_us)), scratch).to_native()
        except (PySparkException, Py4JJavaError, OSError) as exc:
            # Reading the day and writing its checkpoint are one job: which side failed? The noop
            # sink decodes every column of the input and writes nothing.
            decode_all = raw.to_native().write.format("noop").mode("overwrite").save
            raise staging_failure(decode_all, source, scratch, first_line(exc)) from exc
        return nw.from_native(_with_epoch_us(back, table).select(*classified.columns))

    # Repeated keys up to this many are broadcast to every task (a few MB); more are left to a shuffle.
    broadcast_keys = 2_000_000

    def _repeated_keys(self, raw: nw.LazyFrame, table: str) -> nw.LazyFrame:
        """staging.repeated_keys, materialised once and broadcast when it is small (it nearly always is).

        Left lazy, Spark re-derived the key counts in each of classify's joins and sort-merge joined
        the whole day against them, shuffling every column of every row: 120 s of a 10 M-decision
        day's staging, where joining against a broadcast set took 53 s.
        """
        # The key column is hash-partitioned before it is counted: nearly every key occurs once, so
        # the map-side partial count only built a table of every key to shuffle the same rows
        # (10 M decisions: the count 8.3-8.7 -> 5.1-6.6 s).
        key = INPUT_KEYS[table]
        keys_only = nw.from_native(raw.to_native().select(key).repartition(key))
        keys: DataFrame = staging.repeated_keys(keys_only, table).to_native().localCheckpoint(eager=True)
        return nw.from_native(F.broadcast(keys) if keys.count() <= self.broadcast_keys else keys)

    def by_key_parts(
        self,
        frame: nw.LazyFrame,
        by: list[str],
        build: Callable[[nw.LazyFrame], nw.LazyFrame],
        rows_per_part: int | None = None,
    ) -> nw.LazyFrame:
        # Spark's shuffle already partitions every aggregation by its keys and spills.
        return build(frame)

    def by_key_parts_tables(
        self,
        frame: nw.LazyFrame,
        by: list[str],
        build: Callable[[nw.LazyFrame], nw.LazyFrame],
        finish: Callable[[nw.LazyFrame], dict[str, nw.LazyFrame]],
        rows_per_part: int | None = None,
    ) -> dict[str, nw.LazyFrame]:
        # Partitioned by `by` once: every group-by and window of the build whose keys include `by`
        # then runs inside those partitions without a shuffle of its own (the offenders' pairs and
        # their per-creator totals: two shuffles of the window's rows became one, history 10.8 /
        # 12.0 -> 8.1 / 7.0 s at 10 M decisions). Checkpointed in the executors, so each finished
        # table reads the built rows instead of recomputing them from the whole input.
        built: DataFrame = build(nw.from_native(frame.to_native().repartition(*by))).to_native()
        return finish(nw.from_native(built.localCheckpoint(eager=True)))

    def aggregate(self, frame: nw.LazyFrame, by: list[str], aggs: list[nw.Expr], quantiles: Quantiles) -> nw.LazyFrame:
        """The aggregations through narwhals, and each column's quantiles per group of `by`.

        Spark's `percentile` builds a map of every distinct value of a group and merges the maps of
        all tasks in one: 21 s for two quantiles of 3.5 M violations in a single group. Here a group
        of a key (a reviewer's or a queue's day) collects its values and sorts them
        (`_listed_quantiles`), and the whole frame, a group no key bounds, ranks its values by
        bucket (`_ranked_quantiles`). Both are exact with `percentile`'s linear interpolation.
        """
        return self._aggregate(frame, by, aggs, quantiles, _listed_quantiles if by else _ranked_quantiles)

    def _aggregate(
        self, frame: nw.LazyFrame, by: list[str], aggs: list[nw.Expr], quantiles: Quantiles, pick: _Quantiles
    ) -> nw.LazyFrame:
        counts = _expr.aggregate(frame, by, aggs, {})
        if not quantiles:
            return counts
        native: DataFrame = frame.to_native()
        joined: DataFrame = counts.to_native()
        for column, wanted in _expr.quantiles_by_column(quantiles).items():
            picked = pick(native, by, column, wanted)
            if by:
                # Null-safe on every key: a null group is a group (explicit left join, one row per group each side).
                on = reduce(lambda a, b: a & b, [joined[k].eqNullSafe(picked[f"_key_{k}"]) for k in by])
                joined = joined.join(picked, on=on, how="left").drop(*[f"_key_{k}" for k in by])
            else:
                joined = joined.crossJoin(picked)
        return nw.from_native(joined.select(*counts.columns, *quantiles))

    def aggregate_sets(
        self,
        frame: nw.LazyFrame,
        keys: list[str],
        sets: Sequence[Sequence[str]],
        aggs: list[nw.Expr],
        quantiles: Quantiles,
        rolled_up: str,
    ) -> nw.LazyFrame:
        """`_expr.aggregate_sets` in one pass: each row fans out once per grouping set (a set id plus
        the keys that set groups by), and one `aggregate` groups by both.

        Set by set, violation_daily's four sets read the checkpoint four times for the counts and
        eight for the quantiles' ranks. The fanned rows are never shuffled: the counts aggregate
        map-side and only the few rows in the buckets holding a quantile are sorted. The set id
        keeps every set's groups apart even where a key really holds `rolled_up`.
        """
        native: DataFrame = frame.to_native()
        grouped = [f"_gk_{k}" for k in keys]
        fan = F.array(
            *[
                F.struct(
                    F.lit(i).alias("_set"),
                    *[(F.col(k).cast(T.StringType()) if k in kept else F.lit(rolled_up)).alias(g) for k, g in zip(keys, grouped)],
                )
                for i, kept in enumerate(sets)
            ]
        )
        by = ["_set", *grouped]
        # Ranked, not listed: a rolled-up group (every violation of the day in ALL/ALL) has no bound.
        fanned = nw.from_native(native.select("*", F.inline(fan)))
        out: DataFrame = self._aggregate(fanned, by, aggs, quantiles, _ranked_quantiles).to_native()
        values = [c for c in out.columns if c not in by]
        whole = [i for i, kept in enumerate(sets) if not kept]
        if whole:
            # A grouping by the set id has no row for the empty set when the frame has none, where the
            # whole-frame aggregate has one: that row (of an empty relation, which Spark plans
            # without a scan) stands in for it, marked by the missing `_found`.
            nothing: DataFrame = self.aggregate(nw.from_native(native.where(F.lit(False))), [], aggs, quantiles).to_native()
            nothing = nothing.select(
                F.lit(whole[0]).alias("_set"),
                *[F.lit(rolled_up).alias(g) for g in grouped],
                *[F.col(c).alias(f"_none_{c}") for c in values],
            )
            out = out.withColumn("_found", F.lit(True)).join(nothing, on=by, how="full_outer")
            found = F.col("_found").isNotNull()
            out = out.select(*by, *[F.when(found, F.col(c)).otherwise(F.col(f"_none_{c}")).alias(c) for c in values])
        return nw.from_native(out.select(*[F.col(g).alias(k) for k, g in zip(keys, grouped)], *values))

    def checkpoint(self, frame: nw.LazyFrame, scratch: Path) -> nw.LazyFrame:
        native: DataFrame = frame.to_native()
        if self.checkpoint_mode == "memory":
            return nw.from_native(native.localCheckpoint(eager=True))
        if scratch.exists():
            shutil.rmtree(scratch)
        scratch.parent.mkdir(parents=True, exist_ok=True)
        native.write.options(**_SCRATCH).parquet(str(scratch))
        return nw.from_native(self.spark.read.parquet(str(scratch)))

    def encode_rows(self, frame: nw.LazyFrame, columns: list[str]) -> nw.LazyFrame:
        native: DataFrame = frame.to_native()
        types = {f.name: f.dataType for f in native.schema.fields}
        fields = []
        for c in columns:
            col, kind = F.col(c), types[c]
            if isinstance(kind, (T.TimestampType, T.TimestampNTZType)):
                col = F.date_format(col, TS_JSON_FORMAT)
            elif isinstance(kind, T.DateType):
                col = F.date_format(col, DATE_JSON_FORMAT)
            fields.append(col.alias(c))
        # Polars keeps null fields as `null`; Spark drops them unless told otherwise.
        row = F.to_json(F.struct(*fields), {"ignoreNullFields": "false"})
        return nw.from_native(native.withColumn("row", row))

    def collect(self, frames: dict[str, nw.LazyFrame]) -> dict[str, pl.DataFrame]:
        collected = {}
        for name, frame in frames.items():
            with _computing(name):
                collected[name] = self._collect(frame.to_native())
        return collected

    def _collect(self, df: DataFrame) -> pl.DataFrame:
        """One output frame in the driver, as Polars.

        In local mode through a Parquet file the tasks write and Polars reads back, not through
        `toArrow`: that gathers every task's result in the JVM first and refuses more than
        `spark.driver.maxResultSize` (1 GiB by default), which creator_category_daily passes at
        100 M decisions (28 M rows, 1.1 GiB). On a cluster the executors cannot write where the
        driver reads, so results come through Arrow, within the limit the deployment sets.
        Parquet has no column of type null: such a frame (never an output table) takes Arrow too.
        """
        if not self._local or any(isinstance(f.dataType, T.NullType) for f in df.schema.fields):
            return _to_polars(df.toArrow())
        path = self._frame_path("collected")
        df.write.parquet(str(path))
        # part-<task>-...: in task order, the order toArrow would give. An empty frame still writes
        # one file, which holds the schema.
        data = _polars_dtypes(pl.read_parquet(sorted(path.glob("part-*.parquet"))))
        shutil.rmtree(path, ignore_errors=True)
        return data

    def versions(self) -> dict[str, str]:
        return {"pyspark": pyspark.__version__, "spark": self.spark.version, "spark_master": self.spark.sparkContext.master}

    def close(self) -> None:
        if self._frames_dir is not None:
            self._frames_cleanup()
            self._frames_dir = None
        if self._owns_session:
            self.spark.stop()


# Value buckets for _ranked_quantiles, the Polars engine's (`polars_quantiles`): 16 per power of
# two, shifted so that negatives, zero and positives stay in order; infinities and NaN (which Spark
# orders last, as Polars does) get buckets of their own. Finer buckets shrink the rows sorted in
# big groups but multiply the bucket counts of small ones.


def _bucket(value: Column) -> Column:
    """An order-preserving bucket of `value`: v <= w implies bucket(v) <= bucket(w)."""
    magnitude = F.floor(F.log2(F.abs(value)) * F.lit(_PER_OCTAVE))
    return (
        F.when(F.isnan(value), F.lit(_TOP + 1))
        .when(value == F.lit(float("inf")), F.lit(_TOP))
        .when(value == F.lit(float("-inf")), F.lit(-_TOP))
        .when(value > 0, F.lit(_OFFSET) + magnitude)
        .when(value < 0, -(F.lit(_OFFSET) + magnitude))
        .otherwise(F.lit(0))
    )


_Quantiles = Callable[[DataFrame, list[str], str, list[tuple[str, float]]], DataFrame]


def _interpolated(name: str, pos: Column, lo: Column, hi: Column, lo_v: Column, hi_v: Column) -> Column:
    """`percentile`'s (and numpy's) linear interpolation between the values at ranks lo and hi:
    x[lo] + (pos - lo) * (x[hi] - x[lo]), x[lo] itself when the two are equal."""
    return F.when((lo == hi) | (lo_v == hi_v), lo_v).otherwise(lo_v + (pos - lo) * (hi_v - lo_v)).alias(name)


def _keyed_values(native: DataFrame, by: list[str], column: str) -> DataFrame:
    """The non-null values of `column` (`_v`) beside their group's keys (`_key_<k>`), what both
    quantile methods start from."""
    return native.where(F.col(column).isNotNull()).select(*[F.col(k).alias(f"_key_{k}") for k in by], F.col(column).alias("_v"))


def _listed_quantiles(native: DataFrame, by: list[str], column: str, wanted: list[tuple[str, float]]) -> DataFrame:
    """`_ranked_quantiles` for groups that fit in a task's memory: each group's values collected in
    one hash aggregate and sorted, the wanted ranks read by position.

    One shuffle of the values instead of ranking's three reads of the frame, two shuffles and a
    join (10 M decisions: reviewer_daily's quantiles per reviewer 10.9 -> 6.2 s, the whole query
    20.7 -> 10.5 s; queue_daily 12.5 -> 9.3 s). A group's list lives in one task, so this is for
    groups a key bounds, never the whole frame. `sort_array` orders as `percentile` does (NaN last).
    """
    keys = [f"_key_{k}" for k in by]
    values = _keyed_values(native, by, column)
    listed = F.sort_array(F.collect_list("_v")).alias("_vs")
    grouped = values.groupBy(*keys).agg(listed) if by else values.agg(listed)
    n = F.size("_vs")
    out = []
    for name, q in wanted:
        pos = (n - 1) * F.lit(q)
        lo, hi = F.floor(pos), F.ceil(pos)
        # `get` is 0-based and null outside the list: the empty list of a frame without values.
        out.append(_interpolated(name, pos, lo, hi, F.get("_vs", lo.cast(T.IntegerType())), F.get("_vs", hi.cast(T.IntegerType()))))
    return grouped.select(*keys, *out)


def _ranked_quantiles(native: DataFrame, by: list[str], column: str, wanted: list[tuple[str, float]]) -> DataFrame:
    """Exact linear quantiles of `column` per group of `by`, as Spark's `percentile` computes them.

    The ranks a quantile needs follow from the group's size n alone: floor and ceil of q*(n-1).
    Sorting whole groups to reach them took 23 s for 10 M decisions in 95 queues, so the values
    are counted per order-preserving bucket first (a hash aggregate, no sort of the rows); the
    running counts name the buckets that hold the wanted ranks, and only those buckets' rows are
    sorted and numbered, then interpolated (`_interpolated`). Bounded memory whatever a group's size.
    One row per group with a non-null value (`_key_<k>` and the named quantiles); without keys,
    exactly one row, null when there is no value.
    """
    keys = [f"_key_{k}" for k in by]
    values = _keyed_values(native, by, column).withColumn("_b", _bucket(F.col("_v")))
    group = Window.partitionBy(*keys)
    counted = (
        values.groupBy(*keys, "_b")
        .agg(F.count(F.lit(1)).alias("_c"))
        .withColumn("_end", F.sum("_c").over(group.orderBy("_b").rowsBetween(Window.unboundedPreceding, Window.currentRow)))
        .withColumn("_n", F.sum("_c").over(group))
    )
    spots = []
    for name, q in wanted:
        pos = (F.col("_n") - 1) * F.lit(q)
        spots.append((name, pos, F.floor(pos), F.ceil(pos)))
    ranks = [r for _, _, lo, hi in spots for r in (lo, hi)]
    start = F.col("_end") - F.col("_c")
    # At most two buckets per quantile and group: broadcast, so the day's rows are filtered, not shuffled.
    targets = counted.where(reduce(lambda a, b: a | b, [(start <= r) & (r < F.col("_end")) for r in ranks])).select(
        *[F.col(k).alias(f"_t{k}") for k in keys], F.col("_b").alias("_tb"), start.alias("_start"), "_n"
    )
    # Null-safe on every key: a null group is a group.
    same = reduce(lambda a, b: a & b, [F.col(k).eqNullSafe(F.col(f"_t{k}")) for k in keys], F.col("_b") == F.col("_tb"))
    rank = F.col("_rank")
    kept = (
        values.join(F.broadcast(targets), on=same, how="inner")
        .withColumn("_rank", F.row_number().over(Window.partitionBy(*keys, "_b").orderBy("_v")) - 1 + F.col("_start"))
        .where(reduce(lambda a, b: a | b, [rank == r for r in ranks]))
    )
    bounds = [F.max("_n").alias("_n")]
    for i, (_, _, lo, hi) in enumerate(spots):
        bounds += [F.max(F.when(rank == lo, F.col("_v"))).alias(f"_lo{i}"), F.max(F.when(rank == hi, F.col("_v"))).alias(f"_hi{i}")]
    grouped = kept.groupBy(*keys).agg(*bounds) if by else kept.agg(*bounds)
    out = [_interpolated(name, pos, lo, hi, F.col(f"_lo{i}"), F.col(f"_hi{i}")) for i, (name, pos, lo, hi) in enumerate(spots)]
    return grouped.select(*keys, *out)


def _reading(source: str) -> AbstractContextManager[None]:
    """Spark failing while it executes a plan over `source`, as one line naming that input."""
    # Footers and schemas were readable (read_input checked them) but the data pages are not.
    return _as_one_line(InputUnreadable, f"input {source}: cannot read its data")


def _computing(table: str) -> AbstractContextManager[None]:
    """Spark failing while it computes an output table (a resource limit, a lost executor), as one line."""
    return _as_one_line(EngineFailed, f"spark failed computing {table}")


@contextmanager
def _as_one_line(error: type[RiskInsightError], what: str) -> Iterator[None]:
    try:
        yield
    except (PySparkException, Py4JJavaError) as exc:
        raise error(f"{what}: {first_line(exc)}") from exc


def first_line(exc: Exception) -> str:
    """The JVM's root cause in one line (Spark's messages run to pages of stack trace)."""
    if isinstance(exc, Py4JJavaError):
        cause = exc.java_exception
        while cause.getCause() is not None:
            cause = cause.getCause()
        text = str(cause.toString())
    else:
        text = str(exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def _with_epoch_us(df: DataFrame, table: str) -> DataFrame:
    return df.withColumns({epoch_us_column(c): F.unix_micros(F.col(c)) for c in timestamp_columns(table)})
