"""spark-submit against a real standalone cluster (DESIGN §8), and the entry point's exit codes.

The cluster test starts a master and two one-core workers on 127.0.0.1 from the pyspark package's
own scripts, submits `jobs/spark_entry.py` for one generated day, and requires the published tables
to equal a Polars run of the same day. The cluster's processes are killed by process group whatever
happens, so a failing test leaves no JVM behind.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyspark
import pytest

from jobs import warehouse as wh
from jobs.engines.spark_session import quiet_log4j2_file
from jobs.nightly import run_days
from tests.test_spark_parity import assert_same_run

pytestmark = pytest.mark.spark

REPO = Path(__file__).resolve().parent.parent
SPARK_HOME = Path(pyspark.__file__).resolve().parent
DS = dt.date(2024, 3, 5)
WORKERS = 2
START_TIMEOUT_S = 120.0
SUBMIT_TIMEOUT_S = 300.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_env(tmp: Path) -> dict[str, str]:
    log_conf = f"-Dlog4j2.configurationFile=file:{quiet_log4j2_file()}"
    env = {
        **os.environ,
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_LOG_DIR": str(tmp / "logs"),
        # Master and workers only route work; the default 1 GiB heap each is wasted on a shared box.
        "SPARK_DAEMON_MEMORY": "256m",
        "SPARK_DAEMON_JAVA_OPTS": log_conf,
    }
    env.pop("PYSPARK_GATEWAY_PORT", None)  # never attach to the test process's own JVM
    env.pop("PYSPARK_GATEWAY_SECRET", None)
    return env


@dataclass
class Cluster:
    url: str
    webui: str
    worker_dirs: list[Path]
    env: dict[str, str]


def _alive_workers(webui: str) -> int:
    try:
        with urllib.request.urlopen(f"{webui}/json/", timeout=5) as resp:
            state = json.load(resp)
    except OSError:
        return -1
    return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")


def _wait(condition, what: str, procs: list[subprocess.Popen], logs: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if condition():
            return
        dead = [p.args[1] for p in procs if p.poll() is not None]
        if dead:
            break
        time.sleep(1.0)
    tails = "\n".join(f"--- {f.name}\n{f.read_text(errors='replace')[-2000:]}" for f in sorted(logs.glob("*.log")))
    pytest.fail(f"standalone cluster: {what} not reached within {START_TIMEOUT_S:.0f}s\n{tails}")


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM every process group (a worker's executors are in its group), then SIGKILL stragglers."""
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    env = _cluster_env(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    port, webui_port = _free_port(), _free_port()
    url, webui = f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{webui_port}"
    procs: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> None:
        with open(logs / f"{name}.log", "wb") as log:
            procs.append(
                subprocess.Popen([spark_class, *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            )

    worker_dirs = [tmp_path / f"worker{i}" for i in range(WORKERS)]
    try:
        start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
              "--webui-port", str(webui_port))
        _wait(lambda: _alive_workers(webui) >= 0, "master up", procs, logs)
        for i, work_dir in enumerate(worker_dirs):
            start(f"worker{i}", "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1", "--cores", "1",
                  "--memory", "1g", "--webui-port", str(_free_port()), "--work-dir", str(work_dir))
        _wait(lambda: _alive_workers(webui) == WORKERS, f"{WORKERS} workers registered", procs, logs)
        yield Cluster(url, webui, worker_dirs, env)
    finally:
        _stop(procs)


def test_spark_submit_on_a_standalone_cluster_equals_polars(cluster: Cluster, tmp_path: Path) -> None:
    from jobs.generate import generate

    days = [DS, DS + dt.timedelta(days=1)]
    generate(tmp_path / "input", DS, len(days), 1500, seed=5, dirty_rate=0.006)
    run_days(tmp_path / "input", tmp_path / "polars", days, engine="polars", report=False)

    log_conf = f"-Dlog4j2.configurationFile=file:{quiet_log4j2_file()}"
    confs = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "2",
        "spark.driver.memory": "1g",
        "spark.executor.memory": "512m",
        "spark.executor.cores": "1",
        "spark.cores.max": str(WORKERS),
        "spark.driver.extraJavaOptions": log_conf,
        "spark.executor.extraJavaOptions": log_conf,
    }
    cmd = [str(SPARK_HOME / "bin" / "spark-submit"), "--master", cluster.url]
    for key, value in confs.items():
        cmd += ["--conf", f"{key}={value}"]
    # The warehouse named by a URI: the driver publishes through Hadoop, and the second day's history
    # (trends, offenders) is read by the executors from the first day's remote partitions.
    cmd += ["jobs/spark_entry.py", "--input", str(tmp_path / "input"), "--output", (tmp_path / "spark").as_uri(),
            "--start", days[0].isoformat(), "--end", days[-1].isoformat(), "--no-report"]
    started = time.monotonic()
    done = subprocess.run(
        cmd, cwd=REPO, env=cluster.env, capture_output=True, text=True, timeout=SUBMIT_TIMEOUT_S, check=False
    )
    assert done.returncode == 0, f"spark-submit exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    assert all(f"{d}: " in done.stdout for d in days), done.stdout
    print(f"spark-submit on the cluster took {time.monotonic() - started:.1f}s")

    manifest = wh.read_json(wh.runs_dir(tmp_path / "spark", DS) / "manifest.json")
    assert manifest["engine"] == "spark" and manifest["versions"]["spark_master"] == cluster.url
    # Executors really ran on both workers: each worker keeps a directory per application it served.
    for work_dir in cluster.worker_dirs:
        assert [p.name for p in work_dir.glob("app-*")], f"no executor ran on {work_dir.name}"
    assert_same_run(tmp_path / "polars", tmp_path / "spark", days)


# ------------------------------------------------------------------ the entry point, in-process
def test_entry_exit_codes_match_the_cli(spark_session, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from jobs.spark_entry import main

    with pytest.raises(SystemExit) as usage:
        main(["--input", "x", "--output", "y", "--ds", "2024-02-30"])
    assert usage.value.code == 2
    assert main(["--input", str(tmp_path / "missing"), "--output", str(tmp_path / "out"), "--ds", "2024-03-05"]) == 4
    assert main(["--input", str(tmp_path), "--output", str(tmp_path / "out"), "--ds", "2024-03-05", "--engine", "polars"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2].startswith("riskinsight: error: input directory") and "Traceback" not in "\n".join(err)
    assert err[-1] == "riskinsight: error: spark_entry.py always runs the Spark engine; drop --engine"
    # The filesystem's refusal (a file where the warehouse belongs) is one line and exit 1, as in `riskinsight run`.
    from tests.inputs import write_day

    write_day(tmp_path / "in", dt.date(2024, 3, 5), {})  # a whole input: the warehouse is what fails
    (tmp_path / "afile").write_text("")
    assert main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "afile"), "--ds", "2024-03-05"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("riskinsight: error: [Errno 20] Not a directory: ") and err.count("\n") == 1
    assert spark_session.sparkContext._jsc is not None  # the entry never stops a session it did not create


def test_entry_runs_as_a_file_without_the_package_on_sys_path(tmp_path: Path) -> None:
    """spark-submit runs the file with jobs/ as sys.path[0]; --help must work with no install."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-S", str(REPO / "jobs" / "spark_entry.py"), "--help"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--lookback" in done.stdout and "--input" in done.stdout
