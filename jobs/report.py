"""The report's I/O edge: load a day's published tables and run metadata, write the HTML.

Only published partitions (`<output>/<table>/ds=D/`) are read: a candidate that failed the
gate never shows up in a report. Rendering itself is pure (`reports.render`); this module
decides the run timestamp and the pseudonym key, and writes files atomically.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

import narwhals.stable.v2 as nw
import polars as pl

from jobs import lineage
from jobs.engines.polars_engine import key_ranges
from jobs.errors import InputMissing, LockHeld
from jobs.manifest import OFFENDER_CATEGORIES
from jobs.warehouse import (
    ds_lock,
    file_lock,
    missing_dir,
    partition_dir,
    published_days,
    published_run_file,
    read_json,
    remove_temporaries,
    runs_dir,
    write_text,
)
from reports.model import IndexEntry, ReportData
from reports.pseudonym import DEMO_KEY
from reports.render import dq_verdict
from reports.render import render_day as _render_day_html
from reports.render import render_index as _render_index_html
from transforms.repeat_offenders import (
    DS,
    OFFENDER_CATEGORIES_SCHEMA,
    add_offender_categories,
    offender_categories,
    window_pairs,
)
from transforms.params import OffenderParams, Params, TrendParams, from_recorded, recorded_params
from transforms.schemas import ALL, OUTPUT_SCHEMAS

KEY_ENV = "RISKINSIGHT_PSEUDONYM_KEY"
REPORTS_DIR = "reports"
TREND_WINDOW_DAYS = 28  # violation_daily ds-28 .. ds (DESIGN §7: 28-day trend)
_OFFENDERS_PER_PART = 500_000  # offenders whose 30 days of categories are counted in one query
REPORT_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})\.html$")
INDEX_TABLES = ("violation_daily", "queue_daily")  # all the index reads of a day's tables (_index_entry)
INDEX_LOCK = ("_locks", "index.lock")  # held while the index is listed, read and rewritten

_NW_TO_PL: dict[Any, pl.DataType] = {
    nw.String: pl.String(),
    nw.Float64: pl.Float64(),
    nw.Int64: pl.Int64(),
    nw.Boolean: pl.Boolean(),
    nw.Date: pl.Date(),
}


def _pl_dtype(dtype: Any) -> pl.DataType:
    if isinstance(dtype, nw.Datetime):
        return pl.Datetime("us", "UTC")
    for nw_type, pl_type in _NW_TO_PL.items():
        if dtype == nw_type:
            return pl_type
    raise TypeError(f"no polars type for {dtype!r}")


def table_schema(table: str) -> dict[str, pl.DataType]:
    """An output table's contract (transforms.schemas.OUTPUT_SCHEMAS) as Polars types."""
    return {name: _pl_dtype(t) for name, t in OUTPUT_SCHEMAS[table].items()}


def _read_day(output_dir: Path, table: str, ds: dt.date) -> pl.DataFrame | None:
    """One published partition in the contract's schema, or None when ds is not published."""
    part = partition_dir(output_dir, table, ds)
    if not part.is_dir():
        return None
    schema = table_schema(table)
    files = sorted(part.glob("*.parquet"))
    if not files:
        return pl.DataFrame(schema=schema)
    df = pl.read_parquet(files)
    # Casting at the edge keeps the renderer independent of how a writer typed an empty or all-null column.
    return df.select([pl.col(c).cast(t) if c in df.columns else pl.lit(None, dtype=t).alias(c)
                      for c, t in schema.items()])


def _read_days(output_dir: Path, table: str, days: list[dt.date]) -> pl.DataFrame:
    """Published partitions of `days`, with a `ds` column; unpublished days have no rows."""
    frames = []
    for day in sorted(set(days)):
        df = _read_day(output_dir, table, day)
        if df is not None:
            frames.append(df.with_columns(pl.lit(day, dtype=pl.Date).alias("ds")))
    if not frames:
        return pl.DataFrame(schema={**table_schema(table), "ds": pl.Date()})
    return pl.concat(frames, how="vertical")


