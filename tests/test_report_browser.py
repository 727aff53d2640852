"""The report in a real headless Chromium: every chart draws, no console error, no request leaves the file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import jobs.report as job
from browser.report_helpers import CHROMIUM, DS, open_page, realistic_tables, tiny_tables, write_warehouse
from test_dsa_ingest import NEW_CSV as DSA_NEW_CSV, ZIP as DSA_ZIP  # tests/ is on sys.path (rootdir conftest)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} missing: run tests/setup/ensure_chromium.sh"),
]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
FIGURES = ("fig-trend", "fig-heatmap", "fig-queues", "fig-reviewers", "fig-offenders")
HOSTILE_MARKET = "<img src=x onerror=alert(1)>"
HOSTILE_CATEGORY = "<script>alert(2)</script>"
# Elements a keyboard user would tab to inside the charts (plotly's mode bar buttons, when shown).
CHART_TAB_STOPS_JS = """() => Array.from(document.querySelectorAll(
  '.chart a[href], .chart button, .chart input, .chart select, .chart textarea, .chart [tabindex]'))
  .filter(e => e.tabIndex >= 0).length"""


@contextmanager
def _opened(path: Path, user_data_dir: Path, width: int = 1280) -> Iterator[Any]:
    """A page of Chromium `width` px wide with `path` loaded and its charts (if any) drawn."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context, page = open_page(p, user_data_dir, viewport={"width": width, "height": 900})
        try:
            page.goto(path.as_uri(), wait_until="load")
            for chart in page.query_selector_all("div.chart[data-figure]"):
                page.wait_for_selector(f"#{chart.get_attribute('id')} .main-svg", state="attached", timeout=20_000)
            yield page
        finally:
            context.close()


def _load(report: Path, user_data_dir: Path, screenshot: Path | None = None) -> dict:
    from playwright.sync_api import sync_playwright

    seen: dict = {"requests": [], "console_errors": [], "page_errors": [], "dialogs": []}
    with sync_playwright() as p:
        context, page = open_page(p, user_data_dir)
        try:
            page.on("request", lambda r: seen["requests"].append(r.url))
            page.on("console", lambda m: seen["console_errors"].append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: seen["page_errors"].append(str(e)))

            def on_dialog(d) -> None:
                seen["dialogs"].append(d.message)
                d.dismiss()

            page.on("dialog", on_dialog)
            page.goto(report.as_uri(), wait_until="load")
            for fid in FIGURES:
                page.wait_for_selector(f"#{fid} .main-svg", state="attached", timeout=20_000)
            seen["drawn"] = page.evaluate(
                "ids => ids.map(id => document.querySelectorAll('#' + id + ' .main-svg').length)", list(FIGURES))
            seen["traces"] = page.evaluate(
                "ids => ids.map(id => (document.getElementById(id).data || []).length)", list(FIGURES))
            seen["heatmap_labels"] = page.evaluate(
                "() => Array.from(document.querySelectorAll('#fig-heatmap .ytick text')).map(t => t.textContent)")
            seen["table_text"] = page.inner_text("#queue-table")
            # The queue chart's rows as drawn, top to bottom, and the queue table's rows.
            seen["queue_ticks"] = page.evaluate(
                "() => Array.from(document.querySelectorAll('#fig-queues .ytick text'))"
                ".sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top)"
                ".map(t => t.textContent)")
            seen["queue_rows"] = page.evaluate(
                "() => Array.from(document.querySelectorAll('#queue-table tbody tr td:first-child'))"
                ".map(td => td.textContent)")
            # What plotly.js decoded from the spec (numeric arrays travel as base64 typed arrays).
            seen["chart_tab_stops"] = page.evaluate(CHART_TAB_STOPS_JS)
            seen["reviewer_xy"] = page.evaluate(
                "() => { const t = document.getElementById('fig-reviewers')._fullData[0];"
                " return [Array.from(t.x), Array.from(t.y)]; }")
            page.wait_for_timeout(300)  # let late errors or requests surface
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            context.close()
    return seen


