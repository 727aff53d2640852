"""The DQ gate inside the job, on generated days: 3 % dirty fails (exit 3, nothing published),
0.5 % dirty publishes with warnings, and dq.json lists every expectation with its observed value;
on hand-built days, what gate_day finds in the tables as written, and the volume check's window."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from jobs import nightly
from jobs import warehouse as wh
from jobs.cli import main
from jobs.config import Config, load_config
from jobs.errors import DQGateFailed
from jobs.generate import generate
from tests.builders import clean, decision
from tests.inputs import write_day
from transforms.schemas import OUTPUT_TABLES

DS = dt.date(2024, 5, 2)


def _run(inp, out, *extra):
    return main(["run", "--input", str(inp), "--output", str(out), "--ds", str(DS), "--no-report", *extra])


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate")
    generate(root / "clean", DS, 1, 4000, seed=3, dirty_rate=0.0)
    assert _run(root / "clean", root / "out") == 0
    return root


def test_three_percent_dirty_fails_and_keeps_the_previous_publication(published, tmp_path, capsys):
    out = tmp_path / "out"
    import shutil

    shutil.copytree(published / "out", out, symlinks=True)  # publications are relative links
    before = {t: pl.read_parquet(wh.partition_dir(out, t, DS) / "*.parquet") for t in OUTPUT_TABLES}
    before_manifest = (wh.runs_dir(out, DS) / "attempts").iterdir().__next__().name
    generate(tmp_path / "dirty", DS, 1, 4000, seed=3, dirty_rate=0.03)
    capsys.readouterr()
    assert _run(tmp_path / "dirty", out) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "DQ gate failed" in err[0] and "quarantine_rate" in err[0]
    for t in OUTPUT_TABLES:
        assert pl.read_parquet(wh.partition_dir(out, t, DS) / "*.parquet").equals(before[t]), t
    dq = json.loads((wh.runs_dir(out, DS) / "dq.json").read_text())
    assert dq["verdict"] == "fail"
    failed = {(r["table"], r["expectation"]) for r in dq["results"] if r["severity"] == "critical" and not r["success"]}
    assert ("decisions", "quarantine_rate") in failed
    manifest = json.loads((wh.runs_dir(out, DS) / "manifest.json").read_text())
    assert manifest["published"] is False and "decisions.quarantine_rate" in manifest["dq"]["critical_failed"]
    assert dq["run_id"] == manifest["run_id"]
    # The successful attempt's record is still there next to the failed one.
    attempts = sorted(p.name for p in (wh.runs_dir(out, DS) / "attempts").iterdir())
    assert before_manifest in attempts and len(attempts) == 2


def test_half_percent_dirty_publishes_with_warnings(tmp_path):
    generate(tmp_path / "in", DS, 1, 4000, seed=4, dirty_rate=0.005)
    assert _run(tmp_path / "in", tmp_path / "out") == 0
    dq = json.loads((wh.runs_dir(tmp_path / "out", DS) / "dq.json").read_text())
    assert dq["verdict"] == "warn"
    warned = {(r["table"], r["expectation"]) for r in dq["results"] if not r["success"]}
    assert ("decisions", "quarantine_rate_elevated") in warned
    assert all(r["severity"] == "warning" for r in dq["results"] if not r["success"])
    manifest = json.loads((wh.runs_dir(tmp_path / "out", DS) / "manifest.json").read_text())
    assert manifest["published"] is True and manifest["dq"]["verdict"] == "warn"


def test_dq_json_lists_every_expectation_with_its_observed_value(published):
    dq = json.loads((wh.runs_dir(published / "out", DS) / "dq.json").read_text())
    tables = {r["table"] for r in dq["results"]}
    assert tables >= {"decisions", "appeals", "qa_audits", "shifts", "reviewer_daily", "queue_daily",
                      "violation_daily", "violation_trends", "repeat_offenders", "quarantine"}
    for r in dq["results"]:
        assert set(r) >= {"table", "expectation", "severity", "success", "observed_value"}
        assert r["severity"] in ("critical", "warning")
    reconcile = [r for r in dq["results"] if r["expectation"].startswith("reconcile:")]
    assert reconcile and all(r["success"] and r["observed_value"] is not None for r in reconcile)


def test_a_rerun_in_the_same_process_and_second_keeps_the_first_attempt_record(published, tmp_path):
    """Two runs of one ds in one process with the same --run-ts (so the same second): the second, a
    failed gate, gets its own run id and attempt record instead of overwriting the first's."""
    out = tmp_path / "out"
    generate(tmp_path / "dirty", DS, 1, 4000, seed=3, dirty_rate=0.03)
    run_ts = ("--run-ts", "2024-05-03T01:00:00Z")
    assert _run(published / "clean", out, *run_ts) == 0
    assert _run(tmp_path / "dirty", out, *run_ts) == 3
    attempts = {p.name: json.loads((p / "manifest.json").read_text()) for p in (wh.runs_dir(out, DS) / "attempts").iterdir()}
    assert len(attempts) == 2
    first, second = sorted(attempts, key=len)
    assert second == f"{first}-2"
    assert attempts[first]["published"] is True and attempts[second]["published"] is False
    assert {m["run_id"] for m in attempts.values()} == {first, second}


