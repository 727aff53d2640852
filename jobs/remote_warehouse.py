"""A warehouse behind a Hadoop filesystem URI (hdfs://, abfs://, s3a://, file://): lease, publish, recover.

The run itself works on a local mirror (`jobs.warehouse`, the same code as a local warehouse): the
days its history and report read are pulled in first, and the finished publication of ds is pushed
back. Only the driver touches the warehouse, through the JVM's Hadoop FileSystem (`HadoopFS`); the
tables it copies are the small aggregated outputs, never raw input. On the remote side:

    <table>/ds=D/                  real directories, as every reader expects (no symlinks there)
    _runs/ds=D/                    manifest.json, dq.json, attempts/<run id>/
    reports/D.html, index.html
    _versions/ds=D/CURRENT         the id of the publication in place (and PREVIOUS)
    _versions/ds=D/<id>/<part>/    a publication being swapped in, or the previous one swapped out
    _versions/ds=D/_PUBLISHING     the swap journal: present only while a swap is under way
    _locks/ds=D.lock               the lease of the run that holds ds
    _locks/index.lock              the lease of the run rewriting reports/index.html

Publishing ds: every part (each table partition, then `_runs/ds=D`) is copied aside under
`_versions/ds=D/<new>/`, the journal is written, and each live part is renamed out to
`_versions/ds=D/<old>/` and the new one renamed in: a few metadata renames, atomic per part on
HDFS and ABFS (a copy on S3A and GCS). A run killed during the swap leaves the journal, and whoever
takes the lease next rolls the swap forward before anything else.

Not atomic across parts: while the journal is there (a swap under way, or a killed one not yet
rolled forward) a reader of ds can see some tables new and others old, or one missing. A reader
that needs one publication checks that the journal is absent and reads `_runs/ds=D/manifest.json`
before it reads the tables, checks both again after, and reads again if either changed (README,
"Running on a Spark cluster"); this job's own runs settle such a day before they read it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol

from jobs import faults
from jobs import warehouse as wh
from jobs.errors import LockHeld, WarehouseUnavailable
from jobs.report import INDEX_TABLES, page_day, render_index
from transforms.schemas import OUTPUT_TABLES

# What a run reads of earlier days locally. creator_category_daily, by far the largest table, is
# read by the history stage straight from the remote partitions, and the report takes its offender
# figures from the day's own manifest, so no earlier day of it is ever read from the mirror.
MIRRORED_TABLES = tuple(t for t in OUTPUT_TABLES if t != "creator_category_daily")

RUNS = "_runs"
RUN_FILES = ("manifest.json", "dq.json")
JOURNAL = "_PUBLISHING"
CURRENT, PREVIOUS = "CURRENT", "PREVIOUS"
LEASE_S = 600.0  # the holder renews every LEASE_S / 3; a lease not renewed for LEASE_S is stale
# Reads of a lock file that may catch its holder's renewal midway (see RemoteWarehouse._lock_token).
TORN_READS, TORN_READ_PAUSE_S = 6, 0.05


class RemoteFS(Protocol):
    """What the remote warehouse needs from a filesystem (jobs.engines.hadoop_fs.HadoopFS)."""

    def exists(self, uri: str) -> bool: ...
    def is_dir(self, uri: str) -> bool: ...
    def list_dir(self, uri: str) -> list[tuple[str, bool]]: ...
    def rename(self, src: str, dst: str) -> None: ...
    def delete(self, uri: str) -> None: ...
    def create_new(self, uri: str, data: bytes) -> bool: ...
    def write_bytes(self, uri: str, data: bytes) -> None: ...
    def modified_at(self, uri: str) -> float | None: ...
    def read_bytes(self, uri: str) -> bytes | None: ...
    def put(self, local: Path, uri: str) -> None: ...
    def get(self, uri: str, local: Path) -> None: ...


def process_space() -> str:
    """Where a pid names one process: the host, and on Linux its boot and pid namespace (containers
    on one host may share a name and a volume, not their pids)."""
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    with contextlib.suppress(OSError):
        parts.append(os.readlink("/proc/self/ns/pid"))
    return " ".join(parts)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


class _Held:
    """A lease this process holds: its lock file, token, and whether it was lost."""

    def __init__(self, lock: str, token: str, holder: str) -> None:
        self.lock, self.token, self.holder = lock, token, holder
        self.lost = threading.Event()

    def body(self) -> bytes:
        # Renewal time on the clients' clock: the clock that judges staleness. The pid, and where
        # it names a process, let a run on the same host see at once that the holder died.
        return json.dumps({
            "holder": self.holder, "token": self.token, "renewed_at": time.time(),
            "pid": os.getpid(), "space": process_space(),
        }).encode()


def _field(body: bytes | None, name: str) -> object:
    try:
        return json.loads(body or b"").get(name)
    except (ValueError, AttributeError):
        return None


def _token(body: bytes | None) -> object:
    return _field(body, "token")


def _holder(body: bytes) -> str:
    return str(_field(body, "holder") or "another process")


# A temporary of put_reports: the new file copied in, or the old one renamed aside.
_REPORT_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-[0-9a-f]+$")


def _ds(ds: dt.date) -> str:
    return f"ds={ds.isoformat()}"


class RemoteWarehouse:
    def __init__(self, fs: RemoteFS, root: str, lease_s: float = LEASE_S) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.lease_s = lease_s
        self._mirrored: set[dt.date] = set()
        self._held: dict[dt.date, _Held] = {}
        self._indexed: dict[dt.date, bytes | None] = {}  # day -> the `_runs/ds=D/manifest.json` its index copy is of

    # ------------------------------------------------------------ locations
    def uri(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def partition(self, table: str, ds: dt.date) -> str:
        return self.uri(table, _ds(ds))

    def _part_uri(self, part: str, ds: dt.date) -> str:
        """Where a part of a publication lives: a table's partition, or `_runs/ds=D` for RUNS."""
        return self.uri(RUNS, _ds(ds)) if part == RUNS else self.partition(part, ds)

    def _versions(self, ds: dt.date, *parts: str) -> str:
        return self.uri("_versions", _ds(ds), *parts)

    def published_days(self, table: str) -> list[dt.date]:
        days = []
        for name, is_dir in self.fs.list_dir(self.uri(table)):
            if is_dir and name.startswith("ds="):
                with contextlib.suppress(ValueError):
                    days.append(dt.date.fromisoformat(name[3:]))
        return sorted(days)

    def published_partitions(self, table: str, first: dt.date, last: dt.date) -> dict[dt.date, str]:
        """Same contract as warehouse.published_partitions, as URIs the executors read directly."""
        return {d: self.partition(table, d) for d in self.published_days(table) if first <= d <= last}

    def _text(self, uri: str) -> str | None:
        data = self.fs.read_bytes(uri)
        return None if data is None else data.decode("utf-8").strip()

    # ------------------------------------------------------------ lease
    @contextlib.contextmanager
    def lease(self, ds: dt.date, wait_s: float = 0.0) -> Iterator[None]:
        """One run per (warehouse, ds), across hosts: a lock file created exclusively, whose content
        (token, renewal time) the holder rewrites from a background thread. A holder that died stops
        renewing; lease_s after its last renewal the lease is stale and the next run takes it over.
        A holder that loses its lease (it stalled past lease_s and was taken over) publishes nothing
        more: `_check_held` runs before the journal and before every rename. Recovers an interrupted
        swap of ds once held."""
        lock = self.uri("_locks", f"{_ds(ds)}.lock")

        def busy(holder: str) -> str:
            return f"ds={ds} of {self.root} is being run by {holder}; retry later or pass --lock-wait SECONDS"

        with self._leased(lock, busy, wait_s) as held:
            self._held[ds] = held
            try:
                self.recover(ds)
                yield
            finally:
                self._held.pop(ds, None)

    @contextlib.contextmanager
    def _leased(self, lock: str, busy: Callable[[str], str], wait_s: float) -> Iterator[_Held]:
        """Hold the lease of `lock` (see `lease`), renewed in the background until the block ends;
        LockHeld with busy(holder) when another holder keeps it past wait_s."""
        held = _Held(lock, secrets.token_hex(8), f"pid {os.getpid()} on {socket.gethostname()}")
        deadline = time.monotonic() + wait_s
        while not self.fs.create_new(lock, held.body()):
            seen = self.fs.read_bytes(lock)
            if seen is None:
                continue  # released meanwhile
            if self._stale(lock, seen):
                self._break_stale(lock, seen)
                continue
            if time.monotonic() >= deadline:
                raise LockHeld(busy(_holder(seen)))
            time.sleep(0.5)
        stop = threading.Event()
        renew = threading.Thread(target=self._renew, args=(held, stop), daemon=True, name=f"lease {lock}")
        try:
            renew.start()
            yield held
        finally:
            stop.set()
            if renew.is_alive():
                renew.join()
            if self._lock_token(lock) == held.token:
                self.fs.delete(lock)

    def _lock_token(self, lock: str) -> object:
        """The token in the lock file, or None where there is none. A renewal rewrites the file in place
        (Hadoop's create with overwrite: truncate, then write, and HDFS shows nothing of it until the
        stream is closed), so a read can catch the holder's own lock empty or half-written, and the
        holder then judged that it had lost its lease mid-publish. A body that does not parse is read
        again, a few times, before it counts as no token; a whole body always names one."""
        for attempt in range(TORN_READS):
            body = self.fs.read_bytes(lock)
            if body is None:
                return None
            token = _token(body)
            if token is not None:
                return token
            if attempt + 1 < TORN_READS:
                time.sleep(TORN_READ_PAUSE_S * 2**attempt)
        return None

    def _stale(self, lock: str, body: bytes) -> bool:
        """lease_s after its last renewal; at once where its holder ran here and is gone. A holder
        killed on this host was judged alive for lease_s, and every run of the days whose window
        holds its ds failed for that long."""
        pid = _field(body, "pid")
        if isinstance(pid, int) and pid != os.getpid() and _field(body, "space") == process_space() and not pid_alive(pid):
            return True
        renewed = _field(body, "renewed_at")
        if not isinstance(renewed, (int, float)):
            renewed = self.fs.modified_at(lock) or time.time()  # half-written by a holder that died
        return renewed + self.lease_s < time.time()

    def _renew(self, held: _Held, stop: threading.Event) -> None:
        last = time.time()
        while not stop.wait(self.lease_s / 3):
            try:
                if self._lock_token(held.lock) != held.token:
                    held.lost.set()  # taken over after this process stalled past its lease
                    return
                self.fs.write_bytes(held.lock, held.body())
                last = time.time()
            except Exception:  # a transient filesystem error: retry until the lease would lapse
                if time.time() - last > self.lease_s:
                    held.lost.set()
                    return

    def _unheld(self, ds: dt.date) -> bool:
        """Whether no live run holds the lease of ds (no lock, or a stale one)."""
        lock = self.uri("_locks", f"{_ds(ds)}.lock")
        body = self.fs.read_bytes(lock)
        return body is None or self._stale(lock, body)

    def _check_held(self, ds: dt.date) -> None:
        held = self._held.get(ds)
        if held is None:
            raise RuntimeError(f"ds={ds}: publishing to {self.root} needs its lease")
        if held.lost.is_set() or self._lock_token(held.lock) != held.token:
            raise LockHeld(f"ds={ds}: this run lost its lease of {self.root} (it stalled and another run took over); nothing more published")

    def _break_stale(self, lock: str, seen: bytes) -> None:
        """Move the stale lock aside, then check it is the one judged stale: of two runs breaking it
        at once only one rename succeeds, and a lock taken or renewed meanwhile is put back."""
        aside = f"{lock}.stale-{secrets.token_hex(4)}"
        try:
            self.fs.rename(lock, aside)
        except OSError:
            return
        if self.fs.read_bytes(aside) == seen:
            self.fs.delete(aside)
        else:
            with contextlib.suppress(OSError):
                self.fs.rename(aside, lock)

    # ------------------------------------------------------------ publish
    def publish(self, mirror: Path, ds: dt.date, *, tables: bool) -> str:
        """Push the mirror's publication of ds (its tables and `_runs/ds=D`, or with tables=False the
        run files alone, after a failed gate) and swap it in. Call under `lease`. Returns the id."""
        version = wh.current_version(mirror, ds) if tables else None
        new = version or f"attempt-{secrets.token_hex(6)}"
        parts = [*(OUTPUT_TABLES if tables else ()), RUNS]
        stage = mirror / "_push" / _ds(ds) / new
        shutil.rmtree(stage, ignore_errors=True)
        for part in parts:
            src = wh.runs_dir(mirror, ds) if part == RUNS else wh.partition_dir(mirror, part, ds)
            shutil.copytree(src, stage / part, symlinks=False)  # links resolved: the remote has none
        self.fs.delete(self._versions(ds, new))
        self.fs.put(stage, self._versions(ds, new))
        shutil.rmtree(mirror / "_push", ignore_errors=True)
        faults.point("remote:staged")
        old = self._text(self._versions(ds, CURRENT)) if tables else None
        journal = {"new": new, "old": old or f"before-{new}", "parts": parts, "tables": tables}
        self._check_held(ds)
        self.fs.write_bytes(self._versions(ds, JOURNAL), json.dumps(journal).encode())
        self._swap(ds, journal)
        return new

    def _swap(self, ds: dt.date, journal: dict) -> None:
        """Roll the journal's swap forward; idempotent, so a rerun after a kill finishes it."""
        new, old = journal["new"], journal["old"]
        for i, part in enumerate(journal["parts"]):
            staged, live = self._versions(ds, new, part), self._part_uri(part, ds)
            if not self.fs.exists(staged):
                continue  # already swapped in
            self._check_held(ds)
            if self.fs.exists(live):
                self.fs.rename(live, self._versions(ds, old, part))
            self.fs.rename(staged, live)
            if i == 0:
                faults.point("remote:swapping")
        if journal["tables"]:
            if journal["old"] and self.fs.exists(self._versions(ds, old)):
                self.fs.write_bytes(self._versions(ds, PREVIOUS), old.encode())
            self.fs.write_bytes(self._versions(ds, CURRENT), new.encode())
        self.fs.delete(self._versions(ds, JOURNAL))
        self._collect_garbage(ds)

    def recover(self, ds: dt.date) -> None:
        """Finish a swap a killed run left half done, and drop what no reader can reach."""
        text = self._text(self._versions(ds, JOURNAL))
        if text:
            try:
                journal = json.loads(text)
            except ValueError:
                raise WarehouseUnavailable(
                    f"ds={ds}: the swap journal {self._versions(ds, JOURNAL)} is unreadable; the parts of "
                    "_versions/ds=D/ it names must be checked by hand before this ds is run again"
                ) from None
            self._swap(ds, journal)
        else:
            self._collect_garbage(ds)
        self._tidy_reports(self._report_temps(f"{ds.isoformat()}.html"))

    def _collect_garbage(self, ds: dt.date) -> None:
        """Keep the previous publication one round (readers may still be reading it, and it is the
        way back); drop older ones, run files swapped out, and copies a killed run staged."""
        keep = {self._text(self._versions(ds, PREVIOUS)), self._text(self._versions(ds, CURRENT))}
        for name, is_dir in self.fs.list_dir(self._versions(ds)):
            if is_dir and name not in keep:
                self.fs.delete(self._versions(ds, name))

    def put_reports(self, mirror: Path, names: Iterable[str]) -> None:
        """Replace report files, each under the lease that covers it (its day's, or the index's).

        The new file is copied to `.<name>.tmp-<hex>`, the old one renamed aside to
        `.<name>.old-<hex>`, the new one renamed in, and the old one deleted: Hadoop's rename
        refuses an existing target, and a delete first left no page at all to a run killed before
        the rename (and its day out of the index). The target is missing only between two renames;
        a run killed there leaves the old file aside, which `_tidy_reports` puts back."""
        for name in names:
            local = mirror / "reports" / name
            if not local.is_file() or local.stat().st_size == 0:
                continue
            self._tidy_reports(self._report_temps(name))
            target = self.uri("reports", name)
            tmp, old = (self.uri("reports", f".{name}.{kind}-{secrets.token_hex(4)}") for kind in ("tmp", "old"))
            self.fs.put(local, tmp)
            had_old = self.fs.exists(target)
            if had_old:
                self.fs.rename(target, old)
            self.fs.rename(tmp, target)
            if had_old:
                self.fs.delete(old)

    def _report_temps(self, name: str | None = None) -> list[tuple[str, str, str]]:
        """(entry, file it is of, kind) of what replacing report files left in reports/ (of `name`)."""
        found = []
        for entry, is_dir in self.fs.list_dir(self.uri("reports")):
            left = None if is_dir else _REPORT_TEMP.match(entry)
            if left is not None and (name is None or left["name"] == name):
                found.append((entry, left["name"], left["kind"]))
        return found

    def _tidy_reports(self, temps: Iterable[tuple[str, str, str]]) -> None:
        """Clear what killed runs left of replacing report files (`_report_temps`): a copy of the old
        file still aside where the file itself is missing is put back; every other one is deleted.
        Call under the lease that covers those files."""
        for entry, name, kind in temps:
            target, path = self.uri("reports", name), self.uri("reports", entry)
            if kind == "old" and not self.fs.exists(target):
                with contextlib.suppress(OSError):  # put back by another run meanwhile: theirs stands
                    self.fs.rename(path, target)
            else:
                self.fs.delete(path)

    # ------------------------------------------------------------ mirror
    def mirror_days(self, mirror: Path, days: Iterable[dt.date]) -> None:
        """Install the remote publications of `days` in the local mirror (skipping days the mirror
        already holds), so the DQ trailing volumes and the report read them as local files
        (`MIRRORED_TABLES`: the history stage reads the remote partitions itself)."""
        for day in sorted(set(days) - self._mirrored):
            if wh.current_version(mirror, day) is None:
                self._mirror_day(mirror, day)
            self._mirrored.add(day)

    def _mirror_day(self, mirror: Path, day: dt.date, tables: Iterable[str] = MIRRORED_TABLES) -> bool:
        """Install the remote publication of `day` (those of `tables` it has, and its run files) in
        `mirror`; False, and nothing installed, where the day has no published tables."""
        present = [t for t in tables if self.fs.is_dir(self.partition(t, day))]
        if not present:
            return False
        pulled = mirror / "_pull" / _ds(day)
        shutil.rmtree(pulled, ignore_errors=True)
        for table in present:
            self.fs.get(self.partition(table, day), pulled / table)
        version = self._text(self._versions(day, CURRENT)) or f"remote-{secrets.token_hex(4)}"
        top = self.uri(RUNS, _ds(day))
        failed_since = not json.loads(self._text(f"{top}/manifest.json") or "{}").get("published", True)
        # After a failed gate `_runs/ds=D/` holds the failed attempt's files (as on a local
        # warehouse) and the published run's are in its attempt record: a version id is
        # `<run id>-<8 hex>` (nightly.publish_day).
        source = f"{top}/attempts/{version.rsplit('-', 1)[0]}" if failed_since else top
        runs = self._get_run_files(source, pulled / RUNS)
        with wh.ds_lock(mirror, day):
            wh.publish(mirror, day, version, {t: pulled / t for t in present}, runs)
            if failed_since:
                # What the local warehouse shows after a failed gate: the failure, over the links.
                for name, path in self._get_run_files(top, pulled / "failed").items():
                    os.replace(path, wh.runs_dir(mirror, day) / name)
        shutil.rmtree(pulled, ignore_errors=True)
        return True

    def _get_run_files(self, source: str, local: Path) -> dict[str, Path]:
        """Copy the run files (RUN_FILES) that `source` holds into the local directory; name -> copy."""
        got = {}
        for name in RUN_FILES:
            if self.fs.exists(f"{source}/{name}"):
                self.fs.get(f"{source}/{name}", local / name)
                got[name] = local / name
        return got

    def forget(self, mirror: Path, ds: dt.date) -> None:
        """Drop ds from the mirror (its local publication never reached the remote), so a later
        day mirrors what the remote really holds."""
        _drop_day(mirror, ds)
        self._mirrored.discard(ds)

    def settle(self, days: Iterable[dt.date], ds: dt.date | None = None, wait_s: float = 0.0) -> None:
        """Finish any swap a killed run left half done on `days` (taking each one's lease), so
        history and mirrors of the run of `ds` never read a half-swapped day.

        A day whose swap is under way is waited for until its journal is gone, up to one lease at
        least (wait_s if longer): a live holder finishes its swap in seconds, and one that died has
        lapsed by then (at once where it ran on this host) and the swap is rolled forward here. It
        once failed at once with `--lock-wait 0`, naming the other day, not the one being run."""
        for day in sorted(days):
            journal = self._versions(day, JOURNAL)
            deadline = time.monotonic() + max(wait_s, self.lease_s)
            while self.fs.exists(journal):
                try:
                    with self.lease(day):
                        pass  # the lease recovers
                except LockHeld:
                    if time.monotonic() >= deadline:
                        raise LockHeld(self._unsettled(day, ds)) from None
                    time.sleep(0.5)

    def _unsettled(self, day: dt.date, ds: dt.date | None) -> str:
        lock = self.uri("_locks", f"{_ds(day)}.lock")
        body = self.fs.read_bytes(lock) or b""
        renewed = _field(body, "renewed_at")
        lapse = f"{max(0.0, renewed + self.lease_s - time.time()):.0f} s" if isinstance(renewed, (int, float)) else f"{self.lease_s:.0f} s at most"
        run = f"ds={ds}: cannot read" if ds is not None else "cannot settle"
        return (
            f"{run} ds={day} of {self.root}, half swapped in by {_holder(body)}, which holds its lease; "
            f"the lease lapses in {lapse} unless renewed, and the next run then finishes the swap; retry later"
        )

    def mirror_attempts(self, mirror: Path, ds: dt.date) -> None:
        """ds's earlier attempt records, so the `_runs/ds=D` this run swaps in still lists them."""
        uri = self.uri(RUNS, _ds(ds), "attempts")
        local = wh.attempts_dir(mirror, ds)
        if self.fs.is_dir(uri) and not local.exists():
            self.fs.get(uri, local)

    # ------------------------------------------------------------ index
    def put_index(self, index_dir: Path) -> None:
        """Rewrite the remote reports/index.html from what the remote holds now, under the index lease.

        Runs of different days (different ds leases, perhaps on other hosts) all rewrite the index;
        each reads every listed day and writes under a lease of `_locks/index.lock` (a local warehouse:
        a flock of the same file), so none drops a day or a status another run published meanwhile.
        `index_dir` is a local warehouse holding only what the index reads (`_sync_index`), apart
        from the run's mirror, which holds whole days and only those the run reads. The wait is one
        lease: by then a holder that died has gone stale and is taken over.
        """

        def busy(holder: str) -> str:
            return f"the report index of {self.root} is being rewritten by {holder}; retry later"

        with self._leased(self.uri("_locks", "index.lock"), busy, self.lease_s):
            # Pages a killed run left half replaced, of days no run holds now (a day's own run
            # tidies its page itself): put back before the index is listed.
            temps = self._report_temps()
            self._tidy_reports(t for t in temps if (day := page_day(t[1])) is not None and self._unheld(day))
            self.sync_index(index_dir)
            render_index(index_dir)
            self.put_reports(index_dir, ["index.html"])

    def sync_index(self, index_dir: Path) -> None:
        """Bring `index_dir` up to the remote for every day the index lists, as render_index does on
        a local warehouse: every published day and every day with a page. Each gets the index's
        tables of the day (INDEX_TABLES, small) with the publication's run files, or, for a day that
        never published, its failed attempt's run files; pulled again only where
        `_runs/ds=D/manifest.json`, swapped in by every publication and failed attempt, changed. An
        empty stand-in of each page makes render_index link the day (put_index puts index.html
        alone). Days were once listed from the pages alone: a day published with `--no-report` was
        missing from the index, and the day after it, whose history read it, was marked stale."""
        reports = index_dir / "reports"
        reports.mkdir(parents=True, exist_ok=True)
        pages = {}
        for name, is_dir in self.fs.list_dir(self.uri("reports")):
            day = None if is_dir else page_day(name)
            if day is not None:
                pages[day] = name
        listed = set(pages) | set(self.published_days(INDEX_TABLES[0]))
        for day in sorted(listed):
            state = self.fs.read_bytes(self.uri(RUNS, _ds(day), "manifest.json"))
            if day not in self._indexed or self._indexed[day] != state:
                _drop_day(index_dir, day)
                if not self._mirror_day(index_dir, day, INDEX_TABLES):
                    self._get_run_files(self.uri(RUNS, _ds(day)), wh.runs_dir(index_dir, day))
                self._indexed[day] = state
        for day in set(self._indexed) - listed:
            _drop_day(index_dir, day)  # gone from the remote
            del self._indexed[day]
        for page in reports.iterdir():
            if page_day(page.name) is not None and page.name not in pages.values():
                page.unlink()  # its page was removed from the remote
        for name in pages.values():
            (reports / name).touch()

    def remove_report(self, name: str) -> bool:
        """Remove the report page `name` (under the lease of its day); whether there was one."""
        target = self.uri("reports", name)
        if not self.fs.exists(target):
            return False
        self.fs.delete(target)
        return True


def _drop_day(mirror: Path, ds: dt.date) -> None:
    """Remove every table, run file and version of ds from a local mirror."""
    for path in [wh.partition_dir(mirror, t, ds) for t in OUTPUT_TABLES] + [wh.runs_dir(mirror, ds), wh.versions_dir(mirror, ds)]:
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
