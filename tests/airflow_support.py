"""Real-Airflow harness for tests/test_airflow_dag.py.

Airflow reads its configuration (AIRFLOW_HOME, the metadata DB, the dags folder) once, when it is first
imported, and then reconfigures logging and warnings for the whole process. So the tests never import
Airflow themselves: every Airflow step runs in a fresh interpreter (`python tests/airflow_support.py
<command> ...`) with its own environment, and hands back one JSON document. Other test modules in the
same pytest session are left untouched, and each Airflow step sees exactly the config it was given.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DAGS_FOLDER = REPO / "airflow_dags"
DAG_FILE = DAGS_FOLDER / "risk_insight_nightly.py"
DAG_ID = "risk_insight_nightly"
HEAVY_MODULES: tuple[str, ...] = ("polars", "pyspark", "pandas", "great_expectations", "narwhals")
_MARKER = "@@airflow_support_result@@"


def airflow_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of an isolated Airflow: its own home and SQLite DB, our dags folder, no examples."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
        }
    )
    env.update(extra or {})
    return env


def migrate_db(env: dict[str, str], timeout: float = 300) -> float:
    """Create the SQLite metadata DB (dag.test() needs one); returns the seconds it took."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"airflow db migrate failed ({proc.returncode}):\n{_tail(proc.stdout + proc.stderr)}")
    return time.perf_counter() - started


