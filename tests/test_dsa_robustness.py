"""The DSA source under damaged, partial and replaced downloads (each case a real operator's mishap).

Every case runs on the real sample rows (shared/data/dsa_sor, see tests/conftest.py) with one thing broken, and checks
that the operator gets a one-line error (exit 4) or the day's true figures, never a half day or a
silently stale one.
"""

from __future__ import annotations

import csv
import io
import json
import re
import os
import types
import zipfile
from pathlib import Path

import narwhals.stable.v2 as nw
import polars as pl
import pytest

from jobs import dsa, dsa_ingest, faults
from jobs.cli import main
from jobs.dsa import DsaError, cmd_daily
from jobs.dsa_ingest import DsaIngestError, ingest
from tests.conftest import shared_path
from tests.index_html import index_rows
from transforms.dsa_transparency import dsa_transparency
from transforms.sor_daily import sor_daily

DATA = shared_path("data", "dsa_sor")  # $RISKINSIGHT_SHARED, else ../shared, else /work/shared (conftest)
ZIP = DATA / "2024-03-14" / "sor-global-2024-03-14-full.zip"
NEW_CSV = DATA / "2025-07-01" / "sor-global-2025-07-01-full-00000-00000.csv"


def _run(*argv: str) -> int:
    return main(["dsa", *argv])


