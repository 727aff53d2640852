"""riskinsight nightly DAG: one UTC day of moderation logs -> gated, published warehouse partitions + report.

The DAG file is parsed every few seconds by the dag processor, so it stays thin: only the standard
library and ``airflow.sdk`` are imported here. ``jobs`` (and through it polars, pyspark, pandas,
great-expectations, narwhals) is imported inside the task callables, on the worker, when a task runs.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import CronDataIntervalTimetable, Param, Variable, dag, task
from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

DAG_ID = "risk_insight_nightly"
INPUT_TABLES: tuple[str, ...] = ("decisions", "appeals", "qa_audits", "shifts")

# Deployment-wide settings are Airflow Variables (one value per deployment); per-run choices are
# Params (trigger conf). A Param left at null falls back to its Variable, then to these defaults.
VAR_START_DATE = "riskinsight_start_date"
VAR_INPUT_DIR = "riskinsight_input_dir"
VAR_OUTPUT_DIR = "riskinsight_output_dir"
VAR_CONFIG = "riskinsight_config"
VAR_SPARK_SUBMIT = "riskinsight_spark_submit"
VAR_SPARK_SUBMIT_ARGS = "riskinsight_spark_submit_args"
DEFAULT_START_DATE = "2024-01-01"
DEFAULT_INPUT_DIR = "/data/riskinsight/input"
DEFAULT_OUTPUT_DIR = "/data/riskinsight/output"

# Lookback is for logs that arrive a few days late. Reprocessing longer ranges is a backfill
# (`airflow backfill create`), which gives every day its own run, retries and failure record.
MAX_LOOKBACK = 7

# Upstream logs land some time after midnight; a sensor in reschedule mode gives its worker slot
# back between pokes, so waiting most of a day costs nothing but a poke every few minutes.
SENSOR_POKE_INTERVAL = timedelta(minutes=5)
SENSOR_TIMEOUT = timedelta(hours=12)

# Sized for the 100M-decision day on 2 cores (DESIGN §8) with headroom; a hung task gets killed
# and retried instead of holding the day forever.
PREPARE_TIMEOUT = timedelta(hours=4)
GATE_TIMEOUT = timedelta(hours=1)
PUBLISH_TIMEOUT = timedelta(minutes=30)
REPORT_TIMEOUT = timedelta(minutes=30)
LOOKBACK_TIMEOUT = timedelta(hours=24)  # up to MAX_LOOKBACK days prepared, gated and published in turn


def _start_date() -> datetime:
    # Read at parse time on purpose: catchup needs the start date before any run exists. Variable.get
    # with a default does not fail when the Variable is unset; a malformed value fails the import
    # loudly rather than silently moving the catchup window.
    raw = str(Variable.get(VAR_START_DATE, default=DEFAULT_START_DATE)).strip()
    try:
        day = date.fromisoformat(raw)
    except ValueError as exc:
        raise ValueError(f"Airflow Variable {VAR_START_DATE}={raw!r} is not a YYYY-MM-DD date") from exc
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def _run_type(dag_run: Any) -> str:
    run_type = getattr(dag_run, "run_type", None)
    return str(getattr(run_type, "value", run_type))


def _interval_ds(context: Context) -> date:
    """The UTC day a run is for: the start of its data interval (the interval is that whole day)."""
    logical = context.get("logical_date")
    start = context.get("data_interval_start")
    if start is not None and logical is not None and _run_type(context["dag_run"]) == "manual":
        day = logical.astimezone(timezone.utc).date()
        if start.astimezone(timezone.utc).date() > day:
            # `airflow dags trigger -l X` gives the run the data interval of the clock's time, after
            # X; the UI, the REST API and `dags test` give it the interval this daily timetable
            # infers from X, [X-1, X) (or the one the caller set): ds is X-1 then too.
            return day - timedelta(days=1)
    if start is not None:
        return start.astimezone(timezone.utc).date()
    # An Airflow 3 manual run may have no logical date and so no data interval; the run's
    # run_after (fixed when it was created, unlike a clock read) stands in for the interval end.
    run_after = context["dag_run"].run_after
    return run_after.astimezone(timezone.utc).date() - timedelta(days=1)


def _setting(params: dict[str, Any], name: str, variable: str, default: str | None) -> str | None:
    value = params.get(name)
    if value in (None, ""):
        value = Variable.get(variable, default=default)
    return None if value in (None, "") else str(value)


def _resolve_run(context: Context) -> dict[str, Any]:
    """Everything a run needs, as plain JSON: the window of days (oldest first) and where to work."""
    params = context["params"]
    raw_ds = params.get("ds")
    try:
        ds = date.fromisoformat(raw_ds) if raw_ds else _interval_ds(context)
    except ValueError as exc:
        raise AirflowFailException(f"ds={raw_ds!r} is not a YYYY-MM-DD date") from exc
    lookback = int(params.get("lookback") or 0)
    if not 0 <= lookback <= MAX_LOOKBACK:
        raise AirflowFailException(f"lookback={lookback} is outside 0..{MAX_LOOKBACK}")
    start = context["dag"].start_date if context.get("dag") is not None else None
    if _run_type(context["dag_run"]) == "backfill" and start is not None and ds < start.astimezone(timezone.utc).date():
        # depends_on_past holds nothing before the DAG's start date: such backfill days would be
        # computed in any order, each day's trends on whatever earlier days happened to be published.
        raise AirflowFailException(
            f"backfill of ds={ds} before the DAG's start date {start.date()}: prepare's depends_on_past orders "
            f"no day before it; set Variable {VAR_START_DATE} to the backfill's first day first"
        )
    from jobs.warehouse import is_uri

    output_dir = _setting(params, "output_dir", VAR_OUTPUT_DIR, DEFAULT_OUTPUT_DIR)
    if is_uri(output_dir):
        # The tasks hand the candidate over through the warehouse, so they need a path they all share;
        # a URI warehouse takes whole runs (`spark_entry.py` / `riskinsight run --engine spark`).
        raise AirflowFailException(f"output_dir={output_dir!r}: the DAG's warehouse must be a path its workers share")
    return {
        "ds": ds.isoformat(),
        "days": [(ds - timedelta(days=k)).isoformat() for k in range(lookback, -1, -1)],
        "lookback": lookback,
        "engine": params.get("engine") or "polars",
        "input_dir": _setting(params, "input_dir", VAR_INPUT_DIR, DEFAULT_INPUT_DIR),
        "output_dir": output_dir,
        "config": _setting(params, "config", VAR_CONFIG, None),
    }


def _one_line(exc: BaseException | str | None, limit: int = 500) -> str | None:
    if exc is None:
        return None
    if isinstance(exc, str):
        text = exc
    else:
        first = str(exc).strip().splitlines()
        text = f"{type(exc).__name__}: {first[0]}" if first else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _failure_path(output_dir: str, ds: str) -> Path:
    return Path(output_dir) / "_runs" / f"ds={ds}" / "airflow_failure.json"


def record_failure(context: Context) -> None:
    """Task on_failure_callback: leave what failed next to the day's run manifest, for the on-call."""
    _record(context, run_level=False)


