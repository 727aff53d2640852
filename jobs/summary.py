"""A short terminal summary of one published day, read from the warehouse."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from jobs import warehouse as wh
from reports.kpis import sla_rate
from transforms.schemas import ALL


def _read(output: Path, table: str, ds: dt.date) -> pl.DataFrame:
    return pl.read_parquet(wh.partition_dir(output, table, ds) / "*.parquet")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def day_summary(output: Path, ds: dt.date) -> str:
    manifest = wh.read_json(wh.runs_dir(output, ds) / "manifest.json") or {}
    vd = _read(output, "violation_daily", ds).filter((pl.col("market") == ALL) & (pl.col("policy_category") == ALL))
    qd = _read(output, "queue_daily", ds)
    trends = _read(output, "violation_trends", ds).filter(pl.col("is_anomaly"))
    offenders = _read(output, "repeat_offenders", ds)
    decisions = int(qd["decisions"].sum())
    sla = sla_rate(qd)
    top = vd.row(0, named=True)
    quarantined = sum(sum(r.values()) for r in manifest.get("quarantined", {}).values())
    lines = [
        f"ds {ds}: DQ {manifest.get('dq', {}).get('verdict', '?')}",
        f"  decisions {decisions:,}; actioned violations {top['actioned']:,}; proactive {_pct(top['proactive_rate'])}; "
        f"zero-view {_pct(top['zero_view_rate'])}; SLA met {_pct(sla)}",
        f"  anomalies {trends.height}; repeat offenders {offenders.height}; quarantined rows {quarantined}",
    ]
    return "\n".join(lines)
