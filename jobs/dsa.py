"""Entry points of the DSA Transparency Database source (`riskinsight dsa ...`), Polars engine.

Layout under <output> (besides what jobs.dsa_ingest writes):
  sor_daily/ds=D/part-00000.parquet    transforms.sor_daily
  sor_trends/ds=D/part-00000.parquet   transforms.trends.trend_table over sor_daily of D-28..D
  _dsa_runs/ds=D/manifest.json         rows read from the day's CSVs = statements + duplicated uuids
                                       dropped + rows quarantined
  reports/dsa/D.html                   reports.dsa_report

Every expected failure raises DsaError (a RiskInsightError with an exit code and a one-line message).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import narwhals.stable.v2 as nw
import polars as pl

from jobs.dsa_ingest import DsaError, DsaUsageError, IngestSummary, chunk_counts, ingest, ingesting_markers
from jobs.warehouse import replacing, write_text
from reports.dsa_report import DsaDayData, render_dsa_day
from transforms.dsa_transparency import dsa_transparency
from transforms.params import TrendParams
from transforms.sor_daily import ALL, KEYS, sor_daily, sor_duplicates
from transforms.trends import trend_table

US_COLUMNS = ("content_date", "application_date", "created_at")
PART = "part-00000.parquet"

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


def _history(output: Path, ds: dt.date, days: int) -> pl.DataFrame:
    """sor_daily of the observed days of ds-days..ds (a day is observed when its partition exists)."""
    frames = []
    for i in range(days, -1, -1):
        day = ds - dt.timedelta(days=i)
        files = _files(output, "sor_daily", day)
        if files:
            frames.append(pl.read_parquet(files, hive_partitioning=False).with_columns(pl.lit(day).alias("ds")))
    return pl.concat(frames, how="vertical") if frames else pl.DataFrame()


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
              params: TrendParams | None = None, report: bool = True) -> DailyResult:  # fmt: skip
    """Build sor_daily and sor_trends of `ds` from the ingested statements, then (unless `report` is
    False, e.g. in a backfill) its report page."""
    output = Path(output)
    day = _date(ds, "--ds")
    params = params or TrendParams()
    sor = read_sor(output, [day])
    dups = sor_duplicates(sor).collect().to_native().row(0, named=True)
    daily = sor_daily(sor).collect().to_native()
    _write(daily, _partition(output, "sor_daily", day) / PART)

    history = _history(output, day, params.history_days)
    trends = trend_table(nw.from_native(history.lazy()), day, KEYS, "statements", params).collect().to_native()
    trends = trends.sort(KEYS)
    _write(trends, _partition(output, "sor_trends", day) / PART)

    quarantined = _quarantined(output, day)
    unparsed = _unparsed_dates(output, day)
    total = daily.filter((pl.col("platform_name") == ALL) & (pl.col("category") == ALL))
    statements = int(total["statements"][0])
    # Every row of the day's CSVs is a statement, a duplicate (dropped within a chunk at ingest, or
    # across chunks here) or quarantined.
    dropped_at_ingest = _dropped_at_ingest(output, day)
    duplicates = dropped_at_ingest + int(dups["duplicate_uuids"])
    rows_read = int(dups["rows"]) + dropped_at_ingest + sum(quarantined.values())
    report_path = output / "reports" / "dsa" / f"{day.isoformat()}.html"
    if report:
        _write_report(report_path, daily, history, trends, day, duplicates, quarantined, unparsed, run_ts,
                      params.window_days)  # fmt: skip
    else:
        # A page from an earlier run would describe the tables just replaced.
        report_path.unlink(missing_ok=True)

    result = DailyResult(
        ds=day.isoformat(),
        statements=statements,
        rows_read=rows_read,
        duplicate_uuids=duplicates,
        quarantined=quarantined,
        unparsed_dates=unparsed,
        sor_daily_rows=daily.height,
        trend_rows=trends.height,
        anomalies=int(trends["is_anomaly"].sum()),
        report=str(report_path) if report else "",
    )
    manifest = output / "_dsa_runs" / f"ds={day.isoformat()}" / "manifest.json"
    write_text(manifest, json.dumps({**asdict(result), "params": asdict(params)}, indent=2, sort_keys=True) + "\n")
    return result


def _write_report(path: Path, daily: pl.DataFrame, history: pl.DataFrame, trends: pl.DataFrame, day: dt.date,
                  duplicates: int, quarantined: dict[str, int], unparsed_dates: dict[str, int], run_ts: str | None,
                  baseline_days: int) -> None:  # fmt: skip
    page = render_dsa_day(
        DsaDayData(
            ds=day,
            sor_daily=daily,
            history=history.filter((pl.col("platform_name") == ALL) | (pl.col("category") == ALL)),
            trends=trends,
            duplicate_uuids=duplicates,
            quarantined=quarantined,
            unparsed_dates=unparsed_dates,
            baseline_days=baseline_days,
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
