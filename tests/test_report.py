"""The daily HTML report: contents from hand-built tables, escaping, determinism, empty days, jobs.report I/O."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path

import plotly.graph_objects as go
import polars as pl
import pytest

import jobs.report as job
from jobs import cli
from browser.report_helpers import DS, frame, realistic_tables, report_data, tiny_tables, write_warehouse
from tests.index_html import index_row, index_rows
from reports import figures
from reports.fmt import (
    fmt_distinct,
    fmt_float,
    fmt_int,
    fmt_pct,
    fmt_pp,
    fmt_rate_observed,
    fmt_seconds,
    fmt_signed_pct,
    thousands_in_text,
)
from reports.pseudonym import DEMO_KEY, pseudonymise
from reports.render import render_day, render_index
from reports.model import IndexEntry
from transforms.params import OffenderParams

KEY = b"test-key-1"
RUN_TS = "2024-03-15T02:00:03Z"


def _strip_plotly(html: str) -> str:
    """The page without the inlined plotly.js bundle, so assertions look at our text only."""
    return re.sub(r"<script>/\*\*\n\* plotly\.js.*?</script>", "<script>PLOTLY</script>", html, flags=re.S)


def _spec_texts(html: str) -> list[str]:
    """The JSON of every `<script type="application/json">` block: plotly's config and each figure."""
    return re.findall(r'<script type="application/json" id="[^"]+">(.*?)</script>', html, flags=re.S)


def _tile(html: str, key: str) -> str:
    m = re.search(rf'<div class="tile" id="kpi-{key}">(.*?)</div>\s*</div>', html, flags=re.S)
    assert m, f"tile {key} missing"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", m.group(1)))


@pytest.fixture(scope="module")
def tiny_html() -> str:
    tables, manifest, dq = tiny_tables()
    return render_day(report_data(tables, DS, manifest, dq), run_ts=RUN_TS, pseudonym_key=KEY)


def test_kpi_values_and_deltas(tiny_html: str) -> None:
    expected = {
        # No change at the shown precision has no sign either (DS-7 had exactly as many decisions).
        "decisions": ("1,000", "+25.0%", "0.0%"),
        "actioned": ("100", "+100.0%", "+81.8%"),
        "proactive_rate": ("62.0%", "+12.0 pp", "+2.0 pp"),
        "zero_view_rate": ("25.0%", "-5.0 pp", "+5.0 pp"),
        "tta_p50_s": ("1h 30m", "+50.0%", "+50.0%"),
        "sla_rate": ("95.0%", "+5.0 pp", "0.0 pp"),
        "overturn_rate": ("10.0%", "-10.0 pp", "-5.0 pp"),
    }
    for key, (value, vs_prev, vs_week) in expected.items():
        text = _tile(tiny_html, key)
        assert f" {value} vs previous day: {vs_prev} vs 7 days earlier: {vs_week}" in text, (key, text)
    # A week earlier nobody was audited: no accuracy to compare with, said so rather than 0.
    qa = _tile(tiny_html, "qa_accuracy")
    assert " 80.0% vs previous day: -10.0 pp vs 7 days earlier: – (n/a)" in qa, qa


def test_anomalies_risers_and_sections(tiny_html: str) -> None:
    page = _strip_plotly(tiny_html)
    anomalies = re.search(r'<table id="anomaly-table">(.*?)</table>', page, flags=re.S).group(1)
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>", anomalies)
    # Sorted by |z|: the market row (33.3) before the rollup (25.0); non-anomalies left out.
    assert rows == [("US", "hate_speech", "spike"), ("ALL", "hate_speech", "spike")]
    assert "33.30" in anomalies and "+500.0%" in anomalies
    risers = re.search(r'<table id="riser-table">(.*?)</table>', page, flags=re.S).group(1)
    assert "<td>US</td><td>hate_speech</td>" in risers
    assert "<td>ALL</td><td>ALL</td>" not in risers
    quarantine = re.search(r'<table id="quarantine-table">(.*?)</table>', page, flags=re.S).group(1)
    assert "<td>decisions</td><td>bad_mode</td><td class=\"num\">2</td>" in quarantine
    assert "<b>3</b>" in quarantine
    expectations = re.search(r'<table id="expectation-table">(.*?)</table>', page, flags=re.S).group(1)
    assert "volume_vs_trailing_7d" in expectations and "grain_unique" not in expectations
    assert 'class="badge warn" id="dq-badge">warn<' in page
    run = re.search(r'<section id="run">(.*?)</section>', page, flags=re.S).group(1)
    for text in ("abc1234def", "polars", "1,003", "2.1.0"):
        assert text in run
    assert "read_stage_compute" not in run  # timings vary between reruns; the page must not
    assert "5 creators with 3 or more violations" in page


def test_reviewer_and_creator_ids_never_appear(tiny_html: str) -> None:
    for raw in ("alice.smith@corp", "bob.jones@corp", "carol.ng@corp", "creator-SECRET"):
        assert raw not in tiny_html
    assert "alice" not in _strip_plotly(tiny_html)  # plotly.js itself knows "aliceblue"
    alice = pseudonymise("alice.smith@corp", KEY)
    assert re.fullmatch(r"pseud-[0-9a-f]{12}", alice)
    assert alice in tiny_html and pseudonymise("bob.jones@corp", KEY) in tiny_html
    # Keyed: another key gives other pseudonyms, so the ids cannot be recovered by hashing guesses.
    assert pseudonymise("alice.smith@corp", b"other") != alice
    assert 'id="demo-key"' not in tiny_html


def test_reviewer_hover_names_only_teams_of_at_least_five() -> None:
    tables, manifest, dq = tiny_tables()
    base = tables["reviewer_daily"][DS].row(0, named=True)  # alice: plotted (timed decisions, audits)
    rows = [{**base, "reviewer_id": f"big-{i}@corp", "team": "trust-big"} for i in range(figures.MIN_TEAM_SHOWN)]
    rows += [{**base, "reviewer_id": "solo@corp", "team": "trust-solo"},
             {**base, "reviewer_id": "few-1@corp", "team": "trust-few"}]
    rows += [{**base, "reviewer_id": f"few-{i}@corp", "team": "trust-few", "qa_audits": 0, "qa_accuracy": None}
             for i in range(2, 2 + figures.MIN_TEAM_SHOWN)]  # in the team that day, but not plotted
    tables["reviewer_daily"][DS] = frame("reviewer_daily", rows)
    html = render_day(report_data(tables, DS, manifest, dq), run_ts=RUN_TS, pseudonym_key=KEY)
    spec = next(json.loads(s) for s in _spec_texts(html) if '"Reviewer"' in s)
    hover = dict(zip([t.split("<br>")[0] for t in spec["data"][0]["text"]], spec["data"][0]["text"]))
    assert hover[pseudonymise("big-0@corp", KEY)].split("<br>")[1] == "team trust-big"
    for rid in ("solo@corp", "few-1@corp"):
        assert hover[pseudonymise(rid, KEY)].split("<br>")[1] == "small team"
    assert "trust-solo" not in html and "trust-few" not in html


def test_demo_key_is_announced() -> None:
    tables, manifest, dq = tiny_tables()
    html = render_day(report_data(tables, DS, manifest, dq), run_ts=RUN_TS, pseudonym_key=DEMO_KEY)
    assert 'id="demo-key"' in html and "demo key" in html


def test_plotly_inlined_once_and_nothing_external(tiny_html: str) -> None:
    assert tiny_html.count("* plotly.js v") == 1
    page = _strip_plotly(tiny_html)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "cdn.plot.ly" not in page and "MathJax" not in page and "@import" not in page
    for fid in ("fig-trend", "fig-heatmap", "fig-queues", "fig-reviewers", "fig-offenders"):
        assert f'<div id="{fid}" class="chart' in page
        assert f'<script type="application/json" id="{fid}-spec">' in page
    assert len(tiny_html.encode()) < 10 * 1024 * 1024


