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


# ---------------------------------------------------------------- --merge, parity, the work folder, timing

DS = bench.DEFAULT_DS


def _fake_step(name, cmd, env, output, ds, total, timeout_s) -> dict:
    """_measure_contender without running anything: a passing step that leaves its output folder."""
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
    return {"cmd": cmd, "rc": 0, "ok": True, "skipped": False, "timed_out": False, "wall_s": 1.0, "cpu_s": 1.0,
            "peak_rss_mib": 10.0, "rows_per_s": 1.0, "stderr_tail": "", "loadavg_before": [0.0] * 3,
            "loadavg_after": [0.0] * 3}


def _earlier(input_dir: Path, *, started_at: str = "2026-11-27T20:00:00+00:00", **steps: dict) -> dict:
    """This label's run from an earlier invocation on the same --input."""
    rows = bench.input_rows(input_dir, DS)
    identity = bench.input_identity(input_dir, DS, rows, rows_per_day=None, seed=None)
    return {"label": "input", "started_at": started_at, "input_identity": identity, "steps": steps}


def _bench(tmp_path: Path, contenders: tuple[str, ...], previous: dict | None, **kw) -> dict:
    return bench.bench_one("input", tmp_path / "in", DS, tmp_path / "w", timeout_s=60, duckdb_memory=None,
                           contenders=contenders, previous=previous, **kw)


@pytest.fixture
def fake_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, Path]]:
    """Contenders faked; (reference output, job output) of every parity check the harness makes."""
    (tmp_path / "in").mkdir()
    calls: list[tuple[Path, Path]] = []
    monkeypatch.setattr(bench, "_measure_contender", _fake_step)
    monkeypatch.setattr(bench, "_parity", lambda ref, job, ds, published=True: calls.append((ref, job)) or {"all_equal": True})
    return calls


def test_merge_never_compares_a_side_measured_in_an_earlier_invocation(tmp_path: Path, fake_runs) -> None:
    # The reference kept from before: its output, if any is left in the work folder, is not this run's.
    (tmp_path / "w" / "out_duckdb").mkdir(parents=True)
    run = _bench(tmp_path, ("riskinsight_no_dq",), _earlier(tmp_path / "in", duckdb=_fake_step("duckdb", [], {}, None, DS, 1, 1)))
    assert run["steps"]["duckdb"]["from_earlier_invocation"] and fake_runs == []
    assert run["parity"] is None and "earlier invocation" in run["parity_notes"][0]
    # A job run kept from before, its stale output (of the run above) still in the work folder, beside a
    # new reference.
    assert (tmp_path / "w" / "out_job_no_dq").is_dir()
    run = _bench(tmp_path, ("duckdb",), _earlier(tmp_path / "in", riskinsight_no_dq=_fake_step("n", [], {}, None, DS, 1, 1)))
    assert fake_runs == [] and run["parity"] is None
    assert run["parity_notes"] == ["riskinsight_no_dq: not compared (measured in an earlier invocation, --merge)"]
    md = bench.render_markdown({"meta": bench._meta(), "runs": [run]})
    assert "- input: riskinsight_no_dq: not compared (measured in an earlier invocation" in md
    # Both measured now: compared.
    _bench(tmp_path, ("duckdb", "riskinsight_no_dq"), None)
    assert fake_runs == [(tmp_path / "w" / "out_duckdb", tmp_path / "w" / "out_job_no_dq")]


