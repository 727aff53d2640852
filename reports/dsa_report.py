"""The DSA page of a day: already-loaded sor_daily / sor_trends frames -> one self-contained HTML string.

Pure like reports.render: no file is read but the template, no clock (run_ts is a parameter), every
collection is sorted before it is shown and figures have fixed ids, so the same inputs give
byte-identical HTML. plotly.js is inlined once; data strings are escaped by jinja's autoescape in the
page and entity-escaped inside plotly specs (plotly renders pseudo-HTML in labels).
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl

from reports.figures import OKABE_ITO, label
from reports.fmt import FILTERS
from reports.render import PLOTLY_CONFIG, baseline, plotly_js, script_json, template_env
from transforms.schemas import ALL

TOP_PLATFORMS = 15
LABEL_WIDTH = 22  # characters per line of an axis label
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


@dataclass(frozen=True)
class DsaDayData:
    """What the page shows; frames already filtered to what it needs."""

    ds: date
    sor_daily: pl.DataFrame  # the day's sor_daily (rollups included)
    history: pl.DataFrame  # sor_daily ALL/ALL and per-platform rows of ds-28..ds, with a `ds` column
    trends: pl.DataFrame | None  # the day's sor_trends, None when they could not be computed
    duplicate_uuids: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    unparsed_dates: dict[str, int] = field(default_factory=dict)  # statements kept with that date null
    notes: tuple[str, ...] = ()
    baseline_days: int = 28  # the [trends] window the day's trends were computed against
    min_baseline_days: int = 14  # [trends] min_baseline_days: fewer observed days flag no anomaly
    previous_page: str | None = None  # the latest earlier day's page (file name), as ReportData's


@dataclass(frozen=True)
class DsaIndexEntry:
    """One day of the DSA index: its published figures (the day's manifest)."""

    ds: date
    href: str | None  # None: built without a page (`dsa daily --no-report`)
    statements: int | None
    quarantined: int | None
    anomalies: int | None


@dataclass(frozen=True)
class _Chart:
    id: str
    title: str
    spec_json: str | None
    message: str = ""


def _layout(**kwargs: Any) -> go.Layout:
    base: dict[str, Any] = {
        "template": "plotly_white",
        "font": {"family": FONT, "size": 12},
        "colorway": list(OKABE_ITO),
        # The category axis takes the room its labels need (wrapped by _wrapped) rather than a fixed
        # margin that cut long labels and left a phone's chart a sliver of plot; legends sit above
        # the plot, not beside it, for the same reason.
        "margin": {"l": 10, "r": 20, "t": 30, "b": 50},
        "yaxis": {"automargin": True},
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom", "traceorder": "normal"},
    }
    base.update(kwargs)
    return go.Layout(**base)


def _wrapped(text: str, width: int = LABEL_WIDTH) -> str:
    """A tick label escaped for plotly, on lines of about `width` characters."""
    return "<br>".join(label(line) for line in textwrap.wrap(text, width, break_long_words=False) or [text])


def _height(labels: list[str], per_row: int) -> int:
    """A bar chart's height: `per_row` pixels a bar, more where a wrapped label takes more lines."""
    lines = max((n.count("<br>") + 1 for n in labels), default=1)
    return max(260, (per_row + 14 * (lines - 1)) * len(labels) + 110)


def _spec(fig: go.Figure) -> str:
    return pio.to_json(fig, validate=False, remove_uids=True, engine="json")


def _short(category: str) -> str:
    return category.removeprefix("STATEMENT_CATEGORY_").replace("_", " ").lower()


def _platforms(daily: pl.DataFrame) -> pl.DataFrame:
    return (
        daily.filter((pl.col("category") == ALL) & (pl.col("platform_name") != ALL))
        .sort(["statements", "platform_name"], descending=[True, False])
    )


def _platform_chart(daily: pl.DataFrame) -> _Chart:
    top = _platforms(daily).head(TOP_PLATFORMS).reverse()
    if top.height == 0:
        return _Chart("dsa-platforms", "Statements by platform", None, "No statements on this day.")
    names = [_wrapped(n) for n in top["platform_name"]]
    fig = go.Figure(layout=_layout(barmode="stack", height=_height(names, 28), xaxis_title="statements"))
    for col, name in (("automated_fully", "fully automated"), ("automated_partially", "partially automated"),
                      ("automated_not", "not automated")):  # fmt: skip
        fig.add_trace(go.Bar(y=names, x=top[col].to_list(), name=name, orientation="h"))
    return _Chart("dsa-platforms", f"Statements by platform (top {TOP_PLATFORMS}), by automation of the decision", _spec(fig))


def _category_chart(daily: pl.DataFrame) -> _Chart:
    cats = daily.filter((pl.col("platform_name") == ALL) & (pl.col("category") != ALL)).sort(
        ["statements", "category"], descending=[False, True]
    )
    if cats.height == 0:
        return _Chart("dsa-categories", "Statements by category", None, "No statements on this day.")
    names = [_wrapped(_short(c)) for c in cats["category"]]
    fig = go.Figure(layout=_layout(height=_height(names, 28), xaxis_title="statements"))
    fig.add_trace(
        go.Bar(
            y=names,
            x=cats["statements"].to_list(),
            orientation="h",
            customdata=cats["fully_automated_rate"].to_list(),
            hovertemplate="%{x} statements, %{customdata:.1%} fully automated<extra></extra>",
            marker_color=OKABE_ITO[0],
        )
    )
    return _Chart("dsa-categories", "Statements by category (all platforms)", _spec(fig))


def _trend_chart(history: pl.DataFrame, ds: date) -> _Chart:
    total = history.filter((pl.col("platform_name") == ALL) & (pl.col("category") == ALL)).sort("ds")
    if total.height < 2:
        return _Chart("dsa-trend", "Statements per day", None, "Fewer than two observed days: no trend yet.")
    fig = go.Figure(layout=_layout(height=360, margin={"l": 70, "r": 30, "t": 30, "b": 50}, yaxis_title="statements"))
    fig.add_trace(go.Scatter(x=[d.isoformat() for d in total["ds"]], y=total["statements"].to_list(),
                             mode="lines+markers", name="all platforms"))  # fmt: skip
    return _Chart("dsa-trend", f"Statements per observed day, up to {ds.isoformat()}", _spec(fig))


def _delay_chart(daily: pl.DataFrame) -> _Chart:
    top = _platforms(daily).head(TOP_PLATFORMS).reverse()
    top = top.filter(pl.col("moderation_delay_p50_s").is_not_null())
    if top.height == 0:
        return _Chart("dsa-delays", "Moderation delay by platform", None, "No dated statements on this day.")
    names = [_wrapped(n) for n in top["platform_name"]]
    days = 86400.0
    fig = go.Figure(layout=_layout(barmode="group", height=_height(names, 34), xaxis_title="days"))
    fig.add_trace(go.Bar(y=names, x=[v / days for v in top["moderation_delay_p50_s"]], name="p50", orientation="h"))
    fig.add_trace(go.Bar(y=names, x=[(v or 0) / days for v in top["moderation_delay_p90_s"]], name="p90", orientation="h"))
    return _Chart("dsa-delays", "Moderation delay (content date to decision), days", _spec(fig))


def _rows(df: pl.DataFrame) -> list[dict[str, Any]]:
    return list(df.iter_rows(named=True))


def _anomalies(trends: pl.DataFrame | None) -> list[dict[str, Any]]:
    if trends is None:
        return []
    a = trends.filter(pl.col("is_anomaly").fill_null(False)).with_columns(pl.col("zscore").abs().alias("_z"))
    return _rows(a.sort(["_z", "platform_name", "category"], descending=[True, False, False], nulls_last=True))


def _num(x: Any) -> float | None:
    if x is None or isinstance(x, bool) or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return float(x)


def render_dsa_day(data: DsaDayData, *, run_ts: str | None = None) -> str:
    """The page's HTML. `run_ts` (already formatted) is shown as is; None shows nothing."""
    daily = data.sor_daily
    total = daily.filter((pl.col("platform_name") == ALL) & (pl.col("category") == ALL))
    t = total.row(0, named=True) if total.height else {}
    charts = [_platform_chart(daily), _category_chart(daily), _delay_chart(daily), _trend_chart(data.history, data.ds)]
    tiles = [
        ("Statements", FILTERS["fmt_int"](t.get("statements"))),
        ("Platforms", FILTERS["fmt_int"](_platforms(daily).height)),
        ("Automated detection", FILTERS["fmt_pct"](_num(t.get("automated_detection_rate")))),
        ("Fully automated decisions", FILTERS["fmt_pct"](_num(t.get("fully_automated_rate")))),
        ("Moderation delay p50", FILTERS["fmt_seconds"](_num(t.get("moderation_delay_p50_s")))),
        ("Disclosure delay p50", FILTERS["fmt_seconds"](_num(t.get("disclosure_delay_p50_s")))),
    ]
    return template_env().get_template("dsa_day.html.j2").render(
        ds=data.ds.isoformat(),
        run_ts=run_ts,
        tiles=tiles,
        charts=charts,
        platforms=_rows(_platforms(daily)),
        anomalies=_anomalies(data.trends),
        trends_available=data.trends is not None,
        baseline_days=data.baseline_days,
        baseline=baseline(data.trends, data.min_baseline_days, ("platform_name", "category")) if data.trends is not None else None,
        duplicate_uuids=data.duplicate_uuids,
        negative_moderation_delay=t.get("negative_moderation_delay", 0),
        quarantined=sorted(data.quarantined.items()),
        unparsed_dates=sorted(data.unparsed_dates.items()),
        notes=list(data.notes),
        plotly_js=plotly_js(),
        plotly_config=script_json(PLOTLY_CONFIG),
        script_json=script_json,
        short=_short,
        previous_page=data.previous_page,
    )


def render_dsa_index(entries: list[DsaIndexEntry]) -> str:
    """The list of DSA days, newest first."""
    ordered = sorted(entries, key=lambda e: e.ds, reverse=True)
    return template_env().get_template("dsa_index.html.j2").render(entries=ordered)
