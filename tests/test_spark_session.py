"""The JVM a local-mode run launches collects garbage with the parallel collector
(jobs.engines.spark_session.local_jvm_conf), and only where nobody else chose its Java options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.engines.spark_session import LOCAL_JVM_OPTIONS, local_jvm_conf

ROOT = Path(__file__).resolve().parents[1]
PARALLEL = {"spark.driver.extraJavaOptions": LOCAL_JVM_OPTIONS}


@pytest.fixture
def conf_dir(tmp_path: Path) -> Path:
    """An empty SPARK_CONF_DIR, so that no spark-defaults.conf of the machine takes part."""
    return tmp_path


@pytest.mark.parametrize(
    ("master", "submit_args", "expected"),
    [
        (None, None, PARALLEL),  # PySpark's own default master is local[*]
        (None, "--master local[*] --driver-memory 6g pyspark-shell", PARALLEL),  # the benchmark's
        ("local[2]", None, PARALLEL),
        (None, "--master yarn pyspark-shell", {}),
        ("spark://head:7077", None, {}),
        (None, "--master local[4] --master spark://head:7077 pyspark-shell", {}),  # spark-submit's last wins
        (None, "--master local[*] --conf spark.driver.extraJavaOptions=-Xss4m pyspark-shell", {}),
        (None, "--conf spark.driver.defaultJavaOptions=-XX:+UseG1GC pyspark-shell", {}),
        (None, "--driver-java-options '-Xss4m' pyspark-shell", {}),
    ],
)
def test_parallel_gc_only_for_a_local_jvm_whose_java_options_nobody_set(
    conf_dir: Path, master: str | None, submit_args: str | None, expected: dict
) -> None:
    env = {"SPARK_CONF_DIR": str(conf_dir)}
    if submit_args is not None:
        env["PYSPARK_SUBMIT_ARGS"] = submit_args
    assert local_jvm_conf(master, env) == expected


def test_no_option_when_spark_submit_launched_the_jvm_already(conf_dir: Path) -> None:
    assert local_jvm_conf("local[2]", {"SPARK_CONF_DIR": str(conf_dir), "PYSPARK_GATEWAY_PORT": "40123"}) == {}


def test_a_spark_defaults_file_with_driver_java_options_is_left_to_decide(conf_dir: Path, tmp_path: Path) -> None:
    defaults = conf_dir / "spark-defaults.conf"
    defaults.write_text("spark.sql.shuffle.partitions 8\n")
    assert local_jvm_conf(None, {"SPARK_CONF_DIR": str(conf_dir)}) == PARALLEL
    defaults.write_text("spark.sql.shuffle.partitions 8\nspark.driver.extraJavaOptions -XX:+UseG1GC\n")
    assert local_jvm_conf(None, {"SPARK_CONF_DIR": str(conf_dir)}) == {}
    # Without SPARK_CONF_DIR, spark-submit reads SPARK_HOME/conf.
    home = tmp_path / "spark_home"
    (home / "conf").mkdir(parents=True)
    (home / "conf" / "spark-defaults.conf").write_text("spark.driver.defaultJavaOptions -Xss4m\n")
    assert local_jvm_conf(None, {"SPARK_HOME": str(home)}) == {}


_COLLECTORS = """
import json, sys
sys.path.insert(0, sys.argv[1])
from jobs.engines.spark_session import session
spark = session(None, "collector-probe", log_level="ERROR")
beans = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()
print(json.dumps(sorted(str(b.getName()) for b in beans)))
spark.stop()
"""


def _collectors(submit_args: str, conf_dir: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET")}
    env |= {"PYSPARK_SUBMIT_ARGS": submit_args, "SPARK_CONF_DIR": str(conf_dir)}
    done = subprocess.run(
        [sys.executable, "-c", _COLLECTORS, str(ROOT)], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.spark
def test_a_real_runs_local_jvm_collects_with_the_parallel_collector_unless_told_otherwise(conf_dir: Path) -> None:
    base = "--master local[1] --driver-memory 512m --conf spark.ui.enabled=false"
    # The parallel collector's two generations, as the JVM names them.
    assert _collectors(f"{base} pyspark-shell", conf_dir) == ["PS MarkSweep", "PS Scavenge"]
    # Java options of the operator's own: their collector, not ours beside it.
    chosen = _collectors(f"{base} --driver-java-options -XX:+UseSerialGC pyspark-shell", conf_dir)
    assert chosen == ["Copy", "MarkSweepCompact"]


@pytest.mark.spark
def test_the_test_session_collects_with_the_parallel_collector(spark_session) -> None:
    beans = spark_session.sparkContext._jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()
    assert sorted(str(b.getName()) for b in beans) == ["PS MarkSweep", "PS Scavenge"]


@pytest.mark.spark
def test_a_local_spark_run_on_unreadable_input_says_so_in_one_line(tmp_path: Path, conf_dir: Path) -> None:
    """Bad input: one clear line and exit 4, as on Polars. Spark's executor, task set and writer
    logged the whole Java trace of the failed task first (118 lines on a corrupt page), and its
    console progress bar and start-up notes interleaved with the CLI's own lines."""
    from tests.conftest import DS
    from tests.inputs import write_day
    from tests.test_cli_run import clean_day

    day = clean_day(DS, n=400)
    write_day(tmp_path / "in", DS, day)
    part = next((tmp_path / "in" / "decisions" / f"ds={DS}").glob("*.parquet"))
    data = bytearray(part.read_bytes())
    end = len(data) - 8 - int.from_bytes(data[-8:-4], "little")  # keep the footer: the scan fails, not the schema check
    data[4:end] = bytes(b ^ 0x5A for b in data[4:end])
    part.write_bytes(bytes(data))
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "PYSPARK_SUBMIT_ARGS")}
    env |= {"SPARK_CONF_DIR": str(conf_dir), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "run", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
         "--ds", str(DS), "--engine", "spark", "--no-report"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 4, done.stderr[-3000:]
    # The JVM's own notice of the incubating vector module is all that may precede the line.
    lines = [line for line in done.stderr.splitlines() if not line.startswith("WARNING: Using incubator modules")]
    assert len(lines) == 1 and lines[0].startswith(f"riskinsight: error: input decisions {part.parent}: cannot read its data: "), lines[:12]


def test_a_new_session_leaves_the_main_threads_sigint_handler_as_it_was() -> None:
    import signal
    import threading

    from jobs.engines.spark_session import keeping_sigint

    def pyspark_like() -> str:  # what a new SparkContext does in the main thread
        signal.signal(signal.SIGINT, lambda *_: None)
        return "session"

    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert keeping_sigint(pyspark_like) == "session"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    got: list[object] = []  # another thread (Airflow's): create() alone, no signal call (it would raise)
    t = threading.Thread(target=lambda: got.append(keeping_sigint(lambda: "other")))
    t.start()
    t.join()
    assert got == ["other"]


@pytest.mark.spark
def test_a_real_session_keeps_pythons_sigint_handler(conf_dir: Path) -> None:
    """PySpark's handler calls cancelAllJobs over the py4j connection Ctrl-C interrupted: tracebacks."""
    code = (
        "import signal\nfrom jobs.engines.spark_session import session\n"
        "s = session('local[1]')\nprint(signal.getsignal(signal.SIGINT) is signal.default_int_handler)\ns.stop()\n"
    )
    env = {**os.environ, "SPARK_CONF_DIR": str(conf_dir), "PYTHONPATH": str(ROOT)}
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "True"


def test_py4js_traceback_of_a_ctrl_c_is_not_logged_other_errors_are(caplog) -> None:
    import logging

    from jobs.engines.spark_session import keeping_sigint

    keeping_sigint(lambda: None)
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        logging.exception("KeyboardInterrupt while sending command.")  # what py4j logs, on the root logger
    try:
        raise ConnectionError("gone")
    except ConnectionError:
        logging.exception("Exception while sending command.")
    assert [r.getMessage() for r in caplog.records] == ["Exception while sending command."]
