"""Benchmark harness: the nightly job against a bare Polars scan (the floor), Spark and the DuckDB reference.

    python -m benchmarks.run --out benchmarks/results          # 1 M, 10 M and 100 M decisions: about an hour
    python -m benchmarks.run --sizes 1000000,10000000 ...     # without 100 M: about 25 minutes
    python -m benchmarks.run --tiny --out /tmp/bench          # CI smoke: seconds, not minutes
    python -m benchmarks.run --input DIR --ds 2024-01-01 ...  # benchmark logs that already exist
    python -m benchmarks.run --work /tmp/rbench ...           # keep (and reuse) generated logs and outputs

Contenders (see benchmarks/README.md): `scan` (the floor), `riskinsight` (`riskinsight run`, run as
`python -m jobs.cli` from this checkout, the one fingerprinted; DQ gate, publish and HTML report
included), `riskinsight_no_report` (`run --no-report`), `riskinsight_no_dq` (`run --phase prepare`:
the tables written aside, without the DQ gate, publish and report), `spark` (`run --engine spark` in
local mode; skipped with a note when the Spark engine or Java is missing) and `duckdb`
(benchmarks/duckdb_reference.py, an analyst's SQL). The job's own stage breakdown is read from
`<output>/_runs/ds=D/manifest.json` (`stage_seconds`; the candidate's manifest for
`riskinsight_no_dq`, which publishes nothing).

For each size it generates one day of logs (`jobs.generate.generate`, in its own process so the
generator's memory never sits under a measured one), then runs each contender as a separate
subprocess and records wall time (spawn to reap, timed by the launcher), CPU time (user + system)
and peak RSS from `wait4`, so nothing the harness itself holds is ever counted. After timing it
compares the job's tables with the DuckDB reference's (`benchmarks.duckdb_reference.diff_table`),
so a fast wrong answer shows up as such; a step kept from an earlier invocation (`--merge`) is not
compared. Results go to `<out>/results.json` and `<out>/results.md`, rewritten after every size with
the earlier runs not rerun (`--merge` keeps only those measured on the same input).
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

    from jobs.nightly import Candidate

REPO_ROOT = Path(__file__).resolve().parent.parent
INPUT_TABLES = ("decisions", "appeals", "qa_audits", "shifts")
TINY_SIZE = 2_000
DEFAULT_DS = dt.date(2024, 1, 1)
CONTENDERS = ("scan", "riskinsight", "riskinsight_no_report", "riskinsight_no_dq", "spark", "duckdb")
JOB_CONTENDERS = ("riskinsight", "riskinsight_no_report", "riskinsight_no_dq", "spark")
# Runs that stop before the gate: their tables and manifest stay in the warehouse's candidate.
UNPUBLISHED = ("riskinsight_no_dq",)
STAGES = ("read_stage", "compute", "history", "write", "dq", "publish", "report")
# Spark local mode: both cores, a driver heap sized for a 10M-row day on a 24 GB machine (overridable
# with --spark-driver-memory or by setting PYSPARK_SUBMIT_ARGS yourself), no UI, a few shuffle partitions.
SPARK_DRIVER_MEMORY = "6g"
SPARK_SHUFFLE_PARTITIONS = 8
# Decisions a day: the sizes the targets are set at. 100 M needs about 10 GB of free disk (input,
# checkpoints, every contender's output), and DuckDB took 22 GB of a 23.5 GB machine there.
DEFAULT_SIZES = "1000000,10000000,100000000"

# The floor: decode every column of every input table with the streaming engine and reduce it to
# one row, so the cost is reading + decoding without holding the day in memory.
_SCAN_CODE = """
import sys, polars as pl
root, ds = sys.argv[1], sys.argv[2]
for t in ("decisions", "appeals", "qa_audits", "shifts"):
    lf = pl.scan_parquet(f"{root}/{t}/ds={ds}/*.parquet")
    lf.select(pl.all().max(), pl.len().alias("__rows")).collect(engine="streaming")
