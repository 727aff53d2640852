"""`riskinsight dsa ...` wired end to end on the real sample dump (shared/data/dsa_sor)."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import threading
from pathlib import Path

import pytest

from jobs.cli import main
from jobs.warehouse import ds_lock


@pytest.fixture(scope="module")
def sample(dsa_sor: Path) -> Path:
    """The sample day's dump; `dsa_sor` (tests/conftest.py) fails naming the places it looked in."""
    return dsa_sor / "2024-03-14" / "sor-global-2024-03-14-full.zip"


def test_ingest_daily_transparency(tmp_path, capsys, sample):
    out = tmp_path / "dsa"
    assert main(["dsa", "ingest", "--dump", str(sample), "--output", str(out), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["rows_read"], summary["rows_written"], summary["duplicates_dropped"]) == (202, 199, 1)
    assert summary["quarantined"] == {"created_at_outside_dump_day": 2}
    # Resumable: a second ingest converts nothing again.
    assert main(["dsa", "ingest", "--dump", str(sample), "--output", str(out), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["parts_skipped"] == 2

    assert main(["dsa", "daily", "--output", str(out), "--ds", "2024-03-14"]) == 0
    assert "199 statements" in capsys.readouterr().out
    assert (out / "reports" / "dsa" / "2024-03-14.html").exists()

    target = tmp_path / "t.csv"
    assert main(["dsa", "transparency", "--output", str(out), "--start", "2024-03-14", "--end", "2024-03-14", "--csv", str(target)]) == 0
    rows = {(r["category"], r["source_type"]): r for r in csv.DictReader(target.open())}
    assert int(rows[("ALL", "ALL")]["actions"]) == 199
    assert int(rows[("ALL", "ALL")]["fully_automated"]) == 154


def test_a_range_carries_on_past_a_missing_day_and_names_it(tmp_path, capsys, sample):
    # Like `run`: a day that fails does not stop the days after it; the range ends with its error.
    out = tmp_path / "dsa"
    assert main(["dsa", "ingest", "--dump", str(sample), "--output", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["dsa", "daily", "--output", str(out), "--start", "2024-03-12", "--end", "2024-03-15", "--no-report"]) == 4
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["2024-03-14: 199 statements, 0 anomalies"]
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("riskinsight: error: ") and "2024-03-12" in last and last.endswith("(also failed: 2024-03-13, 2024-03-15)")


def test_transparency_to_a_directory_is_one_line_and_leaves_nothing(tmp_path, capsys, sample):
    out = tmp_path / "dsa"
    assert main(["dsa", "ingest", "--dump", str(sample), "--output", str(out), "--quiet"]) == 0
    (tmp_path / "csv").mkdir()
    capsys.readouterr()
    assert main(["dsa", "transparency", "--output", str(out), "--start", "2024-03-14", "--end", "2024-03-14", "--csv", str(tmp_path / "csv")]) == 2
    err = capsys.readouterr().err
    assert err == f"riskinsight: error: --csv {tmp_path / 'csv'} is a directory; give the CSV file's path\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["csv", "dsa"]


def test_daily_without_ingested_data_is_one_line_exit_4(tmp_path, capsys):
    assert main(["dsa", "daily", "--output", str(tmp_path), "--ds", "2024-03-15"]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dsa ingest" in err[0]
    # --verbose wherever it is given, after the nested subcommand too.
    assert main(["dsa", "daily", "--output", str(tmp_path), "--ds", "2024-03-15", "--verbose"]) == 4
    assert "Traceback" in capsys.readouterr().err


def test_dump_may_be_repeated():
    """`--dump a --dump b` kept only b's files (argparse replaces a repeated nargs option)."""
    from jobs.cli import build_parser

    args = build_parser().parse_args(["dsa", "ingest", "--dump", "a.zip", "b.zip", "--dump", "c.csv", "--output", "o"])
    assert args.dump == ["a.zip", "b.zip", "c.csv"]


def test_transparency_names_a_platform_without_statements(tmp_path, capsys, sample):
    """A misspelt --platform gave a table of zeros and no word why; it is named on stderr."""
    out = tmp_path / "dsa"
    assert main(["dsa", "ingest", "--dump", str(sample), "--output", str(out), "--quiet"]) == 0
    capsys.readouterr()
    target = tmp_path / "t.csv"
    assert main(["dsa", "transparency", "--output", str(out), "--start", "2024-03-14", "--end", "2024-03-14",
                 "--csv", str(target), "--platform", "TikTok", "--platform", "tiktok"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "tiktok" in err and "no statements" in err and "'TikTok'" not in err
    rows = {(r["category"], r["source_type"]): r for r in csv.DictReader(target.open())}
    assert int(rows[("ALL", "ALL")]["actions"]) == 98  # TikTok's statements of the day, the other name adds none


def _subparser(parser, *names: str):
    for name in names:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


@pytest.mark.parametrize("command", ["ingest", "daily", "transparency"])
def test_every_dsa_option_has_help(command):
    """`dsa daily --help` and `dsa transparency --help` listed --output, --start, --end and --csv bare."""
    from jobs.cli import build_parser

    parser = _subparser(build_parser(), "dsa", command)
    bare = [a.option_strings[0] for a in parser._actions if a.option_strings and not a.help]
    assert bare == []


def test_a_second_daily_run_of_a_day_is_refused_while_one_holds_it(tmp_path, capsys, sample):
    """dsa daily took no lock: two runs of a day publishing at once could remove each other's version."""
    out = tmp_path / "dsa"
    assert main(["dsa", "ingest", "--dump", str(sample), "--output", str(out), "--quiet"]) == 0
    capsys.readouterr()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with ds_lock(out, dt.date(2024, 3, 14)):
            held.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    try:
        held.wait(30)
        assert main(["dsa", "daily", "--output", str(out), "--ds", "2024-03-14", "--no-report"]) == 5
    finally:
        release.set()
        t.join()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--lock-wait" in err[0]
    assert not (out / "sor_daily").exists()
