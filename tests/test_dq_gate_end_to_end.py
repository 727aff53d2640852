"""The DQ gate inside the job, on generated days: 3 % dirty fails (exit 3, nothing published),
0.5 % dirty publishes with warnings, and dq.json lists every expectation with its observed value."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from jobs import warehouse as wh
from jobs.cli import main
from jobs.generate import generate
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