def _damage_first_member(data: bytes) -> bytes:
    """Flip one byte in the middle of the first member's compressed data: the zip still lists it,
    and only reading it finds the damage (its CRC)."""
    b = bytearray(data)
    i = zipfile.ZipFile(io.BytesIO(data)).infolist()[0]
    b[i.header_offset + 30 + len(i.filename) + len(i.extra) + i.compress_size // 2] ^= 0xFF
    return bytes(b)


@pytest.mark.usefixtures("dsa_sor")
def test_a_damaged_zip_member_is_a_one_line_error(tmp_path, capsys):
    dump = tmp_path / ZIP.name
    dump.write_bytes(_damage_first_member(ZIP.read_bytes()))  # no .sha1 beside it to catch it first
    assert _run("ingest", "--quiet", "--dump", str(dump), "--output", str(tmp_path / "out")) == 4
    err = capsys.readouterr().err.strip()
    assert "damaged zip" in err and "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.usefixtures("dsa_sor")
def test_a_zip_saved_under_a_chunk_name_is_a_one_line_error(tmp_path, capsys):
    dump = tmp_path / "sor-global-2024-03-14-full-00000-00000.csv"
    dump.write_bytes(ZIP.read_bytes())
    assert _run("ingest", "--quiet", "--dump", str(dump), "--output", str(tmp_path / "out")) == 4
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_a_zero_byte_chunk_is_an_error_not_a_day_without_statements(tmp_path):
    empty = tmp_path / "sor-global-2024-03-15-full-00000-00000.csv"
    empty.write_bytes(b"")
    with pytest.raises(DsaIngestError, match="empty file"):
        ingest([empty], tmp_path / "out")
    assert not (tmp_path / "out" / "sor" / "ds=2024-03-15").exists()


def _zip_with_a_truncated_part_1(target: Path) -> Path:
    """The sample's day zip with part 00001 cut to half its bytes: part 00000 converts, 00001 fails.
    (A bad cell or record no longer fails an ingest: it is quarantined, see test_dsa_bad_rows.)"""
    with zipfile.ZipFile(ZIP) as z, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as o:
        for info in sorted(z.infolist(), key=lambda i: i.filename):
            data = z.read(info.filename)
            if info.filename.endswith("00001.csv.zip"):
                data = data[: len(data) // 2]
            o.writestr(info.filename, data)
    return target


@pytest.mark.usefixtures("dsa_sor")
def test_a_day_whose_ingest_failed_is_refused_until_a_rerun_completes_it(tmp_path, capsys):
    out = tmp_path / "out"
    (tmp_path / "broken").mkdir()
    broken = _zip_with_a_truncated_part_1(tmp_path / "broken" / ZIP.name)
    with pytest.raises(DsaIngestError, match="00001.csv.zip: not a valid zip"):
        ingest([broken], out)
    assert list((out / "sor" / "ds=2024-03-14").glob("*.parquet"))  # part 00000 is on disk ...
    with pytest.raises(DsaError, match="did not finish"):  # ... and is not taken for the whole day
        cmd_daily(out, "2024-03-14", report=False)
    assert _run("daily", "--output", str(out), "--ds", "2024-03-14", "--no-report") == 4
    assert "did not finish" in capsys.readouterr().err

    # The good download: part 00000 is the same (skipped), part 00001 differs and is converted.
    s = ingest([ZIP], out)
    assert (s.parts_skipped, s.parts_converted) == (1, 1)
    r = cmd_daily(out, "2024-03-14", report=False)
    assert (r.statements, r.rows_read, r.duplicate_uuids) == (199, 202, 1)


@pytest.mark.usefixtures("dsa_sor")
def test_reingesting_a_complete_file_replaces_a_short_one(tmp_path):
    rows = list(csv.reader(io.StringIO(NEW_CSV.read_text(encoding="utf-8"), newline="")))
    short = tmp_path / "dl1" / NEW_CSV.name
    short.parent.mkdir()
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows[:21])  # a download cut after 20 rows, at a row end
    short.write_text(buf.getvalue(), encoding="utf-8")
    out = tmp_path / "out"
    assert ingest([short], out).rows_read == 20
    again = ingest([NEW_CSV], out)
    assert (again.parts_converted, again.parts_skipped) == (1, 0)
    assert pl.read_parquet(out / "sor" / "ds=2025-07-01" / "*.parquet").height == len(rows) - 1 == 50
    # The same complete file once more is skipped as done.
    assert ingest([NEW_CSV], out).parts_skipped == 1


@pytest.mark.usefixtures("dsa_sor")
def test_the_day_manifest_counts_every_row_read(tmp_path):
    assert ingest([ZIP], tmp_path).duplicates_dropped == 1  # within chunk 00000-00000
    r = cmd_daily(tmp_path, "2024-03-14", report=False)
    manifest = json.loads((tmp_path / "_dsa_runs" / "ds=2024-03-14" / "manifest.json").read_text())
    assert manifest["duplicate_uuids"] == r.duplicate_uuids == 1
    assert manifest["rows_read"] == manifest["statements"] + manifest["duplicate_uuids"] + sum(manifest["quarantined"].values()) == 202


@pytest.mark.usefixtures("dsa_sor")
def test_daily_without_a_report_removes_the_stale_page(tmp_path):
    ingest([ZIP], tmp_path)
    page = Path(cmd_daily(tmp_path, "2024-03-14").report)
    assert page.exists()
    assert cmd_daily(tmp_path, "2024-03-14", report=False).report == ""
    assert not page.exists()


@pytest.mark.usefixtures("dsa_sor")
def test_transparency_names_the_days_with_nothing_ingested(tmp_path, capsys):
    ingest([ZIP], tmp_path / "out")
    csv_path = tmp_path / "t.csv"
    assert _run("transparency", "--output", str(tmp_path / "out"), "--start", "2024-03-13", "--end", "2024-03-15",
                "--csv", str(csv_path)) == 0  # fmt: skip
    assert "2 of the 3 days have no ingested statements and are not in the table: 2024-03-13, 2024-03-15" in capsys.readouterr().err


def _statements(**overrides: object) -> nw.LazyFrame:
    base = {"uuid": "u", "platform_name": "P", "category": "C", "automated_detection": "Yes",
            "automated_decision": "AUTOMATED_DECISION_FULLY", "source_type": "SOURCE_VOLUNTARY",
            "decision_ground": "DECISION_GROUND_ILLEGAL_CONTENT", "decision_visibility": None,
            "decision_monetary": None, "decision_provision": None, "decision_account": None,
            "content_date_us": 0, "application_date_us": 0, "created_at_us": 0}  # fmt: skip
    schema = {c: pl.List(pl.String) if c == "decision_visibility" else pl.Int64 if c.endswith("_us") else pl.String
              for c in base}  # fmt: skip
    rows = [{**base, "uuid": "a", **overrides}, {**base, "uuid": "b", "platform_name": "TikTok"},
            {**base, "uuid": "c", "platform_name": "TikTok"}]  # fmt: skip
    return nw.from_native(pl.DataFrame(rows, schema=schema).lazy())


def test_a_platform_or_category_named_all_is_not_merged_into_a_rollup():
    d = sor_daily(_statements(platform_name="ALL", category="ALL")).collect().to_native()
    assert d.select("platform_name", "category").is_duplicated().sum() == 0
    total = d.filter((pl.col("platform_name") == "ALL") & (pl.col("category") == "ALL"))
    assert total["statements"].to_list() == [3]
    assert d.filter(pl.col("platform_name") == "(ALL)")["statements"].to_list() == [1, 1]  # (ALL)/(ALL), (ALL)/ALL

    t = dsa_transparency(_statements(category="ALL", source_type="ALL")).collect().to_native()
    assert t.select("category", "source_type").is_duplicated().sum() == 0
    assert t.filter((pl.col("category") == "ALL") & (pl.col("source_type") == "ALL"))["actions"].to_list() == [3]


@pytest.mark.usefixtures("dsa_sor")
def test_a_loose_chunk_invalidates_its_parts_marker_and_back(tmp_path):
    """A loose chunk CSV replaces one chunk of a part converted from the zip: re-ingesting the zip
    converts that part again (the day has all 199 statements again), and the loose chunk converts
    again after the zip replaced its rows."""
    first = DATA / "2024-03-14" / "sor-global-2024-03-14-full-00000-00000.csv"
    short = tmp_path / "dl" / first.name
    short.parent.mkdir()
    short.write_text("".join(first.read_text(encoding="utf-8").splitlines(keepends=True)[:11]), encoding="utf-8")
    out = tmp_path / "out"
    ingest([ZIP], out)
    assert ingest([short], out).rows_read == 10
    again = ingest([ZIP], out)
    assert (again.parts_converted, again.parts_skipped) == (1, 1)
    assert cmd_daily(out, "2024-03-14", report=False).statements == again.rows_written == 199
    redo = ingest([short], out)
    assert (redo.parts_converted, redo.parts_skipped, redo.rows_read) == (1, 0, 10)
    # 9 written: the first 10 rows hold the sample's duplicated uuid twice.
    assert pl.read_parquet(out / "sor" / "ds=2024-03-14" / f"{first.stem}.parquet").height == redo.rows_written == 9


def _files_of_the_day(out: Path) -> dict[str, bytes]:
    """Every file the ingest keeps for the sample day (rows, quarantine, counts, part markers)."""
    kept = [*out.glob("sor*/ds=2024-03-14/*"), *out.glob("_dsa_ingest/ds=2024-03-14/*.json"),
            *out.glob("_dsa_ingest/sor-global-2024-03-14-full/*")]  # fmt: skip
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(kept)}


