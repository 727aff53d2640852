"""sor_daily, its trends, the DSA report page and the transparency table, on the real sample and small frames.

Figures on the sample were computed independently with Python's csv module and numpy over the raw
CSVs (duplicated uuid dropped, the two rows created on 2024-08-29 left out).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import narwhals.stable.v2 as nw
import numpy as np
import polars as pl
import pytest

from jobs.cli import main
from jobs.dsa import DsaError, DsaUsageError, cmd_daily, export_transparency, read_sor
from jobs.dsa_ingest import ingest
from reports.dsa_report import DsaDayData, render_dsa_day
from tests.builders import sor_statements as _frame
from transforms.sor_daily import SOR_DAILY_SCHEMA, sor_daily, sor_duplicates
from transforms.dsa_transparency import dsa_transparency
from transforms.params import TrendParams
from test_dsa_ingest import NEW_CSV, ZIP  # tests/ is on sys.path (rootdir conftest)

DAY = dt.date(2024, 3, 14)
pytestmark = pytest.mark.skipif(not ZIP.exists(), reason="shared DSA sample data not available")


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dsa_daily")
    ingest([ZIP, NEW_CSV], path)
    return path


@pytest.fixture(scope="module")
def daily(out: Path) -> pl.DataFrame:
    return sor_daily(read_sor(out, [DAY])).collect().to_native()


def _row(daily: pl.DataFrame, platform: str, category: str) -> dict:
    return daily.filter((pl.col("platform_name") == platform) & (pl.col("category") == category)).row(0, named=True)


def test_sample_all_all_figures(daily):
    t = _row(daily, "ALL", "ALL")
    assert t["statements"] == 199
    assert (t["automated_detection"], t["automated_fully"], t["automated_partially"], t["automated_not"]) == (179, 154, 11, 34)
    assert (t["source_article_16"], t["source_voluntary"], t["source_trusted_notifier"]) == (1, 198, 0)
    assert (t["ground_incompatible"], t["ground_illegal"]) == (199, 0)
    assert (t["restriction_visibility"], t["restriction_provision"], t["restriction_account"], t["restriction_monetary"]) == (197, 1, 1, 0)
    assert (t["visibility_removed"], t["visibility_disabled"], t["visibility_demoted"]) == (77, 85, 0)
    assert (t["account_suspended"], t["account_terminated"]) == (1, 0)
    assert t["fully_automated_rate"] == pytest.approx(154 / 199)
    assert t["moderation_delay_p50_s"] == 1_728_000.0  # 20 days
    assert t["moderation_delay_p90_s"] == pytest.approx(75_427_200.0)
    assert t["negative_moderation_delay"] == 0


def test_sample_tiktok_and_category_figures(daily):
    tt = _row(daily, "TikTok", "ALL")
    assert tt["statements"] == 98
    assert tt["moderation_delay_p50_s"] == 172_800.0
    assert tt["moderation_delay_p90_s"] == pytest.approx(8_138_880.0)
    assert (tt["disclosure_delay_p50_s"], tt["disclosure_delay_p90_s"]) == (86_853.0, 86_890.0)
    scope = _row(daily, "ALL", "STATEMENT_CATEGORY_SCOPE_OF_PLATFORM_SERVICE")
    assert (scope["statements"], scope["automated_fully"]) == (140, 112)
    assert scope["moderation_delay_p50_s"] == 2_592_000.0


def test_rollups_add_up(daily):
    assert list(daily.columns) == list(SOR_DAILY_SCHEMA)
    counts = [c for c, t in SOR_DAILY_SCHEMA.items() if t == nw.Int64()]
    leaves = daily.filter((pl.col("platform_name") != "ALL") & (pl.col("category") != "ALL"))
    total = daily.filter((pl.col("platform_name") == "ALL") & (pl.col("category") == "ALL")).select(counts)
    for level in (leaves, daily.filter((pl.col("category") == "ALL") & (pl.col("platform_name") != "ALL")),
                  daily.filter((pl.col("platform_name") == "ALL") & (pl.col("category") != "ALL"))):  # fmt: skip
        assert level.select(pl.col(counts).sum()).rows() == total.rows()
    assert daily.select("platform_name", "category").is_duplicated().sum() == 0


def test_negative_delays_excluded_and_duplicates_dropped():
    s = 1_000_000
    a = {"uuid": "a", "content_date_us": 0, "application_date_us": 10 * s, "created_at_us": 11 * s,
         "decision_visibility": ["DECISION_VISIBILITY_CONTENT_DEMOTED"], "decision_account": "DECISION_ACCOUNT_TERMINATED"}
    # Two copies of one statement (copies that differ: test_which_copy_of_a_split_duplicate_counts_...)
    frame = _frame([
        a,
        a,
        {"uuid": "b", "content_date_us": 0, "application_date_us": 30 * s, "created_at_us": 31 * s},
        {"uuid": "c", "content_date_us": 50 * s, "application_date_us": 20 * s, "created_at_us": 21 * s},
        {"uuid": "d", "content_date_us": None, "application_date_us": 20 * s, "created_at_us": 19 * s},
    ])  # fmt: skip
    assert sor_duplicates(frame).collect().to_native().row(0) == (5, 4, 1)
    t = _row(sor_daily(frame).collect().to_native(), "ALL", "ALL")
    assert t["statements"] == 4
    assert t["negative_moderation_delay"] == 1 and t["negative_disclosure_delay"] == 1
    assert t["moderation_delay_p50_s"] == 20.0  # median of 10 and 30: c (negative) and d (no date) left out
    assert t["moderation_delay_p90_s"] == pytest.approx(28.0)
    assert t["disclosure_delay_p50_s"] == 1.0
    assert (t["visibility_demoted"], t["account_terminated"], t["ground_illegal"]) == (1, 1, 4)


def test_which_copy_of_a_split_duplicate_counts_does_not_depend_on_the_read_order():
    """Copies of a uuid that differ (one per chunk) were deduplicated with keep="any": which copy a
    day counted, and so its per-platform figures, followed the order the chunk files were read in."""
    s = 1_000_000
    first = {"uuid": "a", "platform_name": "P", "application_date_us": 10 * s, "created_at_us": 11 * s}
    second = {"uuid": "a", "platform_name": "TikTok", "decision_account": "DECISION_ACCOUNT_SUSPENDED",
              "application_date_us": 40 * s, "created_at_us": 41 * s}  # fmt: skip
    others = [{"uuid": "b", "platform_name": "TikTok"}, {"uuid": "c", "platform_name": "P"}]
    one_way = sor_daily(_frame([first, *others, second])).collect().to_native()
    other_way = sor_daily(_frame([second, *others, first])).collect().to_native()
    assert one_way.equals(other_way)
    assert _row(one_way, "ALL", "ALL")["statements"] == 3
    assert _row(one_way, "P", "ALL")["statements"] + _row(one_way, "TikTok", "ALL")["statements"] == 3


def test_the_transparency_table_counts_the_same_copy_of_a_split_duplicate_whatever_the_read_order():
    s = 1_000_000
    first = {"uuid": "a", "category": "C1", "application_date_us": 10 * s}
    second = {"uuid": "a", "category": "C2", "automated_decision": "AUTOMATED_DECISION_NOT_AUTOMATED",
              "application_date_us": 40 * s}  # fmt: skip
    others = [{"uuid": "b", "category": "C1"}, {"uuid": "c", "category": "C2"}]
    one_way = dsa_transparency(_frame([first, *others, second])).collect().to_native()
    other_way = dsa_transparency(_frame([second, *others, first])).collect().to_native()
    assert one_way.equals(other_way)
    assert one_way.filter((pl.col("category") == "ALL") & (pl.col("source_type") == "ALL"))["actions"].to_list() == [3]


def test_empty_day_keeps_an_all_all_row():
    empty = _frame([{}]).filter(nw.col("uuid") == "none")
    d = sor_daily(empty).collect().to_native()
    assert d.select("platform_name", "category", "statements").rows() == [("ALL", "ALL", 0)]
    assert d["fully_automated_rate"][0] is None


def test_cmd_daily_writes_tables_manifest_and_a_deterministic_report(out):
    r = cmd_daily(out, "2024-03-14", run_ts="2024-03-15T02:00Z")
    # 202 rows read: 199 statements, the duplicated uuid, the two rows created months after the day.
    assert (r.statements, r.rows_read, r.duplicate_uuids, sum(r.quarantined.values())) == (199, 202, 1, 2)
    assert r.quarantined == {"created_at_outside_dump_day": 2}
    assert pl.read_parquet(out / "sor_daily" / "ds=2024-03-14" / "part-00000.parquet").height == r.sor_daily_rows
    trends = pl.read_parquet(out / "sor_trends" / "ds=2024-03-14" / "part-00000.parquet")
    assert trends.height == r.sor_daily_rows and trends["is_anomaly"].sum() == 0
    assert (out / "_dsa_runs" / "ds=2024-03-14" / "manifest.json").exists()
    page = Path(r.report).read_bytes()
    assert Path(r.report) == out / "reports" / "dsa" / "2024-03-14.html"
    cmd_daily(out, "2024-03-14", run_ts="2024-03-15T02:00Z")
    assert Path(r.report).read_bytes() == page
    html = page.decode()
    assert html.count("Plotly.newPlot(") == 1 and html.count("<script>") == 2
    for fid in ("dsa-platforms", "dsa-categories", "dsa-delays"):
        assert f'id="{fid}"' in html and f'id="{fid}-spec"' in html
    # plotly.js itself mentions URLs in strings; the page's own markup must load nothing.
    markup = html[: html.index("<script>")]
    assert not re.search(r"""(src|href)=["']https?://""", markup)
    assert "Google Shopping" in html and "created_at_outside_dump_day" in html