"""

_GENERATE_CODE = """
import sys, datetime as dt
from jobs.generate import generate
generate(sys.argv[1], dt.date.fromisoformat(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
"""


# ru_maxrss of a forked child starts at its parent's RSS (Linux counts the pre-exec address space),
# so a measured command is started by this small launcher instead of by the harness: what the
# launcher reports is the command's own usage, with at most the launcher's few MiB as a floor.
#
# wait4 only sees descendants the command itself reaped; a JVM started by PySpark may outlive that
# bookkeeping, so the launcher also samples the whole process tree (RSS summed over processes, CPU
# per process) every 0.2 s. `tree_*` are those samples: a lower bound on CPU, and a peak that may miss
# a spike shorter than the interval.
#
# Wall time is taken by the launcher too, from just before it spawns the command to wait4's return:
# timed from the harness it would include the launcher's own interpreter start and psutil import.
_LAUNCHER = """
import json, os, subprocess, sys, threading, time
import psutil
t0 = time.perf_counter()
p = subprocess.Popen(sys.argv[2:])
peak = [0]
cpu = {}
done = threading.Event()
def sample():
    root = psutil.Process(p.pid)
    while not done.is_set():
        try:
            procs = [root] + root.children(recursive=True)
        except psutil.Error:
            break
        rss = 0
        for q in procs:
            try:
                with q.oneshot():
                    rss += q.memory_info().rss
                    t = q.cpu_times()
                    cpu[(q.pid, q.create_time())] = t.user + t.system
            except psutil.Error:
                pass
        peak[0] = max(peak[0], rss)
        done.wait(0.2)
th = threading.Thread(target=sample, daemon=True)
th.start()
_, status, ru = os.wait4(p.pid, 0)
wall = time.perf_counter() - t0
done.set()
th.join(timeout=2)
with open(sys.argv[1], "w") as f:
    json.dump({"rc": os.waitstatus_to_exitcode(status), "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
               "maxrss_kib": ru.ru_maxrss, "tree_peak_rss_bytes": peak[0],
               "tree_cpu_s": sum(cpu.values())}, f)
"""


def measure(cmd: list[str], *, timeout_s: float, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> dict:
    """Run one command; its wall time, CPU seconds (user + system) and peak RSS.

    `wall_s` is the launcher's (spawn to reap); `wall_s_with_launcher` is the harness's, which adds
    the launcher's start and is the only figure when the launcher was killed (a timeout)."""
    with tempfile.TemporaryDirectory(prefix="bench_measure_") as tmp:
        usage_file = Path(tmp) / "usage.json"
        err_file = Path(tmp) / "stderr"
        load_before = os.getloadavg()
        start = time.perf_counter()
        with open(err_file, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-c", _LAUNCHER, str(usage_file), *cmd],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                cwd=cwd,
                start_new_session=True,  # its own process group, so a timeout kills exactly what it started
            )
            timed_out = False
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        outer_wall = time.perf_counter() - start
        usage = json.loads(usage_file.read_text()) if usage_file.exists() else {}
        tail = err_file.read_bytes()[-2000:].decode("utf-8", "replace")
    rc = usage.get("rc", proc.returncode)
    ok = rc == 0 and not timed_out
    # Linux reports ru_maxrss in KiB. The larger of wait4's and the sampled tree's figure is the
    # reported one (they agree for a single process; the tree's is the truth for Python + JVM).
    rss_wait4 = usage["maxrss_kib"] / 1024.0 if "maxrss_kib" in usage else None
    rss_tree = usage["tree_peak_rss_bytes"] / 2**20 if usage.get("tree_peak_rss_bytes") else None
    cpu_wait4 = usage.get("cpu_s")
    cpu_tree = usage.get("tree_cpu_s")
    return {
        "cmd": cmd,
        "rc": rc,
        "ok": ok,
        "timed_out": timed_out,
        "wall_s": usage.get("wall_s", outer_wall),
        "wall_s_with_launcher": outer_wall,
        "cpu_s": max(x for x in (cpu_wait4, cpu_tree, 0.0) if x is not None) if usage else None,
        "peak_rss_mib": max(x for x in (rss_wait4, rss_tree, 0.0) if x is not None) if usage else None,
        "cpu_s_wait4": cpu_wait4,
        "cpu_s_tree_sampled": cpu_tree,
        "peak_rss_mib_wait4": rss_wait4,
        "peak_rss_mib_tree_sampled": rss_tree,
        "loadavg_before": list(load_before),
        "loadavg_after": list(os.getloadavg()),
        "stderr_tail": "" if ok else tail,
    }


def input_rows(root: Path, ds: dt.date) -> dict[str, int]:
    import pyarrow.parquet as pq

    rows = {}
    for table in INPUT_TABLES:
        files = glob.glob(str(root / table / f"ds={ds.isoformat()}" / "*.parquet"))
        rows[table] = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    return rows


def _riskinsight_cmd() -> list[str]:
    # Not the `riskinsight` console script: it imports whatever checkout the venv's editable install
    # points at, which need not be the one code_fingerprint() hashes. `-m` with cwd = REPO_ROOT
    # (checkout_env) imports this one; jobs/cli.py runs console() under its main guard.
    return [sys.executable, "-m", "jobs.cli"]


def checkout_env(base: dict[str, str]) -> dict[str, str]:
    """`base` with this checkout first on PYTHONPATH. Contenders also run with cwd = REPO_ROOT (which
    `python -m` puts before PYTHONPATH), so every one imports the code that is fingerprinted."""
    env = dict(base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), base.get("PYTHONPATH")) if p)
    return env


def spark_unavailable() -> str | None:
    """Why the Spark contender cannot run here (None when it can)."""
    import importlib.util

    if importlib.util.find_spec("jobs.engines.spark_engine") is None:
        return "jobs/engines/spark_engine.py does not exist yet"
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java on this machine"
    return None


def spark_env(base: dict[str, str], driver_memory: str) -> dict[str, str]:
    """Local mode on every core with a driver heap set at JVM launch (spark_session.session() leaves
    memory to spark-submit, and PySpark launches the JVM through spark-submit with these args)."""
    env = dict(base)
    if "PYSPARK_SUBMIT_ARGS" not in env:
        env["PYSPARK_SUBMIT_ARGS"] = (
            f"--master local[*] --driver-memory {driver_memory}"
            " --conf spark.ui.enabled=false --conf spark.ui.showConsoleProgress=false"
            f" --conf spark.sql.shuffle.partitions={SPARK_SHUFFLE_PARTITIONS} pyspark-shell"
        )
    return env