def record_run_failure(context: Context) -> None:
    """DAG on_failure_callback, run by the dag processor (whose host must see output_dir too). A
    task killed outright (an OOM kill on its last try) runs no task callback (apache/airflow#60858);
    the run's callback still runs. It records only when no task recorded this attempt of the run
    already: the task's record names the error, the run's only that the run failed."""
    _record(context, run_level=True)


def _record(context: Context, run_level: bool) -> None:
    if "dag_run" not in context:
        # The dag processor's context for a run whose last task is unknown: no day to file it under.
        log.warning("riskinsight run %s failed (%s); no task context to record it from", context.get("run_id"), context.get("reason"))
        return
    try:
        ti = context.get("ti")
        dag_run = context["dag_run"]
        run = None
        if ti is not None:
            try:
                run = ti.xcom_pull(task_ids="plan")
            except Exception:  # the plan task itself may be what failed
                run = None
        if not run:
            run = _resolve_run(context)
        path = _failure_path(run["output_dir"], run["ds"])
        clear_number = getattr(dag_run, "clear_number", None)
        if run_level:
            try:
                earlier = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                earlier = None
            # A cleared run keeps its run id; its earlier attempt's record is not this attempt's.
            if isinstance(earlier, dict) and (earlier.get("run_id"), earlier.get("clear_number")) == (dag_run.run_id, clear_number):
                return
        payload = {
            "dag_id": dag_run.dag_id,
            "task_id": ti.task_id if ti is not None else None,
            "run_id": dag_run.run_id,
            "clear_number": clear_number,
            "try_number": ti.try_number if ti is not None else None,
            "ds": run["ds"],
            "days": run["days"],
            "engine": run["engine"],
            "exception": _one_line(context.get("exception"))
            or (f"DAG run failed: {context.get('reason')}" if run_level else None),
            "log_url": ti.log_url if ti is not None else None,
        }
        from jobs.warehouse import write_text

        path.parent.mkdir(parents=True, exist_ok=True)
        # Atomic, through the warehouse's own temporaries, which the day's next run clears if a kill
        # leaves one behind (a pid-named one could also collide between two callbacks' processes).
        write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
        log.error("riskinsight task failed; recorded in %s: %s", path, json.dumps(payload, sort_keys=True))
    except Exception:
        # A broken callback must never hide the task's own failure.
        log.exception("could not record the riskinsight failure")