HOSTILE_MARKET = "<script>alert(1)</script>"
HOSTILE_CATEGORY = "x\" onmouseover='alert(2)' javascript:alert(3)</script><!--"


def test_data_strings_are_escaped() -> None:
    tables, manifest, dq = tiny_tables(market_b=HOSTILE_MARKET, category_b=HOSTILE_CATEGORY)
    manifest["engine"] = "<img src=x onerror=alert(4)>"
    dq["results"][1]["details"] = "<b>bold</b>"
    data = dataclasses.replace(
        report_data(tables, DS, manifest, dq),
        offender_categories=pl.DataFrame({"policy_category": [HOSTILE_CATEGORY], "creators": [1], "violations": [3]}),
    )
    html = render_day(data, run_ts="<i>ts</i>", pseudonym_key=KEY)
    page = _strip_plotly(html)
    specs = _spec_texts(page)
    # Outside the JSON data blocks (where a quote is just a JSON-escaped character) no raw markup survives.
    markup = re.sub(r'<script type="application/json" id="[^"]+">.*?</script>', "", page, flags=re.S)
    for raw in (HOSTILE_MARKET, HOSTILE_CATEGORY, "<img src=x", "<b>bold</b>", "<i>ts</i>", "onmouseover='"):
        assert raw not in markup
    # Shown as text in tables...
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in page
    assert "x&#34; onmouseover=&#39;alert(2)&#39; javascript:alert(3)&lt;/script&gt;&lt;!--" in page
    # ...and inside the JSON figure specs nothing can close the <script> element or open a comment.
    assert len(specs) == 6  # the plotly config and five figures
    for spec in specs:
        assert "</" not in spec and "<!--" not in spec and "<" not in spec
    # Figure text is entity-encoded so plotly shows it literally instead of parsing its pseudo-HTML.
    assert "\\u0026lt;script\\u0026gt;alert(1)\\u0026lt;\\u002fscript\\u0026gt;" in page


def test_same_inputs_give_identical_bytes() -> None:
    tables, manifest, dq = tiny_tables()
    a = render_day(report_data(tables, DS, manifest, dq), run_ts=RUN_TS, pseudonym_key=KEY)
    # Rows in another order must not change the page.
    shuffled = {t: {d: df.reverse() for d, df in days.items()} for t, days in tables.items()}
    b = render_day(report_data(shuffled, DS, dict(reversed(list(manifest.items()))), dq),
                   run_ts=RUN_TS, pseudonym_key=KEY)
    assert a == b
    c = render_day(report_data(tables, DS, manifest, dq), run_ts="2024-03-15T03:00:00Z", pseudonym_key=KEY)
    assert c != a and "2024-03-15T03:00:00Z" in c


def test_unpublished_day_renders_with_explanation() -> None:
    empty_ds = DS + dt.timedelta(days=3)
    tables, _, _ = tiny_tables()
    html = render_day(report_data(tables, empty_ds, None, None), run_ts="unknown", pseudonym_key=KEY)
    page = _strip_plotly(html)
    assert 'id="not-published"' in page and "No published data for 2024-03-17" in page
    assert 'id="kpis-empty"' in page and 'id="run-empty"' in page
    for fid in ("fig-heatmap", "fig-queues", "fig-reviewers", "fig-offenders"):
        assert f'id="{fid}-empty"' in page and f'<div id="{fid}" class="chart' not in page
        # Not "no decisions were taken": the run may have staged a whole day before the gate held it.
        assert re.search(rf'<div id="{fid}-empty" class="empty">Nothing was published for 2024-03-17.</div>', page)
    assert "reviewers active" not in page and "No combination with at least" not in page
    # The days before it are still context worth seeing, with today as a gap.
    assert '<div id="fig-trend" class="chart' in page
    assert "21 of the last 29 days have published data" in page


def test_the_page_states_the_thresholds_its_tables_were_computed_with() -> None:
    """The baseline and anomaly notes, the risers' floor and the offenders' threshold, window and
    buckets come from the run's parameters (its manifest), not the defaults the page once wrote in."""
    from transforms.params import TrendParams

    tables, manifest, dq = tiny_tables()
    data = dataclasses.replace(
        report_data(tables, DS, manifest, dq),
        trend_params=TrendParams(min_baseline_days=25, zscore_threshold=2.5, min_volume=5.0, window_days=21),
        offender_params=OffenderParams(min_violations=5, window_days=10),
    )
    page = _strip_plotly(render_day(data, run_ts=RUN_TS, pseudonym_key=KEY))
    text = re.sub(r"\s+", " ", page)
    assert "Anomaly detection needs 25 observed days of baseline" in text
    assert "|z| &ge; 2.5 against the 21-day baseline, with at least 5 actioned" in text
    assert "creators with 5 or more violations in the 10 days up to 2024-03-14" in text
    html = render_day(data, run_ts=RUN_TS, pseudonym_key=KEY)
    spec = next(json.loads(s) for s in _spec_texts(html) if '"Creators"' in s)
    assert spec["data"][0]["x"][:4] == ["5", "6", "7", "8–9"] and "Violations in the last 10 days" in html
    # At the defaults, the page reads as it always did.
    default = re.sub(r"\s+", " ", _strip_plotly(render_day(report_data(tables, DS, manifest, dq), run_ts=RUN_TS, pseudonym_key=KEY)))
    assert "|z| &ge; 3.0 against the 28-day baseline, with at least 20 actioned" in default
    assert "creators with 3 or more violations in the 30 days" in default


@pytest.mark.parametrize(("threshold", "labels"), [
    (3, ["3", "4", "5", "6–9", "10–19", "20–49", "50+"]),
    (1, ["1", "2", "3", "4–9", "10–19", "20–49", "50+"]),
    (8, ["8", "9", "10", "11–19", "20–49", "50+"]),
    (60, ["60", "61", "62", "63+"]),
])
def test_offender_buckets_start_at_the_threshold(threshold: int, labels: list[str]) -> None:
    assert [label for label, _, _ in figures.offender_bucket_bounds(threshold)] == labels
    ro = pl.DataFrame({"violations_30d": list(range(threshold, threshold + 80))})
    assert sum(n for _, n in figures.offender_buckets(ro, threshold)) == 80  # every offender in one bucket


def test_empty_warehouse_day_has_no_charts_at_all() -> None:
    html = render_day(report_data({}, DS, None, None), run_ts="unknown", pseudonym_key=KEY)
    assert 'class="chart' not in html  # no empty axes anywhere
    assert "plotly.js v" not in html  # nothing to draw, so no 4.8 MB library either
    assert 'id="fig-trend-empty"' in html and "No actioned violations were published" in html


def test_day_without_decisions_renders_with_explanation() -> None:
    """Published, but nothing happened: ALL/ALL row with zeros, empty partitions elsewhere."""
    tables = {"violation_daily": {DS: frame("violation_daily", [
        {"market": "ALL", "policy_category": "ALL", "actioned": 0, "proactive": 0, "automated": 0, "zero_view": 0,
         "within_24h": 0, "removed": 0, "appeals_resolved": 0, "appeals_overturned": 0}])},
        "violation_trends": {DS: frame("violation_trends", [
            {"market": "ALL", "policy_category": "ALL", "actioned": 0, "baseline_days": 0, "is_anomaly": False}])}}
    html = render_day(report_data(tables, DS, None, None), run_ts="t", pseudonym_key=KEY)
    page = _strip_plotly(html)
    assert 'id="not-published"' not in page
    assert _tile(page, "decisions").startswith(" Decisions 0 ")
    assert "No actioned violations on 2024-03-14." in page
    assert "No decisions were taken from any queue on 2024-03-14." in page
    assert 'id="baseline-note"' in page


