"""A local warehouse under concurrent writers of one process or several: the ds lock between threads,
files written whole by writers that share a pid, the report index rewritten by runs of different
days, and the report stage's time recorded into the run's own publication."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jobs import nightly
from jobs import report as report_mod
from jobs import warehouse as wh
from jobs.config import Config
from jobs.engines.polars_engine import PolarsEngine
from jobs.errors import LockHeld, WarehouseConflict
from tests.conftest import DS, second_while_first_waits
from tests.inputs import write_day
from tests.test_cli_run import clean_day
from transforms.schemas import OUTPUT_TABLES

REPO = Path(__file__).resolve().parent.parent
LOCK_PROBE = (
    "import datetime as dt, pathlib, sys\nfrom jobs import warehouse as wh\nfrom jobs.errors import LockHeld\n"
    "try:\n    with wh.ds_lock(pathlib.Path(sys.argv[1]), dt.date.fromisoformat(sys.argv[2])):\n        print('got it')\n"
    "except LockHeld:\n    print('held')\n"
)


def _hold(out: Path, name: str, seconds: float, inside: list[str], seen: list[list[str]], wait_s: float = 0.0) -> None:
    with wh.ds_lock(out, DS, wait_s=wait_s):
        inside.append(name)
        time.sleep(seconds)
        seen.append(list(inside))
        inside.remove(name)


def test_a_second_thread_waits_for_the_ds_lock_like_another_process(tmp_path: Path) -> None:
    """Re-entry is per thread: it was per process, so a second thread walked in, and when the first
    left it released the flock while the second was still inside, for any process to take."""
    inside: list[str] = []
    seen: list[list[str]] = []
    first = threading.Thread(target=_hold, args=(tmp_path, "first", 0.6, inside, seen))
    first.start()
    while not inside:
        time.sleep(0.01)
    with pytest.raises(LockHeld, match=rf"^ds={DS} of .* is being run by pid {os.getpid()} on .*; retry later or pass --lock-wait"):
        with wh.ds_lock(tmp_path, DS):
            pass
    with pytest.raises(LockHeld, match=r"; still held after --lock-wait 0.05; retry later or wait longer$"):
        with wh.ds_lock(tmp_path, DS, wait_s=0.05):
            pass
    second = threading.Thread(target=_hold, args=(tmp_path, "second", 1.5, inside, seen), kwargs={"wait_s": 30})
    second.start()
    first.join()
    while inside != ["second"]:
        time.sleep(0.01)
    # The first has left; the second holds the lock, so another process still cannot take it.
    probe = subprocess.run([sys.executable, "-c", LOCK_PROBE, str(tmp_path), DS.isoformat()], cwd=REPO,
                           capture_output=True, text=True, timeout=120)
    second.join()
    assert probe.stdout.strip() == "held", probe.stderr[-2000:]
    assert seen == [["first"], ["second"]], "two threads inside one ds lock at once"
    # Released, the lock names nobody: a holder that never writes its name (an outside flock) is
    # not reported as the last run that held it.
    assert (tmp_path / "_locks" / f"ds={DS}.lock").read_text() == ""


def test_the_ds_lock_is_still_reentrant_within_a_thread(tmp_path: Path) -> None:
    with wh.ds_lock(tmp_path, DS), wh.ds_lock(tmp_path, DS, wait_s=0):
        pass
    with wh.ds_lock(tmp_path, DS):  # and released by the outer block
        pass


def test_writers_of_one_file_in_one_process_never_tear_it(tmp_path: Path) -> None:
    """replacing's temporary was named by the pid, which threads share (and containers on a shared
    volume, pid 1 each): two writers wrote into one temporary, and one renamed the other's away."""
    path = tmp_path / "reports" / "index.html"
    errors: list[str] = []
    torn: list[int] = []
    done = threading.Event()

    def writer(ch: str) -> None:
        for _ in range(150):
            try:
                wh.write_text(path, ch * 200_000)
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(f"{type(exc).__name__}: {exc}")

    def reader() -> None:
        while not done.is_set():
            try:
                text = path.read_text()
            except FileNotFoundError:
                continue
            if len(text) != 200_000 or len(set(text)) != 1:
                torn.append(len(text))

    threads = [threading.Thread(target=writer, args=(c,)) for c in "ab"]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watcher.join()
    assert not errors, errors[:3]
    assert not torn, f"{len(torn)} torn reads"
    assert sorted(p.name for p in path.parent.iterdir()) == ["index.html"], "a temporary was left behind"


