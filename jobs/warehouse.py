"""The one I/O layer over the warehouse directories: partition paths, markers, the lock and publication.

Compute code asks this module for partitions by (table, ds) and never builds a path itself.
Publication of a ds: every table is written aside under `_candidates/ds=D/`, then hard-linked into a new
version and made visible by one atomic symlink flip (see `publish`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from jobs import faults
from jobs.errors import InputMissing, LockHeld, WarehouseConflict

SUCCESS = "_SUCCESS"


_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(location: object) -> bool:
    """`scheme://...` (hdfs://, s3a://, file://): a filesystem URI rather than a local path."""
    return bool(_URI.match(str(location)))


def missing_dir(path: Path) -> str:
    """Why a directory that should be at `path` is not: for a one-line error naming it."""
    return "is not a directory" if Path(path).exists() else "does not exist"


def partition_dir(root: Path, table: str, ds: dt.date) -> Path:
    return Path(root) / table / f"ds={ds.isoformat()}"


def is_data_file(name: str) -> bool:
    """A partition's data file: `*.parquet`, not hidden. Hadoop writers and readers (Spark, Hive) keep
    `_`/`.` names for files that are not the data yet, or not anymore: an in-progress or abandoned
    attempt's copy, read as data, was counted beside the committed file."""
    return name.endswith(".parquet") and not name.startswith(("_", "."))


def local_parquet_files(partition: Path | str) -> list[Path]:
    """The data files of a local partition, sorted (what HadoopFS.parquet_files lists for a URI)."""
    return sorted(p for p in Path(partition).iterdir() if p.is_file() and is_data_file(p.name))


def runs_dir(output: Path, ds: dt.date) -> Path:
    return Path(output) / "_runs" / f"ds={ds.isoformat()}"


def attempts_dir(output: Path, ds: dt.date) -> Path:
    """Where every run of ds records its attempt, one folder per run id."""
    return runs_dir(output, ds) / "attempts"


def candidate_dir(output: Path, ds: dt.date) -> Path:
    return Path(output) / "_candidates" / f"ds={ds.isoformat()}"


class InputFS(Protocol):
    """What input_partition needs from a non-local filesystem (e.g. jobs.engines.hadoop_fs.HadoopFS)."""

    def is_dir(self, uri: str) -> bool: ...

    def is_file(self, uri: str) -> bool: ...


def input_partition(input_dir: Path | str, table: str, ds: dt.date, fs: InputFS | None = None) -> Path | str:
    """The complete input partition of (table, ds), or InputMissing with a one-line reason.

    With `fs`, input_dir is a URI and so is the result; otherwise both are local paths.
    """
    if fs is None:
        path: Path | str = partition_dir(Path(input_dir), table, ds)
        is_dir, has_marker = path.is_dir(), (path / SUCCESS).exists()
    else:
        path = f"{str(input_dir).rstrip('/')}/{table}/ds={ds.isoformat()}"
        is_dir = fs.is_dir(path)
        has_marker = is_dir and fs.is_file(f"{path}/{SUCCESS}")
    if not is_dir:
        raise InputMissing(f"input {table} ds={ds}: partition {path} does not exist")
    if not has_marker:
        raise InputMissing(f"input {table} ds={ds}: partition {path} has no {SUCCESS} marker (incomplete)")
    return path


def published_days(output: Path, table: str) -> list[dt.date]:
    base = Path(output) / table
    if not base.is_dir():
        return []
    days = []
    for child in base.iterdir():
        if child.is_dir() and child.name.startswith("ds="):
            try:
                days.append(dt.date.fromisoformat(child.name[3:]))
            except ValueError:
                continue
    return sorted(days)


def published_partitions(output: Path, table: str, first: dt.date, last: dt.date) -> dict[dt.date, Path]:
    return {d: partition_dir(output, table, d) for d in published_days(output, table) if first <= d <= last}


@contextlib.contextmanager
def replacing(path: Path | str) -> Iterator[Path]:
    """A temporary path beside `path` to write, renamed over `path` once written and on disk.

    A reader sees the old file or the new one, never half of one; the dot-name keeps the temporary
    out of `*.parquet` globs; a write that fails (or a `path` that is a directory) leaves no
    temporary file behind. Every file the job writes whole goes through here. Writers of one file
    need no common lock (runs of different days all rewrite reports/index.html): each gets its own
    temporary, and the last rename wins whole.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = _new_temporary(path)
    except OSError as exc:
        # A directory the job may not write: the error named the temporary's random dot-name
        # (`.2024-01-09.html.tmp-<hex>`), not the file the on-call will look for.
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is None:
            # A full disk fails the write or the fsync, whose error names no file: the run's one
            # line said only `No space left on device`, not on which volume or what was lost.
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)


def _new_temporary(path: Path) -> Path:
    """A new, empty, dot-named file beside `path`, created by this call alone (O_EXCL). Named by a
    random token, not the pid: threads share a pid, and so do containers on one shared volume
    (pid 1 in each), and two writers sharing a temporary tore or lost each other's file."""
    while True:
        tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(8)}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