def test_first_days_without_baseline_explain_missing_anomalies() -> None:
    tables, manifest, dq = tiny_tables()
    trends = tables["violation_trends"][DS].with_columns(
        pl.lit(5, dtype=pl.Int64).alias("baseline_days"), pl.lit(None, dtype=pl.Float64).alias("zscore"),
        pl.lit(False).alias("is_anomaly"), pl.lit(None, dtype=pl.String).alias("direction"))
    tables["violation_trends"][DS] = trends
    for back in range(6, 21):
        tables["violation_daily"].pop(DS - dt.timedelta(days=back), None)
    html = render_day(report_data(tables, DS, manifest, dq), run_ts=RUN_TS, pseudonym_key=KEY)
    page = _strip_plotly(html)
    note = re.sub(r"\s+", " ", re.search(r'<div class="banner" id="baseline-note">(.*?)</div>', page, re.S).group(1))
    assert "needs 14 observed days of baseline" in note and "only 5 are available" in note
    assert "the baseline is shorter than 14 days" in page
    assert '<div id="fig-trend" class="chart' in page  # the trend itself still draws
    assert "6 of the last 29 days have published data" in page


def test_the_first_day_reads_in_the_singular_without_a_zero_baseline() -> None:
    tables, manifest, dq = tiny_tables()
    tables["violation_daily"] = {DS: tables["violation_daily"][DS]}
    tables["violation_trends"][DS] = tables["violation_trends"][DS].with_columns(
        pl.lit(0, dtype=pl.Int64).alias("baseline_days"), pl.lit(None, dtype=pl.Float64).alias("zscore"),
        pl.lit(False).alias("is_anomaly"), pl.lit(None, dtype=pl.String).alias("direction"))
    text = re.sub(r"\s+", " ", _strip_plotly(render_day(report_data(tables, DS, manifest, dq), run_ts=RUN_TS, pseudonym_key=KEY)))
    assert "needs 14 observed days of baseline before 2024-03-14; none is available," in text
    assert "only 0" not in text
    assert "1 of the last 29 days has published data" in text


def test_risers_say_what_qualifies_them_and_what_the_7_day_mean_covers(tiny_html: str) -> None:
    page = re.sub(r"\s+", " ", _strip_plotly(tiny_html))
    assert "<h3>Top risers: z-score above 0 or up on a week earlier</h3>" in page
    assert "that rose" not in page  # a riser above its baseline may be down on the week
    assert "The 7-day mean is over the observed days of 2024-03-08 to 2024-03-14, the day itself included." in page


def test_queue_hover_writes_durations_as_the_table_does(tiny_html: str) -> None:
    spec = next(json.loads(s) for s in _spec_texts(tiny_html) if '"Wait p90"' in s)
    traces = {t["name"]: t for t in spec["data"]}
    table = re.search(r'<table id="queue-table">(.*?)</table>', tiny_html, re.S).group(1)
    assert "5h 33m" in table and "5h 33m" in traces["Wait p90"]["customdata"]  # 20,000 s
    assert "1h 00m" in traces["Wait p50"]["customdata"] and "1d 00h" in traces["SLA"]["customdata"]
    for t in traces.values():
        assert t["hovertemplate"].count("%{customdata}") == 1 and " s<" not in t["hovertemplate"]


def test_index_lists_days_newest_first_and_escapes() -> None:
    html = render_index([
        IndexEntry(dt.date(2024, 3, 1), "2024-03-01.html", "pass", 10, 2),
        IndexEntry(dt.date(2024, 3, 3), "2024-03-03.html", "fail", None, None),
        IndexEntry(dt.date(2024, 3, 2), "javascript:alert(1)\"><b>", "warn", 1234, 5),
    ])
    dates = [day for day, _ in index_rows(html)]
    assert dates == ["2024-03-03", "2024-03-02", "2024-03-01"]
    assert '"><b>' not in html and "&#34;&gt;&lt;b&gt;" in html
    assert "1,234" in html and '<span class="badge fail">fail</span>' in html


def test_pages_name_their_tables_and_skip_to_the_report(tiny_html: str) -> None:
    from browser.report_helpers import a11y_problems, link_texts

    tables, _, _ = tiny_tables()
    manifest, dq = _failed_run(DS + dt.timedelta(days=1))
    failed = render_day(report_data(tables, DS + dt.timedelta(days=1), manifest, dq), run_ts=RUN_TS, pseudonym_key=KEY)
    index = render_index([
        IndexEntry(dt.date(2024, 3, 3), "2024-03-03.html", "fail", None, None),
        IndexEntry(dt.date(2024, 3, 2), None, "pass", 12, 3),
        IndexEntry(dt.date(2024, 3, 1), "2024-03-01.html", "warn", 10, 2, latest_failed=True, stale=True),
    ])
    for page in (tiny_html, failed, index):
        assert a11y_problems(page) == []
    assert tiny_html.count("<table") >= 10 and failed.count("<table") >= 4
    # The index links each day by its date, and says in words what its markers mean.
    assert [t for h, t in link_texts(index) if h.endswith(".html")] == ["2024-03-03", "2024-03-01"]
    legend = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.search(r'<dl class="note" id="index-legend">(.*?)</dl>', index, re.S).group(1)))
    assert "no page published without a report" in legend
    assert "latest run failed a later run of the day failed the data-quality gate" in legend
    assert "stale history its trends and repeat offenders were computed from earlier days" in legend
    plain = render_index([IndexEntry(dt.date(2024, 3, 1), "2024-03-01.html", "pass", 10, 2)])
    assert 'id="index-legend"' not in plain


