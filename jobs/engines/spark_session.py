"""Spark sessions: a small local one for tests, and one for real runs that respects spark-submit.

Outputs must equal Polars' to the microsecond, and Spark formats and truncates timestamps in the
session time zone, so every session this module hands out runs in UTC whatever the cluster default.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import pyspark
from pyspark.sql import SparkSession

from jobs.warehouse import write_text

UTC_CONF = {"spark.sql.session.timeZone": "UTC"}

# The JVM of a local-mode run is driver and executor at once, a batch job on every core, where
# throughput is all that counts: the parallel collector instead of G1, Java's default, which spends
# cores on concurrent marking to keep pauses short. A 10 M-decision day on two cores, two
# interleaved pairs: 82.7 / 82.3 s with G1, 72.9 / 72.8 s with ParallelGC.
LOCAL_JVM_OPTIONS = "-XX:+UseParallelGC"
_JAVA_OPTIONS_KEYS = ("spark.driver.extraJavaOptions", "spark.driver.defaultJavaOptions")

# The machine is shared: two cores, no UI, few shuffle partitions (the default 200 makes tiny test
# frames pay for 200 tasks per shuffle), no console progress bar.
LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.driver.memory": "2g",
    **UTC_CONF,
}

_LOG4J2 = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex{3}
# PySpark raises the console to WARN, and says so on stderr, unless its shell's logger is configured.
logger.repl.name = org.apache.spark.repl.Main
logger.repl.level = error
logger.gateway.name = org.apache.spark.api.python.PythonGatewayServer
logger.gateway.level = error
# A task that fails on bad input (a corrupt page, an overflowing cast) is logged by the executor,
# the task set and the writer, each with the whole Java trace inside the message text, before the
# job fails. The run then reports the failure itself in one line (exit 4); --verbose has the trace.
logger.executor.name = org.apache.spark.executor.Executor
logger.executor.level = off
logger.tasksets.name = org.apache.spark.scheduler.TaskSetManager
logger.tasksets.level = off
logger.utils.name = org.apache.spark.util.Utils
logger.utils.level = off
logger.writer.name = org.apache.spark.sql.execution.datasources.FileFormatWriter
logger.writer.level = off
"""


def quiet_log4j2_file() -> Path:
    """A log4j2 config at level ERROR with short stack traces.

    setLogLevel only takes effect once the JVM is up, so start-up warnings and the multi-screen
    task-failure traces still print without a config file handed to the JVM at launch.
    """
    path = Path(tempfile.gettempdir()) / f"riskinsight-log4j2-{os.getuid()}.properties"
    if not path.exists() or path.read_text() != _LOG4J2:
        write_text(path, _LOG4J2)
    return path


def local_session(app_name: str = "riskinsight-tests", cores: int = 2) -> SparkSession:
    """local[cores] for tests: quiet, UTC, two shuffle partitions; reuses a running session."""
    log_conf = _log4j2_option()
    driver_conf = f"{LOCAL_JVM_OPTIONS} {log_conf}"
    builder = SparkSession.builder.master(f"local[{cores}]").appName(app_name)
    for key, value in {
        **LOCAL_CONF,
        "spark.driver.extraJavaOptions": driver_conf,
        "spark.executor.extraJavaOptions": log_conf,
    }.items():
        builder = builder.config(key, value)
    spark = keeping_sigint(builder.getOrCreate)
    return _finish(spark, "ERROR")


def session(master: str | None = None, app_name: str = "riskinsight", log_level: str | None = None) -> SparkSession:
    """The session of a real run.

    master None keeps what spark-submit (or spark-defaults.conf) chose; without either PySpark
    falls back to local[*]. Everything else (memory, shuffle partitions, dynamic allocation) is
    left to spark-submit's --conf so operators tune a cluster without touching code.

    A local JVM this process launches itself (`riskinsight run --engine spark`) logs like the
    CLI: errors only, no console progress bar over the CLI's own, no task-failure traces (the run
    reports a failure in one line); log_level None means ERROR there and WARN elsewhere.
    """
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    ours = local_jvm_conf(master, os.environ)
    if ours:
        ours = {
            **ours,
            "spark.driver.extraJavaOptions": f"{ours['spark.driver.extraJavaOptions']} {_log4j2_option()}",
            "spark.ui.showConsoleProgress": "false",
        }
    for key, value in {**UTC_CONF, **ours}.items():
        builder = builder.config(key, value)
    return _finish(keeping_sigint(builder.getOrCreate), log_level or ("ERROR" if ours else "WARN"))


