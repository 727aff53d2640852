"""A bad cell or record in a DSA chunk is a quarantine row with its reason, never a lost chunk or day.

Each case is the real 2025-07-01 chunk (shared/data/dsa_sor, 50 statements, one record per line, so
record k is on line k + 1) with one or a few records broken by hand.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

import polars as pl
import pytest

from jobs import dsa_ingest
from jobs.cli import main
from jobs.dsa import cmd_daily
from jobs.dsa_ingest import DsaIngestError, ingest, ingesting_markers
from tests.conftest import shared_path

NEW_CSV = shared_path("data", "dsa_sor") / "2025-07-01" / "sor-global-2025-07-01-full-00000-00000.csv"
DAY = "2025-07-01"
# The quarantine reasons, spelled out: they are what an operator reads in the table and on the page.
REASON_LIST_INVALID = "list_column_not_a_json_array"
REASON_INVALID_UTF8 = "invalid_utf8"
REASON_FIELD_COUNT = "field_count_mismatch"

pytestmark = pytest.mark.usefixtures("dsa_sor")


def _lines() -> list[bytes]:
    return NEW_CSV.read_bytes().splitlines(keepends=True)


def _uuid(line: bytes) -> str:
    return line.split(b",", 1)[0].decode()


def _write(tmp_path, lines: list[bytes]):
    path = tmp_path / "in" / NEW_CSV.name
    path.parent.mkdir()
    path.write_bytes(b"".join(lines))
    return path


def _quarantine(out) -> pl.DataFrame:
    return pl.read_parquet(out / "sor_quarantine" / f"ds={DAY}" / "*.parquet").sort("line", nulls_last=True)


def test_a_bad_json_list_cell_quarantines_its_row_only(tmp_path):
    lines = _lines()
    assert b'"[""DECISION_VISIBILITY_' in lines[5]
    lines[5] = lines[5].replace(b'"[""DECISION_VISIBILITY_', b'"[DECISION_VISIBILITY_', 1)  # not JSON any more
    out = tmp_path / "out"
    s = ingest([_write(tmp_path, lines)], out)
    assert (s.rows_read, s.rows_written, s.quarantined) == (50, 49, {REASON_LIST_INVALID: 1})
    q = _quarantine(out)
    assert q["uuid"].to_list() == [_uuid(lines[5])]
    assert q["platform_name"].to_list()[0]  # typed like any other row: every column but the bad list
    assert q["decision_visibility"].to_list() == [None]
    assert not ingesting_markers(out, dt.date(2025, 7, 1))
    r = cmd_daily(out, DAY, report=False)
    assert (r.statements, r.rows_read, r.quarantined) == (49, 50, {REASON_LIST_INVALID: 1})


def test_invalid_utf8_and_ragged_records_are_quarantined_with_their_line(tmp_path):
    lines = _lines()
    lines[3] = lines[3].replace(b"DECISION_VISIBILITY_", b"DECISION_VISIBILIT\xe9_", 1)  # a latin-1 byte
    lines[10] = lines[10].rstrip(b"\r\n") + b",extra\n"  # a field too many
    lines[20] = lines[20].replace(b'"[""CONTENT_TYPE_', b'"[CONTENT_TYPE_', 1)  # and a bad list cell
    lines[30] = b",".join(lines[30].split(b",")[:5]) + b"\n"  # a record cut short
    out = tmp_path / "out"
    s = ingest([_write(tmp_path, lines)], out)
    assert s.rows_read == 50 and s.rows_written == 46
    assert s.quarantined == {REASON_FIELD_COUNT: 2, REASON_INVALID_UTF8: 1, REASON_LIST_INVALID: 1}
    q = _quarantine(out)
    assert q.select("line", "reason", "uuid").rows() == [
        (4, REASON_INVALID_UTF8, _uuid(lines[3])),
        (11, REASON_FIELD_COUNT, _uuid(lines[10])),
        (21, REASON_LIST_INVALID, _uuid(lines[20])),
        (31, REASON_FIELD_COUNT, _uuid(lines[30])),
    ]
    assert "DECISION_VISIBILIT\ufffd_" in q["raw"][0] and q["raw"][1].endswith(",extra")
    sor = pl.read_parquet(out / "sor" / f"ds={DAY}" / "*.parquet")
    good = [_uuid(line) for i, line in enumerate(lines[1:], 1) if i not in (3, 10, 20, 30)]
    assert sor["uuid"].to_list() == good  # the good records in their order, nothing shifted
    r = cmd_daily(out, DAY, report=False)
    assert (r.statements, r.rows_read) == (46, 50)


def test_an_unreadable_file_names_itself_and_the_line(tmp_path, monkeypatch):
    lines = _lines()
    lines[2] = lines[2].replace(b"DECISION_VISIBILITY_", b"DECISION_VISIBILIT\xe9_", 1)  # the fast read fails
    lines[7] = lines[7].replace(b'"[""CONTENT_TYPE_', b'"[""' + b"x" * 2000 + b"CONTENT_TYPE_", 1)
    monkeypatch.setattr(dsa_ingest, "_CSV_FIELD_LIMIT", 1500, raising=False)  # a field longer than the csv module takes
    out = tmp_path / "out"
    with pytest.raises(DsaIngestError, match=r"^sor-global-2025-07-01-full-00000-00000: unreadable CSV at line 8 "):
        ingest([_write(tmp_path, lines)], out)
    assert ingesting_markers(out, dt.date(2025, 7, 1))  # the day stays refused until a good ingest


def test_unparsable_dates_besides_created_at_are_counted_and_shown(tmp_path, capsys):
    """An application_date or content_date that does not parse leaves its statement in (it happened)
    but out of the delay percentiles: the ingest, the day's manifest, the page and transparency say
    how many, where the negative delays are counted."""
    lines = _lines()
    header = next(csv.reader([lines[0].decode()]))

    def edited(k: int, **values: str) -> bytes:
        fields = next(csv.reader([lines[k].decode()]))
        for col, v in values.items():
            fields[header.index(col)] = v
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(fields)
        return buf.getvalue().encode()

    lines[1] = edited(1, application_date="2025-06-30T22:00:00+02:00")  # an offset and an ISO T
    lines[2] = edited(2, application_date="2025-07-01")  # a date only
    lines[3] = edited(3, content_date="2025-06-31 00:00:00")  # no such day
    out = tmp_path / "out"
    s = ingest([_write(tmp_path, lines)], out)
    assert (s.rows_written, s.quarantined) == (50, {})
    assert s.unparsed_dates == {"application_date": 2, "content_date": 1}
    sor = pl.read_parquet(out / "sor" / f"ds={DAY}" / "*.parquet")
    assert sor["application_date"].null_count() == 2 and sor["content_date"].null_count() == 1
    r = cmd_daily(out, DAY)
    assert (r.statements, r.unparsed_dates) == (50, {"application_date": 2, "content_date": 1})
    page = open(r.report, encoding="utf-8").read()
    assert "Statements with an unreadable date, kept with it empty (left out of the delays that need it): " \
           "application_date 2, content_date 1." in page  # fmt: skip
    assert main(["dsa", "transparency", "--output", str(out), "--start", DAY, "--end", DAY,
                 "--csv", str(tmp_path / "t.csv")]) == 0  # fmt: skip
    assert "left out of the time-to-action figures: application_date 2, content_date 1" in capsys.readouterr().err


def _edited(line: bytes, **values: str) -> bytes:
    header = next(csv.reader([_lines()[0].decode()]))
    fields = next(csv.reader([line.decode()]))
    for column, value in values.items():
        fields[header.index(column)] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(fields)
    return buf.getvalue().encode()


def test_a_record_whose_uuid_is_not_utf8_and_a_blank_line_in_a_salvaged_chunk(tmp_path):
    """The re-read must survive what made it necessary: a bad byte may sit in the uuid itself (kept
    null, never written as a lone surrogate) and a chunk may hold blank lines (no record)."""
    lines = _lines()
    lines[4] = b"\xe9" + lines[4]
    lines.insert(10, b"\n")
    out = tmp_path / "out"
    s = ingest([_write(tmp_path, lines)], out)
    assert (s.rows_read, s.rows_written, s.quarantined) == (50, 49, {REASON_INVALID_UTF8: 1})
    assert _quarantine(out).select("line", "reason", "uuid").rows() == [(5, REASON_INVALID_UTF8, None)]


def test_unparsed_dates_count_each_statement_once_and_no_quarantined_row(tmp_path):
    lines = _lines()
    lines[1] = _edited(lines[1], created_at="2025-06-30 10:00:00", application_date="junk")  # quarantined
    lines[2] = _edited(lines[2], application_date="junk")
    lines.append(lines[2])  # the same statement twice: one statement
    out = tmp_path / "out"
    s = ingest([_write(tmp_path, lines)], out)
    assert (s.rows_written, s.quarantined, s.unparsed_dates) == (49, {"created_at_outside_dump_day": 1}, {"application_date": 1})
    assert cmd_daily(out, DAY, report=False).unparsed_dates == {"application_date": 1}


def test_blank_lines_hold_no_record_when_the_chunk_reads_cleanly(tmp_path):
    """As in the record-by-record re-read, a blank line (a trailing one, say, after a copy or
    concatenation) is no record: not a row read, nor a `uuid_missing` row in quarantine."""
    lines = _lines()
    lines.insert(10, b"\n")
    lines.append(b"\r\n")
    out = tmp_path / "out"
    s = ingest([_write(tmp_path, lines)], out)
    assert (s.rows_read, s.rows_written, s.quarantined) == (50, 50, {})
    assert not (out / "sor_quarantine" / f"ds={DAY}").exists() or not list((out / "sor_quarantine" / f"ds={DAY}").iterdir())
    r = cmd_daily(out, DAY, report=False)
    assert (r.statements, r.rows_read, r.quarantined) == (50, 50, {})


def test_a_rejected_copy_of_a_uuid_does_not_hide_its_valid_copy(tmp_path):
    """A uuid sent twice, once with a created_at outside the day and once within it, is a statement
    of the day (as it is when the copies sit in different chunks), and the rejected copy is in
    quarantine: the first copy read must not decide which one survives."""
    lines = _lines()
    bad = _edited(lines[5], created_at="2025-07-02 00:00:01")
    lines.insert(5, bad)  # the rejected copy first
    out = tmp_path / "out"
    s = ingest([_write(tmp_path, lines)], out)
    assert (s.rows_read, s.rows_written, s.duplicates_dropped) == (51, 50, 0)
    assert s.quarantined == {"created_at_outside_dump_day": 1}
    sor = pl.read_parquet(out / "sor" / f"ds={DAY}" / "*.parquet")
    assert _uuid(lines[6]) in sor["uuid"].to_list()
    assert _quarantine(out)["uuid"].to_list() == [_uuid(lines[6])]
    r = cmd_daily(out, DAY, report=False)
    assert (r.statements, r.rows_read) == (50, 51)