def call(command: str, env: dict[str, str], *args: str, timeout: float = 600) -> dict[str, Any]:
    """Run one harness command in a fresh interpreter and return its JSON result."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), command, *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARKER):
            result: dict[str, Any] = json.loads(line[len(_MARKER):])
            result["output_tail"] = _tail(proc.stdout + proc.stderr)
            return result
    raise AssertionError(
        f"harness command {command} {args} exited {proc.returncode} without a result:\n"
        f"{_tail(proc.stdout + proc.stderr)}"
    )


def _tail(text: str, chars: int = 6000) -> str:
    return text if len(text) <= chars else "...\n" + text[-chars:]


def _emit(result: dict[str, Any]) -> None:
    print(_MARKER + json.dumps(result, default=str), flush=True)


def _seconds(value: Any) -> float | None:
    # Operators keep some durations as timedelta and others (sensor intervals) as float seconds.
    if value is None:
        return None
    return value.total_seconds() if hasattr(value, "total_seconds") else float(value)


# ---------------------------------------------------------------- commands (run inside the subprocess)


def _load_dag() -> tuple[Any, dict[str, str]]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    return bag.dags.get(DAG_ID), dict(bag.import_errors)


def cmd_describe(_: argparse.Namespace) -> dict[str, Any]:
    """Load the dags folder through DagBag and describe the DAG as the scheduler would see it."""
    dag, import_errors = _load_dag()
    result: dict[str, Any] = {"import_errors": import_errors, "dag": None, "tasks": {}}
    result["heavy_modules_loaded"] = sorted(m for m in HEAVY_MODULES if m in sys.modules)
    if dag is None:
        return result

    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.timetables.base import TimeRestriction

    # The dag processor stores the serialized form; a DAG that does not survive the round trip
    # never reaches the scheduler even though DagBag reports no import error.
    round_trip = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))

    timetable = coerce_to_core_timetable(dag.timetable)
    intervals = []
    last = None
    for _ in range(2):
        info = timetable.next_dagrun_info(
            last_automated_data_interval=last,
            restriction=TimeRestriction(earliest=dag.start_date, latest=None, catchup=True),
        )
        last = info.data_interval
        intervals.append({"start": last.start.isoformat(), "end": last.end.isoformat(),
                          "run_after": info.run_after.isoformat()})

    result["dag"] = {
        "dag_id": dag.dag_id,
        "fileloc": dag.fileloc,
        "timetable": type(dag.timetable).__name__,
        "cron": getattr(dag.timetable, "expression", None),
        "timezone": str(getattr(dag.timetable, "timezone", None)),
        "first_intervals": intervals,
        "start_date": dag.start_date.isoformat(),
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "dagrun_timeout_s": _seconds(dag.dagrun_timeout),
        "has_on_failure_callback": bool(dag.on_failure_callback),
        "tags": sorted(dag.tags),
        "doc_md": dag.doc_md,
        "params": {name: {"default": p.value if p.has_value else None, "schema": p.schema}
                   for name, p in dag.params.items()},
        "round_trip_task_ids": sorted(round_trip.task_dict),
    }
    for t in dag.tasks:
        result["tasks"][t.task_id] = {
            "operator": type(t).__name__,
            "upstream": sorted(t.upstream_task_ids),
            "downstream": sorted(t.downstream_task_ids),
            "retries": t.retries,
            "retry_delay_s": _seconds(t.retry_delay),
            "retry_exponential_backoff": t.retry_exponential_backoff,
            "max_retry_delay_s": _seconds(t.max_retry_delay),
            "execution_timeout_s": _seconds(t.execution_timeout),
            "depends_on_past": t.depends_on_past,
            "max_active_tis_per_dag": t.max_active_tis_per_dag,
            "wait_for_downstream": t.wait_for_downstream,
            "has_on_failure_callback": bool(t.on_failure_callback),
            "mode": getattr(t, "mode", None),
            "poke_interval_s": _seconds(getattr(t, "poke_interval", None)),
            "sensor_timeout_s": _seconds(getattr(t, "timeout", None)),
        }
    return result


def cmd_import_probe(_: argparse.Namespace) -> dict[str, Any]:
    """Time importing the DAG file on top of an already imported Airflow, as the dag processor does."""
    import importlib.util

    started = time.perf_counter()
    import airflow.sdk  # noqa: F401  the fixed cost every DAG file pays, not ours to judge

    airflow_s = time.perf_counter() - started
    started = time.perf_counter()
    spec = importlib.util.spec_from_file_location("risk_insight_nightly_probe", DAG_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag_file_s = time.perf_counter() - started
    return {
        "airflow_import_s": airflow_s,
        "dag_file_import_s": dag_file_s,
        "heavy_modules_loaded": sorted(m for m in HEAVY_MODULES if m in sys.modules),
        "jobs_loaded": sorted(m for m in sys.modules if m == "jobs" or m.startswith("jobs.")),
    }


def cmd_run(ns: argparse.Namespace) -> dict[str, Any]:
    """dag.test() one run; report the run's state and every task instance's state, tries and XCom."""
    from datetime import datetime, timedelta

    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag, import_errors = _load_dag()
    if dag is None:
        return {"error": f"DAG not loaded: {import_errors}"}
    # Keep the real retry counts (whether a task retries is part of what is tested) but not the
    # minutes of backoff, which dag.test() would otherwise sit out; likewise sensors poke every
    # second and give up after --sensor-timeout instead of 12 hours.
    for t in dag.tasks:
        t.retry_delay = timedelta(seconds=1)
        t.max_retry_delay = timedelta(seconds=1)
        if getattr(t, "mode", None) == "reschedule":
            t.poke_interval = 1.0  # sensors keep these as float seconds
            t.timeout = float(ns.sensor_timeout)

    logical_date = datetime.fromisoformat(ns.logical_date)
    dr = dag.test(
        logical_date=logical_date,
        run_after=logical_date,
        run_conf=json.loads(ns.conf),
        mark_success_pattern=ns.mark_success or None,
    )
    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == dr.run_id)
        ).all()
        states = {ti.task_id: {"state": str(ti.state) if ti.state else None, "try_number": ti.try_number}
                  for ti in tis}
        xcoms = {
            row.task_id: XComModel.deserialize_value(row)
            for row in session.scalars(
                select(XComModel).where(
                    XComModel.dag_id == DAG_ID, XComModel.run_id == dr.run_id, XComModel.key == "return_value"
                )
            )
        }
        run_state = str(session.merge(dr).state)
    return {
        "run_id": dr.run_id,
        "state": run_state,
        "data_interval_start": dr.data_interval_start.isoformat() if dr.data_interval_start else None,
        "tasks": states,
        "xcoms": xcoms,
    }


def _dag_module() -> Any:
    """The DAG file as a module of its own, to call its task helpers directly."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("risk_insight_nightly_probe", DAG_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cmd_candidate(ns: argparse.Namespace) -> dict[str, Any]:
    """The DAG's `_candidate(run, prepared)`: the candidate path, or what it raised."""
    try:
        candidate = _dag_module()._candidate(json.loads(ns.run), json.loads(ns.prepared))
    except Exception as exc:  # noqa: BLE001 - the exception is the result
        return {"raised": type(exc).__name__, "message": str(exc)}
    return {"raised": None, "path": str(candidate.path)}


