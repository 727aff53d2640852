"""Engine parity (DESIGN §8): the nightly run on Spark publishes the same tables as on Polars.

Several generated days with dirty rows go through `jobs.nightly.run_days` on both engines; every
output table of every day must match (row order aside, floats to 1e-9 relative, quarantine rows
compared as parsed JSON), and so must what the manifests count. Spark's reader must also make the
same decisions as Polars' on awkward input files.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import math
from collections.abc import Iterator
from pathlib import Path

import narwhals.stable.v2 as nw
import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from jobs import warehouse as wh
from jobs.engines.base import Engine
from jobs.engines.polars_engine import PolarsEngine
from jobs.errors import InputMissing, InputUnreadable
from jobs.nightly import run_days
from tests.builders import automated, decision, frame, shift
from tests.conftest import ts
from transforms.schemas import OUTPUT_GRAINS, OUTPUT_TABLES

pytestmark = pytest.mark.spark

START = dt.date(2024, 3, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(3)]
REL_TOL = 1e-9
# Zero-valued floats (rates, waits) computed in another order may come out as 1e-17 instead of 0.0.
ABS_TOL = 1e-12


# ------------------------------------------------------------------ comparison (shared with the cluster test)
def read_outputs(output: Path, ds: dt.date) -> dict[str, pl.DataFrame]:
    return {t: pl.read_parquet(wh.partition_dir(output, t, ds) / "*.parquet") for t in OUTPUT_TABLES}


def _canonical(table: str, df: pl.DataFrame) -> pl.DataFrame:
    """Rows in one deterministic order; quarantine rows as canonical JSON so formatting never matters."""
    if table == "quarantine":
        parsed = [json.dumps(json.loads(r), sort_keys=True) for r in df["row"].to_list()]
        df = df.with_columns(pl.Series("row", parsed, dtype=pl.String))
        return df.sort(df.columns, nulls_last=True)
    return df.sort(list(OUTPUT_GRAINS[table]), nulls_last=True)


def _same_float(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def assert_same_table(table: str, expected: pl.DataFrame, got: pl.DataFrame, where: str = "") -> None:
    label = f"{where}{table}"
    assert got.schema == expected.schema, f"{label}: schema {got.schema} != {expected.schema}"
    assert got.height == expected.height, f"{label}: {got.height} rows != {expected.height}"
    expected, got = _canonical(table, expected), _canonical(table, got)
    for column, dtype in expected.schema.items():
        want, have = expected[column].to_list(), got[column].to_list()
        if dtype.is_float():
            bad = [i for i, (a, b) in enumerate(zip(want, have, strict=True)) if not _same_float(a, b)]
        else:
            bad = [i for i, (a, b) in enumerate(zip(want, have, strict=True)) if a != b]
        assert not bad, f"{label}.{column}: first difference at row {bad[0]}: {want[bad[0]]!r} != {have[bad[0]]!r} ({len(bad)} rows)"


def manifest_figures(output: Path, ds: dt.date) -> dict:
    """What a run counted: equal on both engines (timings, versions and the engine name aside)."""
    m = wh.read_json(wh.runs_dir(output, ds) / "manifest.json")
    assert m is not None, f"no manifest for {ds}"
    keep = (
        "inputs", "distinct_rows", "duplicates_dropped", "quarantined", "staged_rows", "rows_written", "published",
        "offender_categories",
    )
    out = {k: m[k] for k in keep}
    out["dq"] = {k: sorted(v) if isinstance(v, list) else v for k, v in m["dq"].items()}
    out["profile"] = sorted((p["table"], p["figure"], p["value"]) for p in m["profile"])
    for entry in out["inputs"].values():
        entry.pop("path")
    return out


def assert_same_run(expected_out: Path, got_out: Path, days: list[dt.date]) -> None:
    for ds in days:
        assert manifest_figures(got_out, ds) == manifest_figures(expected_out, ds), f"manifest of {ds}"
        expected, got = read_outputs(expected_out, ds), read_outputs(got_out, ds)
        for table in OUTPUT_TABLES:
            assert_same_table(table, expected[table], got[table], where=f"{ds} ")


# ------------------------------------------------------------------ full runs
@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, spark_session) -> Iterator[dict[str, Path]]:
    from jobs.engines.spark_engine import SparkEngine
    from jobs.generate import generate

    root = tmp_path_factory.mktemp("parity")
    # 0.6% dirty rows: every decisions quarantine reason appears, yet under the 1% critical gate.
    generate(root / "input", START, len(DAYS), 1500, seed=11, dirty_rate=0.006)
    outputs = {"polars": root / "polars", "spark": root / "spark", "spark_uri": root / "spark_uri"}
    run_days(root / "input", outputs["polars"], DAYS, engine="polars", report=False)
    run_days(root / "input", outputs["spark"], DAYS, engine=SparkEngine(), report=False)
    # Input and warehouse both named by Hadoop filesystem URIs (file://: Hadoop's LocalFileSystem, the
    # code path of hdfs://): input listed, checked and footer-read through Hadoop; history read by the
    # executors from the remote partitions; each day published by the remote swap, reports included.
    results = run_days((root / "input").as_uri(), outputs["spark_uri"].as_uri(), DAYS, engine=SparkEngine())
    assert [r.report for r in results] == [f"{outputs['spark_uri'].as_uri()}/reports/{d}.html" for d in DAYS]
    yield outputs


def test_runs_cover_dirty_rows_history_and_publish_every_day(runs: dict[str, Path]) -> None:
    for out in runs.values():
        assert wh.published_days(out, "violation_daily") == DAYS
    quarantine = pl.concat([read_outputs(runs["spark"], ds)["quarantine"] for ds in DAYS])
    assert set(quarantine["reason"]) >= {
        "missing_key", "bad_timestamp", "wrong_partition", "bad_mode", "bad_outcome", "bad_range", "conflicting_duplicate",
    }
    # The last day's trends and offenders read the two earlier published days.
    last = read_outputs(runs["spark"], DAYS[-1])
    assert last["repeat_offenders"].height > 0
    assert wh.read_json(wh.runs_dir(runs["spark"], DAYS[-1]) / "manifest.json")["engine"] == "spark"


@pytest.mark.parametrize("run", ["spark", "spark_uri"])
@pytest.mark.parametrize("table", OUTPUT_TABLES)
def test_every_output_table_equals_polars(runs: dict[str, Path], table: str, run: str) -> None:
    for ds in DAYS:
        expected, got = read_outputs(runs["polars"], ds)[table], read_outputs(runs[run], ds)[table]
        assert_same_table(table, expected, got, where=f"{ds} ")


@pytest.mark.parametrize("run", ["spark", "spark_uri"])
def test_manifests_count_the_same(runs: dict[str, Path], run: str) -> None:
    for ds in DAYS:
        assert manifest_figures(runs[run], ds) == manifest_figures(runs["polars"], ds)
    inputs = wh.read_json(wh.runs_dir(runs["spark_uri"], DAYS[0]) / "manifest.json")["inputs"]
    assert inputs["decisions"]["path"].startswith("file:/") and inputs["decisions"]["files"] == 1


def test_a_uri_warehouse_has_the_local_layout_in_real_directories(runs: dict[str, Path]) -> None:
    """What other tools read: `<table>/ds=D` and `_runs/ds=D` as plain directories, reports beside them."""
    remote = runs["spark_uri"]
    for ds in DAYS:
        for table in OUTPUT_TABLES:
            part = wh.partition_dir(remote, table, ds)
            assert part.is_dir() and not part.is_symlink()
        manifest = wh.read_json(wh.runs_dir(remote, ds) / "manifest.json")
        assert manifest["published"] and manifest["dq"]["verdict"] in ("pass", "warn")
        assert (remote / "_versions" / f"ds={ds}" / "CURRENT").read_text() in {
            p.name for p in (remote / "_versions" / f"ds={ds}").iterdir()
        }
        assert f"{ds}" in (remote / "reports" / f"{ds}.html").read_text()
    index = (remote / "reports" / "index.html").read_text()
    assert all(f"{ds}.html" in index for ds in DAYS)
    assert not list((remote / "_locks").glob("*.lock")), "every lease released"


def test_a_uri_warehouse_gets_the_page_of_a_day_that_failed_its_gate(spark_session, tmp_path: Path) -> None:
    """As on a local warehouse: the failed day's page (and the index row linking to it) reach the
    remote; only the index did, so the index linked to a page that was not there."""
    from jobs.engines.spark_engine import SparkEngine
    from jobs.errors import DQGateFailed
    from jobs.generate import generate

    generate(tmp_path / "input", START, 1, 600, seed=3, dirty_rate=0.03)
    remote = tmp_path / "remote"
    with pytest.raises(DQGateFailed):
        run_days(tmp_path / "input", remote.as_uri(), [START], engine=SparkEngine())
    page = (remote / "reports" / f"{START}.html").read_text(encoding="utf-8")
    assert 'id="not-published"' in page and "quarantine_rate" in page
    assert f'href="{START}.html"' in (remote / "reports" / "index.html").read_text(encoding="utf-8")


# ------------------------------------------------------------------ the reader on awkward files
def test_checkpoint_is_plain_unverified_parquet_that_reads_back_the_same_rows(spark_engine: Engine, tmp_path: Path) -> None:
    # The scratch options are parquet-mr Hadoop keys: a misspelt or renamed key is ignored silently,
    # so the footer is what shows they took effect.
    rows = pl.DataFrame({"creator_id": [f"c{i % 7}" for i in range(500)], "n": list(range(500))})
    back = spark_engine.checkpoint(spark_engine.frame(rows), tmp_path / "scratch")
    assert_frame_equal(spark_engine.collect({"t": back})["t"].sort("n"), rows)
    files = sorted((tmp_path / "scratch").glob("*.parquet"))
    assert files
    for file in files:
        meta = pq.ParquetFile(file).metadata
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                chunk = meta.row_group(g).column(c)
                assert not chunk.has_dictionary_page, (file.name, chunk.path_in_schema)
                assert not chunk.is_stats_set, (file.name, chunk.path_in_schema)
                assert chunk.compression == "SNAPPY"


def _read_both(spark_engine: Engine, table: str, partition: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    polars = PolarsEngine()
    expected = polars.collect({"t": polars.read_input(table, partition)})["t"]
    got = spark_engine.collect({"t": spark_engine.read_input(table, partition)})["t"]
    return expected, got


def _write(partition: Path, name: str, df: pl.DataFrame) -> None:
    partition.mkdir(parents=True, exist_ok=True)
    df.write_parquet(partition / name)


def test_reader_units_zones_and_mixed_files_equal_polars(spark_engine: Engine, tmp_path: Path) -> None:
    rows = frame("decisions", [
        decision(decision_id="a", decided_at=ts(2, 5, micro=123457), handle_time_s=float("nan")),
        automated(decision_id="b", content_created_at=None, views_before_action=None),
    ])
    part = tmp_path / "decisions"
    ts_cols = ["content_created_at", "enqueued_at", "decided_at"]
    # Naive nanoseconds (naive means UTC), aware milliseconds in another zone, int32 views.
    _write(part, "a.parquet", rows.with_columns(pl.col(ts_cols).dt.replace_time_zone(None).dt.cast_time_unit("ns")))
    _write(part, "b.parquet", rows.with_columns(
        pl.col(ts_cols).dt.convert_time_zone("Asia/Kolkata").dt.cast_time_unit("ms"),
        pl.col("views_before_action").cast(pl.Int32),
    ))
    expected, got = _read_both(spark_engine, "decisions", part)
    assert got.schema == expected.schema
    key = ["decision_id", "decided_at_us"]
    assert got.sort(key).equals(expected.sort(key))  # equals: NaN == NaN, null == null, and never NaN == null
    assert sorted(got.filter(pl.col("decision_id") == "a")["decided_at_us"]) == [1710381900123000, 1710381900123457]
    assert got["handle_time_s"].is_nan().sum() == 2 and got["handle_time_s"].is_null().sum() == 2


def test_reader_empty_partition_is_an_empty_frame_with_the_schema(spark_engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "shifts").mkdir()
    expected, got = _read_both(spark_engine, "shifts", tmp_path / "shifts")
    assert got.height == 0 and got.schema == expected.schema


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda df: df.drop("team"), id="missing column"),
        pytest.param(lambda df: df.with_columns(pl.col("shift_date").cast(pl.String)), id="string date"),
        pytest.param(lambda df: df.with_columns(pl.lit(1.5).alias("reviewer_id")), id="float id"),
    ],
)
def test_reader_rejects_what_polars_rejects_with_the_same_line(spark_engine: Engine, tmp_path: Path, change) -> None:
    part = tmp_path / "shifts"
    _write(part, "part-0.parquet", change(frame("shifts", [shift()])))
    with pytest.raises(InputUnreadable) as polars_error:
        PolarsEngine().read_input("shifts", part)
    with pytest.raises(InputUnreadable) as spark_error:
        spark_engine.read_input("shifts", part)
    assert str(spark_error.value) == str(polars_error.value)
    assert "\n" not in str(spark_error.value)


def test_reader_rejects_string_timestamps_and_corrupt_files(spark_engine: Engine, tmp_path: Path) -> None:
    part = tmp_path / "decisions"
    _write(part, "a.parquet", frame("decisions", [decision()]).with_columns(pl.col("decided_at").cast(pl.String)))
    with pytest.raises(InputUnreadable, match="column decided_at .* has type String, expected Datetime"):
        spark_engine.read_input("decisions", part)
    (part / "a.parquet").write_text("not parquet")
    with pytest.raises(InputUnreadable, match="cannot read"):
        spark_engine.read_input("decisions", part)


def test_unreadable_data_pages_raise_input_unreadable_naming_the_source(spark_engine: Engine, tmp_path: Path) -> None:
    from transforms.params import Params

    part = tmp_path / "decisions"
    rows = frame("decisions", [decision(decision_id=f"d{i}", content_id=f"content-{i:06d}") for i in range(2000)])
    _write(part, "a.parquet", rows)
    data = bytearray((part / "a.parquet").read_bytes())
    # Garble every column chunk but keep the footer (its length sits before the closing magic):
    # the schema check passes, the scan fails.
    end = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    data[4:end] = bytes(b ^ 0x5A for b in data[4:end])
    (part / "a.parquet").write_bytes(bytes(data))
    raw = spark_engine.read_input("decisions", part)
    with pytest.raises(InputUnreadable, match=r"^input decisions .*: cannot read its data: ") as err:
        spark_engine.stage(raw, "decisions", Params(ds=dt.date(2024, 3, 14)), tmp_path / "scratch", source=f"decisions {part}")
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------ Hadoop filesystem URIs
def test_uri_partitions_read_and_reject_like_local_paths(spark_engine: Engine, tmp_path: Path) -> None:
    ds = dt.date(2024, 3, 14)
    part = tmp_path / "in" / "shifts" / f"ds={ds}"
    _write(part, "part-0.parquet", frame("shifts", [shift()]))
    uri = (tmp_path / "in").as_uri()
    with pytest.raises(InputMissing, match=r"^input shifts ds=2024-03-14: partition file:/.* has no _SUCCESS marker"):
        spark_engine.input_partition(uri, "shifts", ds)
    with pytest.raises(InputMissing, match=r"partition file:/.*/appeals/ds=2024-03-14 does not exist"):
        spark_engine.input_partition(uri, "appeals", ds)
    (part / "_SUCCESS").touch()
    located = spark_engine.input_partition(uri, "shifts", ds)
    assert isinstance(located, str) and located.startswith("file:/")
    assert [f.rsplit("/", 1)[1] for f in spark_engine.input_files(located)] == ["part-0.parquet"]
    expected = PolarsEngine().collect({"t": PolarsEngine().read_input("shifts", part)})["t"]
    got = spark_engine.collect({"t": spark_engine.read_input("shifts", located)})["t"]
    assert got.equals(expected)
    # The footer checks read the footer through Hadoop and say the same as on a local path.
    _write(part, "part-0.parquet", frame("shifts", [shift()]).with_columns(pl.col("shift_date").cast(pl.String)))
    with pytest.raises(InputUnreadable, match=r"column shift_date in file:/.*part-0.parquet has type String, expected Date$"):
        spark_engine.read_input("shifts", located)
    (part / "part-0.parquet").write_text("not parquet")
    with pytest.raises(InputUnreadable, match=r"cannot read file:/.*part-0.parquet: not a Parquet file"):
        spark_engine.read_input("shifts", located)


def test_polars_and_the_cli_refuse_uris_where_they_cannot_work(tmp_path: Path) -> None:
    from jobs.cli import main
    from jobs.errors import UsageError

    with pytest.raises(UsageError, match="Polars engine reads local paths"):
        PolarsEngine().input_partition("hdfs://nn:8020/logs", "decisions", dt.date(2024, 3, 14))
    code = main(["run", "--input", str(tmp_path), "--output", "s3a://bucket/warehouse", "--ds", "2024-03-14"])
    assert code == 2
    code = main(["run", "--engine", "spark", "--phase", "prepare", "--input", str(tmp_path), "--output", "s3a://b/w", "--ds", "2024-03-14"])
    assert code == 2


def test_a_large_driver_table_reaches_spark_through_a_file_unchanged(spark_engine: Engine) -> None:
    """Above `frame_rows_via_file` rows a Polars table goes to local Spark as a Parquet file, not
    through Arrow: every type, null and NaN must come back as the Arrow route gives it, and the
    file must go when the engine closes."""
    data = pl.DataFrame(
        {
            "creator_id": ["c1", None, "c3"],
            "category": pl.Series(["spam", "spam", None], dtype=pl.Categorical),
            "violations": [3, 0, None],
            "rate": [0.5, float("nan"), None],
            "last_at": [ts(1), None, ts(23, 59, 59, micro=999_999)],
            "ds": [START, START, None],
            "nothing": [None, None, None],
        }
    )
    through_arrow = spark_engine.collect({"t": spark_engine.frame(data)})["t"]
    spark_engine.frame_rows_via_file = 2
    through_file = spark_engine.frame(data)
    assert through_file.to_native().inputFiles(), "a 3-row table above the limit of 2 should be read from a file"
    got = spark_engine.collect({"t": through_file})["t"]
    assert_frame_equal(got, through_arrow)
    assert got.height == 3 and got["last_at"][2] == ts(23, 59, 59, micro=999_999)
    assert math.isnan(got["rate"][1]) and got["rate"][2] is None
    frames_dir = spark_engine._frames_dir
    assert frames_dir is not None and any(frames_dir.iterdir())
    spark_engine.close()
    assert not frames_dir.exists()


def test_an_engine_nobody_closes_leaves_no_scratch_directory(spark_session) -> None:
    """Library callers and fixtures drop engines without close(); the scratch directory of the
    engine's frame files must still go, not pile up in the temp dir run after run."""
    from jobs.engines.spark_engine import SparkEngine

    engine = SparkEngine()
    engine.frame_rows_via_file = 0
    got = engine.collect({"t": engine.frame(pl.DataFrame({"n": [1, 2]}))})["t"]
    assert got["n"].to_list() == [1, 2]
    frames_dir = engine._frames_dir
    assert frames_dir is not None and frames_dir.exists()
    del engine
    gc.collect()
    assert not frames_dir.exists()


