"""What a run records about itself: versions, code revision, wall and CPU time per stage (DESIGN §4, run manifest)."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import subprocess
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from transforms.repeat_offenders import OFFENDER_CATEGORIES

# OFFENDER_CATEGORIES: the manifest key of the report's per-category view of repeat_offenders (a few
# rows), computed with the offenders, so the report need not read the 30 days of
# creator_category_daily a second time.
__all__ = ["OFFENDER_CATEGORIES", "StageTimer", "code_revision", "cpu_seconds", "versions"]

# /proc/<pid>/stat counts CPU in clock ticks.
_TICKS = os.sysconf("SC_CLK_TCK")

_PACKAGES = ("riskinsight", "narwhals", "polars", "pyarrow", "great-expectations", "pyspark", "pandas")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def code_revision() -> str:
    if os.environ.get("RISKINSIGHT_REVISION"):
        return os.environ["RISKINSIGHT_REVISION"]
    repo = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class StageTimer:
    """Seconds per named stage, wall and CPU, for the manifest and the benchmarks."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start, start_cpu = time.perf_counter(), cpu_seconds()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 6)
            self.cpu_seconds[name] = round(self.cpu_seconds.get(name, 0.0) + cpu_seconds() - start_cpu, 3)

    def record(self, manifest: dict) -> None:
        """Add this timer's stages to a manifest's `stage_seconds` and `stage_cpu_seconds`."""
        manifest.setdefault("stage_seconds", {}).update(self.seconds)
        manifest.setdefault("stage_cpu_seconds", {}).update(self.cpu_seconds)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (every thread), the children it has waited for and,
    on Linux, its live descendants: a local Spark JVM, whose work a stage of the driver waits on.

    Where a core was busy during a stage, CPU over wall time says how many; a stage CPU-bound on
    two cores shows about 2. An executor on another machine is not counted.
    """
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    return total + sum(_proc_cpu(pid) for pid in _live_descendants(os.getpid()))


def _live_descendants(pid: int) -> list[int]:
    """Process ids below pid, from Linux's /proc/<pid>/task/<tid>/children; none elsewhere."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                kids = [int(k) for k in children.read_text().split()]
            except (OSError, ValueError):  # the thread or process ended while being read
                continue
            found += kids
            todo += kids
    return found


def _proc_cpu(pid: int) -> float:
    """CPU seconds of a live process (its threads and its waited-for children), 0 if it has ended."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # utime, stime, cutime, cstime: fields 14-17 of proc(5), counted after the ")" that ends the name.
    return sum(int(f) for f in fields[11:15]) / _TICKS