@contextmanager
def _expected_errors(ds: str) -> Iterator[None]:
    """Map the job's expected errors to AirflowFailException: retrying cannot fix them.

    Everything else (LockHeld while another run holds the ds, an OOM, a flaky filesystem) stays
    retryable.
    """
    from jobs.errors import CandidateMissing, CandidateReplaced, DQGateFailed, InputMissing, UsageError

    try:
        yield
    except CandidateReplaced as exc:
        raise AirflowFailException(_one_line(exc)) from exc
    except CandidateMissing as exc:
        # Only prepare makes a candidate: clearing dq_gate or publish alone cannot bring it back.
        raise AirflowFailException(f"{_one_line(exc)}; clear this run from its prepare task") from exc
    except DQGateFailed as exc:
        raise AirflowFailException(f"DQ gate failed for ds={ds}, nothing published: {_one_line(exc)}") from exc
    except InputMissing as exc:
        raise AirflowFailException(f"input missing or unreadable for ds={ds}: {_one_line(exc)}") from exc
    except UsageError as exc:
        raise AirflowFailException(f"bad configuration for ds={ds}: {_one_line(exc)}") from exc


def _load_config(run: dict[str, Any]) -> Any:
    from jobs.config import load_config
    from jobs.errors import UsageError

    try:
        return load_config(run["config"])
    except UsageError as exc:  # a retry reads the same file: fail at once, as `riskinsight run` exits 2
        raise AirflowFailException(f"bad configuration: {_one_line(exc)}") from exc


def _spark_prepare(run: dict[str, Any], ds: str) -> None:
    """Stage a candidate with spark-submit, so the Spark driver is not the Airflow worker process."""
    import shlex
    import shutil
    import subprocess

    import jobs

    spark_submit = str(Variable.get(VAR_SPARK_SUBMIT, default="spark-submit"))
    if shutil.which(spark_submit) is None:
        raise AirflowFailException(f"{spark_submit!r} not found; set Variable {VAR_SPARK_SUBMIT}")
    extra = shlex.split(str(Variable.get(VAR_SPARK_SUBMIT_ARGS, default="")))
    entry = Path(jobs.__file__).resolve().parent / "spark_entry.py"
    cmd = [spark_submit, *extra, str(entry), "--input", run["input_dir"], "--output", run["output_dir"],
           "--ds", ds, "--phase", "prepare"]
    if run["config"]:
        cmd += ["--config", run["config"]]
    log.info("running %s", shlex.join(cmd))
    # spark-submit finds its Spark home, and runs the driver, with $PYSPARK_DRIVER_PYTHON, else
    # whatever `python3` is first on the worker's PATH, which need not have pyspark or jobs (exit 127).
    env = {**os.environ, "PYSPARK_DRIVER_PYTHON": os.environ.get("PYSPARK_DRIVER_PYTHON") or sys.executable}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:  # streamed so the task log shows Spark's progress live
                log.info("spark: %s", line.rstrip())
        except BaseException:
            # execution_timeout (raised in this loop) or the task being killed: spark-submit must not
            # outlive it, and Popen's exit would otherwise wait for it to finish on its own.
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    # Exit codes per DESIGN §6: 2 usage and 4 input missing are not fixed by a retry; anything
    # else (executor lost, cluster hiccup) may be.
    if proc.returncode in (2, 4):
        raise AirflowFailException(f"spark-submit prepare for ds={ds} exited {proc.returncode}")
    if proc.returncode != 0:
        raise RuntimeError(f"spark-submit prepare for ds={ds} exited {proc.returncode}")


