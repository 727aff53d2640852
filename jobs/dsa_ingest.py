"""Ingest of the EU DSA Transparency Database daily dumps (statements of reasons) into typed Parquet.

Official layout: `sor-<scope>-YYYY-MM-DD-full.zip` holds per-part `sor-...-full-NNNNN.csv.zip` files
(one million statements at most), each holding CSV chunks `sor-...-full-NNNNN-NNNNN.csv` (100 000 rows
at most). A single chunk CSV or a part `.csv.zip` is accepted too.

Memory stays bounded by one chunk whatever the dump size: zip members are copied to disk in fixed-size
blocks (an inner zip must be seekable, and a deflated member of the outer zip is not, cheaply), and each
chunk is parsed by Polars from that file and written to Parquet before the next one is opened. Temporary
files live under `<output>/_dsa_ingest/` rather than /tmp, which may be RAM-backed.

Output:
  <output>/sor/ds=<day>/<chunk>.parquet             statements whose created_at falls on the dump's day
  <output>/sor_quarantine/ds=<day>/<chunk>.parquet  the other rows, with `reason`, `line` and `raw` columns
                                                    (the last two set for records the csv re-read rejected)
  <output>/_dsa_ingest/ds=<day>/<chunk>.json        the chunk's counts (rows read, duplicates dropped,
                                                    statements with a date kept null: unparsed_dates)
  <output>/_dsa_ingest/ds=<day>/ingesting.<file>    present while a dump file of that day is being
                                                    ingested; `dsa daily` refuses a day holding one
  <output>/_dsa_ingest/<dump>/<part>.done           written last, so a killed run redoes only that part
                                                    (converted aside, then swapped in: a part converted
                                                    again keeps its old files until the new ones are whole);
                                                    it names its source (size and checksum), and a
                                                    changed source is converted again; a lone chunk
                                                    CSV removes its part's marker (and a part the
                                                    markers of its lone chunks), as they share files

A bad record is a quarantine row, never a lost chunk: a list cell that is not a JSON array of strings
is caught in the Polars read; a record Polars cannot read at all (bytes that are not UTF-8, a field too
many or too few) fails that read, and only then is the chunk re-read record by record with the csv
module (`_salvage`, streaming), its bad records set aside with their line and the rest converted.

Files are named after their chunk, so re-ingesting the same chunk (from the zip or as a plain CSV)
replaces its rows instead of adding them twice. Duplicated uuids are dropped within a chunk here;
duplicates across chunks and parts of a day are dropped and counted when sor_daily is built
(`transforms.sor_daily.sor_duplicates`), where one pass over the day sees every uuid.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from jobs.errors import RiskInsightError
from jobs.warehouse import replacing, write_text

BLOCK = 1 << 20

OLD_HEADER: tuple[str, ...] = (
    "uuid", "decision_visibility", "decision_visibility_other", "end_date_visibility_restriction",
    "decision_monetary", "decision_monetary_other", "end_date_monetary_restriction", "decision_provision",
    "end_date_service_restriction", "decision_account", "end_date_account_restriction", "account_type",
    "decision_ground", "decision_ground_reference_url", "illegal_content_legal_ground",
    "illegal_content_explanation", "incompatible_content_ground", "incompatible_content_explanation",
    "incompatible_content_illegal", "category", "category_addition", "category_specification",
    "category_specification_other", "content_type", "content_type_other", "content_language",
    "content_date", "territorial_scope", "application_date", "decision_facts", "source_type",
    "source_identity", "automated_detection", "automated_decision", "platform_name", "platform_uid",
    "created_at",
)  # fmt: skip
# Dumps from 2025-07-01 on carry the product EAN right after content_date.
NEW_HEADER: tuple[str, ...] = (
    *OLD_HEADER[: OLD_HEADER.index("content_date") + 1],
    "content_id_ean",
    *OLD_HEADER[OLD_HEADER.index("content_date") + 1 :],
)
SOR_COLUMNS = NEW_HEADER

LIST_COLUMNS: tuple[str, ...] = (
    "decision_visibility", "category_addition", "category_specification", "content_type", "territorial_scope",
)  # fmt: skip
TIMESTAMP_COLUMNS: tuple[str, ...] = (
    "end_date_visibility_restriction", "end_date_monetary_restriction", "end_date_service_restriction",
    "end_date_account_restriction", "content_date", "application_date", "created_at",
)  # fmt: skip
TS_FORMAT = "%Y-%m-%d %H:%M:%S"
UTC_US = pl.Datetime("us", "UTC")

SOR_SCHEMA: dict[str, pl.DataType] = {
    c: (pl.List(pl.String) if c in LIST_COLUMNS else UTC_US if c in TIMESTAMP_COLUMNS else pl.String)
    for c in SOR_COLUMNS
}

REASON_UUID_MISSING = "uuid_missing"
REASON_CREATED_AT_INVALID = "created_at_missing_or_invalid"
REASON_OUTSIDE_DAY = "created_at_outside_dump_day"
REASON_LIST_INVALID = "list_column_not_a_json_array"
# Only when the fast (Polars) read of a chunk fails, and the line-by-line re-read finds them:
REASON_INVALID_UTF8 = "invalid_utf8"
REASON_FIELD_COUNT = "field_count_mismatch"
# A JSON array of strings (the list columns hold upper-case enum keys or country codes).
_JSON_STR_ARRAY = r'^\[\s*(?:"(?:[^"\\]|\\.)*"\s*(?:,\s*"(?:[^"\\]|\\.)*"\s*)*)?\]$'
# Quarantine rows carry two columns more than the statements: `line`, the CSV line a row starts on, and
# `raw`, the record as read (invalid bytes shown as U+FFFD); both are known, and set, only for a row
# the line-by-line re-read rejected, which has no typed columns but its uuid.
QUARANTINE_EXTRA: dict[str, pl.DataType] = {"line": pl.Int64, "raw": pl.String}
_CSV_FIELD_LIMIT = 1 << 30  # characters in one field, for the csv module (its default is 128 Ki)
_RAW_MAX = 10_000  # characters of a rejected record kept in `raw`
# The dates besides created_at (which decides a row's day, and is quarantined when unreadable): one
# that does not parse is kept null, and its row stays a statement (it still happened), but it drops out
# of the delay percentiles; the statements written with one are counted per column (`unparsed_dates`)
# and shown beside the negative delays, as a null content_created_at is in the decisions (DESIGN §3).
UNPARSED_DATE_COLUMNS: tuple[str, ...] = tuple(c for c in TIMESTAMP_COLUMNS if c != "created_at")
_UNPARSED = "_unparsed_"  # prefix of the per-column flags, dropped before the rows are written

_NAME = re.compile(
    r"^sor-(?P<scope>[A-Za-z0-9_.-]+?)-(?P<day>\d{4}-\d{2}-\d{2})-(?P<variant>full|light)"
    r"(?:-(?P<part>\d{5}))?(?:-(?P<chunk>\d{5}))?(?P<ext>\.zip|\.csv\.zip|\.csv)$"
)


class DsaError(RiskInsightError):
    """An expected failure of a DSA command; its message is one line meant for the operator."""

    exit_code = 4  # input missing, unreadable or corrupt (DESIGN §6)


class DsaUsageError(DsaError):
    exit_code = 2


class DsaIngestError(DsaError):
    pass


@dataclass
class IngestSummary:
    dumps: list[str] = field(default_factory=list)
    days: list[str] = field(default_factory=list)
    parts_converted: int = 0
    parts_skipped: int = 0
    chunks: int = 0
    rows_read: int = 0
    rows_written: int = 0
    duplicates_dropped: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    backslash_quote_chunks: int = 0
    unparsed_dates: dict[str, int] = field(default_factory=dict)  # statements kept with that date null
    sha1_verified: list[str] = field(default_factory=list)

    def add_part(self, counts: dict) -> None:
        self.chunks += counts["chunks"]
        self.rows_read += counts["rows_read"]
        self.rows_written += counts["rows_written"]
        self.duplicates_dropped += counts["duplicates_dropped"]
        self.backslash_quote_chunks += counts["backslash_quote_chunks"]
        q = Counter(self.quarantined)
        q.update(counts["quarantined"])
        self.quarantined = dict(sorted(q.items()))
        u = Counter(self.unparsed_dates)
        u.update(counts.get("unparsed_dates", {}))  # absent from the markers of older ingests
        self.unparsed_dates = dict(sorted(u.items()))


@dataclass(frozen=True)
class _DumpName:
    stem: str  # sor-global-2024-03-14-full
    day: dt.date


def parse_dump_name(path: Path) -> tuple[_DumpName, str]:
    """(the dump a file belongs to, its kind: 'day' zip, 'part' csv.zip or 'chunk' csv)."""
    m = _NAME.match(path.name)
    if not m:
        raise DsaIngestError(
            f"{path.name}: not a DSA dump file name (expected sor-<scope>-YYYY-MM-DD-full[.zip|-NNNNN.csv.zip|-NNNNN-NNNNN.csv])"
        )
    if m["variant"] != "full":
        raise DsaIngestError(f"{path.name}: only the 'full' dumps are supported (the 'light' ones lack columns)")
    try:
        day = dt.date.fromisoformat(m["day"])
    except ValueError:
        raise DsaIngestError(f"{path.name}: invalid date {m['day']}") from None
    stem = f"sor-{m['scope']}-{m['day']}-full"
    kind = {".zip": "day", ".csv.zip": "part", ".csv": "chunk"}[m["ext"]]
    expected = {"day": (None, None), "part": ("part", None), "chunk": ("part", "chunk")}[kind]
    if (m["part"] is None) != (expected[0] is None) or (m["chunk"] is None) != (expected[1] is None):
        raise DsaIngestError(f"{path.name}: part/chunk numbers do not fit a {m['ext']} file")
    return _DumpName(stem, day), kind


def _sha1_of(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            h.update(block)
    return h.hexdigest()


def verify_sha1(path: Path) -> bool:
    """Check `<path>.sha1` (as published: `<hex>  <name>`) when it exists; False when there is none."""
    sidecar = path.with_name(path.name + ".sha1")
    if not sidecar.exists():
        return False
    tokens = sidecar.read_text(encoding="ascii", errors="replace").split()
    expected = tokens[0].lower() if tokens else ""
    if not re.fullmatch(r"[0-9a-f]{40}", expected):
        raise DsaIngestError(f"{sidecar.name}: does not hold a sha1 digest")
    actual = _sha1_of(path)
    if actual != expected:
        raise DsaIngestError(f"{path.name}: sha1 mismatch (expected {expected}, got {actual}); the download is corrupt")
    return True


def _copy_stream(src: io.BufferedIOBase, dst: Path) -> bool:
    """Copy in blocks; True when the bytes hold a backslash-escaped quote (even split across blocks)."""
    seen = False
    prev_backslash = False
    with open(dst, "wb") as out:
        while block := src.read(BLOCK):
            if not seen and (b'\\"' in block or (prev_backslash and block[:1] == b'"')):
                seen = True
            prev_backslash = block[-1:] == b"\\"
            out.write(block)
    return seen


def _rewrite_backslash_quotes(src: Path, dst: Path) -> None:
    """Rewrite `\\"` to the RFC 4180 `""`, streaming; a trailing backslash waits for the next block."""
    carry = b""
    with open(src, "rb") as f, open(dst, "wb") as out:
        while block := f.read(BLOCK):
            block = carry + block
            carry = b""
            if block.endswith(b"\\"):
                block, carry = block[:-1], b"\\"
            out.write(block.replace(b'\\"', b'""'))
        out.write(carry)


def _read_header(path: Path, name: str) -> tuple[str, ...]:
    with open(path, "rb") as f:
        line = f.readline(1 << 16)
    if not line.strip():
        # A dump chunk always has its header line, even without statements: an empty file is a
        # download or copy that stopped short, and taking it as a day without statements would
        # show a drop that never happened.
        raise DsaIngestError(f"{name}: empty file, no header line (a truncated download?)")
    text = line.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    try:
        header = tuple(next(csv.reader([text])))
    except csv.Error as exc:
        raise DsaIngestError(f"{name}: not a CSV file ({exc})") from None
    if header not in (OLD_HEADER, NEW_HEADER):
        layout = NEW_HEADER if "content_id_ean" in header else OLD_HEADER
        if sorted(header) == sorted(layout):
            i = next(i for i, (got, want) in enumerate(zip(header, layout, strict=True)) if got != want)
            raise DsaIngestError(
                f"{name}: header columns in another order than the {len(layout)}-column layout "
                f"(first out of place: column {i + 1} is {header[i]!r}, expected {layout[i]!r})"
            )
        missing = sorted(set(OLD_HEADER) - set(header))
        extra = sorted(set(header) - set(NEW_HEADER))
        raise DsaIngestError(
            f"{name}: unknown header ({len(header)} columns; missing {missing or 'none'}, unexpected {extra or 'none'})"
        )
    return header


def _typed(csv_path: Path, header: tuple[str, ...], day: dt.date) -> pl.LazyFrame:
    raw = pl.scan_csv(
        csv_path,
        schema={c: pl.String for c in header},
        has_header=True,
        quote_char='"',
        empty_string_is_null=True,
        encoding="utf8",
    )
    exprs = []
    bad_list: list[str] = []
    for c in SOR_COLUMNS:
        if c not in header:
            exprs.append(pl.lit(None, pl.String).alias(c))
        elif c in LIST_COLUMNS:
            # A cell that is not a JSON array of strings would fail the whole chunk's decode: only the
            # cells that are one are decoded, and the row of any other is quarantined.
            ok = pl.col(c).is_null() | pl.col(c).str.contains(_JSON_STR_ARRAY)
            bad_list.append(f"_bad_{c}")
            exprs.append((~ok).alias(f"_bad_{c}"))
            exprs.append(pl.when(ok).then(pl.col(c)).str.json_decode(pl.List(pl.String)).alias(c))
        elif c in TIMESTAMP_COLUMNS:
            parsed = pl.col(c).str.to_datetime(TS_FORMAT, time_unit="us", time_zone="UTC", strict=False)
            exprs.append(parsed)
            if c in UNPARSED_DATE_COLUMNS:
                exprs.append((pl.col(c).is_not_null() & parsed.is_null()).alias(f"{_UNPARSED}{c}"))
        else:
            exprs.append(pl.col(c))
    created = pl.col("created_at")
    reason = (
        pl.when(pl.col("uuid").is_null())
        .then(pl.lit(REASON_UUID_MISSING))
        .when(pl.any_horizontal(*bad_list) if bad_list else pl.lit(False))
        .then(pl.lit(REASON_LIST_INVALID))
        .when(created.is_null())
        .then(pl.lit(REASON_CREATED_AT_INVALID))
        .when(created.dt.date() != pl.lit(day))
        .then(pl.lit(REASON_OUTSIDE_DAY))
        .otherwise(pl.lit(None, pl.String))
        .alias("reason")
    )
    # Polars reads a blank line as a record of nulls; like the csv module (`_salvage`), take it as
    # no record at all, or every trailing blank line would be a `uuid_missing` row in quarantine.
    return raw.filter(~pl.all_horizontal(pl.all().is_null())).select(exprs).with_columns(reason).drop(bad_list)


_SURROGATE = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of a byte that is not UTF-8


def _shown(fields: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(fields)
    return buf.getvalue().encode("utf-8", "surrogateescape").decode("utf-8", "replace")[:_RAW_MAX]


def _list_cell_ok(value: str) -> bool:
    if not value:
        return True
    try:
        items = json.loads(value)
    except ValueError:
        return False
    return isinstance(items, list) and all(isinstance(i, str) for i in items)


def _salvage(src: Path, header: tuple[str, ...], name: str, clean: Path, rejected: Path) -> int:
    """Re-read a chunk Polars could not read, record by record with the csv module: copy every good
    record to `clean` (a plain RFC 4180 CSV with `header`) and write each bad one to `rejected`
    (line, reason, uuid, raw). Streams, so memory stays bounded whatever the chunk's size.
    Returns the number of records rejected. Raises DsaIngestError naming the line where even the
    csv module cannot go on."""
    lists = [i for i, c in enumerate(header) if c in LIST_COLUMNS]
    n_bad = 0
    limit = csv.field_size_limit(_CSV_FIELD_LIMIT)  # a long free-text field is no error
    with (
        open(src, encoding="utf-8-sig", errors="surrogateescape", newline="") as f,
        open(clean, "w", encoding="utf-8", newline="") as good_out,
        open(rejected, "w", encoding="utf-8", newline="") as bad_out,
    ):
        reader = csv.reader(f)
        good, bad = csv.writer(good_out, lineterminator="\n"), csv.writer(bad_out, lineterminator="\n")
        bad.writerow(["line", "reason", "uuid", "raw"])
        start = 1
        try:
            for fields in reader:
                line, start = start, reader.line_num + 1
                if line == 1:
                    good.writerow(header)
                    continue
                if not fields:
                    continue  # a blank line holds no record
                if any(_SURROGATE.search(v) for v in fields):
                    reason = REASON_INVALID_UTF8
                elif len(fields) != len(header):
                    reason = REASON_FIELD_COUNT
                elif not all(_list_cell_ok(fields[i]) for i in lists):
                    reason = REASON_LIST_INVALID
                else:
                    good.writerow(fields)
                    continue
                uuid = fields[0] if fields[0] and not _SURROGATE.search(fields[0]) else ""
                bad.writerow([line, reason, uuid, _shown(fields)])
                n_bad += 1
        except csv.Error as exc:
            raise DsaIngestError(f"{name}: unreadable CSV at line {reader.line_num} ({exc})") from None
        finally:
            csv.field_size_limit(limit)
    return n_bad


def _rejected_rows(rejected: Path) -> pl.LazyFrame:
    """The records `_salvage` rejected, as quarantine rows: uuid, reason, line and raw; no typed columns."""
    bad = pl.scan_csv(rejected, schema={"line": pl.Int64, "reason": pl.String, "uuid": pl.String, "raw": pl.String},
                      has_header=True, empty_string_is_null=True)  # fmt: skip
    return bad.select(
        *[pl.col("uuid") if c == "uuid" else pl.lit(None, t).alias(c) for c, t in SOR_SCHEMA.items()],
        pl.col("reason"), pl.col("line"), pl.col("raw"),
    )  # fmt: skip


def _polars_error(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200]


def _parquet_rows(path: Path) -> int:
    return int(pl.scan_parquet(path).select(pl.len()).collect().item())


def _sink(frame: pl.LazyFrame, target: Path) -> int:
    """Write atomically (a dot-named temp beside the target, so `*.parquet` globs never see it)."""
    with replacing(target) as tmp:
        frame.sink_parquet(tmp)
    return _parquet_rows(target)


def _convert_chunk(src: io.BufferedIOBase, chunk: str, day: dt.date, output: Path, tmp: Path) -> dict:
    """Convert one chunk into the layout of `_chunk_files` under `output` (the part's staging area,
    see `_swap_in`); returns its counts."""
    raw_csv = tmp / "chunk.csv"
    typed_pq = tmp / "chunk.parquet"
    with _damaged_zip_is_one_line(chunk):
        has_backslash_quote = _copy_stream(src, raw_csv)
    header = _read_header(raw_csv, chunk)
    rewritten = False
    rejected = tmp / "chunk.rejected.csv"
    n_rejected = 0
    try:
        _typed(raw_csv, header, day).sink_parquet(typed_pq)
    except pl.exceptions.PolarsError as exc:
        source, error = raw_csv, _polars_error(exc)
        # Some chunks escape quotes as \" instead of "": only then, and only when the RFC reading
        # failed, rewrite them, so a field that legitimately ends in a backslash stays intact elsewhere.
        if has_backslash_quote:
            fixed = tmp / "chunk.fixed.csv"
            _rewrite_backslash_quotes(raw_csv, fixed)
            source, rewritten = fixed, True
            try:
                _typed(fixed, header, day).sink_parquet(typed_pq)
                error = None
            except pl.exceptions.PolarsError as exc2:
                error = _polars_error(exc2)
        if error is not None:
            # A bad record (bytes that are not UTF-8, a field too many or too few) fails the whole
            # read: find them record by record, quarantine them with their line, convert the rest.
            clean = tmp / "chunk.clean.csv"
            n_rejected = _salvage(source, header, chunk, clean, rejected)
            try:
                _typed(clean, header, day).sink_parquet(typed_pq)
            except pl.exceptions.PolarsError as exc3:
                raise DsaIngestError(
                    f"{chunk}: unreadable CSV ({error}; and after setting aside {n_rejected} bad records: "
                    f"{_polars_error(exc3)})"
                ) from None
            clean.unlink()
        if source != raw_csv:
            source.unlink()
    raw_csv.unlink()

    flagged = pl.scan_parquet(typed_pq)
    flags = [c for c in flagged.collect_schema().names() if c.startswith(_UNPARSED)]
    # Statements and rejected rows are deduplicated apart: a rejected copy of a uuid read first must
    # not drop its valid copy (across chunks, where sor_daily deduplicates, it does not either).
    with_key = flagged.filter(pl.col("uuid").is_not_null())
    flagged_keyed = pl.concat([
        with_key.filter(pl.col("reason").is_null()).unique(subset="uuid", keep="first", maintain_order=True),
        with_key.filter(pl.col("reason").is_not_null()).unique(subset="uuid", keep="first", maintain_order=True),
    ])  # fmt: skip
    statements = flagged_keyed.filter(pl.col("reason").is_null())
    unparsed = statements.select(pl.col(flags).sum()).collect().row(0, named=True) if flags else {}
    rows, keyed = flagged.drop(flags), flagged_keyed.drop(flags)
    ds_dir = f"ds={day.isoformat()}"
    written = _sink(statements.drop("reason", *flags), output / "sor" / ds_dir / f"{chunk}.parquet")
    no_line = [pl.lit(None, t).alias(c) for c, t in QUARANTINE_EXTRA.items()]
    parts = [rows.filter(pl.col("uuid").is_null()), keyed.filter(pl.col("reason").is_not_null())]
    quarantine = pl.concat([q.with_columns(no_line) for q in parts] + ([_rejected_rows(rejected)] if n_rejected else []))
    reasons = {r: int(n) for r, n in quarantine.group_by("reason").len().collect().iter_rows()}
    if reasons:
        _sink(quarantine, output / "sor_quarantine" / ds_dir / f"{chunk}.parquet")
    read = _parquet_rows(typed_pq) + n_rejected
    typed_pq.unlink()
    rejected.unlink(missing_ok=True)
    kept = written + sum(reasons.values())
    counts = {
        "chunks": 1,
        "rows_read": read,
        "rows_written": written,
        "duplicates_dropped": read - kept,
        "quarantined": reasons,
        "backslash_quote_chunks": int(rewritten),
        "unparsed_dates": {c.removeprefix(_UNPARSED): int(n) for c, n in sorted(unparsed.items()) if n},
    }
    # Beside the chunk's rows and named like them, so the day's figures (`dsa daily`) count what
    # was read and dropped here, and re-ingesting the chunk replaces its counts with its rows.
    write_text(chunk_counts_path(output, day, chunk), json.dumps(counts, sort_keys=True))
    return counts


def _day_state(output: Path, day: dt.date) -> Path:
    # Outside the sor partitions, whose readers take every file of a partition directory.
    return Path(output) / "_dsa_ingest" / f"ds={day.isoformat()}"


def chunk_counts_path(output: Path, day: dt.date, chunk: str) -> Path:
    return _day_state(output, day) / f"{chunk}.json"


def chunk_counts(output: Path, day: dt.date) -> list[dict]:
    """The recorded counts of every chunk ingested for `day`."""
    return [json.loads(f.read_text()) for f in sorted(_day_state(output, day).glob("*.json"))]


def ingesting_markers(output: Path, day: dt.date) -> list[Path]:
    """The markers of dump files of `day` whose ingest started and has not finished."""
    return sorted(_day_state(output, day).glob("ingesting.*"))


def _empty_counts() -> dict:
    return {
        "chunks": 0, "rows_read": 0, "rows_written": 0, "duplicates_dropped": 0,
        "quarantined": {}, "backslash_quote_chunks": 0, "unparsed_dates": {},
    }  # fmt: skip


def _merge(total: dict, part: dict) -> None:
    for k in ("chunks", "rows_read", "rows_written", "duplicates_dropped", "backslash_quote_chunks"):
        total[k] += part[k]
    for k in ("quarantined", "unparsed_dates"):
        c = Counter(total[k])
        c.update(part[k])
        total[k] = dict(sorted(c.items()))


@dataclass(frozen=True)
class _Part:
    name: str  # marker name: the part's (or lone chunk's) stem
    open_chunks: Callable[[Path], Iterator[tuple[str, io.BufferedIOBase]]]
    # What the part was made from (size and checksum): a download replaced by a complete or corrected
    # one carries another, and is converted again instead of skipped as done.
    source: Callable[[], str]


def _file_identity(path: Path) -> Callable[[], str]:
    return lambda: f"size={path.stat().st_size} sha1={_sha1_of(path)}"


def _member_identity(info: zipfile.ZipInfo) -> str:
    return f"size={info.file_size} crc32={info.CRC:08x}"


# What reading a damaged zip member raises: a checksum or length mismatch, a broken deflate stream,
# an unsupported compression or an encrypted member.
_ZIP_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)


@contextmanager
def _damaged_zip_is_one_line(name: str) -> Iterator[None]:
    try:
        yield
    except _ZIP_READ_ERRORS as exc:
        raise DsaIngestError(f"{name}: damaged zip ({exc}); download it again") from None


def _chunk_stem(member: str) -> str:
    return Path(member).name.removesuffix(".csv")


def _chunks_of_part_zip(part_zip: Path, name: str) -> Iterator[tuple[str, io.BufferedIOBase]]:
    try:
        zf = zipfile.ZipFile(part_zip)
    except zipfile.BadZipFile:
        raise DsaIngestError(f"{name}: not a valid zip file") from None
    with zf:
        members = sorted(i.filename for i in zf.infolist() if i.filename.endswith(".csv") and not i.is_dir())
        if not members:
            raise DsaIngestError(f"{name}: holds no CSV chunk")
        for m in members:
            with _damaged_zip_is_one_line(f"{name}: {m}"), zf.open(m) as src:
                yield _chunk_stem(m), src


def _parts(path: Path, kind: str) -> Iterator[_Part]:
    if kind == "chunk":

        def open_csv(_tmp: Path) -> Iterator[tuple[str, io.BufferedIOBase]]:
            with open(path, "rb") as src:
                yield _chunk_stem(path.name), src

        yield _Part(path.name.removesuffix(".csv"), open_csv, _file_identity(path))
    elif kind == "part":
        yield _Part(
            path.name.removesuffix(".csv.zip"), lambda _tmp: _chunks_of_part_zip(path, path.name), _file_identity(path)
        )
    else:
        try:
            outer = zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise DsaIngestError(f"{path.name}: not a valid zip file") from None
        with outer:
            infos = sorted((i for i in outer.infolist() if i.filename.endswith(".csv.zip")), key=lambda i: i.filename)
            if not infos:
                raise DsaIngestError(f"{path.name}: holds no sor-...-NNNNN.csv.zip part")
            for info in infos:
                member = info.filename

                def open_part(tmp: Path, member: str = member) -> Iterator[tuple[str, io.BufferedIOBase]]:
                    local = tmp / "part.csv.zip"
                    with _damaged_zip_is_one_line(f"{path.name}: {member}"), outer.open(member) as src:
                        _copy_stream(src, local)
                    try:
                        yield from _chunks_of_part_zip(local, Path(member).name)
                    finally:
                        local.unlink(missing_ok=True)

                yield _Part(Path(member).name.removesuffix(".csv.zip"), open_part, lambda info=info: _member_identity(info))


@contextmanager
def _scratch(output: Path) -> Iterator[Path]:
    root = output / "_dsa_ingest"
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="tmp-", dir=root))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ingest(dumps: list[Path], output: Path, *, progress: Callable[[str], None] | None = None) -> IngestSummary:
    """Convert DSA dump files (day zips, part zips or chunk CSVs) to typed Parquet under `output`.

    Resumable: a part whose `.done` marker names the same source is skipped, its recorded counts
    still summed. While a file is being converted its day holds an `_ingesting.<file>` marker, so that
    a day left half-converted by a failure is refused by `dsa daily` until a rerun completes it.
    Raises DsaIngestError with a one-line message on a missing, misnamed, corrupt or unreadable dump.
    """
    say = progress or (lambda _msg: None)
    output = Path(output)
    named = []
    for raw in dumps:
        path = Path(raw)
        if not path.is_file():
            raise DsaIngestError(f"{path}: no such file")
        named.append((path, *parse_dump_name(path)))
    summary = IngestSummary()
    with _scratch(output) as tmp:
        for path, dump, kind in named:
            summary.dumps.append(path.name)
            if dump.day.isoformat() not in summary.days:
                summary.days.append(dump.day.isoformat())
            in_progress = _day_state(output, dump.day) / f"ingesting.{path.name}"
            write_text(in_progress, "")
            _ingest_file(path, dump, kind, output, tmp, summary, say)
            in_progress.unlink()
    summary.days.sort()
    return summary


def _ingest_file(path: Path, dump: _DumpName, kind: str, output: Path, tmp: Path, summary: IngestSummary,
                 say: Callable[[str], None]) -> None:  # fmt: skip
    markers = output / "_dsa_ingest" / dump.stem
    markers.mkdir(parents=True, exist_ok=True)
    if kind == "day" and verify_sha1(path):
        summary.sha1_verified.append(path.name)
        say(f"{path.name}: sha1 verified")
    for part in _parts(path, kind):
        marker = markers / f"{part.name}.done"
        source = part.source()
        done = json.loads(marker.read_text()) if marker.exists() else None
        if done is not None and done.get("source") == source:
            summary.parts_skipped += 1
            summary.add_part(done)
            say(f"{part.name}: already converted, skipped")
            continue
        if done is not None:
            say(f"{part.name}: its source changed since it was converted; converting it again")
        # Converted aside and swapped in only once every chunk converted: a replacement download
        # that fails (or a kill) leaves the part's earlier conversion, and its marker, as they were.
        stage = tmp / "stage"
        shutil.rmtree(stage, ignore_errors=True)
        counts = _empty_counts()
        chunks = []
        for chunk, src in part.open_chunks(tmp):
            c = _convert_chunk(src, chunk, dump.day, stage, tmp)
            chunks.append(chunk)
            _merge(counts, c)
            say(f"{chunk}: {c['rows_read']} rows, {c['rows_written']} written")
        _swap_in(stage, output, dump.day, part.name, kind, markers, chunks)
        write_text(marker, json.dumps({**counts, "source": source}, sort_keys=True))
        summary.parts_converted += 1
        summary.add_part(counts)


def _chunk_files(day: dt.date, chunk: str) -> list[str]:
    """What converting a chunk writes, relative to the output (`_convert_chunk`)."""
    ds_dir = f"ds={day.isoformat()}"
    return [f"sor/{ds_dir}/{chunk}.parquet", f"sor_quarantine/{ds_dir}/{chunk}.parquet", f"_dsa_ingest/{ds_dir}/{chunk}.json"]


def _swap_in(stage: Path, output: Path, day: dt.date, part: str, kind: str, markers: Path, chunks: list[str]) -> None:
    """Replace what an earlier conversion of a part wrote with the new conversion under `stage`.

    The `.done` markers that name the part go first: a kill during the renames leaves the part
    unmarked (and its day's `ingesting.*` marker in place), so it is converted again rather than
    skipped with half its files old. A chunk the new source lacks does not stay. A lone chunk CSV
    and its part (from a zip) write the same chunk files, so converting one invalidates the other's
    marker, which would otherwise skip it as converted while the day holds the other's rows.
    """
    (markers / f"{part}.done").unlink(missing_ok=True)
    if kind == "chunk":
        (markers / f"{part.rsplit('-', 1)[0]}.done").unlink(missing_ok=True)
    else:
        for stale in markers.glob(f"{part}-?????.done"):
            stale.unlink()
        new = {rel for chunk in chunks for rel in _chunk_files(day, chunk)}
        for stale in _chunk_files(day, f"{part}-?????"):
            for path in output.glob(stale):
                if str(path.relative_to(output)) not in new:
                    path.unlink()
    for chunk in chunks:
        for rel in _chunk_files(day, chunk):
            staged, target = stage / rel, output / rel
            if staged.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, target)
            else:  # no quarantined rows this time
                target.unlink(missing_ok=True)
