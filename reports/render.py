"""Pure rendering: ReportData -> one self-contained HTML string (DESIGN §7).

Nothing here reads a file other than the package's templates, nor the clock: the run
timestamp and the pseudonym key are parameters, every collection is sorted before it
is shown, and figures have fixed ids, so the same inputs give byte-identical HTML.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import polars as pl
from markupsafe import Markup

from reports import figures
from reports.fmt import FILTERS, fmt_distinct, fmt_int, fmt_rate_observed, thousands_in_text
from reports.kpis import compute_kpis
from reports.model import IndexEntry, ReportData
from reports.pseudonym import is_demo_key
from transforms.schemas import ALL

TOP_N = 10
OBSERVED_VALUE_MAX_CHARS = 200

# Nothing a chart may do should reach the network: no MathJax, no cloud links.
PLOTLY_CONFIG: dict[str, Any] = {
    "displaylogo": False,
    "responsive": True,
    "showLink": False,
    "showSendToCloud": False,
    "showEditInChartStudio": False,
    "typesetMath": False,
    "modeBarButtonsToRemove": ["sendDataToCloud"],
    # The mode bar put ~43 invisible tab stops inside each chart (role=img, so unnamed to a screen
    # reader); zoom and pan still work with the mouse, and the tables carry the figures.
    "displayModeBar": False,
}

TEMPLATES_DIR = Path(__file__).parent / "templates"

# Where a run that failed the gate leaves the rows it rejected, relative to the warehouse (jobs.nightly's
# Candidate: `_candidates/ds=D/`, its tables under `tables/`); kept for inspection until the next run.
CANDIDATE_QUARANTINE_DIR = "_candidates/ds={ds}/tables/quarantine/"

# A failed row-level check's details end with great-expectations' sample of the unexpected values
# ("4 of 13 rows unexpected, e.g. ['rv-000000', ...]", expectations.gate._convert): raw reviewer or
# creator ids, which the page promises not to show. dq.json keeps the sample for operators.
_VALUE_SAMPLE = re.compile(r",?\s*\be\.g\.\s.*\Z", re.S)
VALUE_SAMPLE_NOTE = " (sample of values in dq.json)"


@lru_cache(maxsize=1)
def template_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(FILTERS)
    return env


@lru_cache(maxsize=1)
def plotly_js() -> Markup:
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    # Inlined verbatim, so it must not be able to close its own <script> element.
    if "</script" in js.lower() or "<!--" in js:
        raise RuntimeError("bundled plotly.js cannot be inlined safely")
    return Markup(js)


def script_json(value: Any) -> Markup:
    """JSON safe inside <script>: no `</`, `<!--`, `]]>` or line separators survive."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, allow_nan=False)
    for raw, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                     ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, esc)
    return Markup(text)


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return float(x)