def _offender_categories(
    output_dir: Path, ds: dt.date, offenders: pl.DataFrame, manifest: dict[str, Any] | None, params: OffenderParams
) -> pl.DataFrame | None:
    """Per category, how many of today's repeat offenders broke it and their violations of it (30 days).

    The run computes this with repeat_offenders and keeps it in its manifest. A day published before
    it did is counted here from the per-(creator, category) daily intermediate, never from decisions.
    """
    if isinstance(manifest, dict) and isinstance(manifest.get(OFFENDER_CATEGORIES), list):
        schema = {name: _pl_dtype(t) for name, t in OFFENDER_CATEGORIES_SCHEMA.items()}
        return pl.DataFrame(manifest[OFFENDER_CATEGORIES], schema=schema)
    if offenders.height == 0:
        return None
    return _count_offender_categories(output_dir, ds, offenders, params.window_days)


def _count_offender_categories(output_dir: Path, ds: dt.date, offenders: pl.DataFrame, window_days: int) -> pl.DataFrame | None:
    """offender_categories of the published window, a range of offenders at a time, so each scan of a
    day (written sorted by creator) reads only that range's row groups; the counts add up because the
    ranges share no creator. At 10 M decisions a day the window holds 94 M rows and 5 M offenders:
    read whole, this took 42 s and 17 GiB."""
    first = ds - dt.timedelta(days=window_days - 1)
    # One scan per file with its own casts, so a day written with another physical type still reads.
    scans = [
        pl.scan_parquet(f).select(
            pl.col("creator_id").cast(pl.String), pl.col("policy_category").cast(pl.String),
            pl.col("violations").cast(pl.Int64), pl.col("last_violation_at"), pl.lit(day).alias(DS),
        )
        for day in (first + dt.timedelta(days=i) for i in range(window_days))
        for f in sorted(partition_dir(output_dir, "creator_category_daily", day).glob("*.parquet"))
    ]
    if not scans:
        return None
    ccd = pl.concat(scans, how="vertical")
    ids = offenders.select(pl.col("creator_id").cast(pl.String)).unique()
    parts = -(-ids.height // _OFFENDERS_PER_PART)
    per_range = [
        offender_categories(
            window_pairs(nw.from_native(ccd.filter(in_range).join(ids.filter(in_range).lazy(), on="creator_id", how="semi")), first, ds)
        ).to_native().collect(engine="streaming")
        for in_range in key_ranges("creator_id", ids["creator_id"], parts)
    ]
    return add_offender_categories(nw.from_native(pl.concat(per_range).lazy())).to_native().collect()


def load_report_data(output_dir: Path | str, ds: dt.date) -> ReportData:
    """Everything the day's report shows, from the published warehouse."""
    output_dir = Path(output_dir)
    window = [ds - dt.timedelta(days=i) for i in range(TREND_WINDOW_DAYS + 1)]
    kpi_days = [ds, ds - dt.timedelta(days=1), ds - dt.timedelta(days=7)]
    violation_daily = _read_days(output_dir, "violation_daily", window)
    published = partition_dir(output_dir, "violation_daily", ds).is_dir()
    repeat = _read_day(output_dir, "repeat_offenders", ds)
    repeat = repeat if repeat is not None else pl.DataFrame(schema=table_schema("repeat_offenders"))
    quarantine = _read_day(output_dir, "quarantine", ds)
    if quarantine is None or quarantine.height == 0:
        qcounts = pl.DataFrame(schema={"source_table": pl.String(), "reason": pl.String(), "rows": pl.Int64()})
    else:
        qcounts = quarantine.group_by("source_table", "reason").agg(pl.len().cast(pl.Int64).alias("rows"))
    manifest, dq, latest_failed = _run_files(output_dir, ds, published)
    trend_params, offender_params = _params(manifest)
    recorded = manifest.get("params", {}) if isinstance(manifest, dict) else {}
    taxonomy = (recorded.get("job") or {}).get("taxonomy")
    return ReportData(
        ds=ds,
        violation_daily=violation_daily,
        violation_trends=_read_days(output_dir, "violation_trends", window),
        reviewer_daily=_read_days(output_dir, "reviewer_daily", kpi_days),
        queue_daily=_read_days(output_dir, "queue_daily", kpi_days),
        repeat_offenders=repeat,
        quarantine_counts=qcounts,
        manifest=manifest,
        dq=dq,
        # Only a publication's: a failed run's figures would describe offenders no table holds.
        offender_categories=_offender_categories(output_dir, ds, repeat, manifest, offender_params) if published else None,
        published=published,
        latest_failed=latest_failed,
        trend_params=trend_params,
        offender_params=offender_params,
        **({"taxonomy": tuple(taxonomy)} if taxonomy else {}),
        stale_inputs=tuple(lineage.stale_days(output_dir, [ds]).get(ds, [])) if published else (),
        params_changed=_params_changed(output_dir, ds, recorded) if published else (),
        offender_days_observed=_offender_days_observed(output_dir, ds, offender_params.window_days),
        previous_page=previous_page(output_dir / REPORTS_DIR, ds),
    )


def _offender_days_observed(output_dir: Path, ds: dt.date, window_days: int) -> int | None:
    """Days of the offenders' window with a published creator_category_daily (what repeat_offenders
    counted); None when ds itself has none (nothing to say, or a publication older than the table)."""
    if not partition_dir(output_dir, "creator_category_daily", ds).is_dir():
        return None
    first = ds - dt.timedelta(days=window_days - 1)
    return sum(1 for i in range(window_days) if partition_dir(output_dir, "creator_category_daily", first + dt.timedelta(days=i)).is_dir())


# What the tables are computed with; [dq] thresholds judge them and are left out.
_COMPARED_PARAMS = ("job", "trends", "offenders")


def _params_changed(output_dir: Path, ds: dt.date, recorded: dict[str, Any]) -> tuple[tuple[dt.date, tuple[str, ...]], ...]:
    """The KPI tiles' comparison days (ds-1, ds-7) that were computed with other parameters, with
    the names of those that differ. Days recorded before manifests held every parameter are skipped;
    a parameter one manifest lacks (added since) counts at its default, so adding one with a default
    that keeps the old behaviour does not mark the week after the release."""
    defaults = recorded_params(Params(ds=ds))

    def value(params: dict[str, Any], section: str, key: str) -> Any:
        return params.get(section, {}).get(key, defaults[section].get(key))

    out = []
    for day in (ds - dt.timedelta(days=1), ds - dt.timedelta(days=7)):
        other = read_json(published_run_file(output_dir, day, "manifest.json"))
        theirs = other.get("params", {}) if isinstance(other, dict) else {}
        if "job" not in theirs or "job" not in recorded:
            continue
        keys = tuple(
            f"{section}.{key}"
            for section in _COMPARED_PARAMS
            for key in sorted(set(recorded.get(section, {})) | set(theirs.get(section, {})))
            if value(recorded, section, key) != value(theirs, section, key)
        )
        if keys:
            out.append((day, keys))
    return tuple(out)


def _params(manifest: Any) -> tuple[TrendParams, OffenderParams]:
    """The trend and offender parameters the run computed its tables with; a field the manifest
    does not hold (a run recorded before manifests kept them) at its default."""
    recorded = manifest.get("params") if isinstance(manifest, dict) else None
    recorded = recorded if isinstance(recorded, dict) else {}
    return from_recorded(TrendParams, recorded.get("trends")), from_recorded(OffenderParams, recorded.get("offenders"))


def _run_files(output_dir: Path, ds: dt.date, published: bool) -> tuple[Any, Any, dict[str, Any] | None]:
    """(manifest, dq) describing what the page shows, and the manifest of a failed run since, if any.

    `_runs/ds=D/` holds the latest attempt: links into the publication, or, after a failed gate,
    that attempt's own files. A published day's page describes its published tables, so it reads the
    publication's own run files (beside its tables, under `_versions/ds=D/current/`): read from
    `_runs/ds=D/` after a failed rerun, the page mixed the old tables with the failed run's
    quarantine, row counts and verdict.
    """
    latest = runs_dir(output_dir, ds)
    latest_manifest = read_json(latest / "manifest.json")
    latest_dq = _same_run(read_json(latest / "dq.json"), latest_manifest)
    if not published:
        return latest_manifest, latest_dq, None
    manifest = read_json(published_run_file(output_dir, ds, "manifest.json"))
    if manifest is None:  # a publication without run files of its own (written by hand, or older)
        return latest_manifest, latest_dq, None
    failed = latest_manifest if isinstance(latest_manifest, dict) and latest_manifest.get("published") is False else None
    return manifest, _same_run(read_json(published_run_file(output_dir, ds, "dq.json")), manifest), failed


def _same_run(dq: Any, manifest: Any) -> Any:
    """dq.json if it is the manifest's run's, else None: a run killed between writing the two leaves
    the other run's dq.json beside its manifest, whose results are not this run's (the verdict then
    comes from the manifest). A dq.json written before it recorded run_id is taken as it is."""
    if isinstance(dq, dict) and isinstance(manifest, dict) and "run_id" in dq and dq["run_id"] != manifest.get("run_id"):
        return None
    return dq


def resolve_pseudonym_key(explicit: str | bytes | None = None) -> bytes:
    """The environment's key wins so an operator can enforce it; then the caller's (the config's
    `[report] pseudonym_key`); then the demo key."""
    env = os.environ.get(KEY_ENV)
    if env:
        return env.encode("utf-8")
    if explicit:
        return explicit.encode("utf-8") if isinstance(explicit, str) else explicit
    return DEMO_KEY


def _default_run_ts(manifest: dict[str, Any] | None) -> str:
    # The manifest's own timestamp, not the clock: re-rendering the same inputs is byte-identical.
    if isinstance(manifest, dict) and manifest.get("run_started_at"):
        return str(manifest["run_started_at"])
    return "unknown (no run manifest)"


def report_path(output_dir: Path | str, ds: dt.date) -> Path:
    return Path(output_dir) / REPORTS_DIR / f"{ds.isoformat()}.html"


def render_day(
    output_dir: Path | str,
    ds: dt.date,
    run_ts: str | None = None,
    pseudonym_key: str | bytes | None = None,
    *,
    index: bool = True,
    lock_wait: float = 0.0,
) -> Path:
    """Render `<output>/reports/<ds>.html` from the published warehouse, then (unless `index` is
    False, for a caller rendering several days) the index.

    Under ds's lock (waiting up to `lock_wait` seconds for a run of ds, else LockHeld): unlocked, a
    run publishing meanwhile could have its page overwritten by one of the publication before, or
    the page could mix tables of both. A run renders under the lock it holds.

    Raises InputMissing when there is nothing to report: `output_dir` missing, or ds with neither a
    published partition nor a recorded run (a gate failure records one, and its page explains it).
    A page rendered for a mistyped path or day would look like a real day with nothing in it, and
    would be listed in the index as one.
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise InputMissing(f"warehouse {output_dir} {missing_dir(output_dir)}")
    with ds_lock(output_dir, ds, wait_s=lock_wait):
        # A recorded run is its run files: `_runs/ds=D/` alone may hold only the Airflow failure
        # record of a day whose sensors timed out, which is no run to report on.
        recorded = any((runs_dir(output_dir, ds) / name).exists() for name in ("manifest.json", "dq.json"))
        if not (recorded or partition_dir(output_dir, "violation_daily", ds).is_dir()):
            raise InputMissing(f"ds={ds}: nothing to report in {output_dir}: no published tables and no recorded run")
        data = load_report_data(output_dir, ds)
        key = resolve_pseudonym_key(pseudonym_key)
        html = _render_day_html(data, run_ts=run_ts or _default_run_ts(data.manifest), pseudonym_key=key)
        path = report_path(output_dir, ds)
        remove_temporaries(path.parent, of=path.name)  # a page write killed midway (under this lock)
        write_text(path, html)
    if index:
        render_index(output_dir)
    return path


def _index_entry(output_dir: Path, ds: dt.date, href: str | None, stale: bool) -> IndexEntry:
    violation_daily, queue_daily = INDEX_TABLES
    vd = _read_day(output_dir, violation_daily, ds)
    manifest, dq, latest_failed = _run_files(output_dir, ds, vd is not None)
    status = dq_verdict(dq, manifest)
    actioned = None
    if vd is not None:
        row = vd.filter((pl.col("market") == ALL) & (pl.col("policy_category") == ALL))
        actioned = int(row["actioned"][0]) if row.height else 0
    qd = _read_day(output_dir, queue_daily, ds)
    decisions = int(qd["decisions"].sum()) if qd is not None else None
    return IndexEntry(ds=ds, href=href, dq_status=status, decisions=decisions, actioned=actioned,
                      latest_failed=latest_failed is not None, stale=stale)


def refresh_stale_pages(
    output_dir: Path | str, days: list[dt.date], stale: dict[dt.date, list[dt.date]],
    pseudonym_key: str | bytes | None = None,
) -> list[dt.date]:
    """Re-render the pages of the `stale` days (lineage.stale_after of a run of `days`: a backfill,
    a rerun with late rows) other than `days` themselves, then the index; returns those days.

    A page rendered before the run compared its day with the tables replaced since and said
    nothing: an analyst opening it directly, not through the index, was not told. Rendered again,
    it carries the stale-history banner until the day is rerun. Each page is rendered from its own
    publication, under its day's lock, so its figures and run time stay that publication's; a day
    whose run holds the lock now is skipped (that run renders its own page).
    """
    output_dir = Path(output_dir)
    ran = set(days)
    later = [d for d in sorted(stale) if d not in ran and report_path(output_dir, d).exists()]
    refreshed = []
    for day in later:
        try:
            render_day(output_dir, day, pseudonym_key=pseudonym_key, index=False)
        except LockHeld:
            continue
        refreshed.append(day)
    if refreshed:
        render_index(output_dir)
    return refreshed


def render_index(output_dir: Path | str) -> Path:
    """Re-render `<output>/reports/index.html`: one row per day that is published or has a report
    (a day that failed its first run has a page and no tables; `run --no-report` tables and no page).

    Runs of different days (different ds locks) all rewrite the index: each lists the pages, reads
    every day and writes under `_locks/index.lock`, or the one that listed first and wrote last
    dropped the other's new day or its new status.
    """
    output_dir = Path(output_dir)
    reports = output_dir / REPORTS_DIR
    with file_lock(output_dir.joinpath(*INDEX_LOCK)):
        pages = dict(_report_pages(reports))
        days = sorted(set(pages) | set(published_days(output_dir, INDEX_TABLES[0])))
        stale = lineage.stale_days(output_dir, days)
        entries = [_index_entry(output_dir, day, pages.get(day), day in stale) for day in days]
        entries += _missing_entries(days)
        path = reports / "index.html"
        remove_temporaries(reports, of=path.name)  # an index write killed midway (under this lock)
        write_text(path, _render_index_html(entries))
    return path


def _missing_entries(days: list[dt.date]) -> list[IndexEntry]:
    """One row per run of consecutive calendar days between `days` (sorted) that are not among them:
    unlisted, a day whose input never came read as if the month had no hole in it."""
    return [
        IndexEntry(ds=before + dt.timedelta(days=1), href=None, dq_status=None, decisions=None, actioned=None,
                   missing_until=after - dt.timedelta(days=1))
        for before, after in zip(days, days[1:])
        if (after - before).days > 1
    ]


def page_day(name: str) -> dt.date | None:
    """The day a report page's file name (`YYYY-MM-DD.html`) is of; None for any other name."""
    m = REPORT_NAME.match(name)
    try:
        return dt.date.fromisoformat(m.group(1)) if m else None
    except ValueError:
        return None


def previous_page(reports: Path, ds: dt.date) -> str | None:
    """The file name of the latest page in `reports` of a day before ds, None when there is none.

    Only "previous": a static page cannot know of a later day's page, which does not exist yet when
    the nightly run renders it; the index is the way forward."""
    earlier = [name for day, name in _report_pages(reports) if day < ds]
    return earlier[-1] if earlier else None


def _report_pages(reports: Path) -> list[tuple[dt.date, str]]:
    """(day, file name) of every day's page in `reports` (none while it does not exist), by day."""
    if not reports.is_dir():
        return []
    days = ((page_day(f.name), f) for f in sorted(reports.iterdir()) if f.is_file())
    return [(day, f.name) for day, f in days if day is not None]