def test_report_renders_offline_in_chromium(tmp_path: Path) -> None:
    tables, manifest, dq = realistic_tables()
    write_warehouse(tmp_path / "wh", tables, {DS: (manifest, dq)})
    report = job.render_day(tmp_path / "wh", DS, pseudonym_key=b"browser-test-key")

    seen = _load(report, tmp_path / "profile", ARTIFACTS / "report.png")

    assert all(n >= 1 for n in seen["drawn"]), dict(zip(FIGURES, seen["drawn"]))
    assert all(n >= 1 for n in seen["traces"]), dict(zip(FIGURES, seen["traces"]))
    assert seen["console_errors"] == [] and seen["page_errors"] == []
    assert seen["requests"] == [report.as_uri()]
    assert seen["chart_tab_stops"] == 0  # a keyboard user tabs past a chart in one step
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000
    reviewers = tables["reviewer_daily"][DS].drop_nulls(["decisions_per_hour", "qa_accuracy"])
    drawn = sorted(zip(*seen["reviewer_xy"], strict=True))
    assert drawn == sorted(zip(reviewers["decisions_per_hour"].to_list(), reviewers["qa_accuracy"].to_list(), strict=True))
    assert len(drawn) > 100
    # The chart lists the queues in the table's order (lowest SLA rate first), from the top.
    assert len(seen["queue_rows"]) == 8 and seen["queue_ticks"] == seen["queue_rows"]
    assert seen["queue_rows"] != sorted(seen["queue_rows"])


# Elements of the page outside the viewport's width, other than those inside a box that scrolls (a
# wide table's) or a chart (plotly clips its own SVG); and the boxes the two anomaly tables are seen in.
_OVERFLOW_JS = """() => {
  const W = document.documentElement.clientWidth, out = [];
  document.querySelectorAll('body *').forEach(e => {
    if (e.closest('.chart')) return;
    let clipped = false;
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement)
      if (getComputedStyle(a).overflowX !== 'visible') { clipped = true; break; }
    const r = e.getBoundingClientRect();
    if (!clipped && r.width && r.right > W + 0.5)
      out.push(e.tagName + '#' + e.id + ' right=' + Math.round(r.right));
  });
  // What is painted of a table: its rectangle cut to every scrolling box around it.
  const seen = id => {
    const t = document.getElementById(id); if (!t) return null;
    let {left, right, top, bottom} = t.getBoundingClientRect();
    for (let a = t.parentElement; a && a !== document.body; a = a.parentElement)
      if (getComputedStyle(a).overflowX !== 'visible') {
        const b = a.getBoundingClientRect();
        left = Math.max(left, b.left); right = Math.min(right, b.right);
      }
    return {left, right, top, bottom};
  };
  return {width: W, scroll_width: document.documentElement.scrollWidth, outside: out,
          anomalies: seen('anomaly-table'), risers: seen('riser-table'),
          chart_tab_stops: (""" + CHART_TAB_STOPS_JS + """)()};
}"""


def _layout_at(report: Path, user_data_dir: Path, width: int) -> dict:
    with _opened(report, user_data_dir, width) as page:
        return page.evaluate(_OVERFLOW_JS)


def _intersect(a: dict, b: dict) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


@pytest.mark.parametrize("width", [1280, 390])
def test_nothing_overflows_the_screen_nor_its_column(tmp_path: Path, width: int) -> None:
    tables, manifest, dq = realistic_tables()
    write_warehouse(tmp_path / "wh", tables, {DS: (manifest, dq)})
    report = job.render_day(tmp_path / "wh", DS, pseudonym_key=b"browser-test-key")

    layout = _layout_at(report, tmp_path / "profile", width)

    assert layout["scroll_width"] <= layout["width"], layout
    assert layout["outside"] == []
    anomalies, risers = layout["anomalies"], layout["risers"]
    assert anomalies and risers, layout
    assert not _intersect(anomalies, risers), layout
    index = _layout_at(tmp_path / "wh" / "reports" / "index.html", tmp_path / "profile", width)
    assert index["scroll_width"] <= index["width"] and index["outside"] == [], index


