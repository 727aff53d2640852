"""The nightly DAG under real Airflow 3: DagBag, structure, import hygiene, and dag.test() runs.

Every Airflow step runs in its own interpreter through tests/airflow_support.py (see its docstring
for why). The end-to-end runs need jobs.nightly / jobs.generate / jobs.report and are skipped, by
name, only while those files do not exist yet.
"""

from __future__ import annotations

import json
import stat
from datetime import date
from pathlib import Path
from typing import Any

import pytest

import airflow_support as af

pytestmark = pytest.mark.airflow

INPUT_TABLES = ("decisions", "appeals", "qa_audits", "shifts")
SENSORS = tuple(f"wait_for_{t}" for t in INPUT_TABLES)
ALL_TASKS = {"plan", *SENSORS, "reprocess_lookback", "prepare", "dq_gate", "publish", "report"}

_JOBS_MISSING = [m for m in ("nightly", "generate", "report") if not (af.REPO / "jobs" / f"{m}.py").exists()]
needs_jobs = pytest.mark.skipif(
    bool(_JOBS_MISSING), reason=f"jobs.{', jobs.'.join(_JOBS_MISSING)} not written yet"
)


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def described(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The DAG as DagBag loads it, with no Variables set (so every default applies)."""
    env = af.airflow_env(tmp_path_factory.mktemp("airflow_describe"))
    return af.call("describe", env, timeout=300)


@pytest.fixture(scope="module")
def airflow_db(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An Airflow home with a migrated SQLite DB, shared by this module's dag.test() runs."""
    env = af.airflow_env(tmp_path_factory.mktemp("airflow_home"))
    af.migrate_db(env)
    return env


def run_dag(env: dict[str, str], logical_date: str, conf: dict[str, Any], **options: str) -> dict[str, Any]:
    args = ["--logical-date", logical_date, "--conf", json.dumps(conf)]
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", value]
    return af.call("run", env, *args, timeout=900)


def states(result: dict[str, Any]) -> dict[str, str | None]:
    return {task_id: ti["state"] for task_id, ti in result["tasks"].items()}


def touch_markers(input_dir: Path, days: list[str], tables: tuple[str, ...] = INPUT_TABLES) -> None:
    for table in tables:
        for day in days:
            part = input_dir / table / f"ds={day}"
            part.mkdir(parents=True, exist_ok=True)
            (part / "_SUCCESS").touch()


def failure_record(output_dir: Path, ds: str) -> dict[str, Any]:
    return json.loads((output_dir / "_runs" / f"ds={ds}" / "airflow_failure.json").read_text())


# ------------------------------------------------------------------------- parsing and structure


def test_dagbag_loads_and_serializes(described: dict[str, Any]) -> None:
    assert described["import_errors"] == {}
    dag = described["dag"]
    assert dag is not None and dag["dag_id"] == af.DAG_ID
    # What the dag processor stores and the scheduler reads must keep every task.
    assert set(dag["round_trip_task_ids"]) == ALL_TASKS


def test_each_run_covers_one_whole_utc_day(described: dict[str, Any]) -> None:
    dag = described["dag"]
    assert dag["timetable"] == "CronDataIntervalTimetable"
    assert dag["timezone"] == "UTC"
    assert dag["catchup"] is True
    assert dag["max_active_runs"] == 3
    # A timed-out run's unstarted tasks are skipped, and a skipped prepare lets the next day's
    # depends_on_past through: days after a failed gate would be published without anyone deciding.
    assert dag["dagrun_timeout_s"] is None
    assert dag["has_on_failure_callback"]  # for a task killed outright, which runs no task callback
    assert dag["start_date"] == "2024-01-01T00:00:00+00:00"  # default without the Variable
    first, second = dag["first_intervals"]
    # ds = data_interval_start's date, and the interval is exactly that day.
    assert (first["start"], first["end"]) == ("2024-01-01T00:00:00+00:00", "2024-01-02T00:00:00+00:00")
    assert first["run_after"] == first["end"]
    assert second["start"] == first["end"]


@pytest.mark.parametrize(
    ("value", "expected_start"),
    [("2023-06-15", "2023-06-15T00:00:00+00:00"), ("15/06/2023", None)],
)
def test_start_date_comes_from_variable(
    tmp_path: Path, value: str, expected_start: str | None
) -> None:
    env = af.airflow_env(tmp_path, {"AIRFLOW_VAR_RISKINSIGHT_START_DATE": value})
    result = af.call("describe", env, timeout=300)
    if expected_start is None:
        # A malformed start date must not silently move the catchup window: the file fails to load.
        (error,) = result["import_errors"].values()
        assert "riskinsight_start_date" in error and "15/06/2023" in error
        assert result["dag"] is None
    else:
        assert result["import_errors"] == {}
        assert result["dag"]["start_date"] == expected_start
        assert result["dag"]["first_intervals"][0]["start"] == expected_start


def test_task_graph(described: dict[str, Any]) -> None:
    tasks = described["tasks"]
    assert set(tasks) == ALL_TASKS
    upstream = {task_id: set(t["upstream"]) for task_id, t in tasks.items()}
    assert upstream["plan"] == set()
    for sensor in SENSORS:
        assert upstream[sensor] == {"plan"}
    assert upstream["reprocess_lookback"] == {"plan", *SENSORS}
    assert upstream["prepare"] == {"plan", "reprocess_lookback"}
    assert upstream["dq_gate"] == {"plan", "prepare"}
    # publish reads prepare's candidate directly, which also makes it a downstream of prepare for
    # prepare's wait_for_downstream (the next day waits for this day's publication).
    assert upstream["publish"] == {"plan", "prepare", "dq_gate"}
    assert upstream["report"] == {"plan", "publish"}
    assert set(tasks["prepare"]["downstream"]) == {"dq_gate", "publish"}


def test_next_day_is_computed_only_after_this_day_is_published(described: dict[str, Any]) -> None:
    prepare = described["tasks"]["prepare"]
    assert prepare["depends_on_past"] is True
    assert prepare["wait_for_downstream"] is True
    others = {t: v for t, v in described["tasks"].items() if t != "prepare"}
    assert not any(v["depends_on_past"] for v in others.values())
    # The tasks that compute a day run one at a time across all runs (manual runs included, which
    # depends_on_past does not order): each is sized to the worker's memory.
    computing = {t for t, v in described["tasks"].items() if v["max_active_tis_per_dag"] == 1}
    assert computing == {"prepare", "reprocess_lookback"}


def test_retries_timeouts_and_failure_callback(described: dict[str, Any]) -> None:
    for task_id, t in described["tasks"].items():
        assert t["has_on_failure_callback"], task_id
        assert t["execution_timeout_s"] is not None and 0 < t["execution_timeout_s"] <= 24 * 3600, task_id
        assert t["retry_exponential_backoff"] == 2.0, task_id
        assert t["retry_delay_s"] == 300 and t["max_retry_delay_s"] == 3600, task_id
        # plan only reads conf, Variables and one directory: a failure there is not transient.
        assert t["retries"] == (0 if task_id == "plan" else 2), task_id


def test_sensors_wait_in_reschedule_mode(described: dict[str, Any]) -> None:
    for sensor in SENSORS:
        t = described["tasks"][sensor]
        assert t["operator"] == "DecoratedSensorOperator"
        assert t["mode"] == "reschedule"
        assert t["poke_interval_s"] == 300
        assert t["sensor_timeout_s"] == 12 * 3600
        # In reschedule mode execution_timeout bounds one poke; the wait is bounded by timeout.
        assert t["execution_timeout_s"] <= 300


def test_params_tags_and_docs(described: dict[str, Any]) -> None:
    dag = described["dag"]
    params = dag["params"]
    assert set(params) == {"ds", "lookback", "engine", "input_dir", "output_dir", "config"}
    assert params["engine"]["default"] == "polars"
    assert params["engine"]["schema"]["enum"] == ["polars", "spark"]
    assert params["lookback"]["default"] == 0
    assert params["lookback"]["schema"]["minimum"] == 0 and params["lookback"]["schema"]["maximum"] >= 1
    for name in ("ds", "input_dir", "output_dir", "config"):
        assert params[name]["default"] is None, name  # null = use the Variable / the run's interval
    assert {"riskinsight", "nightly"} <= set(dag["tags"])
    assert "lookback" in dag["doc_md"] and "airflow_failure.json" in dag["doc_md"]


def test_dag_file_imports_fast_without_heavy_libraries(tmp_path: Path, described: dict[str, Any]) -> None:
    probe = af.call("import_probe", af.airflow_env(tmp_path), timeout=300)
    # Airflow's own import (~2 s here) is paid once by the dag processor; what the file adds is ours.
    assert probe["dag_file_import_s"] < 2.0, probe
    assert probe["heavy_modules_loaded"] == []
    assert probe["jobs_loaded"] == []
    # Full DagBag parsing pulls none of them in either.
    assert described["heavy_modules_loaded"] == []


def test_spark_engine_runs_spark_submit_and_maps_exit_codes(tmp_path: Path) -> None:
    argv_file = tmp_path / "argv.json"
    fake = tmp_path / "fake-spark-submit"
    fake.write_text(
        "#!/usr/bin/env python3\n"
        "import json, os, sys, time\n"
        f"open({str(argv_file)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        f"open({str(tmp_path / 'env.json')!r}, 'w').write(json.dumps({{'pid': os.getpid(), 'driver_python': os.environ.get('PYSPARK_DRIVER_PYTHON')}}))\n"
        "print('fake spark: staging', flush=True)\n"
        "if os.environ['FAKE_SPARK_EXIT'] == 'hang':\n"
        "    time.sleep(120)\n"
        "sys.exit(int(os.environ['FAKE_SPARK_EXIT']))\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = af.airflow_env(tmp_path / "home", {
        "AIRFLOW_VAR_RISKINSIGHT_SPARK_SUBMIT": str(fake),
        "AIRFLOW_VAR_RISKINSIGHT_SPARK_SUBMIT_ARGS": "--master local[2] --conf spark.sql.shuffle.partitions=4",
    })
    run = {"ds": "2024-03-01", "input_dir": "/in", "output_dir": "/out", "config": "/etc/ri.toml"}
    result = af.call("spark_prepare", env, "--run", json.dumps(run), "--exit-codes", "0,1,4,2", timeout=300)
    outcomes = result["outcomes"]
    assert outcomes["0"] == {"raised": None}
    assert outcomes["1"]["raised"] == "RuntimeError"  # may be transient: left to the retries
    assert outcomes["4"]["raised"] == "AirflowFailException"  # input missing: a retry cannot help
    assert outcomes["2"]["raised"] == "AirflowFailException"
    argv = json.loads(argv_file.read_text())
    assert argv[:4] == ["--master", "local[2]", "--conf", "spark.sql.shuffle.partitions=4"]
    assert Path(argv[4]) == af.REPO / "jobs" / "spark_entry.py"
    assert argv[5:] == ["--input", "/in", "--output", "/out", "--ds", "2024-03-01", "--phase", "prepare",
                        "--config", "/etc/ri.toml"]

    # The driver's Python is the worker's own, not whatever `python3` comes first on its PATH.
    seen = json.loads((tmp_path / "env.json").read_text())
    hung = af.call("spark_prepare", env, "--run", json.dumps(run), "--timeout", "3", timeout=300)
    assert seen["driver_python"] == hung["python"]
    # execution_timeout ends a hung spark-submit: the task fails at once, and the process is gone
    # (Popen's exit used to wait for it, so the timeout could not end the task, or the child).
    assert hung["raised"] == "AirflowTaskTimeout" and hung["seconds"] < 60
    pid = json.loads((tmp_path / "env.json").read_text())["pid"]
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