def test_merge_keeps_only_a_run_measured_on_the_same_input(tmp_path: Path, fake_runs, capsys) -> None:
    _tiny_input(tmp_path / "in", DS)
    duck = _fake_step("duckdb", [], {}, None, DS, 1, 1)
    same = _earlier(tmp_path / "in", duckdb=duck)
    run = _bench(tmp_path, ("riskinsight",), same)
    assert run["steps"]["duckdb"]["from_earlier_invocation"] == same["started_at"]
    assert run["ratios"]["riskinsight_over_duckdb_wall"] == 1.0
    assert run["ratio_marks"] == {k: "*" for k in ("riskinsight_over_duckdb_wall", "riskinsight_over_duckdb_rss",
                                                   "riskinsight_over_duckdb_cpu")}
    assert run["input_identity"] == same["input_identity"] and run["ds"] == DS.isoformat()
    assert run["input_rows"] == bench.input_rows(tmp_path / "in", DS) and "seed" in run
    md = bench.render_markdown({"meta": bench._meta(), "runs": [run]})
    assert "| input | 1.00* | — |" in md.split("## Ratios")[1]
    # Another ds, other logs under the same label ("input"), other generator arguments: dropped, not merged.
    _tiny_input(tmp_path / "other", DS)
    (tmp_path / "other" / "shifts" / f"ds={DS}" / "part-1.parquet").write_bytes(
        next((tmp_path / "in" / "shifts" / f"ds={DS}").glob("*.parquet")).read_bytes())
    others = [
        {**same, "input_identity": {**same["input_identity"], "ds": "2023-06-30"}},
        _earlier(tmp_path / "other", duckdb=duck),
        {**same, "input_identity": {**same["input_identity"], "input_rows": {"decisions": 1}}},
    ]
    for previous in others:
        run = _bench(tmp_path, ("riskinsight",), previous)
        assert run["steps"]["duckdb"]["skipped"] and run["ratios"]["riskinsight_over_duckdb_wall"] is None
        assert "dropped, not merged" in capsys.readouterr().err
    gen = bench.input_identity(tmp_path / "in", DS, run["input_rows"], rows_per_day=2000, seed=8)
    run = _bench(tmp_path, ("riskinsight",), {**same, "input_identity": gen}, rows_per_day=2000, seed=7)
    assert run["steps"]["duckdb"]["skipped"] and run["seed"] == 7


def test_a_step_carried_twice_keeps_when_it_was_measured(tmp_path: Path, fake_runs) -> None:
    first = "2026-11-27T20:00:00+00:00"
    step = {**_fake_step("duckdb", [], {}, None, DS, 1, 1), "from_earlier_invocation": first}
    run = _bench(tmp_path, (), _earlier(tmp_path / "in", started_at="2026-11-28T03:00:00+00:00", duckdb=step))
    assert run["steps"]["duckdb"]["from_earlier_invocation"] == first


def test_a_failed_dq_gate_is_marked_in_the_ratios(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "in").mkdir()

    def measure(cmd, *, timeout_s, env=None, cwd=None):
        rc = 3 if "jobs.cli" in cmd and "--phase" not in cmd else 0  # every published run's gate fails
        return {**_fake_step("", cmd, {}, None, DS, 1, 1), "rc": rc, "ok": rc == 0}

    monkeypatch.setattr(bench, "measure", measure)
    run = _bench(tmp_path, ("scan", "riskinsight", "riskinsight_no_dq", "duckdb"), None)
    assert run["steps"]["riskinsight"]["ok"] and run["steps"]["riskinsight"]["rc"] == 3
    assert run["ratio_marks"]["riskinsight_over_duckdb_wall"] == "†"
    assert "riskinsight_no_dq_over_duckdb_wall" not in run["ratio_marks"]
    md = bench.render_markdown({"meta": bench._meta(), "runs": [run]})
    assert "| input | 1.00† | 1.00† | — | — | 1.00 | 1.00 |" in md.split("## Ratios")[1]
    assert "| riskinsight | yes (DQ gate failed) |" in md


