"""Which published days are stale after an earlier day changed (jobs.lineage), on real runs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from jobs import lineage
from jobs import warehouse as wh
from jobs.config import Config
from tests.builders import decision
from tests.conftest import DS, ts
from tests.inputs import write_day
from tests.test_cli_run import clean_day, run

DAY = dt.timedelta(days=1)
D1, D2, D3 = DS - 2 * DAY, DS - DAY, DS
PARAMS = Config().params(DS)


def _write(inp: Path, day: dt.date, late: int = 0) -> None:
    data = clean_day(day)
    data["decisions"] += [
        decision(decision_id=f"late-{day}-{i}", creator_id="late", market="FR", decided_at=ts(20, day=day),
                 enqueued_at=ts(19, day=day), content_created_at=ts(18, day=day))
        for i in range(late)
    ]
    write_day(inp, day, data)


def _run(inp: Path, out: Path, first: dt.date, last: dt.date) -> None:
    assert run("--input", str(inp), "--output", str(out), "--start", str(first), "--end", str(last), "--no-report") == 0


def test_days_run_in_order_are_not_stale_and_record_what_they_read(tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    for d in (D1, D2, D3):
        _write(inp, d)
    _run(inp, out, D1, D3)
    assert lineage.stale_after(out, D1, D3, PARAMS) == {}
    manifest = json.loads(wh.published_run_file(out, D3, "manifest.json").read_text())
    d1 = json.loads(wh.published_run_file(out, D1, "manifest.json").read_text())
    read = manifest["history"]["creator_category_daily"]
    assert (read["first"], read["last"]) == (str(D3 - 29 * DAY), str(D2))
    assert read["read"] == {str(D1): d1["table_sha256"]["creator_category_daily"],
                            str(D2): json.loads(wh.published_run_file(out, D2, "manifest.json").read_text())["table_sha256"]["creator_category_daily"]}
    assert d1["table_sha256"]["violation_daily"] == lineage.file_sha256(next(wh.partition_dir(out, "violation_daily", D1).glob("*.parquet")))


def test_a_backfill_run_after_a_later_day_leaves_that_day_stale_until_it_is_rerun(tmp_path, capsys):
    inp, out = tmp_path / "in", tmp_path / "out"
    for d in (D1, D2, D3):
        _write(inp, d)
    _run(inp, out, D3, D3)
    capsys.readouterr()
    _run(inp, out, D1, D2)  # the backfill, after D3 was published without them
    assert lineage.stale_after(out, D1, D2, PARAMS) == {D3: [D1, D2]}
    err = capsys.readouterr().err
    assert f"riskinsight: note: 1 published day(s) were built on earlier tables of {D1}, {D2}" in err
    assert f"(run --start {D3} --end {D3})" in err and err.count("riskinsight: note:") == 1
    _run(inp, out, D3, D3)
    assert lineage.stale_after(out, D1, D3, PARAMS) == {}
    assert "note:" not in capsys.readouterr().err


def test_a_uri_warehouse_gets_the_same_stale_note_as_a_local_one(tmp_path, capsys, monkeypatch):
    """`run` on a URI warehouse printed no note (lineage looked for `current` links the remote does
    not have, and found every day unpublished): it now reads the remote's manifests, and says what
    a local warehouse says, in the same one line."""
    from jobs import nightly
    from tests.test_storage_uri_warehouse import FileUriEngine

    real = nightly._as_engine
    monkeypatch.setattr(nightly, "_as_engine", lambda engine: FileUriEngine() if engine == "spark" else real(engine))
    inp, local, remote = tmp_path / "in", tmp_path / "local", tmp_path / "remote"
    for d in (D1, D2, D3):
        _write(inp, d)
    notes = {}
    for out, engine in ((str(local), "polars"), (f"file://{remote}", "spark")):
        for first, last in ((D3, D3), (D1, D2)):  # the backfill after D3
            assert run("--input", str(inp), "--output", out, "--engine", engine, "--start", str(first), "--end", str(last)) == 0
        notes[engine] = [line for line in capsys.readouterr().err.splitlines() if "riskinsight: note:" in line]
    assert len(notes["polars"]) == 1 and f"(run --start {D3} --end {D3})" in notes["polars"][0]
    assert notes["spark"] == notes["polars"]
    assert "stale history" in _index_row(remote, D3)
    with pytest.raises(ValueError, match="not a URI"):  # rather than "nothing is stale"
        lineage.stale_days(f"file://{remote}", [D3])


def test_a_rerun_with_late_rows_makes_the_later_days_stale_and_an_identical_rerun_does_not(tmp_path):
    inp, out = tmp_path / "in", tmp_path / "out"
    for d in (D1, D2, D3):
        _write(inp, d)
    _run(inp, out, D1, D3)
    _run(inp, out, D1, D1)  # the same rows again: the same bytes, nothing downstream changes
    assert lineage.stale_after(out, D1, D1, PARAMS) == {}
    _write(inp, D1, late=4)  # late rows land in D1's input
    _run(inp, out, D1, D1)
    stale = lineage.stale_after(out, D1, D1, PARAMS)
    assert stale == {D2: [D1], D3: [D1]}
    assert "2 published day(s)" in lineage.rerun_hint(stale) and f"--start {D2} --end {D3}" in lineage.rerun_hint(stale)
    # The first day of a checked range is one of "those days themselves" (a run of D2 while D1 was
    # republished): D2 read D1's old tables, so it is stale as well as D3, whose window reaches D2.
    assert lineage.stale_after(out, D2, D2, PARAMS) == {D2: [D1], D3: [D1]}
    _run(inp, out, D2, D3)
    assert lineage.stale_after(out, D1, D3, PARAMS) == {}


def _page(out: Path, day: dt.date) -> str:
    return (out / "reports" / f"{day}.html").read_text(encoding="utf-8")


def _index_row(out: Path, day: dt.date) -> str:
    from tests.index_html import index_row

    return index_row((out / "reports" / "index.html").read_text(encoding="utf-8"), day)


def test_the_page_and_the_index_say_which_days_are_stale(tmp_path):
    from jobs.cli import main

    inp, out = tmp_path / "in", tmp_path / "out"
    for d in (D1, D2, D3):
        _write(inp, d)
    assert run("--input", str(inp), "--output", str(out), "--ds", str(D3)) == 0
    assert 'id="stale-history"' not in _page(out, D3)
    _run(inp, out, D1, D2)  # --no-report: published without pages, listed in the index all the same
    assert main(["report", "--output", str(out), "--ds", str(D3)]) == 0
    assert f"tables of {D1}, {D2} that have been published anew" in " ".join(_page(out, D3).split())
    assert "stale history" in _index_row(out, D3) and ">no page<" in _index_row(out, D1)
    assert "stale history" not in _index_row(out, D1)
    assert run("--input", str(inp), "--output", str(out), "--ds", str(D3)) == 0
    assert 'id="stale-history"' not in _page(out, D3) and "stale history" not in _index_row(out, D3)


def test_a_backfill_renders_the_later_days_pages_again_with_the_stale_banner(tmp_path):
    """A page rendered before a backfill compared its day with tables replaced since: opened
    directly (a bookmark, a link in a ticket), it did not say so. The backfill renders it again from
    its own publication, with the banner; a --no-report backfill leaves pages alone."""
    inp, out = tmp_path / "in", tmp_path / "out"
    for d in (D1, D2, D3):
        _write(inp, d)
    assert run("--input", str(inp), "--output", str(out), "--ds", str(D3)) == 0
    before = _page(out, D3)
    assert 'id="stale-history"' not in before
    _run(inp, out, D1, D2)  # --no-report
    assert _page(out, D3) == before
    assert run("--input", str(inp), "--output", str(out), "--start", str(D1), "--end", str(D1)) == 0
    page = _page(out, D3)
    assert 'id="stale-history"' in page and f"tables of {D1}, {D2} that have been published anew" in " ".join(page.split())
    # Still the page of D3's own publication (its run time, its figures), as `report` renders it.
    manifest = json.loads(wh.published_run_file(out, D3, "manifest.json").read_text())
    assert manifest["run_started_at"] in page
    from jobs.cli import main

    assert main(["report", "--output", str(out), "--ds", str(D3)]) == 0 and _page(out, D3) == page
    assert sorted(p.name for p in (out / "reports").glob("*.html")) == [f"{D1}.html", f"{D3}.html", "index.html"]
    assert "stale history" in _index_row(out, D3)


def test_the_page_says_when_its_comparison_days_ran_with_other_parameters(tmp_path):
    from jobs.report import load_report_data

    inp, out = tmp_path / "in", tmp_path / "out"
    for d in (D1, D2):
        _write(inp, d)
    _run(inp, out, D1, D1)
    config = tmp_path / "c.toml"
    config.write_text('[job]\nproactive_sources = ["ml_model"]\ntaxonomy = ["spam", "hate_speech"]\n')
    assert run("--input", str(inp), "--output", str(out), "--ds", str(D2), "--config", str(config)) == 0
    text = " ".join(_page(out, D2).split())
    assert f"Computed with other parameters than {D1} (job.proactive_sources, job.taxonomy)" in text
    assert load_report_data(out, D2).taxonomy == ("spam", "hate_speech")
    assert run("--input", str(inp), "--output", str(out), "--ds", str(D1), "--config", str(config)) == 0
    assert 'id="params-changed"' not in _page(out, D1)  # D1-1 and D1-7 were never run


def test_a_parameter_added_since_a_day_ran_counts_at_its_default_in_the_comparison(tmp_path):
    """Days published before a release that added a parameter lack it in their manifests. At its
    default it is no change: the week after every such release carried the banner on every page."""
    from jobs import warehouse as wh

    inp, out = tmp_path / "in", tmp_path / "out"
    for d in (D1, D2):
        _write(inp, d)
    _run(inp, out, D1, D1)
    path = wh.published_run_file(out, D1, "manifest.json")
    older = wh.read_json(path)
    del older["params"]["trends"]["min_volume"], older["params"]["job"]["default_sla_s"]  # as if added since
    path.unlink()  # a hard link into the publication: replaced, not rewritten in place
    wh.write_json(path, older)
    assert run("--input", str(inp), "--output", str(out), "--ds", str(D2)) == 0
    assert 'id="params-changed"' not in _page(out, D2)
    config = tmp_path / "c.toml"
    config.write_text("[trends]\nmin_volume = 5.0\n")
    assert run("--input", str(inp), "--output", str(out), "--ds", str(D2), "--config", str(config)) == 0
    assert f"Computed with other parameters than {D1} (trends.min_volume)" in " ".join(_page(out, D2).split())


def test_a_rerun_can_make_stale_exactly_the_days_whose_longest_window_reaches_it(tmp_path):
    """repeat_offenders of ds reads creator_category_daily of ds-29..ds-1 (DESIGN §4: 30 days with
    ds), violation_trends violation_daily of ds-28..ds-1: a rerun of day L with other rows makes
    L+29 stale through the offenders' window, and never L+30, whose windows start at L+1."""
    inp, out = tmp_path / "in", tmp_path / "out"
    rerun, edge, beyond = D1, D1 + 29 * DAY, D1 + 30 * DAY
    for d in (rerun, edge, beyond):
        _write(inp, d)
        _run(inp, out, d, d)
    _write(inp, rerun, late=4)  # late violations of a new creator: another creator_category_daily
    _run(inp, out, rerun, rerun)
    assert lineage.stale_after(out, rerun, rerun, PARAMS) == {edge: [rerun]}
