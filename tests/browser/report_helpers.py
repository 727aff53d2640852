"""Hand-built output tables (exactly OUTPUT_SCHEMAS) for the report tests, and the browser launcher.

Tables are kept as {table: {ds: frame}} so one set of data can be turned into a
ReportData (pure rendering tests) or written as a warehouse (jobs.report tests).
"""

from __future__ import annotations

import datetime as dt
import json
import random
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import polars as pl

from jobs.report import table_schema
from reports.model import ReportData

DS = dt.date(2024, 3, 14)
UTC = dt.UTC
Tables = dict[str, dict[dt.date, pl.DataFrame]]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def frame(table: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    schema = table_schema(table)
    return pl.DataFrame([{c: r.get(c) for c in schema} for r in rows], schema=schema, orient="row")


def _vd_row(market: str, cat: str, actioned: int, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "market": market, "policy_category": cat, "actioned": actioned,
        "proactive": actioned // 2, "proactive_rate": 0.5 if actioned else None,
        "automated": actioned // 4, "automated_rate": 0.25 if actioned else None,
        "zero_view": actioned // 4, "zero_view_rate": 0.25 if actioned else None,
        "within_24h": actioned, "within_24h_rate": 1.0 if actioned else None,
        "tta_p50_s": 3600.0 if actioned else None, "tta_p90_s": 7200.0 if actioned else None,
        "removed": actioned // 2, "appeals_resolved": 10, "appeals_overturned": 2, "overturn_rate": 0.2,
    }
    row.update(kw)
    return row


def _violation_day(cells: dict[tuple[str, str], int], all_all: dict[str, Any]) -> pl.DataFrame:
    """Cells per (market, category) plus the three rollups (rates of ALL/ALL given explicitly)."""
    rows = [_vd_row(m, c, n) for (m, c), n in sorted(cells.items())]
    markets = sorted({m for m, _ in cells})
    cats = sorted({c for _, c in cells})
    for m in markets:
        rows.append(_vd_row(m, "ALL", sum(n for (mm, _), n in cells.items() if mm == m)))
    for c in cats:
        rows.append(_vd_row("ALL", c, sum(n for (_, cc), n in cells.items() if cc == c)))
    rows.append(_vd_row("ALL", "ALL", sum(cells.values()), **all_all))
    return frame("violation_daily", rows)


def tiny_tables(market_b: str = "DE", category_b: str = "spam") -> tuple[Tables, dict[str, Any], dict[str, Any]]:
    """21 published days up to DS; DS has a hate_speech spike in US. Returns tables, manifest, dq of DS.

    KPI values on DS (vs DS-1, vs DS-7): decisions 1,000 (+25.0%, 0.0%), actioned 100 (+100.0%, +81.8%),
    proactive 62.0% (+12.0 pp, +2.0 pp), median TTA 1h 30m (+50.0%), SLA 95.0% (+5.0 pp),
    QA accuracy 80.0% (-10.0 pp, no QA a week earlier), overturn 10.0% (-10.0 pp).
    """
    tables: Tables = {t: {} for t in ("violation_daily", "violation_trends", "queue_daily", "reviewer_daily",
                                      "repeat_offenders", "creator_category_daily", "quarantine")}
    for back in range(20, -1, -1):
        day = DS - dt.timedelta(days=back)
        hate_us = 60 if back == 0 else 10
        spam_us = 30 if back == 7 else 25
        cells = {("US", "hate_speech"): hate_us, (market_b, "hate_speech"): 5,
                 ("US", category_b): spam_us, (market_b, category_b): 10}
        all_all = {
            0: {"proactive_rate": 0.62, "zero_view_rate": 0.25, "tta_p50_s": 5400.0, "overturn_rate": 0.1},
            1: {"proactive_rate": 0.5, "zero_view_rate": 0.3, "tta_p50_s": 3600.0, "overturn_rate": 0.2},
            7: {"proactive_rate": 0.6, "zero_view_rate": 0.2, "tta_p50_s": 3600.0, "overturn_rate": 0.15},
        }.get(back, {})
        tables["violation_daily"][day] = _violation_day(cells, all_all)

    def qrow(q: str, m: str, n: int, met: int, p50: float, p90: float, sla: float) -> dict[str, Any]:
        return {"queue": q, "market": m, "decisions": n, "automated": n // 5, "automation_rate": 0.2,
                "violations": n // 10, "violation_rate": 0.1, "wait_p50_s": p50, "wait_p90_s": p90,
                "wait_max_s": p90 * 2, "sla_s": sla, "sla_met": met, "sla_rate": met / n}

    tables["queue_daily"][DS] = frame("queue_daily", [
        qrow("live_realtime", "US", 300, 270, 60.0, 280.0, 300.0),
        qrow("live_realtime", market_b, 100, 80, 90.0, 420.0, 300.0),
        qrow("comments", "US", 600, 600, 3600.0, 20000.0, 86400.0),
    ])
    tables["queue_daily"][DS - dt.timedelta(days=1)] = frame("queue_daily", [
        qrow("live_realtime", "US", 800, 720, 60.0, 300.0, 300.0)])
    tables["queue_daily"][DS - dt.timedelta(days=7)] = frame("queue_daily", [
        qrow("comments", "US", 1000, 950, 3600.0, 20000.0, 86400.0)])

    def rrow(rid: str, team: str, n: int, dph: float | None, audits: int, agreed: int) -> dict[str, Any]:
        return {"reviewer_id": rid, "team": team, "site": "Dublin", "decisions": n, "violations": n // 3,
                "handle_time_total_s": n * 3600.0 / dph if dph else 0.0, "aht_s": 3600.0 / dph if dph else None,
                "handle_p50_s": 80.0, "handle_p90_s": 200.0, "decisions_per_hour": dph,
                "logged_in_s": 28800.0, "occupancy": 0.7, "sla_met": n, "sla_rate": 1.0 if n else None,
                "qa_audits": audits, "qa_agreed": agreed, "qa_accuracy": agreed / audits if audits else None,
                "appeals_resolved": 0, "appeals_overturned": 0, "overturn_rate": None}

    tables["reviewer_daily"][DS] = frame("reviewer_daily", [
        rrow("alice.smith@corp", "live-emea", 200, 40.0, 10, 9),
        rrow("bob.jones@corp", "live-emea", 100, 20.0, 10, 7),
        rrow("carol.ng@corp", "video", 0, None, 0, 0),
    ])
    tables["reviewer_daily"][DS - dt.timedelta(days=1)] = frame("reviewer_daily", [
        rrow("alice.smith@corp", "live-emea", 150, 35.0, 10, 9)])
    tables["reviewer_daily"][DS - dt.timedelta(days=7)] = frame("reviewer_daily", [
        rrow("alice.smith@corp", "live-emea", 150, 35.0, 0, 0)])

    def trow(m: str, c: str, n: int, mean: float, std: float, z: float | None, anomaly: bool,
             wow: float | None, days: int = 20) -> dict[str, Any]:
        return {"market": m, "policy_category": c, "actioned": n, "actioned_7d_mean": mean, "baseline_days": days,
                "baseline_mean": mean, "baseline_std": std, "zscore": z, "wow_change": wow,
                "is_anomaly": anomaly, "direction": ("spike" if z and z > 0 else "drop") if anomaly else None}

    tables["violation_trends"][DS] = frame("violation_trends", [
        trow("ALL", "ALL", 100, 50.2, 1.0, 49.8, False, 100 / 55 - 1),
        trow("ALL", "hate_speech", 65, 15.0, 2.0, 25.0, True, 65 / 15 - 1),
        trow("US", "hate_speech", 60, 10.0, 1.5, 33.3, True, 5.0),
        trow("US", category_b, 25, 25.2, 1.2, -0.2, False, -25 / 30 + 1 - 1),
        trow(market_b, "hate_speech", 5, 5.0, 0.0, None, False, 0.0),
        trow(market_b, category_b, 10, 10.0, 0.0, None, False, 0.0),
        trow("ALL", category_b, 35, 35.2, 1.1, -0.2, False, 35 / 40 - 1),
        trow("US", "ALL", 85, 35.0, 1.4, 35.7, False, 85 / 40 - 1),
        trow(market_b, "ALL", 15, 15.0, 0.0, None, False, 0.0),
    ])

    last = dt.datetime(2024, 3, 14, 12, 0, tzinfo=UTC)
    tables["repeat_offenders"][DS] = frame("repeat_offenders", [
        {"creator_id": f"creator-SECRET-{i}", "violations_30d": n, "distinct_categories": k, "last_violation_at": last}
        for i, (n, k) in enumerate([(3, 1), (3, 1), (4, 2), (12, 2), (60, 3)])
    ])
    tables["creator_category_daily"][DS] = frame("creator_category_daily", [
        {"creator_id": "creator-SECRET-4", "policy_category": "hate_speech", "violations": 40, "last_violation_at": last},
        {"creator_id": "creator-SECRET-4", "policy_category": category_b, "violations": 20, "last_violation_at": last},
        {"creator_id": "creator-SECRET-3", "policy_category": category_b, "violations": 12, "last_violation_at": last},
    ])
    tables["quarantine"][DS] = frame("quarantine", [
        {"source_table": "decisions", "reason": "bad_mode", "record_id": "d-1", "decision_id": "d-1",
         "row": json.dumps({"decision_id": "d-1", "creator_id": "creator-SECRET-9"})},
        {"source_table": "decisions", "reason": "bad_mode", "record_id": "d-2", "decision_id": "d-2", "row": "{}"},
        {"source_table": "shifts", "reason": "missing_key", "record_id": None, "decision_id": None, "row": "{}"},
    ])
    manifest = {
        "ds": DS.isoformat(), "engine": "polars",
        "versions": {"python": "3.11.9", "polars": "2.1.0", "narwhals": "2.28.0"},
        "code_revision": "abc1234def", "run_started_at": "2024-03-15T02:00:03Z",
        "inputs": {"decisions": {"path": "/in/decisions/ds=2024-03-14", "files": 2, "rows": 1003},
                   "shifts": {"path": "/in/shifts/ds=2024-03-14", "files": 1, "rows": 4}},
        "duplicates_dropped": {"decisions": 3},
        "quarantined": {"decisions": {"bad_mode": 2}, "shifts": {"missing_key": 1}},
        "rows_written": {"violation_daily": 9, "quarantine": 3},
        "stage_seconds": {"read_stage_compute": 1.25, "dq": 0.4, "publish": 0.01},
        "dq": {"verdict": "warn", "critical_failed": [], "warnings": ["decisions.volume_vs_trailing_7d"]},
        "published": True,
    }
    dq = {
        "ds": DS.isoformat(), "verdict": "warn",
        "results": [
            {"table": "violation_daily", "expectation": "grain_unique", "severity": "critical", "success": True,
             "observed_value": 0, "details": ""},
            {"table": "decisions", "expectation": "volume_vs_trailing_7d", "severity": "warning", "success": False,
             "observed_value": {"ratio": 2.4}, "details": "volume 2.4x the trailing mean"},
        ],
    }
    return tables, manifest, dq


def _days(tables: Tables, table: str, days: list[dt.date]) -> pl.DataFrame:
    parts = [df.with_columns(pl.lit(d, dtype=pl.Date).alias("ds")) for d, df in sorted(tables.get(table, {}).items())
             if d in days]
    if not parts:
        return pl.DataFrame(schema={**table_schema(table), "ds": pl.Date()})
    return pl.concat(parts)


def report_data(tables: Tables, ds: dt.date, manifest: dict[str, Any] | None,
                dq: dict[str, Any] | None) -> ReportData:
    """The ReportData jobs.report would load from these tables (without the offender categories)."""
    window = [ds - dt.timedelta(days=i) for i in range(29)]
    kpi_days = [ds, ds - dt.timedelta(days=1), ds - dt.timedelta(days=7)]
    ro = tables.get("repeat_offenders", {}).get(ds, frame("repeat_offenders", []))
    q = tables.get("quarantine", {}).get(ds, frame("quarantine", []))
    qc = q.group_by("source_table", "reason").agg(pl.len().cast(pl.Int64).alias("rows"))
    return ReportData(
        ds=ds,
        violation_daily=_days(tables, "violation_daily", window),
        violation_trends=_days(tables, "violation_trends", window),
        reviewer_daily=_days(tables, "reviewer_daily", kpi_days),
        queue_daily=_days(tables, "queue_daily", kpi_days),
        repeat_offenders=ro,
        quarantine_counts=qc,
        manifest=manifest,
        dq=dq,
        published=ds in tables.get("violation_daily", {}),
    )


def write_warehouse(root: Path, tables: Tables, runs: dict[dt.date, tuple[dict | None, dict | None]]) -> None:
    """Lay the tables out as a published warehouse: <root>/<table>/ds=D/part-00000.parquet + _runs."""
    for table, days in tables.items():
        for day, df in days.items():
            part = root / table / f"ds={day.isoformat()}"
            part.mkdir(parents=True, exist_ok=True)
            df.write_parquet(part / "part-00000.parquet")
    for day, (manifest, dq) in runs.items():
        run = root / "_runs" / f"ds={day.isoformat()}"
        run.mkdir(parents=True, exist_ok=True)
        if manifest is not None:
            (run / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        if dq is not None:
            (run / "dq.json").write_text(json.dumps(dq, indent=2), encoding="utf-8")


# ----------------------------------------------------------------- a realistic day
MARKETS = ("US", "BR", "ID", "GB", "DE", "FR", "MX", "JP", "TR", "PH", "VN", "TH", "IT", "ES", "PL", "EG",
           "SA", "AR", "CO", "CA", "AU", "NG", "PK", "MY", "KR", "NL", "RO", "CL", "PE", "ZA", "UA", "SE",
           "BE", "PT", "CZ", "GR", "HU", "AT", "CH", "IE")
CATEGORIES = ("violent_extremism", "hate_speech", "harassment", "child_safety", "adult_nudity", "self_harm",
              "dangerous_acts", "violent_graphic", "spam", "scams_fraud", "misinformation", "illegal_goods",
              "ip_infringement", "minor_safety")
QUEUES = {"live_realtime": 300.0, "live_escalation": 900.0, "video_standard": 43200.0, "comments": 86400.0,
          "accounts": 86400.0, "ads": 43200.0, "live_comments": 600.0, "appeals_review": 172800.0}


def realistic_tables(ds: dt.date = DS, seed: int = 7, reviewers: int = 800,
                     offenders: int = 20000) -> tuple[Tables, dict[str, Any], dict[str, Any]]:
    """About what a day of a few million decisions publishes: 40 markets x 14 categories x 29 days,
    8 queues in every market, 800 reviewers, 20k repeat offenders, one injected spike."""
    rnd = random.Random(seed)
    weight_m = {m: 1.0 / (i + 1) ** 0.8 for i, m in enumerate(MARKETS)}
    weight_c = {c: rnd.uniform(0.3, 3.0) for c in CATEGORIES}
    tables: Tables = {t: {} for t in ("violation_daily", "violation_trends", "queue_daily", "reviewer_daily",
                                      "repeat_offenders", "quarantine")}
    history: dict[tuple[str, str], list[int]] = {}
    for back in range(28, -1, -1):
        day = ds - dt.timedelta(days=back)
        if back in (12,):  # one unobserved day: a gap in the trend
            continue
        cells = {}
        for m in MARKETS:
            for c in CATEGORIES:
                mu = 400 * weight_m[m] * weight_c[c] * (1.15 if day.weekday() >= 5 else 1.0)
                if back == 0 and (m, c) in (("BR", "scams_fraud"), ("US", "hate_speech")):
                    mu *= 3.5
                n = max(0, int(rnd.gauss(mu, mu ** 0.5 + 1)))
                if n:
                    cells[(m, c)] = n
        all_all = {"proactive_rate": rnd.uniform(0.55, 0.7), "zero_view_rate": rnd.uniform(0.3, 0.4),
                   "tta_p50_s": rnd.uniform(3000, 5000), "overturn_rate": rnd.uniform(0.05, 0.09)}
        vd = _violation_day(cells, all_all)
        tables["violation_daily"][day] = vd
        for r in vd.iter_rows(named=True):
            history.setdefault((r["market"], r["policy_category"]), []).append(r["actioned"] if day < ds else -1)
    trend_rows = []
    today = {(r["market"], r["policy_category"]): r["actioned"]
             for r in tables["violation_daily"][ds].iter_rows(named=True)}
    for key in sorted(history):
        base = [v for v in history[key] if v >= 0]
        n = today.get(key, 0)
        mean = sum(base) / len(base) if base else None
        std = (sum((v - mean) ** 2 for v in base) / (len(base) - 1)) ** 0.5 if len(base) > 1 else None
        z = (n - mean) / std if std else None
        anomaly = z is not None and abs(z) >= 3 and max(n, mean or 0) >= 20
        week = base[-7] if len(base) >= 7 else 0
        trend_rows.append({"market": key[0], "policy_category": key[1], "actioned": n, "actioned_7d_mean": mean,
                           "baseline_days": len(base), "baseline_mean": mean, "baseline_std": std, "zscore": z,
                           "wow_change": n / week - 1 if week else None, "is_anomaly": anomaly,
                           "direction": ("spike" if z > 0 else "drop") if anomaly else None})
    tables["violation_trends"][ds] = frame("violation_trends", trend_rows)
    for day in (ds, ds - dt.timedelta(days=1), ds - dt.timedelta(days=7)):
        qrows = []
        for q, sla in QUEUES.items():
            for m in MARKETS:
                n = int(2000 * weight_m[m] * rnd.uniform(0.5, 1.5))
                p50 = sla * rnd.uniform(0.05, 0.6)
                p90 = p50 * rnd.uniform(1.5, 4.0)
                met = int(n * rnd.uniform(0.7, 1.0))
                qrows.append({"queue": q, "market": m, "decisions": n, "automated": n // 3, "automation_rate": 1 / 3,
                              "violations": n // 4, "violation_rate": 0.25, "wait_p50_s": p50, "wait_p90_s": p90,
                              "wait_max_s": p90 * 3, "sla_s": sla, "sla_met": met, "sla_rate": met / n})
        tables["queue_daily"][day] = frame("queue_daily", qrows)
        rrows = []
        for i in range(reviewers):
            n = rnd.randint(50, 600)
            dph = rnd.uniform(15, 90)
            audits = rnd.randint(0, 25)
            agreed = sum(rnd.random() < 0.93 for _ in range(audits))
            rrows.append({"reviewer_id": f"emp{i:05d}@corp", "team": f"team-{i % 12}", "site": "Dublin",
                          "decisions": n, "violations": n // 3, "handle_time_total_s": n * 3600 / dph,
                          "aht_s": 3600 / dph, "handle_p50_s": 3000 / dph, "handle_p90_s": 7000 / dph,
                          "decisions_per_hour": dph, "logged_in_s": 28800.0, "occupancy": n * 3600 / dph / 28800,
                          "sla_met": n, "sla_rate": 1.0, "qa_audits": audits, "qa_agreed": agreed,
                          "qa_accuracy": agreed / audits if audits else None, "appeals_resolved": 0,
                          "appeals_overturned": 0, "overturn_rate": None})
        tables["reviewer_daily"][day] = frame("reviewer_daily", rrows)
    last = dt.datetime(ds.year, ds.month, ds.day, 23, 0, tzinfo=UTC)
    tables["repeat_offenders"][ds] = frame("repeat_offenders", [
        {"creator_id": f"cr{i:08d}", "violations_30d": 3 + int(rnd.paretovariate(1.6)) - 1,
         "distinct_categories": rnd.choice((1, 1, 1, 2, 2, 3)), "last_violation_at": last} for i in range(offenders)])
    reasons = ("missing_key", "bad_timestamp", "wrong_partition", "bad_mode", "bad_outcome", "bad_range",
               "conflicting_duplicate")
    tables["quarantine"][ds] = frame("quarantine", [
        {"source_table": "decisions", "reason": reasons[i % len(reasons)], "record_id": f"d{i}",
         "decision_id": f"d{i}", "row": "{}"} for i in range(700)])
    manifest = {"ds": ds.isoformat(), "engine": "polars", "versions": {"python": "3.11.9", "polars": "2.1.0"},
                "code_revision": "0123456789abcdef", "run_started_at": f"{ds + dt.timedelta(days=1)}T02:00:00Z",
                "inputs": {"decisions": {"path": "/data/in/decisions", "files": 8, "rows": 4_000_000}},
                "duplicates_dropped": {"decisions": 120}, "quarantined": {"decisions": {"bad_mode": 100}},
                "rows_written": {"violation_daily": tables["violation_daily"][ds].height},
                "stage_seconds": {"read_stage_compute": 41.2, "dq": 3.1, "publish": 0.2},
                "dq": {"verdict": "pass"}, "published": True}
    dq = {"ds": ds.isoformat(), "verdict": "pass",
          "results": [{"table": "violation_daily", "expectation": "grain_unique", "severity": "critical",
                       "success": True, "observed_value": 0, "details": ""}]}
    return tables, manifest, dq


# ----------------------------------------------------------------- accessibility of the markup
class _A11y(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: dict[str, str] = {}  # id -> text
        self.open_ids: list[tuple[str, str]] = []  # (tag, id) of elements whose text is being read
        self.tables: list[dict[str, Any]] = []
        self.in_caption = self.in_thead = False
        self.first_link: dict[str, str] | None = None
        self.links: list[tuple[str, str]] = []  # (href, text)
        self.link: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.setdefault(a["id"], "")
            self.open_ids.append((tag, a["id"]))
        if tag == "a" and "href" in a:
            self.first_link = self.first_link or a
            self.link = [a["href"]]
        if tag == "table":
            self.tables.append({"id": a.get("id", ""), "labelledby": a.get("aria-labelledby"), "caption": "",
                                "unscoped": 0})
        elif tag == "caption":
            self.in_caption = True
        elif tag == "thead":
            self.in_thead = True
        elif tag == "th" and self.in_thead and a.get("scope") != "col":
            self.tables[-1]["unscoped"] += 1

    def handle_endtag(self, tag: str) -> None:
        if self.open_ids and self.open_ids[-1][0] == tag:
            self.open_ids.pop()
        if tag == "caption":
            self.in_caption = False
        elif tag == "thead":
            self.in_thead = False
        elif tag == "a" and self.link is not None:
            self.links.append((self.link[0], "".join(self.link[1:]).strip()))
            self.link = None

    def handle_data(self, data: str) -> None:
        for _, i in self.open_ids:
            self.ids[i] += data
        if self.in_caption:
            self.tables[-1]["caption"] += data
        if self.link is not None:
            self.link.append(data)


def a11y_problems(html: str) -> list[str]:
    """What keeps a page's markup from reading well with a screen reader or a keyboard: a table
    without a name (caption, or aria-labelledby naming an element with text), a column header
    without scope="col", no skip link to the main content as the first link."""
    p = _A11y()
    p.feed(html)
    problems = []
    for t in p.tables:
        named = t["caption"].strip() or (t["labelledby"] and p.ids.get(t["labelledby"], "").strip())
        if not named:
            problems.append(f"table {t['id'] or '(no id)'} has no name")
        if t["unscoped"]:
            problems.append(f"table {t['id'] or '(no id)'}: {t['unscoped']} column headers without scope")
    link = p.first_link or {}
    if not (link.get("href", "").startswith("#") and link["href"][1:] in p.ids and "main" in p.ids):
        problems.append(f"the first link {link.get('href')!r} does not skip to <main id=main>")
    return problems


def link_texts(html: str) -> list[tuple[str, str]]:
    p = _A11y()
    p.feed(html)
    return p.links


# ----------------------------------------------------------------- browser
def open_page(playwright: Any, user_data_dir: Path, viewport: dict[str, int] | None = None) -> tuple[Any, Any]:
    """Debian's chromium with a fresh profile; returns (context, page)."""
    context = playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport=viewport or {"width": 1400, "height": 1000},
    )
    page = context.pages[0] if context.pages else context.new_page()
    return context, page