def test_merge_keeps_earlier_sizes_when_a_size_fails_or_the_run_dies(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "res"
    out.mkdir()
    old = {"label": "100,000,000 rows", "ds": DS.isoformat(), "input_rows": {}, "total_input_rows": 10**8,
           "steps": {}, "ratios": {}, "parity": None, "started_at": "t0"}
    (out / "results.json").write_text(json.dumps({"meta": {"started_at": "t0"}, "runs": [old]}))
    monkeypatch.setattr(bench, "_measure_contender", _fake_step)

    def generate(input_dir, ds, size, seed, timeout_s):
        if size == 3:
            raise RuntimeError("generate failed (rc=137): killed")
        input_dir.mkdir(parents=True, exist_ok=True)
        return {"wall_s": 0.0}

    monkeypatch.setattr(bench, "_generate", generate)
    argv = ["--sizes", "2,3", "--merge", "--contenders", "scan", "--out", str(out)]
    assert bench.main(argv) == 1  # the size that could not be generated fails the invocation, after the others
    runs = {r["label"]: r for r in json.loads((out / "results.json").read_text())["runs"]}
    assert set(runs) == {"2 rows", "3 rows", "100,000,000 rows"}
    assert "killed" in runs["3 rows"]["error"] and runs["2 rows"]["steps"]["scan"]["ok"]
    assert "### 3 rows / generate" in (out / "results.md").read_text()

    # Killed while measuring the second size: the first and every earlier run are in the file.
    real = bench.bench_one

    def bench_one(label, *args, **kw):
        if label == "3 rows":
            raise KeyboardInterrupt
        return real(label, *args, **kw)

    monkeypatch.setattr(bench, "_generate", lambda input_dir, *a: input_dir.mkdir(parents=True) or {"wall_s": 0.0})
    monkeypatch.setattr(bench, "bench_one", bench_one)
    (out / "results.json").write_text(json.dumps({"meta": {"started_at": "t0"}, "runs": [old]}))
    with pytest.raises(KeyboardInterrupt):
        bench.main(argv)
    labels = [r["label"] for r in json.loads((out / "results.json").read_text())["runs"]]
    assert labels == ["2 rows", "100,000,000 rows"]


def test_an_input_in_the_work_folder_is_kept_or_refused(tmp_path: Path) -> None:
    _tiny_input(tmp_path / "input", DS)
    files = sorted((tmp_path / "input").rglob("*.parquet"))
    argv = ["--ds", DS.isoformat(), "--contenders", "scan", "--out", str(tmp_path / "res")]
    assert bench.main(["--input", str(tmp_path / "input"), "--work", str(tmp_path), *argv]) == 0
    assert sorted((tmp_path / "input").rglob("*.parquet")) == files
    # The folder the harness empties is the input, or holds it: refused before anything is removed.
    (tmp_path / "input").rename(tmp_path / "given_input")
    for given, work in ((tmp_path / "given_input", tmp_path), (tmp_path / "given_input", tmp_path.parent / tmp_path.name)):
        with pytest.raises(SystemExit) as exc:
            bench.main(["--input", str(given), "--work", str(work), *argv])
        assert exc.value.code == 2
    (tmp_path / "w" / "given_input").mkdir(parents=True)
    (tmp_path / "given_input").rename(tmp_path / "w" / "given_input" / "logs")
    with pytest.raises(SystemExit):
        bench.main(["--input", str(tmp_path / "w" / "given_input" / "logs"), "--work", str(tmp_path / "w"), *argv])
    assert len(list((tmp_path / "w" / "given_input" / "logs").rglob("*.parquet"))) == len(files)


def test_wall_time_is_the_commands_own() -> None:
    """Not the launcher's interpreter start and psutil import, which the harness cannot help adding."""
    import subprocess
    import sys
    import time

    starts = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import psutil"], check=True)
        starts.append(time.perf_counter() - t0)
    walls = [bench.measure(["/bin/true"], timeout_s=30) for _ in range(3)]
    assert min(m["wall_s"] for m in walls) < 0.5 * min(starts), (walls, starts)
    assert all(m["wall_s"] <= m["wall_s_with_launcher"] for m in walls)


def test_job_contender_runs_this_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The code fingerprint hashes this tree: the job must import it, not another checkout found first
    through the working directory, PYTHONPATH or the venv's editable install."""
    decoy = tmp_path / "decoy"
    (decoy / "jobs").mkdir(parents=True)
    (decoy / "jobs" / "__init__.py").write_text("raise SystemExit(42)\n")
    (decoy / "jobs" / "cli.py").write_text("raise SystemExit(42)\n")
    _tiny_input(tmp_path / "in", DS)
    monkeypatch.chdir(decoy)
    monkeypatch.setenv("PYTHONPATH", str(decoy))
    run = _bench(tmp_path, ("riskinsight_no_dq",), None)
    step = run["steps"]["riskinsight_no_dq"]
    assert step["rc"] == 0 and step["ok"], step["stderr_tail"]
    assert step["cmd"][:3] == [bench.sys.executable, "-m", "jobs.cli"]


def test_parity_reports_a_missing_partition_of_the_job(tmp_path: Path) -> None:
    import shutil

    from benchmarks.duckdb_reference import reference_tables, write_tables
    from jobs.nightly import run_days

    _tiny_input(tmp_path / "in", DS)  # a clean day: its quarantine is empty, and written all the same
    run_days(tmp_path / "in", tmp_path / "job", [DS], engine="polars", report=False)
    write_tables(tmp_path / "ref", reference_tables(tmp_path / "in", [DS]))
    assert bench._parity(tmp_path / "ref", tmp_path / "job", DS)["all_equal"]
    part = tmp_path / "job" / "quarantine" / f"ds={DS}"
    part.unlink() if part.is_symlink() else shutil.rmtree(part)
    parity = bench._parity(tmp_path / "ref", tmp_path / "job", DS)
    assert not parity["all_equal"] and not parity["quarantine"]["equal"]
    assert "missing partition" in parity["quarantine"]["differences"][0]