def test_dsa_page_names_its_tables_and_scopes_their_headers(out):
    from browser.report_helpers import a11y_problems

    html = Path(cmd_daily(out, "2024-03-14", run_ts="2024-03-15T02:00Z").report).read_text(encoding="utf-8")
    assert html.count("<table") >= 2 and a11y_problems(html) == []


def test_dsa_pages_link_to_their_index_and_back_a_day(tmp_path):
    from browser.report_helpers import link_texts

    ingest([ZIP, NEW_CSV], tmp_path)
    later = dt.date(2025, 7, 1)  # the sample's other day: a year and more without data between
    pages = {day: Path(cmd_daily(tmp_path, day.isoformat(), run_ts="2025-07-02T02:00Z").report) for day in (DAY, later)}
    links = {}
    for day, page in pages.items():
        hrefs = link_texts(page.read_text(encoding="utf-8"))
        # Resolved as a browser resolves them from the page's address (reports/dsa/), not its link target.
        links[day] = {text: page.parent / href for href, text in hrefs if not href.startswith("#")}
        assert all(target.is_file() for target in links[day].values()), links[day]
        assert links[day]["All DSA days"] == tmp_path / "reports" / "dsa" / "index.html"
    assert [t for text, t in links[later].items() if text.startswith("Previous day")] == [pages[DAY]]
    assert not [text for text in links[DAY] if text.startswith("Previous day")]