@pytest.mark.skipif(not DSA_ZIP.exists(), reason="shared DSA sample data not available")
def test_dsa_page_does_not_scroll_sideways_on_a_phone(tmp_path: Path) -> None:
    from jobs.dsa import cmd_daily
    from jobs.dsa_ingest import ingest

    ingest([DSA_ZIP, DSA_NEW_CSV], tmp_path / "dsa")
    report = Path(cmd_daily(tmp_path / "dsa", DS.isoformat(), run_ts="2024-03-15T02:00Z").report)

    layout = _layout_at(report, tmp_path / "profile", 390)

    assert layout["scroll_width"] <= layout["width"], layout
    assert layout["outside"] == []
    assert layout["chart_tab_stops"] == 0  # the DSA page shares the day page's plotly config


# Each chart's drawn width, the width of its box, and whether a page break may cut it or a table.
_PRINT_JS = """() => ({
  main: document.querySelector('main').getBoundingClientRect().width,
  charts: Array.from(document.querySelectorAll('div.chart')).map(d => ({
    id: d.id, box: d.getBoundingClientRect().width,
    drawn: d.querySelector('.main-svg').getBoundingClientRect().width,
    unbroken: getComputedStyle(d).breakInside === 'avoid'})),
  tables_unbroken: Array.from(document.querySelectorAll('table')).every(t => getComputedStyle(t).breakInside === 'avoid'),
})"""


def test_printed_charts_fit_the_page_and_come_back_after(tmp_path: Path) -> None:
    tables, manifest, dq = realistic_tables()
    write_warehouse(tmp_path / "wh", tables, {DS: (manifest, dq)})
    report = job.render_day(tmp_path / "wh", DS, pseudonym_key=b"browser-test-key")
    with _opened(report, tmp_path / "profile") as page:
        screen = page.evaluate(_PRINT_JS)
        assert sorted(c["id"] for c in screen["charts"]) == sorted(FIGURES)
        page.emulate_media(media="print")
        page.wait_for_timeout(300)
        printed = page.evaluate(_PRINT_JS)
        pdf = page.pdf(format="A4")
        page.emulate_media(media="screen")
        page.wait_for_timeout(300)
        after = page.evaluate(_PRINT_JS)

    # A4 portrait within Chromium's default margins: 210 mm - 2 x 10 mm at 96 px/in.
    a4_width = (210 - 20) / 25.4 * 96
    assert len(printed["charts"]) == len(FIGURES) and pdf.startswith(b"%PDF")
    for chart in printed["charts"]:
        assert chart["drawn"] <= min(chart["box"], a4_width) + 1, chart
        assert chart["unbroken"], chart
    assert printed["tables_unbroken"]
    # Back on screen, each chart fills its box again.
    assert [round(c["drawn"]) for c in after["charts"]] == [round(c["drawn"]) for c in screen["charts"]]
    assert all(abs(c["drawn"] - c["box"]) <= 1 for c in after["charts"])
    assert any(c["drawn"] > a4_width for c in screen["charts"])  # the screen is wider than the paper


def test_hostile_names_show_as_text_and_run_nothing(tmp_path: Path) -> None:
    tables, manifest, dq = tiny_tables(market_b=HOSTILE_MARKET, category_b=HOSTILE_CATEGORY)
    write_warehouse(tmp_path / "wh", tables, {DS: (manifest, dq)})
    report = job.render_day(tmp_path / "wh", DS, pseudonym_key=b"browser-test-key")

    seen = _load(report, tmp_path / "profile")

    assert seen["dialogs"] == []
    assert seen["console_errors"] == [] and seen["page_errors"] == []
    assert seen["requests"] == [report.as_uri()]  # the <img src=x> was never an element
    assert HOSTILE_MARKET in seen["heatmap_labels"]  # plotly shows the name literally
    assert HOSTILE_MARKET in seen["table_text"]


def _dsa_page(tmp_path: Path) -> Path:
    from jobs.dsa import cmd_daily
    from jobs.dsa_ingest import ingest

    ingest([DSA_ZIP, DSA_NEW_CSV], tmp_path / "dsa")
    return Path(cmd_daily(tmp_path / "dsa", DS.isoformat(), run_ts="2024-03-15T02:00Z").report)