def _as_dict(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _rows(df: pl.DataFrame) -> list[dict[str, Any]]:
    return list(df.iter_rows(named=True))


def _today(df: pl.DataFrame, ds: date) -> pl.DataFrame:
    return df.filter(pl.col("ds") == ds) if "ds" in df.columns else df


def dq_verdict(dq: dict[str, Any] | None, manifest: dict[str, Any] | None) -> str | None:
    """pass, warn or fail: dq.json's verdict, else the manifest's `dq.verdict`; None when neither
    holds one of the three (a run file missing, malformed, or still "pending")."""
    for source in (_as_dict(dq), _as_dict(_as_dict(manifest).get("dq"))):
        v = source.get("verdict")
        if v in ("pass", "warn", "fail"):
            return str(v)
    return None


def _anomalies(trends: pl.DataFrame) -> list[dict[str, Any]]:
    a = trends.filter(pl.col("is_anomaly").fill_null(False))
    a = a.with_columns(pl.col("zscore").abs().alias("_abs_z")).sort(
        ["_abs_z", "market", "policy_category"], descending=[True, False, False], nulls_last=True
    )
    return _rows(a)


def _risers(trends: pl.DataFrame, min_actioned: float) -> list[dict[str, Any]]:
    # ALL/ALL is the headline KPI already; as a "riser" it would crowd out the combinations behind it.
    # Risers on a handful of items are noise: the anomaly rule's volume floor applies.
    r = trends.filter(
        ~((pl.col("market") == ALL) & (pl.col("policy_category") == ALL))
        & (pl.col("actioned") >= min_actioned)
        & ((pl.col("zscore").fill_null(0) > 0) | (pl.col("wow_change").fill_null(0) > 0))
    ).sort(["zscore", "wow_change", "market", "policy_category"],
           descending=[True, True, False, False], nulls_last=True)
    return _rows(r.head(TOP_N))


def _queue_summary(queue_daily: pl.DataFrame) -> list[dict[str, Any]]:
    q = queue_daily.filter(pl.col("decisions") > 0)
    if q.height == 0:
        return []
    worst = (q.sort(["queue", "wait_p90_s", "market"], descending=[False, True, False], nulls_last=True)
             .group_by("queue", maintain_order=True).first()
             .select("queue", pl.col("market").alias("worst_market"), pl.col("wait_p90_s").alias("worst_p90_s")))
    # The chart's rows follow the same order (figures.queue_order), top to bottom.
    s = figures.queue_sla(q, pl.col("sla_s").max(), pl.col("market").n_unique().alias("markets"))
    return _rows(s.join(worst, on="queue", how="left", maintain_order="left"))


def _reviewer_summary(reviewer_daily: pl.DataFrame) -> dict[str, int]:
    r = reviewer_daily
    return {
        "reviewers": r.height,
        "with_decisions": int((r["decisions"] > 0).sum()) if r.height else 0,
        "with_qa": int((r["qa_audits"] > 0).sum()) if r.height else 0,
        "plotted": int((r["decisions_per_hour"].is_not_null() & r["qa_accuracy"].is_not_null()).sum())
        if r.height else 0,
    }


def _offenders(data: ReportData) -> dict[str, Any]:
    ro = data.repeat_offenders
    dist = (ro.group_by("distinct_categories").agg(pl.len().alias("creators")).sort("distinct_categories")
            if ro.height else pl.DataFrame())
    cats: list[dict[str, Any]] = []
    if data.offender_categories is not None and data.offender_categories.height:
        cats = _rows(data.offender_categories.sort(["creators", "policy_category"], descending=[True, False]))
    return {
        "count": ro.height,
        "violations": int(ro["violations_30d"].sum()) if ro.height else 0,
        "median": _num(ro["violations_30d"].median()) if ro.height else None,
        "max": int(ro["violations_30d"].max()) if ro.height else None,
        "multi_category": int((ro["distinct_categories"] >= 2).sum()) if ro.height else 0,
        "buckets": figures.offender_buckets(ro, data.offender_params.min_violations) if ro.height else [],
        "distinct_categories": _rows(dist) if ro.height else [],
        "categories": cats,
    }


# What a dq.json written before results carried min_value/max_value states of its bounds, in its
# details ("...; warns above 0.1%", "allowed x0.5..x2"): read only for such older files.
_OLD_RATE_LIMIT = re.compile(r"\b(?:warns|fails) above (\d+(?:\.\d+)?(?:[eE]-?\d+)?)%")
_OLD_RATIO_BOUNDS = re.compile(r"allowed x(\d+(?:\.\d+)?)\.\.x(\d+(?:\.\d+)?)")


def _bounds(result: dict[str, Any], details: str) -> tuple[float, ...]:
    """The bounds a result's observed figure is checked against (those it has)."""
    if "min_value" in result or "max_value" in result:
        return tuple(b for b in map(_num, (result.get("min_value"), result.get("max_value"))) if b is not None)
    ratio = _OLD_RATIO_BOUNDS.search(details)
    if ratio:
        return tuple(float(b) for b in ratio.groups())
    return tuple(float(t) / 100.0 for t in _OLD_RATE_LIMIT.findall(details))


def _is_rate_check(expectation: str) -> bool:
    """A check whose observed value is a share: unknown_market_rate, quarantine_rate_elevated, ..."""
    return re.search(r"_rate(_|$)", expectation.split(":", 1)[0]) is not None


def _fmt_observed(expectation: str, value: Any, bounds: tuple[float, ...]) -> str:
    """An observed value as the page shows it: a rate as a percentage, a ratio as "×2.40" (both with
    the digits that tell them from the check's `bounds`), a count with thousands separators,
    anything else as JSON."""
    x = _num(value)
    if x is not None:
        if _is_rate_check(expectation):
            return fmt_rate_observed(x, bounds)
        if expectation.startswith("volume_vs_"):
            return "×" + fmt_distinct(x, bounds)
        if x.is_integer():
            return fmt_int(x)
        return fmt_distinct(x, sig=4)
    if value is None:
        return "–"
    observed = json.dumps(value, sort_keys=True, default=str)
    if len(observed) > OBSERVED_VALUE_MAX_CHARS:
        observed = observed[: OBSERVED_VALUE_MAX_CHARS - 1] + "…"
    return observed


def _superseded(warning: dict[str, Any], critical: list[dict[str, Any]]) -> bool:
    """The warning level of a failed critical check on the same figure (quarantine_rate_elevated
    beside quarantine_rate): listing it too would show every breach twice."""
    return any(c["table"] == warning["table"] and warning["expectation"].startswith(c["expectation"] + "_")
               and c["_raw"] == warning["_raw"] for c in critical)


def _dq_section(data: ReportData) -> dict[str, Any]:
    manifest = _as_dict(data.manifest)
    qc = data.quarantine_counts.sort(["source_table", "reason"])
    if not data.published:
        # No quarantine table was published; the run's own counts say what it found (the reason a
        # gate most often fails on).
        counted = [(str(t), str(r), int(n)) for t, reasons in _as_dict(manifest.get("quarantined")).items()
                   for r, n in _as_dict(reasons).items() if _num(n)]
        qc = pl.DataFrame(counted, schema=data.quarantine_counts.schema, orient="row").sort(["source_table", "reason"])
    dups = sorted((str(k), _num(v)) for k, v in _as_dict(manifest.get("duplicates_dropped")).items())
    failed = []
    results = _as_dict(data.dq).get("results")
    for r in results if isinstance(results, list) else []:
        r = _as_dict(r)
        if r.get("success") is True:
            continue
        expectation, details = str(r.get("expectation", "")), str(r.get("details", "") or "")
        failed.append({
            "table": str(r.get("table", "")),
            "expectation": expectation,
            "severity": str(r.get("severity", "")),
            "observed": _fmt_observed(expectation, r.get("observed_value"), _bounds(r, details)),
            "details": thousands_in_text(_VALUE_SAMPLE.sub(VALUE_SAMPLE_NOTE, details)),
            "_raw": json.dumps(r.get("observed_value"), sort_keys=True, default=str),
        })
    critical = [f for f in failed if f["severity"] == "critical"]
    listed = [f for f in failed if f["severity"] == "critical" or not _superseded(f, critical)]
    # Critical first: they are why a day was not published.
    listed.sort(key=lambda f: (f["severity"] != "critical", f["table"], f["expectation"], f["_raw"]))
    n_results = len(results) if isinstance(results, list) else 0
    return {
        "verdict": dq_verdict(data.dq, data.manifest),
        "has_dq": data.dq is not None,
        "n_results": n_results,
        "failed": listed,
        "n_critical": len(critical),
        "n_warnings": len(listed) - len(critical),
        "n_superseded": len(failed) - len(listed),
        "quarantine": _rows(qc),
        "quarantine_total": int(qc["rows"].sum()) if qc.height else 0,
        "duplicates": dups,
    }


def _unpublished(data: ReportData, dq: dict[str, Any]) -> dict[str, Any] | None:
    """Why ds has no published tables, as far as its recorded run says: `gate_failed` (the candidate
    was held back and kept for inspection), `not_published` (a recorded run that did not publish,
    for another reason) or `not_run` (no run files at all)."""
    if data.published:
        return None
    m = data.manifest if isinstance(data.manifest, dict) else None
    if dq["verdict"] == "fail":
        case = "gate_failed"
    elif m is None and data.dq is None:
        case = "not_run"
    else:
        case = "not_published"
    recorded = [str(c) for c in _as_dict(_as_dict(m).get("dq")).get("critical_failed", []) or []]
    critical = recorded or [f"{f['table']}.{f['expectation']}" for f in dq["failed"] if f["severity"] == "critical"]
    ds = data.ds.isoformat()
    return {
        "case": case,
        "run_id": str(m["run_id"]) if m and m.get("run_id") else None,
        "run_started_at": str(m["run_started_at"]) if m and m.get("run_started_at") else None,
        "critical_failed": critical,
        "verdict": dq["verdict"],
        "quarantine_dir": CANDIDATE_QUARANTINE_DIR.format(ds=ds),
    }


def _run_section(manifest: dict[str, Any] | None) -> dict[str, Any] | None:
    if manifest is None:
        return None
    m = _as_dict(manifest)
    inputs = []
    for table, info in sorted(_as_dict(m.get("inputs")).items()):
        info = _as_dict(info)
        inputs.append({"table": str(table), "files": _num(info.get("files")), "rows": _num(info.get("rows")),
                       "path": str(info.get("path", "") or "")})
    quarantined = []
    for table, reasons in sorted(_as_dict(m.get("quarantined")).items()):
        for reason, n in sorted(_as_dict(reasons).items()):
            quarantined.append({"table": str(table), "reason": str(reason), "rows": _num(n)})
    return {
        "engine": str(m.get("engine", "unknown")),
        "code_revision": str(m.get("code_revision", "unknown")),
        "run_started_at": str(m.get("run_started_at", "unknown")),
        "published": m.get("published"),
        "versions": sorted((str(k), str(v)) for k, v in _as_dict(m.get("versions")).items()),
        "inputs": inputs,
        "rows_written": sorted((str(k), _num(v)) for k, v in _as_dict(m.get("rows_written")).items()),
    }


def _latest_failed(manifest: dict[str, Any] | None, ds: date) -> dict[str, Any] | None:
    if manifest is None:
        return None
    m = _as_dict(manifest)
    return {
        "run_id": str(m.get("run_id", "unknown")),
        "run_started_at": str(m.get("run_started_at", "unknown")),
        "critical_failed": [str(c) for c in _as_dict(m.get("dq")).get("critical_failed", []) or []],
        "quarantine_dir": CANDIDATE_QUARANTINE_DIR.format(ds=ds.isoformat()),
    }


def baseline(trends: pl.DataFrame, required: int, keys: tuple[str, str] = ("market", "policy_category")) -> dict[str, Any]:
    """The observed days of the day's baseline (its ALL/ALL row's, else the most any row has), and
    whether they reach `required`: below it, no anomaly can be flagged, and "no anomaly" would
    read as a quiet day."""
    row = trends.filter((pl.col(keys[0]) == ALL) & (pl.col(keys[1]) == ALL))
    days = int(row["baseline_days"][0]) if row.height and row["baseline_days"][0] is not None else None
    if days is None and trends.height:
        days = int(trends["baseline_days"].max())
    return {"days": days, "required": required, "sufficient": days is not None and days >= required}


def render_day(data: ReportData, *, run_ts: str, pseudonym_key: bytes) -> str:
    """The day's report as one self-contained HTML document."""
    ds = data.ds
    trends_today = _today(data.violation_trends, ds)
    queue_summary = _queue_summary(_today(data.queue_daily, ds))
    charts = {
        "trend": figures.trend_chart(data.violation_daily, data.violation_trends, ds, data.taxonomy),
        "heatmap": figures.heatmap_chart(data.violation_daily, ds),
        "queues": figures.queue_chart(data.queue_daily, ds),
        "reviewers": figures.reviewer_chart(data.reviewer_daily, ds, pseudonym_key),
        "offenders": figures.offender_chart(data.repeat_offenders, ds, data.offender_params.min_violations,
                                            data.offender_params.window_days, data.offender_days_observed),
    }
    if not data.published:
        # Empty because nothing was published, not because nothing happened: the run may have
        # staged a whole day before the gate held it back. The trend keeps the days before.
        for key in ("heatmap", "queues", "reviewers", "offenders"):
            charts[key] = figures.Chart(charts[key].id, charts[key].title, None, f"Nothing was published for {ds}.")
    window_start = ds - timedelta(days=figures.TREND_DAYS)
    dq = _dq_section(data)
    observed_days = data.violation_daily.filter(
        (pl.col("ds") >= window_start) & (pl.col("ds") <= ds)
    )["ds"].n_unique()
    context = {
        "ds": ds.isoformat(),
        "run_ts": run_ts,
        "published": data.published,
        "demo_key": is_demo_key(pseudonym_key),
        "kpis": compute_kpis(data) if data.published else None,
        "charts": charts,
        "figure_specs": [(c.id, script_json(c.spec_json)) for c in charts.values() if c.spec_json is not None],
        "plotly_config": script_json(PLOTLY_CONFIG),
        "plotly_js": plotly_js(),
        "baseline": baseline(trends_today, data.trend_params.min_baseline_days),
        "trend": data.trend_params,
        "offender_params": data.offender_params,
        "offender_window": figures.offender_window(data.offender_params.window_days, ds, data.offender_days_observed),
        "observed_days": observed_days,
        "trend_days": figures.TREND_DAYS + 1,
        "has_trends": trends_today.height > 0,
        "anomalies": _anomalies(trends_today),
        "risers": _risers(trends_today, data.trend_params.min_volume),
        "riser_min": data.trend_params.min_volume,
        "min_team_shown": figures.MIN_TEAM_SHOWN,
        # actioned_7d_mean covers ds-6..ds (DESIGN §4 violation_trends).
        "mean_7d_first": (ds - timedelta(days=6)).isoformat(),
        "queue_summary": queue_summary,
        "reviewers": _reviewer_summary(_today(data.reviewer_daily, ds)),
        "offenders": _offenders(data),
        "dq": dq,
        "unpublished": _unpublished(data, dq),
        "run": _run_section(data.manifest),
        "latest_failed": _latest_failed(data.latest_failed, ds),
        "stale_inputs": [d.isoformat() for d in data.stale_inputs],
        "params_changed": [(d.isoformat(), list(keys)) for d, keys in data.params_changed],
        "previous_page": data.previous_page,
    }
    return template_env().get_template("day.html.j2").render(context)


def render_index(days: list[IndexEntry]) -> str:
    """The list of daily reports, newest first."""
    entries = sorted(days, key=lambda e: e.ds, reverse=True)
    return template_env().get_template("index.html.j2").render(entries=entries)
