"""Entry points of the DSA Transparency Database source (`riskinsight dsa ...`), Polars engine.

Layout under <output> (besides what jobs.dsa_ingest writes):
  sor_daily/ds=D/part-00000.parquet    transforms.sor_daily
  sor_trends/ds=D/part-00000.parquet   transforms.trends.trend_table over sor_daily of D-28..D
  _dsa_runs/ds=D/manifest.json         rows read from the day's CSVs = statements + duplicated uuids
                                       dropped + rows quarantined
  reports/dsa/D.html                   reports.dsa_report
  reports/dsa/index.html               every day with its figures (rewritten by each `dsa daily`)

The first four are one publication of D (jobs.warehouse.publish, as the main job's tables): each is
a link through `_dsa_versions/ds=D/current/`, written aside under `_dsa_candidates/ds=D/` and made
visible by one flip of `current`, under the day's lock (`_locks/ds=D.lock`).

Every expected failure raises DsaError (a RiskInsightError with an exit code and a one-line message).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import secrets
import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import narwhals.stable.v2 as nw
import polars as pl

from jobs import warehouse as wh
from jobs.dsa_ingest import DsaError, DsaUsageError, IngestSummary, chunk_counts, ingest, ingesting_markers
from jobs.report import previous_page
from jobs.warehouse import replacing, write_text
from reports.dsa_report import DsaDayData, DsaIndexEntry, render_dsa_day, render_dsa_index
from transforms.dsa_transparency import dsa_transparency
from transforms.params import TrendParams
from transforms.sor_daily import ALL, KEYS, sor_daily, sor_duplicates
from transforms.trends import trend_table

US_COLUMNS = ("content_date", "application_date", "created_at")
PART = "part-00000.parquet"
TABLES = ("sor_daily", "sor_trends")
VERSIONS = "_dsa_versions"  # not the main job's `_versions`: the two may share an output

__all__ = [
    "DsaError",
    "DsaUsageError",
    "DailyResult",
    "cmd_ingest",
    "cmd_daily",
    "cmd_transparency",
    "export_transparency",
    "read_sor",
]


def _date(value: dt.date | str, what: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise DsaUsageError(f"invalid {what} {value!r}: expected YYYY-MM-DD") from None


def _partition(output: Path, table: str, day: dt.date) -> Path:
    return Path(output) / table / f"ds={day.isoformat()}"


def _files(output: Path, table: str, day: dt.date) -> list[Path]:
    return sorted(_partition(output, table, day).glob("*.parquet"))


def read_sor(output: Path, days: Sequence[dt.date]) -> nw.LazyFrame:
    """The ingested statements of `days` with `<ts>_us` epoch microseconds (the transforms' durations).

    Raises DsaError when none of the days was ingested.
    """
    for d in days:
        if unfinished := ingesting_markers(output, d):
            names = ", ".join(m.name.removeprefix("ingesting.") for m in unfinished)
            raise DsaError(
                f"the ingest of {d} did not finish ({names}); rerun `riskinsight dsa ingest` with it to complete the day"
            )
    files = [f for d in days for f in _files(output, "sor", d)]
    if not files:
        span = days[0].isoformat() if len(days) == 1 else f"{min(days)}..{max(days)}"
        raise DsaError(f"no ingested DSA statements for {span} under {Path(output) / 'sor'}; run `riskinsight dsa ingest` first")
    lf = pl.scan_parquet(files, hive_partitioning=False)
    return nw.from_native(lf.with_columns(pl.col(c).dt.epoch("us").alias(f"{c}_us") for c in US_COLUMNS))


def _write(frame: pl.DataFrame, target: Path) -> None:
    with replacing(target) as tmp:
        frame.write_parquet(tmp)


def _dropped_at_ingest(output: Path, day: dt.date) -> int:
    """Duplicated uuids the ingest dropped within the day's chunks (recorded beside each chunk)."""
    return sum(c["duplicates_dropped"] for c in chunk_counts(output, day))


def _unparsed_dates(output: Path, day: dt.date) -> dict[str, int]:
    """Statements of the day kept with a date (other than created_at) that did not parse, per column."""
    total: Counter[str] = Counter()
    for c in chunk_counts(output, day):
        total.update(c.get("unparsed_dates", {}))  # absent from the counts of older ingests
    return dict(sorted(total.items()))


def _quarantined(output: Path, day: dt.date) -> dict[str, int]:
    files = _files(output, "sor_quarantine", day)
    if not files:
        return {}
    counts = pl.scan_parquet(files, hive_partitioning=False).group_by("reason").len().collect()
    return {r: int(n) for r, n in sorted(counts.iter_rows())}


def _history(output: Path, ds: dt.date, days: int, daily: pl.DataFrame) -> pl.DataFrame:
    """sor_daily of the observed days of ds-days..ds-1 (a day is observed when its partition exists)
    and `daily`, ds's own, not yet published."""
    frames = []
    for i in range(days, 0, -1):
        day = ds - dt.timedelta(days=i)
        files = _files(output, "sor_daily", day)
        if files:
            frames.append(pl.read_parquet(files, hive_partitioning=False).with_columns(pl.lit(day).alias("ds")))
    frames.append(daily.with_columns(pl.lit(ds).alias("ds")))
    return pl.concat(frames, how="vertical")


@dataclass(frozen=True)
class DailyResult:
    ds: str
    statements: int
    rows_read: int
    duplicate_uuids: int
    quarantined: dict[str, int]
    unparsed_dates: dict[str, int]  # statements kept with that date null (left out of the delays)
    sor_daily_rows: int
    trend_rows: int
    anomalies: int
    report: str


def cmd_daily(output: Path | str, ds: dt.date | str, *, run_ts: str | None = None,
              params: TrendParams | None = None, report: bool = True, lock_wait: float = 0.0) -> DailyResult:  # fmt: skip
    """Build sor_daily and sor_trends of `ds` from the ingested statements and (unless `report` is
    False, e.g. in a backfill) its report page, and publish them with the day's manifest as one.

    Under the day's lock (waiting up to `lock_wait` seconds, else LockHeld): two runs of a day
    publishing at once could each remove the version the other was writing."""
    output = Path(output)
    day = _date(ds, "--ds")
    params = params or TrendParams()
    with wh.ds_lock(output, day, wait_s=lock_wait):
        result = _publish_day(output, day, run_ts, params, report)
    write_dsa_index(output)
    return result


def _publish_day(output: Path, day: dt.date, run_ts: str | None, params: TrendParams, report: bool) -> DailyResult:
    sor = read_sor(output, [day])
    dups = sor_duplicates(sor).collect().to_native().row(0, named=True)
    daily = sor_daily(sor).collect().to_native()
    history = _history(output, day, params.history_days, daily)
    trends = trend_table(nw.from_native(history.lazy()), day, KEYS, "statements", params).collect().to_native()
    trends = trends.sort(KEYS)

    quarantined = _quarantined(output, day)
    unparsed = _unparsed_dates(output, day)
    total = daily.filter((pl.col("platform_name") == ALL) & (pl.col("category") == ALL))
    # Every row of the day's CSVs is a statement, a duplicate (dropped within a chunk at ingest, or
    # across chunks here) or quarantined.
    dropped_at_ingest = _dropped_at_ingest(output, day)
    duplicates = dropped_at_ingest + int(dups["duplicate_uuids"])
    rows_read = int(dups["rows"]) + dropped_at_ingest + sum(quarantined.values())
    report_path = dsa_report_path(output, day)
    result = DailyResult(
        ds=day.isoformat(),
        statements=int(total["statements"][0]),
        rows_read=rows_read,
        duplicate_uuids=duplicates,
        quarantined=quarantined,
        unparsed_dates=unparsed,
        sor_daily_rows=daily.height,
        trend_rows=trends.height,
        anomalies=int(trends["is_anomaly"].sum()),
        report=str(report_path) if report else "",
    )

    candidate = output / "_dsa_candidates" / f"ds={day.isoformat()}"
    shutil.rmtree(candidate, ignore_errors=True)  # a killed run's, never published
    for table, frame in zip(TABLES, (daily, trends), strict=True):
        _write(frame, candidate / table / PART)
    files = {_manifest_path(day): candidate / "manifest.json"}
    write_text(files[_manifest_path(day)], json.dumps({**asdict(result), "params": asdict(params)}, indent=2, sort_keys=True) + "\n")
    if report:
        files[report_path.relative_to(output).as_posix()] = candidate / "page.html"
        _write_report(candidate / "page.html", daily, history, trends, day, duplicates, quarantined, unparsed,
                      run_ts, params, previous_page(dsa_reports_dir(output), day))  # fmt: skip
    _adopt_unversioned(output, day)
    version = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
    wh.publish(output, day, version, {t: candidate / t for t in TABLES}, {}, files=files, root=VERSIONS)
    # Without a page this time, the page link of the publication before now leads nowhere.
    if not report and report_path.is_symlink() and not report_path.exists():
        report_path.unlink()
    shutil.rmtree(candidate, ignore_errors=True)
    return result


def _manifest_path(day: dt.date) -> str:
    return f"_dsa_runs/ds={day.isoformat()}/manifest.json"


def dsa_reports_dir(output: Path | str) -> Path:
    return Path(output) / "reports" / "dsa"


def dsa_report_path(output: Path | str, day: dt.date) -> Path:
    return dsa_reports_dir(output) / f"{day.isoformat()}.html"


def write_dsa_index(output: Path | str) -> Path:
    """Rewrite `reports/dsa/index.html`: every day with a published sor_daily, its figures from the
    day's manifest. Under a lock of its own, as runs of different days (different day locks) all
    rewrite it: unlocked, the one that listed first and wrote last dropped the other's day."""
    output = Path(output)
    with wh.file_lock(output / "_locks" / "dsa_index.lock"):
        entries = []
        for day in wh.published_days(output, "sor_daily"):
            manifest = wh.read_json(output / _manifest_path(day)) or {}
            page = dsa_report_path(output, day)
            entries.append(DsaIndexEntry(
                ds=day,
                href=page.name if page.exists() else None,
                statements=manifest.get("statements"),
                quarantined=sum(manifest["quarantined"].values()) if "quarantined" in manifest else None,
                anomalies=manifest.get("anomalies"),
            ))  # fmt: skip
        path = dsa_reports_dir(output) / "index.html"
        write_text(path, render_dsa_index(entries))
    return path


def _adopt_unversioned(output: Path, day: dt.date) -> None:
    """Remove the day's table directories written before the DSA tables were versioned, which
    publish would not replace (it never overwrites a real directory). They are derived from `sor`
    and replaced by the publication that follows; a kill between leaves the day without them until
    `dsa daily` runs again. (The manifest and page of that time are plain files, replaced by the
    flip's links as they are.)"""
    for table in TABLES:
        part = _partition(output, table, day)
        if part.is_dir() and not part.is_symlink():
            shutil.rmtree(part)


def _write_report(path: Path, daily: pl.DataFrame, history: pl.DataFrame, trends: pl.DataFrame, day: dt.date,
                  duplicates: int, quarantined: dict[str, int], unparsed_dates: dict[str, int], run_ts: str | None,
                  params: TrendParams, previous: str | None) -> None:  # fmt: skip
    page = render_dsa_day(
        DsaDayData(
            ds=day,
            sor_daily=daily,
            history=history.filter((pl.col("platform_name") == ALL) | (pl.col("category") == ALL)),
            trends=trends,
            duplicate_uuids=duplicates,
            quarantined=quarantined,
            unparsed_dates=unparsed_dates,
            baseline_days=params.window_days,
            min_baseline_days=params.min_baseline_days,
            previous_page=previous,
        ),
        run_ts=run_ts,
    )
    write_text(path, page)


def _span(start: dt.date | str, end: dt.date | str) -> list[dt.date]:
    """Every day of start..end, inclusive."""
    first, last = _date(start, "--start"), _date(end, "--end")
    if last < first:
        raise DsaUsageError(f"--end {last} is before --start {first}")
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def export_transparency(output: Path | str, start: dt.date | str, end: dt.date | str, path: Path | str,
                        *, platforms: Sequence[str] | None = None) -> Path:  # fmt: skip
    """Write the transparency table of start..end (inclusive, ingested days only) as CSV to `path`."""
    days = _span(start, end)
    table = dsa_transparency(read_sor(Path(output), days), platforms=platforms).collect().to_native()
    target = Path(path)
    if target.is_dir():
        raise DsaUsageError(f"--csv {target} is a directory; give the CSV file's path")
    with replacing(target) as tmp:
        table.write_csv(tmp)
    return target


def cmd_transparency(output: Path | str, start: dt.date | str, end: dt.date | str, csv_path: Path | str,
                     platforms: Sequence[str] | None = None) -> Path:  # fmt: skip
    """export_transparency, saying on stderr which days of the span had nothing ingested (the table
    covers the others only, and nothing in the CSV shows it)."""
    path = export_transparency(output, start, end, csv_path, platforms=platforms)
    days = _span(start, end)
    if missing := [d.isoformat() for d in days if not _files(Path(output), "sor", d)]:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        print(f"note: {len(missing)} of the {len(days)} days have no ingested statements and are not in the table: {shown}",
              file=sys.stderr)  # fmt: skip
    if platforms:
        # Names match exactly: a misspelt one (or one of another case) only adds zeros to the table.
        found = set(read_sor(Path(output), days).select("platform_name").unique().collect().to_native()["platform_name"])
        if absent := sorted(set(platforms) - found):
            print(f"note: no statements in the span from --platform {', '.join(map(repr, absent))} "
                  "(names must match the dump's platform_name exactly)", file=sys.stderr)  # fmt: skip
    unparsed: Counter[str] = Counter()
    for d in days:
        unparsed.update({c: n for c, n in _unparsed_dates(Path(output), d).items() if c in ("content_date", "application_date")})
    if unparsed:
        shown = ", ".join(f"{c} {n}" for c, n in sorted(unparsed.items()))
        print(f"note: statements of the span (all platforms) with an unreadable date, kept with it empty and left out "
              f"of the time-to-action figures: {shown}", file=sys.stderr)  # fmt: skip
    return path


def cmd_ingest(args: argparse.Namespace) -> IngestSummary:
    """`riskinsight dsa ingest --dump PATH... --output DIR [--quiet]`; progress lines go to stderr."""
    dumps = [Path(p) for p in (getattr(args, "dump", None) or [])]
    if not dumps:
        raise DsaUsageError("dsa ingest needs at least one --dump PATH")
    if not getattr(args, "output", None):
        raise DsaUsageError("dsa ingest needs --output DIR")
    quiet = bool(getattr(args, "quiet", False))
    return ingest(dumps, Path(args.output), progress=None if quiet else (lambda m: print(m, file=sys.stderr)))
