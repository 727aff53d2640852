"""The benchmark harness at tiny size produces a well-formed result (no timing assertions)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from pathlib import Path

import pytest

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


@pytest.mark.slow
def test_harness_tiny_writes_well_formed_results(tmp_path: Path) -> None:
    """Shape only: every figure present and typed, never how fast. Spark is left out here (its JVM
    start alone takes minutes on the shared CI machine; the Spark engine has its own parity tests), so
    its step must be recorded as skipped."""
    out = tmp_path / "results"
    if importlib.util.find_spec("jobs.generate") is not None:
        args = ["--tiny"]
    else:
        ds = bench.DEFAULT_DS
        _tiny_input(tmp_path / "input", ds)
        args = ["--input", str(tmp_path / "input"), "--ds", ds.isoformat()]
    selected = [c for c in bench.CONTENDERS if c != "spark"]
    argv = [*args, "--out", str(out), "--timeout", "300", "--contenders", ",".join(selected), "--repeat", "2"]
    assert bench.main(argv) == 0

    result = json.loads((out / "results.json").read_text())
    meta = result["meta"]
    assert {"python", "polars", "duckdb", "cpu_count", "nproc", "cpu_model", "memory_gib", "loadavg_at_start",
            "scan_method"} <= set(meta)
    assert len(meta["loadavg_at_start"]) == 3
    assert len(result["runs"]) == 1
    run = result["runs"][0]
    assert set(run["input_rows"]) == set(bench.INPUT_TABLES)
    assert run["total_input_rows"] == sum(run["input_rows"].values()) > 0
    assert set(run["steps"]) == set(bench.CONTENDERS)
    assert run["steps"]["spark"]["skipped"] and not run["steps"]["spark"]["ok"]
    for name in selected:
        step = run["steps"][name]
        assert not step["skipped"], name
        assert isinstance(step["rc"], int), name
        assert step["wall_s"] >= 0 and step["cpu_s"] >= 0 and step["peak_rss_mib"] > 0, name
        assert (step["rows_per_s"] is None) == (not step["ok"]), name
        assert len(step["loadavg_before"]) == len(step["loadavg_after"]) == 3, name
        assert len(step["repeats"]) == 2 and step["wall_s_min"] <= step["wall_s"] <= step["wall_s_max"], name
    for name in ("riskinsight", "riskinsight_no_report"):
        step = run["steps"][name]
        if step["ok"] and step["stage_seconds"] is not None:
            assert {"read_stage", "compute", "history", "write", "dq", "publish"} <= set(step["stage_seconds"]), name
            assert step["derived_wall_without_dq_s"] <= step["wall_s"], name
            # CPU per stage for the same stages, within the CPU the launcher measured for the process.
            assert set(step["stage_cpu_seconds"]) == set(step["stage_seconds"]), name
            assert 0 < sum(step["stage_cpu_seconds"].values()) <= step["cpu_s"] + 0.05, name
    # The run without DQ and report stops at the candidate: its stages are read from the candidate's
    # manifest, and no gate, publish or report ran.
    no_dq = run["steps"]["riskinsight_no_dq"]
    assert no_dq["ok"] and no_dq["rc"] == 0
    assert set(no_dq["stage_seconds"]) == {"read_stage", "compute", "history", "write"}
    # The floor and the reference are this harness's own; the job may still be under construction.
    assert run["steps"]["scan"]["ok"] and run["steps"]["duckdb"]["ok"]
    assert set(run["ratios"]) >= {"riskinsight_over_duckdb_wall", "riskinsight_over_scan_wall",
                                  "spark_over_riskinsight_wall"}
    if run["parity"] is not None:
        for verdict in run["parity"].values():
            assert isinstance(verdict["all_equal"], bool)
        # The candidate's tables are compared too (found where the run left them, not a missing file).
        assert run["parity"]["riskinsight_no_dq"]["all_equal"], run["parity"]["riskinsight_no_dq"]

    md = (out / "results.md").read_text()
    assert md.startswith("# riskinsight benchmark")
    assert "| run | input rows | contender |" in md
    assert "derived" in md and "load average" in md
    assert "## CPU per stage" in md and f"| {run['label']} | riskinsight | " in md.split("## CPU per stage")[1]
    for name in bench.CONTENDERS:
        assert f"| {name} |" in md
    assert "2 runs)" in md


def _run(wall: float, rss: float, ok: bool = True) -> dict:
    return {"ok": ok, "rc": 0 if ok else 1, "wall_s": wall, "cpu_s": wall * 1.5, "peak_rss_mib": rss,
            "loadavg_before": [1.0, 1.0, 1.0], "loadavg_after": [1.0, 1.0, 1.0], "stage_seconds": {"compute": wall / 2}}


def test_a_repeated_contender_reports_its_median_run_and_its_largest_peak() -> None:
    runs = [_run(30.0, 900), _run(20.0, 1500), _run(25.0, 1000)]
    step = bench._median_run(runs)
    # The median run's own figures (its stages too), the range of all, the largest peak of all.
    assert (step["wall_s"], step["cpu_s"], step["stage_seconds"]) == (25.0, 37.5, {"compute": 12.5})
    assert (step["wall_s_min"], step["wall_s_max"], step["peak_rss_mib"]) == (20.0, 30.0, 1500)
    assert [r["wall_s"] for r in step["repeats"]] == [30.0, 20.0, 25.0]
    assert bench._median_run(runs[:2])["wall_s"] == 20.0  # an even count takes the lower middle
    assert bench._median_run([_run(5.0, 10)]) == _run(5.0, 10)  # a single run is reported as it is


def test_a_contender_that_fails_once_is_reported_failed() -> None:
    step = bench._median_run([_run(20.0, 900), _run(1.0, 50, ok=False), _run(22.0, 950)])
    assert not step["ok"] and step["wall_s"] == 1.0 and len(step["repeats"]) == 3


def test_the_code_fingerprint_covers_every_package_the_job_runs(tmp_path: Path) -> None:
    for package in ("jobs", "transforms", "expectations", "reports", "tests"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "m.py").write_text("x = 1\n")
    before = bench.code_fingerprint(tmp_path)["sources_sha256"]
    (tmp_path / "tests" / "m.py").write_text("x = 2\n")  # not the job's code
    assert bench.code_fingerprint(tmp_path)["sources_sha256"] == before
    for package in ("jobs", "transforms", "expectations", "reports"):
        (tmp_path / package / "m.py").write_text(f"x = '{package}'\n")
        after = bench.code_fingerprint(tmp_path)["sources_sha256"]
        assert after != before, package
        before = after
