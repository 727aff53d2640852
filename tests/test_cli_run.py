"""The `riskinsight run` command end to end on tiny hand-built days: publication, reruns, exit codes."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
from pathlib import Path

import polars as pl
import pytest

from jobs import warehouse as wh
from jobs.cli import main
from tests.builders import appeal, audit, automated, clean, decision, shift
from tests.conftest import DS, ts
from tests.inputs import write_day
from transforms.schemas import OUTPUT_TABLES

DAY = dt.timedelta(days=1)


def clean_day(ds: dt.date, n: int = 20) -> dict[str, list[dict]]:
    at = lambda h, m=0: ts(h, m, day=ds)  # noqa: E731
    decisions = [decision(reviewer_id=f"r{i % 3}", creator_id=f"c{i % 4}", enqueued_at=at(2), decided_at=at(2, 5), content_created_at=at(1)) for i in range(n)]
    decisions += [automated(enqueued_at=at(3), decided_at=at(3, 1), content_created_at=at(1)) for _ in range(n)]
    decisions += [clean(reviewer_id="r1", enqueued_at=at(4), decided_at=at(4, 2), content_created_at=at(1))]
    return {
        "decisions": decisions,
        "shifts": [shift(reviewer_id=f"r{i}", shift_date=ds) for i in range(3)],
        "qa_audits": [audit(audited_at=at(10))],
        "appeals": [appeal(appealed_at=at(3), resolved_at=at(9), decided_at=at(1))],
    }


def run(*args: str) -> int:
    return main(["run", *args])


def table(out: Path, name: str, ds: dt.date = DS) -> pl.DataFrame:
    return pl.read_parquet(wh.partition_dir(out, name, ds) / "*.parquet")


def test_run_publishes_every_table_and_the_manifest(tmp_path):
    write_day(tmp_path / "in", DS, clean_day(DS))
    assert run("--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--ds", str(DS), "--no-report") == 0
    for name in OUTPUT_TABLES:
        assert list(wh.partition_dir(tmp_path / "out", name, DS).glob("*.parquet")), name
    manifest = json.loads((wh.runs_dir(tmp_path / "out", DS) / "manifest.json").read_text())
    assert manifest["published"] is True and manifest["engine"] == "polars"
    assert manifest["inputs"]["decisions"]["rows"] == 41
    assert manifest["rows_written"]["reviewer_daily"] == table(tmp_path / "out", "reviewer_daily").height == 3
    assert set(manifest["stage_seconds"]) >= {"read_stage", "compute", "write", "dq", "publish"}
    assert set(manifest["stage_cpu_seconds"]) == set(manifest["stage_seconds"])
    assert manifest["stage_cpu_seconds"]["read_stage"] > 0
    assert manifest["dq"]["verdict"] in ("pass", "warn")
    vd = table(tmp_path / "out", "violation_daily").filter(pl.col("market") == "ALL", pl.col("policy_category") == "ALL")
    assert vd["actioned"].to_list() == [40]
    assert not (tmp_path / "out" / "_candidates" / f"ds={DS}").exists()


def test_rerun_writes_identical_tables(tmp_path):
    write_day(tmp_path / "in", DS, clean_day(DS))
    args = ("--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--ds", str(DS), "--no-report")
    assert run(*args) == 0
    first = {n: (wh.partition_dir(tmp_path / "out", n, DS) / "part-00000.parquet").read_bytes() for n in OUTPUT_TABLES}
    assert run(*args) == 0
    second = {n: (wh.partition_dir(tmp_path / "out", n, DS) / "part-00000.parquet").read_bytes() for n in OUTPUT_TABLES}
    assert first == second


def test_empty_partitions_publish_empty_tables(tmp_path):
    write_day(tmp_path / "in", DS, {})
    assert run("--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--ds", str(DS), "--no-report") == 0
    assert table(tmp_path / "out", "reviewer_daily").height == 0
    vd = table(tmp_path / "out", "violation_daily")
    assert vd.select("market", "policy_category", "actioned").rows() == [("ALL", "ALL", 0)]


def test_dq_failure_exits_3_and_keeps_the_previous_publication(tmp_path, capsys):
    write_day(tmp_path / "in", DS, clean_day(DS))
    args = ("--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--ds", str(DS), "--no-report")
    assert run(*args) == 0
    before = {n: table(tmp_path / "out", n) for n in OUTPUT_TABLES}
    bad = clean_day(DS)
    bad["decisions"] += [decision(decision_mode="robot") for _ in range(5)]  # 5 of 46 rows quarantined: > 1 %
    write_day(tmp_path / "in", DS, bad)
    capsys.readouterr()
    assert run(*args) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "DQ gate failed" in err[0] and "quarantine_rate" in err[0]
    for n in OUTPUT_TABLES:
        assert table(tmp_path / "out", n).equals(before[n]), n
    dq = json.loads((wh.runs_dir(tmp_path / "out", DS) / "dq.json").read_text())
    assert dq["verdict"] == "fail"
    manifest = json.loads((wh.runs_dir(tmp_path / "out", DS) / "manifest.json").read_text())
    assert manifest["published"] is False and manifest["quarantined"]["decisions"] == {"bad_mode": 5}


def test_lookback_reruns_the_days_before(tmp_path):
    for d in (DS - DAY, DS):
        write_day(tmp_path / "in", d, clean_day(d))
    assert run("--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--ds", str(DS), "--lookback", "1", "--no-report") == 0
    assert wh.published_days(tmp_path / "out", "violation_daily") == [DS - DAY, DS]
    trends = table(tmp_path / "out", "violation_trends").filter(pl.col("market") == "ALL", pl.col("policy_category") == "ALL")
    assert trends["baseline_days"].to_list() == [1]  # the day before was published first and is observed


@pytest.mark.parametrize(
    ("setup", "code", "message"),
    [
        ("no_input_dir", 4, "does not exist"),
        ("no_success", 4, "no _SUCCESS marker"),
        ("no_partition", 4, "does not exist"),
        ("not_parquet", 4, "cannot read"),
        ("missing_column", 4, "column outcome missing"),
        ("string_timestamps", 4, "column decided_at"),
        ("end_before_start", 2, "before --start"),
        ("unknown_config_key", 2, "unknown key"),
        ("malformed_config", 2, "not valid TOML"),
        # e.g. a warehouse copied without keeping its links (cp -L, shutil.copytree's default)
        ("real_partition_dir", 1, "is a real directory, not a published link"),
        ("input_is_a_file", 4, "is not a directory"),
        # the filesystem's refusal, with the path it refused
        ("output_is_a_file", 1, "Not a directory: '"),
    ],
)
def test_expected_errors_are_one_line_with_their_exit_code(tmp_path, capsys, setup, code, message):
    inp, out = tmp_path / "in", tmp_path / "out"
    args = ["--input", str(inp), "--output", str(out), "--ds", str(DS), "--no-report"]
    if setup == "input_is_a_file":
        inp.write_text("")
    elif setup == "output_is_a_file":
        out.write_text("")
    if setup not in ("no_input_dir", "input_is_a_file"):
        write_day(inp, DS, clean_day(DS), success=setup != "no_success")
    part = inp / "decisions" / f"ds={DS}"
    if setup == "no_partition":
        import shutil

        shutil.rmtree(inp / "shifts")
    elif setup == "not_parquet":
        (part / "part-00001.parquet").write_text("this is not parquet")
    elif setup in ("missing_column", "string_timestamps"):
        df = pl.read_parquet(part / "part-00000.parquet")
        df = df.drop("outcome") if setup == "missing_column" else df.with_columns(pl.col("decided_at").cast(pl.String))
        df.write_parquet(part / "part-00000.parquet")
    elif setup == "end_before_start":
        args = ["--input", str(inp), "--output", str(out), "--start", str(DS), "--end", str(DS - DAY)]
    elif setup == "unknown_config_key":
        (tmp_path / "c.toml").write_text("[trends]\nzscore_treshold = 2\n")
        args += ["--config", str(tmp_path / "c.toml")]
    elif setup == "malformed_config":
        (tmp_path / "c.toml").write_text("[trends\nzscore_threshold = 2\n")
        args += ["--config", str(tmp_path / "c.toml")]
    elif setup == "real_partition_dir":
        (out / "reviewer_daily" / f"ds={DS}").mkdir(parents=True)
    capsys.readouterr()
    assert run(*args) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("riskinsight: error:") and message in err[0]


@pytest.mark.parametrize("bad", ["2024-02-30", "2024-1-5", "yesterday", "../../etc", "2024-03-14T00:00"])
def test_ds_must_be_a_real_calendar_date(tmp_path, capsys, bad):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--input", str(tmp_path), "--output", str(tmp_path), "--ds", bad])
    assert exc.value.code == 2
    assert "not a calendar date" in capsys.readouterr().err


def test_a_second_run_of_the_same_ds_fails_cleanly_while_the_first_holds_the_lock(tmp_path, capsys):
    write_day(tmp_path / "in", DS, clean_day(DS))
    out = tmp_path / "out"
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        # A separate process holds the lock (flock is per open file description, so a thread would do too).
        proc = subprocess.Popen(
            [sys.executable, "-c", f"from jobs import warehouse as wh; import datetime as dt, sys\n"
             f"with wh.ds_lock(__import__('pathlib').Path({str(out)!r}), dt.date({DS.year},{DS.month},{DS.day})):\n"
             f"    print('held', flush=True); sys.stdin.readline()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert proc.stdout.readline().strip() == "held"
        holding.set()
        release.wait(30)
        proc.communicate("go\n", timeout=30)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert holding.wait(30)
        capsys.readouterr()
        assert run("--input", str(tmp_path / "in"), "--output", str(out), "--ds", str(DS), "--no-report") == 5
        assert "is being run by pid" in capsys.readouterr().err
    finally:
        release.set()
        t.join()
    # Once the holder is gone (even killed: the kernel drops a flock), the run goes through.
    assert run("--input", str(tmp_path / "in"), "--output", str(out), "--ds", str(DS), "--no-report") == 0


def test_console_script_reports_missing_input_in_one_line(tmp_path):
    exe = Path(sys.executable).parent / "riskinsight"
    proc = subprocess.run(
        [str(exe), "run", "--input", str(tmp_path / "nope"), "--output", str(tmp_path / "out"), "--ds", str(DS)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 4
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr


def test_phase_prepare_writes_the_candidate_only_and_later_tasks_publish_it(tmp_path, capsys):
    from jobs.nightly import gate_day, load_candidate, publish_day

    write_day(tmp_path / "in", DS, clean_day(DS))
    out = tmp_path / "out"
    assert run("--input", str(tmp_path / "in"), "--output", str(out), "--ds", str(DS), "--phase", "prepare") == 0
    assert "prepared" in capsys.readouterr().out
    assert wh.published_days(out, "violation_daily") == []
    candidate = load_candidate(out, DS)  # what Airflow's gate and publish tasks do, in other processes
    assert gate_day(candidate)["verdict"] in ("pass", "warn")
    publish_day(candidate)
    assert wh.published_days(out, "violation_daily") == [DS]


def test_the_program_exits_with_mains_code_and_skips_the_final_collection(monkeypatch) -> None:
    """`riskinsight` (jobs.cli:console) freezes the heap before exiting: the interpreter's last
    collection over everything great-expectations and plotly built cost seconds for nothing."""
    import tomllib

    from jobs import cli

    scripts = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["riskinsight"] == "jobs.cli:console"
    frozen: list[bool] = []
    monkeypatch.setattr(cli, "main", lambda: 3)
    monkeypatch.setattr(cli.gc, "freeze", lambda: frozen.append(True))
    with pytest.raises(SystemExit) as exc:
        cli.console()
    assert exc.value.code == 3 and frozen == [True]
