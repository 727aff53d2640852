"""docs/RUNBOOK.md stays true: its exit codes, command lines, warehouse paths and links are the code's.

Each check fails when the doc or the code drifts: an exit code added to jobs/errors.py without an
entry, a flag renamed in jobs/cli.py, a warehouse path the job no longer writes, a README heading
renamed under a link.
"""

from __future__ import annotations

import datetime as dt
import inspect
import re
import shlex
from pathlib import Path

import pytest

from jobs import errors
from jobs.cli import build_parser, main
from tests.inputs import write_day
from tests.test_cli_run import DS, clean_day, decision

ROOT = Path(__file__).resolve().parents[1]
RUNBOOK = ROOT / "docs" / "RUNBOOK.md"


def runbook() -> str:
    return RUNBOOK.read_text(encoding="utf-8")


def _exit_codes() -> dict[int, list[str]]:
    """exit code -> the jobs.errors classes that carry it."""
    codes: dict[int, list[str]] = {}
    for name, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, errors.RiskInsightError):
            codes.setdefault(cls.exit_code, []).append(name)
    return codes


def _exit_table(text: str) -> dict[int, str]:
    """The runbook's "Exit codes" table: code -> its row."""
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    return {int(m[1]): m[0] for m in re.finditer(r"^\| (\d+) \|.*$", section, flags=re.M)}


def test_every_exit_code_and_error_class_has_an_entry():
    table = _exit_table(runbook())
    for code, classes in _exit_codes().items():
        assert code in table, f"exit {code} ({', '.join(classes)}) has no row in the runbook's exit code table"
        for name in classes:
            assert f"`{name}`" in table[code], f"{name} (exit {code}) is not named in the row of exit {code}"
    for code in table:
        if code not in (0, 130, 137):  # success, Ctrl-C, SIGKILL: no error class
            assert code in _exit_codes(), f"the runbook lists exit {code}, which no class in jobs/errors.py carries"
    # Every exit code the CLI's own help lists (run --help) is in the table too.
    from jobs.cli import RUN_EPILOG

    for code in re.findall(r"^  (\d+) ", RUN_EPILOG, flags=re.M):
        assert int(code) in table, f"exit {code} of `run --help` has no row in the runbook"


def _command_lines(text: str) -> list[str]:
    """Every `riskinsight ...` line of the runbook's code blocks (continuation lines joined)."""
    lines = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("riskinsight ") and not line.startswith("riskinsight: "):
                lines.append(line)
    return lines


def test_the_runbook_has_command_lines():
    assert len(_command_lines(runbook())) >= 8


@pytest.mark.parametrize("line", _command_lines(runbook()))
def test_every_command_line_parses(line, capsys):
    """Parsed by the CLI's own parser, not run: a renamed flag, a date in another form or a
    subcommand that no longer exists fails here."""
    argv = shlex.split(line.split(" #", 1)[0])[1:]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{line!r} does not parse (exit {exc.code}): {capsys.readouterr().err.strip()}")
    assert callable(args.func)


# Warehouse paths the runbook names, relative to $OUT (or the warehouse), in backticks or after "$OUT/".
_PATH = re.compile(r"(?:\$OUT/|`)((?:_runs|_candidates|_versions|_locks|reports)/[^`\"\s]*)")


def _runbook_paths(text: str) -> set[str]:
    return {m.rstrip("/.,;:)") for m in _PATH.findall(text)}


def _as_glob(path: str) -> str:
    """A runbook path as a glob over a real warehouse: days, run ids and placeholders become `*`."""
    path = re.sub(r"ds=(?:\d{4}-\d\d-\d\d|D|YYYY-MM-DD)", "ds=*", path)
    path = re.sub(r"(?:\d{4}-\d\d-\d\d|YYYY-MM-DD|D)\.html$", "*.html", path)
    return re.sub(r"<[^>]+>", "*", path)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    """A real warehouse with what the runbook's entries describe: two published days, the first
    published twice (so it has a `previous`), then a rerun of the second that failed its DQ gate
    (its candidate left for inspection)."""
    tmp = tmp_path_factory.mktemp("runbook")
    inp, out = tmp / "in", tmp / "out"
    before = DS - dt.timedelta(days=1)
    for day in (before, DS):
        write_day(inp, day, clean_day(day))
    assert main(["run", "--input", str(inp), "--output", str(out), "--start", str(before), "--end", str(DS)]) == 0
    assert main(["run", "--input", str(inp), "--output", str(out), "--ds", str(before), "--no-report"]) == 0  # a `previous`
    bad = clean_day(DS)
    bad["decisions"] += [decision(decision_mode="robot") for _ in range(5)]  # > 1 % quarantined: exit 3
    write_day(inp, DS, bad)
    assert main(["run", "--input", str(inp), "--output", str(out), "--ds", str(DS)]) == 3
    return out


def test_the_runbook_names_warehouse_paths():
    assert len(_runbook_paths(runbook())) >= 10


def test_every_warehouse_path_the_runbook_names_is_one_the_job_writes(warehouse):
    dag = (ROOT / "airflow_dags" / "risk_insight_nightly.py").read_text(encoding="utf-8")
    for path in sorted(_runbook_paths(runbook())):
        if path.endswith("airflow_failure.json"):
            # Written by the DAG's failure callbacks, beside the day's run files.
            assert '"_runs" / f"ds={ds}" / "airflow_failure.json"' in dag, path
            continue
        assert list(warehouse.glob(_as_glob(path))), f"the runbook names {path}, which a run does not write ({_as_glob(path)})"


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    return {_slug(h) for h in re.findall(r"^#+ (.*)$", text, flags=re.M)}


def test_every_link_leads_to_a_file_and_heading_that_exist():
    text = runbook()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    for link in links:
        target, _, anchor = link.partition("#")
        path = (RUNBOOK.parent / target).resolve() if target else RUNBOOK
        if "shared/" in target and not path.exists():
            continue  # shared/ sits beside the checkout; not every checkout has it
        assert path.exists(), f"{link}: no such file"
        if anchor:
            assert anchor in _anchors(path), f"{link}: no heading with that anchor in {path.name}"


def test_readme_links_the_runbook():
    assert "](docs/RUNBOOK.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
