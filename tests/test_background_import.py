"""The run imports great-expectations beside the first day's staging, in a thread of the lowest CPU
priority, with the cyclic collector paused (jobs.background_import); these check the priority, the
pause, the freeze and the failure path.

Each case runs in its own interpreter: a freeze would otherwise keep pytest's own objects out of
every later collection of the test session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import gc, json, sys
sys.path.insert(0, sys.argv[1])
from jobs.background_import import import_without_collecting
gc.unfreeze()
before = gc.get_freeze_count()
import_without_collecting(sys.argv[2])
print(json.dumps({
    "enabled_after": gc.isenabled(),
    "frozen_before": before,
    "frozen_after": gc.get_freeze_count(),
    "imported": sys.argv[2] in sys.modules,
    "enabled_during": getattr(sys.modules.get(sys.argv[2]), "ENABLED_DURING", None),
}))
"""


def _probe(modules: Path, module: str) -> dict:
    return _probe_code(modules, _PROBE, module)


def _probe_code(modules: Path, code: str, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{modules}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(ROOT), *args], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stderr == "", done.stderr
    return json.loads(done.stdout)


def test_the_import_runs_with_the_collector_paused_and_its_objects_end_frozen(tmp_path: Path) -> None:
    # A module that builds cyclic garbage, as great-expectations' import does by the hundred thousand.
    (tmp_path / "cyclic_module.py").write_text(
        "import gc\nENABLED_DURING = gc.isenabled()\n"
        "for _ in range(10000):\n    a = []; a.append(a)\n"
    )
    result = _probe(tmp_path, "cyclic_module")
    assert result["imported"] is True
    assert result["enabled_during"] is False
    assert result["enabled_after"] is True
    assert result["frozen_before"] == 0
    # The 10,000 self-referencing lists alone, never collected, are among the frozen objects.
    assert result["frozen_after"] > 10000


def test_a_failed_import_is_left_to_the_gate_and_the_collector_comes_back(tmp_path: Path) -> None:
    (tmp_path / "broken_module.py").write_text("import gc\nraise ImportError('no such dependency')\n")
    result = _probe(tmp_path, "broken_module")
    assert result["imported"] is False
    assert result["enabled_after"] is True
    # Nothing printed (the probe asserts an empty stderr): the gate's own import raises it later.


_PRIORITIES = """
import json, os, sys, threading
sys.path.insert(0, sys.argv[1])
import polars as pl
from jobs.background_import import import_in_background

def nice(tid):
    with open(f"/proc/self/task/{tid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[16])

base = nice(threading.get_native_id())
importing = import_in_background("slow_module")
# The day's work, meanwhile: Polars starts its pools from this thread.
pl.DataFrame({"a": range(200_000)}).lazy().group_by("a").len().collect(engine="streaming")
importing.join()
polars_threads = {}
for tid in os.listdir("/proc/self/task"):
    with open(f"/proc/self/task/{tid}/comm") as f:
        name = f.read().strip()
    if name.startswith("polars-"):
        polars_threads[name] = nice(tid)
module = sys.modules["slow_module"]
print(json.dumps({
    "base": base,
    "main_after": nice(threading.get_native_id()),
    "import_thread": module.PRIORITY,
    "import_thread_is_main": module.THREAD == threading.get_native_id(),
    "polars_threads": polars_threads,
}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priorities are Linux's (setpriority(2))")
def test_the_import_runs_at_the_lowest_priority_and_nothing_else_does(tmp_path: Path) -> None:
    (tmp_path / "slow_module.py").write_text(
        "import os, threading, time\n"
        "THREAD = threading.get_native_id()\n"
        "PRIORITY = os.getpriority(os.PRIO_PROCESS, THREAD)\n"
        "time.sleep(0.3)\n"
    )
    result = _probe_code(tmp_path, _PRIORITIES)
    assert result["import_thread_is_main"] is False
    assert result["import_thread"] == 19
    # Lowered for the import's thread alone: the caller and Polars' pools keep the process's priority.
    assert result["main_after"] == result["base"]
    assert result["polars_threads"], "Polars started no pool"
    assert set(result["polars_threads"].values()) == {result["base"]}