def test_report_escapes_data_strings():
    evil = "<script>alert(1)</script>"
    frame = _frame([{"uuid": "x", "platform_name": evil}])
    d = sor_daily(frame).collect().to_native()
    html = render_dsa_day(DsaDayData(ds=DAY, sor_daily=d, history=d.with_columns(pl.lit(DAY).alias("ds")), trends=None))
    assert evil not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def _write_day(out: Path, day: dt.date, tiktok: int) -> None:
    us = int(dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC).timestamp() * 1e6)
    n = tiktok + 30
    ts = pl.Series([us] * n).cast(pl.Datetime("us", "UTC"))
    frame = pl.DataFrame({
        "uuid": [f"{day}-{i}" for i in range(n)],
        "platform_name": ["TikTok"] * tiktok + ["Pinterest"] * 30,
        "category": ["STATEMENT_CATEGORY_VIOLENCE"] * n,
        "automated_detection": ["Yes"] * n, "automated_decision": ["AUTOMATED_DECISION_FULLY"] * n,
        "source_type": ["SOURCE_VOLUNTARY"] * n, "decision_ground": ["DECISION_GROUND_ILLEGAL_CONTENT"] * n,
        "decision_visibility": pl.Series([["DECISION_VISIBILITY_CONTENT_REMOVED"]] * n),
        "decision_monetary": pl.Series([None] * n, dtype=pl.String), "decision_provision": pl.Series([None] * n, dtype=pl.String),
        "decision_account": pl.Series([None] * n, dtype=pl.String),
        "content_date": ts, "application_date": ts, "created_at": ts,
    })  # fmt: skip
    target = out / "sor" / f"ds={day}" / "part.parquet"
    target.parent.mkdir(parents=True)
    frame.write_parquet(target)