def test_a_run_id_never_names_an_attempt_already_recorded(published, tmp_path):
    """A run whose <start>-<pid> names an attempt already on disk (another process with the same pid
    in the same second, as containers give out) takes the next free id instead of overwriting it."""
    import os
    import shutil

    out = tmp_path / "out"
    shutil.copytree(published / "out", out, symlinks=True)
    taken = wh.runs_dir(out, DS) / "attempts" / f"20240503T020000Z-{os.getpid()}"
    taken.mkdir(parents=True)
    (taken / "manifest.json").write_text('{"run_id": "someone else"}')
    assert _run(published / "clean", out, "--run-ts", "2024-05-03T02:00:00Z") == 0
    assert json.loads((taken / "manifest.json").read_text()) == {"run_id": "someone else"}
    mine = json.loads((wh.runs_dir(out, DS) / "manifest.json").read_text())
    assert mine["run_id"] == f"{taken.name}-2" and mine["published"] is True
    assert (wh.runs_dir(out, DS) / "attempts" / mine["run_id"] / "manifest.json").exists()


# ------------------------------------------------------------------ hand-built days through gate_day
HAND_DS = dt.date(2024, 3, 14)  # tests.conftest.DS, the day tests.builders' timestamps fall on


def _prepared(root, rows: list[dict], config_text: str = "") -> nightly.Candidate:
    write_day(root / "in", HAND_DS, {"decisions": rows})
    return nightly.prepare_day(root / "in", root / "out", HAND_DS, config=_config(root, "prepare", config_text))


def _config(root, name: str, text: str) -> Config:
    path = root / f"{name}.toml"
    path.write_text(text)
    return load_config(path)


def _tamper(candidate: nightly.Candidate, table: str, change) -> None:
    path = candidate.table_dir(table) / nightly.PART
    change(pl.read_parquet(path)).write_parquet(path)


def _failed(dq: dict) -> dict[str, dict]:
    return {f"{r['table']}.{r['expectation']}": r for r in dq["results"] if not r["success"]}


def _offenders(tmp_path) -> nightly.Candidate:
    # c1 with 2 violations and c2 with 4: both repeat offenders under a minimum of 2.
    rows = [decision(creator_id="c1") for _ in range(2)] + [decision(creator_id="c2") for _ in range(4)]
    return _prepared(tmp_path, rows, "[offenders]\nmin_violations = 2\n")


def test_gate_checks_offenders_against_the_minimum_the_tables_were_computed_with(tmp_path):
    candidate = _offenders(tmp_path)
    # A config edited after prepare does not apply to tables computed before it.
    later = _config(tmp_path, "later", "[offenders]\nmin_violations = 5\n")
    dq = nightly.gate_day(candidate, later)
    check = next(r for r in dq["results"] if r["expectation"] == "violations_30d_ge_min_violations")
    assert check["success"] and "offenders.min_violations = 2" in check["details"]
    assert dq["verdict"] == "pass", _failed(dq)


def test_gate_fails_a_repeat_offender_under_the_configured_minimum(tmp_path):
    """DESIGN §4: repeat_offenders holds creators with at least min_violations (here 2); 1 is above
    the old fixed floor of 1, and must still fail."""
    candidate = _offenders(tmp_path)
    _tamper(candidate, "repeat_offenders", lambda f: f.with_columns(
        pl.when(pl.col("creator_id") == "c1").then(1).otherwise(pl.col("violations_30d")).alias("violations_30d")))
    with pytest.raises(DQGateFailed, match="repeat_offenders.violations_30d_ge_min_violations"):
        nightly.gate_day(candidate)
    failed = _failed(json.loads(candidate.dq_path.read_text()))
    assert list(failed) == ["repeat_offenders.violations_30d_ge_min_violations"]


def test_gate_fails_a_nan_rate_in_a_written_table(tmp_path):
    """The table as written: Parquet keeps NaN apart from null, and so does the gate."""
    candidate = _prepared(tmp_path, [decision(), decision(), clean()])
    _tamper(candidate, "queue_daily", lambda f: f.with_columns(pl.lit(float("nan")).alias("violation_rate")))
    with pytest.raises(DQGateFailed, match="queue_daily.floats_finite"):
        nightly.gate_day(candidate)
    failed = _failed(json.loads(candidate.dq_path.read_text()))
    assert list(failed) == ["queue_daily.floats_finite"]
    assert failed["queue_daily.floats_finite"]["observed_value"] == 1
    assert "violation_rate 1" in failed["queue_daily.floats_finite"]["details"]


