"""great-expectations is imported without its Spark and SQL probes and with scipy.stats and altair
deferred to their first use (expectations._gx), only by the thread that imports it and only while it
does; the gate still gives its verdict that way, and an expectation that needs scipy still works.

Each case runs in its own interpreter: in the test session another test may have imported pyspark
first, and then great-expectations sees it whatever this module does.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, str(ROOT), *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


_NIGHTLY = """
import datetime as dt, json, sys
sys.path.insert(0, sys.argv[1])
from jobs.generate import generate
from jobs.nightly import run_days
generate(sys.argv[2] + "/in", dt.date(2024, 1, 1), 1, 3000, 7)
[day] = run_days(sys.argv[2] + "/in", sys.argv[2] + "/out", [dt.date(2024, 1, 1)], "polars", report=False)
from great_expectations.compatibility import pyspark, sqlalchemy
loaded_during_run = {m: m in sys.modules for m in ("great_expectations", "pyspark", "sqlalchemy")}
executed_during_run = {m: m in sys.modules for m in ("scipy.stats._stats_py", "altair.vegalite")}
import pyspark as spark_afterwards, sqlalchemy as sql_afterwards
print(json.dumps({
    "verdict": day.verdict,
    "published": day.published,
    "loaded_during_run": loaded_during_run,
    "executed_during_run": executed_during_run,
    "gx_sees_pyspark": type(pyspark.pyspark).__name__,
    "gx_sees_sqlalchemy": type(sqlalchemy.sqlalchemy).__name__,
    "importable_afterwards": [spark_afterwards.__name__, sql_afterwards.__name__],
}))
"""


def test_a_polars_run_gates_with_great_expectations_and_never_loads_pyspark_or_sqlalchemy(tmp_path: Path) -> None:
    result = _run(_NIGHTLY, str(tmp_path))
    assert result["verdict"] in {"pass", "warn"}
    assert result["published"] is True
    assert result["loaded_during_run"] == {"great_expectations": True, "pyspark": False, "sqlalchemy": False}
    # great-expectations took both for not installed: its stand-in for a missing optional package.
    assert result["gx_sees_pyspark"] == "NotImported"
    assert result["gx_sees_sqlalchemy"] == "NotImported"
    # Hidden only while it imported: the same process imports both afterwards.
    assert result["importable_afterwards"] == ["pyspark", "sqlalchemy"]
    # Imported by great-expectations, but the gate never ran what uses them.
    assert result["executed_during_run"] == {"scipy.stats._stats_py": False, "altair.vegalite": False}


_KL_DIVERGENCE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from expectations._gx import gx, gxe
import pandas as pd
deferred = {m: type(sys.modules[m]).__name__ for m in ("scipy.stats", "altair")}
batch = (
    gx.get_context(mode="ephemeral").data_sources.add_pandas("p").add_dataframe_asset("a")
    .add_batch_definition_whole_dataframe("b")
    .get_batch(batch_parameters={"dataframe": pd.DataFrame({"x": ["a"] * 50 + ["b"] * 50})})
)
results = [
    batch.validate(gxe.ExpectColumnKLDivergenceToBeLessThan(
        column="x", partition_object={"values": ["a", "b"], "weights": weights}, threshold=0.1,
    ))
    for weights in ([0.5, 0.5], [0.9, 0.1])
]
import altair
chart = type(altair.Chart()).__name__
print(json.dumps({
    "deferred": deferred,
    "success": [r.success for r in results],
    "observed": [r.result["observed_value"] for r in results],
    "chart": chart,
    "executed_after": {m: m in sys.modules for m in ("scipy.stats._stats_py", "altair.vegalite")},
}))
"""


def test_the_deferred_modules_load_whole_when_an_expectation_uses_them() -> None:
    result = _run(_KL_DIVERGENCE)
    # Bound at import, not yet executed.
    assert result["deferred"] == {"scipy.stats": "_LazyModule", "altair": "_LazyModule"}
    # scipy's entropy of the observed (1/2, 1/2) against the expected weights: 0, then
    # 1/2 ln(0.5/0.9) + 1/2 ln(0.5/0.1).
    assert result["success"] == [True, False]
    assert result["observed"][0] == 0.0
    assert abs(result["observed"][1] - (0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1))) < 1e-12
    assert result["chart"] == "Chart"
    assert result["executed_after"] == {"scipy.stats._stats_py": True, "altair.vegalite": True}


_THREADS = """
import json, sys, threading
sys.path.insert(0, sys.argv[1])
from expectations._gx import deferred, hidden
seen = {}
def other_thread():
    import json.tool
    seen["other"] = "json.tool" in sys.modules
with hidden(["json"]):
    try:
        import json.tool
        seen["this"] = "imported"
    except ModuleNotFoundError as exc:
        seen["this"] = str(exc)
    t = threading.Thread(target=other_thread); t.start(); t.join()
import json.tool as after
seen["after"] = after.__name__

def other_thread_deferred():
    import csv
    seen["other_deferred"] = type(csv).__name__
with deferred(["csv", "tomllib", "wave"]):
    import tomllib
    seen["this_deferred"] = type(tomllib).__name__
    t = threading.Thread(target=other_thread_deferred); t.start(); t.join()
import wave
seen["after_deferred"] = type(wave).__name__
seen["loads_on_use"] = [tomllib.loads("a = 1"), type(tomllib).__name__]
print(json.dumps(seen))
"""


def test_a_hidden_module_is_hidden_from_the_importing_thread_only_and_only_inside_the_block() -> None:
    # json itself is loaded already (sys.modules wins over any finder); json.tool is not.
    seen = _run(_THREADS)
    assert seen["this"] == "No module named 'json.tool' (hidden from great-expectations)"
    assert seen["other"] is True
    assert seen["after"] == "json.tool"


def test_a_deferred_module_is_deferred_for_the_importing_thread_only_and_only_inside_the_block() -> None:
    seen = _run(_THREADS)
    assert seen["this_deferred"] == "_LazyModule"
    assert seen["other_deferred"] == "module"
    assert seen["after_deferred"] == "module"
    # The first attribute read executes it, and it becomes a plain module.
    assert seen["loads_on_use"] == [{"a": 1}, "module"]
