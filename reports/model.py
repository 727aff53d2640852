"""What the report is rendered from: already-loaded frames and run metadata, no paths."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl

from transforms.params import DEFAULT_TAXONOMY, OffenderParams, TrendParams


@dataclass(frozen=True)
class ReportData:
    """Published tables around one ds, as the report needs them.

    Frames that span days carry a `ds` column (pl.Date); a day that was not
    published simply has no rows, which the report treats as unobserved, not zero.
    """

    ds: date
    # ds-28 .. ds, every (market, policy_category) row including the ALL rollups.
    violation_daily: pl.DataFrame
    # ds (required) and optionally earlier days, used to mark past anomalies on the trend.
    violation_trends: pl.DataFrame
    # ds, ds-1 and ds-7 where published (KPI deltas); the charts use ds only.
    reviewer_daily: pl.DataFrame
    queue_daily: pl.DataFrame
    # ds only.
    repeat_offenders: pl.DataFrame
    # ds only: source_table, reason, rows.
    quarantine_counts: pl.DataFrame
    manifest: dict[str, Any] | None = None
    dq: dict[str, Any] | None = None
    # Optional: policy_category, creators, violations over the repeat offenders' 30-day window.
    offender_categories: pl.DataFrame | None = None
    # False when the partitions of ds are absent (never run, or the DQ gate held them back).
    published: bool = True
    # The manifest of a run of ds that failed the gate after the publication shown: the page says
    # so, since the tables and run files above still describe the publication.
    latest_failed: dict[str, Any] | None = None
    # The parameters the tables were computed with (the run manifest's), for the page's own words.
    trend_params: TrendParams = TrendParams()
    offender_params: OffenderParams = OffenderParams()
    # The policy taxonomy: a category's position in it fixes its colour in the trend chart, the same on
    # every page (categories outside it share one grey). The default one unless the caller knows better.
    taxonomy: tuple[str, ...] = DEFAULT_TAXONOMY
    # Earlier days published anew since this day's trends and repeat offenders read them (jobs.lineage).
    stale_inputs: tuple[date, ...] = ()
    # (day, parameter names) for the KPI comparison days computed with other parameters than this day.
    params_changed: tuple[tuple[date, tuple[str, ...]], ...] = ()
    # Days of the repeat offenders' window (ds-window_days+1 .. ds) with a published
    # creator_category_daily: fewer than the window early in a warehouse's history, when "in the 30
    # days up to ds" would overstate what was counted. None when unknown (ds has no such partition).
    offender_days_observed: int | None = None
    # The latest earlier day's page (its file name in the same folder) when this one was rendered: a
    # link that holds across days without data and reaches a failed day's page. None: the first page.
    previous_page: str | None = None


@dataclass(frozen=True)
class IndexEntry:
    """One row of the report index."""

    ds: date
    href: str | None  # None: published without a page (`run --no-report`)
    dq_status: str | None  # pass | warn | fail | None when no dq.json (the publication's, if any)
    decisions: int | None
    actioned: int | None
    latest_failed: bool = False  # a later run failed the gate; the figures are the publication's
    stale: bool = False  # built on earlier days' tables republished since (jobs.lineage)
    # A row for days with neither tables nor a page, ds to missing_until (both included): a day the
    # job never published nor reported on (its input never came, it was never run) between listed days.
    missing_until: date | None = None


__all__ = ["ReportData", "IndexEntry"]