def test_runs_of_different_days_never_drop_each_others_index_row(tmp_path: Path, monkeypatch) -> None:
    """render_index lists the pages, reads every day, then writes: a run that listed before another
    day's page appeared and wrote after that run's index dropped the day. Under _locks/index.lock
    the second waits and lists both."""
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / f"{DS - dt.timedelta(days=1)}.html").write_text("<html>")
    second_done = threading.Event()
    first_listed = threading.Event()
    real_entry = report_mod._index_entry

    def slow_entry(output_dir: Path, ds: dt.date, *args):
        if threading.current_thread().name == "first":
            first_listed.set()
            second_done.wait(2)  # the second run goes first, unless it waits for the lock
        return real_entry(output_dir, ds, *args)

    monkeypatch.setattr(report_mod, "_index_entry", slow_entry)

    def second_run() -> None:
        (reports / f"{DS}.html").write_text("<html>")  # its day's page, then its index
        report_mod.render_index(tmp_path)
        second_done.set()

    second_while_first_waits(lambda: report_mod.render_index(tmp_path), second_run, first_listed, 30)
    index = (reports / "index.html").read_text(encoding="utf-8")
    assert f'href="{DS - dt.timedelta(days=1)}.html"' in index and f'href="{DS}.html"' in index


def test_the_report_stage_is_timed_into_this_runs_publication_only(tmp_path: Path, monkeypatch) -> None:
    """The report and its stage time came after the ds lock was released, through `current`: another
    run that published meanwhile had this run's report time written into its manifest (a --no-report
    run gained a report stage) and this run's page described that run's tables."""
    write_day(tmp_path / "in", DS, clean_day(DS))
    out, engine, config = tmp_path / "out", PolarsEngine(), Config()
    nightly.run_day(tmp_path / "in", out, DS, engine, config, report=False)
    other: list[threading.Thread] = []
    other_published = threading.Event()

    def another_run_publishes() -> None:
        with wh.ds_lock(out, DS, wait_s=60):
            current = wh.versions_dir(out, DS) / wh.CURRENT
            manifest = tmp_path / "other-manifest.json"
            wh.write_json(manifest, {"run_id": "other", "published": True, "stage_seconds": {"publish": 0.1}})
            wh.publish(out, DS, "other-run", {t: current / t for t in OUTPUT_TABLES},
                       {"manifest.json": manifest, "dq.json": current / "_runs" / "dq.json"})
        other_published.set()

    real_render = report_mod.render_day

    def render_while_another_run_publishes(*args, **kwargs):
        other.append(threading.Thread(target=another_run_publishes))
        other[0].start()
        other_published.wait(2)  # at once, where this run no longer holds the lock
        return real_render(*args, **kwargs)

    monkeypatch.setattr(report_mod, "render_day", render_while_another_run_publishes)
    result = nightly.run_day(tmp_path / "in", out, DS, engine, config, run_started_at=dt.datetime(2024, 3, 16, 2, tzinfo=dt.UTC))
    other[0].join(60)
    versions = wh.versions_dir(out, DS)
    assert wh.current_version(out, DS) == "other-run"
    assert "report" not in wh.read_json(versions / "other-run" / "_runs" / "manifest.json")["stage_seconds"]
    ours = json.loads((versions / wh.PREVIOUS / "_runs" / "manifest.json").read_text())
    assert ours["run_started_at"] == "2024-03-16T02:00:00Z" and "report" in ours["stage_seconds"]
    assert "2024-03-16T02:00:00Z" in Path(result.report).read_text(encoding="utf-8")  # its page is of its own run


def test_publish_puts_every_file_and_link_on_disk_before_the_flip(tmp_path: Path, monkeypatch) -> None:
    """Tables are written without fsync; a flip that reached the disk before their data would publish
    empty files after a power cut. Every fsync is recorded by the path it was made through."""
    out, cand = tmp_path / "wh", tmp_path / "cand"
    tables = {}
    for table in ("reviewer_daily", "quarantine"):
        (cand / table).mkdir(parents=True)
        (cand / table / "part-0.parquet").write_bytes(b"not flushed by its writer")
        tables[table] = cand / table
    (cand / "manifest.json").write_text("{}")
    events: list[tuple[str, str]] = []
    real_fsync, real_link = os.fsync, wh._relative_link
    monkeypatch.setattr(wh.os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))), real_fsync(fd))[1])
    monkeypatch.setattr(wh, "_relative_link", lambda path, target: (events.append(("link", str(path))), real_link(path, target))[1])

    wh.publish(out, DS, "v1", tables, {"manifest.json": cand / "manifest.json"})

    versions = wh.versions_dir(out, DS)
    flip = events.index(("link", str(versions / wh.CURRENT)))
    synced_before_flip = {path for kind, path in events[:flip] if kind == "fsync"}
    version = (versions / "v1").resolve()
    on_disk = {str(p) for p in version.rglob("*")} | {str(version)}
    assert on_disk - synced_before_flip == set()
    link_dirs = {str(wh.partition_dir(out, t, DS).parent.resolve()) for t in tables} | {str(wh.runs_dir(out, DS).resolve())}
    assert link_dirs | {str(versions.parent.resolve())} <= synced_before_flip
    assert ("fsync", str(versions.resolve())) in events[flip:]