def _zip_with_part_1_replaced(target: Path, *, second_chunk: bytes | None) -> Path:
    """The sample's day zip with part 00001's first chunk cut to 4 statements (it converts, and
    differs) and, when given, its second chunk's bytes replaced."""
    target.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(ZIP) as z, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as o:
        for info in sorted(z.infolist(), key=lambda i: i.filename):
            data = z.read(info.filename)
            if info.filename.endswith("00001.csv.zip"):
                with zipfile.ZipFile(io.BytesIO(data)) as part:
                    chunks = {n: part.read(n) for n in sorted(part.namelist())}
                first, second = sorted(chunks)
                chunks[first] = b"".join(chunks[first].splitlines(keepends=True)[:5])
                if second_chunk is not None:
                    chunks[second] = second_chunk
                buf = io.BytesIO()
                with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as new_part:
                    for name, chunk in chunks.items():
                        new_part.writestr(name, chunk)
                data = buf.getvalue()
            o.writestr(info.filename, data)
    return target


@pytest.mark.usefixtures("dsa_sor")
def test_a_corrupt_replacement_download_leaves_the_days_converted_statements_intact(tmp_path):
    """Re-ingesting a changed part deleted its chunk files before converting the new ones: when the
    new download then failed, the statements of the good one were gone."""
    out = tmp_path / "out"
    ingest([ZIP], out)
    before = _files_of_the_day(out)
    corrupt = _zip_with_part_1_replaced(tmp_path / "dl" / ZIP.name, second_chunk=b"")  # a truncated download
    with pytest.raises(DsaIngestError, match="empty file"):
        ingest([corrupt], out)
    assert _files_of_the_day(out) == before
    # The good download again: nothing to convert, and the day is whole.
    s = ingest([ZIP], out)
    assert (s.parts_skipped, s.parts_converted) == (2, 0)
    assert cmd_daily(out, "2024-03-14", report=False).statements == 199