def keeping_sigint(create: Callable[[], SparkSession]) -> SparkSession:
    """create() (getOrCreate), with the SIGINT handler of the main thread as it was before.

    A new SparkContext installs its own handler, which calls cancelAllJobs over the py4j connection
    the interrupted main thread is busy on: Ctrl-C during `run --engine spark` printed ~45 lines of
    py4j tracebacks instead of `riskinsight: interrupted`. With Python's handler back, Ctrl-C is a
    KeyboardInterrupt like anywhere else in the run. Only the main thread can set a handler (or has
    PySpark's installed); a session made in another thread (Airflow's task runners) is left alone.
    """
    if _py4j_interrupt_trace not in logging.getLogger().filters:
        logging.getLogger().addFilter(_py4j_interrupt_trace)
    if threading.current_thread() is not threading.main_thread():
        return create()
    before = signal.getsignal(signal.SIGINT)
    spark = create()
    if signal.getsignal(signal.SIGINT) is not before:
        # None: a handler not set from Python; Python's own is what the process would otherwise have.
        signal.signal(signal.SIGINT, before if before is not None else signal.default_int_handler)
    return spark


def _py4j_interrupt_trace(record: logging.LogRecord) -> bool:
    """False for py4j's own traceback of a Ctrl-C that hit a call into the JVM (logged on the root
    logger, then raised on): the CLI says `riskinsight: interrupted` (exit 130) in one line."""
    return not (
        record.getMessage() == "KeyboardInterrupt while sending command."
        and record.exc_info is not None
        and record.exc_info[0] is not None
        and issubclass(record.exc_info[0], KeyboardInterrupt)
    )


def _log4j2_option() -> str:
    return f"-Dlog4j2.configurationFile=file:{quiet_log4j2_file()}"


def local_jvm_conf(master: str | None, env: Mapping[str, str]) -> dict[str, str]:
    """LOCAL_JVM_OPTIONS for the driver JVM this process is about to launch in local mode, else nothing.

    Nothing where the JVM is not ours to configure, or its options are someone else's choice:
    spark-submit started it already (PYSPARK_GATEWAY_PORT), the master is a cluster's (the driver
    then does little, and executors are configured by their operators), or driver Java options are
    set in PYSPARK_SUBMIT_ARGS or in a spark-defaults.conf: ours would replace theirs, or stand
    beside a collector they chose, and the JVM refuses two collectors.
    """
    if "PYSPARK_GATEWAY_PORT" in env:
        return {}
    submit = shlex.split(env.get("PYSPARK_SUBMIT_ARGS", ""))
    if master is None:
        # PySpark's own default is local[*]; spark-submit's last --master wins.
        masters = [submit[i + 1] for i, arg in enumerate(submit[:-1]) if arg == "--master"]
        master = masters[-1] if masters else "local[*]"
    if not master.startswith("local"):
        return {}
    if any(key in arg for arg in submit for key in (*_JAVA_OPTIONS_KEYS, "--driver-java-options")):
        return {}
    if any(key in _spark_defaults(env) for key in _JAVA_OPTIONS_KEYS):
        return {}
    return {"spark.driver.extraJavaOptions": LOCAL_JVM_OPTIONS}


def _spark_defaults(env: Mapping[str, str]) -> str:
    """The text of the spark-defaults.conf spark-submit would read (SPARK_CONF_DIR, else SPARK_HOME/conf)."""
    # Without SPARK_HOME, PySpark launches the Spark inside its own package.
    home = env.get("SPARK_HOME") or str(Path(pyspark.__file__).parent)
    path = Path(env.get("SPARK_CONF_DIR") or Path(home) / "conf") / "spark-defaults.conf"
    return path.read_text(errors="replace") if path.is_file() else ""


def _finish(spark: SparkSession, log_level: str) -> SparkSession:
    # getOrCreate may hand back an existing session built elsewhere: force the time zone anyway.
    for key, value in UTC_CONF.items():
        spark.conf.set(key, value)
    spark.sparkContext.setLogLevel(log_level)
    return spark