@pytest.mark.parametrize("content", [b'{"run_id": "r1", "dq": {', b"\xff\xfe not utf-8", b""])
def test_read_json_names_a_corrupt_file_in_one_line(tmp_path, content) -> None:
    path = tmp_path / "manifest.json"
    path.write_bytes(content)
    with pytest.raises(WarehouseConflict) as exc:
        wh.read_json(path)
    assert str(exc.value).startswith(f"warehouse file {path} is not valid JSON (") and "\n" not in str(exc.value)
    assert wh.read_json(tmp_path / "absent.json") is None


def test_a_write_that_fails_names_the_file_it_was_writing(tmp_path, monkeypatch) -> None:
    """A full disk fails the write or the fsync of the temporary, and the OSError it raises names no
    file: the run ended with `error: [Errno 28] No space left on device` and nothing to say where."""
    target = tmp_path / "reports" / "2024-03-15.html"

    def full(fd: int) -> None:
        raise OSError(28, os.strerror(28))

    monkeypatch.setattr(wh.os, "fsync", full)
    with pytest.raises(OSError) as exc:
        wh.write_text(target, "<html>")
    assert exc.value.errno == 28 and str(target) in str(exc.value)
    assert not target.parent.exists() or list(target.parent.iterdir()) == []


def test_a_directory_that_refuses_the_write_is_named_with_the_file_not_its_temporary(tmp_path, monkeypatch) -> None:
    """A reports/ the job may not write (EACCES) failed creating the temporary, and the run's line
    named `.2024-03-15.html.tmp-<16 hex>`, a file that never existed, instead of the page."""
    target = tmp_path / "reports" / "2024-03-15.html"

    def refused(name, flags, mode=0o777):
        raise PermissionError(13, os.strerror(13), str(name))

    monkeypatch.setattr(wh.os, "open", refused)
    with pytest.raises(PermissionError) as exc:
        wh.write_text(target, "<html>")
    assert exc.value.filename == str(target) and ".tmp-" not in str(exc.value)


def test_the_next_run_of_a_day_removes_the_temporaries_a_killed_run_left(tmp_path) -> None:
    """A run SIGKILLed while it wrote a file whole (its page, a run file, the publication's manifest
    with its report time) or swapped a link leaves the dot-named temporary behind: nothing removed
    it, ever (a page's is megabytes). The next run of the day does, under the lock every writer of
    those files holds; another day's files are left to that day's runs."""
    other = DS - dt.timedelta(days=1)
    for d in (other, DS):
        write_day(tmp_path / "in", d, clean_day(d))
    out = tmp_path / "out"
    for d in (other, DS):
        nightly.run_days(tmp_path / "in", out, [d])
    run_id = wh.read_json(wh.runs_dir(out, DS) / "manifest.json")["run_id"]
    left = [
        wh._new_temporary(report_mod.report_path(out, DS)),
        wh._new_temporary(out / report_mod.REPORTS_DIR / "index.html"),
        wh._new_temporary(wh.runs_dir(out, DS) / "dq.json"),
        wh._new_temporary(wh.attempts_dir(out, DS) / run_id / "manifest.json"),
        wh._new_temporary(wh.published_run_file(out, DS, "manifest.json")),
    ]
    for link in (wh.partition_dir(out, "queue_daily", DS), wh.versions_dir(out, DS) / wh.CURRENT):
        dangling = link.with_name(f".{link.name}.link-{2**22 + 1}")
        os.symlink("nowhere", dangling)
        left.append(dangling)
    kept = wh._new_temporary(report_mod.report_path(out, other))

    nightly.run_days(tmp_path / "in", out, [DS])
    assert [p for p in left if os.path.lexists(p)] == []
    assert kept.exists()