@pytest.mark.usefixtures("dsa_sor")
def test_an_ingest_killed_while_swapping_a_part_in_is_refused_then_redone(tmp_path, monkeypatch):
    out = tmp_path / "out"
    ingest([ZIP], out)
    changed = _zip_with_part_1_replaced(tmp_path / "dl" / ZIP.name, second_chunk=None)
    calls = []

    def replace_then_die(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("killed")
        os.replace(src, dst)

    monkeypatch.setattr(dsa_ingest, "os", types.SimpleNamespace(replace=replace_then_die))
    with pytest.raises(OSError, match="killed"):
        ingest([changed], out)
    monkeypatch.undo()
    with pytest.raises(DsaError, match="did not finish"):  # one chunk new, one old: not a day
        cmd_daily(out, "2024-03-14", report=False)
    s = ingest([changed], out)
    assert (s.parts_skipped, s.parts_converted) == (1, 1)
    ingest([changed], tmp_path / "fresh")
    assert _files_of_the_day(out) == _files_of_the_day(tmp_path / "fresh")


DAY = "2024-03-14"


def _day_outputs(out: Path) -> dict[str, bytes]:
    """What `dsa daily` publishes for the sample day, read the way a reader reads it."""
    paths = [*sorted(out.glob(f"sor_daily/ds={DAY}/*.parquet")), *sorted(out.glob(f"sor_trends/ds={DAY}/*.parquet")),
             out / "_dsa_runs" / f"ds={DAY}" / "manifest.json", out / "reports" / "dsa" / f"{DAY}.html"]  # fmt: skip
    return {str(p.relative_to(out)): p.read_bytes() for p in paths if p.exists()}


def _published_day_with_new_statements(tmp_path: Path) -> tuple[Path, dict[str, bytes], Path]:
    """A published sample day whose ingested statements have since changed (a loose chunk replaced one)."""
    out = tmp_path / "out"
    ingest([ZIP], out)
    cmd_daily(out, DAY, run_ts="first")
    before = _day_outputs(out)
    assert len(before) == 4
    first = DATA / DAY / "sor-global-2024-03-14-full-00000-00000.csv"
    short = tmp_path / "dl" / first.name
    short.parent.mkdir()
    short.write_text("".join(first.read_text(encoding="utf-8").splitlines(keepends=True)[:11]), encoding="utf-8")
    ingest([short], out)
    return out, before, short


@pytest.mark.usefixtures("dsa_sor")
@pytest.mark.parametrize("step", ["page", "before_flip"])
def test_a_daily_run_failing_between_its_outputs_leaves_the_previous_publication_whole(tmp_path, monkeypatch, step):
    """sor_daily, sor_trends, the page and the manifest were written one after another: a run that
    died between them left the day's tables new and its page and manifest old."""
    out, before, short = _published_day_with_new_statements(tmp_path)

    def die(*_args, **_kwargs):
        raise RuntimeError("killed")

    if step == "page":
        monkeypatch.setattr(dsa, "_write_report", die)
    else:
        monkeypatch.setattr(faults, "point", lambda name: die() if name == "publish:links_ready" else None)
    with pytest.raises(RuntimeError, match="killed"):
        cmd_daily(out, DAY, run_ts="second")
    assert _day_outputs(out) == before
    monkeypatch.undo()

    r = cmd_daily(out, DAY, run_ts="second")
    after = _day_outputs(out)
    ingest([ZIP, short], tmp_path / "fresh")
    fresh = cmd_daily(tmp_path / "fresh", DAY, run_ts="second")
    assert (r.statements, r.rows_read) == (fresh.statements, fresh.rows_read) != (199, 202)
    tables = [k for k in after if k.startswith("sor_")]
    assert {k: after[k] for k in tables} == {k: _day_outputs(tmp_path / "fresh")[k] for k in tables}
    manifest = json.loads(after[f"_dsa_runs/ds={DAY}/manifest.json"])
    daily = pl.read_parquet(out / "sor_daily" / f"ds={DAY}" / "part-00000.parquet")
    total = daily.filter((pl.col("platform_name") == "ALL") & (pl.col("category") == "ALL"))["statements"].item()
    assert manifest["statements"] == total == r.statements
    cmd_daily(out, DAY, run_ts="second")
    assert _day_outputs(out) == after  # a rerun gives the same outputs


@pytest.mark.usefixtures("dsa_sor")
def test_a_day_built_before_the_tables_were_versioned_is_published_over(tmp_path):
    out = tmp_path / "out"
    ingest([ZIP], out)
    for table in ("sor_daily", "sor_trends"):  # plain directories and files, as `dsa daily` wrote them
        (out / table / f"ds={DAY}").mkdir(parents=True)
        pl.DataFrame({"x": [1]}).write_parquet(out / table / f"ds={DAY}" / "part-00000.parquet")
    (out / "_dsa_runs" / f"ds={DAY}").mkdir(parents=True)
    (out / "_dsa_runs" / f"ds={DAY}" / "manifest.json").write_text("{}")
    r = cmd_daily(out, DAY)
    assert (out / "sor_daily" / f"ds={DAY}").is_symlink()
    assert json.loads((out / "_dsa_runs" / f"ds={DAY}" / "manifest.json").read_text())["statements"] == r.statements
    assert "statements" in pl.read_parquet(out / "sor_daily" / f"ds={DAY}" / "part-00000.parquet").columns


@pytest.mark.usefixtures("dsa_sor")
def test_the_dsa_index_lists_every_day_with_its_figures_and_page(tmp_path):
    out = tmp_path / "out"
    ingest([ZIP, NEW_CSV], out)
    with_page = cmd_daily(out, DAY)
    without = cmd_daily(out, "2025-07-01", report=False)
    html = (out / "reports" / "dsa" / "index.html").read_text(encoding="utf-8")
    rows = index_rows(html)
    assert [(d, "href" in cells) for d, cells in rows] == [("2025-07-01", False), (DAY, True)]
    assert f'href="{DAY}.html"' in html and (out / "reports" / "dsa" / f"{DAY}.html").exists()
    statements = [re.search(r'<td class="num">(.*?)</td>', cells).group(1) for _, cells in rows]
    shown = [int(n.replace(",", "").replace("\u202f", "")) for n in statements]
    assert shown == [without.statements, with_page.statements]
    # The day rebuilt without its page: the index no longer links it.
    cmd_daily(out, DAY, report=False)
    assert f'href="{DAY}.html"' not in (out / "reports" / "dsa" / "index.html").read_text(encoding="utf-8")
