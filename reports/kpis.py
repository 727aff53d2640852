"""KPI tiles: one number per metric for ds, with its change vs ds-1 and ds-7."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from reports.model import ReportData
from transforms.schemas import ALL

# kind decides how a change is expressed: counts and durations change relatively (%),
# rates change in percentage points, since "+10% of 2%" is easy to misread.
# The definition is the tile's small print: what the figure counts, in DESIGN §4's terms.
KPI_DEFS: tuple[tuple[str, str, str, str], ...] = (
    ("decisions", "Decisions", "count",
     ("Staged decisions of the day, human and automated: after exact duplicates are dropped "
      "and invalid rows quarantined.")),
    ("actioned", "Actioned violations", "count",
     "Staged decisions with outcome violation, all markets and categories."),
    ("proactive_rate", "Proactive rate", "rate",
     ("Share of actioned violations detected proactively (detection source in the configured "
      "proactive set, by default ml_model, rule_engine, proactive_sweep).")),
    ("zero_view_rate", "Zero-view rate", "rate",
     "Share of actioned violations actioned before any view (views_before_action = 0)."),
    ("tta_p50_s", "Median time to action", "seconds",
     "Median over actioned violations of decided_at − content_created_at."),
    ("sla_rate", "SLA rate", "rate",
     "Decisions within their queue's SLA (decided_at − enqueued_at ≤ SLA) over all decisions."),
    ("qa_accuracy", "QA accuracy", "rate",
     "Agreed over audited decisions, for the staged QA audits dated this day."),
    ("overturn_rate", "Appeal overturn rate", "rate",
     "Overturned over appeals resolved this day, appeals of automated decisions included."),
)


@dataclass(frozen=True)
class Delta:
    label: str  # "vs previous day" / "vs 7 days earlier"
    value: float | None  # relative change (count/seconds) or difference (rate)
    kind: str  # "relative" | "points"
    reason: str  # why value is None, for the tile's text


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    kind: str
    value: float | None
    deltas: tuple[Delta, ...]
    definition: str = ""


def _ratio(num: float | int | None, den: float | int | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return float(num) / float(den)


def sla_rate(queue_daily: pl.DataFrame) -> float | None:
    """Decisions within their queue's SLA over all decisions of queue_daily's rows (a day's, for
    the tile and the CLI summary); None without decisions."""
    if queue_daily.height == 0:
        return None
    return _ratio(int(queue_daily["sla_met"].sum()), int(queue_daily["decisions"].sum()))


def day_values(data: ReportData, day: date) -> dict[str, float | None] | None:
    """KPI values of one day, or None when the day was not published.

    A published day always has the ALL/ALL row of violation_daily, so its presence is
    what tells an observed day (possibly with zero decisions) from an unobserved one.
    """
    vd = data.violation_daily.filter(
        (pl.col("ds") == day) & (pl.col("market") == ALL) & (pl.col("policy_category") == ALL)
    )
    if vd.height == 0:
        return None
    row = vd.row(0, named=True)
    qd = data.queue_daily.filter(pl.col("ds") == day)
    rd = data.reviewer_daily.filter(pl.col("ds") == day)
    decisions = int(qd["decisions"].sum()) if qd.height else 0
    qa_audits = int(rd["qa_audits"].sum()) if rd.height else 0
    qa_agreed = int(rd["qa_agreed"].sum()) if rd.height else 0
    return {
        "decisions": float(decisions),
        "actioned": float(row["actioned"]),
        "proactive_rate": row["proactive_rate"],
        "zero_view_rate": row["zero_view_rate"],
        "tta_p50_s": row["tta_p50_s"],
        "sla_rate": sla_rate(qd),
        "qa_accuracy": _ratio(qa_agreed, qa_audits),
        "overturn_rate": row["overturn_rate"],
    }


def _delta(kind: str, label: str, cur: float | None, prev_day: dict[str, float | None] | None,
           key: str) -> Delta:
    dkind = "points" if kind == "rate" else "relative"
    if prev_day is None:
        return Delta(label, None, dkind, "no data")
    prev = prev_day.get(key)
    if cur is None or prev is None:
        return Delta(label, None, dkind, "n/a")
    if dkind == "points":
        return Delta(label, cur - prev, dkind, "")
    if prev == 0:
        return Delta(label, None, dkind, "was 0")
    return Delta(label, cur / prev - 1.0, dkind, "")


def compute_kpis(data: ReportData) -> list[Kpi] | None:
    """KPI tiles for data.ds, or None when ds itself has no published data."""
    today = day_values(data, data.ds)
    if today is None:
        return None
    prev = day_values(data, data.ds - timedelta(days=1))
    week = day_values(data, data.ds - timedelta(days=7))
    kpis = []
    for key, label, kind, definition in KPI_DEFS:
        cur = today[key]
        kpis.append(
            Kpi(
                key=key,
                label=label,
                kind=kind,
                value=cur,
                deltas=(
                    _delta(kind, "vs previous day", cur, prev, key),
                    _delta(kind, "vs 7 days earlier", cur, week, key),
                ),
                definition=definition,
            )
        )
    return kpis