# What `replacing` and `_relative_link` name their temporaries: `.<file name>.tmp-<16 hex>`, `.<name>.link-<pid>`.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?:tmp-[0-9a-f]{16}|link-[0-9]+)$")


def remove_temporaries(directory: Path, of: str | None = None) -> list[Path]:
    """Remove the temporaries in `directory` (of the file named `of` only, when given) that a writer
    killed mid-write left: nothing else ever would. Call only under the lock every writer of those
    files holds, as a live writer's temporary looks the same."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for child in sorted(directory.iterdir()):
        found = _TEMPORARY.match(child.name)
        if found and (of is None or found["name"] == of) and not child.is_dir():
            child.unlink(missing_ok=True)
            removed.append(child)
    return removed


def write_text(path: Path | str, text: str) -> None:
    """`text` as UTF-8 with \\n line ends (the same bytes on every platform), atomically."""
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def write_json(path: Path, data: object) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> dict | None:
    """The JSON file at `path`, None where there is none. A file that is not JSON (truncated, a
    disk that filled while it was written by hand) is a WarehouseConflict naming it, one line:
    a JSONDecodeError from deep in the report or the lineage check ended runs with tracebacks."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
        raise WarehouseConflict(
            f"warehouse file {path} is not valid JSON ({exc}); "
            "restore it from a backup or rerun its day"
        ) from None