def code_fingerprint(root: Path | None = None) -> dict[str, str]:
    """Which code a measurement ran: HEAD and a hash of the job's sources (the tree is shared and moves)."""
    import hashlib

    root = root or REPO_ROOT
    h = hashlib.sha256()
    # Every package the job runs, the report's included (it is a stage of the run).
    packages = ("jobs", "transforms", "expectations", "reports")
    for path in sorted(p for package in packages for p in root.glob(f"{package}/**/*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=5, check=False).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        head = "unknown"
    return {"head": head, "sources_sha256": h.hexdigest()[:12]}


def _candidate(output: Path, ds: dt.date) -> Candidate:
    """Where a run that stopped before the gate left its tables and manifest."""
    from jobs.nightly import Candidate

    return Candidate(output, ds)


def _job_table(output: Path, table: str, ds: dt.date, *, published: bool) -> pl.DataFrame:
    """A job run's output table: from the warehouse when published, else from the candidate.
    A partition the run did not write raises MissingPartition: a parity difference."""
    from benchmarks.duckdb_reference import read_output_table, read_partition

    if published:
        return read_output_table(output, table, ds)
    return read_partition(_candidate(output, ds).table_dir(table), table)


def _parity(ref_out: Path, job_out: Path, ds: dt.date, *, published: bool = True) -> dict:
    from benchmarks.duckdb_reference import diff_table, read_output_table
    from transforms.schemas import OUTPUT_SCHEMAS

    result: dict[str, object] = {}
    for table in OUTPUT_SCHEMAS:
        try:
            problems = diff_table(table, read_output_table(ref_out, table, ds),
                                  _job_table(job_out, table, ds, published=published))
        except Exception as exc:  # a malformed table is a parity finding, not a harness crash
            problems = [f"{type(exc).__name__}: {exc}"]
        result[table] = {"equal": not problems, "differences": problems[:20]}
    result["all_equal"] = all(v["equal"] for v in result.values() if isinstance(v, dict))
    return result


def _ratio(a: dict, b: dict, key: str) -> float | None:
    if not (a.get("ok") and b.get("ok")) or not b.get(key):
        return None
    return a[key] / b[key]


_STAGE_KEYS = ("stage_seconds", "stage_cpu_seconds")


def _stage_seconds(output: Path, ds: dt.date, *, published: bool = True) -> dict[str, dict[str, float] | None]:
    """The run manifest's seconds per stage, wall (`stage_seconds`) and CPU (`stage_cpu_seconds`),
    from one read of it; None for a key it lacks or a manifest that cannot be read."""
    from jobs.warehouse import runs_dir

    path = runs_dir(output, ds) / "manifest.json" if published else _candidate(output, ds).manifest_path
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        manifest = {}
    return {key: {k: float(v) for k, v in manifest[key].items()} if key in manifest else None for key in _STAGE_KEYS}


def _skipped(cmd: list[str], note: str) -> dict:
    return {"cmd": cmd, "rc": None, "ok": False, "skipped": True, "note": note, "timed_out": False,
            "wall_s": None, "cpu_s": None, "peak_rss_mib": None, "rows_per_s": None, "stderr_tail": ""}


def _measure_contender(name: str, cmd: list[str], env: dict[str, str], output: Path | None, ds: dt.date,
                       total_rows: int, timeout_s: float) -> dict:
    """One timed run of one contender, with what its manifest says about its stages."""
    code = code_fingerprint()
    m = measure(cmd, timeout_s=timeout_s, env=env, cwd=REPO_ROOT)
    m["skipped"] = False
    m["code"] = code
    # A DQ gate failure (exit 3) still computed every table: time it, but do not call it a failure.
    if name in JOB_CONTENDERS and m["rc"] == 3:
        m["ok"], m["note"] = True, "DQ gate failed (exit 3); tables computed, not published"
    m["rows_per_s"] = total_rows / m["wall_s"] if m["ok"] and m["wall_s"] > 0 else None
    if name in JOB_CONTENDERS and output is not None:
        m.update(_stage_seconds(output, ds, published=name not in UNPUBLISHED))
        stages = m["stage_seconds"]
        if stages is not None and m["ok"]:
            # Derived, not measured: this run's wall time less its DQ gate stage.
            m["derived_wall_without_dq_s"] = m["wall_s"] - stages.get("dq", 0.0)
            # What the process spent outside the stages the manifest times (interpreter and imports,
            # engine start-up, lock, reading config, the manifest's own writes).
            m["outside_stages_s"] = m["wall_s"] - sum(stages.values())
    if name == "spark":
        m["spark_submit_args"] = env.get("PYSPARK_SUBMIT_ARGS")
    return m


def _median_run(runs: list[dict]) -> dict:
    """The run of median wall time (the lower one of an even count), with every run's figures beside it.

    A failed run is reported as the step (a contender that fails once is not hidden by its medians).
    Peak RSS is the largest of the runs: memory is a limit, not an average.
    """
    failed = [r for r in runs if not r["ok"]]
    chosen = dict(failed[0] if failed else sorted(runs, key=lambda r: r["wall_s"])[(len(runs) - 1) // 2])
    if len(runs) > 1:
        chosen["repeats"] = [
            {k: r.get(k) for k in ("ok", "wall_s", "cpu_s", "peak_rss_mib", "loadavg_before", "loadavg_after")}
            for r in runs
        ]
        chosen["wall_s_min"] = min(r["wall_s"] for r in runs)
        chosen["wall_s_max"] = max(r["wall_s"] for r in runs)
        rss = [r["peak_rss_mib"] for r in runs if r.get("peak_rss_mib") is not None]
        chosen["peak_rss_mib"] = max(rss) if rss else None
    return chosen


# Every ratio of a run: (numerator contender, denominator contender, figure).
RATIOS = {
    "riskinsight_over_duckdb_wall": ("riskinsight", "duckdb", "wall_s"),
    "riskinsight_over_scan_wall": ("riskinsight", "scan", "wall_s"),
    "riskinsight_no_report_over_duckdb_wall": ("riskinsight_no_report", "duckdb", "wall_s"),
    "riskinsight_no_report_over_scan_wall": ("riskinsight_no_report", "scan", "wall_s"),
    "riskinsight_no_dq_over_duckdb_wall": ("riskinsight_no_dq", "duckdb", "wall_s"),
    "riskinsight_no_dq_over_scan_wall": ("riskinsight_no_dq", "scan", "wall_s"),
    "duckdb_over_scan_wall": ("duckdb", "scan", "wall_s"),
    "spark_over_riskinsight_wall": ("spark", "riskinsight", "wall_s"),
    "riskinsight_over_duckdb_rss": ("riskinsight", "duckdb", "peak_rss_mib"),
    "riskinsight_over_duckdb_cpu": ("riskinsight", "duckdb", "cpu_s"),
}
CARRIED_MARK = "*"
DQ_FAILED_MARK = "†"


def _dq_gate_failed(step: dict) -> bool:
    """A job run whose DQ gate failed (exit 3): timed, but it published nothing and is not a passing run."""
    return bool(step.get("ok")) and step.get("rc") == 3


def ratio_marks(*steps: dict) -> str:
    """What a ratio over these steps needs flagged: a step from an earlier invocation (another moment
    of the shared machine, maybe other code) or a run whose DQ gate failed."""
    marks = CARRIED_MARK if any(s.get("from_earlier_invocation") for s in steps) else ""
    return marks + (DQ_FAILED_MARK if any(_dq_gate_failed(s) for s in steps) else "")


def _files_digest(input_dir: Path, ds: dt.date) -> str:
    """Names and sizes of the day's input files: a cheap identity of logs we did not generate."""
    import hashlib

    h = hashlib.sha256()
    for table in INPUT_TABLES:
        for f in sorted((input_dir / table / f"ds={ds.isoformat()}").glob("*")):
            if f.is_file():
                h.update(f"{table}/{f.name}:{f.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def input_identity(input_dir: Path, ds: dt.date, rows: dict[str, int], *, rows_per_day: int | None,
                   seed: int | None) -> dict:
    """What a run measured: --merge keeps an earlier step only when this is equal. Generated logs
    are named by their generator arguments (their folder is a temp one); given ones by path and files."""
    if rows_per_day is not None:
        source: dict[str, object] = {"generated": {"rows_per_day": rows_per_day, "seed": seed}}
    else:
        source = {"input": str(input_dir.resolve()), "files": _files_digest(input_dir, ds)}
    return {**source, "ds": ds.isoformat(), "input_rows": rows}


def _matching_previous(label: str, previous: dict | None, identity: dict) -> dict | None:
    """`previous` when it was measured on the same input; else None, with a note on stderr."""
    if previous is None or previous.get("input_identity") == identity:
        return previous
    print(f"[bench] {label}: the earlier run (results.json, {previous.get('started_at', '?')}) was measured on"
          f" other input ({previous.get('input_identity') or 'not recorded'} against {identity}): dropped, not"
          " merged", file=sys.stderr, flush=True)
    return None


def _carried(step: dict, previous: dict) -> dict:
    # The invocation that measured it, not the one that last carried it (a step can pass through several --merge runs).
    return {**step, "from_earlier_invocation": step.get("from_earlier_invocation") or previous.get("started_at", True)}


def _compare_outputs(steps: dict[str, dict], outputs: dict[str, Path], ds: dt.date) -> tuple[dict | None, list[str]]:
    """Parity of each job run that exited 0 with the reference, and why any pair was not compared.

    A step carried from an earlier invocation has no output of this invocation (its folder is gone,
    or holds another run's tables), so it is never compared."""
    duck = steps["duckdb"]
    if not duck.get("ok"):
        return None, []
    if duck.get("from_earlier_invocation"):
        return None, ["not compared: the DuckDB reference was measured in an earlier invocation (--merge)"]
    if not outputs["duckdb"].exists():
        return None, [f"not compared: the DuckDB reference's output {outputs['duckdb']} is missing"]
    parity: dict[str, object] = {}
    notes = []
    for name in JOB_CONTENDERS:
        s = steps[name]
        # The run without the report publishes the same tables as the full one.
        if name == "riskinsight_no_report" or s.get("skipped") or s.get("rc") != 0:
            continue
        if s.get("from_earlier_invocation"):
            notes.append(f"{name}: not compared (measured in an earlier invocation, --merge)")
        elif not outputs[name].exists():
            notes.append(f"{name}: not compared (its output {outputs[name]} is missing)")
        else:
            parity[name] = _parity(outputs["duckdb"], outputs[name], ds, published=name not in UNPUBLISHED)
    return parity or None, notes


def bench_one(
    label: str,
    input_dir: Path,
    ds: dt.date,
    work: Path,
    *,
    timeout_s: float,
    duckdb_memory: str | None,
    contenders: tuple[str, ...] = CONTENDERS,
    spark_driver_memory: str = SPARK_DRIVER_MEMORY,
    previous: dict | None = None,
    repeat: int = 1,
    rows_per_day: int | None = None,
    seed: int | None = None,
) -> dict:
    """Time every selected contender on one input, `repeat` times each (the median run is reported).

    With `previous` (this label's run from an earlier invocation, --merge), a contender not selected
    now keeps its earlier measurement, marked as such, when `previous` was measured on the same
    input (`input_identity`); otherwise `previous` is dropped. `rows_per_day` and `seed`: the
    generator's arguments, when the harness generated `input_dir`."""
    # Absolute: contenders run with cwd = REPO_ROOT.
    input_dir, work = input_dir.resolve(), work.resolve()
    rows = input_rows(input_dir, ds)
    total = sum(rows.values())
    identity = input_identity(input_dir, ds, rows, rows_per_day=rows_per_day, seed=seed)
    previous = _matching_previous(label, previous, identity)
    py = sys.executable
    env = checkout_env(dict(os.environ))
    run = ["run", "--input", str(input_dir), "--ds", ds.isoformat()]
    outputs = {"riskinsight": work / "out_job", "riskinsight_no_report": work / "out_job_no_report",
               "riskinsight_no_dq": work / "out_job_no_dq", "spark": work / "out_spark", "duckdb": work / "out_duckdb"}
    cmds = {
        "scan": [py, "-c", _SCAN_CODE, str(input_dir), ds.isoformat()],
        "riskinsight": _riskinsight_cmd() + run + ["--output", str(outputs["riskinsight"])],
        "riskinsight_no_report": _riskinsight_cmd() + run
        + ["--output", str(outputs["riskinsight_no_report"]), "--no-report"],
        "riskinsight_no_dq": _riskinsight_cmd() + run + ["--output", str(outputs["riskinsight_no_dq"]), "--phase", "prepare"],
        "spark": _riskinsight_cmd() + run + ["--output", str(outputs["spark"]), "--engine", "spark"],
        "duckdb": [py, "-m", "benchmarks.duckdb_reference", "--input", str(input_dir), "--output",
                   str(outputs["duckdb"]), "--ds", ds.isoformat()]
        + (["--memory-limit", duckdb_memory] if duckdb_memory else []),
    }
    envs = {name: env for name in CONTENDERS}
    envs["spark"] = spark_env(env, spark_driver_memory)
    steps = {}
    runnable = []
    for name in CONTENDERS:
        if name not in contenders:
            earlier = (previous or {}).get("steps", {}).get(name)
            if earlier and not earlier.get("skipped"):
                steps[name] = _carried(earlier, previous)
            else:
                steps[name] = _skipped(cmds[name], "not selected (--contenders)")
            continue
        if name == "spark" and (why := spark_unavailable()):
            steps[name] = _skipped(cmds[name], f"skipped: {why}")
            print(f"[bench] {label}: spark skipped ({why})", file=sys.stderr, flush=True)
            continue
        runnable.append(name)
    # Round robin: a slow spell of the shared machine then hits every contender, not one.
    samples: dict[str, list[dict]] = {name: [] for name in runnable}
    for attempt in range(repeat):
        for name in runnable:
            if name in outputs and outputs[name].exists():
                shutil.rmtree(outputs[name])  # every job run starts from an empty warehouse: no history, no lock
            tag = f" ({attempt + 1}/{repeat})" if repeat > 1 else ""
            print(f"[bench] {label}: {name}{tag} ...", file=sys.stderr, flush=True)
            m = _measure_contender(name, cmds[name], envs[name], outputs.get(name), ds, total, timeout_s)
            samples[name].append(m)
            print(f"[bench] {label}: {name}{tag} rc={m['rc']} wall={m['wall_s']:.2f}s cpu={m['cpu_s'] or 0:.1f}s "
                  f"rss={m['peak_rss_mib'] or 0:.0f}MiB", file=sys.stderr, flush=True)
    for name in runnable:
        steps[name] = _median_run(samples[name])
    ratios = {key: _ratio(steps[a], steps[b], fig) for key, (a, b, fig) in RATIOS.items()}
    marks = {key: m for key, (a, b, _) in RATIOS.items() if ratios[key] is not None and (m := ratio_marks(steps[a], steps[b]))}
    parity, parity_notes = _compare_outputs(steps, outputs, ds)
    return {"label": label, "ds": ds.isoformat(), "seed": seed, "input": str(input_dir), "input_identity": identity,
            "input_rows": rows, "total_input_rows": total, "steps": steps, "ratios": ratios, "ratio_marks": marks,
            "parity": parity, "parity_notes": parity_notes,
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def _generate(input_dir: Path, ds: dt.date, size: int, seed: int, timeout_s: float) -> dict:
    cmd = [sys.executable, "-c", _GENERATE_CODE, str(input_dir.resolve()), ds.isoformat(), "1", str(size), str(seed)]
    m = measure(cmd, timeout_s=timeout_s, env=checkout_env(dict(os.environ)), cwd=REPO_ROOT)
    if not m["ok"]:
        raise RuntimeError(f"generate failed (rc={m['rc']}): {m['stderr_tail']}")
    return m


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _meta() -> dict:
    import duckdb
    import polars as pl
    import psutil

    try:
        nproc = int(subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        nproc = len(os.sched_getaffinity(0))
    try:
        import pyspark

        spark_version = pyspark.__version__
    except ImportError:
        spark_version = None
    return {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "nproc": nproc,
        "cpu_model": _cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "memory_available_gib_at_start": round(psutil.virtual_memory().available / 2**30, 1),
        "loadavg_at_start": list(os.getloadavg()),
        "polars": pl.__version__,
        "duckdb": duckdb.__version__,
        "pyspark": spark_version,
        "scan_method": "polars scan_parquet -> select(all().max(), len()) streaming, per input table",
    }


def _fmt(v: object, spec: str = ".2f") -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def _stage_steps(result: dict, key: str) -> Iterator[tuple[str, str, dict]]:
    """(run label, contender, step) of every job run whose manifest gave its stages' `key` figures."""
    for run in result["runs"]:
        for name in JOB_CONTENDERS:
            s = run["steps"].get(name)
            if s and not s.get("skipped") and s.get(key) and s.get("stage_seconds"):
                yield run["label"], name, s


def _stage_table(
    result: dict, key: str, title: str, note: str, after: tuple[str, ...], cells: Callable[[dict], list[str]]
) -> list[str]:
    """A markdown section with one row per job run that has `key` in its manifest: run, contender,
    then `cells(step)` under every stage and the `after` columns."""
    lines = ["", f"## {title}", "", note, "",
             "| run | contender | " + " | ".join((*STAGES, *after)) + " |", "|---|---|" + "---:|" * (len(STAGES) + len(after))]
    for label, name, s in _stage_steps(result, key):
        lines.append(f"| {label} | {name} | " + " | ".join(cells(s)) + " |")
    return lines


def _cores(cpu: float | None, wall: float | None) -> str:
    """CPU seconds, with the cores they kept busy over `wall` in brackets."""
    if cpu is None:
        return "—"
    return f"{cpu:.2f} ({cpu / wall:.1f})" if wall else f"{cpu:.2f}"


def _wall(s: dict) -> str:
    """Wall seconds; of a repeated contender the median run's, with the range of all its runs."""
    if s.get("repeats"):
        return f"{_fmt(s['wall_s'])} ({_fmt(s['wall_s_min'])}–{_fmt(s['wall_s_max'])}, {len(s['repeats'])} runs)"
    return _fmt(s["wall_s"])


def _load(s: dict) -> str:
    if not s.get("loadavg_before"):
        return "—"
    return f"{s['loadavg_before'][0]:.1f}→{s['loadavg_after'][0]:.1f}"


def _status(s: dict) -> str:
    if s.get("skipped"):
        return "skipped"
    status = "yes" if s["ok"] else f"NO (rc {s['rc']})"
    status += " (DQ gate failed)" if _dq_gate_failed(s) else ""
    return status + (" (earlier run)" if s.get("from_earlier_invocation") else "")


def _ratio_cell(value: float | None, *steps: dict) -> str:
    """A ratio with its marks (see ratio_marks); no marks on a ratio that is not there."""
    return "—" if value is None else _fmt(value) + ratio_marks(*steps)


# The Ratios table's columns read from the run's ratios (the CPU ones are computed from its steps).
_RATIO_COLUMNS = ("riskinsight_over_duckdb_wall", "riskinsight_over_scan_wall", "riskinsight_no_report_over_duckdb_wall",
                  "riskinsight_no_report_over_scan_wall", "riskinsight_no_dq_over_duckdb_wall",
                  "riskinsight_no_dq_over_scan_wall", "spark_over_riskinsight_wall", "riskinsight_over_duckdb_rss")


def _stored_ratio_cell(run: dict, key: str) -> str:
    a, b, _ = RATIOS[key]
    return _ratio_cell(run["ratios"].get(key), run["steps"].get(a, {}), run["steps"].get(b, {}))


def _measured(result: dict) -> list[dict]:
    """The runs that measured something (not a size whose logs could not be generated)."""
    return [r for r in result["runs"] if not r.get("error")]


def render_markdown(result: dict) -> str:
    meta = result["meta"]
    runs = _measured(result)
    lines = [
        "# riskinsight benchmark",
        "",
        f"- when: {meta['started_at']}",
        (f"- machine: `nproc` {meta.get('nproc', meta['cpu_count'])} · {meta['memory_gib']} GiB RAM"
        f" ({meta.get('memory_available_gib_at_start', '?')} GiB available at start)"
        f" · CPU {meta.get('cpu_model') or '?'} · load average at start"
        f" {' / '.join(f'{x:.2f}' for x in meta.get('loadavg_at_start', []))} (1/5/15 min; the machine is shared)"),
        (f"- software: Python {meta['python']} · polars {meta['polars']} · duckdb {meta['duckdb']}"
        f" · pyspark {meta.get('pyspark') or '—'}"),
        "",
        (f"Floor (`scan`): {meta['scan_method']}. Rows = all input rows of the day (every table). Wall, CPU"
        " (user + system of the child and its descendants) and peak RSS per contender, each a separate"
        " subprocess. `÷` columns are wall-time ratios. `load` is the 1-minute load average before→after."
        " A contender run several times (`--repeat`) shows its median run, the range of all runs in brackets,"
        " and the largest peak RSS of its runs."),
        "",
        "| run | input rows | contender | ok | wall s | CPU s | peak RSS MiB | rows/s | ÷ DuckDB | ÷ scan | load |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in runs:
        steps = run["steps"]
        duck, scan = steps.get("duckdb", {}), steps.get("scan", {})
        for name in CONTENDERS:
            s = steps.get(name)
            if s is None:
                continue
            lines.append(
                f"| {run['label']} | {run['total_input_rows']:,} | {name} | {_status(s)}"
                f" | {_wall(s)} | {_fmt(s['cpu_s'])} | {_fmt(s['peak_rss_mib'], '.0f')}"
                f" | {_fmt(s['rows_per_s'], ',.0f')} | {_ratio_cell(_ratio(s, duck, 'wall_s'), s, duck)}"
                f" | {_ratio_cell(_ratio(s, scan, 'wall_s'), s, scan)} | {_load(s)} |"
            )
    lines += ["", "## Ratios", "",
              ("Wall-time ratios unless marked CPU. On a shared machine the CPU ratios are the steadier figure: a"
               " contender that got one core instead of two doubles its wall time, not its CPU time."
               f" `{CARRIED_MARK}`: a ratio over a step kept from an earlier invocation (`--merge`): another moment"
               f" of the machine, maybe other code. `{DQ_FAILED_MARK}`: over a job run whose DQ gate failed (exit 3):"
               " its tables were computed but nothing was published, so it is not a passing run's time."), "",
              ("| run | riskinsight ÷ DuckDB | riskinsight ÷ scan | no-report ÷ DuckDB | no-report ÷ scan"
               " | no-DQ ÷ DuckDB | no-DQ ÷ scan"
               " | Spark ÷ Polars (full runs) | RSS riskinsight ÷ DuckDB | CPU riskinsight ÷ DuckDB | CPU Spark ÷ Polars |"),
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        cpu = [(run["steps"].get(a, {}), run["steps"].get(b, {})) for a, b in (("riskinsight", "duckdb"), ("spark", "riskinsight"))]
        lines.append(f"| {run['label']} | " + " | ".join(_stored_ratio_cell(run, k) for k in _RATIO_COLUMNS)
                     + "".join(f" | {_ratio_cell(_ratio(a, b, 'cpu_s'), a, b)}" for a, b in cpu) + " |")
    def wall_cells(s: dict) -> list[str]:
        st = s["stage_seconds"]
        return [*(_fmt(st.get(k)) for k in STAGES), _fmt(s.get("outside_stages_s")), _fmt(s["wall_s"]),
                _fmt(s.get("derived_wall_without_dq_s"))]

    def cpu_cells(s: dict) -> list[str]:
        cpu, wall = s["stage_cpu_seconds"], s["stage_seconds"]
        return [*(_cores(cpu.get(k), wall.get(k)) for k in STAGES),
                _cores(sum(cpu.values()), sum(wall.get(k, 0.0) for k in cpu)), _cores(s.get("cpu_s"), s.get("wall_s"))]

    lines += _stage_table(
        result, "stage_seconds", "Stage breakdown of the job runs (seconds, from `_runs/ds=D/manifest.json` `stage_seconds`)",
        "`without DQ` is **derived**, not measured: the run's wall time minus its `dq` stage;"
        " `riskinsight_no_dq` is the measured run without the DQ gate, publish and report. `outside`"
        " is wall time no stage accounts for (interpreter start, imports, engine start-up, lock, manifest).",
        ("outside", "wall", "without DQ (derived)"), wall_cells,
    )
    lines += _stage_table(
        result, "stage_cpu_seconds",
        "CPU per stage (seconds, from the manifest's `stage_cpu_seconds`; in brackets, cores busy: CPU ÷ wall)",
        "The job's process (every thread), its children and its live descendants (Spark's JVM). On two"
        " cores, a stage near 2 is CPU-bound: it gets faster only by doing less work, not by overlapping"
        " other work with it.",
        ("all stages", "whole process"), cpu_cells,
    )
    lines += ["", "## Parity with the DuckDB reference (`benchmarks.duckdb_reference.diff_table`, every output table)", ""]
    for run in runs:
        p = run["parity"]
        for note in run.get("parity_notes") or []:
            lines.append(f"- {run['label']}: {note}")
        if p is None:
            if not run.get("parity_notes"):
                lines.append(f"- {run['label']}: not compared (the reference or every job run failed)")
            continue
        for name, verdict in p.items():
            bad = [t for t, v in verdict.items() if isinstance(v, dict) and not v["equal"]]
            lines.append(f"- {run['label']} / {name}: " + ("all tables equal" if not bad else "differs in " + ", ".join(bad)))
            for t in bad:
                for d in verdict[t]["differences"][:5]:
                    lines.append(f"  - `{d}`")
    codes = sorted({f"{s['code']['head']} / sources {s['code']['sources_sha256']}" for r in runs
                    for s in r["steps"].values() if s.get("code")})
    if codes:
        lines += ["", "Code measured (HEAD / hash of jobs, transforms, expectations, reports sources): "
                  + "; ".join(f"`{c}`" for c in codes)]
    notes = [(r["label"], n, s["note"]) for r in runs for n, s in r["steps"].items() if s.get("note")]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {label} / {name}: {note}" for label, name, note in notes]
    failures = [(r["label"], n, s["stderr_tail"]) for r in runs for n, s in r["steps"].items()
                if not s["ok"] and not s.get("skipped")]
    failures += [(r["label"], "generate", r["error"]) for r in result["runs"] if r.get("error")]
    if failures:
        lines += ["", "## Failures", ""]
        for label, name, tail in failures:
            lines += [f"### {label} / {name}", "", "```", (tail or "").strip()[-1500:], "```", ""]
    return "\n".join(lines) + "\n"


def _reusable_input(work: Path, size: int, seed: int, ds: dt.date) -> bool:
    marker = work / "input" / "_generated.json"
    try:
        return json.loads(marker.read_text()) == {"rows_per_day": size, "seed": seed, "ds": ds.isoformat()}
    except (OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.run", description="riskinsight vs Spark vs DuckDB vs a bare scan")
    p.add_argument("--sizes", default=DEFAULT_SIZES, help="decisions per day, comma separated")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--tiny", action="store_true", help=f"one day of {TINY_SIZE} rows (CI smoke test)")
    p.add_argument("--input", help="benchmark this existing input instead of generating")
    p.add_argument("--ds", type=dt.date.fromisoformat, default=DEFAULT_DS)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--work", help="where generated logs and outputs go, kept and reused by the next run with the"
                   " same size/seed/ds (default: a temp dir, removed)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per contender")
    p.add_argument("--duckdb-memory-limit", default=None, help="e.g. 8GB (default: DuckDB's own, 80%% of RAM)")
    p.add_argument("--spark-driver-memory", default=SPARK_DRIVER_MEMORY,
                   help="driver heap of the Spark local run (ignored when PYSPARK_SUBMIT_ARGS is set)")
    p.add_argument("--contenders", default=",".join(CONTENDERS),
                   help=f"comma separated subset of {','.join(CONTENDERS)}")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs of each contender, in turns; the run of median wall time is reported, with every run's figures")
    p.add_argument("--merge", action="store_true",
                   help="keep the measurements of the contenders not selected now from <out>/results.json (same run"
                   " label, ds, seed and input; an earlier run on other input is dropped)")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    contenders = tuple(c.strip() for c in args.contenders.split(",") if c.strip())
    if unknown := set(contenders) - set(CONTENDERS):
        p.error(f"unknown contender(s): {', '.join(sorted(unknown))}")

    out = Path(args.out)
    keep = args.work is not None
    if keep and args.input and _overlaps(Path(args.work) / _work_name(None), Path(args.input)):
        p.error(f"--work {args.work}: its folder {Path(args.work) / _work_name(None)} is or contains --input"
                f" {args.input}, and the harness empties that folder before each run")
    work_root = Path(args.work).resolve() if keep else Path(tempfile.mkdtemp(prefix="riskinsight_bench_"))
    plan = _plan(args)
    out.mkdir(parents=True, exist_ok=True)
    result = {"meta": _meta(), "runs": []}
    earlier: dict[str, dict] = {}
    if args.merge and (out / "results.json").exists():
        old = json.loads((out / "results.json").read_text())
        earlier = {r["label"]: r for r in old.get("runs", [])}
        result["meta"]["merged_from"] = old.get("meta", {}).get("started_at")
    try:
        for label, size in plan:
            work = work_root / _work_name(size)
            run = _bench_size(label, size, work, args, contenders, previous=earlier.get(label), keep=keep)
            if not run.get("error"):
                # Merged, or dropped as measured on other input: either way no longer an earlier run to keep.
                earlier.pop(label, None)
            result["runs"].append(run)
            # After every size, with the earlier runs not rerun yet: a long run that dies (or is killed)
            # still leaves what it measured and everything that was in the file before.
            _write_results(out, result, earlier)
            if not keep:
                shutil.rmtree(work, ignore_errors=True)
    finally:
        if not keep:
            shutil.rmtree(work_root, ignore_errors=True)
    result["meta"]["loadavg_at_end"] = list(os.getloadavg())
    _write_results(out, result, earlier)
    print(out / "results.md")
    # Contender failures are measurements (in the tables); a size whose logs could not be made is not.
    return 1 if any(r.get("error") for r in result["runs"]) else 0


def _plan(args: argparse.Namespace) -> list[tuple[str, int | None]]:
    """(run label, decisions per day to generate; None for --input) of each run."""
    if args.input:
        return [("input", None)]
    if args.tiny:
        return [(f"{TINY_SIZE:,} rows", TINY_SIZE)]
    return [(f"{int(s):,} rows", int(s)) for s in args.sizes.split(",") if s.strip()]


def _work_name(size: int | None) -> str:
    # Not "input": `--input DIR/input --work DIR` would then empty the user's logs.
    return f"n{size}" if size else "given_input"


def _overlaps(work: Path, input_dir: Path) -> bool:
    """Whether emptying `work` would remove any of `input_dir`."""
    work, input_dir = work.resolve(), input_dir.resolve()
    return work == input_dir or work in input_dir.parents


def _write_results(out: Path, result: dict, earlier: dict[str, dict]) -> None:
    """results.json and results.md: this invocation's runs and the earlier ones (--merge) not rerun."""
    runs = sorted([*result["runs"], *earlier.values()],
                  key=lambda r: r.get("total_input_rows") or r.get("rows_per_day") or 0)
    full = {**result, "runs": runs}
    (out / "results.json").write_text(json.dumps(full, indent=2, default=str) + "\n")
    (out / "results.md").write_text(render_markdown(full))


def _bench_size(label: str, size: int | None, work: Path, args: argparse.Namespace, contenders: tuple[str, ...],
                *, previous: dict | None, keep: bool) -> dict:
    """One run: the size's logs generated (or reused, or --input), then every contender timed on them.
    Logs that cannot be generated give a run holding only that `error`."""
    reuse = size is not None and keep and _reusable_input(work, size, args.seed, args.ds)
    if work.exists() and not reuse:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    gen = None
    if size is None:
        input_dir = Path(args.input)
    else:
        input_dir = work / "input"
        if reuse:
            print(f"[bench] reusing the generated {size:,} rows in {input_dir}", file=sys.stderr, flush=True)
        else:
            print(f"[bench] generating {size:,} rows ...", file=sys.stderr, flush=True)
            try:
                gen = _generate(input_dir, args.ds, size, args.seed, args.timeout)
            except RuntimeError as exc:
                print(f"[bench] {label}: {exc}", file=sys.stderr, flush=True)
                return {"label": label, "ds": args.ds.isoformat(), "seed": args.seed, "rows_per_day": size,
                        "error": str(exc), "steps": {}, "ratios": {}, "parity": None,
                        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
            (input_dir / "_generated.json").write_text(
                json.dumps({"rows_per_day": size, "seed": args.seed, "ds": args.ds.isoformat()})
            )
    run = bench_one(label, input_dir, args.ds, work, timeout_s=args.timeout, duckdb_memory=args.duckdb_memory_limit,
                    contenders=contenders, spark_driver_memory=args.spark_driver_memory, previous=previous,
                    repeat=args.repeat, rows_per_day=size, seed=args.seed if size is not None else None)
    run["rows_per_day"] = size
    if gen is not None:
        run["generate_wall_s"] = gen["wall_s"]
    return run


if __name__ == "__main__":
    sys.exit(main())