def test_gate_checks_creator_category_daily(tmp_path):
    candidate = _prepared(tmp_path, [decision(creator_id="c1"), decision(creator_id="c2", policy_category="hate_speech")])
    dq = nightly.gate_day(candidate)
    passed = {r["expectation"]: r["observed_value"] for r in dq["results"] if r["table"] == "creator_category_daily"}
    assert passed["reconcile:violations_eq_staged_violations"] == 2 and passed["grain_unique"] == 0
    _tamper(candidate, "creator_category_daily", lambda f: pl.concat([f, f.head(1)]))
    with pytest.raises(DQGateFailed):
        nightly.gate_day(candidate)
    failed = _failed(json.loads(candidate.dq_path.read_text()))
    assert set(failed) == {"creator_category_daily.grain_unique",
                           "creator_category_daily.reconcile:violations_eq_staged_violations"}
    assert failed["creator_category_daily.grain_unique"]["observed_value"] == 2


def test_unknown_actions_publish_with_a_warning(tmp_path):
    """DESIGN §3: an action that does not fit is a DQ warning, not quarantine; one outside DESIGN §2's
    set (here "banana" and "REMOVE" on violations) is not quarantined either, and warns as unknown."""
    rows = [decision(action="banana"), decision(action="REMOVE"), decision(), clean()]
    write_day(tmp_path / "in", HAND_DS, {"decisions": rows})
    out = tmp_path / "out"
    assert main(["run", "--input", str(tmp_path / "in"), "--output", str(out), "--ds", str(HAND_DS), "--no-report"]) == 0
    dq = json.loads((wh.runs_dir(out, HAND_DS) / "dq.json").read_text())
    assert dq["verdict"] == "warn"
    failed = _failed(dq)
    assert set(failed) == {"decisions.unknown_action_rate"}
    assert failed["decisions.unknown_action_rate"]["severity"] == "warning"
    assert failed["decisions.unknown_action_rate"]["observed_value"] == pytest.approx(2 / 4)


# ------------------------------------------------------------------ the volume check's trailing window
def _published_day(out, day: dt.date, rows: int) -> None:
    """What _trailing_volumes reads of a publication: its violation_daily partition and its manifest."""
    wh.partition_dir(out, "violation_daily", day).mkdir(parents=True)
    runs = wh.versions_dir(out, day) / "current" / "_runs"
    runs.mkdir(parents=True)
    (runs / "manifest.json").write_text(json.dumps({"published": True, "inputs": {"decisions": {"rows": rows}}}))


def test_trailing_volumes_are_the_newest_seven_observed_days_before_ds(tmp_path):
    """DESIGN §5: volume against the trailing 7 observed days; an unobserved day is skipped, not zero."""
    ds = dt.date(2024, 3, 20)
    for back in range(1, 12):  # ds-1 .. ds-11, ds-4 unobserved
        if back != 4:
            _published_day(tmp_path, ds - dt.timedelta(days=back), rows=back * 100)
    _published_day(tmp_path, ds, rows=1)  # ds itself (being rerun) is no history
    _published_day(tmp_path, ds + dt.timedelta(days=1), rows=1)  # nor is a later day
    assert nightly._trailing_volumes(tmp_path, ds) == [100, 200, 300, 500, 600, 700, 800]
    assert nightly._trailing_volumes(tmp_path, ds, days=2) == [100, 200]
    assert nightly._trailing_volumes(tmp_path, ds - dt.timedelta(days=10)) == [1100]
    assert nightly._trailing_volumes(tmp_path, ds - dt.timedelta(days=11)) == []


def test_a_run_killed_between_its_manifest_and_dq_json_leaves_no_page_mixing_two_runs(tmp_path):
    """A failed attempt writes `_runs/ds=D/manifest.json`, then dq.json. Killed between the two, the
    day holds its manifest beside the previous attempt's dq.json: the page must not show that
    attempt's results as this run's (dq.json's run_id tells them apart)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from jobs import faults
    from jobs.report import render_day

    generate(tmp_path / "d3", DS, 1, 4000, seed=3, dirty_rate=0.03)
    generate(tmp_path / "d6", DS, 1, 4000, seed=5, dirty_rate=0.06)
    out = tmp_path / "out"
    assert _run(tmp_path / "d3", out) == 3
    first = json.loads((wh.runs_dir(out, DS) / "dq.json").read_text())
    killed = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "run", "--input", str(tmp_path / "d6"), "--output", str(out),
         "--ds", str(DS), "--no-report"],
        cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True,
        env={**os.environ, faults.ENV: "attempt:manifest_written"},
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    manifest = json.loads((wh.runs_dir(out, DS) / "manifest.json").read_text())
    assert json.loads((wh.runs_dir(out, DS) / "dq.json").read_text()) == first != {}
    assert manifest["run_id"] != first["run_id"]

    page = render_day(out, DS, index=False).read_text()
    assert manifest["run_id"] in page and first["run_id"] not in page
    assert "no DQ results (dq.json) for this day" in page
    # The first attempt's observed quarantine rate is not shown against the second's manifest.
    rate = next(r["observed_value"] for r in first["results"] if r["expectation"] == "quarantine_rate")
    assert f"{rate:.2%}" not in page