def test_a_collected_table_reaches_the_driver_through_a_file_as_arrow_gives_it(spark_engine: Engine, monkeypatch) -> None:
    """In local mode an output frame comes to the driver through a Parquet file the tasks write,
    not `toArrow`, which refuses results over `spark.driver.maxResultSize` (creator_category_daily
    at 100 M decisions). Every type, null and NaN must come back as the Arrow route gives it, and
    the file must go once read."""
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    from jobs.engines.spark_engine import _to_polars

    data = pl.DataFrame(
        {
            "creator_id": ["c1", None, "c3"],
            "violations": [3, 0, None],
            "small": pl.Series([1, None, -2], dtype=pl.Int32),
            "rate": [0.5, float("nan"), None],
            "flag": [True, None, False],
            "last_at": [ts(1), None, ts(23, 59, 59, micro=999_999)],
            "ds": [START, START, None],
        }
    )
    native = spark_engine.frame(data).to_native().repartition(2)
    through_arrow = _to_polars(native.toArrow())

    def refused(self, *args, **kwargs):
        raise AssertionError("collected through toArrow")

    monkeypatch.setattr(DataFrame, "toArrow", refused)
    got = spark_engine.collect({"t": nw.from_native(native)})["t"]
    assert_frame_equal(got.sort("violations", nulls_last=True), through_arrow.sort("violations", nulls_last=True))
    assert got.schema["last_at"] == pl.Datetime("us", "UTC") and got.schema["small"] == pl.Int32
    assert math.isnan(got.filter(pl.col("violations") == 0)["rate"][0])
    assert not any(spark_engine._frames_dir.glob("collected-*")), "the collected file is removed once read"
    # Parquet has no null-typed column: such a frame (no output table has one) takes Arrow.
    monkeypatch.undo()
    void = spark_engine.collect({"v": nw.from_native(native.select("creator_id", F.lit(None).alias("nothing")))})["v"]
    assert void.schema["nothing"] == pl.Null and void.height == 3