# ------------------------------------------------------------- dag.test() without the jobs code


def test_missing_marker_times_out_sensor_and_records_failure(airflow_db: dict[str, str], tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    touch_markers(inp, ["2024-04-09", "2024-04-10"])
    (inp / "shifts" / "ds=2024-04-09" / "_SUCCESS").unlink()  # a lookback day is incomplete
    result = run_dag(
        airflow_db, "2024-05-01T00:00:00+00:00",
        {"ds": "2024-04-10", "lookback": 1, "input_dir": str(inp), "output_dir": str(out)},
        sensor_timeout="2",
    )
    assert result["state"] == "failed"
    got = states(result)
    assert got["wait_for_shifts"] == "failed"
    assert result["tasks"]["wait_for_shifts"]["try_number"] == 1  # a sensor timeout is not retried
    assert {got[s] for s in SENSORS if s != "wait_for_shifts"} == {"success"}
    for task_id in ("reprocess_lookback", "prepare", "dq_gate", "publish", "report"):
        assert got[task_id] == "upstream_failed", task_id
    record = failure_record(out, "2024-04-10")
    assert record["dag_id"] == af.DAG_ID and record["task_id"] == "wait_for_shifts"
    assert record["ds"] == "2024-04-10" and record["days"] == ["2024-04-09", "2024-04-10"]
    assert record["exception"].startswith("AirflowSensorTimeout")
    assert "/tasks/wait_for_shifts" in record["log_url"]
    assert sorted(p.name for p in out.iterdir()) == ["_runs"]  # nothing but the failure record


def test_bad_input_dir_fails_plan_once_and_records_failure(airflow_db: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_dag(
        airflow_db, "2024-06-02T00:00:00+00:00",
        {"input_dir": str(tmp_path / "nope"), "output_dir": str(out)},
    )
    assert result["state"] == "failed"
    assert result["tasks"]["plan"] == {"state": "failed", "try_number": 1}
    assert {states(result)[s] for s in SENSORS} == {"upstream_failed"}
    # plan left no XCom, so the callback resolved ds and paths from the run itself.
    record = failure_record(out, "2024-06-01")
    assert record["task_id"] == "plan"
    assert "input_dir" in record["exception"] and "nope" in record["exception"]


def test_a_bad_config_fails_plan_once_before_any_wait(airflow_db: dict[str, str], tmp_path: Path) -> None:
    # A retry reads the same file: it used to fail reprocess_lookback three times, 15 minutes of
    # backoff after the sensors had waited for the day's logs.
    (tmp_path / "in").mkdir()
    (tmp_path / "bad.toml").write_text("no_such_section = 1\n")
    out = tmp_path / "out"
    result = run_dag(airflow_db, "2024-06-03T00:00:00+00:00",
                     {"input_dir": str(tmp_path / "in"), "output_dir": str(out), "config": str(tmp_path / "bad.toml")})
    assert result["state"] == "failed"
    assert result["tasks"]["plan"] == {"state": "failed", "try_number": 1}
    record = failure_record(out, "2024-06-02")
    assert record["exception"].startswith("AirflowFailException: bad configuration: UsageError: config: unknown section(s): no_such_section")


# -------------------------------------------------------------- dag.test() end to end with jobs.*


def generate(input_dir: Path, start: str, days: int, **kwargs: Any) -> None:
    from jobs.generate import generate as generate_logs

    generate_logs(input_dir, date.fromisoformat(start), days, rows_per_day=2000, seed=11, **kwargs)


def output_tables() -> tuple[str, ...]:
    from transforms.schemas import OUTPUT_TABLES

    return OUTPUT_TABLES


def read_rows(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def assert_published(out: Path, ds: str) -> None:
    for table in output_tables():
        assert list((out / table / f"ds={ds}").glob("*.parquet")), f"{table} ds={ds} not published"
    manifest = json.loads((out / "_runs" / f"ds={ds}" / "manifest.json").read_text())
    assert manifest["ds"] == ds and manifest["published"] is True
    assert manifest["dq"]["verdict"] in ("pass", "warn")
    report = out / "reports" / f"{ds}.html"
    assert report.stat().st_size > 0
    assert ds in (out / "reports" / "index.html").read_text()
    assert not (out / "_runs" / f"ds={ds}" / "airflow_failure.json").exists()


@needs_jobs
def test_dag_test_runs_one_day_end_to_end(airflow_db: dict[str, str], tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    generate(inp, "2024-03-01", 1)
    # No ds in conf: the run's data interval [03-01, 03-02) decides the day, as in a scheduled run.
    result = run_dag(airflow_db, "2024-03-02T00:00:00+00:00", {"input_dir": str(inp), "output_dir": str(out)})
    assert result["state"] == "success", result["output_tail"]
    assert {task_id: ti["try_number"] for task_id, ti in result["tasks"].items()} == dict.fromkeys(ALL_TASKS, 1)
    assert set(states(result).values()) == {"success"}
    assert result["data_interval_start"] == "2024-03-01T00:00:00+00:00"
    plan = result["xcoms"]["plan"]
    assert (plan["ds"], plan["days"], plan["engine"]) == ("2024-03-01", ["2024-03-01"], "polars")
    assert (plan["input_dir"], plan["output_dir"]) == (str(inp), str(out))
    assert result["xcoms"]["reprocess_lookback"] == []
    assert result["xcoms"]["publish"]["ds"] == "2024-03-01"
    assert_published(out, "2024-03-01")
    assert read_rows(out / "reviewer_daily" / "ds=2024-03-01" / "part-00000.parquet")


@needs_jobs
def test_lookback_republishes_each_earlier_day_before_ds(airflow_db: dict[str, str], tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    generate(inp, "2024-03-01", 2)
    result = run_dag(
        airflow_db, "2024-07-01T00:00:00+00:00",
        {"ds": "2024-03-02", "lookback": 1, "input_dir": str(inp), "output_dir": str(out)},
    )
    assert result["state"] == "success", result["output_tail"]
    assert result["xcoms"]["reprocess_lookback"] == ["2024-03-01"]
    assert_published(out, "2024-03-01")
    assert_published(out, "2024-03-02")
    # 03-01 was published before 03-02 was prepared, so 03-02's trends see it as an observed day.
    trends = read_rows(out / "violation_trends" / "ds=2024-03-02" / "part-00000.parquet")
    (all_all,) = [r for r in trends if r["market"] == "ALL" and r["policy_category"] == "ALL"]
    assert all_all["baseline_days"] == 1


@needs_jobs
def test_a_lookback_day_that_fails_its_gate_gets_its_page(airflow_db: dict[str, str], tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    generate(inp, "2024-03-01", 1, dirty_rate=0.03)
    generate(inp, "2024-03-02", 1)
    result = run_dag(airflow_db, "2024-07-02T00:00:00+00:00",
                     {"ds": "2024-03-02", "lookback": 1, "input_dir": str(inp), "output_dir": str(out)})
    assert result["state"] == "failed"
    assert result["tasks"]["reprocess_lookback"] == {"state": "failed", "try_number": 1}
    page = (out / "reports" / "2024-03-01.html").read_text(encoding="utf-8")
    assert 'id="not-published"' in page and "quarantine_rate" in page
    assert '<span class="badge fail">fail</span>' in (out / "reports" / "index.html").read_text(encoding="utf-8")


@needs_jobs
def test_a_task_refuses_a_candidate_another_run_of_the_day_prepared(tmp_path: Path) -> None:
    """Two DAG runs of one ds (a manual trigger beside the scheduled run) share the candidate's
    place: a gate or publish task must not take the other run's candidate for its own."""
    from jobs.nightly import prepare_day

    inp, out = tmp_path / "in", tmp_path / "out"
    generate(inp, "2024-03-01", 1)
    candidate = prepare_day(inp, out, date(2024, 3, 1))
    mine = candidate.manifest()["run_id"]
    run = {"ds": "2024-03-01", "output_dir": str(out)}
    env = af.airflow_env(tmp_path / "home", {})
    ok = af.call("candidate", env, "--run", json.dumps(run), "--prepared", json.dumps({"ds": "2024-03-01", "run_id": mine}))
    assert ok["raised"] is None and ok["path"] == str(candidate.path)
    other = af.call("candidate", env, "--run", json.dumps(run), "--prepared", json.dumps({"ds": "2024-03-01", "run_id": "20240301T000000Z-1"}))
    assert other["raised"] == "AirflowFailException"
    assert f"is run {mine}'s, not run 20240301T000000Z-1's" in other["message"]


def test_a_publish_task_retried_after_it_published_succeeds_without_publishing_again(tmp_path: Path) -> None:
    """The worker died after publish_day returned, before Airflow recorded the success: the retry
    finds no candidate (publishing removed it). It must succeed, not fail the day and block the next."""
    from jobs import warehouse as wh
    from jobs.nightly import gate_day, prepare_day

    inp, out = tmp_path / "in", tmp_path / "out"
    generate(inp, "2024-03-01", 1)
    candidate = prepare_day(inp, out, date(2024, 3, 1))
    gate_day(candidate)
    run = {"ds": "2024-03-01", "output_dir": str(out)}
    prepared = {"ds": "2024-03-01", "run_id": candidate.manifest()["run_id"]}
    env = af.airflow_env(tmp_path / "home", {})
    first = af.call("publish", env, "--run", json.dumps(run), "--prepared", json.dumps(prepared))
    assert first["raised"] is None and first["result"]["ds"] == "2024-03-01", first
    version = wh.current_version(out, date(2024, 3, 1))
    again = af.call("publish", env, "--run", json.dumps(run), "--prepared", json.dumps(prepared))
    assert again["raised"] is None and again["result"] == first["result"], again
    assert wh.current_version(out, date(2024, 3, 1)) == version
    other = af.call("publish", env, "--run", json.dumps(run), "--prepared", json.dumps({**prepared, "run_id": "x-1"}))
    # A retry cannot bring a candidate back: fail at once, saying where to clear from.
    assert other["raised"] == "AirflowFailException" and "no prepared candidate" in other["message"]
    assert "clear this run from its prepare task" in other["message"]


def test_a_publish_retried_after_the_flip_removes_the_candidate_it_left(tmp_path: Path) -> None:
    """Killed right after the swap, publish leaves the candidate behind; its retry finds the day
    published by this run and must remove the candidate (a 100 M day's is gigabytes), not keep it."""
    import shutil

    from jobs import warehouse as wh
    from jobs.nightly import gate_day, prepare_day

    inp, out = tmp_path / "in", tmp_path / "out"
    generate(inp, "2024-03-01", 1)
    candidate = prepare_day(inp, out, date(2024, 3, 1))
    gate_day(candidate)
    aside = tmp_path / "aside"
    shutil.copytree(candidate.path, aside)
    run = {"ds": "2024-03-01", "output_dir": str(out)}
    prepared = {"ds": "2024-03-01", "run_id": candidate.manifest()["run_id"]}
    env = af.airflow_env(tmp_path / "home", {})
    first = af.call("publish", env, "--run", json.dumps(run), "--prepared", json.dumps(prepared))
    assert first["raised"] is None, first
    version = wh.current_version(out, date(2024, 3, 1))
    shutil.copytree(aside, candidate.path)  # what the killed publish left
    again = af.call("publish", env, "--run", json.dumps(run), "--prepared", json.dumps(prepared))
    assert again["raised"] is None and again["result"] == first["result"], again
    assert not candidate.path.exists()
    assert wh.current_version(out, date(2024, 3, 1)) == version


def test_a_gate_cleared_after_its_run_published_returns_the_verdict(tmp_path: Path) -> None:
    """Clearing only dq_gate of a finished day used to be retried twice (15 min of backoff) on
    'no prepared candidate', then failed and wrote a failure record for a published day."""
    from jobs.nightly import gate_day, prepare_day, publish_day

    inp, out = tmp_path / "in", tmp_path / "out"
    generate(inp, "2024-03-01", 1)
    candidate = prepare_day(inp, out, date(2024, 3, 1))
    verdict = gate_day(candidate)["verdict"]
    run_id = candidate.manifest()["run_id"]
    publish_day(candidate)
    run = {"ds": "2024-03-01", "output_dir": str(out)}
    env = af.airflow_env(tmp_path / "home", {})
    done = af.call("gate", env, "--run", json.dumps(run), "--prepared", json.dumps({"ds": "2024-03-01", "run_id": run_id}))
    assert done["raised"] is None and done["result"] == {"ds": "2024-03-01", "verdict": verdict}, done
    gone = af.call("gate", env, "--run", json.dumps(run), "--prepared", json.dumps({"ds": "2024-03-01", "run_id": "x-1"}))
    assert gone["raised"] == "AirflowFailException" and "clear this run from its prepare task" in gone["message"]


@pytest.mark.parametrize(
    ("run_type", "logical_date", "interval_start", "expected"),
    [
        # `airflow dags trigger -l 2026-11-27T12:00` got the clock's interval (11-28): ds follows
        # the logical date as the UI and REST API do, [X-1, X).
        ("manual", "2026-11-27T12:00:00+00:00", "2026-11-28T00:00:00+00:00", "2026-11-26"),
        ("manual", "2026-11-27T00:00:00+00:00", "2026-11-26T00:00:00+00:00", "2026-11-26"),
        # an interval the REST API caller set, starting at the logical date, is taken as it is
        ("manual", "2024-02-01T00:00:00+00:00", "2024-02-01T00:00:00+00:00", "2024-02-01"),
        ("scheduled", "2026-11-25T00:00:00+00:00", "2026-11-25T00:00:00+00:00", "2026-11-25"),
        ("backfill", "2026-11-20T00:00:00+00:00", "2026-11-20T00:00:00+00:00", "2026-11-20"),
        # before the start date depends_on_past orders nothing
        ("backfill", "2023-12-30T00:00:00+00:00", "2023-12-30T00:00:00+00:00", None),
    ],
)
def test_the_day_a_run_processes(tmp_path: Path, run_type: str, logical_date: str, interval_start: str,
                                 expected: str | None) -> None:
    env = af.airflow_env(tmp_path / "home", {})
    got = af.call("resolve", env, "--run-type", run_type, "--logical-date", logical_date,
                  "--interval-start", interval_start, "--params", json.dumps({"output_dir": str(tmp_path / "out")}))
    if expected is None:
        assert got["raised"] == "AirflowFailException", got
        assert "before the DAG's start date 2024-01-01" in got["message"] and "riskinsight_start_date" in got["message"]
    else:
        assert got["raised"] is None and got["result"]["ds"] == expected, got


def test_the_runs_failure_callback_records_only_what_no_task_recorded(tmp_path: Path) -> None:
    """A task killed outright (OOM) runs no task callback: the run-level callback (given its last
    task's context, as the dag processor does) writes the record then, and leaves a task's own
    record of the same attempt of the run alone."""
    out = tmp_path / "out"
    env = af.airflow_env(tmp_path / "home", {})
    params = json.dumps({"ds": "2024-03-01", "output_dir": str(out), "input_dir": str(tmp_path / "in")})
    run_level = ["--params", params, "--run-id", "scheduled__A", "--reason", "task_failure", "--run-level",
                 "--task-id", "prepare"]
    assert af.call("record", env, *run_level)["raised"] is None
    record = failure_record(out, "2024-03-01")
    assert (record["run_id"], record["clear_number"], record["task_id"]) == ("scheduled__A", 0, "prepare")
    assert record["exception"] == "DAG run failed: task_failure" and record["ds"] == "2024-03-01"
    # The task's record of the same attempt names the error; the run's callback, coming after, keeps it.
    af.call("record", env, "--params", params, "--run-id", "scheduled__A", "--task-id", "dq_gate")
    af.call("record", env, *run_level)
    record = failure_record(out, "2024-03-01")
    assert record["task_id"] == "dq_gate" and record["exception"] == "RuntimeError: killed"
    # Cleared, the run keeps its id: its next attempt's failure is not the one recorded before.
    af.call("record", env, *run_level, "--clear-number", "1")
    record = failure_record(out, "2024-03-01")
    assert (record["clear_number"], record["task_id"], record["exception"]) == (1, "prepare", "DAG run failed: task_failure")
    # Without a last task the dag processor passes only the DAG, run id and reason: no ds to file it
    # under, so the callback leaves the record as it is (and does not raise).
    assert af.call("record", env, "--params", params, "--run-id", "manual__B", "--run-level", "--minimal")["raised"] is None
    assert failure_record(out, "2024-03-01") == record


@needs_jobs
def test_failed_dq_gate_fails_the_run_and_publishes_nothing(airflow_db: dict[str, str], tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    ds = "2024-03-05"
    generate(inp, ds, 1, dirty_rate=0.03)  # 3% quarantined > the 1% critical threshold
    result = run_dag(airflow_db, "2024-08-01T00:00:00+00:00",
                     {"ds": ds, "input_dir": str(inp), "output_dir": str(out)})
    assert result["state"] == "failed"
    got = states(result)
    assert got["prepare"] == "success"
    # AirflowFailException: failed on the first try although the task has retries left.
    assert result["tasks"]["dq_gate"] == {"state": "failed", "try_number": 1}
    assert got["publish"] == "upstream_failed" and got["report"] == "upstream_failed"
    for table in output_tables():
        assert not (out / table / f"ds={ds}").exists(), f"{table} was published"
    # The failed attempt is on record, as not published.
    manifest = json.loads((out / "_runs" / f"ds={ds}" / "manifest.json").read_text())
    assert manifest["published"] is False and manifest["dq"]["verdict"] == "fail"
    assert json.loads((out / "_runs" / f"ds={ds}" / "dq.json").read_text())["verdict"] == "fail"
    record = failure_record(out, ds)
    assert record["task_id"] == "dq_gate" and record["ds"] == ds
    assert record["exception"].startswith("AirflowFailException: DQ gate failed for ds=2024-03-05")
    # The report task does not run; the gate task leaves the day's page explaining the failure and
    # the index row that lists it (DESIGN §7: every day with its DQ status).
    page = (out / "reports" / f"{ds}.html").read_text(encoding="utf-8")
    assert 'id="not-published"' in page and "quarantine_rate" in page
    index = (out / "reports" / "index.html").read_text(encoding="utf-8")
    from tests.index_html import index_row

    assert '<span class="badge fail">fail</span>' in index_row(index, ds)



@needs_jobs
def test_the_report_task_warns_of_later_days_this_run_left_stale(airflow_db: dict[str, str], tmp_path: Path) -> None:
    """A backfill of 03-01 after 03-02 was published: 03-02's trends and repeat offenders were built
    without it, which the report task says in the log, with the range to rerun, and 03-02's page,
    rendered again, says on its own."""
    from jobs.cli import main

    inp, out = tmp_path / "in", tmp_path / "out"
    generate(inp, "2024-03-01", 2)
    assert main(["run", "--input", str(inp), "--output", str(out), "--ds", "2024-03-02"]) == 0
    page = out / "reports" / "2024-03-02.html"
    assert 'id="stale-history"' not in page.read_text(encoding="utf-8")
    result = run_dag(airflow_db, "2024-07-01T00:00:00+00:00", {"ds": "2024-03-01", "input_dir": str(inp), "output_dir": str(out)})
    assert result["state"] == "success", result["output_tail"]
    assert "1 published day(s) were built on earlier tables of 2024-03-01" in result["output_tail"]
    assert "(run --start 2024-03-02 --end 2024-03-02)" in result["output_tail"]
    assert 'id="stale-history"' in page.read_text(encoding="utf-8")