def _spike_day(tmp_path: Path, last: int = 150) -> dt.date:
    """20 days of 45-55 statements built, then a day of `last` (150: a spike) ingested (not yet built)."""
    end = dt.date(2024, 4, 20)
    rng = np.random.default_rng(3)
    for i in range(20, 0, -1):
        _write_day(tmp_path, end - dt.timedelta(days=i), int(rng.integers(45, 56)))
        cmd_daily(tmp_path, end - dt.timedelta(days=i), report=False)
    _write_day(tmp_path, end, last)
    return end


def test_trends_flag_a_tiktok_spike(tmp_path):
    end = _spike_day(tmp_path)
    r = cmd_daily(tmp_path, end)
    trends = pl.read_parquet(tmp_path / "sor_trends" / f"ds={end}" / "part-00000.parquet")
    flagged = trends.filter(pl.col("is_anomaly")).select("platform_name", "category", "direction").sort(pl.all())
    assert flagged.rows() == [
        ("ALL", "ALL", "spike"), ("ALL", "STATEMENT_CATEGORY_VIOLENCE", "spike"),
        ("TikTok", "ALL", "spike"), ("TikTok", "STATEMENT_CATEGORY_VIOLENCE", "spike"),
    ]  # fmt: skip
    assert r.anomalies == 4
    pin = trends.filter((pl.col("platform_name") == "Pinterest") & (pl.col("category") == "ALL")).row(0, named=True)
    assert (pin["baseline_days"], pin["statements"], pin["is_anomaly"]) == (20, 30, False)
    html = Path(r.report).read_text()
    assert 'id="dsa-trend"' in html and "spike" in html


def test_transparency_table_from_the_sample(out, tmp_path):
    path = export_transparency(out, "2024-01-01", "2024-06-30", tmp_path / "t" / "h1.csv")
    t = pl.read_csv(path)
    row = lambda c, s: t.filter((pl.col("category") == c) & (pl.col("source_type") == s)).row(0, named=True)  # noqa: E731
    total = row("ALL", "ALL")
    assert (total["actions"], total["fully_automated"]) == (199, 154)
    assert total["fully_automated_share"] == pytest.approx(154 / 199)
    assert total["median_time_to_action_s"] == 1_728_000.0
    assert row("ALL", "SOURCE_ARTICLE_16")["actions"] == 1
    scope = row("STATEMENT_CATEGORY_SCOPE_OF_PLATFORM_SERVICE", "SOURCE_VOLUNTARY")
    assert (scope["actions"], scope["fully_automated"], scope["median_time_to_action_s"]) == (140, 112, 2_592_000.0)
    leaves = t.filter((pl.col("category") != "ALL") & (pl.col("source_type") != "ALL"))
    assert leaves["actions"].sum() == 199
    tiktok = pl.read_csv(export_transparency(out, "2024-03-14", "2024-03-14", tmp_path / "tt.csv", platforms=["TikTok"]))
    assert tiktok.filter(pl.col("category") == "ALL").filter(pl.col("source_type") == "ALL")["actions"].item() == 98


