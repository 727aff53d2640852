"""The `riskinsight run` command end to end on tiny hand-built days: publication, reruns, exit codes."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from jobs import warehouse as wh
from jobs.cli import main
from tests.builders import appeal, audit, automated, clean, decision, shift
from tests.conftest import DS, collect, ts
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
    # The on-call's next step: the line names the file that says what failed, and by how much.
    assert f"results in _runs/ds={DS}/dq.json of the warehouse" in err[0]
    for n in OUTPUT_TABLES:
        assert table(tmp_path / "out", n).equals(before[n]), n
    dq = json.loads((wh.runs_dir(tmp_path / "out", DS) / "dq.json").read_text())
    assert dq["verdict"] == "fail"
    manifest = json.loads((wh.runs_dir(tmp_path / "out", DS) / "manifest.json").read_text())
    assert manifest["published"] is False and manifest["quarantined"]["decisions"] == {"bad_mode": 5}


def _page(out: Path, ds: dt.date = DS) -> str:
    return (out / "reports" / f"{ds}.html").read_text(encoding="utf-8")


def _index_row(out: Path, ds: dt.date = DS) -> str:
    from tests.index_html import index_row

    return index_row((out / "reports" / "index.html").read_text(encoding="utf-8"), ds)


def _run_facts(page: str) -> dict[str, str]:
    """The run table's and rows-written table's cells, by their row header."""
    cells = re.findall(r'<tr><th scope="row">([^<]+)</th><td>([^<]*)</td></tr>', page)
    written = re.search(r'<table id="written-table">(.*?)</table>', page, re.S).group(1)
    return {**dict(cells), **{t: n for t, n in re.findall(r"<tr><td>(\w+)</td><td class=\"num\">([^<]+)</td></tr>", written)}}


def test_a_failed_rerun_keeps_the_published_page_and_says_that_the_run_failed(tmp_path, monkeypatch):
    """The page of a published day describes its published tables. After a rerun that failed the
    gate, `_runs/ds=D/` holds the failed attempt's files: read from there, the page mixed the old
    tables with the failed run's quarantine, row counts and verdict."""
    monkeypatch.delenv("RISKINSIGHT_PSEUDONYM_KEY", raising=False)
    out = tmp_path / "out"
    args = ("--input", str(tmp_path / "in"), "--output", str(out), "--ds", str(DS))
    write_day(tmp_path / "in", DS, clean_day(DS))
    assert run(*args, "--run-ts", "2024-03-15T02:00:00Z") == 0
    published = _run_facts(_page(out))
    bad = clean_day(DS)
    bad["decisions"] += [decision(decision_mode="robot") for _ in range(5)]
    write_day(tmp_path / "in", DS, bad)
    assert run(*args, "--run-ts", "2024-03-16T02:00:00Z") == 3

    page = _page(out)
    banner = re.search(r'<div class="banner bad" id="latest-attempt-failed">(.*?)</div>', page, re.S)
    assert banner and "started 2024-03-16T02:00:00Z" in banner.group(1) and "decisions.quarantine_rate" in banner.group(1)
    assert 'id="not-published"' not in page
    facts = _run_facts(page)
    assert facts == published and facts["Run started"] == "2024-03-15T02:00:00Z" and facts["Published"] == "yes"
    assert "bad_mode" not in page  # the failed run's quarantine reason belongs to no published table
    row = _index_row(out)
    assert '<span class="badge pass">pass</span>' in row and "latest run failed" in row

    # Published again: the notice goes.
    write_day(tmp_path / "in", DS, clean_day(DS))
    assert run(*args, "--run-ts", "2024-03-17T02:00:00Z") == 0
    assert 'id="latest-attempt-failed"' not in _page(out) and "latest run failed" not in _index_row(out)


def test_a_day_whose_first_run_fails_gets_a_page_and_an_index_row(tmp_path):
    bad = clean_day(DS)
    bad["decisions"] += [decision(decision_mode="robot") for _ in range(5)]
    write_day(tmp_path / "in", DS, bad)
    out = tmp_path / "out"
    assert run("--input", str(tmp_path / "in"), "--output", str(out), "--ds", str(DS)) == 3
    page = _page(out)
    assert 'id="not-published"' in page and "quarantine_rate" in page
    # What the run found, from its manifest (no quarantine table was published) ...
    quarantined = re.search(r'<table id="quarantine-table">(.*?)</table>', page, re.S).group(1)
    assert '<td>decisions</td><td>bad_mode</td><td class="num">5</td>' in quarantined
    # ... and nothing it computed as if it were published: no offender figures, no "nothing happened".
    assert 'id="offender-category-table"' not in page and "reviewers active" not in page
    assert "Nothing was published for 2024-03-14." in page
    assert '<span class="badge fail">fail</span>' in _index_row(out)


def test_the_page_uses_the_runs_thresholds(tmp_path, monkeypatch):
    """The manifest records the trend and offender parameters the tables were computed with; the
    page's notes use them, not the defaults it once had written in."""
    (tmp_path / "c.toml").write_text("[trends]\nzscore_threshold = 2.5\nwindow_days = 21\n[offenders]\nmin_violations = 6\nwindow_days = 10\n")
    write_day(tmp_path / "in", DS, clean_day(DS))
    out = tmp_path / "out"
    assert run("--input", str(tmp_path / "in"), "--output", str(out), "--ds", str(DS), "--config", str(tmp_path / "c.toml")) == 0
    params = json.loads((wh.runs_dir(out, DS) / "manifest.json").read_text())["params"]
    assert params["trends"]["zscore_threshold"] == 2.5 and params["offenders"] == {"min_violations": 6, "window_days": 10}
    text = re.sub(r"\s+", " ", _page(out))
    assert "|z| &ge; 2.5 against the 21-day baseline" in text
    assert re.search(r"\d+ creators with 6 or more violations in the 10 days up to 2024-03-14", text)


