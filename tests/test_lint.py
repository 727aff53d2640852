"""Static checks that catch real bugs: undefined names, unused imports, syntax errors (ruff F, E9)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_no_undefined_names_or_unused_imports():
    ruff = Path(sys.executable).parent / "ruff"
    proc = subprocess.run(
        [str(ruff), "check", "--select", "F,E9", "jobs", "transforms", "expectations", "reports", "benchmarks", "airflow_dags", "tests"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
