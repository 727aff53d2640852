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

Publishing ds: every part (each table partition, then `_runs/ds=D`) is copied aside under
`_versions/ds=D/<new>/`, the journal is written, and each live part is renamed out to
`_versions/ds=D/<old>/` and the new one renamed in: a few metadata renames, atomic per part on
HDFS and ABFS. A run killed during the swap leaves the journal, and whoever takes the lease next
rolls the swap forward before anything else, so readers see the old publication or the new one,
never a lasting mix. (On S3A and GCS a rename is a copy: there readers should read a ds only when
its `_runs/ds=D/manifest.json` names the version they expect.)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from jobs import faults
from jobs import warehouse as wh
from jobs.errors import LockHeld
from transforms.schemas import OUTPUT_TABLES

RUNS = "_runs"
JOURNAL = "_PUBLISHING"
CURRENT, PREVIOUS = "CURRENT", "PREVIOUS"
LEASE_S = 600.0  # the holder renews every LEASE_S / 3; a lease not renewed for LEASE_S is stale


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
    def touch(self, uri: str, when: float) -> None: ...
    def read_bytes(self, uri: str) -> bytes | None: ...
    def put(self, local: Path, uri: str) -> None: ...
    def get(self, uri: str, local: Path) -> None: ...


def _holder(body: bytes) -> str:
    try:
        return str(json.loads(body)["holder"])
    except (ValueError, KeyError, TypeError):
        return "another process"


def _ds(ds: dt.date) -> str:
    return f"ds={ds.isoformat()}"