# Per chart: its box, and how far its axis labels and plot area reach, as drawn.
_DSA_CHARTS_JS = """() => Array.from(document.querySelectorAll('div.chart')).map(d => {
  const box = d.getBoundingClientRect();
  const ticks = Array.from(d.querySelectorAll('.ytick text, .xtick text')).map(t => t.getBoundingClientRect());
  return {id: d.id, left: box.left, right: box.right,
          ticks_left: Math.min(...ticks.map(r => r.left)), ticks_right: Math.max(...ticks.map(r => r.right)),
          plot_width: d._fullLayout.xaxis._length};
})"""


@pytest.mark.skipif(not DSA_ZIP.exists(), reason="shared DSA sample data not available")
def test_dsa_charts_keep_their_labels_and_a_plot_on_a_phone(tmp_path: Path) -> None:
    with _opened(_dsa_page(tmp_path), tmp_path / "profile", 390) as page:
        charts = page.evaluate(_DSA_CHARTS_JS)
    assert len(charts) == 3, charts
    for c in charts:
        # No label cut at the chart's edge, and bars get at least a third of the width.
        assert c["ticks_left"] >= c["left"] - 0.5 and c["ticks_right"] <= c["right"] + 0.5, c
        assert c["plot_width"] >= (c["right"] - c["left"]) / 3, c


@pytest.mark.skipif(not DSA_ZIP.exists(), reason="shared DSA sample data not available")
def test_dsa_page_prints_like_the_day_page(tmp_path: Path) -> None:
    with _opened(_dsa_page(tmp_path), tmp_path / "profile") as page:
        screen = page.evaluate(_PRINT_JS)
        page.emulate_media(media="print")
        page.wait_for_timeout(300)
        printed = page.evaluate(_PRINT_JS)
        skip_link_shown = page.evaluate("() => getComputedStyle(document.querySelector('.skip-link')).display")
        page.emulate_media(media="screen")
        page.wait_for_timeout(300)
        after = page.evaluate(_PRINT_JS)
    a4_width = (210 - 20) / 25.4 * 96
    assert any(c["drawn"] > a4_width for c in screen["charts"])
    for chart in printed["charts"]:
        assert chart["drawn"] <= min(chart["box"], a4_width) + 1, chart
        assert chart["unbroken"], chart
    assert printed["tables_unbroken"] and skip_link_shown == "none"
    assert [round(c["drawn"]) for c in after["charts"]] == [round(c["drawn"]) for c in screen["charts"]]


# The index table's own width and the width of the box it scrolls in.
_INDEX_FIT_JS = """() => {
  const t = document.getElementById('report-index'), box = t.parentElement.getBoundingClientRect();
  return {table: t.getBoundingClientRect().width, box: box.width};
}"""


def test_the_index_fits_a_phone_without_scrolling_its_table(tmp_path: Path) -> None:
    """The index an analyst opens every morning, on a phone: the day and its page link were two
    columns repeating the date, and the table (its widest rows: a run of days without data, and a
    day with every badge) was wider than a 390 px screen, its last column scrolled out of sight."""
    import datetime as dt

    from reports.model import IndexEntry
    from reports.render import render_index

    entries = [
        # Decisions and actioned of a day of the benchmarks' largest size.
        IndexEntry(dt.date(2024, 3, 31), "2024-03-31.html", "warn", 99_274_370, 14_895_112,
                   latest_failed=True, stale=True),
        IndexEntry(dt.date(2024, 3, 30), None, "pass", 99_274_370, 14_895_112, stale=True),
        IndexEntry(dt.date(2024, 3, 20), None, None, None, None, missing_until=dt.date(2024, 3, 29)),
        IndexEntry(dt.date(2024, 3, 19), "2024-03-19.html", "fail", None, None),
    ]
    index = tmp_path / "index.html"
    index.write_text(render_index(entries), encoding="utf-8")
    with _opened(index, tmp_path / "profile", 390) as page:
        fit = page.evaluate(_INDEX_FIT_JS)
    assert fit["table"] <= fit["box"] + 0.5, fit
