"""Benchmark harness: the nightly job against a bare Polars scan (the floor) and the DuckDB reference.

    python -m benchmarks.run --sizes 1000000,10000000 --out benchmarks/results/
    python -m benchmarks.run --tiny --out /tmp/bench          # CI smoke: seconds, not minutes
    python -m benchmarks.run --input DIR --ds 2024-01-01 ...  # benchmark logs that already exist

For each size it generates one day of logs (`jobs.generate.generate`, in its own process so the
generator's memory never sits under a measured one), then runs each contender as a separate
subprocess and records wall time, CPU time (user + system) and peak RSS from `wait4`, so
nothing the harness itself holds is ever counted. After timing it compares the job's tables
with the DuckDB reference's (`benchmarks.duckdb_reference.diff_table`), so a fast wrong answer
shows up as such. Results go to `<out>/results.json` and `<out>/results.md`.
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
from pathlib import Path

INPUT_TABLES = ("decisions", "appeals", "qa_audits", "shifts")
TINY_SIZE = 2_000
DEFAULT_DS = dt.date(2024, 1, 1)
CONTENDERS = ("scan", "riskinsight", "duckdb")

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
_LAUNCHER = """
import json, os, subprocess, sys
p = subprocess.Popen(sys.argv[2:])
_, status, ru = os.wait4(p.pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"rc": os.waitstatus_to_exitcode(status), "cpu_s": ru.ru_utime + ru.ru_stime,
               "maxrss_kib": ru.ru_maxrss}, f)
"""


def measure(cmd: list[str], *, timeout_s: float, env: dict[str, str] | None = None) -> dict:
    """Run one command; its wall time, CPU seconds (user + system) and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="bench_measure_") as tmp:
        usage_file = Path(tmp) / "usage.json"
        err_file = Path(tmp) / "stderr"
        start = time.perf_counter()
        with open(err_file, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-c", _LAUNCHER, str(usage_file), *cmd],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
                start_new_session=True,  # its own process group, so a timeout kills exactly what it started
            )
            timed_out = False
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        wall = time.perf_counter() - start
        usage = json.loads(usage_file.read_text()) if usage_file.exists() else {}
        tail = err_file.read_bytes()[-2000:].decode("utf-8", "replace")
    rc = usage.get("rc", proc.returncode)
    ok = rc == 0 and not timed_out
    return {
        "cmd": cmd,
        "rc": rc,
        "ok": ok,
        "timed_out": timed_out,
        "wall_s": wall,
        "cpu_s": usage.get("cpu_s"),
        # Linux reports ru_maxrss in KiB.
        "peak_rss_mib": usage["maxrss_kib"] / 1024.0 if "maxrss_kib" in usage else None,
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
    exe = Path(sys.executable).with_name("riskinsight")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "jobs.cli"]


def _parity(ref_out: Path, job_out: Path, ds: dt.date) -> dict:
    from benchmarks.duckdb_reference import diff_table, read_output_table
    from transforms.schemas import OUTPUT_SCHEMAS

    result: dict[str, object] = {}
    for table in OUTPUT_SCHEMAS:
        try:
            problems = diff_table(table, read_output_table(ref_out, table, ds), read_output_table(job_out, table, ds))
        except Exception as exc:  # a malformed table is a parity finding, not a harness crash
            problems = [f"{type(exc).__name__}: {exc}"]
        result[table] = {"equal": not problems, "differences": problems[:20]}
    result["all_equal"] = all(v["equal"] for v in result.values() if isinstance(v, dict))
    return result


def _ratio(a: dict, b: dict, key: str) -> float | None:
    if not (a.get("ok") and b.get("ok")) or not b[key]:
        return None
    return a[key] / b[key]


def bench_one(
    label: str, input_dir: Path, ds: dt.date, work: Path, *, timeout_s: float, duckdb_memory: str | None
) -> dict:
    rows = input_rows(input_dir, ds)
    total = sum(rows.values())
    py = sys.executable
    env = dict(os.environ)
    cmds = {
        "scan": [py, "-c", _SCAN_CODE, str(input_dir), ds.isoformat()],
        "riskinsight": _riskinsight_cmd()
        + ["run", "--input", str(input_dir), "--output", str(work / "out_job"), "--ds", ds.isoformat()],
        "duckdb": [py, "-m", "benchmarks.duckdb_reference", "--input", str(input_dir), "--output",
                   str(work / "out_duckdb"), "--ds", ds.isoformat()]
        + (["--memory-limit", duckdb_memory] if duckdb_memory else []),
    }
    steps = {}
    for name in CONTENDERS:
        print(f"[bench] {label}: {name} ...", file=sys.stderr, flush=True)
        m = measure(cmds[name], timeout_s=timeout_s, env=env)
        # A DQ gate failure (exit 3) still computed every table: time it, but do not call it a failure.
        if name == "riskinsight" and m["rc"] == 3:
            m["ok"], m["note"] = True, "DQ gate failed (exit 3); tables computed, not published"
        m["rows_per_s"] = total / m["wall_s"] if m["ok"] and m["wall_s"] > 0 else None
        steps[name] = m
        print(f"[bench] {label}: {name} rc={m['rc']} wall={m['wall_s']:.2f}s", file=sys.stderr, flush=True)
    ratios = {
        "riskinsight_over_duckdb_wall": _ratio(steps["riskinsight"], steps["duckdb"], "wall_s"),
        "riskinsight_over_scan_wall": _ratio(steps["riskinsight"], steps["scan"], "wall_s"),
        "duckdb_over_scan_wall": _ratio(steps["duckdb"], steps["scan"], "wall_s"),
        "riskinsight_over_duckdb_rss": _ratio(steps["riskinsight"], steps["duckdb"], "peak_rss_mib"),
    }
    parity = None
    if steps["riskinsight"]["rc"] == 0 and steps["duckdb"]["ok"]:
        parity = _parity(work / "out_duckdb", work / "out_job", ds)
    return {"label": label, "ds": ds.isoformat(), "input_rows": rows, "total_input_rows": total, "steps": steps,
            "ratios": ratios, "parity": parity}


