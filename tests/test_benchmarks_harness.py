"""The benchmark harness at tiny size produces a well-formed result (no timing assertions)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from pathlib import Path

from benchmarks import run as bench


def _tiny_input(root: Path, ds: dt.date) -> None:
    """A hand-built day, for when the generator is not there to make one."""
    from tests.test_duckdb_reference import appeal, audit, dec, shift, viol, write

    t = dt.datetime.combine(ds, dt.time(12), dt.UTC)
    at = {"decided_at": t}
    write(root, "decisions", ds, [viol(f"v{i}", **at) for i in range(5)] + [dec(f"n{i}", **at) for i in range(5)])
    write(root, "appeals", ds, [appeal("a1", resolved_at=t, appealed_at=t - dt.timedelta(hours=1),
                                       decided_at=t - dt.timedelta(days=1))])
    write(root, "qa_audits", ds, [audit("q1", audited_at=t)])
    write(root, "shifts", ds, [shift("r1", shift_date=ds)])


def test_harness_tiny_writes_well_formed_results(tmp_path: Path) -> None:
    out = tmp_path / "results"
    if importlib.util.find_spec("jobs.generate") is not None:
        args = ["--tiny"]
    else:
        ds = bench.DEFAULT_DS
        _tiny_input(tmp_path / "input", ds)
        args = ["--input", str(tmp_path / "input"), "--ds", ds.isoformat()]
    assert bench.main([*args, "--out", str(out), "--timeout", "300"]) == 0

    result = json.loads((out / "results.json").read_text())
    assert {"python", "polars", "duckdb", "cpu_count", "scan_method"} <= set(result["meta"])
    assert len(result["runs"]) == 1
    run = result["runs"][0]
    assert set(run["input_rows"]) == set(bench.INPUT_TABLES)
    assert run["total_input_rows"] == sum(run["input_rows"].values()) > 0
    assert set(run["steps"]) == set(bench.CONTENDERS)
    for name, step in run["steps"].items():
        assert isinstance(step["rc"], int), name
        assert step["wall_s"] >= 0 and step["cpu_s"] >= 0 and step["peak_rss_mib"] > 0, name
        assert (step["rows_per_s"] is None) == (not step["ok"]), name
    # The floor and the reference are this harness's own; the job may still be under construction.
    assert run["steps"]["scan"]["ok"] and run["steps"]["duckdb"]["ok"]
    assert set(run["ratios"]) >= {"riskinsight_over_duckdb_wall", "riskinsight_over_scan_wall"}
    if run["parity"] is not None:
        assert isinstance(run["parity"]["all_equal"], bool)

    md = (out / "results.md").read_text()
    assert md.startswith("# riskinsight benchmark")
    assert "| run | input rows | contender |" in md
    for name in bench.CONTENDERS:
        assert f"| {name} |" in md
