"""Plotly figures of the daily report, as JSON specs with fixed ids.

Every figure is built from sorted data and serialised with plotly's JSON encoder
(which escapes `<`, `>` and `/`, so a spec can sit inside a <script> element). A
chart that has nothing to show returns a message instead of a spec, so the page
explains an empty day rather than drawing empty axes.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TypeVar

import plotly.colors
import plotly.graph_objects as go
import plotly.io as pio
import polars as pl

from reports.fmt import fmt_seconds
from reports.pseudonym import pseudonymise
from transforms.params import DEFAULT_TAXONOMY
from transforms.schemas import ALL

TREND_DAYS = 28

# The reviewer chart names a reviewer's team only when at least this many of the day's plotted
# reviewers belong to it: a team of one or two would all but name the person behind a pseudonym.
MIN_TEAM_SHOWN = 5
SMALL_TEAM = "small team"

# Okabe-Ito's hues, distinguishable under the common colour-vision deficiencies. A line or marker
# needs 3:1 against the white plot (WCAG 1.4.11): orange (2.25:1), sky blue (2.31:1) and yellow
# (1.32:1, all but invisible) are darkened to about 3.2:1, keeping their hue.
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#C08500",  # orange, darkened from #E69F00
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#4999C6",  # sky blue, darkened from #56B4E9
    "#9B932B",  # yellow, darkened from #F0E442
    "#000000",  # black
)
# Past eight series, colours repeat and the dash tells them apart.
DASHES: tuple[str, ...] = ("solid", "dash", "dot", "dashdot")
# A category outside the taxonomy (UNKNOWN, a misspelt one): one grey, dotted, for all of them.
OTHER_COLOUR = "#919191"  # 3:1 on white, like the series colours
OTHER_DASH = "dot"

FONT_FAMILY = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


@dataclass(frozen=True)
class Chart:
    id: str  # fixed DOM id: deterministic output, stable anchors for the browser test
    title: str
    spec_json: str | None  # None when message explains why there is no chart
    message: str = ""
    height: int = 420


# plotly validates every property of every object it builds, a list element by element: 0.26 of the
# 0.5 s the five charts took at 10 M decisions (most of it the reviewer chart's 25 k points). The
# specs are fixed code, so they are built unvalidated; tests/test_report.py builds every chart
# validated too and asserts the same specs, which also catches a misspelt property.
VALIDATE = False
_Plotly = TypeVar("_Plotly")


def _go(cls: type[_Plotly], *args: object, **kwargs: object) -> _Plotly:
    return cls(*args, _validate=VALIDATE, **kwargs)


# Validation expands a named colorscale into plotly.py's stops; given expanded the same way, so that
# plotly.js draws plotly.py's Viridis rather than its own, sampled at other points.
VIRIDIS: list[list[float | str]] = [
    [i / (len(plotly.colors.sequential.Viridis) - 1), c] for i, c in enumerate(plotly.colors.sequential.Viridis)
]


def label(value: object) -> str:
    """Data text for plotly: entities, so plotly's pseudo-HTML shows `<b>`/`<a>` as text."""
    return html.escape("" if value is None else str(value), quote=False)


def _layout(**kwargs: object) -> go.Layout:
    base: dict[str, object] = {
        "template": "plotly_white",
        "font": {"family": FONT_FAMILY, "size": 12},
        "colorway": list(OKABE_ITO),
        "margin": {"l": 70, "r": 30, "t": 30, "b": 60},
        "hoverlabel": {"font": {"family": FONT_FAMILY}},
    }
    base.update(kwargs)
    return _go(go.Layout, **base)


def _to_json(fig: go.Figure) -> str:
    # engine="json": the stdlib encoder regardless of whether orjson is installed.
    return pio.to_json(fig, validate=False, remove_uids=True, engine="json")


