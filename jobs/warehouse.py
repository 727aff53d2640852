"""The one I/O layer over the warehouse directories: partition paths, markers, the lock and the atomic swap.

Compute code asks this module for partitions by (table, ds) and never builds a path itself.
Publication of a ds: every table is written aside under `_candidates/ds=D/`, then swapped in
under a journal (`_runs/ds=D/publish.journal.json`), so a run killed at any point is rolled back to
the previous publication by the next run (or `recover`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from jobs import faults
from jobs.errors import InputMissing, LockHeld

SUCCESS = "_SUCCESS"


def partition_dir(root: Path, table: str, ds: dt.date) -> Path:
    return Path(root) / table / f"ds={ds.isoformat()}"


def runs_dir(output: Path, ds: dt.date) -> Path:
    return Path(output) / "_runs" / f"ds={ds.isoformat()}"


def candidate_dir(output: Path, ds: dt.date) -> Path:
    return Path(output) / "_candidates" / f"ds={ds.isoformat()}"


def input_partition(input_dir: Path, table: str, ds: dt.date) -> Path:
    """The complete input partition of (table, ds), or InputMissing with a one-line reason."""
    path = partition_dir(input_dir, table, ds)
    if not path.is_dir():
        raise InputMissing(f"input {table} ds={ds}: partition {path} does not exist")
    if not (path / SUCCESS).exists():
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


def write_json(path: Path, data: object) -> None:
    """Write JSON atomically (tmp + rename) so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


# ------------------------------------------------------------------ lock
_HELD: dict[str, int] = {}


@contextlib.contextmanager
def ds_lock(output: Path, ds: dt.date, wait_s: float = 0.0) -> Iterator[None]:
    """One run per (output, ds). flock is released by the kernel when a holder dies, so a lock
    left by a killed run is never stale; re-entrant within one process."""
    path = Path(output) / "_locks" / f"ds={ds.isoformat()}.lock"
    key = str(path.absolute())
    if key in _HELD:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    holder = Path(path).read_text(encoding="utf-8", errors="replace").strip() or "another process"
                    raise LockHeld(f"ds={ds} of {output} is being run by {holder}; retry later or pass --lock-wait SECONDS") from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
        _HELD[key] = fd
        recover(output, ds)
        yield
    finally:
        _HELD.pop(key, None)
        os.close(fd)  # closing releases the flock


# ------------------------------------------------------------------ publish
def _journal(output: Path, ds: dt.date) -> Path:
    return runs_dir(output, ds) / "publish.journal.json"


def publish(output: Path, ds: dt.date, tables: dict[str, Path], run_files: dict[str, Path]) -> None:
    """Swap every table's ds partition (and the run files) in one short step.

    `tables` maps table -> finished candidate partition dir; `run_files` maps a file name in
    `_runs/ds=D/` -> finished candidate file. Must be called under ds_lock.
    """
    output = Path(output)
    backup_root = candidate_dir(output, ds) / "_previous"
    if backup_root.exists():
        shutil.rmtree(backup_root)
    backup_root.mkdir(parents=True)
    entries = []
    for table, new in sorted(tables.items()):
        target = partition_dir(output, table, ds)
        entries.append({"kind": "dir", "target": str(target), "new": str(new), "backup": str(backup_root / table)})
    runs = runs_dir(output, ds)
    for name, new in sorted(run_files.items()):
        entries.append({"kind": "file", "target": str(runs / name), "new": str(new), "backup": str(backup_root / "_runs" / name)})
    journal = _journal(output, ds)
    write_json(journal, {"state": "swapping", "entries": entries})
    faults.point("publish:journal_written")
    for e in entries:
        target, new, backup = Path(e["target"]), Path(e["new"]), Path(e["backup"])
        target.parent.mkdir(parents=True, exist_ok=True)
        backup.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            os.rename(target, backup)
        os.rename(new, target)
        faults.point(f"publish:swapped:{Path(e['target']).parent.name}")
    write_json(journal, {"state": "committed", "entries": entries})
    faults.point("publish:committed")
    _finish(journal, backup_root)


def _finish(journal: Path, backup_root: Path) -> None:
    shutil.rmtree(backup_root, ignore_errors=True)
    journal.unlink(missing_ok=True)


def recover(output: Path, ds: dt.date) -> str | None:
    """Complete or undo a swap interrupted by a crash. Returns what was done, or None."""
    journal = _journal(output, ds)
    state = read_json(journal)
    if state is None:
        return None
    backup_root = candidate_dir(output, ds) / "_previous"
    if state["state"] == "committed":
        _finish(journal, backup_root)
        return "committed"
    # Roll back: whatever was swapped in goes away, the backups return.
    for e in reversed(state["entries"]):
        target, backup = Path(e["target"]), Path(e["backup"])
        if backup.exists():
            if target.exists():
                (shutil.rmtree if target.is_dir() else os.unlink)(target)
            os.rename(backup, target)
        elif target.exists() and not Path(e["new"]).exists():
            # Swapped in with no earlier publication to restore: remove the half-published entry.
            (shutil.rmtree if target.is_dir() else os.unlink)(target)
    _finish(journal, backup_root)
    return "rolled_back"