def _generate(input_dir: Path, ds: dt.date, size: int, seed: int, timeout_s: float) -> dict:
    cmd = [sys.executable, "-c", _GENERATE_CODE, str(input_dir), ds.isoformat(), "1", str(size), str(seed)]
    m = measure(cmd, timeout_s=timeout_s)
    if not m["ok"]:
        raise RuntimeError(f"generate failed (rc={m['rc']}): {m['stderr_tail']}")
    return m


def _meta() -> dict:
    import duckdb
    import polars as pl
    import psutil

    return {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "polars": pl.__version__,
        "duckdb": duckdb.__version__,
        "scan_method": "polars scan_parquet -> select(all().max(), len()) streaming, per input table",
    }


def _fmt(v: object, spec: str = ".2f") -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def render_markdown(result: dict) -> str:
    meta = result["meta"]
    lines = [
        "# riskinsight benchmark",
        "",
        f"{meta['started_at']} · {meta['cpu_count']} CPUs · {meta['memory_gib']} GiB · Python {meta['python']}"
        f" · polars {meta['polars']} · duckdb {meta['duckdb']}",
        "",
        f"Floor: {meta['scan_method']}. Rows = all input rows of the day (every table). Wall/CPU/peak RSS per"
        " subprocess (wait4). Ratios are wall-time ratios.",
        "",
        "| run | input rows | contender | ok | wall s | CPU s | peak RSS MiB | rows/s | ÷ DuckDB | ÷ scan |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in result["runs"]:
        steps = run["steps"]
        for name in CONTENDERS:
            s = steps[name]
            lines.append(
                f"| {run['label']} | {run['total_input_rows']:,} | {name} | {'yes' if s['ok'] else 'NO (rc ' + str(s['rc']) + ')'}"
                f" | {_fmt(s['wall_s'])} | {_fmt(s['cpu_s'])} | {_fmt(s['peak_rss_mib'], '.0f')}"
                f" | {_fmt(s['rows_per_s'], ',.0f')} | {_fmt(_ratio(s, steps['duckdb'], 'wall_s'))}"
                f" | {_fmt(_ratio(s, steps['scan'], 'wall_s'))} |"
            )
    lines += ["", "## Parity (riskinsight vs DuckDB reference)", ""]
    for run in result["runs"]:
        p = run["parity"]
        if p is None:
            lines.append(f"- {run['label']}: not compared (a contender failed)")
            continue
        bad = [t for t, v in p.items() if isinstance(v, dict) and not v["equal"]]
        lines.append(f"- {run['label']}: " + ("all tables equal" if not bad else "differs in " + ", ".join(bad)))
        for t in bad:
            for d in p[t]["differences"][:5]:
                lines.append(f"  - `{d}`")
    failures = [(r["label"], n, s["stderr_tail"]) for r in result["runs"] for n, s in r["steps"].items() if not s["ok"]]
    if failures:
        lines += ["", "## Failures", ""]
        for label, name, tail in failures:
            lines += [f"### {label} / {name}", "", "```", tail.strip()[-1500:], "```", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.run", description="riskinsight vs DuckDB vs a bare scan")
    p.add_argument("--sizes", default="1000000,10000000", help="decisions per day, comma separated")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--tiny", action="store_true", help=f"one day of {TINY_SIZE} rows (CI smoke test)")
    p.add_argument("--input", help="benchmark this existing input instead of generating")
    p.add_argument("--ds", type=dt.date.fromisoformat, default=DEFAULT_DS)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--work", help="where generated logs and outputs go (default: a temp dir, removed)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per contender")
    p.add_argument("--duckdb-memory-limit", default=None, help="e.g. 8GB (default: DuckDB's own, 80%% of RAM)")
    args = p.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keep = args.work is not None
    work_root = Path(args.work) if keep else Path(tempfile.mkdtemp(prefix="riskinsight_bench_"))
    result = {"meta": _meta(), "runs": []}
    try:
        if args.input:
            plan = [("input", None)]
        elif args.tiny:
            plan = [(f"{TINY_SIZE:,} rows", TINY_SIZE)]
        else:
            plan = [(f"{int(s):,} rows", int(s)) for s in args.sizes.split(",") if s.strip()]
        for label, size in plan:
            work = work_root / (f"n{size}" if size else "input")
            if work.exists():
                shutil.rmtree(work)
            work.mkdir(parents=True)
            if size is None:
                input_dir = Path(args.input)
            else:
                input_dir = work / "input"
                print(f"[bench] generating {size:,} rows ...", file=sys.stderr, flush=True)
                gen = _generate(input_dir, args.ds, size, args.seed, args.timeout)
            run = bench_one(label, input_dir, args.ds, work, timeout_s=args.timeout,
                            duckdb_memory=args.duckdb_memory_limit)
            run["rows_per_day"] = size
            if size is not None:
                run["generate_wall_s"] = gen["wall_s"]
            result["runs"].append(run)
            # Write after every size so a long run that dies still leaves what it measured.
            (out / "results.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
            (out / "results.md").write_text(render_markdown(result))
            if not keep:
                shutil.rmtree(work, ignore_errors=True)
    finally:
        if not keep:
            shutil.rmtree(work_root, ignore_errors=True)
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out / "results.md").write_text(render_markdown(result))
    print(out / "results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