def category_style(category: str, taxonomy: tuple[str, ...] = DEFAULT_TAXONOMY) -> tuple[str, str]:
    """(colour, dash) of a category's line: fixed by its position in the taxonomy, so a category has
    the same colour on every day's page whatever its volume; any category outside it is grey."""
    if category not in taxonomy:
        return OTHER_COLOUR, OTHER_DASH
    i = taxonomy.index(category)
    return OKABE_ITO[i % len(OKABE_ITO)], DASHES[(i // len(OKABE_ITO)) % len(DASHES)]


def trend_chart(violation_daily: pl.DataFrame, violation_trends: pl.DataFrame, ds: date,
                taxonomy: tuple[str, ...] = DEFAULT_TAXONOMY) -> Chart:
    """Actioned per category (market = ALL) over ds-28..ds; anomalies of the all-markets series marked."""
    chart_id, title = "fig-trend", "Actioned violations by category, last 29 days (all markets)"
    start = ds - timedelta(days=TREND_DAYS)
    vd = violation_daily.filter(
        (pl.col("ds") >= start) & (pl.col("ds") <= ds) & (pl.col("market") == ALL)
    )
    observed = sorted(set(vd["ds"].to_list()))
    cats = vd.filter(pl.col("policy_category") != ALL)
    if cats.height == 0 or int(cats["actioned"].sum()) == 0:
        return Chart(chart_id, title, None,
                     f"No actioned violations were published in the 29 days up to {ds.isoformat()}.")
    days = [start + timedelta(days=i) for i in range(TREND_DAYS + 1)]
    x = [d.isoformat() for d in days]
    observed_set = set(observed)
    lookup = {(r["policy_category"], r["ds"]): r["actioned"] for r in cats.iter_rows(named=True)}
    # Biggest categories first, so the legend reads in order of importance; the colour is the category's own.
    totals = cats.group_by("policy_category").agg(pl.col("actioned").sum().alias("t"))
    order = totals.sort(["t", "policy_category"], descending=[True, False])["policy_category"].to_list()
    fig = _go(go.Figure, layout=_layout(
        xaxis={"title": {"text": "Day (UTC)"}, "type": "date", "tickformat": "%b %d"},
        yaxis={"title": {"text": "Actioned violations"}, "rangemode": "tozero"},
        legend={"title": {"text": "Policy category"}},
        hovermode="closest",
    ))
    for cat in order:
        # An observed day without a row is 0; an unobserved day is a gap, not a zero.
        y = [lookup.get((cat, d), 0) if d in observed_set else None for d in days]
        colour, dash = category_style(cat, taxonomy)
        fig.add_trace(_go(go.Scatter,
            x=x, y=y, mode="lines+markers", name=label(cat), connectgaps=False,
            line={"color": colour, "dash": dash, "width": 2},
            marker={"size": 4},
            # The name goes in by reference: a category spelled like "%{y}" stays literal.
            hovertemplate="%{fullData.name}<br>%{x|%Y-%m-%d}: %{y:,} actioned<extra></extra>",
        ))
    an = violation_trends.filter(
        (pl.col("market") == ALL) & (pl.col("policy_category") != ALL) & pl.col("is_anomaly").fill_null(False)
    )
    if "ds" in an.columns:
        an = an.filter((pl.col("ds") >= start) & (pl.col("ds") <= ds))
    else:
        an = an.with_columns(pl.lit(ds).alias("ds"))
    if an.height:
        an = an.sort(["ds", "policy_category"])
        fig.add_trace(_go(go.Scatter,
            x=[d.isoformat() for d in an["ds"].to_list()],
            y=an["actioned"].to_list(),
            mode="markers",
            name="Anomaly",
            marker={"symbol": "diamond-open", "size": 16, "color": "#000000", "line": {"width": 2}},
            text=[f"{label(c)}: {d or ''}, z = {z:.1f}" if z is not None else label(c)
                  for c, d, z in zip(an["policy_category"].to_list(), an["direction"].to_list(),
                                     an["zscore"].to_list())],
            hovertemplate="Anomaly<br>%{text}<br>%{x|%Y-%m-%d}: %{y:,}<extra></extra>",
        ))
    return Chart(chart_id, title, _to_json(fig))


def heatmap_chart(violation_daily: pl.DataFrame, ds: date) -> Chart:
    chart_id, title = "fig-heatmap", "Actioned violations by market and category"
    today = violation_daily.filter(
        (pl.col("ds") == ds) & (pl.col("market") != ALL) & (pl.col("policy_category") != ALL)
    )
    if today.height == 0 or int(today["actioned"].sum()) == 0:
        return Chart(chart_id, title, None, f"No actioned violations on {ds.isoformat()}.")
    mk = today.group_by("market").agg(pl.col("actioned").sum().alias("t"))
    markets = mk.sort(["t", "market"], descending=[True, False])["market"].to_list()
    ct = today.group_by("policy_category").agg(pl.col("actioned").sum().alias("t"))
    cats = ct.sort(["t", "policy_category"], descending=[True, False])["policy_category"].to_list()
    lookup = {(r["market"], r["policy_category"]): r["actioned"] for r in today.iter_rows(named=True)}
    z = [[lookup.get((m, c), 0) for c in cats] for m in markets]
    height = max(320, 120 + 26 * len(markets))
    fig = _go(go.Figure,
        _go(go.Heatmap,
            x=[label(c) for c in cats], y=[label(m) for m in markets], z=z,
            colorscale=VIRIDIS, colorbar={"title": {"text": "Actioned"}},
            hovertemplate="Market %{y}<br>Category %{x}<br>%{z:,} actioned<extra></extra>",
            texttemplate="%{z:,}" if len(markets) * len(cats) <= 400 else None,
        ),
        layout=_layout(
            xaxis={"title": {"text": "Policy category"}, "type": "category"},
            # Largest market at the top.
            yaxis={"title": {"text": "Market"}, "type": "category", "autorange": "reversed"},
            height=height,
        ),
    )
    return Chart(chart_id, title, _to_json(fig), height=height)


def queue_sla(queue_daily: pl.DataFrame, *extra: pl.Expr) -> pl.DataFrame:
    """One row per queue with decisions: decisions, sla_met and sla_rate over all its markets (the
    page's one definition of a queue's SLA rate), plus any `extra` aggregations; lowest rate first,
    then by name: the order of the page's queue table, which the chart's rows follow top to bottom."""
    q = queue_daily.filter(pl.col("decisions") > 0)
    s = q.group_by("queue").agg(pl.col("decisions").sum(), pl.col("sla_met").sum(), *extra)
    s = s.with_columns((pl.col("sla_met") / pl.col("decisions")).alias("sla_rate"))
    return s.sort(["sla_rate", "queue"], nulls_last=True)


def queue_order(queue_daily: pl.DataFrame) -> list[str]:
    """The queues of `queue_sla`, in its order."""
    return queue_sla(queue_daily)["queue"].to_list()


def queue_chart(queue_daily: pl.DataFrame, ds: date) -> Chart:
    """Wait p50 and p90 of every (queue, market) next to the queue's SLA, log seconds; queues top to
    bottom in queue_order (the table's order)."""
    chart_id, title = "fig-queues", "Queue waits against SLA (one point per queue and market)"
    q = queue_daily.filter((pl.col("ds") == ds) & (pl.col("decisions") > 0))
    if q.height == 0:
        return Chart(chart_id, title, None, f"No decisions were taken from any queue on {ds.isoformat()}.")
    q = q.sort(["queue", "market"])
    queues = queue_order(q)
    # A log axis cannot show 0; sub-second waits are drawn at 1 s (the hover keeps the real value).
    floor = 1.0

    def clamp(vals: list[float | None]) -> list[float | None]:
        return [None if v is None else max(v, floor) for v in vals]

    qlab = [label(v) for v in q["queue"].to_list()]
    hover = [f"{label(qu)} / {label(m)}<br>{n:,} decisions" for qu, m, n in
             zip(q["queue"].to_list(), q["market"].to_list(), q["decisions"].to_list())]
    height = max(320, 140 + 44 * len(queues))
    fig = _go(go.Figure, layout=_layout(
        xaxis={"title": {"text": "Wait from enqueue to decision (seconds, log scale)"}, "type": "log"},
        # The first queue (lowest SLA rate) at the top, as in the table under the chart.
        yaxis={"title": {"text": "Queue"}, "type": "category", "autorange": "reversed",
               "categoryorder": "array", "categoryarray": [label(v) for v in queues]},
        legend={"orientation": "h", "y": -0.25},
        height=height,
        hovermode="closest",
    ))
    fig.add_trace(_go(go.Scatter,
        x=clamp(q["wait_p50_s"].to_list()), y=qlab, mode="markers", name="Wait p50",
        # Opaque enough to keep 3:1 on white where points do not overlap.
        marker={"symbol": "circle", "size": 9, "color": OKABE_ITO[0], "opacity": 0.9},
        # The duration as the queue table writes it ("1d 19h"), not 155,136.8 s.
        text=hover, customdata=[fmt_seconds(v) for v in q["wait_p50_s"].to_list()],
        hovertemplate="%{text}<br>p50 %{customdata}<extra></extra>",
    ))
    fig.add_trace(_go(go.Scatter,
        x=clamp(q["wait_p90_s"].to_list()), y=qlab, mode="markers", name="Wait p90",
        marker={"symbol": "diamond", "size": 9, "color": OKABE_ITO[3], "opacity": 0.9},
        text=hover, customdata=[fmt_seconds(v) for v in q["wait_p90_s"].to_list()],
        hovertemplate="%{text}<br>p90 %{customdata}<extra></extra>",
    ))
    sla = q.group_by("queue").agg(pl.col("sla_s").max()).sort("queue")
    fig.add_trace(_go(go.Scatter,
        x=clamp(sla["sla_s"].to_list()), y=[label(v) for v in sla["queue"].to_list()],
        mode="markers", name="SLA",
        marker={"symbol": "line-ns-open", "size": 26, "color": "#000000", "line": {"width": 3}},
        customdata=[fmt_seconds(v) for v in sla["sla_s"].to_list()],
        hovertemplate="%{y}<br>SLA %{customdata}<extra></extra>",
    ))
    return Chart(chart_id, title, _to_json(fig), height=height)


def reviewer_chart(reviewer_daily: pl.DataFrame, ds: date, key: bytes) -> Chart:
    chart_id, title = "fig-reviewers", "Reviewer throughput vs QA accuracy (pseudonymised)"
    r = reviewer_daily.filter(
        (pl.col("ds") == ds) & pl.col("decisions_per_hour").is_not_null() & pl.col("qa_accuracy").is_not_null()
    )
    if r.height == 0:
        return Chart(chart_id, title, None,
                     f"No reviewer had both timed decisions and QA audits on {ds.isoformat()}.")
    r = r.with_columns(
        pl.col("reviewer_id").map_elements(lambda v: pseudonymise(v, key), return_dtype=pl.String).alias("pseud")
    ).sort(["pseud"])
    team_size = dict(r.group_by("team").len().iter_rows())

    def team(t: str | None) -> str:
        if t is None:
            return "team –"
        return f"team {label(t)}" if team_size[t] >= MIN_TEAM_SHOWN else SMALL_TEAM

    text = [f"{p}<br>{team(t)}<br>{d:,} decisions, {a:,} QA audits"
            for p, t, d, a in zip(r["pseud"].to_list(), r["team"].to_list(), r["decisions"].to_list(),
                                  r["qa_audits"].to_list())]
    # Numeric arrays go to plotly as numpy: it validates and copies a list element by element,
    # which took most of the report's time with tens of thousands of reviewers.
    audits = r["qa_audits"].cast(pl.Float64)
    size = (6 + 14 * (audits / audits.max()).sqrt()).to_numpy()
    fig = _go(go.Figure,
        _go(go.Scatter,
            x=r["decisions_per_hour"].to_numpy(), y=r["qa_accuracy"].to_numpy(), mode="markers",
            name="Reviewer", text=text,
            # Area grows with the number of audits: a 1/1 accuracy is weaker evidence than 40/40.
            marker={"color": OKABE_ITO[0], "line": {"color": "#ffffff", "width": 1}, "opacity": 0.7,
                    "size": size},
            hovertemplate="%{text}<br>%{x:,.1f} decisions/hour<br>QA accuracy %{y:.1%}<extra></extra>",
        ),
        layout=_layout(
            xaxis={"title": {"text": "Decisions per hour of handle time"}, "rangemode": "tozero"},
            yaxis={"title": {"text": "QA accuracy (agreed / audited)"}, "tickformat": ".0%",
                   "range": [-0.02, 1.02]},
            hovermode="closest",
        ),
    )
    return Chart(chart_id, title, _to_json(fig))


# Wider buckets of violations_30d above the first three single counts, by their upper ends.
_OFFENDER_RANGES: tuple[tuple[int, int | None], ...] = ((6, 9), (10, 19), (20, 49), (50, None))


def offender_bucket_bounds(min_violations: int) -> list[tuple[str, int, int | None]]:
    """(label, lo, hi) from the run's threshold: its first three counts one by one, then wider ranges
    (3, 4, 5, 6–9, 10–19, 20–49, 50+ at the default threshold of 3)."""
    lo = min_violations + 3
    bounds: list[tuple[str, int, int | None]] = [(str(v), v, v) for v in range(min_violations, lo)]
    for _, hi in _OFFENDER_RANGES:
        if hi is not None and hi < lo:
            continue
        bounds.append((f"{lo}+" if hi is None else str(lo) if lo == hi else f"{lo}–{hi}", lo, hi))
        if hi is None:
            break
        lo = hi + 1
    return bounds


def offender_buckets(repeat_offenders: pl.DataFrame, min_violations: int) -> list[tuple[str, int]]:
    v = repeat_offenders["violations_30d"]
    out = []
    for name, lo, hi in offender_bucket_bounds(min_violations):
        mask = v >= lo if hi is None else (v >= lo) & (v <= hi)
        out.append((name, int(mask.sum())))
    return out


def offender_window(window_days: int, ds: date, days_observed: int | None = None) -> str:
    """ "the 30 days up to D", and how many of them had data when not all did."""
    text = f"the {window_days} days up to {ds.isoformat()}"
    if days_observed is not None and days_observed < window_days:
        text += f" ({days_observed} of them observed)"
    return text


def offender_chart(repeat_offenders: pl.DataFrame, ds: date, min_violations: int, window_days: int,
                   days_observed: int | None = None) -> Chart:
    chart_id, title = "fig-offenders", f"Repeat offenders by violations in the last {window_days} days"
    if repeat_offenders.height == 0:
        return Chart(chart_id, title, None,
                     f"No creator had {min_violations} or more violations in "
                     f"{offender_window(window_days, ds, days_observed)}.")
    buckets = offender_buckets(repeat_offenders, min_violations)
    fig = _go(go.Figure,
        _go(go.Bar, x=[b for b, _ in buckets], y=[n for _, n in buckets], marker={"color": OKABE_ITO[4]},
               hovertemplate="%{x} violations: %{y:,} creators<extra></extra>", name="Creators"),
        layout=_layout(
            xaxis={"title": {"text": f"Violations in the last {window_days} days"}, "type": "category"},
            yaxis={"title": {"text": "Creators"}, "rangemode": "tozero"},
            height=340,
        ),
    )
    return Chart(chart_id, title, _to_json(fig), height=340)
