"""Fault injection (DESIGN §6): a run killed at any fail point leaves a whole publication behind.

Set-up shared by the module: ds D-1 and D published once from input A; input B is A plus rows
that change every output table of D, so any table (or run file) can be told apart as "A" or "B".
Each case SIGKILLs a run of D on input B at one point of `jobs.faults`, then checks what a reader
sees right away, what the next run sees once it holds the lock, and that a plain rerun publishes B.

Runs of the gate cost seconds each (great-expectations), so publish-phase kills start from a candidate
of B that already passed the gate and run only the publish task (`jobs.nightly.publish_day`, the same
phase the CLI and the Airflow DAG call); a few cases go through the full console script as well.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from jobs import faults
from jobs import warehouse as wh
from jobs.cli import main
from jobs.config import load_config
from tests.builders import audit, automated, clean, decision, shift
from tests.conftest import DS, ts
from tests.inputs import write_day
from transforms.schemas import OUTPUT_TABLES

DAY = dt.timedelta(days=1)
D, D1 = DS, DS - DAY
REPO = Path(__file__).resolve().parent.parent
RISKINSIGHT = str(Path(sys.executable).parent / "riskinsight")
RUN_TS_A = "2024-03-15T02:00:00Z"
RUN_TS_B = "2024-03-16T02:00:00Z"
# A handful of quarantined rows on a tiny day is far above the 1 % gate; the gate is not under test here.
CONFIG = "[dq]\nquarantine_rate_critical = 0.9\nquarantine_rate_warning = 0.9\n"
ENV = {"RISKINSIGHT_REVISION": "test-faults", "RISKINSIGHT_PSEUDONYM_KEY": "faults-key"}

PUBLISH_TASK = (
    "import datetime as dt, sys\n"
    "from jobs.nightly import load_candidate, publish_day\n"
    "publish_day(load_candidate(sys.argv[1], dt.date.fromisoformat(sys.argv[2])))\n"
)

LOCK_PROBE = (
    "import datetime as dt, pathlib, sys\nfrom jobs import warehouse as wh\n"
    "with wh.ds_lock(pathlib.Path(sys.argv[1]), dt.date.fromisoformat(sys.argv[2]), wait_s=0):\n    print('got it')\n"
)

PREPARE_POINTS = ["after_staging"] + [f"after_write:{t}" for t in OUTPUT_TABLES]
# publish() links the candidate into a new version, makes sure the fixed links exist, then flips
# `current`: the flip is the one step that publishes.
PUBLISH_POINTS = ["publish:version_written", "publish:links_ready", "publish:flipped"]
CASES = (
    [(p, "cli") for p in PREPARE_POINTS]
    + [(p, "publish_task") for p in PUBLISH_POINTS]
    + [("publish:links_ready", "cli"), ("before_report", "cli")]
)
# Points at or after the flip leave B published; every earlier one must leave A.
AFTER_COMMIT = {"publish:flipped", "before_report"}
# One case per distinct on-disk state a kill can leave; a full rerun costs a gate run each.
RERUN_CASES = [
    ("after_staging", "cli"),
    (f"after_write:{OUTPUT_TABLES[-1]}", "cli"),
    ("publish:version_written", "publish_task"),
    ("publish:links_ready", "cli"),
    ("publish:flipped", "publish_task"),
    ("before_report", "cli"),
]


def _case_id(case: tuple[str, str]) -> str:
    return f"{case[0]}@{case[1]}"


def day_rows(ds: dt.date) -> dict[str, list[dict]]:
    at = lambda h, m=0: ts(h, m, day=ds)
    p = ds.isoformat()
    decisions = [
        decision(decision_id=f"{p}-h{i}", content_id=f"{p}-k{i}", reviewer_id=f"r{i % 3}", creator_id=f"c{i % 4}",
                 enqueued_at=at(2), decided_at=at(2, 5 + i), content_created_at=at(1), handle_time_s=30.0 + i)
        for i in range(12)
    ]
    decisions += [automated(decision_id=f"{p}-a{i}", content_id=f"{p}-ka{i}", creator_id=f"c{i % 5}",
                            enqueued_at=at(3), decided_at=at(3, 1), content_created_at=at(1)) for i in range(8)]
    decisions += [clean(decision_id=f"{p}-n0", content_id=f"{p}-kn0", reviewer_id="r1",
                        enqueued_at=at(4), decided_at=at(4, 2), content_created_at=at(1))]
    return {
        "decisions": decisions,
        "shifts": [shift(reviewer_id=f"r{i}", shift_date=ds) for i in range(3)],
        "qa_audits": [audit(audit_id=f"{p}-q0", decision_id=f"{p}-h0", reviewer_id="r0", audited_at=at(10))],
        "appeals": [],
    }


def changed_rows(ds: dt.date) -> dict[str, list[dict]]:
    """Day A plus a new reviewer, queue, market, repeat offender and a quarantined row: every table moves."""
    rows = day_rows(ds)
    at = lambda h, m=0: ts(h, m, day=ds)
    rows["decisions"] = rows["decisions"] + [
        decision(decision_id=f"b-{i}", content_id=f"b-k{i}", reviewer_id="r9", creator_id="c9", market="DE",
                 queue="live_realtime", policy_category="hate_speech", enqueued_at=at(5), decided_at=at(5, 1),
                 content_created_at=at(4, 50))
        for i in range(4)
    ] + [decision(decision_id="b-bad", content_id="b-kbad", decision_mode="robot", decided_at=at(6))]
    rows["shifts"] = rows["shifts"] + [shift(reviewer_id="r9", shift_date=ds)]
    return rows


# ------------------------------------------------------------------ reading what a reader sees
def table_files(out: Path, table: str) -> dict[str, bytes] | None:
    part = wh.partition_dir(out, table, D)
    if not part.is_dir():
        return None
    return {f.name: f.read_bytes() for f in sorted(part.iterdir())}


def run_file(out: Path, name: str, ds: dt.date = D) -> dict | None:
    return wh.read_json(wh.runs_dir(out, ds) / name)


@dataclass
class Base:
    root: Path
    in_a: Path
    in_b: Path
    config: Path
    out_a: Path  # A published for D-1 and D
    out_gated_b: Path  # A published, plus a candidate of B for D that passed the gate
    a_tables: dict[str, dict[str, bytes]]
    a_manifest: dict
    a_dq: dict
    a_report: bytes
    b_tables: dict[str, dict[str, bytes]]
    b_rows_written: dict[str, int]


def whole(base: Base, out: Path) -> dict[str, str]:
    """Which publication each table and run file of D on disk belongs to: 'A', 'B', or what else."""
    seen = {}
    for t in OUTPUT_TABLES:
        files = table_files(out, t)
        seen[t] = "A" if files == base.a_tables[t] else "B" if files == base.b_tables[t] else f"neither ({files and list(files)})"
    manifest = run_file(out, "manifest.json")
    if manifest == base.a_manifest:
        seen["manifest.json"] = "A"
    elif (manifest or {}).get("published") is True and manifest["inputs"]["decisions"]["path"].startswith(str(base.in_b)) \
            and manifest["rows_written"] == base.b_rows_written:
        seen["manifest.json"] = "B"
    else:
        seen["manifest.json"] = f"neither ({manifest and manifest.get('run_id')})"
    dq = run_file(out, "dq.json")
    seen["dq.json"] = "A" if dq == base.a_dq else "B" if dq and dq != base.a_dq else "missing"
    return seen


def cli(*args: str) -> int:
    return main(["run", *args])


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    with pytest.MonkeyPatch.context() as mp:
        for k, v in ENV.items():
            mp.setenv(k, v)
        root = tmp_path_factory.mktemp("faults")
        in_a, in_b = root / "in_a", root / "in_b"
        for d in (D1, D):
            write_day(in_a, d, day_rows(d))
        shutil.copytree(in_a, in_b)
        write_day(in_b, D, changed_rows(D))
        config = root / "riskinsight.toml"
        config.write_text(CONFIG)
        out_a = root / "out_a"
        assert cli("--input", str(in_a), "--output", str(out_a), "--start", str(D1), "--end", str(D),
                   "--config", str(config), "--run-ts", RUN_TS_A) == 0
        a_tables = {t: table_files(out_a, t) for t in OUTPUT_TABLES}

        from jobs.nightly import gate_day, prepare_day

        out_gated_b = root / "out_gated_b"
        shutil.copytree(out_a, out_gated_b, symlinks=True)
        cfg = load_config(config)
        candidate = prepare_day(in_b, out_gated_b, D, config=cfg,
                                run_started_at=dt.datetime(2024, 3, 16, 2, tzinfo=dt.UTC))
        gate_day(candidate, cfg)
        b_tables = {t: {f.name: f.read_bytes() for f in sorted(candidate.table_dir(t).iterdir())} for t in OUTPUT_TABLES}
        for t in OUTPUT_TABLES:
            assert b_tables[t] != a_tables[t], f"set-up: input B must change {t}"
        return Base(
            root=root, in_a=in_a, in_b=in_b, config=config, out_a=out_a, out_gated_b=out_gated_b,
            a_tables=a_tables, a_manifest=run_file(out_a, "manifest.json"), a_dq=run_file(out_a, "dq.json"),
            a_report=(out_a / "reports" / f"{D}.html").read_bytes(),
            b_tables=b_tables, b_rows_written=candidate.manifest()["rows_written"],
        )


@dataclass
class Killed:
    point: str
    how: str
    out: Path
    pid: int
    reader_view: dict[str, str]  # whole(), taken right after the kill, before anything else touches out
    unreadable: list[str]
    lock_text: str


def kill_run(base: Base, point: str, how: str, out: Path) -> Killed:
    if how == "publish_task":
        shutil.copytree(base.out_gated_b, out, symlinks=True)
        cmd = [sys.executable, "-c", PUBLISH_TASK, str(out), D.isoformat()]
    else:
        shutil.copytree(base.out_a, out, symlinks=True)
        cmd = [RISKINSIGHT, "run", "--input", str(base.in_b), "--output", str(out), "--ds", str(D),
               "--config", str(base.config), "--run-ts", RUN_TS_B]
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **ENV, faults.ENV: point},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=300)
    # -9 and nothing else: the point was reached (a misspelt point would let the run finish with 0).
    assert proc.returncode == -signal.SIGKILL, f"{point}: rc={proc.returncode}\n{err[-3000:]}"
    unreadable = []
    for t in OUTPUT_TABLES:
        try:
            pl.read_parquet(wh.partition_dir(out, t, D) / "*.parquet")
        except Exception as exc:  # noqa: BLE001 - any failure to read is the finding
            unreadable.append(f"{t}: {exc}")
    lock = out / "_locks" / f"ds={D}.lock"
    return Killed(point, how, out, proc.pid, whole(base, out), unreadable, lock.read_text() if lock.exists() else "")


@pytest.fixture(scope="module")
def killed(request: pytest.FixtureRequest, base: Base, tmp_path_factory: pytest.TempPathFactory) -> Killed:
    """One kill per case, shared by the tests of that case: the reader's view is recorded at once,
    so the tests that go on to recover and rerun in place do not depend on their order."""
    point, how = request.param
    return kill_run(base, point, how, tmp_path_factory.mktemp("killed") / "out")


def _expected(point: str) -> str:
    return "B" if point in AFTER_COMMIT else "A"


# ------------------------------------------------------------------ the fault matrix
@pytest.mark.parametrize("killed", CASES, indirect=True, ids=_case_id)
def test_reader_sees_one_whole_publication_right_after_the_kill(base: Base, killed: Killed) -> None:
    """DESIGN §6: readers see the old partitions or the new ones, never a mix, at any moment,
    including the moment between a crash and the next run of that ds."""
    assert not killed.unreadable, killed.unreadable
    seen = killed.reader_view
    assert set(seen.values()) == {_expected(killed.point)}, f"killed at {killed.point}: a reader sees {seen}"


@pytest.mark.parametrize("killed", CASES, indirect=True, ids=_case_id)
def test_next_run_takes_the_lock_at_once_and_finds_a_whole_publication(base: Base, killed: Killed) -> None:
    out = killed.out
    # The killed run's lock file stays behind; its flock died with it, so wait_s=0 must succeed.
    assert (out / "_locks" / f"ds={D}.lock").exists()
    with wh.ds_lock(out, D, wait_s=0):  # what every next run does first: recover() under the lock
        pass
    seen = whole(base, out)
    assert set(seen.values()) == {_expected(killed.point)}, f"after recovery from {killed.point}: {seen}"
    assert wh.recover(out, D) == []  # the lock's recovery left no unreachable version behind
    assert run_file(out, "manifest.json", D1) == run_file(base.out_a, "manifest.json", D1)  # other days untouched


@pytest.mark.parametrize("killed", RERUN_CASES, indirect=True, ids=_case_id)
def test_plain_rerun_after_the_kill_publishes_the_new_data(base: Base, killed: Killed) -> None:
    out = killed.out
    with pytest.MonkeyPatch.context() as mp:
        for k, v in ENV.items():
            mp.setenv(k, v)
        assert cli("--input", str(base.in_b), "--output", str(out), "--ds", str(D),
                   "--config", str(base.config), "--run-ts", RUN_TS_B) == 0
    seen = whole(base, out)
    assert set(seen.values()) == {"B"}, seen
    manifest = run_file(out, "manifest.json")
    assert manifest["run_started_at"] == RUN_TS_B and manifest["published"] is True
    assert not wh.candidate_dir(out, D).exists()
    assert wh.recover(out, D) == []
    report = (out / "reports" / f"{D}.html").read_text(encoding="utf-8")
    assert report.encode() != base.a_report and RUN_TS_B in report
    assert f'href="{D}.html"' in (out / "reports" / "index.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("point", PUBLISH_POINTS)
def test_the_publish_task_retried_after_a_kill_publishes_the_candidate(base: Base, point: str, tmp_path: Path) -> None:
    """What Airflow does when the publish task dies: it runs the same task again, on the same
    candidate. publish() once moved the candidate into the new version, so a retry after a kill
    found no candidate to load (and, before the flip, the next lock's recovery deleted the moved
    tables): the day had to be prepared again. The candidate now stays whole until after the flip.
    A kill of its own: the shared `killed` cases are rerun in place by other tests."""
    out = kill_run(base, point, "publish_task", tmp_path / "out").out
    a_version = wh.current_version(base.out_gated_b, D)
    run_id = json.loads((wh.candidate_dir(base.out_gated_b, D) / "manifest.json").read_text())["run_id"]
    if point in AFTER_COMMIT:  # the killed run published: its attempt is on record
        assert json.loads((wh.attempts_dir(out, D) / run_id / "manifest.json").read_text())["published"] is True
    proc = subprocess.run([sys.executable, "-c", PUBLISH_TASK, str(out), D.isoformat()], cwd=REPO,
                          env={**os.environ, **ENV}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(whole(base, out).values()) == {"B"}, whole(base, out)
    assert not wh.candidate_dir(out, D).exists()
    assert len(wh.recover(out, D)) == 0
    # Kept one round whatever the kill: a retry after the flip does not publish B a second time
    # (which made B `previous` as well and deleted A's publication at once).
    assert os.readlink(wh.versions_dir(out, D) / wh.PREVIOUS) == a_version
    assert sorted(p.name for p in wh.versions_dir(out, D).iterdir() if not p.is_symlink()) == sorted(
        [a_version, wh.current_version(out, D)])


def test_a_publish_retried_after_it_completed_returns_the_publication(base: Base, tmp_path: Path) -> None:
    """An Airflow publish task whose worker died after publish_day returned is run again: the
    candidate is gone, and the publication in place is the one it was to make."""
    from jobs.nightly import load_candidate, publish_day, published_run

    out = tmp_path / "out"
    shutil.copytree(base.out_gated_b, out, symlinks=True)
    candidate = load_candidate(out, D)
    run_id = candidate.manifest()["run_id"]
    manifest = publish_day(candidate)
    assert published_run(out, D, run_id) == manifest == run_file(out, "manifest.json")
    assert published_run(out, D, "some-other-run") is None and published_run(out, D1, run_id) is None


@pytest.mark.parametrize("killed", [("after_staging", "cli")], indirect=True, ids=_case_id)
def test_a_lock_left_by_a_killed_run_never_blocks(killed: Killed) -> None:
    out = killed.out
    assert killed.lock_text.startswith(f"pid {killed.pid} ")  # the dead holder was still named in the file
    with pytest.raises(ProcessLookupError):
        os.kill(killed.pid, 0)
    # Another process (not this one, whose lock table might hide a stale lock) takes it without waiting.
    probe = subprocess.run(
        [sys.executable, "-c", LOCK_PROBE, str(out), D.isoformat()],
        cwd=REPO, check=False, capture_output=True, text=True, timeout=120,
    )
    assert probe.returncode == 0 and probe.stdout.strip() == "got it", probe.stderr


def test_recovery_still_works_after_the_output_directory_moved(base: Base, tmp_path: Path) -> None:
    """An output volume remounted elsewhere (another worker, a restore from backup) must still read
    and recover: every link is relative to the output, never an absolute path."""
    killed_at = kill_run(base, "publish:links_ready", "publish_task", tmp_path / "first_mount")
    assert killed_at.reader_view["queue_daily"] == "A"
    moved = tmp_path / "second_mount"
    killed_at.out.rename(moved)
    with wh.ds_lock(moved, D, wait_s=0):
        pass
    seen = whole(base, moved)
    assert set(seen.values()) == {"A"}, f"after recovery at the new path: {seen}"
    assert not (tmp_path / "first_mount").exists(), "recovery recreated files at the old path"


def test_python_dash_c_entry_point_is_not_silently_skipped(tmp_path: Path) -> None:
    """`python -c "from jobs.cli import main; ..."` must run the job. Importing the DQ gate pulls in
    pyspark.sql.connect, whose check_dependencies() calls sys.exit(0) when __main__ has no __file__
    (as under -c): the process then ends with 0 and nothing published, which a scheduler records as success."""
    proc = subprocess.run(
        [sys.executable, "-c", "import expectations.gate\nprint('still running', flush=True)"],
        cwd=REPO, check=False, capture_output=True, text=True, timeout=300,
    )
    assert "still running" in proc.stdout, f"rc={proc.returncode} stdout={proc.stdout!r} stderr={proc.stderr[-500:]!r}"


# ------------------------------------------------------------------ reruns, lookback, concurrency
def test_rerun_after_success_is_identical_tables_and_report(base: Base, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(base.out_a, out, symlinks=True)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in ENV.items():
            mp.setenv(k, v)
        assert cli("--input", str(base.in_a), "--output", str(out), "--ds", str(D),
                   "--config", str(base.config), "--run-ts", RUN_TS_A) == 0
    assert {t: table_files(out, t) for t in OUTPUT_TABLES} == base.a_tables
    assert (out / "reports" / f"{D}.html").read_bytes() == base.a_report
    assert (out / "reports" / "index.html").read_bytes() == (base.out_a / "reports" / "index.html").read_bytes()


def test_lookback_picks_up_late_rows_of_the_day_before(base: Base, tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(base.in_a, inp)
    shutil.copytree(base.out_a, out, symlinks=True)
    at = lambda h, m=0: ts(h, m, day=D1)
    late = [decision(decision_id=f"late-{i}", content_id=f"late-k{i}", market="FR", policy_category="spam",
                     enqueued_at=at(20), decided_at=at(20, 5), content_created_at=at(19)) for i in range(3)]
    from tests.builders import frame

    # Late logs land as a new file in the already complete partition of D-1.
    frame("decisions", late).write_parquet(wh.partition_dir(inp, "decisions", D1) / "part-00001.parquet")
    before = pl.read_parquet(wh.partition_dir(out, "violation_daily", D1) / "*.parquet")
    assert before.filter(pl.col("market") == "FR").height == 0
    with pytest.MonkeyPatch.context() as mp:
        for k, v in ENV.items():
            mp.setenv(k, v)
        assert cli("--input", str(inp), "--output", str(out), "--ds", str(D), "--lookback", "1",
                   "--config", str(base.config), "--no-report") == 0
    after = pl.read_parquet(wh.partition_dir(out, "violation_daily", D1) / "*.parquet")
    fr = after.filter(pl.col("market") == "FR", pl.col("policy_category") == "ALL")
    assert fr["actioned"].to_list() == [3]
    all_all = lambda df: df.filter(pl.col("market") == "ALL", pl.col("policy_category") == "ALL")["actioned"].item()
    assert all_all(after) == all_all(before) + 3
    assert run_file(out, "manifest.json", D1)["inputs"]["decisions"]["rows"] == \
        run_file(base.out_a, "manifest.json", D1)["inputs"]["decisions"]["rows"] + 3
    # D was rerun after D-1, so its trends already see FR on an observed day (actioned 0 on D).
    trends = pl.read_parquet(wh.partition_dir(out, "violation_trends", D) / "*.parquet")
    assert trends.filter(pl.col("market") == "FR", pl.col("policy_category") == "ALL")["actioned"].to_list() == [0]


def test_two_runs_of_the_same_ds_at_once(base: Base, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A real run holds the lock; a second fails with exit 5 in one line, a third waits and goes after it."""
    out = tmp_path / "out"
    shutil.copytree(base.out_a, out, symlinks=True)
    args = ["run", "--input", str(base.in_b), "--output", str(out), "--ds", str(D), "--config", str(base.config),
            "--run-ts", RUN_TS_B]
    # A script file, not `python -c`: see test_python_dash_c_entry_point_is_not_silently_skipped.
    script = tmp_path / "holder.py"
    script.write_text(
        "import datetime as dt, json, pathlib, sys\nfrom jobs import warehouse as wh\nfrom jobs.cli import main\n"
        "args = json.loads(sys.argv[1])\n"
        "out, ds = pathlib.Path(sys.argv[2]), dt.date.fromisoformat(sys.argv[3])\n"
        "with wh.ds_lock(out, ds):\n"
        "    print('held', flush=True); sys.stdin.readline()\n"
        "    rc = main(args)\n"
        # Read while the lock is still held: once it goes, the waiting run may publish before this
        # process has even exited.
        "    print('manifest', json.dumps(wh.read_json(wh.published_run_file(out, ds, 'manifest.json'))))\n"
        "sys.exit(rc)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, str(script), json.dumps(args), str(out), D.isoformat()],
        cwd=REPO, env={**os.environ, **ENV}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    waiter_rc: list[int] = []
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert main(args) == 5
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("riskinsight: error:") and f"pid {holder.pid}" in err[0], err
        assert "--lock-wait" in err[0]

        waiter = threading.Thread(target=lambda: waiter_rc.append(main([*args, "--lock-wait", "300"])))
        waiter.start()
        time.sleep(1.0)
        assert waiter.is_alive() and not waiter_rc, "the waiting run went ahead while the lock was held"
        holder.stdin.write("go\n")
        holder.stdin.flush()
        holder_out, holder_err = holder.communicate(timeout=300)
        assert holder.returncode == 0, holder_err[-3000:]
        holder_manifest = json.loads(holder_out.splitlines()[-1].removeprefix("manifest "))
        waiter.join(300)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert waiter_rc == [0]
    # Both published B in turn; the last one is the waiter (this process), and nothing is half-done.
    assert set(whole(base, out).values()) == {"B"}
    # A run id is <start>-<pid>, with -2, -3... when an attempt of the ds already holds that id.
    of = lambda pid: re.compile(rf"[0-9TZ]+-{pid}(-[0-9]+)?")  # noqa: E731
    assert of(holder.pid).fullmatch(holder_manifest["run_id"])
    assert of(os.getpid()).fullmatch(run_file(out, "manifest.json")["run_id"])
    attempts = sorted(p.name for p in (wh.runs_dir(out, D) / "attempts").iterdir())
    assert any(of(holder.pid).fullmatch(a) for a in attempts) and any(of(os.getpid()).fullmatch(a) for a in attempts)
    assert not wh.candidate_dir(out, D).exists()
    assert wh.recover(out, D) == []


def test_a_file_written_whole_is_the_old_one_or_the_new_one_and_leaves_no_temporary(tmp_path: Path) -> None:
    """jobs.warehouse.replacing, which every whole-file write goes through (run files, reports, the
    DSA tables and CSV): a write that fails midway keeps the old file and leaves no dot-file."""
    target = tmp_path / "d" / "manifest.json"
    wh.write_json(target, {"run": 1})
    with pytest.raises(RuntimeError), wh.replacing(target) as tmp:
        tmp.write_text('{"run": 2, "trunc')
        raise RuntimeError("disk gone")
    assert wh.read_json(target) == {"run": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ["manifest.json"]
    # A directory where the file belongs: the filesystem's refusal, and again nothing left.
    (tmp_path / "d" / "page.html").mkdir()
    with pytest.raises(IsADirectoryError):
        wh.write_text(tmp_path / "d" / "page.html", "<html>")
    assert sorted(p.name for p in target.parent.iterdir()) == ["manifest.json", "page.html"]
    wh.write_text(target, "line\n")
    assert target.read_bytes() == b"line\n"