def test_the_configs_pseudonym_key_keys_the_report(tmp_path, monkeypatch):
    """`[report] pseudonym_key` (SECURITY.md §2.4) was read and then never used: every report
    fell back to the public demo key, so anyone with the source could re-identify reviewers."""
    from reports.pseudonym import DEMO_KEY, pseudonymise

    monkeypatch.delenv("RISKINSIGHT_PSEUDONYM_KEY", raising=False)
    (tmp_path / "c.toml").write_text('[report]\npseudonym_key = "a-deployment-secret"\n')
    write_day(tmp_path / "in", DS, clean_day(DS))
    out = tmp_path / "out"
    assert run("--input", str(tmp_path / "in"), "--output", str(out), "--ds", str(DS), "--config", str(tmp_path / "c.toml")) == 0
    page = _page(out)
    assert pseudonymise("r1", b"a-deployment-secret") in page and pseudonymise("r1", DEMO_KEY) not in page
    assert 'id="demo-key"' not in page
    # Re-rendered with the same config: the same page; without it, the demo key and its warning.
    assert main(["report", "--output", str(out), "--ds", str(DS), "--config", str(tmp_path / "c.toml")]) == 0
    assert _page(out) == page
    assert main(["report", "--output", str(out), "--ds", str(DS)]) == 0
    assert 'id="demo-key"' in _page(out) and pseudonymise("r1", DEMO_KEY) in _page(out)


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
        # both forms of the days: one used to win silently over the other
        ("ds_and_range", 2, "either --ds D or --start D --end D, not both"),
        ("lookback_before_year_1", 2, "reaches before the first date there is"),
        # a prepared day is not published, so a later day of the range would not see it
        ("prepare_a_range", 2, "--phase prepare takes one day"),
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
    elif setup == "ds_and_range":
        args += ["--start", str(DS - DAY), "--end", str(DS)]
    elif setup == "lookback_before_year_1":
        args = ["--input", str(inp), "--output", str(out), "--ds", "0001-01-01", "--lookback", "1"]
    elif setup == "prepare_a_range":
        args += ["--lookback", "1", "--phase", "prepare"]
    capsys.readouterr()
    assert run(*args) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("riskinsight: error:") and message in err[0]
    if code == 2 or setup in ("no_input_dir", "no_success", "no_partition", "input_is_a_file"):
        # refused before anything was written (a mistyped --input used to leave _locks/ behind)
        assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("bad", ["2024-02-30", "2024-1-5", "yesterday", "../../etc", "2024-03-14T00:00"])
def test_ds_must_be_a_real_calendar_date(tmp_path, capsys, bad):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--input", str(tmp_path), "--output", str(tmp_path), "--ds", bad])
    assert exc.value.code == 2
    # One line like every other expected error, naming the flag and where help is (no usage block).
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("riskinsight: error: argument --ds: not a calendar date")
    assert err.rstrip().endswith("(see: riskinsight run --help)")


@pytest.mark.parametrize("bad", ["nan", "-1", "inf", "soon"])
def test_lock_wait_must_be_a_finite_number_of_seconds(tmp_path, capsys, bad):
    # nan compares false with every deadline: `--lock-wait nan` waited for ever.
    with pytest.raises(SystemExit) as exc:
        main(["run", "--input", str(tmp_path), "--output", str(tmp_path), "--ds", str(DS), "--lock-wait", bad])
    assert exc.value.code == 2
    assert "--lock-wait" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_works_before_and_after_the_subcommand(tmp_path, capsys, where):
    args = ["run", "--input", str(tmp_path / "nope"), "--output", str(tmp_path / "out"), "--ds", str(DS)]
    assert main(["--verbose", *args] if where == "before" else [*args, "--verbose"]) == 4
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("riskinsight: error: input directory")
    assert main(args) == 4
    assert "Traceback" not in capsys.readouterr().err


def test_a_range_prints_each_published_day_and_names_every_failed_one(tmp_path, capsys):
    days = [DS - 2 * DAY, DS - DAY, DS, DS + DAY]
    for d in days[:2]:  # the last two days have no input
        write_day(tmp_path / "in", d, clean_day(d))
    out = tmp_path / "out"
    code = run("--input", str(tmp_path / "in"), "--output", str(out), "--start", str(days[0]), "--end", str(days[-1]), "--no-report")
    captured = capsys.readouterr()
    assert code == 4
    # The days that published say so, although the range as a whole failed.
    assert [line.split(":")[0] for line in captured.out.splitlines()] == [str(days[0]), str(days[1])]
    assert all("published" in line for line in captured.out.splitlines())
    assert wh.published_days(out, "violation_daily") == days[:2]
    last = captured.err.strip().splitlines()[-1]
    assert last == f"riskinsight: error: input decisions ds={DS}: partition {tmp_path / 'in'}/decisions/ds={DS} does not exist (also failed: {days[-1]})"


