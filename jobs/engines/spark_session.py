"""Spark sessions: a small local one for tests, and one for real runs that respects spark-submit.

Outputs must equal Polars' to the microsecond, and Spark formats and truncates timestamps in the
session time zone, so every session this module hands out runs in UTC whatever the cluster default.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pyspark.sql import SparkSession

UTC_CONF = {"spark.sql.session.timeZone": "UTC"}

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
# PySpark raises the console to WARN for its "repl" logger unless that logger is configured.
logger.repl.name = org.apache.spark.repl.Main
logger.repl.level = error
"""


def quiet_log4j2_file() -> Path:
    """A log4j2 config at level ERROR with short stack traces.

    setLogLevel only takes effect once the JVM is up, so start-up warnings and the multi-screen
    task-failure traces still print without a config file handed to the JVM at launch.
    """
    path = Path(tempfile.gettempdir()) / f"riskinsight-log4j2-{os.getuid()}.properties"
    if not path.exists() or path.read_text() != _LOG4J2:
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(_LOG4J2)
        os.replace(tmp, path)
    return path


def local_session(app_name: str = "riskinsight-tests", cores: int = 2) -> SparkSession:
    """local[cores] for tests: quiet, UTC, two shuffle partitions; reuses a running session."""
    log_conf = f"-Dlog4j2.configurationFile=file:{quiet_log4j2_file()}"
    builder = SparkSession.builder.master(f"local[{cores}]").appName(app_name)
    for key, value in {
        **LOCAL_CONF,
        "spark.driver.extraJavaOptions": log_conf,
        "spark.executor.extraJavaOptions": log_conf,
    }.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    return _finish(spark, "ERROR")


def session(master: str | None = None, app_name: str = "riskinsight", log_level: str = "WARN") -> SparkSession:
    """The session of a real run.

    master None keeps what spark-submit (or spark-defaults.conf) chose; without either PySpark
    falls back to local[*]. Everything else (memory, shuffle partitions, dynamic allocation) is
    left to spark-submit's --conf so operators tune a cluster without touching code.
    """
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    for key, value in UTC_CONF.items():
        builder = builder.config(key, value)
    return _finish(builder.getOrCreate(), log_level)


def _finish(spark: SparkSession, log_level: str) -> SparkSession:
    # getOrCreate may hand back an existing session built elsewhere: force the time zone anyway.
    for key, value in UTC_CONF.items():
        spark.conf.set(key, value)
    spark.sparkContext.setLogLevel(log_level)
    return spark
