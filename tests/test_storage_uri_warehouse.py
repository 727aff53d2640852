"""A warehouse behind a filesystem URI (jobs.remote_run, jobs.remote_warehouse) keeps the local
warehouse's guarantees: the day's page after a failed rerun, the index's rows of days a run does not
touch, one writer of the index at a time, and a lease its holder's own renewal cannot take away.

Without a JVM: the remote is driven through `LocalFS`, the RemoteFS protocol over plain local paths
(HadoopFS itself is exercised in test_remote_warehouse and test_spark_parity), with the Polars
engine, so each run takes a fraction of a second. Each test compares with a local warehouse, or
drives the race it is about.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jobs import nightly
from jobs import remote_warehouse
from jobs import report as report_mod
from jobs.config import Config
from jobs.engines.polars_engine import PolarsEngine
from jobs.errors import DQGateFailed, LockHeld
from jobs.remote_run import RemoteRun
from jobs.remote_warehouse import RemoteWarehouse
from tests.builders import decision
from tests.conftest import DS, second_while_first_waits
from tests.inputs import write_day
from tests.test_cli_run import _index_row, _page, _run_facts, clean_day
from transforms.schemas import OUTPUT_TABLES

DAY = dt.timedelta(days=1)
RUN_TS = [dt.datetime(2024, 3, 20 + i, 2, tzinfo=dt.UTC) for i in range(6)]


class LocalFS:
    """The RemoteFS protocol over local paths. Like Hadoop's: rename refuses an existing target,
    write_bytes truncates and then writes (not atomic), create_new is exclusive."""

    def __init__(self) -> None:
        self.refused: list[str] = []  # every create_new that found its file there

    def exists(self, uri: str) -> bool:
        return os.path.lexists(uri)

    def is_dir(self, uri: str) -> bool:
        return os.path.isdir(uri)

    def is_file(self, uri: str) -> bool:
        return os.path.isfile(uri)

    def list_dir(self, uri: str) -> list[tuple[str, bool]]:
        try:
            return sorted((n, os.path.isdir(os.path.join(uri, n))) for n in os.listdir(uri))
        except FileNotFoundError:
            return []

    def rename(self, src: str, dst: str) -> None:
        if os.path.lexists(dst):
            raise FileExistsError(dst)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.rename(src, dst)

    def delete(self, uri: str) -> None:
        if os.path.isdir(uri) and not os.path.islink(uri):
            shutil.rmtree(uri)
        elif os.path.lexists(uri):
            os.unlink(uri)

    def create_new(self, uri: str, data: bytes) -> bool:
        os.makedirs(os.path.dirname(uri), exist_ok=True)
        try:
            fd = os.open(uri, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            self.refused.append(uri)
            return False
        os.write(fd, data)
        os.close(fd)
        return True

    def write_bytes(self, uri: str, data: bytes) -> None:
        os.makedirs(os.path.dirname(uri), exist_ok=True)
        Path(uri).write_bytes(data)

    def modified_at(self, uri: str) -> float | None:
        try:
            return os.stat(uri).st_mtime
        except FileNotFoundError:
            return None

    def read_bytes(self, uri: str) -> bytes | None:
        try:
            return Path(uri).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, local: Path, uri: str) -> None:
        if os.path.lexists(uri):
            raise FileExistsError(uri)
        os.makedirs(os.path.dirname(uri), exist_ok=True)
        (shutil.copytree if Path(local).is_dir() else shutil.copy2)(local, uri)

    def get(self, uri: str, local: Path) -> None:
        Path(local).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if os.path.isdir(uri) else shutil.copy2)(uri, local)


class UriEngine(PolarsEngine):
    """Polars, with the filesystem RemoteRun writes a URI warehouse through (Spark's HadoopFS in production)."""

    def __init__(self, fs: LocalFS) -> None:
        super().__init__()
        self.fs = fs


def _local(uri: str) -> str:
    return uri.removeprefix("file://")


class FileUriFS(LocalFS):
    """LocalFS for `file://` URIs: a warehouse given as a URI (`run --output file:///…`), which takes
    the URI path through the CLI and nightly.run_days."""

    def exists(self, uri: str) -> bool:
        return super().exists(_local(uri))

    def is_dir(self, uri: str) -> bool:
        return super().is_dir(_local(uri))

    def is_file(self, uri: str) -> bool:
        return super().is_file(_local(uri))

    def list_dir(self, uri: str) -> list[tuple[str, bool]]:
        return super().list_dir(_local(uri))

    def rename(self, src: str, dst: str) -> None:
        super().rename(_local(src), _local(dst))

    def delete(self, uri: str) -> None:
        super().delete(_local(uri))

    def create_new(self, uri: str, data: bytes) -> bool:
        return super().create_new(_local(uri), data)

    def write_bytes(self, uri: str, data: bytes) -> None:
        super().write_bytes(_local(uri), data)

    def modified_at(self, uri: str) -> float | None:
        return super().modified_at(_local(uri))

    def read_bytes(self, uri: str) -> bytes | None:
        return super().read_bytes(_local(uri))

    def put(self, local: Path, uri: str) -> None:
        super().put(local, _local(uri))

    def get(self, uri: str, local: Path) -> None:
        super().get(_local(uri), local)


class FileUriEngine(UriEngine):
    """UriEngine over FileUriFS, whose history reads the `file://` partitions RemoteRun hands it."""

    def __init__(self) -> None:
        super().__init__(FileUriFS())

    def read_history(self, table, partitions):
        return super().read_history(table, {day: _local(str(path)) for day, path in partitions.items()})


def bad_day(ds: dt.date) -> dict[str, list[dict]]:
    rows = clean_day(ds)
    rows["decisions"] += [decision(decision_mode="robot") for _ in range(5)]  # > 1 % quarantined: the gate fails
    return rows


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    """Clean input of DS-40 and DS-1 .. DS+1, each with its own figures, and a bad one of DS (its gate fails)."""
    good, bad = tmp_path / "in", tmp_path / "in_bad"
    for ds in (DS - 40 * DAY, DS - DAY, DS, DS + DAY):
        write_day(good, ds, clean_day(ds, n=20 + (ds - DS).days % 7))
    write_day(bad, DS, bad_day(DS))
    return {"good": good, "bad": bad}


def run_both(tmp_path: Path, steps: list[tuple], fs: LocalFS | None = None) -> tuple[Path, Path, list]:
    """The same runs (input, ds[, report]), in order, into a local warehouse and into a URI warehouse,
    each remote run by a RemoteRun of its own (as separate nightly runs are). -> (local, remote, outcomes)."""
    local, remote = tmp_path / "local", tmp_path / "remote"
    fs = fs or LocalFS()
    engine, config = UriEngine(fs), Config()
    outcomes = []
    for i, (input_dir, ds, *rest) in enumerate(steps):
        report = rest[0] if rest else True
        got = []
        for run in (lambda: nightly.run_day(input_dir, local, ds, engine, config, report=report, run_started_at=RUN_TS[i]),
                    lambda: _remote_run_day(str(remote), input_dir, ds, engine, config, RUN_TS[i], report=report)):
            try:
                got.append(run().published)
            except DQGateFailed:
                got.append("gate failed")
        assert got[0] == got[1], f"step {i}: local {got[0]}, remote {got[1]}"
        outcomes.append(got[0])
    return local, remote, outcomes


def _remote_run_day(remote: str, input_dir: Path, ds: dt.date, engine: UriEngine, config: Config,
                    started: dt.datetime, *, report: bool = True) -> nightly.DayResult:
    run = RemoteRun(remote, engine)
    try:
        return run.run_day(input_dir, ds, engine, config, report=report, run_started_at=started)
    finally:
        run.close()


def test_a_failed_rerun_keeps_the_published_page_as_on_a_local_warehouse(tmp_path: Path, inputs, monkeypatch) -> None:
    """The run mirrors ds's own publication: without it, a rerun whose gate failed rendered the page
    of a day never published, and pushed it over the good page."""
    monkeypatch.delenv("RISKINSIGHT_PSEUDONYM_KEY", raising=False)
    local, remote, outcomes = run_both(tmp_path, [(inputs["good"], DS), (inputs["bad"], DS)])
    assert outcomes == [True, "gate failed"]
    page = _page(remote)
    assert 'id="not-published"' not in page and 'id="latest-attempt-failed"' in page
    assert _run_facts(page) == _run_facts(_page(local))
    assert _run_facts(page)["Run started"] == "2024-03-20T02:00:00Z"  # the publication's run, not the failed one
    assert "latest run failed" in _index_row(remote) and _index_row(remote) == _index_row(local)


def test_the_index_keeps_the_figures_of_days_a_run_does_not_read(tmp_path: Path, inputs) -> None:
    """Days outside a run's window keep their figures and status in the
    index it writes: it listed them from empty stand-ins, with "–" for decisions and actioned."""
    steps = [(inputs["good"], DS + DAY), (inputs["good"], DS), (inputs["bad"], DS), (inputs["good"], DS - DAY)]
    local, remote, _ = run_both(tmp_path, steps)
    index = (remote / "reports" / "index.html").read_text(encoding="utf-8")
    assert index == (local / "reports" / "index.html").read_text(encoding="utf-8")
    for ds in (DS + DAY, DS):  # later days: outside the window of the last run, of DS - 1
        assert "–" not in _index_row(remote, ds), ds
    assert "latest run failed" in _index_row(remote, DS)


def test_a_publication_without_a_report_removes_the_page_and_keeps_its_index_row_as_on_a_local_warehouse(tmp_path: Path, inputs) -> None:
    """`--no-report` removes the day's older page (it described the tables replaced) and the index
    reads "no page" for it; a day published without a page is listed, and the day after it, whose
    history read it, is not "stale history". The remote once kept the old page, and listed days
    from pages alone."""
    # DS - 1 without a page; DS with one; DS + 1 with one, then rerun without.
    steps = [(inputs["good"], DS - DAY, False), (inputs["good"], DS), (inputs["good"], DS + DAY), (inputs["good"], DS + DAY, False)]
    local, remote, outcomes = run_both(tmp_path, steps)
    assert outcomes == [True, True, True, True]
    assert not (remote / "reports" / f"{DS + DAY}.html").exists()
    assert not (local / "reports" / f"{DS + DAY}.html").exists()
    for ds in (DS - DAY, DS, DS + DAY):
        assert _index_row(remote, ds) == _index_row(local, ds), ds
        assert "stale history" not in _index_row(remote, ds), ds
    assert "no page" in _index_row(remote, DS - DAY) and "no page" in _index_row(remote, DS + DAY)
    assert (remote / "reports" / "index.html").read_text(encoding="utf-8") == (local / "reports" / "index.html").read_text(encoding="utf-8")


def test_one_run_of_several_days_without_reports_leaves_no_index_link_to_a_removed_page(tmp_path: Path, inputs) -> None:
    """One run (one mirror) rerunning two days with --no-report: the index it writes after the second
    day must not link the first day's page, which the first day removed."""
    remote, config = tmp_path / "remote", Config()
    for i, d in enumerate((DS, DS + DAY)):
        _remote_run_day(str(remote), inputs["good"], d, UriEngine(LocalFS()), config, RUN_TS[i])
    assert {p.name for p in (remote / "reports").glob("2*.html")} == {f"{DS}.html", f"{DS + DAY}.html"}
    eng = UriEngine(LocalFS())
    run = RemoteRun(str(remote), eng)
    try:
        for i, d in enumerate((DS, DS + DAY)):
            run.run_day(inputs["good"], d, eng, config, report=False, run_started_at=RUN_TS[2 + i])
    finally:
        run.close()
    assert not list((remote / "reports").glob("2*.html"))
    index = (remote / "reports" / "index.html").read_text(encoding="utf-8")
    assert f'href="{DS}.html"' not in index and f'href="{DS + DAY}.html"' not in index
    assert "no page" in _index_row(remote, DS) and "no page" in _index_row(remote, DS + DAY)


class Killed(BaseException):
    """A kill at a chosen filesystem call (BaseException: nothing catches it on the way out)."""


class KillingFS(LocalFS):
    """LocalFS that dies before its `at`-th put, rename or delete of the report page `page`
    (the page itself or one of its temporaries)."""

    def __init__(self, page: str, at: int) -> None:
        super().__init__()
        self.page, self.at, self.calls = page, at, 0

    def _step(self, *uris: str) -> None:
        if any(os.path.basename(u) == self.page or os.path.basename(u).startswith(f".{self.page}.") for u in uris):
            self.calls += 1
            if self.calls == self.at:
                raise Killed(uris)

    def put(self, local: Path, uri: str) -> None:
        self._step(uri)
        super().put(local, uri)

    def rename(self, src: str, dst: str) -> None:
        self._step(src, dst)
        super().rename(src, dst)

    def delete(self, uri: str) -> None:
        self._step(uri)
        super().delete(uri)


@pytest.mark.parametrize("at", [1, 2, 3, 4])
def test_a_run_killed_while_replacing_its_page_never_leaves_the_day_without_one(tmp_path: Path, inputs, at: int) -> None:
    """Replacing reports/D.html deleted the old page and then renamed the new one in: a run killed
    between the two left no page (and, its day listed from pages, no row in the index), and a
    temporary for ever. Now the old page is renamed aside (Hadoop cannot rename over a file), so
    a run killed before the new one is in leaves it there, and the next run puts it back."""
    remote, page = tmp_path / "remote", f"{DS}.html"
    config = Config()
    _remote_run_day(str(remote), inputs["good"], DS, UriEngine(LocalFS()), config, RUN_TS[0])
    killing = KillingFS(page, at)
    with pytest.raises(Killed):
        _remote_run_day(str(remote), inputs["good"], DS, UriEngine(killing), config, RUN_TS[1])
    assert killing.calls == at
    left = sorted(p.name for p in (remote / "reports").iterdir())
    assert page in left or any(name.startswith(f".{page}.old-") for name in left), left  # never lost
    _remote_run_day(str(remote), inputs["good"], DS + DAY, UriEngine(LocalFS()), config, RUN_TS[2])
    assert sorted(p.name for p in (remote / "reports").iterdir()) == [page, f"{DS + DAY}.html", "index.html"]
    assert f'href="{page}"' in _index_row(remote, DS)


def test_a_page_left_aside_by_a_killed_run_stays_gone_after_a_rerun_without_a_report(tmp_path: Path, inputs) -> None:
    """Killed with the old page renamed aside, then rerun with --no-report: that page described the
    tables the rerun replaced, and no later run may put it back."""
    remote, page, config = tmp_path / "remote", f"{DS}.html", Config()
    _remote_run_day(str(remote), inputs["good"], DS, UriEngine(LocalFS()), config, RUN_TS[0])
    with pytest.raises(Killed):
        _remote_run_day(str(remote), inputs["good"], DS, UriEngine(KillingFS(page, 3)), config, RUN_TS[1])
    _remote_run_day(str(remote), inputs["good"], DS, UriEngine(LocalFS()), config, RUN_TS[2], report=False)
    _remote_run_day(str(remote), inputs["good"], DS + DAY, UriEngine(LocalFS()), config, RUN_TS[3])
    assert sorted(p.name for p in (remote / "reports").iterdir()) == [f"{DS + DAY}.html", "index.html"]
    assert "no page" in _index_row(remote, DS)


def test_a_long_run_indexes_the_days_other_runs_published_meanwhile(tmp_path: Path, inputs) -> None:
    """A run over several days rewrites the index after each; a day another run published since this
    one started is in it (the index was listed once, when the run began)."""
    remote, fs = tmp_path / "remote", LocalFS()
    engine, config = UriEngine(fs), Config()
    long_run = RemoteRun(str(remote), engine)
    try:
        long_run.run_day(inputs["good"], DS - DAY, engine, config)
        _remote_run_day(str(remote), inputs["good"], DS - 40 * DAY, engine, config, RUN_TS[0])  # another run
        long_run.run_day(inputs["good"], DS, engine, config)
    finally:
        long_run.close()
    for ds in (DS - 40 * DAY, DS - DAY, DS):
        assert "–" not in _index_row(remote, ds), ds


def test_one_run_at_a_time_rewrites_the_remote_index(tmp_path: Path, inputs, monkeypatch) -> None:
    """Runs of different days rewrite the index at once: the one that listed the remote's pages first
    wrote last, without the other's new day. Under the index lease the other waits, then lists both."""
    remote, fs = tmp_path / "remote", LocalFS()
    engine, config = UriEngine(fs), Config()
    _remote_run_day(str(remote), inputs["good"], DS - DAY, engine, config, RUN_TS[0])
    first, second = tmp_path / "first", tmp_path / "second"
    lock = str(remote / "_locks" / "index.lock")
    first_listed, second_waits, second_done = threading.Event(), threading.Event(), threading.Event()
    real_entry, real_create_new = report_mod._index_entry, fs.create_new

    def entry_after_the_other_run(output_dir: Path, ds: dt.date, *args):
        if Path(output_dir) == first:  # the first writer has listed the pages: let the other one go
            first_listed.set()
            deadline = time.monotonic() + 60
            while not (second_waits.is_set() or second_done.is_set()) and time.monotonic() < deadline:
                time.sleep(0.01)
        return real_entry(output_dir, ds, *args)

    def create_new(uri: str, data: bytes) -> bool:
        made = real_create_new(uri, data)
        if not made and uri == lock and threading.current_thread().name == "second":
            second_waits.set()
        return made

    monkeypatch.setattr(report_mod, "_index_entry", entry_after_the_other_run)
    monkeypatch.setattr(fs, "create_new", create_new)

    def second_run() -> None:
        # The other run has published DS (its page, copied here: the day's own run is not under test).
        shutil.copy(remote / "reports" / f"{DS - DAY}.html", remote / "reports" / f"{DS}.html")
        RemoteWarehouse(fs, str(remote)).put_index(second)
        second_done.set()

    second_while_first_waits(lambda: RemoteWarehouse(fs, str(remote)).put_index(first), second_run, first_listed, 60)
    assert second_done.is_set()
    index = (remote / "reports" / "index.html").read_text(encoding="utf-8")
    assert f'href="{DS - DAY}.html"' in index and f'href="{DS}.html"' in index


def test_the_lease_holder_never_reads_its_own_renewal_as_a_lost_lease(tmp_path: Path) -> None:
    """Renewal rewrites the lock in place (Hadoop's create with overwrite truncates, then writes): a
    check that read it midway found no token and stopped the run as if another had taken over."""
    remote = RemoteWarehouse(LocalFS(), str(tmp_path / "remote"), lease_s=0.03)  # renewed every 10 ms
    checks = 0
    with remote.lease(DS):
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            remote._check_held(DS)
            checks += 1
    assert checks > 100


def test_a_lock_that_stays_unreadable_is_not_the_holders(tmp_path: Path, monkeypatch) -> None:
    """Read again a few times, not for ever: a lock overwritten with garbage still means the lease is lost."""
    monkeypatch.setattr(remote_warehouse, "TORN_READ_PAUSE_S", 0.001)
    fs = LocalFS()
    remote = RemoteWarehouse(fs, str(tmp_path / "remote"), lease_s=600)
    with pytest.raises(LockHeld, match="lost its lease"), remote.lease(DS):
        fs.write_bytes(str(tmp_path / "remote" / "_locks" / f"ds={DS}.lock"), b"")
        remote._check_held(DS)


_HOLD = """
import sys, time
from jobs.remote_warehouse import RemoteWarehouse
from tests.test_storage_uri_warehouse import LocalFS, DS
with RemoteWarehouse(LocalFS(), sys.argv[1]).lease(DS):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_lease_whose_holder_died_on_this_host_is_taken_over_at_once(tmp_path: Path) -> None:
    """A holder SIGKILLed here stops renewing, but its lock was judged live for the whole lease
    (600 s): every run of the days whose window holds its ds failed for that long."""
    root = str(tmp_path / "remote")
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, root], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    try:
        assert holder.stdout.readline().strip() == "held"
        remote = RemoteWarehouse(LocalFS(), root, lease_s=600)
        with pytest.raises(LockHeld, match=f"pid {holder.pid} on"):  # alive: it holds
            with remote.lease(DS):
                pass
    finally:
        holder.kill()
        holder.wait()
    started = time.monotonic()
    with remote.lease(DS):
        assert time.monotonic() - started < 5
    # A lock from another host (or pid namespace) is judged by its renewal time alone.
    lock = tmp_path / "remote" / "_locks" / f"ds={DS}.lock"
    lock.write_text(json.dumps({"holder": f"pid {holder.pid} on elsewhere", "token": "x", "renewed_at": time.time(),
                                "pid": holder.pid, "space": "elsewhere"}))
    with pytest.raises(LockHeld, match="elsewhere"), remote.lease(DS):
        pass


def test_a_run_waits_for_an_earlier_day_being_swapped_and_names_its_own_day_if_it_cannot(tmp_path: Path) -> None:
    """A run of D+1 that found D mid-swap (its journal present, its lease held) failed at once with
    `--lock-wait 0`, saying D "is being run". It waits for the swap now; past a lease, it says
    which day it was running and which one it could not read."""
    root, fs = str(tmp_path / "remote"), LocalFS()
    journal = tmp_path / "remote" / "_versions" / f"ds={DS}" / "_PUBLISHING"
    swapping, done = threading.Event(), threading.Event()

    def swap(seconds: float, lease_s: float) -> None:
        with RemoteWarehouse(fs, root, lease_s=lease_s).lease(DS):
            journal.parent.mkdir(parents=True, exist_ok=True)
            journal.write_text('{"new": "n", "old": "o", "parts": [], "tables": false}')
            swapping.set()
            time.sleep(seconds)
            journal.unlink()
        done.set()

    holder = threading.Thread(target=swap, args=(1.0, 600))
    holder.start()
    swapping.wait(30)
    RemoteWarehouse(fs, root, lease_s=600).settle([DS])  # wait_s 0 (--lock-wait 0)
    assert done.wait(5) or not journal.exists()
    holder.join()

    swapping.clear()
    # Renewed every lease_s / 3: live throughout, with seconds to spare on a loaded machine (a 1.5 s
    # lease missed its renewal at a load of 3.5 and was rightly taken over).
    holder = threading.Thread(target=swap, args=(12.0, 4.5))
    holder.start()
    swapping.wait(30)
    try:
        with pytest.raises(LockHeld, match=rf"^ds={DS + DAY}: cannot read ds={DS} of .*half swapped in by pid {os.getpid()}.*lapses in [1-9][0-9]* s unless renewed"):
            RemoteWarehouse(fs, root, lease_s=4.5).settle([DS], ds=DS + DAY)
    finally:
        holder.join()


def test_a_run_blocked_by_an_earlier_days_swap_names_the_day_it_was_running(tmp_path: Path, inputs) -> None:
    """Through RemoteRun, as `run` meets it: the error names the day the user asked for first."""
    root, fs = str(tmp_path / "remote"), LocalFS()
    journal = tmp_path / "remote" / "_versions" / f"ds={DS}" / "_PUBLISHING"
    swapping, release = threading.Event(), threading.Event()

    def swap() -> None:
        with RemoteWarehouse(fs, root, lease_s=4.5).lease(DS):
            journal.parent.mkdir(parents=True, exist_ok=True)
            journal.write_text('{"new": "n", "old": "o", "parts": [], "tables": false}')
            swapping.set()
            release.wait(60)
            journal.unlink()

    holder = threading.Thread(target=swap)
    holder.start()
    swapping.wait(30)
    engine = UriEngine(fs)
    run = RemoteRun(root, engine)
    run.remote.lease_s = 4.5
    try:
        with pytest.raises(LockHeld, match=rf"^ds={DS + DAY}: cannot read ds={DS} of "):
            run.run_day(inputs["good"], DS + DAY, engine, Config())
    finally:
        release.set()
        holder.join()
        run.close()


def test_readers_can_tell_a_day_mid_swap_from_the_journal(tmp_path: Path, inputs) -> None:
    """The swap is per table (README, "Running on a Spark cluster"): the reader's check is that the
    journal is absent and the manifest unchanged. At every rename of a rerun, whenever the day's
    parts are not all of one publication, the journal is there."""
    remote, config = tmp_path / "remote", Config()
    other = tmp_path / "in_other"
    write_day(other, DS, clean_day(DS, n=33))
    _remote_run_day(str(remote), inputs["good"], DS, UriEngine(LocalFS()), config, RUN_TS[0])
    parts = {t: remote / t / f"ds={DS}" for t in OUTPUT_TABLES} | {"_runs": remote / "_runs" / f"ds={DS}" / "manifest.json"}
    journal = remote / "_versions" / f"ds={DS}" / "_PUBLISHING"

    def state() -> dict[str, bytes | None]:
        return {p: (b"".join(f.read_bytes() for f in sorted(path.glob("*.parquet"))) if path.is_dir()
                    else path.read_bytes() if path.is_file() else None) for p, path in parts.items()}

    before, seen = state(), []

    class Watching(LocalFS):
        def rename(self, src: str, dst: str) -> None:
            super().rename(src, dst)
            seen.append((journal.exists(), state()))

    _remote_run_day(str(remote), other, DS, UriEngine(Watching()), config, RUN_TS[1])
    after = state()
    assert all(before[p] != after[p] for p in ("violation_daily", "_runs"))
    mixed = [j for j, s in seen if s != before and s != after]
    assert mixed and all(mixed)  # some reader's view was mixed, and the journal said so every time


def test_a_run_removes_the_mirrors_of_runs_killed_on_this_host(tmp_path: Path, monkeypatch) -> None:
    """A SIGKILLed run never closed its mirror (up to a month of tables) in the temp directory."""
    from jobs import remote_run

    monkeypatch.setattr(remote_run.tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    here = remote_warehouse.process_space()
    mirrors = {}
    for label, pid, space in (("dead", dead.pid, here), ("live", os.getpid(), here), ("elsewhere", dead.pid, "elsewhere")):
        mirrors[label] = tmp_path / f"{remote_run.MIRROR_PREFIX}{label}"
        (mirrors[label] / "violation_daily").mkdir(parents=True)
        (mirrors[label] / remote_run.OWNER).write_text(json.dumps({"pid": pid, "space": space}))
    run = RemoteRun(str(tmp_path / "remote"), UriEngine(LocalFS()))
    try:
        assert run.mirror.parent == tmp_path
        assert not mirrors["dead"].exists() and mirrors["live"].exists() and mirrors["elsewhere"].exists()
    finally:
        run.close()
    assert not run.mirror.exists()
