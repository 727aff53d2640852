"""The warehouse behind a Hadoop filesystem URI (jobs.remote_warehouse): lease, swap, recovery, mirror.

Everything runs through the real HadoopFS of a local Spark driver on file:// URIs (Hadoop's
LocalFileSystem), the code path hdfs:// takes. Full nightly runs into a URI warehouse are in
test_spark_parity (the `spark_uri` run) and test_spark_cluster.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from jobs import faults
from jobs import warehouse as wh
from jobs.errors import LockHeld
from jobs.remote_warehouse import MIRRORED_TABLES, RUNS, RemoteWarehouse
from transforms.schemas import OUTPUT_TABLES

pytestmark = pytest.mark.spark

DS = dt.date(2024, 3, 14)


@pytest.fixture
def fs(spark_session):
    from jobs.engines.hadoop_fs import HadoopFS

    return HadoopFS(spark_session)


def _publish_locally(mirror: Path, ds: dt.date, label: str, *, run_id: str) -> str:
    """A publication of ds in a local warehouse: every table holds one row saying which run wrote it."""
    cand = mirror / "_cand" / label
    tables = {}
    for table in OUTPUT_TABLES:
        (cand / table).mkdir(parents=True)
        pl.DataFrame({"written_by": [label]}).write_parquet(cand / table / "part-00000.parquet")
        tables[table] = cand / table
    manifest = {"ds": ds.isoformat(), "run_id": run_id, "published": True, "label": label}
    wh.write_json(cand / "manifest.json", manifest)
    wh.write_json(cand / "dq.json", {"label": label})
    wh.write_json(wh.runs_dir(mirror, ds) / "attempts" / run_id / "manifest.json", manifest)
    version = f"{run_id}-0000000{len(label)}"
    with wh.ds_lock(mirror, ds):
        wh.publish(mirror, ds, version, tables, {"manifest.json": cand / "manifest.json", "dq.json": cand / "dq.json"})
    return version


def _pushed(fs, tmp_path: Path, label: str) -> tuple[Path, Path, RemoteWarehouse]:
    """A mirror and a remote warehouse holding one publication of DS written by `label` (run r1)."""
    mirror, root = tmp_path / "mirror", tmp_path / "remote"
    remote = RemoteWarehouse(fs, root.as_uri())
    _publish_locally(mirror, DS, label, run_id="r1")
    with remote.lease(DS):
        remote.publish(mirror, DS, tables=True)
    return mirror, root, remote


def _written_by(root: Path, ds: dt.date, tables: tuple[str, ...] = OUTPUT_TABLES) -> set[str]:
    return {pl.read_parquet(wh.partition_dir(root, t, ds) / "*.parquet")["written_by"][0] for t in tables}


def test_publish_swaps_every_part_and_keeps_the_previous_publication(fs, tmp_path: Path) -> None:
    mirror, root = tmp_path / "mirror", tmp_path / "remote"
    remote = RemoteWarehouse(fs, root.as_uri())
    first = _publish_locally(mirror, DS, "first", run_id="r1")
    with remote.lease(DS):
        assert remote.publish(mirror, DS, tables=True) == first
    assert _written_by(root, DS) == {"first"}
    second = _publish_locally(mirror, DS, "second", run_id="r2")
    with remote.lease(DS):
        remote.publish(mirror, DS, tables=True)
    versions = root / "_versions" / f"ds={DS}"
    assert _written_by(root, DS) == {"second"}
    assert (versions / "CURRENT").read_text() == second and (versions / "PREVIOUS").read_text() == first
    # The previous publication is whole under its id: nothing published is lost by a rerun.
    assert {pl.read_parquet(versions / first / t / "*.parquet")["written_by"][0] for t in OUTPUT_TABLES} == {"first"}
    assert json.loads((root / RUNS / f"ds={DS}" / "manifest.json").read_text())["label"] == "second"
    assert sorted(p.name for p in (root / RUNS / f"ds={DS}" / "attempts").iterdir()) == ["r1", "r2"]
    assert remote.published_partitions("violation_daily", DS, DS) == {DS: f"{root.as_uri()}/violation_daily/ds={DS}"}
    # A third publication drops the first: one previous version is kept, not every one.
    _publish_locally(mirror, DS, "third", run_id="r3")
    with remote.lease(DS):
        remote.publish(mirror, DS, tables=True)
    assert not (versions / first).exists() and (versions / "PREVIOUS").read_text() == second


def test_a_swap_killed_halfway_is_rolled_forward_by_the_next_lease(fs, tmp_path: Path, monkeypatch) -> None:
    mirror, root, remote = _pushed(fs, tmp_path, "old")
    new = _publish_locally(mirror, DS, "new", run_id="r2")

    class Killed(BaseException):
        pass

    def die(name: str) -> None:
        if name == "remote:swapping":
            raise Killed  # what SIGKILL leaves: no finally block of the swap runs further
    monkeypatch.setattr(faults, "point", die)
    with pytest.raises(Killed), remote.lease(DS):
        remote.publish(mirror, DS, tables=True)
    assert _written_by(root, DS) == {"old", "new"}, "the kill left a half swap (this is what recovery is for)"
    assert (root / "_versions" / f"ds={DS}" / "_PUBLISHING").exists()
    monkeypatch.undo()
    # A later day's run settles the days it reads before reading them.
    RemoteWarehouse(fs, root.as_uri()).settle([DS - dt.timedelta(days=1), DS])
    assert _written_by(root, DS) == {"new"}
    assert (root / "_versions" / f"ds={DS}" / "CURRENT").read_text() == new
    assert not (root / "_versions" / f"ds={DS}" / "_PUBLISHING").exists()


def test_a_failed_gate_swaps_the_run_files_only_and_the_mirror_finds_the_published_manifest(fs, tmp_path: Path) -> None:
    mirror, root, remote = _pushed(fs, tmp_path, "good")
    version = wh.current_version(mirror, DS)
    # What gate_day records for a failed attempt: the ds's run files now describe the failure.
    failed = {"ds": DS.isoformat(), "run_id": "r2", "published": False}
    wh.write_json(wh.runs_dir(mirror, DS) / "manifest.json", failed)
    wh.write_json(wh.runs_dir(mirror, DS) / "attempts" / "r2" / "manifest.json", failed)
    with remote.lease(DS):
        remote.publish(mirror, DS, tables=False)
    assert _written_by(root, DS) == {"good"}
    assert (root / "_versions" / f"ds={DS}" / "CURRENT").read_text() == version
    assert json.loads((root / RUNS / f"ds={DS}" / "manifest.json").read_text())["published"] is False
    # A later run mirrors the day with the manifest of what is published, not of the failed attempt.
    fresh = tmp_path / "fresh"
    RemoteWarehouse(fs, root.as_uri()).mirror_days(fresh, [DS, DS - dt.timedelta(days=1)])
    assert wh.current_version(fresh, DS) == version
    assert _written_by(fresh, DS, MIRRORED_TABLES) == {"good"}
    # Never read from a mirror (history reads it remotely): not copied.
    assert not wh.partition_dir(fresh, "creator_category_daily", DS).exists()
    assert wh.read_json(wh.published_run_file(fresh, DS, "manifest.json"))["label"] == "good"
    # ... while `_runs/ds=D/` shows the failure there as on the remote (the report index reads it).
    assert wh.read_json(wh.runs_dir(fresh, DS) / "manifest.json")["published"] is False
    assert wh.current_version(fresh, DS - dt.timedelta(days=1)) is None


def test_the_lease_excludes_waits_and_takes_over_a_dead_holder(fs, tmp_path: Path) -> None:
    root = (tmp_path / "remote").as_uri()
    lock = tmp_path / "remote" / "_locks" / f"ds={DS}.lock"
    first, second = RemoteWarehouse(fs, root), RemoteWarehouse(fs, root)
    with first.lease(DS):
        with pytest.raises(LockHeld, match=rf"^ds={DS} of {root} is being run by pid {os.getpid()} on .*--lock-wait"):
            with second.lease(DS):
                pass
        assert second.published_days("violation_daily") == []
    assert not lock.exists()

    # A waiting run gets the lease once the holder lets go.
    entered = threading.Event()
    holder = threading.Thread(target=lambda: _hold(first, entered, 1.0))
    holder.start()
    entered.wait(30)
    started = time.monotonic()
    with second.lease(DS, wait_s=60):
        waited = time.monotonic() - started
    holder.join()
    assert waited > 0.3

    # A holder that died stops renewing: after lease_s its lock is stale and taken over.
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(json.dumps({"holder": "pid 1 on a-dead-host", "token": "x"}))
    quick = RemoteWarehouse(fs, root, lease_s=5)
    with pytest.raises(LockHeld, match="a-dead-host"):
        with quick.lease(DS):
            pass
    os.utime(lock, (time.time() - 60, time.time() - 60))
    with quick.lease(DS):
        assert "a-dead-host" not in lock.read_text()
    assert not lock.exists()


def _hold(warehouse: RemoteWarehouse, entered: threading.Event, seconds: float) -> None:
    with warehouse.lease(DS):
        entered.set()
        time.sleep(seconds)


def test_the_holder_renews_its_lease_while_it_runs(fs, tmp_path: Path) -> None:
    root = (tmp_path / "remote").as_uri()
    lock = tmp_path / "remote" / "_locks" / f"ds={DS}.lock"
    renewing = RemoteWarehouse(fs, root, lease_s=1.5)
    with renewing.lease(DS):
        body = json.loads(lock.read_text())
        lock.write_text(json.dumps({**body, "renewed_at": time.time() - 60}))
        time.sleep(1.2)  # more than lease_s / 3: the renewal thread has rewritten it since
        assert time.time() - json.loads(lock.read_text())["renewed_at"] < 1.5
        with pytest.raises(LockHeld):
            with RemoteWarehouse(fs, root, lease_s=1.5).lease(DS):
                pass


def test_a_run_that_lost_its_lease_publishes_nothing(fs, tmp_path: Path) -> None:
    mirror, root, remote = _pushed(fs, tmp_path, "first")
    _publish_locally(mirror, DS, "second", run_id="r2")
    lock = root / "_locks" / f"ds={DS}.lock"
    with pytest.raises(LockHeld, match=rf"^ds={DS}: this run lost its lease"), remote.lease(DS):
        # It stalled past its lease and another run took the ds over.
        lock.write_text(json.dumps({"holder": "pid 2 on elsewhere", "token": "theirs", "renewed_at": time.time()}))
        remote.publish(mirror, DS, tables=True)
    assert _written_by(root, DS) == {"first"}
    assert json.loads(lock.read_text())["token"] == "theirs", "the other run's lock is left alone"
    with pytest.raises(RuntimeError, match="needs its lease"):
        remote.publish(mirror, DS, tables=True)


def test_creating_a_lock_on_a_local_disk_is_exclusive_under_a_race(fs, tmp_path: Path) -> None:
    uri = (tmp_path / "locks" / "x.lock").as_uri()
    start = threading.Barrier(8)
    won: list[bool] = []

    def contend(i: int) -> None:
        start.wait()
        won.append(fs.create_new(uri, f"{i}".encode()))

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == [False] * 7 + [True]


def test_a_warehouse_the_filesystem_refuses_is_one_line_not_a_traceback(spark_session, tmp_path: Path, capsys) -> None:
    from jobs.cli import main
    from tests.inputs import write_day

    write_day(tmp_path, DS, {})  # the input is whole: the warehouse is what fails
    code = main(["run", "--engine", "spark", "--input", str(tmp_path), "--output", "nosuchfs://nn/warehouse", "--ds", str(DS)])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith(f"riskinsight: error: ds={DS}: warehouse nosuchfs://nn/warehouse: ") and "nosuchfs" in err.split(": ", 3)[-1]
    assert "\n" not in err and "Traceback" not in err


def test_an_input_the_filesystem_refuses_fails_each_day_in_one_line(spark_session, tmp_path: Path, capsys) -> None:
    """Checked before the day's lock, a Hadoop refusal of the input (here an unknown scheme) used to
    escape as a JVM traceback and stop the range; it is each day's one-line input error (exit 4)."""
    from jobs.cli import main

    code = main(["run", "--engine", "spark", "--input", "nosuchfs://nn/in", "--output", str(tmp_path / "out"),
                 "--start", str(DS - dt.timedelta(days=1)), "--end", str(DS), "--no-report"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 4
    assert err[-1].startswith(f"riskinsight: error: input decisions ds={DS - dt.timedelta(days=1)}: nosuchfs://nn/in: ")
    assert "nosuchfs" in err[-1].split(": ", 4)[-1] and err[-1].endswith(f"(also failed: {DS})")
    assert not any("Traceback" in line or line.startswith("\tat ") for line in err)
    assert not (tmp_path / "out").exists()


def test_the_mirror_window_covers_history_report_and_the_trailing_volumes() -> None:
    from jobs.config import Config
    from jobs.remote_run import mirror_window

    params = Config().params(DS)
    gaps = [DS - dt.timedelta(days=d) for d in (90, 80, 70, 60, 50, 45, 40, 2)] + [DS, DS + dt.timedelta(days=1)]
    window = mirror_window(DS, params, gaps)
    assert DS not in window and max(window) == DS - dt.timedelta(days=1)
    # Every day the trends baseline, the offenders window and the report's 28- and 30-day views read.
    assert min(d for d in window if d > DS - dt.timedelta(days=31)) == DS - dt.timedelta(days=30)
    # The DQ volume check compares with the last 7 *published* days, however far back they are.
    assert {DS - dt.timedelta(days=d) for d in (80, 70, 60, 50, 45, 40)} <= set(window)
    assert DS - dt.timedelta(days=90) not in window


def test_forget_drops_a_day_from_the_mirror_so_it_is_mirrored_again(fs, tmp_path: Path) -> None:
    mirror, root, remote = _pushed(fs, tmp_path, "remote")
    _publish_locally(mirror, DS, "never-pushed", run_id="r2")
    remote.forget(mirror, DS)
    assert wh.current_version(mirror, DS) is None and not wh.partition_dir(mirror, "violation_daily", DS).exists()
    remote.mirror_days(mirror, [DS])
    assert _written_by(mirror, DS, MIRRORED_TABLES) == {"remote"}


def test_the_index_is_rewritten_from_what_the_remote_holds_of_every_listed_day(fs, tmp_path: Path) -> None:
    """put_index through HadoopFS: each day with a page gets its index tables and run files in the
    index copy (pulled again once its publication changed), and the index lease is let go."""
    from jobs.report import INDEX_TABLES

    mirror, root, remote = _pushed(fs, tmp_path, "first")
    (root / "reports").mkdir()
    (root / "reports" / f"{DS}.html").write_text("<html>")
    index_dir = tmp_path / "index"
    remote.put_index(index_dir)
    assert f'href="{DS}.html"' in (root / "reports" / "index.html").read_text()
    assert {t for t in OUTPUT_TABLES if wh.partition_dir(index_dir, t, DS).exists()} == set(INDEX_TABLES)
    assert wh.read_json(wh.published_run_file(index_dir, DS, "manifest.json"))["label"] == "first"
    _publish_locally(mirror, DS, "second", run_id="r2")
    with remote.lease(DS):
        remote.publish(mirror, DS, tables=True)
    remote.put_index(index_dir)
    assert wh.read_json(wh.published_run_file(index_dir, DS, "manifest.json"))["label"] == "second"
    assert _written_by(index_dir, DS, INDEX_TABLES) == {"second"}
    assert not (root / "_locks" / "index.lock").exists()