def test_clear_errors(out, tmp_path):
    with pytest.raises(DsaError, match=r"no ingested DSA statements for 2024-03-13") as e:
        cmd_daily(out, "2024-03-13")
    assert e.value.exit_code == 4
    with pytest.raises(DsaUsageError, match="invalid --ds '2024-13-01'") as e:
        cmd_daily(out, "2024-13-01")
    assert e.value.exit_code == 2
    with pytest.raises(DsaUsageError, match="before --start"):
        export_transparency(out, "2024-03-14", "2024-03-01", tmp_path / "x.csv")


def test_the_command_takes_its_trend_thresholds_from_the_config(tmp_path, capsys):
    end = _spike_day(tmp_path)
    argv = ["dsa", "daily", "--output", str(tmp_path), "--ds", end.isoformat(), "--no-report"]
    assert main(argv) == 0
    assert "4 anomalies" in capsys.readouterr().out  # the default thresholds, as in the test above
    config = tmp_path / "riskinsight.toml"
    config.write_text("[trends]\nmin_volume = 1000\n")  # no key reaches 1000 statements
    assert main([*argv, "--config", str(config)]) == 0
    assert "0 anomalies" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "_dsa_runs" / f"ds={end}" / "manifest.json").read_text())
    assert manifest["params"]["min_volume"] == 1000
    config.write_text("[trends]\nmin_volume = -1\n")
    assert main([*argv, "--config", str(config)]) == 2
    assert "min_volume" in capsys.readouterr().err


def test_a_trend_window_shorter_than_a_week_still_compares_with_a_week_ago(tmp_path):
    end = _spike_day(tmp_path)
    r = cmd_daily(tmp_path, end, params=TrendParams(window_days=3, min_baseline_days=2))
    assert r.trend_rows > 0 and "against the 3-day baseline" in Path(r.report).read_text()
    trends = pl.read_parquet(tmp_path / "sor_trends" / f"ds={end}" / "part-00000.parquet")
    tiktok = trends.filter((pl.col("platform_name") == "TikTok") & (pl.col("category") == "ALL")).row(0, named=True)
    daily = {d: pl.read_parquet(tmp_path / "sor_daily" / f"ds={end - dt.timedelta(days=d)}" / "part-00000.parquet")
             .filter((pl.col("platform_name") == "TikTok") & (pl.col("category") == "ALL"))["statements"].item()
             for d in range(8)}  # fmt: skip
    assert tiktok["baseline_days"] == 3
    assert tiktok["wow_change"] == pytest.approx(daily[0] / daily[7] - 1)
    assert tiktok["statements_7d_mean"] == pytest.approx(sum(daily[d] for d in range(7)) / 7)


def test_the_page_says_when_its_baseline_is_too_short_to_flag_anomalies(tmp_path, out):
    """With no earlier day, no anomaly can be flagged: "No anomaly on this day" read as a quiet day.
    The page names the baseline it has; with enough days, a day without anomalies says so."""
    r = cmd_daily(out, "2024-03-14", run_ts="2024-03-15T02:00Z")
    text = " ".join(Path(r.report).read_text().split())
    assert "needs 14 observed days of baseline before 2024-03-14, and none is available" in text
    assert "No anomaly on this day" not in text

    end = _spike_day(tmp_path, last=50)  # 20 observed days before `end`, then a day like them
    quiet = cmd_daily(tmp_path, end)
    assert quiet.anomalies == 0
    text = " ".join(Path(quiet.report).read_text().split())
    assert "No anomaly on this day" in text and "observed days of baseline" not in text
