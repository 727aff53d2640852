"""Bad input matrix (DESIGN §2, §3, §6): what reaches the job that should not, and what it does.

Unreadable or missing input stops the run with exit 4 (2 for bad arguments or config) and one line,
no traceback; a bad row never stops a run, it is quarantined with its reason and its JSON.
tests/test_cli_run.py already covers: no _SUCCESS on decisions, the shifts partition missing, a
non-Parquet file, a missing column, string timestamps, a misspelt [trends] key, broken TOML, and
zero-row files publishing empty tables; they are not repeated here.

Row-level cases share one dirty day run once through the CLI (module fixture): every rule gets its own
test against that run.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs import warehouse as wh
from jobs.cli import main
from tests.builders import (
    appeal,
    audit,
    automated,
    decision,
    frame,
    polars_schema,
    shift,
)
from tests.conftest import DS, ts
from tests.inputs import write_day
from transforms.schemas import INPUT_SCHEMAS, INPUT_TABLES, OUTPUT_TABLES
from transforms.staging import reasons

DAY = dt.timedelta(days=1)
NY = ZoneInfo("America/New_York")
RUN_TS = "2024-03-15T02:00:00Z"
# Every quarantine reason on a day of a few dozen rows is far above the 1 % gate; the gate is tested elsewhere.
LENIENT = "[dq]\nquarantine_rate_critical = 1.0\nquarantine_rate_warning = 1.0\nduplicates_rate_warning = 1.0\n"

LONG = "L" * 100_000  # 100 kB, plain ASCII so it must appear verbatim once HTML-escaped
EMOJI_MARKET = "🏳️‍🌈🇺🇦"
RTL_CATEGORY = "خطاب_الكراهية"  # Arabic, right to left
CONTROL_QUEUE = "queue\x01\x1b[31m\x7f\u200f\u202e-end"  # C0/C1-ish controls and bidi overrides, no NUL
ACCENTED_TEAM = "Équipe ✓ «nuit»"


def run(*args: str, engine: str = "polars") -> int:
    return main(["run", *args, "--engine", engine])


@pytest.fixture(params=["polars", pytest.param("spark", marks=pytest.mark.spark)])
def engine_name(request: pytest.FixtureRequest) -> str:
    """The engine a CLI run of the test uses; Spark's runs share the tests' one local session."""
    if request.param == "spark":
        request.getfixturevalue("spark_session")
    return request.param


def one_line_error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("riskinsight: error:") and "Traceback" not in err[0], err
    return err[0]


def tiny_day(ds: dt.date = DS) -> dict[str, list[dict]]:
    at = lambda h, m=0: ts(h, m, day=ds)
    return {
        "decisions": [decision(reviewer_id=f"r{i % 2}", enqueued_at=at(2), decided_at=at(2, 5)) for i in range(6)]
        + [automated(enqueued_at=at(3), decided_at=at(3, 1))],
        "shifts": [shift(reviewer_id="r0", shift_date=ds), shift(reviewer_id="r1", shift_date=ds)],
        "qa_audits": [audit()],
        "appeals": [appeal()],
    }


# ------------------------------------------------------------------ unreadable or missing input: exit 4
def _part(root: Path, table: str = "decisions", ds: dt.date = DS) -> Path:
    return wh.partition_dir(root, table, ds)


def _decisions_file(root: Path) -> Path:
    return _part(root) / "part-00000.parquet"


def _with_column(root: Path, name: str, expr: pl.Expr) -> None:
    f = _decisions_file(root)
    pl.read_parquet(f).with_columns(expr.alias(name)).write_parquet(f)


BROKEN_INPUTS = {
    # name: (how to break the written day, message part)
    "no_success_on_appeals_only": (lambda r: (_part(r, "appeals") / "_SUCCESS").unlink(), "appeals ds=2024-03-14: partition"),
    "partition_of_ds_missing_while_other_days_exist": (
        lambda r: (shutil.copytree(_part(r, "qa_audits"), _part(r, "qa_audits", DS - DAY)), shutil.rmtree(_part(r, "qa_audits"))),
        "qa_audits ds=2024-03-14: partition",
    ),
    "truncated_parquet": (
        lambda r: _decisions_file(r).write_bytes(_decisions_file(r).read_bytes()[: _decisions_file(r).stat().st_size // 2]),
        "cannot read",
    ),
    "empty_parquet_file": (lambda r: _decisions_file(r).write_bytes(b""), "cannot read"),
    "float_ids": (lambda r: _with_column(r, "decision_id", pl.lit(1.5)), "column decision_id"),
    "integer_ids": (lambda r: _with_column(r, "creator_id", pl.lit(7, dtype=pl.Int64)), "column creator_id"),
    "float_counts": (lambda r: _with_column(r, "views_before_action", pl.lit(2.5)), "column views_before_action"),
    "epoch_integers_as_timestamps": (lambda r: _with_column(r, "enqueued_at", pl.lit(1_710_374_400, dtype=pl.Int64)), "column enqueued_at"),
    "boolean_as_string": (lambda r: _with_column(r, "outcome", pl.lit(True)), "column outcome"),
}


@pytest.mark.parametrize("case", list(BROKEN_INPUTS))
def test_unreadable_or_missing_input_exits_4_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, case: str) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    write_day(inp, DS, tiny_day())
    breaker, message = BROKEN_INPUTS[case]
    breaker(inp)
    capsys.readouterr()
    assert run("--input", str(inp), "--output", str(out), "--ds", str(DS), "--no-report") == 4
    line = one_line_error(capsys)
    assert message in line, line
    # Nothing was published for the day, and nothing half-written is left where readers look.
    assert all(not wh.partition_dir(out, t, DS).exists() for t in OUTPUT_TABLES)


def test_corrupt_pages_behind_a_valid_footer_exit_4_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The footer (schema) reads fine, the column data does not: the failure surfaces in the scan,
    after the schema checks, and must still be an InputUnreadable (exit 4, one line)."""
    inp, out = tmp_path / "in", tmp_path / "out"
    rows = tiny_day()
    rows["decisions"] = rows["decisions"] * 40  # enough bytes that the data pages sit well before the footer
    write_day(inp, DS, rows)
    f = _decisions_file(inp)
    data = bytearray(f.read_bytes())
    for i in range(64, len(data) // 2):
        data[i] = 0xAB
    f.write_bytes(bytes(data))
    pl.read_parquet_schema(f)  # precondition: the footer is intact
    capsys.readouterr()
    try:
        code = run("--input", str(inp), "--output", str(out), "--ds", str(DS), "--no-report")
    except Exception as exc:  # noqa: BLE001 - an escaping exception is the finding; report it as such
        pytest.fail(f"corrupt page escaped as {type(exc).__name__} (a traceback, exit 1): {str(exc).splitlines()[0]}")
    assert code == 4
    assert "cannot read" in one_line_error(capsys)


def test_stray_non_parquet_files_in_a_partition_are_ignored(tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    write_day(inp, DS, tiny_day())
    (_part(inp) / ".part-00000.parquet.crc").write_bytes(b"\x00\x01crc")
    (_part(inp) / "README.txt").write_text("written by the exporter")
    assert run("--input", str(inp), "--output", str(out), "--ds", str(DS), "--no-report") == 0
    assert wh.read_json(wh.runs_dir(out, DS) / "manifest.json")["inputs"]["decisions"]["files"] == 1


def test_hidden_parquet_files_in_a_partition_are_not_read(tmp_path: Path) -> None:
    """`_`/`.` names are not data in the Hadoop convention (Spark and Hive skip them, and so does the
    job for a partition behind a URI): an abandoned attempt's copy is not counted beside the file."""
    inp, out = tmp_path / "in", tmp_path / "out"
    day = tiny_day()
    write_day(inp, DS, day)
    stale = frame("decisions", [decision(decision_id=f"stale-{i}") for i in range(5)])
    stale.write_parquet(_part(inp) / ".part-00000.parquet")
    stale.write_parquet(_part(inp) / "_temporary-part-00000.parquet")
    assert run("--input", str(inp), "--output", str(out), "--ds", str(DS), "--no-report") == 0
    inputs = wh.read_json(wh.runs_dir(out, DS) / "manifest.json")["inputs"]["decisions"]
    assert (inputs["files"], inputs["rows"]) == (1, len(day["decisions"]))
    assert _table(out, "queue_daily")["decisions"].sum() == len(day["decisions"])


# ------------------------------------------------------------------ usage and configuration: exit 2
def test_unknown_engine_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "--input", str(tmp_path), "--output", str(tmp_path), "--ds", str(DS), "--engine", "duckdb"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'duckdb'" in err and "Traceback" not in err


CONFIGS = {
    "unknown_section": ("[trend]\nzscore_threshold = 2\n", "unknown section"),
    "unknown_job_key": ("[job]\nproactive_source = ['ml_model']\n", "unknown key(s) in [job]"),
    "unknown_dq_key": ("[dq]\nquarantine_rate = 0.5\n", "unknown key(s) in [dq]"),
    "string_for_number": ("[trends]\nzscore_threshold = 'three'\n", "must be a number"),
    "boolean_for_number": ("[sla_s]\nlive_realtime = true\n", "must be a number"),
    "list_of_numbers_for_strings": ("[job]\ntaxonomy = [1, 2]\n", "list of strings"),
    "section_not_a_table": ("job = 3\n", "must be a table"),
    "not_utf8": (b"[trends]\nzscore_threshold = 3 # \xff\xfe\n", "not valid TOML"),
    "missing_file": (None, "file not found"),
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_bad_config_exits_2_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture, case: str) -> None:
    text, message = CONFIGS[case]
    config = tmp_path / "c.toml"
    if isinstance(text, bytes):
        config.write_bytes(text)
    elif text is not None:
        config.write_text(text)
    write_day(tmp_path / "in", DS, tiny_day())
    capsys.readouterr()
    assert run("--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--ds", str(DS),
               "--config", str(config), "--no-report") == 2
    line = one_line_error(capsys)
    assert message in line, line
    assert not (tmp_path / "out").exists()  # rejected before any work


# ------------------------------------------------------------------ an empty day
@pytest.fixture(scope="module")
def empty_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """decisions: a complete partition holding no file at all; the other tables: zero-row files."""
    root = tmp_path_factory.mktemp("empty")
    inp, out = root / "in", root / "out"
    write_day(inp, DS, {})
    (_part(inp) / "part-00000.parquet").unlink()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RISKINSIGHT_REVISION", "test")
        assert run("--input", str(inp), "--output", str(out), "--ds", str(DS), "--run-ts", RUN_TS) == 0
    return out


def test_partition_without_files_and_zero_row_files_read_as_zero_rows(empty_day: Path) -> None:
    manifest = wh.read_json(wh.runs_dir(empty_day, DS) / "manifest.json")
    assert manifest["inputs"]["decisions"] == {**manifest["inputs"]["decisions"], "files": 0, "rows": 0}
    assert manifest["inputs"]["shifts"]["files"] == 1 and manifest["inputs"]["shifts"]["rows"] == 0
    assert manifest["published"] is True and manifest["dq"]["verdict"] in ("pass", "warn")


def test_empty_day_publishes_every_table_empty_but_the_all_all_row(empty_day: Path) -> None:
    for t in OUTPUT_TABLES:
        df = pl.read_parquet(wh.partition_dir(empty_day, t, DS) / "*.parquet")
        if t in ("violation_daily", "violation_trends"):
            assert df.select("market", "policy_category", "actioned").rows() == [("ALL", "ALL", 0)], t
        else:
            assert df.height == 0, t


def test_empty_day_report_says_there_was_nothing(empty_day: Path) -> None:
    html = (empty_day / "reports" / f"{DS}.html").read_text(encoding="utf-8")
    assert 'id="not-published"' not in html  # the day was published: empty is not missing
    assert "No actioned violations were published" in html
    assert "No row was quarantined" in html
    decisions_tile = html.split('id="kpi-decisions"', 1)[1].split('<div class="delta">', 1)[0]
    assert '<div class="value">0</div>' in decisions_tile, decisions_tile


# ------------------------------------------------------------------ one dirty day, every row-level rule
def _naive(t: dt.datetime | None) -> dt.datetime | None:
    return None if t is None else t.astimezone(dt.UTC).replace(tzinfo=None)


def _decisions_frame(rows: list[dict], *, tz: str | None, unit: str = "us") -> pl.DataFrame:
    schema = polars_schema("decisions")
    for c, t in schema.items():
        if isinstance(t, pl.Datetime):
            schema[c] = pl.Datetime(unit, tz)
    if tz is None:
        rows = [{k: _naive(v) if isinstance(v, dt.datetime) else v for k, v in r.items()} for r in rows]
    return pl.DataFrame(rows, schema=schema, orient="row")


def dirty_rows() -> dict[str, list[dict]]:
    at = lambda h, m=0, day=DS: ts(h, m, day=day)
    nan, inf = float("nan"), float("inf")
    d = [decision(decision_id=f"ok-{i}", reviewer_id=f"r{i % 3}", creator_id=f"c{i % 2}") for i in range(10)]
    d += [automated(decision_id="auto-nan-handle", handle_time_s=nan)]  # ignored on automated: staged
    d += [decision(decision_id="dq-exact")] * 3  # exact duplicates: kept once
    d += [
        decision(decision_id=None),
        decision(decision_id="dq-no-creator", creator_id=None),
        decision(decision_id="dq-enqueued-after", enqueued_at=at(3), decided_at=at(2)),
        decision(decision_id="dq-future", enqueued_at=at(1, day=DS + DAY), decided_at=at(2, day=DS + DAY),
                 content_created_at=at(0, day=DS + DAY)),
        decision(decision_id="dq-far-future", enqueued_at=ts(1, day=dt.date(2099, 1, 1)),
                 decided_at=ts(2, day=dt.date(2099, 1, 1))),
        decision(decision_id="dq-yesterday", enqueued_at=at(1, day=DS - DAY), decided_at=at(23, 59, day=DS - DAY),
                 content_created_at=at(0, day=DS - DAY)),
        decision(decision_id="dq-robot", decision_mode="robot"),
        decision(decision_id="dq-maybe", outcome="maybe"),
        decision(decision_id="dq-nan", handle_time_s=nan),
        decision(decision_id="dq-inf", handle_time_s=inf),
        decision(decision_id="dq-neg-inf", handle_time_s=-inf),
        decision(decision_id="dq-negative-views", views_before_action=-5),
        decision(decision_id="dq-conflict", handle_time_s=10.0),
        decision(decision_id="dq-conflict", handle_time_s=20.0),
        # Strings from data, long and non-ASCII, on clean rows that reach every table.
        decision(decision_id="str-1", market=EMOJI_MARKET, policy_category=RTL_CATEGORY, queue=CONTROL_QUEUE,
                 reviewer_id="r-unicode-ß", creator_id=LONG),
        decision(decision_id="str-2", market=EMOJI_MARKET, policy_category=LONG, creator_id=LONG),
        decision(decision_id="str-3", market=EMOJI_MARKET, policy_category=RTL_CATEGORY, creator_id=LONG),
        # Quarantined with a long, non-ASCII payload: the row JSON must carry it intact.
        decision(decision_id="dq-long-json", decision_mode="robot", content_id=LONG + EMOJI_MARKET + RTL_CATEGORY),
    ]
    appeals = [
        appeal(appeal_id="ap-ok"),
        appeal(appeal_id=None),
        appeal(appeal_id="ap-bad-ts", appealed_at=at(10), resolved_at=at(9)),
        appeal(appeal_id="ap-future", appealed_at=at(3, day=DS + DAY), resolved_at=at(9, day=DS + DAY)),
        appeal(appeal_id="ap-bad-mode", decision_mode="automated"),  # automated with a reviewer
        appeal(appeal_id="ap-bad-outcome", appeal_outcome="reversed"),
        appeal(appeal_id="ap-conflict", appeal_outcome="upheld"),
        appeal(appeal_id="ap-conflict", appeal_outcome="overturned"),
    ]
    audits = [
        audit(audit_id="qa-ok", reviewer_id="r0"),
        audit(audit_id="qa-no-reviewer", reviewer_id=None),
        audit(audit_id="qa-no-time", audited_at=None),
        audit(audit_id="qa-future", audited_at=at(10, day=DS + DAY)),
        audit(audit_id="qa-bad-outcome", expected_outcome="violation", expected_category=None),
        audit(audit_id="qa-conflict", expected_category="spam"),
        audit(audit_id="qa-conflict", expected_category="scam"),
    ]
    shifts = [
        shift(reviewer_id="r0", team=ACCENTED_TEAM), shift(reviewer_id="r1"), shift(reviewer_id="r2"),
        shift(reviewer_id=None),
        shift(reviewer_id="s-tomorrow", shift_date=DS + DAY),
        shift(reviewer_id="s-nan", logged_in_s=nan),
        shift(reviewer_id="s-inf", logged_in_s=inf),
        shift(reviewer_id="s-null", logged_in_s=None),
        shift(reviewer_id="s-too-long", logged_in_s=86_401.0),
        shift(reviewer_id="s-dup", logged_in_s=100.0),
        shift(reviewer_id="s-dup", logged_in_s=200.0),
    ]
    return {"decisions": d, "appeals": appeals, "qa_audits": audits, "shifts": shifts}


# New York is UTC-4 on DS (2024-03-14, after the DST switch): 23:30 on DS-1 there is 03:30 UTC on DS.
NY_LATE_EVENING = dt.datetime(2024, 3, 13, 23, 30, tzinfo=NY)
NY_NEXT_UTC_DAY = dt.datetime(2024, 3, 14, 20, 30, tzinfo=NY)  # 00:30 UTC on DS+1: wrong_partition


@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dirty")
    inp, out = root / "in", root / "out"
    write_day(inp, DS, dirty_rows())
    part = _part(inp)
    # Same table, other writers: naive timestamps (meaning UTC), New York time in milliseconds,
    # and a file with an extra column and its columns in another order.
    _decisions_frame([
        decision(decision_id="tz-naive-in", enqueued_at=ts(12), decided_at=ts(12, 30), content_created_at=ts(11)),
        decision(decision_id="tz-naive-out", enqueued_at=ts(23, day=DS - DAY), decided_at=ts(23, 30, day=DS - DAY),
                 content_created_at=None),
    ], tz=None).write_parquet(part / "part-00001.parquet")
    _decisions_frame([
        decision(decision_id="tz-ny-in", market="NY", enqueued_at=NY_LATE_EVENING - dt.timedelta(minutes=10),
                 decided_at=NY_LATE_EVENING, content_created_at=NY_LATE_EVENING - dt.timedelta(hours=1)),
        decision(decision_id="tz-ny-out", enqueued_at=NY_NEXT_UTC_DAY, decided_at=NY_NEXT_UTC_DAY + dt.timedelta(minutes=1),
                 content_created_at=None),
    ], tz="America/New_York", unit="ms").write_parquet(part / "part-00002.parquet")
    extra = frame("decisions", [decision(decision_id="extra-col", market="XC"),
                                decision(decision_id="extra-col-bad", decision_mode="robot")])
    extra = extra.with_columns(pl.lit("do not ingest").alias("internal_note"))
    extra.select(list(reversed(extra.columns))).write_parquet(part / "part-00003.parquet")
    config = root / "lenient.toml"
    config.write_text(LENIENT)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RISKINSIGHT_REVISION", "test")
        assert run("--input", str(inp), "--output", str(out), "--ds", str(DS), "--config", str(config),
                   "--run-ts", RUN_TS) == 0
    return out


def _table(out: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(wh.partition_dir(out, name, DS) / "*.parquet")


def _quarantine(out: Path) -> dict[tuple[str, str | None], dict]:
    return {(r["source_table"], r["record_id"]): r for r in _table(out, "quarantine").iter_rows(named=True)}


def _reason(out: Path, table: str, record_id: str | None) -> str:
    q = _quarantine(out)
    assert (table, record_id) in q, f"{table}/{record_id} not quarantined"
    return q[(table, record_id)]["reason"]


def _strict_json(text: str) -> dict:
    def no_constants(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=no_constants)


def test_every_quarantine_reason_reaches_the_quarantine_table(dirty: Path) -> None:
    got = {(r["source_table"], r["reason"]) for r in _table(dirty, "quarantine").iter_rows(named=True)}
    want = {(t, reason) for t in INPUT_TABLES for reason in reasons(t)}
    assert got == want, f"missing: {sorted(want - got)}, unexpected: {sorted(got - want)}"
    manifest = wh.read_json(wh.runs_dir(dirty, DS) / "manifest.json")
    for t in INPUT_TABLES:
        counted = _table(dirty, "quarantine").filter(pl.col("source_table") == t).group_by("reason").len()
        assert manifest["quarantined"][t] == dict(counted.iter_rows()), t


@pytest.mark.parametrize(("table", "record_id", "reason"), [
    ("decisions", None, "missing_key"),
    ("decisions", "dq-no-creator", "missing_key"),
    ("decisions", "dq-enqueued-after", "bad_timestamp"),
    ("decisions", "dq-robot", "bad_mode"),
    ("decisions", "dq-maybe", "bad_outcome"),
    ("decisions", "dq-negative-views", "bad_range"),
    ("appeals", None, "missing_key"),
    ("appeals", "ap-bad-ts", "bad_timestamp"),
    ("appeals", "ap-future", "wrong_partition"),
    ("appeals", "ap-bad-mode", "bad_mode"),
    ("appeals", "ap-bad-outcome", "bad_outcome"),
    ("qa_audits", "qa-no-reviewer", "missing_key"),
    ("qa_audits", "qa-no-time", "bad_timestamp"),
    ("qa_audits", "qa-future", "wrong_partition"),
    ("qa_audits", "qa-bad-outcome", "bad_outcome"),
    ("shifts", None, "missing_key"),
    ("shifts", "s-tomorrow", "wrong_partition"),
    ("shifts", "s-null", "bad_range"),
    ("shifts", "s-too-long", "bad_range"),
])
def test_quarantined_row_has_its_reason_and_its_json(dirty: Path, table: str, record_id: str | None, reason: str) -> None:
    assert _reason(dirty, table, record_id) == reason
    row = _quarantine(dirty)[(table, record_id)]
    payload = _strict_json(row["row"])
    assert list(payload) == list(INPUT_SCHEMAS[table]), "the row JSON holds exactly the contract's columns"
    key = {"decisions": "decision_id", "appeals": "appeal_id", "qa_audits": "audit_id", "shifts": "reviewer_id"}[table]
    assert payload[key] == record_id
    if table != "shifts":
        assert row["decision_id"] == payload["decision_id"]


def test_exact_duplicates_are_dropped_and_counted(dirty: Path) -> None:
    manifest = wh.read_json(wh.runs_dir(dirty, DS) / "manifest.json")
    assert manifest["duplicates_dropped"] == {"decisions": 2, "appeals": 0, "qa_audits": 0, "shifts": 0}
    assert ("decisions", "dq-exact") not in _quarantine(dirty)  # the copies are one row, not a conflict
    raw = manifest["inputs"]["decisions"]["rows"]
    assert manifest["distinct_rows"]["decisions"] == raw - 2
    assert manifest["staged_rows"]["decisions"] + sum(manifest["quarantined"]["decisions"].values()) == raw - 2


@pytest.mark.parametrize(("table", "key"), [("decisions", "dq-conflict"), ("appeals", "ap-conflict"),
                                            ("qa_audits", "qa-conflict"), ("shifts", "s-dup")])
def test_conflicting_duplicates_are_all_quarantined(dirty: Path, table: str, key: str) -> None:
    rows = _table(dirty, "quarantine").filter(pl.col("source_table") == table, pl.col("record_id") == key)
    assert rows["reason"].to_list() == ["conflicting_duplicate"] * 2
    assert len({r for r in rows["row"]}) == 2  # both versions kept, neither chosen


@pytest.mark.parametrize("record_id", ["dq-future", "dq-far-future", "dq-yesterday", "tz-naive-out", "tz-ny-out"])
def test_event_times_outside_ds_are_wrong_partition(dirty: Path, record_id: str) -> None:
    assert _reason(dirty, "decisions", record_id) == "wrong_partition"


@pytest.mark.parametrize(("table", "record_id"), [("decisions", "dq-nan"), ("decisions", "dq-inf"), ("decisions", "dq-neg-inf"),
                                                  ("shifts", "s-nan"), ("shifts", "s-inf")])
def test_nan_and_infinite_numbers_are_bad_range(dirty: Path, table: str, record_id: str) -> None:
    assert _reason(dirty, table, record_id) == "bad_range"


def test_quarantine_row_json_is_strict_json_even_for_nan_and_infinity(dirty: Path) -> None:
    """DESIGN §3: `row` is a JSON string. NaN/Infinity are not JSON: a strict parser (or another
    language's) must read every quarantined row."""
    bad = []
    for r in _table(dirty, "quarantine").iter_rows(named=True):
        try:
            _strict_json(r["row"])
        except ValueError as exc:
            bad.append((r["record_id"], str(exc), r["row"][:120]))
    assert not bad, bad
    # The value the row was rejected for is in it, not a null that reads as another rule.
    q = _quarantine(dirty)
    shown = {rid: _strict_json(q[("decisions", rid)]["row"])["handle_time_s"] for rid in ("dq-nan", "dq-inf", "dq-neg-inf")}
    assert shown == {"dq-nan": "NaN", "dq-inf": "Infinity", "dq-neg-inf": "-Infinity"}
    assert _strict_json(q[("shifts", "s-nan")]["row"])["logged_in_s"] == "NaN"


def test_handle_time_on_an_automated_decision_is_ignored_even_nan(dirty: Path) -> None:
    assert ("decisions", "auto-nan-handle") not in _quarantine(dirty)


def test_naive_timestamps_mean_utc(dirty: Path) -> None:
    assert ("decisions", "tz-naive-in") not in _quarantine(dirty)
    q = _table(dirty, "queue_daily").filter(pl.col("market") == "US", pl.col("queue") == "video_standard")
    # Every staged US video_standard decision waited 5 minutes, except the naive one: 30 minutes.
    assert q["wait_max_s"].item() == 1800.0


def test_new_york_timestamps_are_normalised_to_utc(dirty: Path) -> None:
    assert NY_LATE_EVENING.astimezone(dt.UTC) == dt.datetime(2024, 3, 14, 3, 30, tzinfo=dt.UTC)
    assert ("decisions", "tz-ny-in") not in _quarantine(dirty)  # 23:30 in New York on D-1 is D in UTC
    ny = _table(dirty, "violation_daily").filter(pl.col("market") == "NY", pl.col("policy_category") == "ALL")
    assert ny["actioned"].to_list() == [1]
    assert ny["tta_p50_s"].to_list() == [3600.0]
    # The quarantined copy of the next-UTC-day row carries UTC instants, not the writer's wall clock.
    out_row = _strict_json(_quarantine(dirty)[("decisions", "tz-ny-out")]["row"])
    assert out_row["enqueued_at"] == "2024-03-15T00:30:00.000000Z"


def test_an_extra_column_is_ignored(dirty: Path) -> None:
    assert ("decisions", "extra-col") not in _quarantine(dirty)
    assert _table(dirty, "violation_daily").filter(pl.col("market") == "XC", pl.col("policy_category") == "ALL")["actioned"].to_list() == [1]
    payload = _strict_json(_quarantine(dirty)[("decisions", "extra-col-bad")]["row"])
    assert "internal_note" not in payload and list(payload) == list(INPUT_SCHEMAS["decisions"])


def test_long_and_non_ascii_strings_flow_through_to_the_tables(dirty: Path) -> None:
    vd = _table(dirty, "violation_daily")
    assert vd.filter(pl.col("market") == EMOJI_MARKET, pl.col("policy_category") == RTL_CATEGORY)["actioned"].to_list() == [2]
    assert vd.filter(pl.col("market") == EMOJI_MARKET, pl.col("policy_category") == LONG)["actioned"].to_list() == [1]
    assert _table(dirty, "queue_daily").filter(pl.col("queue") == CONTROL_QUEUE)["decisions"].to_list() == [1]
    rd = _table(dirty, "reviewer_daily")
    assert set(rd["reviewer_id"]) >= {"r-unicode-ß"} and rd.filter(pl.col("reviewer_id") == "r0")["team"].to_list() == [ACCENTED_TEAM]
    ro = _table(dirty, "repeat_offenders")
    assert ro.filter(pl.col("creator_id") == LONG)["violations_30d"].to_list() == [3]
    payload = _strict_json(_quarantine(dirty)[("decisions", "dq-long-json")]["row"])
    assert payload["content_id"] == LONG + EMOJI_MARKET + RTL_CATEGORY


def test_long_and_non_ascii_strings_reach_the_report_intact(dirty: Path) -> None:
    page = (dirty / "reports" / f"{DS}.html").read_text(encoding="utf-8")
    # HTML tables carry data as UTF-8 text, figure specs as ASCII JSON with \u escapes: either is intact.
    for value in (EMOJI_MARKET, RTL_CATEGORY, CONTROL_QUEUE):
        assert value in page or json.dumps(value)[1:-1] in page, repr(value)
    assert LONG in page  # plain ASCII: verbatim
    assert "r-unicode-ß" not in page  # reviewers are pseudonymised whatever their spelling
    assert "\x00" not in page


# ------------------------------------------------------------------ instants beyond Polars' range
# 2024-03-14 02:05 UTC in nanoseconds, written under a millisecond label (a writer's unit mix-up): year
# 54 million, beyond what microseconds hold. A date of year 5.8 million (date32's maximum) likewise.
NS_AS_MS = int(dt.datetime(2024, 3, 14, 2, 5, tzinfo=dt.UTC).timestamp()) * 10**9
DATE32_MAX = 2**31 - 1


def _replace(part: Path, table: str, columns: dict[str, pa.Array]) -> None:
    f = part / "part-00000.parquet"
    t = pq.read_table(f)
    for name, values in columns.items():
        t = t.set_column(t.schema.get_field_index(name), name, values)
    pq.write_table(t, f)


def _run_lenient(tmp_path: Path, inp: Path, out: Path, capsys: pytest.CaptureFixture, engine_name: str) -> None:
    """A run of DS on `engine_name` whose gate lets every rejected row through to the quarantine:
    it publishes, and prints no traceback."""
    config = tmp_path / "lenient.toml"
    config.write_text(LENIENT)
    capsys.readouterr()
    assert run("--input", str(inp), "--output", str(out), "--ds", str(DS), "--config", str(config), "--no-report",
               engine=engine_name) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_instants_beyond_the_microsecond_range_are_staged_by_their_real_value(
    tmp_path: Path, capsys: pytest.CaptureFixture, engine_name: str
) -> None:
    """Polars panicked on them (a traceback past every handler), Spark's reader overflowed (exit 4).
    Each row gets the reason its real value calls for: a decision taken in year 54 million is not of
    ds, content created then is after the decision, content created as far before it is merely old,
    and so is a shift of year 5 million."""
    inp, out = tmp_path / "in", tmp_path / "out"
    rows = {
        "decisions": [decision(decision_id=i) for i in ("far-decided", "far-created", "far-past-created", "ok")],
        "shifts": [shift(reviewer_id="far-shift"), shift(reviewer_id="r1")],
    }
    write_day(inp, DS, rows)
    at_ms = [int(r["decided_at"].timestamp() * 1000) for r in rows["decisions"]]
    created_ms = [int(r["content_created_at"].timestamp() * 1000) for r in rows["decisions"]]
    _replace(_part(inp), "decisions", {
        "decided_at": pa.array([NS_AS_MS, *at_ms[1:]], pa.timestamp("ms", "UTC")),
        "content_created_at": pa.array([created_ms[0], NS_AS_MS, -NS_AS_MS, created_ms[3]], pa.timestamp("ms")),
    })
    _replace(_part(inp, "shifts"), "shifts", {"shift_date": pa.array([DATE32_MAX, (DS - dt.date(1970, 1, 1)).days], pa.date32())})
    _run_lenient(tmp_path, inp, out, capsys, engine_name)
    assert _reason(out, "decisions", "far-decided") == "wrong_partition"
    assert _reason(out, "decisions", "far-created") == "bad_timestamp"
    assert _reason(out, "shifts", "far-shift") == "wrong_partition"
    assert ("decisions", "far-past-created") not in _quarantine(out) and ("decisions", "ok") not in _quarantine(out)
    all_all = _table(out, "violation_daily").filter(pl.col("market") == "ALL", pl.col("policy_category") == "ALL")
    assert all_all["actioned"].to_list() == [2]
    assert all_all["within_24h"].to_list() == [1]  # only "ok": the other was created ages before
    for r in _table(out, "quarantine").iter_rows(named=True):
        _strict_json(r["row"])


def test_a_file_of_nanoseconds_labelled_milliseconds_fails_the_gate_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, engine_name: str
) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    write_day(inp, DS, tiny_day())
    n = len(tiny_day()["decisions"])
    _replace(_part(inp), "decisions", {c: pa.array([NS_AS_MS] * n, pa.timestamp("ms", "UTC"))
                                       for c in ("content_created_at", "enqueued_at", "decided_at")})
    capsys.readouterr()
    assert run("--input", str(inp), "--output", str(out), "--ds", str(DS), "--no-report", engine=engine_name) == 3
    assert "DQ gate failed (decisions.quarantine_rate)" in one_line_error(capsys)
    assert wh.read_json(wh.runs_dir(out, DS) / "manifest.json")["quarantined"]["decisions"] == {"wrong_partition": n}
    assert all(not wh.partition_dir(out, t, DS).exists() for t in OUTPUT_TABLES)


def test_microsecond_instants_at_the_ends_of_int64_are_staged_by_their_real_value(
    tmp_path: Path, capsys: pytest.CaptureFixture, engine_name: str
) -> None:
    """int64 microseconds near either end (year 287 000 after, or before, 1970): Spark subtracted
    them from the decision time and overflowed computing the tables (exit 1)."""
    inp, out = tmp_path / "in", tmp_path / "out"
    rows = {"decisions": [decision(decision_id=i) for i in ("far-decided", "far-past-created", "ok")]}
    write_day(inp, DS, rows)
    us = lambda column: [int(r[column].timestamp()) * 10**6 for r in rows["decisions"]]
    _replace(_part(inp), "decisions", {
        "decided_at": pa.array([2**63 - 1, *us("decided_at")[1:]], pa.timestamp("us", "UTC")),
        "content_created_at": pa.array([us("content_created_at")[0], -(2**63) + 1, us("content_created_at")[2]],
                                       pa.timestamp("us")),
    })
    _run_lenient(tmp_path, inp, out, capsys, engine_name)
    assert _reason(out, "decisions", "far-decided") == "wrong_partition"
    assert ("decisions", "far-past-created") not in _quarantine(out)
    all_all = _table(out, "violation_daily").filter(pl.col("market") == "ALL", pl.col("policy_category") == "ALL")
    assert (all_all["actioned"].to_list(), all_all["within_24h"].to_list()) == ([2], [1])
    decided = _strict_json(_quarantine(out)[("decisions", "far-decided")]["row"])["decided_at"]
    assert decided.startswith("+") and int(decided[1:].split("-")[0]) > 200_000, decided  # far after, not wrapped


@pytest.mark.parametrize("unsigned", [2**63, 2**64 - 1])
def test_an_unsigned_view_count_beyond_int64_is_bad_range(
    tmp_path: Path, capsys: pytest.CaptureFixture, engine_name: str, unsigned: int
) -> None:
    """views_before_action is int64 (DESIGN §2): an unsigned 64-bit count above its maximum has no
    int64 value, so it is out of range (bad_range), not unreadable input that stops the day."""
    inp, out = tmp_path / "in", tmp_path / "out"
    rows = {"decisions": [decision(decision_id="huge-views"), decision(decision_id="ok", views_before_action=0)]}
    write_day(inp, DS, rows)
    _replace(_part(inp), "decisions", {"views_before_action": pa.array([unsigned, 0], pa.uint64())})
    _run_lenient(tmp_path, inp, out, capsys, engine_name)
    assert _reason(out, "decisions", "huge-views") == "bad_range"
    assert ("decisions", "ok") not in _quarantine(out)
    assert wh.read_json(wh.runs_dir(out, DS) / "manifest.json")["quarantined"]["decisions"] == {"bad_range": 1}