def cmd_publish(ns: argparse.Namespace) -> dict[str, Any]:
    """The DAG's `_publish(run, prepared)`: what it returned, or what it raised."""
    try:
        return {"raised": None, "result": _dag_module()._publish(json.loads(ns.run), json.loads(ns.prepared))}
    except Exception as exc:  # noqa: BLE001 - the exception is the result
        return {"raised": type(exc).__name__, "message": str(exc)}


def cmd_gate(ns: argparse.Namespace) -> dict[str, Any]:
    """The DAG's dq_gate task body `_gate_prepared(run, prepared)`: its result, or what it raised."""
    try:
        return {"raised": None, "result": _dag_module()._gate_prepared(json.loads(ns.run), json.loads(ns.prepared))}
    except Exception as exc:  # noqa: BLE001 - the exception is the result
        return {"raised": type(exc).__name__, "message": str(exc)}


def _fake_context(ns: argparse.Namespace) -> dict[str, Any]:
    """A task context with what the DAG's helpers read: the run (its type, id, clear number,
    run_after), its logical date and data interval, the DAG's start date, the params; and a failed
    task, or none."""
    from datetime import datetime
    from types import SimpleNamespace

    def when(text: str | None) -> datetime | None:
        return datetime.fromisoformat(text) if text else None

    dag_run = SimpleNamespace(run_type=ns.run_type, run_id=ns.run_id, dag_id=DAG_ID, run_after=when(ns.run_after),
                              clear_number=ns.clear_number)
    context: dict[str, Any] = {
        "dag_run": dag_run, "logical_date": when(ns.logical_date), "data_interval_start": when(ns.interval_start),
        "dag": SimpleNamespace(start_date=when(ns.start_date)), "params": json.loads(ns.params),
        "reason": ns.reason or None,
    }
    if ns.minimal:
        return {"dag": context["dag"], "run_id": ns.run_id, "reason": context["reason"]}
    if ns.task_id:
        def no_xcom(**_: Any) -> Any:
            raise RuntimeError("no XCom in this harness")

        context["ti"] = SimpleNamespace(task_id=ns.task_id, try_number=3, log_url="http://log", xcom_pull=no_xcom)
        if not ns.run_level:  # a run's callback gets its last task's context, without an exception
            context["exception"] = RuntimeError("killed")
    return context


def cmd_resolve(ns: argparse.Namespace) -> dict[str, Any]:
    """The DAG's `_resolve_run(context)` on a made-up context: the run it plans, or what it raised."""
    try:
        return {"raised": None, "result": _dag_module()._resolve_run(_fake_context(ns))}
    except Exception as exc:  # noqa: BLE001 - the exception is the result
        return {"raised": type(exc).__name__, "message": str(exc)}


def cmd_record(ns: argparse.Namespace) -> dict[str, Any]:
    """The DAG's failure callbacks (task level, or run level with --run-level) on a made-up context."""
    module = _dag_module()
    (module.record_run_failure if ns.run_level else module.record_failure)(_fake_context(ns))
    return {"raised": None}