class RemoteWarehouse:
    def __init__(self, fs: RemoteFS, root: str, lease_s: float = LEASE_S) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.lease_s = lease_s
        self._mirrored: set[dt.date] = set()

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
        """One run per (warehouse, ds), across hosts: a lock file created exclusively, whose
        modification time the holder renews from a background thread. A holder that died stops
        renewing; lease_s after its last renewal the lease is stale and the next run takes it over.
        Renewal touches the time only, so the file never disappears while held. Recovers an
        interrupted swap once held."""
        lock = self.uri("_locks", f"{_ds(ds)}.lock")
        token = secrets.token_hex(8)
        body = json.dumps({"holder": f"pid {os.getpid()} on {socket.gethostname()}", "token": token}).encode()
        deadline = time.monotonic() + wait_s
        while not self.fs.create_new(lock, body):
            seen = self._lease_state(lock)
            if seen is not None and seen[1] + self.lease_s < time.time():
                self._break_stale(lock, seen)
                continue
            if seen is not None and time.monotonic() >= deadline:
                raise LockHeld(f"ds={ds} of {self.root} is being run by {_holder(seen[0])}; retry later or pass --lock-wait SECONDS")
            time.sleep(0.5)
        self.fs.touch(lock, time.time())  # the lease runs on the clients' clock, the one that checks it
        stop = threading.Event()
        renew = threading.Thread(target=self._renew, args=(lock, body, stop), daemon=True, name=f"lease {ds}")
        renew.start()
        try:
            self.recover(ds)
            yield
        finally:
            stop.set()
            renew.join()
            if self.fs.read_bytes(lock) == body:
                self.fs.delete(lock)

    def _lease_state(self, lock: str) -> tuple[bytes, float] | None:
        body, modified = self.fs.read_bytes(lock), self.fs.modified_at(lock)
        return None if body is None or modified is None else (body, modified)

    def _renew(self, lock: str, body: bytes, stop: threading.Event) -> None:
        while not stop.wait(self.lease_s / 3):
            if self.fs.read_bytes(lock) != body:
                return  # taken over after this process stalled past its lease
            self.fs.touch(lock, time.time())

    def _break_stale(self, lock: str, seen: tuple[bytes, float]) -> None:
        """Move the stale lock aside, then check it is the one judged stale: of two runs breaking it
        at once only one rename succeeds, and a lock taken or renewed meanwhile is put back."""
        aside = f"{lock}.stale-{secrets.token_hex(4)}"
        try:
            self.fs.rename(lock, aside)
        except OSError:
            return
        if self._lease_state(aside) == seen:
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
            self._swap(ds, json.loads(text))
        else:
            self._collect_garbage(ds)

    def _collect_garbage(self, ds: dt.date) -> None:
        """Keep the previous publication one round (readers may still be reading it, and it is the
        way back); drop older ones, run files swapped out, and copies a killed run staged."""
        keep = {self._text(self._versions(ds, PREVIOUS)), self._text(self._versions(ds, CURRENT))}
        for name, is_dir in self.fs.list_dir(self._versions(ds)):
            if is_dir and name not in keep:
                self.fs.delete(self._versions(ds, name))

    def put_reports(self, mirror: Path, names: Iterable[str]) -> None:
        """Replace report files (each copied aside, then renamed over the old one)."""
        for name in names:
            local = mirror / "reports" / name
            if not local.is_file() or local.stat().st_size == 0:
                continue
            target, aside = self.uri("reports", name), self.uri("reports", f".{name}.tmp-{secrets.token_hex(4)}")
            self.fs.put(local, aside)
            self.fs.delete(target)
            self.fs.rename(aside, target)

    # ------------------------------------------------------------ mirror
    def mirror_days(self, mirror: Path, days: Iterable[dt.date]) -> None:
        """Install the remote publications of `days` in the local mirror (skipping days the mirror
        already holds), so history, DQ trailing volumes and the report read them as local files."""
        for day in sorted(set(days) - self._mirrored):
            self._mirrored.add(day)
            if wh.current_version(mirror, day) is not None:
                continue
            tables = [t for t in OUTPUT_TABLES if self.fs.is_dir(self.partition(t, day))]
            if not tables:
                continue
            pulled = mirror / "_pull" / _ds(day)
            shutil.rmtree(pulled, ignore_errors=True)
            for table in tables:
                self.fs.get(self.partition(table, day), pulled / table)
            version = self._text(self._versions(day, CURRENT)) or f"remote-{secrets.token_hex(4)}"
            runs = {}
            for name, uri in self._published_run_files(day, version).items():
                self.fs.get(uri, pulled / RUNS / name)
                runs[name] = pulled / RUNS / name
            with wh.ds_lock(mirror, day):
                wh.publish(mirror, day, version, {t: pulled / t for t in tables}, runs)
            shutil.rmtree(pulled, ignore_errors=True)

    def _published_run_files(self, day: dt.date, version: str) -> dict[str, str]:
        """The run files of the publication in place. After a failed gate `_runs/ds=D/` holds the
        failed attempt's (as on a local warehouse); the published run's are in its attempt record."""
        top = {n: self.uri(RUNS, _ds(day), n) for n in ("manifest.json", "dq.json")}
        manifest = json.loads(self._text(top["manifest.json"]) or "{}")
        if manifest.get("published", True):
            return {n: u for n, u in top.items() if self.fs.exists(u)}
        # A version id is `<run id>-<8 hex>` (nightly.publish_day).
        attempt = self.uri(RUNS, _ds(day), "attempts", version.rsplit("-", 1)[0])
        return {n: f"{attempt}/{n}" for n in top if self.fs.exists(f"{attempt}/{n}")}

    def mirror_attempts(self, mirror: Path, ds: dt.date) -> None:
        """ds's earlier attempt records, so the `_runs/ds=D` this run swaps in still lists them."""
        uri = self.uri(RUNS, _ds(ds), "attempts")
        local = wh.runs_dir(mirror, ds) / "attempts"
        if self.fs.is_dir(uri) and not local.exists():
            self.fs.get(uri, local)

    def mirror_index(self, mirror: Path) -> None:
        """What the report index lists for days this run does not touch: their run files, and an
        empty stand-in for their report (render_index lists report files; put_reports skips empty ones)."""
        reports = mirror / "reports"
        for name, is_dir in self.fs.list_dir(self.uri("reports")):
            if is_dir or not name.endswith(".html") or name == "index.html" or name.startswith("."):
                continue
            with contextlib.suppress(ValueError):
                day = dt.date.fromisoformat(name[:-5])
                runs = wh.runs_dir(mirror, day)
                for run_file in ("manifest.json", "dq.json"):
                    uri = self.uri(RUNS, _ds(day), run_file)
                    if not (runs / run_file).exists() and self.fs.exists(uri):
                        self.fs.get(uri, runs / run_file)
                if not (reports / name).exists():
                    reports.mkdir(parents=True, exist_ok=True)
                    (reports / name).touch()