def test_spark_failing_to_compute_a_table_says_so_in_one_line_naming_it(spark_engine: Engine) -> None:
    from pyspark.sql import functions as F

    from jobs.errors import EngineFailed

    native = spark_engine.frame(pl.DataFrame({"x": [1, 2]})).to_native()
    failing = native.select(F.when(F.col("x") > 1, F.raise_error(F.lit("out of memory, say"))).otherwise(F.col("x")).alias("x"))
    with pytest.raises(EngineFailed, match=r"^spark failed computing queue_daily: .*out of memory, say") as caught:
        spark_engine.collect({"queue_daily": nw.from_native(failing)})
    assert "\n" not in str(caught.value)


# ------------------------------------------------------------------ a day of hostile writers, whole run
def _rewrite(table: pl.DataFrame, path: Path, **columns_and_options) -> None:
    """`table` written by pyarrow with some columns replaced (pa arrays) and writer options."""
    options = {k: columns_and_options.pop(k) for k in list(columns_and_options) if k.startswith(("use_", "store_"))}
    t = table.to_arrow()
    for name, values in columns_and_options.items():
        t = t.set_column(t.schema.get_field_index(name), name, values)
    pq.write_table(t, path, **options)


def hostile_day(root: Path, ds: dt.date) -> None:
    """One partition per table, each file of decisions from another kind of writer: every unit and
    zone label, INT96, dictionary strings, narrow and unsigned integers, decimals, float32, NaN and
    -0.0, instants beyond what microseconds hold, columns in another order, a zero-row file, and
    hidden files that are no data."""
    import pyarrow as pa
    from decimal import Decimal

    from tests.builders import appeal, audit
    from tests.inputs import write_day

    at = lambda h, m=0, s=0, day=ds: dt.datetime.combine(day, dt.time(h, m, s), tzinfo=dt.UTC)
    write_day(root, ds, {
        "decisions": [decision(decision_id=f"base-{i}", reviewer_id=f"r{i % 2}", enqueued_at=at(2), decided_at=at(2, 5, i),
                               content_created_at=at(1)) for i in range(4)],
        "appeals": [appeal()],
        "qa_audits": [audit()],
        "shifts": [shift(reviewer_id="r0", shift_date=ds), shift(reviewer_id="r1", shift_date=ds, logged_in_s=-0.0),
                   shift(reviewer_id="far-shift", shift_date=ds)],
    })
    part = wh.partition_dir(root, "decisions", ds)
    shifts = wh.partition_dir(root, "shifts", ds) / "part-00000.parquet"
    _rewrite(pl.read_parquet(shifts), shifts, shift_date=pa.array([(ds - dt.date(1970, 1, 1)).days] * 2 + [2**31 - 1], pa.date32()))
    ts_cols = ["content_created_at", "enqueued_at", "decided_at"]
    one = lambda tag, **kw: frame("decisions", [
        decision(decision_id=f"{tag}-in", enqueued_at=at(23, 50), decided_at=at(23, 59, 59), content_created_at=at(0), **kw),
        decision(decision_id=f"{tag}-out", enqueued_at=at(0, 10), decided_at=at(0, 20, day=ds + dt.timedelta(days=1)),
                 content_created_at=at(0, day=ds - dt.timedelta(days=3)), **kw),
        automated(decision_id=f"{tag}-auto", enqueued_at=at(9), decided_at=at(9, 0, 1), content_created_at=None),
    ])
    for i, (unit, zone) in enumerate([("ms", "+05:30"), ("us", "Z"), ("ns", "-03:00"), ("ms", None), ("ns", None),
                                      ("us", "Etc/GMT+12"), ("ms", "America/New_York"), ("ns", "Asia/Kathmandu")]):
        # The same UTC instants under another label (an Arrow cast keeps the stored values); naive: UTC's wall clock.
        f = one(f"tz{i}")
        t = f.to_arrow()
        _rewrite(f, part / f"part-tz{i}.parquet", **{c: t[c].cast(pa.timestamp(unit, "UTC")).cast(pa.timestamp(unit, zone)) for c in ts_cols})
    _rewrite(one("int96"), part / "part-int96-us.parquet", use_deprecated_int96_timestamps=True)
    _rewrite(one("int96-ms").with_columns(pl.col(ts_cols).dt.cast_time_unit("ms")), part / "part-int96-ms.parquet",
             use_deprecated_int96_timestamps=True)
    seconds = one("seconds").to_arrow()
    _rewrite(one("seconds"), part / "part-seconds.parquet", **{c: seconds[c].cast(pa.timestamp("s", "UTC")) for c in ts_cols})
    strings = one("dict").to_arrow()
    _rewrite(one("dict"), part / "part-dict.parquet", store_schema=False, **{
        f.name: strings[f.name].cast(pa.dictionary(pa.int32(), pa.string())) for f in strings.schema if pa.types.is_string(f.type)
    })
    _rewrite(one("large").with_columns(pl.col("views_before_action").cast(pl.Int32)), part / "part-int32.parquet")
    numbers = frame("decisions", [decision(decision_id=f"num-{i}", decided_at=at(3, i)) for i in range(6)])
    _rewrite(numbers, part / "part-numbers.parquet",
             views_before_action=pa.array([2**63 + 1, 2**64 - 1, 2**32 + 1, 7, None, 0], pa.uint64()),
             handle_time_s=pa.array([Decimal("12.345"), Decimal("-0.001"), Decimal("14400.000"), Decimal("14400.001"),
                                     None, Decimal("0")], pa.decimal128(10, 3)))
    floats = frame("decisions", [decision(decision_id=f"float-{i}", decided_at=at(4, i)) for i in range(5)])
    _rewrite(floats, part / "part-float32.parquet",
             handle_time_s=pa.array([float("nan"), -0.0, 0.1, float("inf"), 3.4e38], pa.float32()),
             views_before_action=pa.array([-1, 0, 1, 127, -128], pa.int8()))
    far = frame("decisions", [decision(decision_id=f"far-{i}", decided_at=at(5, i), content_created_at=at(1)) for i in range(4)])
    ms = far["decided_at"].dt.epoch("ms").to_list()
    _rewrite(far, part / "part-far-ms.parquet",
             decided_at=pa.array([ms[0] * 10**6, *ms[1:]], pa.timestamp("ms", "UTC")),
             content_created_at=pa.array([ms[0], ms[1] * 10**6, -ms[2] * 10**6, ms[3]], pa.timestamp("ms")))
    far_us = frame("decisions", [decision(decision_id=f"far-us-{i}", decided_at=at(6, i), content_created_at=at(1)) for i in range(3)])
    us = far_us["decided_at"].dt.epoch("us").to_list()
    _rewrite(far_us, part / "part-far-us.parquet",
             decided_at=pa.array([2**63 - 1, us[1], us[2]], pa.timestamp("us", "UTC")),
             content_created_at=pa.array([us[0] - 60 * 10**6, -(2**63) + 1, 9 * 10**18], pa.timestamp("us")))
    reordered = one("order")
    reordered.select(list(reversed(reordered.columns))).with_columns(pl.lit("x").alias("extra")).write_parquet(part / "part-order.parquet")
    frame("decisions", []).write_parquet(part / "part-empty.parquet")
    for hidden in (".part-hidden.parquet", "_temporary-part.parquet"):
        one("hidden").write_parquet(part / hidden)