def cmd_spark_prepare(ns: argparse.Namespace) -> dict[str, Any]:
    """Call the DAG's spark-submit step once per exit code the fake spark-submit is told to return.

    The fake is whatever AIRFLOW_VAR_RISKINSIGHT_SPARK_SUBMIT names; it reads its exit code from
    FAKE_SPARK_EXIT, which this sets before each call.
    """
    module = _dag_module()
    run = json.loads(ns.run)
    if ns.timeout:
        # The task's execution_timeout, as Airflow raises it: in the task's thread, by a signal.
        from airflow.sdk.execution_time.timeout import timeout

        os.environ["FAKE_SPARK_EXIT"] = "hang"
        started = time.monotonic()
        try:
            with timeout(int(ns.timeout)):
                module._spark_prepare(run, run["ds"])
            raised = None
        except BaseException as exc:  # noqa: BLE001 - AirflowTaskTimeout is what is expected
            raised = type(exc).__name__
        return {"raised": raised, "seconds": time.monotonic() - started, "python": sys.executable}
    outcomes: dict[str, Any] = {}
    for code in ns.exit_codes.split(","):
        os.environ["FAKE_SPARK_EXIT"] = code
        try:
            module._spark_prepare(run, run["ds"])
            outcomes[code] = {"raised": None}
        except Exception as exc:
            outcomes[code] = {"raised": type(exc).__name__, "message": str(exc)}
    return {"outcomes": outcomes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("describe").set_defaults(fn=cmd_describe)
    sub.add_parser("import_probe").set_defaults(fn=cmd_import_probe)
    run = sub.add_parser("run")
    run.add_argument("--logical-date", required=True)
    run.add_argument("--conf", default="{}")
    run.add_argument("--mark-success", default="")
    run.add_argument("--sensor-timeout", type=float, default=30.0)
    run.set_defaults(fn=cmd_run)
    spark = sub.add_parser("spark_prepare")
    spark.add_argument("--run", required=True)
    spark.add_argument("--exit-codes", default="0")
    spark.add_argument("--timeout", type=float, default=0.0, help="run once against a hanging spark-submit under this execution_timeout")
    spark.set_defaults(fn=cmd_spark_prepare)
    cand = sub.add_parser("candidate")
    cand.add_argument("--run", required=True)
    cand.add_argument("--prepared", required=True)
    cand.set_defaults(fn=cmd_candidate)
    pub = sub.add_parser("publish")
    pub.add_argument("--run", required=True)
    pub.add_argument("--prepared", required=True)
    pub.set_defaults(fn=cmd_publish)
    gate = sub.add_parser("gate")
    gate.add_argument("--run", required=True)
    gate.add_argument("--prepared", required=True)
    gate.set_defaults(fn=cmd_gate)
    for name, fn in (("resolve", cmd_resolve), ("record", cmd_record)):
        ctx = sub.add_parser(name)
        ctx.add_argument("--run-type", default="scheduled")
        ctx.add_argument("--run-id", default="scheduled__2024-03-01T00:00:00+00:00")
        ctx.add_argument("--clear-number", type=int, default=0)
        ctx.add_argument("--run-after", default="")
        ctx.add_argument("--logical-date", default="")
        ctx.add_argument("--interval-start", default="")
        ctx.add_argument("--start-date", default="2024-01-01T00:00:00+00:00")
        ctx.add_argument("--params", default="{}")
        ctx.add_argument("--reason", default="")
        ctx.add_argument("--task-id", default="")
        ctx.add_argument("--run-level", action="store_true")
        ctx.add_argument("--minimal", action="store_true", help="the context a DAG callback gets without a last task")
        ctx.set_defaults(fn=fn)
    ns = parser.parse_args(argv)
    _emit(ns.fn(ns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