def _prepare_one(run: dict[str, Any], ds: str, config: Any) -> Any:
    from jobs import nightly

    with _expected_errors(ds):
        if run["engine"] == "spark":
            _spark_prepare(run, ds)
            return nightly.load_candidate(run["output_dir"], date.fromisoformat(ds)).pinned()
        return nightly.prepare_day(run["input_dir"], run["output_dir"], date.fromisoformat(ds),
                                   engine="polars", config=config)


def _candidate(run: dict[str, Any], prepared: dict[str, str]) -> Any:
    """The candidate this run's prepare wrote: found from (output, ds), pinned to its run id.

    Two DAG runs of one ds (a manual trigger with conf ds beside the scheduled run) share the
    candidate's place; each task takes the ds lock, but not the run as a whole. Pinned, the
    candidate is checked here and again by gate and publish under the ds lock: without that, one
    run's publish could publish the other's candidate, or its gate pass a candidate it never checked.
    """
    from jobs import nightly

    with _expected_errors(prepared["ds"]):
        return nightly.load_candidate(run["output_dir"], date.fromisoformat(prepared["ds"]), prepared.get("run_id"))


def _publish(run: dict[str, Any], prepared: dict[str, str]) -> dict[str, str]:
    """Publish this run's candidate. A retry after a publish that completed but was not recorded as
    a success (the worker died after it, or after the flip) finds the publication in place is this
    run's: the task is done, not failed, and publish_day removes what the candidate left behind."""
    from jobs import nightly

    ds = prepared["ds"]
    with _expected_errors(ds):
        manifest = nightly.publish_day(nightly.Candidate(Path(run["output_dir"]), date.fromisoformat(ds), prepared["run_id"]))
    return {"ds": ds, "verdict": str(manifest["dq"]["verdict"])}


def _gate_prepared(run: dict[str, Any], prepared: dict[str, str]) -> dict[str, str]:
    """The dq_gate task: the gate of this run's candidate. A gate cleared after this run published
    the day has nothing left to check: it returns the publication's verdict."""
    from jobs import nightly

    ds = prepared["ds"]
    done = nightly.published_run(run["output_dir"], date.fromisoformat(ds), prepared["run_id"])
    if done is not None:
        return {"ds": ds, "verdict": str(done["dq"]["verdict"])}
    # The thresholds come from the same config prepare used; a critical failure raises.
    result = _gate(ds, _candidate(run, prepared), _load_config(run))
    return {"ds": ds, "verdict": str(result["verdict"])}


def _gate(ds: str, candidate: Any, config: Any) -> dict:
    """The DQ gate; after a failure the day's page and the index say so (no report task follows)."""
    from jobs import nightly

    with _expected_errors(ds):
        return nightly.gate_day_reporting_failure(candidate, config)


DOC_MD = f"""
### riskinsight nightly

One run per UTC day `ds` (the data interval is that whole day, `[ds 00:00, ds+1 00:00)` UTC; the run
is created at midnight and its sensors wait for the day's logs).

`plan` resolves the run (ds, lookback window, paths, engine) once and hands it to every task via XCom
→ four sensors wait (reschedule mode) for `<input>/<table>/ds=<day>/_SUCCESS` of every day of the
window → `reprocess_lookback` re-runs the days before ds, oldest first, each prepared, gated and
published before the next (later days' trends read earlier days' published tables; the first day that
fails stops it, and ds is then not computed) → `prepare` stages
ds into `<output>/_candidates/ds=<ds>/` → `dq_gate` (a critical failure fails the task without retries
and nothing is published) → `publish` (atomic swap) → `report` (HTML per day of the window + index).

`prepare` waits for the previous scheduled run's `prepare`, `dq_gate` and `publish`
(`depends_on_past` + `wait_for_downstream`): catchup runs may overlap while their sensors wait, but days
are computed in date order, so trends never see a half-finished earlier day. `prepare` and
`reprocess_lookback` also run one instance at a time across all runs (`max_active_tis_per_dag=1`), so a
manual run waits for the scheduled day's computation instead of sharing the worker's memory. After a failed gate the
next days wait until the day is fixed and its scheduled run cleared and rerun (a manual trigger with
conf `ds` does not count for the next day), or its `prepare`, `dq_gate` and `publish` marked skipped on
purpose. Those waiting runs hold the `max_active_runs` slots, so the cleared day queues behind them:
mark the waiting later runs' `prepare` failed (not the runs: a run marked failed skips its
unstarted tasks, and a skipped `prepare` lets the next day through), clear the day, and once it is
published clear the later runs from `prepare`, oldest first.
A backfill before Variable `{VAR_START_DATE}` is refused: move the Variable back first.

**Trigger conf** (all optional): `ds` (YYYY-MM-DD, default: the data interval's day; for a manual
run, the day before its logical date, as the UI infers it), `lookback`
(0..{MAX_LOOKBACK} days before ds to reprocess too), `engine` (`polars` | `spark`), `input_dir`,
`output_dir`, `config` (TOML path). Example: `airflow dags trigger {DAG_ID} -c '{{"ds": "2024-02-01", "lookback": 2}}'`.

**Variables**: `{VAR_START_DATE}` (catchup start, default {DEFAULT_START_DATE}), `{VAR_INPUT_DIR}`,
`{VAR_OUTPUT_DIR}`, `{VAR_CONFIG}`, `{VAR_SPARK_SUBMIT}`, `{VAR_SPARK_SUBMIT_ARGS}`.

On a final failure `<output>/_runs/ds=<ds>/airflow_failure.json` records the task, ds, error and log URL.
"""