def test_a_failed_prepare_leaves_no_candidate_behind(tmp_path, capsys):
    """An unreadable day fails staging after the checkpoint is written; a checkpoint is gigabytes on a
    large day, so nothing of the failed attempt may stay in the warehouse."""
    write_day(tmp_path / "in", DS, clean_day(DS))
    part = tmp_path / "in" / "decisions" / f"ds={DS}" / "part-00000.parquet"
    data = bytearray(part.read_bytes())
    data[len(data) // 3: len(data) // 3 + 64] = b"\xff" * 64  # a data page, not the footer
    part.write_bytes(bytes(data))
    out = tmp_path / "out"
    assert run("--input", str(tmp_path / "in"), "--output", str(out), "--ds", str(DS), "--no-report") == 4
    assert "cannot read its data" in capsys.readouterr().err
    assert not wh.candidate_dir(out, DS).exists()


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


@pytest.mark.parametrize("step", ["gate", "publish"])
def test_gate_and_publish_refuse_a_candidate_replaced_while_they_waited_for_the_lock(tmp_path, monkeypatch, step) -> None:
    """Another run of the day (a manual trigger beside the scheduled one) may prepare anew between
    a task's start and its taking the ds lock. The run-id check is made under the lock: made before
    it, the gate recorded one run's manifest over the other's tables, and publish published them."""
    from jobs import nightly
    from jobs.errors import CandidateReplaced

    write_day(tmp_path / "in", DS, clean_day(DS))
    out = tmp_path / "out"
    mine = nightly.prepare_day(tmp_path / "in", out, DS, run_started_at=dt.datetime(2024, 3, 1, 1, tzinfo=dt.UTC))
    if step == "publish":
        nightly.gate_day(mine)
    real_lock, theirs = wh.ds_lock, []

    @contextlib.contextmanager
    def replaced_while_waiting(output, ds, wait_s=0.0):
        if not theirs:  # the other run prepares first and takes the lock before this one gets it
            monkeypatch.setattr(wh, "ds_lock", real_lock)
            theirs.append(nightly.prepare_day(tmp_path / "in", out, DS, run_started_at=dt.datetime(2024, 3, 1, 2, tzinfo=dt.UTC)))
        with real_lock(output, ds, wait_s):
            yield

    monkeypatch.setattr(wh, "ds_lock", replaced_while_waiting)
    with pytest.raises(CandidateReplaced) as raised:
        (nightly.gate_day if step == "gate" else nightly.publish_day)(mine)
    assert f"is run {theirs[0].run_id}'s, not run {mine.run_id}'s" in str(raised.value)
    assert wh.published_days(out, "violation_daily") == []
    assert load_candidate_manifest(out) == {"run_id": theirs[0].run_id, "dq": {"verdict": "pending"}}
    assert nightly.gate_day(theirs[0])["verdict"] in ("pass", "warn")
    assert nightly.publish_day(theirs[0])["run_id"] == theirs[0].run_id


def load_candidate_manifest(out: Path) -> dict:
    manifest = wh.read_json(wh.candidate_dir(out, DS) / "manifest.json")
    return {"run_id": manifest["run_id"], "dq": manifest["dq"]}


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


def test_violation_trends_see_every_observed_day_however_the_history_is_split(tmp_path, monkeypatch):
    """A day is observed when it was run, whichever combinations it had: a combination seen on only
    some days gets actioned = 0 on the others. Computed a range of (market, category) at a time, a
    range without the ALL/ALL rows knew only the days its own combinations had rows on."""
    from jobs import nightly

    days = [DS - DAY * k for k in range(5, -1, -1)]
    for i, d in enumerate(days):
        data = clean_day(d)
        if i % 2 == 0:  # a market seen every other day only
            data["decisions"] += [decision(market="ZZ", decided_at=ts(5, day=d), enqueued_at=ts(4, day=d),
                                           content_created_at=ts(1, day=d)) for _ in range(3)]
        write_day(tmp_path / "in", d, data)

    def trends(out: Path) -> pl.DataFrame:
        assert run("--input", str(tmp_path / "in"), "--output", str(out), "--start", str(days[0]), "--end", str(days[-1]), "--no-report") == 0
        return table(out, "violation_trends")

    whole = trends(tmp_path / "whole")
    zz = whole.filter(pl.col("market") == "ZZ", pl.col("policy_category") == "ALL").to_dicts()[0]
    assert zz["baseline_days"] == 5 and zz["baseline_mean"] == 9 / 5  # 3, 0, 3, 0, 3 actioned before ds
    assert zz["actioned_7d_mean"] == 9 / 6
    monkeypatch.setattr(nightly, "HISTORY_ROWS_PER_PART", 4)  # the 6-day history in parts of a few rows
    assert_frame_equal(trends(tmp_path / "parts"), whole)  # NaN equal to NaN, unlike dicts of floats


def test_a_trend_window_shorter_than_a_week_reads_the_published_week(tmp_path):
    """`[trends] window_days = 2` bounds the baseline, not the 7-day mean or the week-ago value:
    the run reads the week before ds from the warehouse (DESIGN §4)."""
    days = [DS - DAY * k for k in range(8, -1, -1)]  # ds-8 .. ds
    for k, d in enumerate(days):
        write_day(tmp_path / "in", d, clean_day(d, n=5 + k))
    (tmp_path / "cfg.toml").write_text("[trends]\nwindow_days = 2\nmin_baseline_days = 2\n")
    out = tmp_path / "out"
    assert run("--input", str(tmp_path / "in"), "--output", str(out), "--start", str(days[0]), "--end", str(DS),
               "--config", str(tmp_path / "cfg.toml"), "--no-report") == 0
    actioned = {d: table(out, "violation_daily", d).filter(pl.col("market") == "ALL", pl.col("policy_category") == "ALL")["actioned"][0]
                for d in days}
    got = table(out, "violation_trends").filter(pl.col("market") == "ALL", pl.col("policy_category") == "ALL").to_dicts()[0]
    assert got["actioned_7d_mean"] == pytest.approx(sum(actioned[DS - DAY * k] for k in range(7)) / 7)
    assert got["wow_change"] == pytest.approx(actioned[DS] / actioned[DS - 7 * DAY] - 1)
    assert got["baseline_days"] == 2


def test_a_report_waits_for_a_run_of_its_day_instead_of_overwriting_its_page(tmp_path):
    """`riskinsight report` (and the DAG's report task) render under ds's lock: unlocked, a run
    publishing meanwhile had its page overwritten by one of the publication before."""
    from jobs.errors import LockHeld
    from jobs.report import render_day

    write_day(tmp_path / "in", DS, clean_day(DS))
    out = tmp_path / "out"
    assert run("--input", str(tmp_path / "in"), "--output", str(out), "--ds", str(DS), "--no-report") == 0
    holding, release, rendered = threading.Event(), threading.Event(), []

    def hold() -> None:
        with wh.ds_lock(out, DS):  # another thread: ds_lock is re-entered only by its holder
            holding.set()
            release.wait(30)
            rendered.append(report_page(out).exists())

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert holding.wait(30)
        with pytest.raises(LockHeld):
            render_day(out, DS)
        assert main(["report", "--output", str(out), "--ds", str(DS)]) == 5
        assert not report_page(out).exists()
        threading.Timer(0.3, release.set).start()
        assert main(["report", "--output", str(out), "--ds", str(DS), "--lock-wait", "30"]) == 0
    finally:
        release.set()
        t.join()
    assert rendered == [False]  # nothing was written while the run held the lock


def report_page(out: Path, ds: dt.date = DS) -> Path:
    return out / "reports" / f"{ds}.html"


def test_the_manifest_records_every_parameter_and_where_the_config_and_inputs_were(tmp_path, monkeypatch):
    """A proactive rate that moves because [job] proactive_sources changed must be told apart from
    one that moved with the data: the manifest keeps every parameter, the config's absolute path
    and its digest (the file may be edited later), and the inputs' absolute paths."""
    import hashlib

    write_day(tmp_path / "in", DS, clean_day(DS))
    text = '[job]\nproactive_sources = ["ml_model"]\n[sla_s]\ncomments = 60\n[dq]\nvolume_low = 0.25\n'
    (tmp_path / "c.toml").write_text(text)
    monkeypatch.chdir(tmp_path)
    assert run("--input", "in", "--output", "out", "--ds", str(DS), "--config", "c.toml", "--no-report") == 0
    manifest = json.loads((wh.runs_dir(tmp_path / "out", DS) / "manifest.json").read_text())
    assert manifest["config"] == str(tmp_path / "c.toml")
    assert manifest["config_sha256"] == hashlib.sha256(text.encode()).hexdigest()
    job = manifest["params"]["job"]
    assert job["proactive_sources"] == ["ml_model"] and job["sla_s"]["comments"] == 60.0 and job["sla_s"]["live_realtime"] == 300.0
    assert job["default_sla_s"] == 86400.0 and "spam" in job["taxonomy"]
    assert manifest["params"]["dq"]["volume_low"] == 0.25
    assert manifest["inputs"]["decisions"]["path"] == str(tmp_path / "in" / "decisions" / f"ds={DS}")


def test_a_publication_without_a_report_removes_the_page_of_the_one_before(tmp_path):
    """The page described the tables it replaced (or a failed run's banner): kept, it contradicted
    the published tables. `report` renders the day again."""
    write_day(tmp_path / "in", DS, clean_day(DS))
    out = tmp_path / "out"
    assert run("--input", str(tmp_path / "in"), "--output", str(out), "--ds", str(DS)) == 0
    assert report_page(out).exists() and f'href="{DS}.html"' in (out / "reports" / "index.html").read_text()
    write_day(tmp_path / "in", DS, clean_day(DS, n=30))
    assert run("--input", str(tmp_path / "in"), "--output", str(out), "--ds", str(DS), "--no-report") == 0
    assert not report_page(out).exists()
    assert f'href="{DS}.html"' not in (out / "reports" / "index.html").read_text()
    assert main(["report", "--output", str(out), "--ds", str(DS)]) == 0
    assert report_page(out).exists()


@pytest.mark.parametrize(("config", "trend_days"), [("", 28), ("[trends]\nwindow_days = 3\nmin_baseline_days = 2\n", 7)])
def test_the_history_reads_exactly_the_windows_design_defines(tmp_path, config, trend_days):
    """violation_trends: the baseline ds-28..ds-1 (and never less than the week before ds);
    repeat_offenders: ds-29..ds. A window one day short dropped the oldest day without a trace."""
    from jobs.config import load_config
    from jobs.nightly import prepare_day

    (tmp_path / "c.toml").write_text(config)
    write_day(tmp_path / "in", DS, clean_day(DS))
    asked = []

    def history(table: str, first: dt.date, last: dt.date) -> dict:
        asked.append((table, first, last))
        return {}

    prepare_day(tmp_path / "in", tmp_path / "out", DS, config=load_config(tmp_path / "c.toml"), history=history)
    assert sorted(asked) == [("creator_category_daily", DS - 29 * DAY, DS - DAY), ("violation_daily", DS - trend_days * DAY, DS - DAY)]


def test_publish_refuses_a_candidate_whose_gate_failed(tmp_path):
    from jobs.errors import RiskInsightError
    from jobs.nightly import prepare_day, publish_day

    write_day(tmp_path / "in", DS, clean_day(DS))
    out = tmp_path / "out"
    candidate = prepare_day(tmp_path / "in", out, DS)
    for verdict in ("pending", "fail"):
        manifest = candidate.manifest()
        manifest["dq"]["verdict"] = verdict
        wh.write_json(candidate.manifest_path, manifest)
        with pytest.raises(RiskInsightError, match=f"candidate has DQ verdict '{verdict}'; not publishing"):
            publish_day(candidate)
    assert wh.current_version(out, DS) is None and not wh.partition_dir(out, "violation_daily", DS).exists()


def test_demo_ends_with_the_last_reports_path_and_most_days_pass(tmp_path, capsys) -> None:
    """The README's first command. Quiet days carry no dirty rows and pass; every ninth day back from
    the last has an incident and warns, so the index's DQ column tells days apart."""
    from jobs.cli import demo_dirty_rates

    out = tmp_path / "demo"
    assert main(["demo", "--output", str(out), "--days", "10", "--rows-per-day", "3000"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    last = Path(printed[-1])
    assert last == out / "warehouse" / "reports" / "2024-01-10.html" and last.is_file()
    verdicts = {
        d.isoformat(): wh.read_json(wh.published_run_file(out / "warehouse", d, "manifest.json"))["dq"]["verdict"]
        for d in (dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(10))
    }
    assert {d for d, v in verdicts.items() if v == "warn"} == {"2024-01-01", "2024-01-10"}
    assert {v for d, v in verdicts.items() if d not in ("2024-01-01", "2024-01-10")} == {"pass"}
    rates = demo_dirty_rates([dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(35)])
    assert [d.isoformat() for d, r in rates.items() if r > 0] == ["2024-01-08", "2024-01-17", "2024-01-26", "2024-02-04"]


@pytest.mark.parametrize("step", ["checkpoint", "table"])
def test_a_full_output_volume_is_one_line_naming_the_output_not_the_input(tmp_path, monkeypatch, capsys, step) -> None:
    """Polars reports a full disk as its own ComputeError. While staging it was blamed on the input
    (exit 4, which the DAG does not retry); while writing a table it escaped as an 80-line traceback."""
    write_day(tmp_path / "in", DS, clean_day(DS))
    out = tmp_path / "out"
    full = pl.exceptions.ComputeError("failed to write: No space left on device (os error 28)")
    owner, method, under = (pl.LazyFrame, "sink_parquet", "/_scratch/") if step == "checkpoint" else (pl.DataFrame, "write_parquet", "/tables/")
    real = getattr(owner, method)

    def failing(self, path, *args, **kwargs):
        if under in str(path):
            raise full
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(owner, method, failing)
    if step == "checkpoint":
        where = f"output {wh.candidate_dir(out, DS) / '_scratch' / 'decisions'}: cannot write the staging checkpoint: "
    else:
        where = f"output {wh.candidate_dir(out, DS) / 'tables' / 'reviewer_daily'}: cannot write reviewer_daily: "
    assert run("--input", str(tmp_path / "in"), "--output", str(out), "--ds", str(DS), "--no-report") == 1
    err = capsys.readouterr().err.strip()
    assert err == f"riskinsight: error: {where}failed to write: No space left on device (os error 28)"
    assert wh.published_days(out, "violation_daily") == [] and not wh.candidate_dir(out, DS).exists()


def test_history_reads_partitions_written_before_a_column_was_added_or_after_one_was_dropped(tmp_path) -> None:
    """A release that adds a column to violation_daily or creator_category_daily must not break the
    next 30 nights: an earlier partition without it gives null there, one with a column since
    dropped is read without it. Required whole, the next day's run failed with an 80-line
    ColumnNotFoundError."""
    for d in (DS, DS + dt.timedelta(days=1)):
        write_day(tmp_path / "in", d, clean_day(d))
    out = tmp_path / "out"
    assert run("--input", str(tmp_path / "in"), "--output", str(out), "--ds", str(DS), "--no-report") == 0
    for table, dropped in (("violation_daily", "removed"), ("creator_category_daily", "last_violation_at")):
        part = next(wh.partition_dir(out, table, DS).glob("*.parquet"))
        old = pl.read_parquet(part).drop(dropped).with_columns(pl.lit("x").alias("since_dropped"))
        part.unlink()  # a hard link into the published version: replaced, not rewritten in place
        old.write_parquet(part)
    day2 = DS + dt.timedelta(days=1)
    assert run("--input", str(tmp_path / "in"), "--output", str(out), "--ds", str(day2), "--no-report") == 0
    trends = pl.read_parquet(next(wh.partition_dir(out, "violation_trends", day2).glob("*.parquet")))
    assert trends.filter((pl.col("market") == "ALL") & (pl.col("policy_category") == "ALL"))["baseline_days"].to_list() == [1]
    offenders = pl.read_parquet(next(wh.partition_dir(out, "repeat_offenders", day2).glob("*.parquet")))
    assert offenders.height > 0  # two days of the same creators' violations


def test_read_history_gives_every_partition_the_contracts_columns(engine, tmp_path) -> None:
    from transforms.schemas import OUTPUT_SCHEMAS

    row = {"market": "DE", "policy_category": "spam", "actioned": 3}
    for day, extra in ((DS, {"since_dropped": "x"}), (DS + dt.timedelta(days=1), {"removed": 1})):
        part = tmp_path / f"ds={day}"
        part.mkdir()
        pl.DataFrame([{**row, **extra}]).write_parquet(part / "part-00000.parquet")
    got = collect(engine, engine.read_history("violation_daily", {DS + dt.timedelta(days=i): tmp_path / f"ds={DS + dt.timedelta(days=i)}" for i in (0, 1)}))
    assert got.columns == [*OUTPUT_SCHEMAS["violation_daily"], "ds"]
    assert got.sort("ds")[["actioned", "removed", "overturn_rate"]].rows() == [(3, None, None), (3, 1, None)]


def test_a_pinned_candidate_and_a_publish_retried_after_another_run_prepared(tmp_path) -> None:
    """Run A published, then run B of the same day prepared: A's publish retried returns A's
    publication and leaves B's candidate whole (B then publishes); a candidate loaded for another
    run id is refused, and a pinned one carries the run id in place."""
    from jobs import nightly
    from jobs.errors import CandidateReplaced

    write_day(tmp_path / "in", DS, clean_day(DS))
    out = tmp_path / "out"
    a = nightly.prepare_day(tmp_path / "in", out, DS, run_started_at=dt.datetime(2024, 3, 1, 1, tzinfo=dt.UTC))
    nightly.gate_day(a)
    assert nightly.publish_day(a)["run_id"] == a.run_id
    b = nightly.prepare_day(tmp_path / "in", out, DS, run_started_at=dt.datetime(2024, 3, 1, 2, tzinfo=dt.UTC))
    assert nightly.publish_day(a)["run_id"] == a.run_id  # the retry: A's publication, nothing redone
    assert nightly.load_candidate(out, DS).pinned().run_id == b.run_id != a.run_id
    with pytest.raises(CandidateReplaced):
        nightly.load_candidate(out, DS, a.run_id)
    nightly.gate_day(b)
    assert nightly.publish_day(b)["run_id"] == b.run_id
    assert wh.read_json(wh.published_run_file(out, DS, "manifest.json"))["run_id"] == b.run_id


def test_a_published_days_line_reaches_a_pipe_while_the_run_goes_on(tmp_path):
    """Under cron or systemd stdout is a pipe, block-buffered: a run that was then killed (here: still
    waiting for day 2's lock) had not yet written the line of day 1, which it did publish."""
    import os
    import select

    day1, day2 = DS - DAY, DS
    for d in (day1, day2):
        write_day(tmp_path / "in", d, clean_day(d))
    out = tmp_path / "out"
    repo = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["PYTHONPATH"] = str(repo)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import datetime as dt, pathlib, sys\nfrom jobs import warehouse as wh\n"
         "with wh.ds_lock(pathlib.Path(sys.argv[1]), dt.date.fromisoformat(sys.argv[2])):\n"
         "    print('held', flush=True); sys.stdin.readline()", str(out), str(day2)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=repo, env=env,
    )
    proc = None
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobs.cli", "run", "--input", str(tmp_path / "in"), "--output", str(out),
             "--start", str(day1), "--end", str(day2), "--no-report", "--lock-wait", "300"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=repo, env=env,
        )
        ready, _, _ = select.select([proc.stdout], [], [], 90)
        assert ready, "no line of day 1 on stdout while the run waits for day 2"
        first = proc.stdout.readline().decode()
        assert proc.poll() is None  # still waiting for day 2's lock
        assert first.startswith(f"{day1}: ") and "published" in first
    finally:
        holder.communicate("go\n", timeout=30)
        if proc is not None:
            rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert rest.decode().startswith(f"{day2}: ")


def _two_published_days_with_a_corrupt_manifest(tmp_path) -> tuple[Path, Path, Path]:
    """ds-1 and ds published; ds's published manifest truncated (a later day than the one rerun)."""
    inp, out = tmp_path / "in", tmp_path / "out"
    for d in (DS - DAY, DS):
        write_day(inp, d, clean_day(d))
    assert run("--input", str(inp), "--output", str(out), "--start", str(DS - DAY), "--end", str(DS), "--no-report") == 0
    bad = wh.published_run_file(out, DS, "manifest.json")
    text = bad.read_text()
    bad.unlink()  # a link into the version: replaced by a truncated file of its own
    bad.write_text(text[: len(text) // 2])
    return inp, out, bad


def test_a_corrupt_manifest_is_one_line_naming_it_and_the_day_says_it_was_published(tmp_path, capsys):
    inp, out, bad = _two_published_days_with_a_corrupt_manifest(tmp_path)
    before = wh.current_version(out, DS - DAY)
    capsys.readouterr()
    # The index (rendered after the publication) reads every day's manifest.
    assert run("--input", str(inp), "--output", str(out), "--ds", str(DS - DAY)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"riskinsight: error: ds={DS - DAY} was published, but its report failed: warehouse file {bad} is not valid JSON")
    assert wh.current_version(out, DS - DAY) != before
    assert main(["report", "--output", str(out), "--ds", str(DS)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    # named as the page reads it: `_runs/ds=D/manifest.json`, a link to the same file
    assert err == [err[0]] and re.match(rf"riskinsight: error: warehouse file {re.escape(str(out))}/\S*ds={DS}/\S*manifest\.json is not valid JSON \(", err[0])


def test_a_failing_stale_day_check_is_a_note_and_keeps_the_runs_result(tmp_path, capsys):
    inp, out, bad = _two_published_days_with_a_corrupt_manifest(tmp_path)
    capsys.readouterr()
    assert run("--input", str(inp), "--output", str(out), "--ds", str(DS - DAY), "--no-report") == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{DS - DAY}: ") and "published" in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"riskinsight: note: could not check for published days left stale: warehouse file {bad} is not valid JSON (")
    assert err[0].endswith("; restore it from a backup or rerun its day")


def test_phase_prepare_waits_for_the_lock_as_long_as_lock_wait_says(tmp_path, capsys):
    write_day(tmp_path / "in", DS, clean_day(DS))
    out = tmp_path / "out"
    args = ["--input", str(tmp_path / "in"), "--output", str(out), "--ds", str(DS), "--phase", "prepare"]
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with wh.ds_lock(out, DS):  # another thread waits like another process
            holding.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert holding.wait(30)
        assert run(*args) == 5
        assert "pass --lock-wait SECONDS" in capsys.readouterr().err
        threading.Timer(0.5, release.set).start()
        assert run(*args, "--lock-wait", "30") == 0
    finally:
        release.set()
        t.join()
    assert capsys.readouterr().out.startswith(f"{DS}: prepared ")


def test_a_long_range_of_failed_days_ends_with_one_short_line(tmp_path, capsys):
    """Every failed day has its own FAILED line; the final error names a few and counts the rest
    (a year typed wrong used to end with a 17 KB line naming every day)."""
    write_day(tmp_path / "in", DS, clean_day(DS))
    first = DS - 8 * DAY  # ds-8 .. ds-1 have no input
    code = run("--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--start", str(first), "--end", str(DS), "--no-report")
    assert code == 4
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert sum(": FAILED: " in line for line in err) == 8
    named = ", ".join(str(first + k * DAY) for k in range(1, 6))
    assert err[-1].endswith(f" does not exist (also failed: {named} and 2 more, {first + 6 * DAY}..{first + 7 * DAY})")
    assert captured.out.startswith(f"{DS}: ")


def test_range_failure_names_six_other_days_without_counting_one():
    from jobs.errors import InputMissing, range_failure

    days = [DS + k * DAY for k in range(7)]
    exc = range_failure([(d, InputMissing(f"no {d}")) for d in days])
    assert isinstance(exc, InputMissing)
    assert str(exc) == f"no {days[0]} (also failed: {', '.join(str(d) for d in days[1:])})"


@pytest.mark.parametrize(
    ("window", "span"),
    [(["--start", "2020-01-01", "--end", "2030-01-10"], 3663), (["--ds", str(DS), "--lookback", "3660"], 3661)],
)
def test_a_run_of_more_days_than_the_documented_maximum_is_a_usage_error(tmp_path, capsys, window, span):
    from jobs.cli import run_window
    from jobs.config import MAX_DAYS

    write_day(tmp_path / "in", DS, clean_day(DS))
    out = tmp_path / "out"
    assert run("--input", str(tmp_path / "in"), "--output", str(out), *window) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("riskinsight: error: ") and f"is {span} days; a run takes at most {MAX_DAYS} days" in err[0]
    assert not out.exists()
    assert len(run_window(None, DS - (MAX_DAYS - 1) * DAY, DS, 0)) == MAX_DAYS  # the maximum itself runs


@pytest.mark.parametrize("shape", ["same", "output_inside_input", "input_inside_output", "same_through_a_link"])
def test_overlapping_input_and_output_is_a_usage_error(tmp_path, capsys, shape):
    """The warehouse written into the raw data (its _locks, _versions, tables beside the inputs)."""
    inp = tmp_path / "data"
    if shape == "input_inside_output":
        inp = tmp_path / "data" / "raw"
    write_day(inp, DS, clean_day(DS))
    out = {"same": inp, "output_inside_input": inp / "warehouse", "input_inside_output": tmp_path / "data",
           "same_through_a_link": tmp_path / "link"}[shape]
    if shape == "same_through_a_link":
        out.symlink_to(inp)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    capsys.readouterr()
    assert run("--input", str(inp), "--output", str(out), "--ds", str(DS), "--no-report") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"riskinsight: error: --input {inp} and --output {out} overlap")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert run("--input", str(inp), "--output", str(out), "--ds", str(DS), "--phase", "prepare") == 2


@pytest.mark.parametrize("phase", ["all", "prepare"])
def test_a_uri_input_on_polars_is_one_usage_error_before_anything_is_written(tmp_path, capsys, phase):
    out = tmp_path / "out"
    capsys.readouterr()
    code = run("--input", "s3a://bucket/raw", "--output", str(out), "--start", str(DS - DAY), "--end", str(DS),
               "--no-report", "--phase", phase)
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["riskinsight: error: --input s3a://bucket/raw: input behind a filesystem URI is read through "
                   "Spark's Hadoop filesystem; run it with --engine spark (or give a local or mounted path)"]
    assert not out.exists()


def test_no_progress_bar_frames_where_stderr_is_not_a_terminal(tmp_path, capsys):
    """cron and systemd keep stderr in a log: a bar's carriage-return frames filled it."""
    assert main(["generate", "--output", str(tmp_path / "in"), "--start", str(DS - DAY), "--days", "2", "--rows-per-day", "50"]) == 0
    assert main(["--verbose", "generate", "--output", str(tmp_path / "in2"), "--start", str(DS), "--days", "1", "--rows-per-day", "50"]) == 0
    code = run("--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--start", str(DS - DAY), "--end", str(DS + DAY),
               "--no-report")
    assert code == 4  # the third day has no input
    captured = capsys.readouterr()
    assert "\r" not in captured.err and "%|" not in captured.err
    assert [line.split(":")[0] for line in captured.out.splitlines()[-2:]] == [str(DS - DAY), str(DS)]
    assert any(line.startswith("generate ") for line in captured.err.splitlines())  # --verbose's step lines stay
    assert f"{DS + DAY}: FAILED: " in captured.err


RUN_ARGS = ["--input", "x", "--output", "y", "--ds", str(DS)]


@pytest.mark.parametrize(
    ("argv", "abbreviation"),
    [
        (["run", *RUN_ARGS, "--no-rep"], "--no-rep"),
        (["run", *RUN_ARGS, "--lock", "5"], "--lock"),
        (["run", *RUN_ARGS, "--eng", "spark"], "--eng"),
        (["report", "--output", "y", "--ds", str(DS), "--lock", "5"], "--lock"),
        (["--verb", "report", "--output", "y", "--ds", str(DS)], "--verb"),
        (["dsa", "daily", "--output", "y", "--ds", str(DS), "--no-rep"], "--no-rep"),
    ],
)
def test_abbreviated_flags_are_refused(tmp_path, capsys, monkeypatch, argv, abbreviation):
    """`--lock` for --lock-wait is an ambiguity waiting for the next flag that starts the same way."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert f"unrecognized arguments: {abbreviation}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("command", "flag"), [("generate", "--days"), ("generate", "--rows-per-day"), ("demo", "--days"), ("demo", "--rows-per-day")])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_days_and_rows_per_day_must_be_positive_and_the_error_names_the_flag(tmp_path, capsys, command, flag, value):
    argv = [command, "--output", str(tmp_path / "o")]
    if command == "generate":
        argv += ["--start", str(DS), "--days", "1", "--rows-per-day", "5"]
    argv += [flag, value]  # the last one given wins
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"riskinsight: error: argument {flag}: must be an integer >= 1: {value!r} (see: riskinsight {command} --help)"]
    assert not (tmp_path / "o").exists()


def test_run_help_documents_the_days_and_every_exit_code(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "YYYY-MM-DD; either --ds or --start and --end" in out
    assert "the day's older page is removed" in out
    for code in ("0", "1", "2", "3", "4", "5", "130"):
        assert re.search(rf"exit codes:.* {code} ", out), code


def test_the_terminal_summary_gives_the_days_totals_from_its_tables(tmp_path) -> None:
    """`demo`'s closing summary: decisions and the SLA rate over every queue (summed, not averaged
    over queues), the ALL/ALL row's figures and the DQ verdict of the publication."""
    from jobs.summary import day_summary

    day = clean_day(DS)
    # live_realtime (SLA 5 min): one decision met, three waited 10 minutes; video_standard all met.
    day["decisions"] += [automated(queue="live_realtime", enqueued_at=ts(5, day=DS), decided_at=ts(5, m, day=DS),
                                   content_created_at=ts(1, day=DS)) for m in (1, 10, 10, 10)]
    write_day(tmp_path / "in", DS, day)
    assert run("--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--ds", str(DS), "--no-report") == 0
    qd = {r["queue"]: (r["sla_met"], r["decisions"]) for r in table(tmp_path / "out", "queue_daily").iter_rows(named=True)}
    assert qd == {"video_standard": (41, 41), "live_realtime": (1, 4)}
    verdict = json.loads((wh.runs_dir(tmp_path / "out", DS) / "manifest.json").read_text())["dq"]["verdict"]
    lines = day_summary(tmp_path / "out", DS).splitlines()
    assert lines[0] == f"ds {DS}: DQ {verdict}"
    # 42 of 45 decisions, not the mean of the queues' rates (62.5%)
    assert lines[1].startswith("  decisions 45; actioned violations 44;") and lines[1].endswith("SLA met 93.3%")


def test_a_prepare_of_a_day_without_input_writes_nothing(tmp_path, capsys) -> None:
    """`run --phase prepare` (and the DAG's prepare) check the input before the ds lock, as `run` does."""
    write_day(tmp_path / "in", DS, clean_day(DS), success=False)
    out = tmp_path / "out"
    assert run("--input", str(tmp_path / "in"), "--output", str(out), "--ds", str(DS), "--phase", "prepare") == 4
    assert "no _SUCCESS marker" in capsys.readouterr().err
    assert not out.exists()


def test_a_report_that_cannot_be_written_says_the_day_was_published_and_the_range_goes_on(tmp_path, monkeypatch, capsys) -> None:
    """A full disk while the page is written, after the flip: the run ended with a bare
    `[Errno 28] No space left on device`, as if nothing had been published, and the days after it in
    the range were not run at all."""
    from jobs import report as report_mod

    days = [DS - DAY, DS]
    for d in days:
        write_day(tmp_path / "in", d, clean_day(d))
    out = tmp_path / "out"
    real = report_mod.write_text

    def full_disk(path, text):
        if Path(path) == report_mod.report_path(out, days[0]):
            raise OSError(28, "No space left on device", str(path))
        return real(path, text)

    monkeypatch.setattr(report_mod, "write_text", full_disk)
    code = run("--input", str(tmp_path / "in"), "--output", str(out), "--start", str(days[0]), "--end", str(days[1]))
    captured = capsys.readouterr()
    assert code == 1
    assert wh.published_days(out, "violation_daily") == days
    assert [line.split(":")[0] for line in captured.out.splitlines()] == [str(days[1])]
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith(f"riskinsight: error: ds={days[0]} was published, but its report failed: ")
    assert str(report_mod.report_path(out, days[0])) in last and "Traceback" not in captured.err


def test_a_rerun_replaces_a_published_manifest_that_is_not_json(tmp_path, capsys):
    """The error naming a corrupt run file says 'rerun its day': that rerun must work. It failed
    after its gate, reading the corrupt manifest in place to see whether it had published already."""
    write_day(tmp_path / "in", DS, clean_day(DS))
    out = tmp_path / "out"
    args = ("--input", str(tmp_path / "in"), "--output", str(out), "--ds", str(DS), "--no-report")
    assert run(*args) == 0
    manifest = wh.runs_dir(out, DS) / "manifest.json"
    manifest.write_text('{"ds": "2024-03', encoding="utf-8")  # through the link: the publication's own file
    assert main(["report", "--output", str(out), "--ds", str(DS)]) == 1  # a reader is stopped, naming the file
    assert "manifest.json is not valid JSON" in capsys.readouterr().err
    assert run(*args) == 0, capsys.readouterr().err
    assert json.loads(manifest.read_text(encoding="utf-8"))["published"] is True