@pytest.fixture(scope="module")
def hostile_runs(tmp_path_factory: pytest.TempPathFactory, spark_session) -> dict[str, tuple[int, Path]]:
    from jobs.cli import main

    root = tmp_path_factory.mktemp("hostile")
    ds = dt.date(2024, 3, 14)
    hostile_day(root / "input", ds)
    config = root / "lenient.toml"
    config.write_text("[dq]\nquarantine_rate_critical = 1.0\nquarantine_rate_warning = 1.0\nduplicates_rate_warning = 1.0\n")
    outcomes = {}
    for engine in ("polars", "spark"):
        out = root / engine
        code = main(["run", "--input", str(root / "input"), "--output", str(out), "--ds", str(ds), "--config", str(config),
                     "--no-report", "--engine", engine])
        outcomes[engine] = (code, out)
    return outcomes


def test_a_day_of_hostile_writers_gives_the_same_outcome_on_both_engines(hostile_runs: dict[str, tuple[int, Path]]) -> None:
    ds = dt.date(2024, 3, 14)
    (polars_code, polars_out), (spark_code, spark_out) = hostile_runs["polars"], hostile_runs["spark"]
    assert (spark_code, polars_code) == (0, 0)
    assert_same_run(polars_out, spark_out, [ds])
    # The day really held what it was built to: every kind of row reached a rule, none stopped the run.
    q = read_outputs(polars_out, ds)["quarantine"]
    reasons = dict(zip(q["record_id"].to_list(), q["reason"].to_list(), strict=True))
    assert {reasons.get(f"tz{i}-out") for i in range(8)} == {"wrong_partition"}
    assert not any(reasons.get(f"tz{i}-in") or reasons.get(f"tz{i}-auto") for i in range(8))
    assert (reasons.get("num-0"), reasons.get("num-1"), reasons.get("num-2"), reasons.get("num-3")) == (
        "bad_range", "bad_range", None, "bad_range")
    assert (reasons.get("far-0"), reasons.get("far-1"), reasons.get("far-2")) == ("wrong_partition", "bad_timestamp", None)
    assert (reasons.get("far-us-0"), reasons.get("far-us-1"), reasons.get("far-us-2")) == ("wrong_partition", None, "bad_timestamp")
    assert reasons.get("far-shift") == "wrong_partition"
    assert not any(r.startswith("hidden") for r in reasons if r)