# ------------------------------------------------------------------ lock
# Re-entry is per thread (run_day holds the lock and calls prepare_day, which takes it again). Another
# thread of the process waits like another process: first on a threading lock per lock file, as
# flock would not make it wait where flock is emulated by per-process POSIX locks (NFS), then on the
# flock. A re-entry table per process let a second thread straight in, and the first to leave
# released the flock while the other was still inside.
_HELD = threading.local()
_THREAD_LOCKS: dict[str, threading.Lock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


def _held_by_this_thread() -> set[str]:
    if not hasattr(_HELD, "paths"):
        _HELD.paths = set()
    return _HELD.paths


def _thread_lock(key: str) -> threading.Lock:
    with _THREAD_LOCKS_GUARD:
        return _THREAD_LOCKS.setdefault(key, threading.Lock())


def _lock_held(path: Path, output: Path, ds: dt.date, wait_s: float) -> LockHeld:
    holder = path.read_text(encoding="utf-8", errors="replace").strip() or "another process"
    advice = (f"still held after --lock-wait {wait_s:g}; retry later or wait longer" if wait_s > 0
              else "retry later or pass --lock-wait SECONDS")
    return LockHeld(f"ds={ds} of {output} is being run by {holder}; {advice}")


def _flock(fd: int, path: Path, output: Path, ds: dt.date, deadline: float, wait_s: float) -> None:
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            if time.monotonic() >= deadline:
                raise _lock_held(path, output, ds, wait_s) from None
            time.sleep(0.2)


@contextlib.contextmanager
def ds_lock(output: Path, ds: dt.date, wait_s: float = 0.0) -> Iterator[None]:
    """One run per (output, ds). flock is released by the kernel when a holder dies, so a lock
    left by a killed run is never stale; re-entrant within one thread."""
    path = Path(output) / "_locks" / f"ds={ds.isoformat()}.lock"
    key = str(path.absolute())
    held = _held_by_this_thread()
    if key in held:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    in_process = _thread_lock(key)
    if not in_process.acquire(timeout=min(max(wait_s, 0.0), threading.TIMEOUT_MAX)):
        raise _lock_held(path, output, ds, wait_s)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _flock(fd, path, output, ds, deadline, wait_s)
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
            held.add(key)
            recover(output, ds)
            yield
        finally:
            if key in held:
                # Not left behind to be named as the holder of a lock someone else takes next
                # (a killed run's name stays: it is the last one that held it).
                os.ftruncate(fd, 0)
            held.discard(key)
            os.close(fd)  # closing releases the flock
    finally:
        in_process.release()


@contextlib.contextmanager
def file_lock(path: Path | str) -> Iterator[None]:
    """An exclusive lock on `path` (created if missing) around a short read-then-write of a file that
    runs of different days share (reports/index.html), waiting for the holder: the kernel releases
    a dead holder's flock, and threads of this process queue on a threading lock first (see ds_lock)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _thread_lock(str(path.absolute())):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


# ------------------------------------------------------------------ publish
# A ds's publication is one directory per run under _versions/ds=D/<version>/ holding every table and
# the run files. `<table>/ds=D` and `_runs/ds=D/<file>` are fixed relative symlinks through
# `_versions/ds=D/current`, and publishing is one atomic os.replace of that `current` link, so every
# reader (Polars, DuckDB, Spark follow the links) sees all old tables or all new ones, never a mix,
# and a run killed at any point leaves the previous publication as it was.
CURRENT, PREVIOUS = "current", "previous"
VERSIONS = "_versions"
# Where a version keeps the `files` of publish(), each at its path under the output.
FILES = "_files"


def versions_dir(output: Path, ds: dt.date, root: str = VERSIONS) -> Path:
    """The versions of ds under `root`: another publisher (the DSA source) keeps its own root, so
    that an output shared with the main job never has one's `current` flip the other's tables."""
    return Path(output) / root / f"ds={ds.isoformat()}"


def current_version(output: Path, ds: dt.date) -> str | None:
    """The version id of ds's publication in place, or None where ds was never published."""
    current = versions_dir(output, ds) / CURRENT
    return os.readlink(current) if current.is_symlink() else None


def published_run_file(output: Path, ds: dt.date, name: str) -> Path:
    """A run file of the publication in place (manifest.json, dq.json), whatever the last attempt wrote."""
    return versions_dir(output, ds) / CURRENT / "_runs" / name


def _relative_link(path: Path, target: Path) -> None:
    """Point `path` at `target` (a relative link, so the warehouse can move); atomic if it exists."""
    rel = os.path.relpath(target, path.parent)
    if path.is_symlink() and os.readlink(path) == rel:
        return
    if path.is_dir() and not path.is_symlink():
        # A run file may be a failed attempt's record (archived under attempts/); a real table
        # directory here was not made by publish and is never overwritten.
        raise WarehouseConflict(f"{path} is a real directory, not a published link; move it away first")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.link-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    os.symlink(rel, tmp)
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Every file under `root` on disk, then every directory's entries, deepest first.

    Engines write tables with plain writes (no fsync), and a hard link or a symlink flip does not
    make the kernel write a file's data out the way a rename over an old file may (ext4's
    auto_da_alloc). Without this, a power cut after the flip could leave `current` pointing at
    empty or torn Parquet files, with the previous publication already unlinked from every table.
    """
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _link_or_copy(src: str | Path, dst: str | Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # a filesystem without hard links
        shutil.copy2(src, dst)


def publish(output: Path, ds: dt.date, version: str, tables: dict[str, Path], run_files: dict[str, Path],
            *, files: dict[str, Path] | None = None, root: str = VERSIONS) -> None:  # fmt: skip
    """Link the finished candidate into a new version of ds (under `root`) and flip `current` to it.

    `tables` maps table -> finished candidate partition dir; `run_files` maps a file name of
    `_runs/ds=D/` -> finished candidate file; `files` maps any other path under `output` (a DSA
    day's manifest and page) -> finished candidate file, reached through a link at that path (a
    path of an earlier version's `files` that this one lacks is left a dangling link: gone with the
    flip). Must be called under ds_lock. The version's files are
    hard links to the candidate's, not the candidate moved: the candidate stays whole until the
    caller removes it after the flip, so a publish killed or failed at any point can be run again
    (an Airflow retry of the publish task). Moved, a publish killed after its first rename left a
    candidate that no retry could load, and the day had to be prepared again.
    """
    output = Path(output)
    files = files or {}
    versions = versions_dir(output, ds, root)
    new = versions / version
    (new / "_runs").mkdir(parents=True)
    for table, src in sorted(tables.items()):
        shutil.copytree(src, new / table, copy_function=_link_or_copy)
    for name, src in sorted(run_files.items()):
        _link_or_copy(src, new / "_runs" / name)
    for rel, src in sorted(files.items()):
        (new / FILES / rel).parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(src, new / FILES / rel)
    _fsync_tree(new)
    faults.point("publish:version_written")
    current = versions / CURRENT
    links = {partition_dir(output, table, ds): current / table for table in tables}
    links.update({runs_dir(output, ds) / name: current / "_runs" / name for name in run_files})
    links.update({output / rel: current / FILES / rel for rel in files})
    for link, target in links.items():
        _relative_link(link, target)
    # A first publication of the day adds these links; on disk before the flip, or a crash could
    # leave a published `current` that no table path leads to.
    for parent in sorted({versions.parent, *(link.parent for link in links)}):
        _fsync_dir(parent)
    faults.point("publish:links_ready")
    if current.is_symlink():
        _relative_link(versions / PREVIOUS, versions / os.readlink(current))
    _relative_link(current, new)  # the one step that publishes
    _fsync_dir(versions)
    faults.point("publish:flipped")
    recover(output, ds, root)


def recover(output: Path, ds: dt.date, root: str = VERSIONS) -> list[str]:
    """Remove versions no reader can reach (a run killed before its flip, or older than the
    previous publication, kept one round for readers still reading it), and the temporaries of
    ds's run files and links left by a run killed mid-write (their writers all hold ds's lock, as
    the callers of recover do). Returns the versions removed."""
    output = Path(output)
    _remove_day_temporaries(output, ds, root)
    versions = versions_dir(output, ds, root)
    if not versions.is_dir():
        return []
    keep = {os.readlink(versions / n) for n in (CURRENT, PREVIOUS) if (versions / n).is_symlink()}
    removed = []
    for child in sorted(versions.iterdir()):
        if child.is_symlink() or child.name in keep:
            continue
        shutil.rmtree(child) if child.is_dir() else child.unlink()
        removed.append(child.name)
    return removed


def _remove_day_temporaries(output: Path, ds: dt.date, root: str = VERSIONS) -> None:
    runs, versions = runs_dir(output, ds), versions_dir(output, ds, root)
    attempts = attempts_dir(output, ds)
    directories = [runs, versions, *(sorted(attempts.iterdir()) if attempts.is_dir() else [])]
    if versions.is_dir():
        directories += [v / "_runs" for v in sorted(versions.iterdir()) if not v.is_symlink()]
    for directory in directories:
        remove_temporaries(directory)
    # The links `<table>/ds=D` sit beside other days' links, whose runs hold other locks.
    for table in sorted(output.iterdir()) if output.is_dir() else []:
        if table.is_dir() and not table.name.startswith("_"):
            remove_temporaries(table, of=f"ds={ds.isoformat()}")
