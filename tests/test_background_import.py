"""The run imports great-expectations beside the first day's staging with the cyclic collector paused
(jobs.nightly.import_without_collecting); these check the pause, the freeze and the failure path.

Each case runs in its own interpreter: a freeze would otherwise keep pytest's own objects out of
every later collection of the test session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import gc, json, sys
sys.path.insert(0, sys.argv[1])
from jobs.nightly import import_without_collecting
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
    env = {**os.environ, "PYTHONPATH": f"{modules}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(ROOT), module], env=env, capture_output=True, text=True, timeout=120, check=True
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
