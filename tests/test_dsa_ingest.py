"""Ingest of the real DSA Transparency Database sample rows (../shared/data/dsa_sor), every quirk included.

Expected figures were counted from the sample files independently of the ingest code (Python's csv
module on the raw files): 202 rows on 2024-03-14, one duplicated uuid (03b1b1c9..., TikTok), two rows
created on 2024-08-29 (Chrome Web Store and Google Play, both in chunk 00001-00001, which also holds
the backslash-escaped quotes), TikTok 99 raw rows, Google Shopping 80, Pinterest 13, AliExpress 6.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import polars as pl
import pytest

from jobs import dsa_ingest
from jobs.dsa_ingest import (
    NEW_HEADER,
    OLD_HEADER,
    REASON_OUTSIDE_DAY,
    SOR_SCHEMA,
    DsaIngestError,
    ingest,
)
from tests.conftest import shared_path

DATA = shared_path("data", "dsa_sor")  # $RISKINSIGHT_SHARED, else ../shared, else /work/shared (conftest)
DAY = "2024-03-14"
ZIP = DATA / DAY / f"sor-global-{DAY}-full.zip"
CSVS = sorted((DATA / DAY).glob("*.csv"))
NEW_CSV = DATA / "2025-07-01" / "sor-global-2025-07-01-full-00000-00000.csv"
BACKSLASH_UUID = "eb40d5a8-bddb-4509-b4df-85a5c3a1995d"
DUP_UUID = "03b1b1c9-a860-4bf6-afff-0d8f0d944871"

pytestmark = pytest.mark.usefixtures("dsa_sor")  # fails, naming the places tried, when the data is missing


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dsa_ingest.IngestSummary]:
    out = tmp_path_factory.mktemp("dsa_out")
    return out, ingest([ZIP, NEW_CSV], out)


def _sor(out: Path, day: str = DAY) -> pl.DataFrame:
    return pl.read_parquet(out / "sor" / f"ds={day}" / "*.parquet")


def _quarantine(out: Path, day: str = DAY) -> pl.DataFrame:
    return pl.read_parquet(out / "sor_quarantine" / f"ds={day}" / "*.parquet")


def test_zip_layout_summary(ingested):
    out, s = ingested
    assert s.sha1_verified == [ZIP.name]
    assert s.days == ["2024-03-14", "2025-07-01"]
    assert (s.parts_converted, s.parts_skipped, s.chunks) == (3, 0, 5)
    assert s.rows_read == 202 + 50
    assert s.duplicates_dropped == 1
    assert s.quarantined == {REASON_OUTSIDE_DAY: 2}
    assert s.rows_written == 202 - 1 - 2 + 50
    assert s.backslash_quote_chunks == 1
    files = sorted(p.name for p in (out / "sor" / f"ds={DAY}").iterdir())
    assert files == [f"sor-global-{DAY}-full-{p:05d}-{c:05d}.parquet" for p in (0, 1) for c in (0, 1)]
    markers = sorted(p.name for p in (out / "_dsa_ingest" / f"sor-global-{DAY}-full").iterdir())
    assert markers == [f"sor-global-{DAY}-full-00000.done", f"sor-global-{DAY}-full-00001.done"]


def test_platform_counts_and_duplicate(ingested):
    out, _ = ingested
    sor = _sor(out)
    counts = dict(sor.group_by("platform_name").len().iter_rows())
    # TikTok has 99 raw rows, one of which repeats the uuid of another.
    assert counts == {"TikTok": 98, "Google Shopping": 80, "Pinterest": 13, "AliExpress": 6, "Snapchat": 2}
    assert sor["uuid"].n_unique() == sor.height == 199
    assert sor.filter(pl.col("uuid") == DUP_UUID).height == 1


def test_backslash_quote_chunk_parsed_and_late_rows_quarantined(ingested):
    out, _ = ingested
    q = _quarantine(out).sort("platform_name")
    assert q["reason"].to_list() == [REASON_OUTSIDE_DAY] * 2
    assert q["platform_name"].to_list() == ["Chrome Web Store", "Google Play"]
    assert q["created_at"].to_list() == [dt.datetime(2024, 8, 29, 16, 28, 38, tzinfo=dt.UTC)] * 2
    row = q.filter(pl.col("uuid") == BACKSLASH_UUID).row(0, named=True)
    # The fields after the escaped quotes are still in their own columns.
    assert row["incompatible_content_ground"].startswith("Napodobňovanie pozície")
    assert "Free" in row["incompatible_content_ground"]
    assert row["incompatible_content_explanation"].startswith("- Akékoľvek metadáta")
    assert row["category"] == "STATEMENT_CATEGORY_SCAMS_AND_FRAUD"
    assert row["content_type"] == ["CONTENT_TYPE_APP"]
    assert row["automated_decision"] == "AUTOMATED_DECISION_NOT_AUTOMATED"
    assert row["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_REMOVED"]
    # The rest of that chunk (50 rows on 2024-03-14) was written.
    assert pl.read_parquet(out / "sor" / f"ds={DAY}" / f"sor-global-{DAY}-full-00001-00001.parquet").height == 50


def test_both_headers_one_typed_schema(ingested):
    out, _ = ingested
    old, new = _sor(out), _sor(out, "2025-07-01")
    assert dict(old.schema) == dict(new.schema) == SOR_SCHEMA
    assert list(old.columns) == list(NEW_HEADER) and len(OLD_HEADER) == 37 and len(NEW_HEADER) == 38
    assert old["content_id_ean"].null_count() == old.height
    assert new.height == 50
    assert dict(new.group_by("platform_name").len().iter_rows())["Hotel Hideaway"] == 39
    assert new["decision_account"].to_list().count("DECISION_ACCOUNT_TERMINATED") == 3


def test_lists_and_timestamps(ingested):
    out, _ = ingested
    first = _sor(out).filter(pl.col("uuid") == DUP_UUID).row(0, named=True)
    assert first["decision_visibility"] == ["DECISION_VISIBILITY_OTHER"]
    assert first["content_type"] == ["CONTENT_TYPE_VIDEO"]
    assert len(first["territorial_scope"]) == 29 and first["territorial_scope"][:2] == ["AT", "BE"]
    assert first["category_addition"] is None  # empty field -> null
    assert first["created_at"] == dt.datetime(2024, 3, 14, 0, 0, 7, tzinfo=dt.UTC)
    assert first["content_date"] == dt.datetime(2024, 3, 12, tzinfo=dt.UTC)
    assert _sor(out).schema["created_at"] == pl.Datetime("us", "UTC")


def test_plain_csvs_give_the_same_rows_as_the_zip(ingested, tmp_path):
    out, _ = ingested
    s = ingest(CSVS, tmp_path)
    assert (s.rows_read, s.rows_written, s.duplicates_dropped, s.backslash_quote_chunks) == (202, 199, 1, 1)
    assert s.sha1_verified == []
    assert _sor(tmp_path).sort("uuid").equals(_sor(out).sort("uuid"))


def test_resume_skips_converted_parts(tmp_path):
    first = ingest([ZIP], tmp_path)
    again = ingest([ZIP], tmp_path)
    assert (again.parts_converted, again.parts_skipped) == (0, 2)
    assert (again.rows_read, again.rows_written, again.quarantined) == (first.rows_read, first.rows_written, first.quarantined)
    marker = tmp_path / "_dsa_ingest" / f"sor-global-{DAY}-full" / f"sor-global-{DAY}-full-00001.done"
    marker.unlink()
    redo = ingest([ZIP], tmp_path)
    assert (redo.parts_converted, redo.parts_skipped) == (1, 1)
    assert _sor(tmp_path).height == 199  # rewritten in place, not appended
    assert not list((tmp_path / "_dsa_ingest").glob("tmp-*"))


def test_corrupted_sha1_is_rejected(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(ZIP, src / ZIP.name)
    (src / (ZIP.name + ".sha1")).write_text(f"{'0' * 40}  {ZIP.name}")
    with pytest.raises(DsaIngestError) as err:
        ingest([src / ZIP.name], tmp_path / "out")
    msg = str(err.value)
    assert "sha1 mismatch" in msg and "\n" not in msg
    assert err.value.exit_code == 4
    assert not (tmp_path / "out" / "sor").exists()


def test_corrupted_zip_and_bad_names_are_one_line_errors(tmp_path):
    bad = tmp_path / f"sor-global-{DAY}-full.zip"
    bad.write_bytes(ZIP.read_bytes()[:5000])
    with pytest.raises(DsaIngestError, match="not a valid zip"):
        ingest([bad], tmp_path / "out")
    renamed = tmp_path / "statements.csv"
    shutil.copy(NEW_CSV, renamed)
    with pytest.raises(DsaIngestError, match="not a DSA dump file name"):
        ingest([renamed], tmp_path / "out")
    with pytest.raises(DsaIngestError, match="no such file"):
        ingest([tmp_path / "missing.zip"], tmp_path / "out")


def test_unknown_header_is_rejected(tmp_path):
    path = tmp_path / f"sor-global-{DAY}-full-00000-00000.csv"
    lines = CSVS[0].read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text(lines[0].replace("platform_uid", "platform_id") + "".join(lines[1:]), encoding="utf-8")
    with pytest.raises(DsaIngestError, match=r"unknown header .*missing \['platform_uid'\].*unexpected \['platform_id'\]"):
        ingest([path], tmp_path / "out")


def test_backslash_rewrite_across_block_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(dsa_ingest, "BLOCK", 3)
    src, dst = tmp_path / "a.csv", tmp_path / "b.csv"
    src.write_bytes(b'x,"say \\"hi\\" now"\n')
    assert dsa_ingest._copy_stream(open(src, "rb"), tmp_path / "c.csv") is True
    dsa_ingest._rewrite_backslash_quotes(src, dst)
    assert dst.read_bytes() == b'x,"say ""hi"" now"\n'
    assert pl.read_csv(dst, has_header=False)[:, 1].to_list() == ['say "hi" now']


def test_reordered_header_names_the_first_column_out_of_place(tmp_path):
    path = tmp_path / NEW_CSV.name
    lines = NEW_CSV.read_text(encoding="utf-8").splitlines(keepends=True)
    cols = lines[0].rstrip("\r\n").split(",")
    assert cols[1] == "decision_visibility" and cols[2] == "decision_visibility_other"
    cols[1], cols[2] = cols[2], cols[1]  # the data rows stay as they are: the file must be refused
    path.write_text(",".join(cols) + "\n" + "".join(lines[1:]), encoding="utf-8")
    with pytest.raises(DsaIngestError) as err:
        ingest([path], tmp_path / "out")
    msg = str(err.value)
    assert "another order than the 38-column layout" in msg
    assert "column 2 is 'decision_visibility_other', expected 'decision_visibility'" in msg
    assert "missing none" not in msg and "\n" not in msg
