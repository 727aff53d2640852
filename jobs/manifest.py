"""What a run records about itself: versions, code revision, timings (DESIGN §4, run manifest)."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from transforms.repeat_offenders import OFFENDER_CATEGORIES

# OFFENDER_CATEGORIES: the manifest key of the report's per-category view of repeat_offenders (a few
# rows), computed with the offenders, so the report need not read the 30 days of
# creator_category_daily a second time.
__all__ = ["OFFENDER_CATEGORIES", "StageTimer", "code_revision", "versions"]

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
    """Seconds per named stage, for the manifest and the benchmarks."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 6)