@dag(
    dag_id=DAG_ID,
    description="Moderation logs of one UTC day -> reviewer-efficiency and violation-trend tables, DQ gate, report",
    # CronDataIntervalTimetable, not a bare cron string: Airflow 3 turns a cron string into a
    # CronTriggerTimetable whose data interval is the trigger instant, which would make ds the day
    # of the run instead of the day of the data.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=_start_date(),
    catchup=True,
    # No dagrun_timeout on purpose: a timed-out run's unstarted tasks become skipped, and the next
    # day's depends_on_past takes a skipped prepare as done, so later days would be published past
    # a day that failed its gate, with no one deciding to go on without it.
    on_failure_callback=record_run_failure,
    # Several catchup runs may wait on sensors at once; prepare's depends_on_past keeps the
    # computation itself in date order.
    max_active_runs=3,
    default_args={
        "owner": "trust-and-safety-data",
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(hours=1),
        "execution_timeout": timedelta(hours=1),
        "on_failure_callback": record_failure,
    },
    params={
        "ds": Param(None, type=["null", "string"], pattern=r"^\d{4}-\d{2}-\d{2}$",
                    description="UTC day to process; default: the run's data interval (a manual run: the day before its logical date)"),
        "lookback": Param(0, type="integer", minimum=0, maximum=MAX_LOOKBACK,
                          description="also reprocess this many days before ds (late-arriving logs)"),
        "engine": Param("polars", type="string", enum=["polars", "spark"],
                        description="polars in the worker, or spark via spark-submit"),
        "input_dir": Param(None, type=["null", "string"], description=f"default: Variable {VAR_INPUT_DIR}"),
        "output_dir": Param(None, type=["null", "string"], description=f"default: Variable {VAR_OUTPUT_DIR}"),
        "config": Param(None, type=["null", "string"], description=f"TOML config; default: Variable {VAR_CONFIG}"),
    },
    tags=["riskinsight", "trust-and-safety", "nightly"],
    doc_md=DOC_MD,
)
def risk_insight_nightly() -> None:
    @task(retries=0, execution_timeout=timedelta(minutes=5))
    def plan(**context: Any) -> dict[str, Any]:
        # Resolved once so every task of the run agrees on ds and paths, even if a Variable is edited
        # while the run is in flight. No retries: a bad conf or path stays bad.
        run = _resolve_run(context)  # type: ignore[arg-type]
        if not Path(run["input_dir"]).is_dir():
            raise AirflowFailException(
                f"input_dir {run['input_dir']} is not a directory; set Variable {VAR_INPUT_DIR} or conf input_dir"
            )
        _load_config(run)  # a bad config fails here, once, not after the sensors' wait
        log.info("run plan: %s", json.dumps(run, sort_keys=True))
        return run

    def input_sensor(table: str) -> Any:
        @task.sensor(
            task_id=f"wait_for_{table}",
            mode="reschedule",
            poke_interval=SENSOR_POKE_INTERVAL,
            timeout=SENSOR_TIMEOUT,
            execution_timeout=timedelta(minutes=5),
        )
        def wait(run: dict[str, Any]) -> bool:
            markers = [Path(run["input_dir"]) / table / f"ds={day}" / "_SUCCESS" for day in run["days"]]
            missing = [str(m) for m in markers if not m.is_file()]
            if missing:
                log.info("waiting for %d marker(s): %s", len(missing), ", ".join(missing))
            return not missing

        return wait

    # One at a time across every run of the DAG: a day's computation is sized to take the worker's
    # memory (a 100 M day on Polars), and manual runs, which depends_on_past does not order, would
    # otherwise compute side by side on one worker.
    @task(execution_timeout=LOOKBACK_TIMEOUT, max_active_tis_per_dag=1)
    def reprocess_lookback(run: dict[str, Any]) -> list[str]:
        # Each earlier day goes through the whole chain before the next one is prepared: trends and
        # repeat offenders of a day read the published tables of the days before it, so preparing the
        # window stage by stage (or in parallel mapped tasks) would build them on stale partitions.
        # Unlike `riskinsight run --lookback`, which carries on past a failed day, the first failure
        # stops here: ds itself is then not recomputed on top of a window that is not what was asked.
        from jobs import nightly

        config = _load_config(run)
        done: list[str] = []
        for day in run["days"][:-1]:
            candidate = _prepare_one(run, day, config)
            _gate(day, candidate, config)
            with _expected_errors(day):
                nightly.publish_day(candidate)
            log.info("lookback day %s republished", day)
            done.append(day)
        return done

    @task(execution_timeout=PREPARE_TIMEOUT, depends_on_past=True, wait_for_downstream=True, max_active_tis_per_dag=1)
    def prepare(run: dict[str, Any], lookback_done: list[str]) -> dict[str, str]:
        # lookback_done only orders this after the window's earlier days are republished.
        ds = run["ds"]
        candidate = _prepare_one(run, ds, _load_config(run))
        return {"ds": ds, "candidate_dir": str(candidate.path), "run_id": str(candidate.manifest()["run_id"])}

    @task(execution_timeout=GATE_TIMEOUT)
    def dq_gate(run: dict[str, Any], prepared: dict[str, str]) -> dict[str, str | None]:
        return _gate_prepared(run, prepared)

    @task(execution_timeout=PUBLISH_TIMEOUT)
    def publish(run: dict[str, Any], prepared: dict[str, str], gated: dict[str, str | None]) -> dict[str, str]:
        # Takes prepare's output directly (not only via dq_gate) so that publish is immediately
        # downstream of prepare, which is what prepare's wait_for_downstream waits on.
        ds = prepared["ds"]
        if gated["ds"] != ds:
            raise AirflowFailException(f"gate was for ds={gated['ds']}, candidate is ds={ds}")
        return _publish(run, prepared)

    @task(execution_timeout=REPORT_TIMEOUT)
    def report(run: dict[str, Any], published: dict[str, str]) -> list[str]:
        from jobs.report import refresh_stale_pages, render_day, render_index, report_path

        config = _load_config(run)
        key = config.pseudonym_key
        paths = [
            # Under each day's lock: a manual run of a day publishing meanwhile is waited for, not
            # overwritten with a page of the publication before it.
            str(render_day(run["output_dir"], date.fromisoformat(day), pseudonym_key=key, index=False,
                           lock_wait=REPORT_TIMEOUT.total_seconds() * 2 / 3))
            for day in run["days"]
        ]
        paths.append(str(render_index(run["output_dir"])))
        from jobs import lineage

        days = [date.fromisoformat(day) for day in run["days"]]
        if stale := lineage.stale_after(Path(run["output_dir"]), min(days), max(days), config.params(max(days))):
            # Later days built on what this run replaced: the on-call reruns them.
            log.warning("%s", lineage.rerun_hint(stale))
            # Their pages, rendered before, say so too (an analyst may open one without the index).
            refreshed = refresh_stale_pages(run["output_dir"], days, stale, key)
            paths += [str(report_path(run["output_dir"], day)) for day in refreshed]
        # The whole window is published now, so an earlier failure record for these days is stale.
        for day in run["days"]:
            _failure_path(run["output_dir"], day).unlink(missing_ok=True)
        return paths

    run = plan()
    sensors = [input_sensor(table)(run) for table in INPUT_TABLES]
    lookback_done = reprocess_lookback(run)
    sensors >> lookback_done
    prepared = prepare(run, lookback_done)
    gated = dq_gate(run, prepared)
    report(run, publish(run, prepared, gated))


risk_insight_nightly()