# ------------------------------------------------------------------ jobs.report (the I/O edge)
def test_job_renders_from_warehouse_atomically_and_reproducibly(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(job.KEY_ENV, raising=False)
    tables, manifest, dq = tiny_tables()
    write_warehouse(tmp_path, tables, {DS: (manifest, dq)})
    # A candidate that never got published must not leak into the report.
    (tmp_path / "_candidates" / f"ds={DS}").mkdir(parents=True)

    path = job.render_day(tmp_path, DS, pseudonym_key=KEY)
    assert path == tmp_path / "reports" / "2024-03-14.html"
    html = path.read_text(encoding="utf-8")
    assert RUN_TS in html  # the manifest's timestamp, not the clock
    assert pseudonymise("alice.smith@corp", KEY) in html and "alice.smith" not in html
    # Offender categories come from creator_category_daily, still without creator ids.
    cats = re.search(r'<table id="offender-category-table">(.*?)</table>', html, re.S).group(1)
    assert "<td>hate_speech</td><td class=\"num\">1</td><td class=\"num\">40</td>" in cats
    assert "creator-SECRET" not in html
    assert _tile(html, "decisions").startswith(" Decisions 1,000 vs previous day: +25.0%")
    assert not [p for p in path.parent.iterdir() if ".tmp" in p.name]

    first = path.read_bytes()
    job.render_day(tmp_path, DS, pseudonym_key=KEY)
    assert path.read_bytes() == first

    index = (tmp_path / "reports" / "index.html").read_text(encoding="utf-8")
    assert '<a href="2024-03-14.html">' in index and '<span class="badge warn">warn</span>' in index
    row = index_row(index, "2024-03-14")
    assert re.findall(r'<td class="num">([^<]*)</td>', row) == ["1,000", "100"]


def test_offender_categories_come_from_the_manifest_when_the_run_kept_them(tmp_path: Path) -> None:
    # A run since the history stage computes them keeps them in its manifest; the report then
    # shows those figures and reads no creator_category_daily (here: one that disagrees with them).
    tables, manifest, dq = tiny_tables()
    kept = [{"policy_category": "spam", "creators": 7, "violations": 21}]
    write_warehouse(tmp_path, tables, {DS: ({**manifest, "offender_categories": kept}, dq)})
    data = job.load_report_data(tmp_path, DS)
    assert data.offender_categories.to_dicts() == kept
    html = job.render_day(tmp_path, DS, pseudonym_key=KEY).read_text(encoding="utf-8")
    cats = re.search(r'<table id="offender-category-table">(.*?)</table>', html, re.S).group(1)
    assert '<td>spam</td><td class="num">7</td><td class="num">21</td>' in cats and "hate_speech" not in cats
    # Without the key (a day published before), the same warehouse is counted from the published days.
    write_warehouse(tmp_path / "older", tables, {DS: (manifest, dq)})
    older = job.load_report_data(tmp_path / "older", DS).offender_categories
    assert ("hate_speech", 1, 40) in older.select("policy_category", "creators", "violations").rows()


def test_offender_window_says_how_many_of_its_days_were_observed(tmp_path: Path) -> None:
    tables, manifest, dq = tiny_tables()
    # A warehouse two days old: the 30-day window of DS holds DS-1 and DS only.
    tables["creator_category_daily"][DS - dt.timedelta(days=1)] = tables["creator_category_daily"][DS]
    write_warehouse(tmp_path, tables, {DS: (manifest, dq)})
    data = job.load_report_data(tmp_path, DS)
    assert data.offender_days_observed == 2
    text = re.sub(r"\s+", " ", _strip_plotly(render_day(data, run_ts=RUN_TS, pseudonym_key=KEY)))
    assert "5 creators with 3 or more violations in the 30 days up to 2024-03-14 (2 of them observed)" in text
    # The chart's own message when nobody qualifies says the same.
    none = dataclasses.replace(data, repeat_offenders=data.repeat_offenders.clear())
    text = re.sub(r"\s+", " ", _strip_plotly(render_day(none, run_ts=RUN_TS, pseudonym_key=KEY)))
    assert "No creator had 3 or more violations in the 30 days up to 2024-03-14 (2 of them observed)." in text
    # A full window reads as before.
    full = dataclasses.replace(data, offender_days_observed=30)
    text = re.sub(r"\s+", " ", _strip_plotly(render_day(full, run_ts=RUN_TS, pseudonym_key=KEY)))
    assert "violations in the 30 days up to 2024-03-14 (" in text and "of them observed" not in text


def test_job_key_precedence_and_missing_day(tmp_path: Path, monkeypatch) -> None:
    tables, manifest, dq = tiny_tables()
    write_warehouse(tmp_path, tables, {DS: (manifest, dq)})
    monkeypatch.setenv(job.KEY_ENV, "env-key")
    html = job.render_day(tmp_path, DS, pseudonym_key=KEY).read_text(encoding="utf-8")
    assert pseudonymise("alice.smith@corp", b"env-key") in html
    monkeypatch.delenv(job.KEY_ENV)
    html = job.render_day(tmp_path, DS).read_text(encoding="utf-8")
    assert pseudonymise("alice.smith@corp", DEMO_KEY) in html and 'id="demo-key"' in html

    # A day whose run failed the gate: dq.json exists, nothing published.
    failed = DS + dt.timedelta(days=1)
    write_warehouse(tmp_path, {}, {failed: (None, {"ds": str(failed), "verdict": "fail", "results": [
        {"table": "violation_daily", "expectation": "reconciles", "severity": "critical", "success": False,
         "observed_value": {"diff": 3}, "details": "actioned != staged violations"}]})})
    page = job.render_day(tmp_path, failed).read_text(encoding="utf-8")
    assert 'id="not-published"' in page and "reconciles" in page
    assert "failed the data-quality gate on violation_daily.reconciles" in re.sub(r"\s+", " ", page)
    index = (tmp_path / "reports" / "index.html").read_text(encoding="utf-8")
    # Every day with a page (linked) and every published day (the trend's earlier days: no page).
    assert re.findall(r'<a href="(\d{4}-\d{2}-\d{2})\.html">', index) == ["2024-03-15", "2024-03-14"]
    days = [day for day, _ in index_rows(index)]
    published = sorted((str(d) for d in tables["violation_daily"]), reverse=True)
    assert days == ["2024-03-15", *published] and index.count(">no page</span>") == len(published) - 1
    assert '<span class="badge fail">fail</span>' in index


def test_index_shows_days_without_data_between_listed_days(tmp_path: Path) -> None:
    # A month with holes: a day whose input never came (no run, no tables, no page) and three such
    # days in a row. Unlisted, the index read as if nothing were missing.
    tables, manifest, dq = tiny_tables()
    holes = [dt.date(2024, 3, 10), dt.date(2024, 3, 2), dt.date(2024, 3, 3), dt.date(2024, 3, 4)]
    for day in holes:
        tables["violation_daily"].pop(day)
    write_warehouse(tmp_path, tables, {DS: (manifest, dq)})
    job.render_day(tmp_path, DS, pseudonym_key=KEY)
    index = (tmp_path / "reports" / "index.html").read_text(encoding="utf-8")

    rows = index_rows(index)
    missing = [day for day, cells in rows if '<span class="badge">no data</span>' in cells]
    assert missing == ["2024-03-10", "2024-03-02 to 2024-03-04"]
    # Every calendar day from the first published to the last is on exactly one row.
    covered = []
    for day, _ in rows:
        first, _, last = day.partition(" to ")
        d, last = dt.date.fromisoformat(first), dt.date.fromisoformat(last or first)
        while d <= last:
            covered.append(d)
            d += dt.timedelta(days=1)
    first_day = min(tables["violation_daily"])
    assert sorted(covered) == [first_day + dt.timedelta(days=i) for i in range((DS - first_day).days + 1)]
    assert len(covered) == len(set(covered))
    # The header counts the days listed for what they hold, not the holes; the legend says what they mean.
    listed = len(tables["violation_daily"])
    assert f"{listed} days published or with a report" in index
    assert "<dt>no data</dt>" in index


def _local_links(page: Path) -> dict[str, Path]:
    """A page's links to other files, by text, each resolved as a browser opening the page would."""
    from browser.report_helpers import link_texts

    html = page.read_text(encoding="utf-8")
    return {text: page.parent / href for href, text in link_texts(html) if not href.startswith("#")}


def test_day_pages_link_back_across_days_without_a_page(tmp_path: Path) -> None:
    tables, manifest, dq = tiny_tables()
    failed = DS - dt.timedelta(days=7)  # a day whose run failed the gate: a page, no tables
    for table in tables.values():
        table.pop(failed, None)
    write_warehouse(tmp_path, tables, {DS: (manifest, dq), failed: _failed_run(failed)})
    first = DS - dt.timedelta(days=9)
    for day in (first, failed, DS):  # the days between have tables and no page (`run --no-report`)
        job.render_day(tmp_path, day, pseudonym_key=KEY)

    links = {day: _local_links(job.report_path(tmp_path, day)) for day in (first, failed, DS)}
    for day, found in links.items():
        assert all(target.is_file() for target in found.values()), (day, found)
        assert found["All days"] == tmp_path / "reports" / "index.html"
    # Back a day: to the latest earlier page, whichever days in between have none; none from the first.
    previous = {day: [t for text, t in found.items() if text.startswith("Previous report")] for day, found in links.items()}
    assert previous == {first: [], failed: [job.report_path(tmp_path, first)], DS: [job.report_path(tmp_path, failed)]}


def test_report_command(tmp_path: Path, capsys) -> None:
    tables, manifest, dq = tiny_tables()
    write_warehouse(tmp_path, tables, {DS: (manifest, dq)})
    assert cli.main(["report", "--output", str(tmp_path), "--ds", "2024-03-14"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "reports" / "2024-03-14.html")
    index = tmp_path / "reports" / "index.html"
    listed = index.read_bytes()

    # A mistyped path or day is an error in one line, not an empty page listed as a day.
    assert cli.main(["report", "--output", str(tmp_path / "nope"), "--ds", "2024-03-14"]) == 4
    err = capsys.readouterr().err
    assert err == f"riskinsight: error: warehouse {tmp_path / 'nope'} does not exist\n"
    assert not (tmp_path / "nope").exists()
    assert cli.main(["report", "--output", str(tmp_path), "--ds", "2024-03-24"]) == 4
    err = capsys.readouterr().err
    assert err.startswith("riskinsight: error: ds=2024-03-24: nothing to report") and err.count("\n") == 1
    assert not job.report_path(tmp_path, dt.date(2024, 3, 24)).exists() and index.read_bytes() == listed
    # Only Airflow's failure record (sensors timed out, no run): still nothing to report.
    never_run = dt.date(2024, 3, 25)
    (tmp_path / "_runs" / f"ds={never_run}").mkdir(parents=True)
    (tmp_path / "_runs" / f"ds={never_run}" / "airflow_failure.json").write_text('{"task_id": "wait_for_decisions"}')
    assert cli.main(["report", "--output", str(tmp_path), "--ds", str(never_run)]) == 4
    assert "nothing to report" in capsys.readouterr().err
    assert not job.report_path(tmp_path, never_run).exists() and index.read_bytes() == listed


def test_several_days_render_the_index_once_when_asked(tmp_path: Path) -> None:
    tables, manifest, dq = tiny_tables()
    days = sorted({d for t in tables.values() for d in t})[-2:]
    write_warehouse(tmp_path, tables, {d: (manifest, dq) for d in days})
    index = tmp_path / "reports" / "index.html"
    for d in days:
        job.render_day(tmp_path, d, pseudonym_key=KEY, index=False)
    assert not index.exists()
    job.render_index(tmp_path)
    listed = re.findall(r'<a href="(\d{4}-\d{2}-\d{2})\.html">', index.read_text(encoding="utf-8"))
    assert listed == [d.isoformat() for d in reversed(days)]


def test_realistic_day_size(tmp_path: Path) -> None:
    tables, manifest, dq = realistic_tables()
    write_warehouse(tmp_path, tables, {DS: (manifest, dq)})
    path = job.render_day(tmp_path, DS, pseudonym_key=KEY)
    size = path.stat().st_size
    assert size < 10 * 1024 * 1024, size
    assert "BR" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("per_part", [1, 2, 1000])
def test_offender_categories_count_the_window_a_range_of_offenders_at_a_time(tmp_path: Path, monkeypatch, per_part) -> None:
    # Ranges of one, two and all offenders must give the same counts: a creator is counted once
    # per category over the 30 days, and days outside the window or non-offenders never count.
    monkeypatch.setattr(job, "_OFFENDERS_PER_PART", per_part)
    at = dt.datetime(2024, 3, 14, tzinfo=dt.UTC)

    def day(back: int, rows: list[tuple[str, str, int]]) -> None:
        part = job.partition_dir(tmp_path, "creator_category_daily", DS - dt.timedelta(days=back))
        part.mkdir(parents=True)
        frame("creator_category_daily", [
            {"creator_id": c, "policy_category": p, "violations": v, "last_violation_at": at} for c, p, v in rows
        ]).write_parquet(part / "part-00000.parquet")

    day(0, [("c1", "spam", 2), ("c2", "spam", 1), ("c3", "hate_speech", 4), ("c9", "spam", 7)])
    day(3, [("c1", "spam", 1), ("c1", "hate_speech", 1), ("c4", "spam", 3)])
    day(29, [("c2", "hate_speech", 5), ("c5", "spam", 2)])
    day(30, [("c1", "violence", 9), ("c3", "violence", 9)])  # outside ds-29 .. ds
    offenders = pl.DataFrame({"creator_id": ["c1", "c2", "c3", "c4", "c5"]})
    got = job._offender_categories(tmp_path, DS, offenders, None, OffenderParams()).sort("policy_category").to_dicts()
    assert [(r["policy_category"], r["creators"], r["violations"]) for r in got] == [
        ("hate_speech", 3, 10),  # c1 1, c2 5, c3 4
        ("spam", 4, 9),  # c1 2+1, c2 1, c4 3, c5 2; c9 is no offender
    ]


@pytest.mark.parametrize("tables", ["realistic", "hostile"])
def test_figures_built_unvalidated_equal_plotlys_validated_build(tables: str, monkeypatch) -> None:
    # The report builds its plotly objects without plotly's validation (reports.figures.VALIDATE),
    # which was most of the charts' time; validated, plotly would reject a misspelt property and
    # expand a named template or colorscale. Both builds must give plotly.js the same specs.
    built, manifest, dq = (
        realistic_tables() if tables == "realistic"
        else tiny_tables(market_b=HOSTILE_MARKET, category_b=HOSTILE_CATEGORY)
    )
    data = report_data(built, DS, manifest, dq)
    fast = render_day(data, run_ts=RUN_TS, pseudonym_key=KEY)
    monkeypatch.setattr(figures, "VALIDATE", True)
    validated = render_day(data, run_ts=RUN_TS, pseudonym_key=KEY)
    specs = [json.loads(s) for s in _spec_texts(fast)]
    assert len(specs) == 6  # the plotly config and five figures, each with data
    assert all(s["data"] for s in specs[1:])
    assert specs == [json.loads(s) for s in _spec_texts(validated)]
    # And validation is what would catch a misspelt property.
    with pytest.raises(ValueError, match="markr"):
        figures._go(go.Scatter, markr={"size": 4})


# ------------------------------------------------------------------ an analyst's reading of the page
@pytest.mark.parametrize(("seconds", "shown"), [
    (None, "–"),
    (0.0, "0.0 s"),
    (59.94, "59.9 s"),
    (59.97, "1m 00s"),  # rounds to 60.0 s: the next unit, not "60.0 s"
    (60.0, "1m 00s"),
    (90.5, "1m 31s"),  # halves up, like every other unit
    (3599.4, "59m 59s"),
    (3599.6, "1h 00m"),  # not "60m 00s"
    (5400.0, "1h 30m"),
    (11879.0, "3h 18m"),  # 3h 17m 59s: minutes rounded like the seconds were, not floored
    (11849.0, "3h 17m"),
    (86399.0, "1d 00h"),
    (86399.7, "1d 00h"),  # not "24h 00m"
    (88199.0, "1d 00h"),
    (88200.0, "1d 01h"),
    (1_000_000.0, "11d 14h"),
])
def test_seconds_round_to_the_unit_shown_and_carry_over(seconds: float | None, shown: str) -> None:
    assert fmt_seconds(seconds) == shown


@pytest.mark.parametrize(("fmt", "value", "shown"), [
    (fmt_pp, -0.00001, "0.0 pp"),  # was "-0.0 pp"
    (fmt_pp, -0.0004999, "0.0 pp"),
    (fmt_pp, 0.0, "0.0 pp"),
    (fmt_pp, -0.00051, "-0.1 pp"),
    (fmt_pp, 0.05, "+5.0 pp"),
    (fmt_signed_pct, -0.0004, "0.0%"),  # was "-0.0%"
    (fmt_signed_pct, 0.0, "0.0%"),
    (fmt_signed_pct, 0.0006, "+0.1%"),
    (fmt_signed_pct, -0.25, "-25.0%"),
    (fmt_signed_pct, None, "–"),
])
def test_a_change_that_rounds_to_zero_has_no_sign(fmt, value: float | None, shown: str) -> None:
    assert fmt(value) == shown


@pytest.mark.parametrize(("fmt", "value", "shown"), [
    (fmt_pct, 1 / 16, "6.3%"),  # was "6.2%": half to even
    (fmt_pct, 0.00125, "0.1%"),
    (fmt_pct, 0.0125, "1.3%"),
    (fmt_int, 2.5, "3"),  # was "2"
    (fmt_int, 3.5, "4"),
    (fmt_int, -2.5, "-3"),  # halves away from zero, as fmt_seconds rounds
    (fmt_int, 1234.5, "1,235"),
    (fmt_int, 7, "7"),
    (fmt_int, None, "–"),
    (fmt_float, 0.125, "0.13"),  # was "0.12"
    (fmt_float, 2.675, "2.68"),  # as written, though stored as 2.67499999...
    (fmt_float, 20833.25, "20,833.25"),
    (fmt_pp, 0.0025, "+0.3 pp"),  # was "+0.2 pp"
    (fmt_signed_pct, -0.00125, "-0.1%"),
    (fmt_signed_pct, 0.0045, "+0.5%"),  # was "+0.4%"
])
def test_numbers_round_half_up_as_documented(fmt, value: float | None, shown: str) -> None:
    assert fmt(value) == shown


def test_significant_digits_round_half_up() -> None:
    assert fmt_distinct(0.0125, sig=2) == "0.013"  # was "0.012"
    assert fmt_distinct(2.5, sig=1) == "3"


def test_observed_rates_are_percentages_that_never_read_equal_to_their_threshold() -> None:
    assert fmt_rate_observed(0.00014029836786232054, (0.0,)) == "0.0140%"
    assert fmt_rate_observed(0.19448094612352168, (0.01,)) == "19.4%"
    assert fmt_rate_observed(0.0, (0.0,)) == "0%"
    # Just over 0.1%: three significant digits would read "0.100%", the threshold itself.
    assert fmt_rate_observed(0.0010004, (0.001,)) == "0.10004%"
    assert fmt_rate_observed(0.001, (0.001,)) == "0.100%"  # equal, and reads equal
    assert fmt_rate_observed(0.00999999, (0.01,)) == "0.999999%"  # just under reads under
    assert thousands_in_text("3 of 21383 staged rows; warns above 0%") == "3 of 21,383 staged rows; warns above 0%"
    assert thousands_in_text("mean 3002.0 of 7 days, ds=2024-01-11, run 20261129T045121Z-14273") == (
        "mean 3,002.0 of 7 days, ds=2024-01-11, run 20261129T045121Z-14273")
    # Values quoted from the data are shown as they are.
    assert thousands_in_text("2 of 40000 rows unexpected, e.g. [12345678]") == "2 of 40,000 rows unexpected, e.g. [12345678]"


def _dq_result(table: str, expectation: str, severity: str, observed: object, details: str,
               bounds: tuple[float | None, float | None]) -> dict:
    return {"table": table, "expectation": expectation, "severity": severity, "success": False,
            "observed_value": observed, "details": details, "min_value": bounds[0], "max_value": bounds[1]}


def test_a_dq_json_without_bounds_is_formatted_against_the_thresholds_its_details_state() -> None:
    """dq.json files written before results carried min_value/max_value: a value just over its
    threshold must not read equal to it ("0.100%" over 0.1%, "×2.00" over ×2)."""
    tables, manifest, dq = tiny_tables()
    old = [{k: v for k, v in r.items() if k not in ("min_value", "max_value")} for r in (
        _dq_result("decisions", "quarantine_rate_elevated", "warning", 0.0010004,
                   "21 of 20991 distinct rows quarantined (bad_mode 21); warns above 0.1%", (None, None)),
        _dq_result("decisions", "volume_vs_trailing_7d", "warning", 2.0004,
                   "50000 raw rows today vs mean 24995.0 of 7 trailing observed days; observed is the ratio, allowed x0.5..x2",
                   (None, None)))]
    dq["results"] += old
    page = _strip_plotly(render_day(report_data(tables, DS, manifest, dq), run_ts=RUN_TS, pseudonym_key=KEY))
    table = re.search(r'<table id="expectation-table">(.*?)</table>', page, re.S).group(1)
    assert "<code>0.10004%</code>" in table and "<code>×2.0004</code>" in table


def test_dq_values_are_formatted_and_the_badge_links_to_them() -> None:
    tables, manifest, dq = tiny_tables()
    dq["results"] += [
        _dq_result("decisions", "unknown_market_rate", "warning", 0.00014029836786232054,
                   "3 of 21383 staged rows: market null or not ISO 3166-1 alpha-2; warns above 0%", (None, 0.0)),
        _dq_result("decisions", "quarantine_rate_elevated", "warning", 0.0010004,
                   "21 of 20991 distinct rows quarantined (bad_mode 21); warns above 0.1%", (None, 0.001)),
        _dq_result("decisions", "volume_vs_trailing_7d", "warning", 2.4000001,
                   "50000 raw rows today vs mean 20833.3 of 7 trailing observed days; observed is the ratio, allowed x0.5..x2", (0.5, 2.0)),
    ]
    page = _strip_plotly(render_day(report_data(tables, DS, manifest, dq), run_ts=RUN_TS, pseudonym_key=KEY))
    table = re.search(r'<table id="expectation-table">(.*?)</table>', page, re.S).group(1)
    assert "<code>0.0140%</code>" in table and "3 of 21,383 staged rows" in table
    assert "<code>0.10004%</code>" in table and "21 of 20,991 distinct rows" in table
    assert "<code>×2.40</code>" in table and "50,000 raw rows today vs mean 20,833.3" in table
    assert "0.000140298" not in page
    # The status at the top says how many and leads to the list.
    header = re.search(r"<header>(.*?)</header>", page, re.S).group(1)
    link = re.search(r'<a href="#dq" id="dq-link">(.*?)</a>', header, re.S).group(1)
    assert 'class="badge warn" id="dq-badge">warn<' in link
    assert '<span id="dq-counts">4 warnings</span>' in link
    assert "5 expectations checked: 4 warnings" in re.sub(r"\s+", " ", page)
    # A clean day says so.
    dq = {"ds": DS.isoformat(), "verdict": "pass", "results": dq["results"][:1]}
    clean = render_day(report_data(tables, DS, manifest, dq), run_ts=RUN_TS, pseudonym_key=KEY)
    assert '<span id="dq-counts">1 check passed</span>' in clean and "1 expectation checked: 1 check passed." in clean


def _failed_run(ds: dt.date) -> tuple[dict, dict]:
    """The manifest and dq.json of a run of ds whose quarantine rate failed the gate."""
    manifest = {
        "ds": ds.isoformat(), "engine": "polars", "run_id": "20240316T020000Z-77", "code_revision": "abc1234def",
        "run_started_at": "2024-03-16T02:00:00Z", "published": False,
        "inputs": {"decisions": {"path": "/in/decisions", "files": 1, "rows": 3118}},
        "quarantined": {"decisions": {"bad_mode": 400, "missing_key": 192}},
        "duplicates_dropped": {"decisions": 74},
        "rows_written": {"violation_daily": 227, "quarantine": 592},
        "dq": {"verdict": "fail", "critical_failed": ["decisions.quarantine_rate"],
               "warnings": ["decisions.quarantine_rate_elevated", "decisions.duplicates_rate"]},
    }
    details = "592 of 3044 distinct rows quarantined (bad_mode 400, missing_key 192); "
    dq = {"ds": ds.isoformat(), "verdict": "fail", "results": [
        _dq_result("decisions", "quarantine_rate", "critical", 0.19448094612352168, details + "fails above 1%", (None, 0.01)),
        _dq_result("decisions", "quarantine_rate_elevated", "warning", 0.19448094612352168, details + "warns above 0.1%", (None, 0.001)),
        _dq_result("decisions", "duplicates_rate", "warning", 0.023733162283515075,
                   "74 of 3118 raw rows were exact duplicates; warns above 0.1%", (None, 0.001)),
        {"table": "decisions", "expectation": "reconcile:staged", "severity": "critical", "success": True,
         "observed_value": 2452.0, "details": ""},
    ]}
    return manifest, dq


def test_a_day_that_failed_the_gate_says_so_and_where_its_rejected_rows_are() -> None:
    from jobs.nightly import Candidate

    failed = DS + dt.timedelta(days=1)
    tables, _, _ = tiny_tables()
    manifest, dq = _failed_run(failed)
    html = render_day(report_data(tables, failed, manifest, dq), run_ts=RUN_TS, pseudonym_key=KEY)
    assert render_day(report_data(tables, failed, dict(reversed(list(manifest.items()))), dq),
                      run_ts=RUN_TS, pseudonym_key=KEY) == html  # deterministic like any other page
    page = _strip_plotly(html)
    text = re.sub(r"\s+", " ", page)
    banner = re.sub(r"\s+", " ", re.search(r'<div class="banner bad" id="not-published">(.*?)</div>', page, re.S).group(1))
    assert "run 20240316T020000Z-77 (started 2024-03-16T02:00:00Z) failed the data-quality gate on decisions.quarantine_rate" in banner
    assert "the day was not run, or" not in text  # the page knows which
    # Where the candidate's rejected rows are, relative to the warehouse: where jobs.nightly keeps them.
    where = Candidate(Path("/wh"), failed).table_dir("quarantine").relative_to("/wh").as_posix() + "/"
    assert where == "_candidates/ds=2024-03-15/tables/quarantine/"
    assert f'<code id="candidate-quarantine">{where}</code>' in banner
    assert f"Its rejected rows are under <code>{where}</code>" in text
    # The breach is listed once, as the critical failure; its warning level is not repeated.
    table = re.search(r'<table id="expectation-table">(.*?)</table>', page, re.S).group(1)
    assert re.findall(r"<td>decisions</td><td>([^<]+)</td>", table) == ["quarantine_rate", "duplicates_rate"]
    assert "<code>19.4%</code>" in table and "592 of 3,044 distinct rows" in table
    assert 'id="dq-superseded"' in page and "1 left out" in text
    assert '<span id="dq-counts">1 critical check failed, 1 warning</span>' in page
    # Every panel of the day's own figures says why it is empty in the same words.
    assert '<div class="empty" id="anomalies-empty">Nothing was published for 2024-03-15.</div>' in page
    assert '<div class="empty" id="risers-empty">Nothing was published for 2024-03-15.</div>' in page
    # Its row counts are the candidate's, not a publication's.
    run = re.search(r'<section id="run">(.*?)</section>', page, re.S).group(1)
    assert "<h3>Rows in the candidate (not published)</h3>" in run and "Candidate rows" in run
    assert "<h3>Rows written</h3>" not in run
    assert "These results and counts are of the candidate that was not published." in text
    footer = re.sub(r"\s+", " ", re.search(r'<footer id="page-footer">(.*?)</footer>', page, re.S).group(1))
    assert "from the published tables" not in footer
    assert "describe the candidate of run 20240316T020000Z-77, which was not published" in footer

    # A day nobody ran says that instead, and a published day's footer is unchanged.
    never = render_day(report_data(tables, DS + dt.timedelta(days=3), None, None), run_ts="t", pseudonym_key=KEY)
    assert "no run of 2024-03-17 was recorded" in re.sub(r"\s+", " ", never)
    assert "which has no published tables and no recorded run" in never
    published = render_day(report_data(tables, DS, *tiny_tables()[1:]), run_ts=RUN_TS, pseudonym_key=KEY)
    assert "Generated by riskinsight from the published tables of 2024-03-14;" in published
    assert "<h3>Rows written</h3>" in published and 'id="candidate-quarantine"' not in published


def test_a_critical_failure_keeps_a_warning_on_another_figure() -> None:
    tables, _, _ = tiny_tables()
    manifest, dq = _failed_run(DS + dt.timedelta(days=1))
    # The warning level with another value is another figure (here: another count), so it stays.
    dq["results"][1]["observed_value"] = 0.5
    dq["results"].append(_dq_result("appeals", "quarantine_rate_elevated", "warning", 0.19448094612352168, "x", (None, 0.001)))
    page = render_day(report_data(tables, DS + dt.timedelta(days=1), manifest, dq), run_ts=RUN_TS, pseudonym_key=KEY)
    table = re.search(r'<table id="expectation-table">(.*?)</table>', page, re.S).group(1)
    assert table.count("quarantine_rate_elevated") == 2 and 'id="dq-superseded"' not in page


def test_a_failed_check_never_shows_its_sample_of_raw_ids() -> None:
    tables, _, _ = tiny_tables()
    failed = DS + dt.timedelta(days=1)
    manifest, dq = _failed_run(failed)
    raw = ["rv-000000", "rv-000001", "alice.smith@corp", "creator-SECRET-4"]
    # The details as expectations.gate._convert writes them for a failed row-level check.
    dq["results"] += [
        _dq_result("reviewer_daily", "grain_unique", "critical", 4,
                   f"one row per reviewer; 4 of 13 rows unexpected, e.g. {raw[:3] + raw[:1]}", (None, None)),
        _dq_result("repeat_offenders", "grain_unique", "critical", 2,
                   f"2 of 5 rows unexpected, e.g. {[raw[3], raw[3]]}", (None, None)),
    ]
    html = render_day(report_data(tables, failed, manifest, dq), run_ts=RUN_TS, pseudonym_key=KEY)
    for raw_id in raw:
        assert raw_id not in html
    table = re.search(r'<table id="expectation-table">(.*?)</table>', _strip_plotly(html), re.S).group(1)
    assert "one row per reviewer; 4 of 13 rows unexpected (sample of values in dq.json)" in table
    assert "2 of 5 rows unexpected (sample of values in dq.json)" in table


def test_kpi_tiles_define_every_figure(tiny_html: str) -> None:
    from reports.kpis import KPI_DEFS

    definitions = {
        "decisions": "Staged decisions of the day, human and automated: after exact duplicates are dropped and invalid rows quarantined.",
        "actioned": "Staged decisions with outcome violation",
        "proactive_rate": "Share of actioned violations detected proactively",
        "zero_view_rate": "(views_before_action = 0)",
        "tta_p50_s": "Median over actioned violations of decided_at − content_created_at.",
        "sla_rate": "Decisions within their queue's SLA",
        "qa_accuracy": "Agreed over audited decisions",
        "overturn_rate": "appeals of automated decisions included",
    }
    assert set(definitions) == {k for k, *_ in KPI_DEFS}
    for key, words in definitions.items():
        m = re.search(rf'<div class="tile" id="kpi-{key}">\s*<div class="label" title="([^"]+)">.*?'
                      rf'<div class="def">([^<]+)</div>', tiny_html, re.S)
        assert m, key
        title, small = m.groups()
        assert words.replace("'", "&#39;") in small and title == small, (key, small)


def test_trend_colours_belong_to_the_category_not_to_its_rank() -> None:
    def day(hate: int, spam: int, other: int) -> pl.DataFrame:
        return frame("violation_daily", [
            {"market": "ALL", "policy_category": c, "actioned": n}
            for c, n in (("hate_speech", hate), ("spam", spam), ("UNKNOWN", other), ("ALL", hate + spam + other))])

    first, second = DS - dt.timedelta(days=40), DS
    vd = pl.concat([day(90, 10, 5).with_columns(pl.lit(first).alias("ds")),
                    day(10, 90, 5).with_columns(pl.lit(second).alias("ds"))])
    empty = frame("violation_trends", [])

    def styles(ds: dt.date) -> tuple[list[str], dict[str, tuple[str, str]]]:
        spec = json.loads(figures.trend_chart(vd, empty, ds).spec_json)
        return ([t["name"] for t in spec["data"]],
                {t["name"]: (t["line"]["color"], t["line"]["dash"]) for t in spec["data"]})

    names_a, a = styles(first)
    names_b, b = styles(second)
    assert names_a[:2] == ["hate_speech", "spam"] and names_b[:2] == ["spam", "hate_speech"]  # ranks differ
    assert a == b  # the colours do not
    assert a["hate_speech"] == figures.category_style("hate_speech") != a["spam"]
    assert a["UNKNOWN"] == (figures.OTHER_COLOUR, figures.OTHER_DASH)


def test_trend_note_says_which_anomalies_the_diamonds_mark(tiny_html: str) -> None:
    note = re.sub(r"\s+", " ", re.search(r'<section id="trends">(.*?)</section>', _strip_plotly(tiny_html), re.S).group(1))
    assert "Diamonds mark anomalies of the all-markets series" in note
    assert "anomalies of single markets are not marked on the chart" in note


def _luminance(colour: str) -> float:
    """WCAG 2 relative luminance of #rrggbb (or #rgb)."""
    h = colour.lstrip("#")
    h = "".join(c * 2 for c in h) if len(h) == 3 else h
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (linear(int(h[i:i + 2], 16) / 255) for i in (0, 2, 4))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _over(colour: str, background: str, opacity: float) -> str:
    """colour drawn at `opacity` over background, as #rrggbb."""
    fg, bg = (tuple(int(c.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4)) for c in (colour, background))
    return "#" + "".join(f"{round(f * opacity + b * (1 - opacity)):02x}" for f, b in zip(fg, bg))


def test_contrast_formula() -> None:
    assert round(_contrast("#ffffff", "#000000"), 1) == 21.0
    assert round(_contrast("#ffffff", "#009E73"), 2) == 3.42  # the old pass badge the review measured


def _badge_styles(html: str) -> dict[str, dict[str, str]]:
    """Each `.badge` rule of the page's style sheet (variants over the base), variables resolved."""
    css = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    variables = dict(re.findall(r"--([\w-]+)\s*:\s*(#[0-9A-Fa-f]{3,6})", css))
    rules: dict[str, dict[str, str]] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        decls = {k.strip(): re.sub(r"var\(--([\w-]+)\)", lambda m: variables.get(m.group(1), m.group(0)), v.strip())
                 for k, v in (d.split(":", 1) for d in body.split(";") if ":" in d)}
        for sel in selectors.split(","):
            rules.setdefault(sel.strip(), {}).update(decls)
    base = rules[".badge"]
    return {sel: {**base, **decls} for sel, decls in rules.items() if re.fullmatch(r"\.badge(\.\w+)?", sel)}


def test_badge_text_keeps_4_5_to_1_on_its_background(tiny_html: str) -> None:
    variants = _badge_styles(tiny_html)
    assert {".badge", ".badge.pass", ".badge.warn", ".badge.fail"} <= set(variants)
    for sel, decls in variants.items():
        assert _contrast(decls["color"], decls["background"]) >= 4.5, (sel, decls)


def test_stale_history_does_not_look_like_a_warn_verdict() -> None:
    # A month after a backfill: most rows carry both markers side by side; in the verdict's own
    # colours "stale history" read as a second warning.
    index = render_index([IndexEntry(DS, f"{DS}.html", "warn", 10, 2, stale=True)])
    cell = re.search(r'<span class="badge warn">warn</span>\s*<span class="([^"]+)">stale history</span>', index)
    styles = _badge_styles(index)
    stale = styles["." + cell.group(1).replace(" ", ".")]
    assert stale["background"] != styles[".badge.warn"]["background"]
    assert _contrast(stale["color"], stale["background"]) >= 4.5


def test_every_series_colour_keeps_3_to_1_on_the_plot(tiny_html: str) -> None:
    for colour in (*figures.OKABE_ITO, figures.OTHER_COLOUR):
        assert _contrast(colour, "#ffffff") >= 3.0, colour
    # As drawn, opacity included, in every chart of a day.
    checked = 0
    for text in _spec_texts(tiny_html):
        spec = json.loads(text)
        if "data" not in spec:
            continue
        layout = spec["layout"]
        background = layout.get("plot_bgcolor") or layout["template"]["layout"]["plot_bgcolor"]
        background = {"white": "#ffffff"}.get(background, background)
        for trace in spec["data"]:
            for part in ("line", "marker"):
                colour = trace.get(part, {}).get("color")
                if isinstance(colour, str) and colour.startswith("#"):
                    opacity = trace.get(part, {}).get("opacity", 1.0) if part == "marker" else 1.0
                    assert _contrast(_over(colour, background, opacity), background) >= 3.0, (trace.get("name"), colour)
                    checked += 1
    assert checked >= 8


def test_queue_chart_rows_follow_the_queue_table(tiny_html: str) -> None:
    page = _strip_plotly(tiny_html)
    table = re.search(r'<table id="queue-table">(.*?)</table>', page, re.S).group(1)
    rows = re.findall(r"<tr><td>([^<]+)</td>", table)
    assert rows == ["live_realtime", "comments"]  # live_realtime 87.5% met, comments 100%: not alphabetical
    spec = next(json.loads(s) for s in _spec_texts(tiny_html) if '"Wait p50"' in s)
    yaxis = spec["layout"]["yaxis"]
    assert yaxis["categoryarray"] == rows and yaxis["autorange"] == "reversed"  # first row at the top


def test_qa_accuracy_tile_weights_reviewers_by_their_audits() -> None:
    """QA accuracy over the day is agreed audits over audits (DESIGN §4's qa_accuracy summed over
    reviewers), not the mean of each reviewer's rate: one audit agreed and three not is 25 %."""
    from reports.kpis import day_values

    tables, manifest, dq = tiny_tables()
    data = report_data(tables, DS, manifest, dq)
    reviewers = pl.DataFrame({"ds": [DS, DS], "reviewer_id": ["a", "b"], "qa_audits": [1, 3], "qa_agreed": [1, 0],
                              "qa_accuracy": [1.0, 0.0]})
    assert day_values(dataclasses.replace(data, reviewer_daily=reviewers), DS)["qa_accuracy"] == 0.25


def test_top_risers_are_the_highest_zscores_first() -> None:
    from reports.render import _risers

    trends = pl.DataFrame({
        "market": ["ALL", "US", "DE", "FR", "GB", "IT"], "policy_category": ["ALL", "spam", "spam", "spam", "spam", "spam"],
        "actioned": [500, 50, 50, 50, 19, 20], "zscore": [9.0, 1.0, 5.0, 3.0, 8.0, 2.0],
        "wow_change": [0.1, 0.2, 0.1, 0.3, 0.4, 0.1],
    })
    # ALL/ALL is the headline; GB is under the volume floor of 20, IT exactly on it.
    assert [r["market"] for r in _risers(trends, 20)] == ["DE", "FR", "IT", "US"]


def test_the_page_reads_the_parameters_a_manifest_recorded_field_by_field() -> None:
    """A manifest from another version (a parameter added since, or a section missing) still names
    the thresholds its tables were computed with; one unknown key made the page describe every
    table with the defaults instead."""
    from jobs.report import _params
    from transforms.params import OffenderParams, TrendParams

    recorded = {"params": {"trends": {"zscore_threshold": 2.5, "min_volume": 50.0, "window_days": 21, "added_later": 1}}}
    trends, offenders = _params(recorded)
    assert (trends.zscore_threshold, trends.min_volume, trends.window_days) == (2.5, 50.0, 21)
    assert trends.min_baseline_days == TrendParams().min_baseline_days and offenders == OffenderParams()
    assert _params({"params": {"offenders": {"min_violations": 5}}})[1].min_violations == 5
    assert _params(None) == (TrendParams(), OffenderParams())
