"""Hand-computed expectations for the DuckDB reference implementation (benchmarks.duckdb_reference).

Each test writes a few raw rows as parquet partitions and checks the values a person
computed on paper, so the oracle itself is pinned to DESIGN §3/§4 independently of the
main implementation.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import statistics
from pathlib import Path

import narwhals.stable.v2 as nw
import polars as pl
import pytest

from benchmarks.duckdb_reference import (
    MissingPartition,
    _polars_type,
    canonical_row,
    diff_table,
    read_output_table,
    reference_tables,
    write_tables,
)
from transforms.params import OffenderParams, Params, TrendParams
from transforms.schemas import INPUT_SCHEMAS, OUTPUT_GRAINS, OUTPUT_SCHEMAS

UTC = dt.timezone.utc
D = dt.date(2024, 3, 10)
T = dt.datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


def _s(seconds: float) -> dt.timedelta:
    return dt.timedelta(seconds=seconds)


def write(root: Path, table: str, ds: dt.date, rows: list[dict], *, unit: str = "us", naive: bool = False,
          name: str = "part-0.parquet") -> None:
    schema = {c: _polars_type(t) for c, t in INPUT_SCHEMAS[table].items()}
    df = pl.DataFrame([{c: r.get(c) for c in schema} for r in rows], schema=schema, orient="row")
    ts = [c for c, t in schema.items() if isinstance(t, pl.Datetime)]
    casts = []
    for c in ts:
        e = pl.col(c).cast(pl.Datetime(unit, "UTC"))
        casts.append(e.dt.replace_time_zone(None) if naive else e)
    df = df.with_columns(casts) if casts else df
    part = root / table / f"ds={ds.isoformat()}"
    part.mkdir(parents=True, exist_ok=True)
    df.write_parquet(part / name)
    (part / "_SUCCESS").touch()


def dec(decision_id: str | None, **kw) -> dict:
    decided = kw.pop("decided_at", T)
    row = {
        "decision_id": decision_id,
        "content_id": "c-" + str(decision_id),
        "content_type": "video",
        "creator_id": "u1",
        "market": "US",
        "queue": "video_standard",
        "detection_source": "user_report",
        "content_created_at": decided - _s(3600) if decided else None,
        "enqueued_at": decided - _s(60) if decided else None,
        "decided_at": decided,
        "decision_mode": "human",
        "reviewer_id": "r1",
        "outcome": "no_violation",
        "policy_category": None,
        "action": "none",
        "handle_time_s": 60.0,
        "views_before_action": 10,
    }
    row.update(kw)
    return row


def viol(decision_id: str, category: str = "spam", **kw) -> dict:
    kw.setdefault("action", "remove")
    return dec(decision_id, outcome="violation", policy_category=category, **kw)


def auto(decision_id: str, **kw) -> dict:
    kw = {"decision_mode": "automated", "reviewer_id": None, "handle_time_s": None, **kw}
    return dec(decision_id, **kw)


def appeal(appeal_id: str | None, **kw) -> dict:
    row = {
        "appeal_id": appeal_id,
        "decision_id": "x-" + str(appeal_id),
        "appealed_at": T - _s(7200),
        "resolved_at": T,
        "appeal_outcome": "upheld",
        "reviewer_id": "r1",
        "decision_mode": "human",
        "market": "US",
        "policy_category": "spam",
        "decided_at": T - _s(86400),
    }
    row.update(kw)
    return row


def audit(audit_id: str | None, **kw) -> dict:
    row = {
        "audit_id": audit_id,
        "decision_id": "x-" + str(audit_id),
        "auditor_id": "qa1",
        "audited_at": T,
        "reviewer_id": "r1",
        "market": "US",
        "queue": "video_standard",
        "original_outcome": "no_violation",
        "original_category": None,
        "expected_outcome": "no_violation",
        "expected_category": None,
    }
    row.update(kw)
    return row


def shift(reviewer_id: str | None, **kw) -> dict:
    row = {"reviewer_id": reviewer_id, "shift_date": D, "team": "t1", "site": "dub", "logged_in_s": 28800.0}
    row.update(kw)
    return row


def one_day(tmp_path: Path, decisions=(), appeals=(), audits=(), shifts=(), ds: dt.date = D,
            params: Params | None = None, **kw):
    for table, rows in (("decisions", decisions), ("appeals", appeals), ("qa_audits", audits), ("shifts", shifts)):
        write(tmp_path, table, ds, list(rows))
    return reference_tables(tmp_path, [ds], params, **kw)[ds]


def by_key(df: pl.DataFrame, *keys: str) -> dict:
    return {tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]: r for r in df.iter_rows(named=True)}


def approx(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def _table_of(row: dict) -> str:
    """The output table whose columns, in order, the row has (each table's columns differ)."""
    found = [t for t, schema in OUTPUT_SCHEMAS.items() if list(schema) == list(row)]
    assert len(found) == 1, f"a row of no output table: {list(row)}"
    return found[0]


def assert_some(row: dict, **expected) -> None:
    """The named columns of `row` equal `expected` (floats within 1e-12); the others are not looked
    at. For checks about one rule; `assert_row` pins a whole row."""
    for k, v in expected.items():
        assert k in row, f"{k}: no such column in {list(row)}"
        got = row[k]
        if isinstance(v, float):
            assert approx(got, v), f"{k}: {got!r} != {v!r}"
        else:
            assert got == v, f"{k}: {got!r} != {v!r}"


def assert_row(row: dict, **expected) -> None:
    """Every column of `row` (a row of an output table, its columns in the table's order) but its
    grain keys, which picked the row, equals `expected`: a column left out is a failure, so no
    column of a pinned row goes unchecked."""
    table = _table_of(row)
    want = [c for c in OUTPUT_SCHEMAS[table] if c not in OUTPUT_GRAINS[table]]
    missing = [c for c in want if c not in expected]
    assert not missing, f"{table}: columns not given (use assert_some for a partial check): {missing}"
    assert_some(row, **expected)


# ---------------------------------------------------------------- staging / quarantine


def test_schemas_exact_even_when_empty(tmp_path: Path) -> None:
    tables = one_day(tmp_path)
    for name, schema in OUTPUT_SCHEMAS.items():
        want = {c: _polars_type(t) for c, t in schema.items()}
        assert dict(tables[name].schema) == want, name
    vd = tables["violation_daily"]
    assert vd.height == 1
    assert_row(vd.row(0, named=True), market="ALL", policy_category="ALL", actioned=0, proactive=0,
               proactive_rate=None, automated=0, automated_rate=None, zero_view=0, zero_view_rate=None,
               within_24h=0, within_24h_rate=None, tta_p50_s=None, tta_p90_s=None, removed=0,
               appeals_resolved=0, appeals_overturned=0, overturn_rate=None)
    assert tables["violation_trends"].height == 1  # the ALL/ALL combination
    assert tables["reviewer_daily"].height == 0


def test_missing_partitions_read_as_empty(tmp_path: Path) -> None:
    tables = reference_tables(tmp_path, [D])[D]
    assert tables["quarantine"].height == 0
    assert tables["violation_daily"]["market"].to_list() == ["ALL"]


def test_decision_quarantine_reasons_in_order(tmp_path: Path) -> None:
    yesterday = T - _s(86400)
    rows = [
        dec("ok"), dec("ok"),  # exact duplicate: kept once, clean
        dec(None),
        dec("mk_and_bt", creator_id=None, decided_at=None),  # missing_key wins over bad_timestamp
        dec("bt_order", enqueued_at=T + _s(1)),
        dec("bt_null", decided_at=None, enqueued_at=T),
        dec("bt_created", content_created_at=T + _s(1)),
        dec("wp", decided_at=yesterday),
        dec("wp_late", decided_at=T + _s(12 * 3600)),  # exactly midnight of ds+1
        dec("bm_mode", decision_mode="robot"),
        dec("bm_null", decision_mode=None),
        dec("bm_no_ht", handle_time_s=None),
        dec("bm_no_rev", reviewer_id=None),
        auto("bm_auto_rev", reviewer_id="r9"),
        dec("bm_and_bo", decision_mode="robot", outcome="maybe"),  # bad_mode first
        dec("bo_null", outcome=None),
        dec("bo_no_cat", outcome="violation", policy_category=None),
        dec("bo_cat", policy_category="spam"),
        dec("br_nan", handle_time_s=float("nan")),
        dec("br_high", handle_time_s=14400.5),
        dec("br_neg", handle_time_s=-0.1),
        dec("br_views", views_before_action=-1),
        dec("edge_ok", handle_time_s=14400.0, views_before_action=0, content_created_at=None),
        auto("auto_ht_ok", handle_time_s=12.0),  # a handle time on an automated decision is ignored
        dec("cd", queue="a"), dec("cd", queue="b"),
        dec("cd_mix"), dec("cd_mix", decision_mode="robot"),  # the broken twin keeps its own reason
    ]
    tables = one_day(tmp_path, decisions=rows)
    q = tables["quarantine"].filter(pl.col("source_table") == "decisions")
    got = sorted((r["record_id"] or "", r["reason"]) for r in q.iter_rows(named=True))
    want = sorted([
        ("", "missing_key"), ("mk_and_bt", "missing_key"),
        ("bt_order", "bad_timestamp"), ("bt_null", "bad_timestamp"), ("bt_created", "bad_timestamp"),
        ("wp", "wrong_partition"), ("wp_late", "wrong_partition"),
        ("bm_mode", "bad_mode"), ("bm_null", "bad_mode"), ("bm_no_ht", "bad_mode"), ("bm_no_rev", "bad_mode"),
        ("bm_auto_rev", "bad_mode"), ("bm_and_bo", "bad_mode"),
        ("bo_null", "bad_outcome"), ("bo_no_cat", "bad_outcome"), ("bo_cat", "bad_outcome"),
        ("br_nan", "bad_range"), ("br_high", "bad_range"), ("br_neg", "bad_range"), ("br_views", "bad_range"),
        ("cd", "conflicting_duplicate"), ("cd", "conflicting_duplicate"),
        ("cd_mix", "conflicting_duplicate"), ("cd_mix", "bad_mode"),
    ])
    assert got == want
    assert q["decision_id"].to_list() == q["record_id"].to_list()
    row = json.loads(q.filter(pl.col("record_id") == "br_views")["row"][0])
    assert row["decision_id"] == "br_views" and row["views_before_action"] == -1
    # Staged: ok, edge_ok, auto_ht_ok.
    assert tables["queue_daily"]["decisions"].sum() == 3


def test_duplicates_across_files_and_timestamp_units(tmp_path: Path) -> None:
    # Same row in two files (ns, naive) is one row; a ms tz-aware file of another table.
    write(tmp_path, "decisions", D, [dec("a"), dec("b", decided_at=T + _s(0.000001), enqueued_at=T - _s(60))], unit="ns", naive=True)
    write(tmp_path, "decisions", D, [dec("a")], unit="ns", naive=True, name="part-1.parquet")
    write(tmp_path, "appeals", D, [appeal("p1", resolved_at=dt.datetime(2024, 3, 10, 23, 59, 59, 999000, UTC))],
          unit="ms")
    write(tmp_path, "appeals", D, [appeal("p2", resolved_at=dt.datetime(2024, 3, 11, tzinfo=UTC))], unit="ms",
          name="part-1.parquet")
    write(tmp_path, "qa_audits", D, [])
    write(tmp_path, "shifts", D, [])
    stats: dict = {}
    tables = reference_tables(tmp_path, [D], stats=stats)[D]
    assert stats[D]["duplicates_dropped"]["decisions"] == 1
    assert tables["quarantine"].select("record_id", "reason").rows() == [("p2", "wrong_partition")]
    qd = tables["queue_daily"].row(0, named=True)
    assert_row(qd, queue="video_standard", market="US", decisions=2, automated=0, automation_rate=0.0, violations=0,
               violation_rate=0.0, wait_p50_s=60.0000005, wait_p90_s=60.0000009, wait_max_s=60.000001,
               sla_s=43200.0, sla_met=2, sla_rate=1.0)


def test_other_tables_quarantine(tmp_path: Path) -> None:
    appeals = [
        appeal("ok"),
        appeal(None), appeal("mk", decision_id=None),
        appeal("bt_null", appealed_at=None),
        appeal("bt_order", appealed_at=T + _s(1)),
        appeal("bt_decided", decided_at=T - _s(3600)),
        appeal("wp", resolved_at=T - _s(86400), appealed_at=T - _s(90000), decided_at=T - _s(100000)),
        appeal("bm", decision_mode="automated"),  # automated with a reviewer
        appeal("bm_human", reviewer_id=None),
        appeal("bo", appeal_outcome="pending"),
        appeal("cd"), appeal("cd", appeal_outcome="overturned"),
        appeal("auto_ok", decision_mode="automated", reviewer_id=None, decided_at=None),
    ]
    audits = [
        audit("ok"),
        audit("mk", reviewer_id=None),
        audit("bt", audited_at=None),
        audit("wp", audited_at=T + _s(86400)),
        audit("bo", expected_outcome=None),
        audit("bo_cat", expected_outcome="violation"),
        audit("bo_orig_cat", original_outcome="violation"),
        audit("cd"), audit("cd", auditor_id="qa2"),
    ]
    shifts = [
        shift("ok"),
        shift(None),
        shift("nodate", shift_date=None),
        shift("wp", shift_date=D - dt.timedelta(days=1)),
        shift("br_nan", logged_in_s=float("nan")),
        shift("br_null", logged_in_s=None),
        shift("br_big", logged_in_s=86400.5),
        shift("edge", logged_in_s=86400.0),
        shift("cd", team="a"), shift("cd", team="b"),
    ]
    tables = one_day(tmp_path, appeals=appeals, audits=audits, shifts=shifts)
    q = tables["quarantine"]
    got = sorted((r["source_table"], r["record_id"] or "", r["reason"]) for r in q.iter_rows(named=True))
    want = sorted([
        ("appeals", "", "missing_key"), ("appeals", "mk", "missing_key"),
        ("appeals", "bt_null", "bad_timestamp"), ("appeals", "bt_order", "bad_timestamp"),
        ("appeals", "bt_decided", "bad_timestamp"), ("appeals", "wp", "wrong_partition"),
        ("appeals", "bm", "bad_mode"), ("appeals", "bm_human", "bad_mode"), ("appeals", "bo", "bad_outcome"),
        ("appeals", "cd", "conflicting_duplicate"), ("appeals", "cd", "conflicting_duplicate"),
        ("qa_audits", "mk", "missing_key"), ("qa_audits", "bt", "bad_timestamp"),
        ("qa_audits", "wp", "wrong_partition"), ("qa_audits", "bo", "bad_outcome"),
        ("qa_audits", "bo_cat", "bad_outcome"), ("qa_audits", "bo_orig_cat", "bad_outcome"),
        ("qa_audits", "cd", "conflicting_duplicate"), ("qa_audits", "cd", "conflicting_duplicate"),
        ("shifts", "", "missing_key"), ("shifts", "nodate", "missing_key"), ("shifts", "wp", "wrong_partition"),
        ("shifts", "br_nan", "bad_range"), ("shifts", "br_null", "bad_range"), ("shifts", "br_big", "bad_range"),
        ("shifts", "cd", "conflicting_duplicate"), ("shifts", "cd", "conflicting_duplicate"),
    ])
    assert got == want
    assert q.filter(pl.col("source_table") == "shifts")["decision_id"].null_count() == 8
    assert q.filter(pl.col("record_id") == "bm")["decision_id"].to_list() == ["x-bm"]
    rd = by_key(tables["reviewer_daily"], "reviewer_id")
    assert set(rd) == {"r1", "ok", "edge"}
    assert_row(rd["r1"], **NO_SHIFT, **NO_DECISIONS, appeals_resolved=1, appeals_overturned=0, overturn_rate=0.0,
               qa_audits=1, qa_agreed=1, qa_accuracy=1.0)
    vd = by_key(tables["violation_daily"], "market", "policy_category")
    assert vd[("ALL", "ALL")]["appeals_resolved"] == 2  # ok and auto_ok


# ---------------------------------------------------------------- reviewer_daily

# The columns of a reviewer_daily row without a shift, a human decision, a QA audit or an appeal.
NO_SHIFT = {"team": None, "site": None, "logged_in_s": None, "occupancy": None}
NO_DECISIONS = {"decisions": 0, "violations": 0, "handle_time_total_s": 0.0, "aht_s": None, "handle_p50_s": None,
                "handle_p90_s": None, "decisions_per_hour": None, "sla_met": 0, "sla_rate": None}
NO_QA = {"qa_audits": 0, "qa_agreed": 0, "qa_accuracy": None}
NO_APPEALS = {"appeals_resolved": 0, "appeals_overturned": 0, "overturn_rate": None}


def test_reviewer_daily(tmp_path: Path) -> None:
    decisions = [
        # r1: handle 10, 20, 30, 40 (even count); waits 100, 300 (== SLA), 301 on live_realtime (300 s)
        # and 1000 on an unknown queue (default SLA 86400).
        dec("a1", handle_time_s=10.0, queue="live_realtime", enqueued_at=T - _s(100)),
        viol("a2", handle_time_s=20.0, queue="live_realtime", enqueued_at=T - _s(300)),
        viol("a3", handle_time_s=30.0, queue="live_realtime", enqueued_at=T - _s(301)),
        dec("a4", handle_time_s=40.0, queue="nowhere", enqueued_at=T - _s(1000)),
        # r2: handle 5, 7, 100 (odd count), no shift
        dec("b1", reviewer_id="r2", handle_time_s=5.0),
        dec("b2", reviewer_id="r2", handle_time_s=7.0),
        dec("b3", reviewer_id="r2", handle_time_s=100.0),
        # r6: handle time 0 -> decisions_per_hour null
        dec("z1", reviewer_id="r6", handle_time_s=0.0),
        auto("auto1"),  # automated decisions make no reviewer row
        dec("bad", reviewer_id="r7", decision_mode="robot"),  # quarantined: no row for r7
    ]
    shifts = [shift("r1", logged_in_s=200.0), shift("r3", logged_in_s=0.0, team="t3", site=None)]
    audits = [
        audit("q1", reviewer_id="r4"),
        audit("q2", reviewer_id="r4", original_outcome="violation", original_category="spam",
              expected_outcome="violation", expected_category="spam"),
        audit("q3", reviewer_id="r4", original_outcome="violation", original_category="spam",
              expected_outcome="violation", expected_category="scams_fraud"),
        audit("q4", reviewer_id="r4", original_outcome="violation", original_category="spam",
              expected_outcome="no_violation"),
    ]
    appeals = [
        appeal("p1", reviewer_id="r5", appeal_outcome="overturned"),
        appeal("p2", reviewer_id="r5"),
        appeal("p3", reviewer_id=None, decision_mode="automated", appeal_outcome="overturned"),
    ]
    tables = one_day(tmp_path, decisions, appeals, audits, shifts)
    rd = by_key(tables["reviewer_daily"], "reviewer_id")
    assert list(tables["reviewer_daily"]["reviewer_id"]) == ["r1", "r2", "r3", "r4", "r5", "r6"]
    assert_row(rd["r1"], team="t1", site="dub", decisions=4, violations=2, handle_time_total_s=100.0, aht_s=25.0,
               handle_p50_s=25.0, handle_p90_s=37.0, decisions_per_hour=144.0, logged_in_s=200.0, occupancy=0.5,
               sla_met=3, sla_rate=0.75, qa_audits=0, qa_agreed=0, qa_accuracy=None, appeals_resolved=0,
               appeals_overturned=0, overturn_rate=None)
    assert_row(rd["r2"], team=None, site=None, decisions=3, violations=0, handle_time_total_s=112.0,
               aht_s=112.0 / 3, handle_p50_s=7.0, handle_p90_s=81.4, decisions_per_hour=3 / (112.0 / 3600),
               logged_in_s=None, occupancy=None, sla_met=3, sla_rate=1.0, **NO_QA, **NO_APPEALS)
    assert_row(rd["r3"], team="t3", site=None, decisions=0, violations=0, handle_time_total_s=0.0, aht_s=None,
               handle_p50_s=None, handle_p90_s=None, decisions_per_hour=None, logged_in_s=0.0, occupancy=None,
               sla_met=0, sla_rate=None, **NO_QA, **NO_APPEALS)
    assert_row(rd["r4"], **NO_SHIFT, **NO_DECISIONS, qa_audits=4, qa_agreed=2, qa_accuracy=0.5, **NO_APPEALS)
    assert_row(rd["r5"], **NO_SHIFT, **NO_DECISIONS, **NO_QA, appeals_resolved=2, appeals_overturned=1,
               overturn_rate=0.5)
    # One decision of handle time 0 (wait 60 s on video_standard): no rate per hour.
    assert_row(rd["r6"], **NO_SHIFT, decisions=1, violations=0, handle_time_total_s=0.0, aht_s=0.0, handle_p50_s=0.0,
               handle_p90_s=0.0, decisions_per_hour=None, sla_met=1, sla_rate=1.0, **NO_QA, **NO_APPEALS)


def test_custom_sla(tmp_path: Path) -> None:
    decisions = [dec("a1", queue="live_realtime", enqueued_at=T - _s(100)),
                 dec("a2", queue="other", enqueued_at=T - _s(20))]
    tables = one_day(tmp_path, decisions, params=Params(ds=D, sla_s={"live_realtime": 99.0}, default_sla_s=20.0))
    assert_some(tables["reviewer_daily"].row(0, named=True), sla_met=1, sla_rate=0.5)
    qd = by_key(tables["queue_daily"], "queue")
    assert_some(qd["live_realtime"], sla_s=99.0, sla_met=0, sla_rate=0.0)
    assert_some(qd["other"], sla_s=20.0, sla_met=1, sla_rate=1.0)


# ---------------------------------------------------------------- queue_daily


def test_queue_daily(tmp_path: Path) -> None:
    decisions = [
        dec("h", queue="live_realtime", enqueued_at=T - _s(100)),
        auto("m1", queue="live_realtime", enqueued_at=T - _s(200), outcome="violation", policy_category="spam"),
        auto("m2", queue="live_realtime", enqueued_at=T - _s(400), outcome="violation", policy_category="spam"),
        dec("d1", queue="mystery", market="DE", enqueued_at=T - _s(10)),
        dec("d2", queue="mystery", market="DE", enqueued_at=T - _s(20)),
        dec("x", queue="mystery", market="DE", enqueued_at=T + _s(20)),  # bad_timestamp: not counted
    ]
    qd = by_key(one_day(tmp_path, decisions)["queue_daily"], "queue", "market")
    assert set(qd) == {("live_realtime", "US"), ("mystery", "DE")}
    assert_row(qd[("live_realtime", "US")], decisions=3, automated=2, automation_rate=2 / 3, violations=2,
               violation_rate=2 / 3, wait_p50_s=200.0, wait_p90_s=360.0, wait_max_s=400.0, sla_s=300.0, sla_met=2,
               sla_rate=2 / 3)
    assert_row(qd[("mystery", "DE")], decisions=2, automated=0, automation_rate=0.0, violations=0,
               violation_rate=0.0, wait_p50_s=15.0, wait_p90_s=19.0, wait_max_s=20.0, sla_s=86400.0, sla_met=2,
               sla_rate=1.0)


# ---------------------------------------------------------------- violation_daily, creator_category_daily


def test_violation_daily_and_rollups(tmp_path: Path) -> None:
    decisions = [
        auto("v1", outcome="violation", policy_category="spam", action="remove", detection_source="ml_model",
             views_before_action=0, content_created_at=T - _s(3600)),
        viol("v2", action="warn", views_before_action=None, content_created_at=None, decided_at=T + _s(60)),
        viol("v3", detection_source="rule_engine", views_before_action=5, content_created_at=T - _s(90000),
             creator_id="u2"),
        viol("v4", "hate_speech", action="end_live", detection_source="trusted_flagger", views_before_action=0,
             content_created_at=T - _s(86400)),
        dec("n1"),  # no violation
        viol("q1", views_before_action=-3),  # quarantined
    ]
    appeals = [
        appeal("p1", market="DE", policy_category="spam", decision_mode="automated", reviewer_id=None,
               appeal_outcome="overturned"),
        appeal("p2", market="US", policy_category="spam"),
    ]
    tables = one_day(tmp_path, decisions, appeals)
    vd = by_key(tables["violation_daily"], "market", "policy_category")
    assert set(vd) == {("US", "spam"), ("US", "hate_speech"), ("DE", "spam"), ("US", "ALL"), ("DE", "ALL"),
                       ("ALL", "spam"), ("ALL", "hate_speech"), ("ALL", "ALL")}
    us_spam = dict(actioned=3, proactive=2, proactive_rate=2 / 3, automated=1, automated_rate=1 / 3, zero_view=1,
                   zero_view_rate=1 / 3, within_24h=1, within_24h_rate=1 / 3, tta_p50_s=46800.0, tta_p90_s=81360.0,
                   removed=2)
    assert_row(vd[("US", "spam")], **us_spam, appeals_resolved=1, appeals_overturned=0, overturn_rate=0.0)
    assert_row(vd[("ALL", "spam")], **us_spam, appeals_resolved=2, appeals_overturned=1, overturn_rate=0.5)
    hate = dict(actioned=1, proactive=0, proactive_rate=0.0, automated=0, automated_rate=0.0, zero_view=1,
                zero_view_rate=1.0, within_24h=1, within_24h_rate=1.0, tta_p50_s=86400.0, tta_p90_s=86400.0,
                removed=0, appeals_resolved=0, appeals_overturned=0, overturn_rate=None)
    assert_row(vd[("US", "hate_speech")], **hate)
    assert_row(vd[("ALL", "hate_speech")], **hate)
    appeals_only = dict(actioned=0, proactive=0, proactive_rate=None, automated=0, automated_rate=None, zero_view=0,
                        zero_view_rate=None,
                        within_24h=0, within_24h_rate=None, tta_p50_s=None, tta_p90_s=None, removed=0,
                        appeals_resolved=1, appeals_overturned=1, overturn_rate=1.0)
    assert_row(vd[("DE", "spam")], **appeals_only)
    assert_row(vd[("DE", "ALL")], **appeals_only)
    assert_row(vd[("US", "ALL")], actioned=4, proactive=2, proactive_rate=0.5, automated=1, automated_rate=0.25,
               zero_view=2, zero_view_rate=0.5, within_24h=2, within_24h_rate=0.5, tta_p50_s=86400.0,
               tta_p90_s=89280.0, removed=2, appeals_resolved=1, appeals_overturned=0, overturn_rate=0.0)
    assert_row(vd[("ALL", "ALL")], actioned=4, proactive=2, proactive_rate=0.5, automated=1, automated_rate=0.25,
               zero_view=2, zero_view_rate=0.5, within_24h=2, within_24h_rate=0.5, tta_p50_s=86400.0,
               tta_p90_s=89280.0, removed=2, appeals_resolved=2, appeals_overturned=1, overturn_rate=0.5)

    ccd = by_key(tables["creator_category_daily"], "creator_id", "policy_category")
    assert set(ccd) == {("u1", "spam"), ("u2", "spam"), ("u1", "hate_speech")}
    assert_row(ccd[("u1", "spam")], violations=2, last_violation_at=T + _s(60))
    assert_row(ccd[("u2", "spam")], violations=1, last_violation_at=T)


def test_a_market_or_category_spelled_all_is_unknown_not_a_rollup(tmp_path: Path) -> None:
    # The job's rule (transforms.staging._ROLLED_UP), stated independently.
    decisions = [viol("v1", market="ALL"), viol("v2", "ALL"), viol("v3")]
    vd = by_key(one_day(tmp_path, decisions)["violation_daily"], "market", "policy_category")
    assert {k: r["actioned"] for k, r in vd.items()} == {
        ("UNKNOWN", "spam"): 1, ("US", "UNKNOWN"): 1, ("US", "spam"): 1, ("UNKNOWN", "ALL"): 1, ("US", "ALL"): 2,
        ("ALL", "spam"): 2, ("ALL", "UNKNOWN"): 1, ("ALL", "ALL"): 3,
    }


def test_proactive_sources_param(tmp_path: Path) -> None:
    decisions = [viol("v1", detection_source="user_report"), viol("v2", detection_source="ml_model")]
    vd = one_day(tmp_path, decisions, params=Params(ds=D, proactive_sources=("user_report",)))["violation_daily"]
    assert_some(by_key(vd, "market", "policy_category")[("ALL", "ALL")], proactive=1, proactive_rate=0.5)


# ---------------------------------------------------------------- repeat_offenders


def _write_at_noon(root: Path, plan: dict[dt.date, list[dict]]) -> None:
    """Each day's decisions, decided at noon a minute after they were enqueued and created."""
    for day, rows in plan.items():
        at = dt.datetime.combine(day, dt.time(12), UTC)
        write(root, "decisions", day, [{**r, "decided_at": at, "enqueued_at": at - _s(60),
                                        "content_created_at": at - _s(60)} for r in rows])


def test_repeat_offenders_counts_only_run_days(tmp_path: Path) -> None:
    d0 = D
    plan = {
        d0: [viol("a0", creator_id="a")],
        d0 + dt.timedelta(days=10): [viol("a10", "spam", creator_id="a")],
        d0 + dt.timedelta(days=29): [viol("a29", "hate_speech", creator_id="a"),
                                     viol("b1", creator_id="b"), viol("b2", creator_id="b"),
                                     viol("b3", "spam", creator_id="b", action="warn")],
        d0 + dt.timedelta(days=30): [],
    }
    _write_at_noon(tmp_path, plan)
    days = sorted(plan)
    out = reference_tables(tmp_path, days)
    ro29 = by_key(out[d0 + dt.timedelta(days=29)]["repeat_offenders"], "creator_id")
    assert set(ro29) == {"a", "b"}
    assert_row(ro29["a"], violations_30d=3, distinct_categories=2,
               last_violation_at=dt.datetime.combine(d0 + dt.timedelta(days=29), dt.time(12), UTC))
    assert_row(ro29["b"], violations_30d=3, distinct_categories=1,
               last_violation_at=dt.datetime.combine(d0 + dt.timedelta(days=29), dt.time(12), UTC))
    # d0 leaves the 30-day window on d0+30.
    assert out[d0 + dt.timedelta(days=30)]["repeat_offenders"]["creator_id"].to_list() == ["b"]
    assert out[d0]["repeat_offenders"].height == 0
    # A day with logs that was not run does not count.
    out2 = reference_tables(tmp_path, [d0, d0 + dt.timedelta(days=29)])
    assert out2[d0 + dt.timedelta(days=29)]["repeat_offenders"]["creator_id"].to_list() == ["b"]


def test_offender_window_days(tmp_path: Path) -> None:
    """offenders.window_days = 20 and min_violations = 2: ds-19..ds counts, from 2 violations."""
    d0 = D
    plan = {
        d0: [viol("a0", creator_id="a")],
        d0 + dt.timedelta(days=10): [viol("a10", "spam", creator_id="a")],
        d0 + dt.timedelta(days=29): [viol("a29", "hate_speech", creator_id="a")],
        d0 + dt.timedelta(days=30): [],
    }
    _write_at_noon(tmp_path, plan)
    days = sorted(plan)
    out = reference_tables(tmp_path, days, Params(ds=D, offenders=OffenderParams(min_violations=2, window_days=20)))
    at = {d: dt.datetime.combine(d, dt.time(12), UTC) for d in days}
    assert out[d0]["repeat_offenders"].height == 0
    assert out[days[1]]["repeat_offenders"].rows() == [("a", 2, 1, at[days[1]])]  # d0 is day ds-10
    assert out[days[2]]["repeat_offenders"].rows() == [("a", 2, 2, at[days[2]])]  # d0 is out, d0+10 is ds-19
    assert out[days[3]]["repeat_offenders"].height == 0  # d0+10 is ds-20: out
    # The defaults (30 days, 3 violations): a has 3 on d0+29 only.
    default = reference_tables(tmp_path, days)
    assert [default[d]["repeat_offenders"].height for d in days] == [0, 0, 1, 0]


def test_params_are_checked(tmp_path: Path) -> None:
    for bad in (Params(ds=D, trends=TrendParams(window_days=0)), Params(ds=D, trends=TrendParams(window_days=7.5)),
                Params(ds=D, offenders=OffenderParams(window_days="30")),
                Params(ds=D, offenders=OffenderParams(min_violations=True)),
                Params(ds=D, trends=TrendParams(zscore_threshold=float("nan"))),
                Params(ds=D, sla_s={"q": "300; DROP TABLE sla"})):
        with pytest.raises(ValueError):
            reference_tables(tmp_path, [D], bad)


def test_offender_min_param(tmp_path: Path) -> None:
    tables = one_day(tmp_path, [viol("a", creator_id="x")], params=Params(ds=D, offenders=OffenderParams(min_violations=1)))
    assert tables["repeat_offenders"].rows() == [("x", 1, 1, T)]


# ---------------------------------------------------------------- violation_trends


def _us_spam(i: int) -> int:
    return 10 if i % 2 == 0 else 12


@pytest.fixture(scope="module")
def trend_run(tmp_path_factory: pytest.TempPathFactory):
    """23 days D0..D22: D5 has logs but is not run, D15 and D21 have nothing (unobserved).

    US/spam has 10 or 12 violations a day, 40 on D20 and 11 on D22; DE/hate_speech has one on D2 only.
    """
    root = tmp_path_factory.mktemp("trends")
    d0 = dt.date(2024, 1, 1)
    counts = {i: _us_spam(i) for i in range(20)} | {20: 40, 22: 11}
    run = []
    for i in range(23):
        day = d0 + dt.timedelta(days=i)
        if i in (15, 21):
            continue
        t = dt.datetime.combine(day, dt.time(10), UTC)
        rows = [viol(f"s{k}", decided_at=t) for k in range(counts[i])]
        if i == 2:
            rows.append(viol("h", "hate_speech", market="DE", decided_at=t))
        write(root, "decisions", day, rows)
        if i != 5:
            run.append(day)
    return d0, counts, reference_tables(root, run), (root, run)


def test_trends_spike_with_unobserved_days(trend_run) -> None:
    d0, counts, out, _ = trend_run
    ds = d0 + dt.timedelta(days=20)
    tr = by_key(out[ds]["violation_trends"], "market", "policy_category")
    assert set(tr) == {("US", "spam"), ("US", "ALL"), ("ALL", "spam"), ("ALL", "ALL"), ("DE", "hate_speech"),
                       ("DE", "ALL"), ("ALL", "hate_speech")}
    base = [counts[i] for i in range(20) if i not in (5, 15)]
    mean, std = statistics.mean(base), statistics.stdev(base)
    z = (40 - mean) / std
    week = [counts[i] for i in range(14, 21) if i != 15]
    assert_row(tr[("US", "spam")], actioned=40, actioned_7d_mean=sum(week) / 6, baseline_days=18,
               baseline_mean=float(mean), baseline_std=std, zscore=z, wow_change=40 / counts[13] - 1,
               is_anomaly=True, direction="spike")
    assert z > 3
    # DE/hate_speech: one violation on D2, zero on every other observed day (missing combination = 0).
    h = [1.0] + [0.0] * 17
    hz = (0 - statistics.mean(h)) / statistics.stdev(h)
    assert_row(tr[("DE", "hate_speech")], actioned=0, actioned_7d_mean=0.0, baseline_days=18,
               baseline_mean=1 / 18, baseline_std=statistics.stdev(h), zscore=hz, wow_change=None,
               is_anomaly=False, direction=None)
    # ALL/ALL on D20 = US/spam + DE/hate.
    all_base = [b + (1 if i == 2 else 0) for i, b in zip([i for i in range(20) if i not in (5, 15)], base)]
    all_z = (40 - statistics.mean(all_base)) / statistics.stdev(all_base)
    assert_row(tr[("ALL", "ALL")], actioned=40, actioned_7d_mean=sum(week) / 6, baseline_days=18,
               baseline_mean=statistics.mean(all_base), baseline_std=statistics.stdev(all_base), zscore=all_z,
               wow_change=40 / counts[13] - 1, is_anomaly=True, direction="spike")
    assert all_z > 3


def test_trends_wow_and_short_baseline(trend_run) -> None:
    d0, counts, out, _ = trend_run
    d22 = by_key(out[d0 + dt.timedelta(days=22)]["violation_trends"], "market", "policy_category")
    # D15 (= D22 - 7) unobserved -> wow null; D21 unobserved and D15 out of the 7-day mean.
    week = [counts[i] for i in (16, 17, 18, 19, 20, 22)]
    base = [counts[i] for i in range(23) if i not in (5, 15, 21, 22)]
    z = (11 - statistics.mean(base)) / statistics.stdev(base)
    assert_row(d22[("US", "spam")], actioned=11, wow_change=None, actioned_7d_mean=sum(week) / 6,
               baseline_days=19, baseline_mean=statistics.mean(base), baseline_std=statistics.stdev(base), zscore=z,
               is_anomaly=False, direction=None)
    # D19: wow over D12 observed; DE/hate had 0 on D12 -> wow null.
    d19 = by_key(out[d0 + dt.timedelta(days=19)]["violation_trends"], "market", "policy_category")
    assert_some(d19[("US", "spam")], wow_change=counts[19] / counts[12] - 1, baseline_days=17)
    assert_some(d19[("DE", "hate_speech")], wow_change=None)
    # D3: baseline of 3 days < 14 -> zscore null, not an anomaly.
    d3 = by_key(out[d0 + dt.timedelta(days=3)]["violation_trends"], "market", "policy_category")
    assert_row(d3[("US", "spam")], actioned=12, baseline_days=3, baseline_mean=float(statistics.mean([10, 12, 10])),
               baseline_std=statistics.stdev([10, 12, 10]), zscore=None, wow_change=None, is_anomaly=False,
               direction=None, actioned_7d_mean=11.0)
    # D0: no baseline at all.
    d0t = by_key(out[d0]["violation_trends"], "market", "policy_category")
    assert_row(d0t[("US", "spam")], actioned=10, baseline_days=0, baseline_mean=None, baseline_std=None, zscore=None,
               actioned_7d_mean=10.0, wow_change=None, is_anomaly=False, direction=None)
    # The hate combination enters the window on D2 only.
    assert ("DE", "hate_speech") not in d0t


def test_trend_window_days(trend_run) -> None:
    """trends.window_days = 3: the baseline is ds-3..ds-1 and the combinations those seen in ds-3..ds,
    while the 7-day mean (ds-6..ds) and the week-ago value (ds-7) still reach back a week."""
    d0, counts, _, (root, run) = trend_run
    out = reference_tables(root, run, _trends(window_days=3, min_baseline_days=2))
    d20 = by_key(out[d0 + dt.timedelta(days=20)]["violation_trends"], "market", "policy_category")
    # DE/hate_speech (D2 only) is outside D17..D20: no row, though D13 (week ago) and D2 are within reach.
    assert set(d20) == {("US", "spam"), ("US", "ALL"), ("ALL", "spam"), ("ALL", "ALL")}
    base = [counts[i] for i in (17, 18, 19)]
    week = [counts[i] for i in range(14, 21) if i != 15]
    z = (40 - statistics.mean(base)) / statistics.stdev(base)
    assert_row(d20[("US", "spam")], actioned=40, actioned_7d_mean=sum(week) / 6, baseline_days=3,
               baseline_mean=statistics.mean(base), baseline_std=statistics.stdev(base), zscore=z,
               wow_change=40 / counts[13] - 1, is_anomaly=True, direction="spike")
    # D22: D21 unobserved and D19..D20 observed; D15 (week ago) unobserved.
    d22 = by_key(out[d0 + dt.timedelta(days=22)]["violation_trends"], "market", "policy_category")
    base22 = [counts[19], 40]
    assert_row(d22[("US", "spam")], actioned=11, actioned_7d_mean=sum(counts[i] for i in (16, 17, 18, 19, 20, 22)) / 6,
               baseline_days=2, baseline_mean=statistics.mean(base22), baseline_std=statistics.stdev(base22),
               zscore=(11 - statistics.mean(base22)) / statistics.stdev(base22), wow_change=None, is_anomaly=False,
               direction=None)
    # D4: DE/hate_speech (D2) is in D1..D4 and counts 0 on the observed D3 and D4.
    d4 = by_key(out[d0 + dt.timedelta(days=4)]["violation_trends"], "market", "policy_category")
    h4 = [0, 1, 0]
    assert_row(d4[("DE", "hate_speech")], actioned=0, actioned_7d_mean=1 / 5, baseline_days=3, baseline_mean=1 / 3,
               baseline_std=statistics.stdev(h4), zscore=(0 - 1 / 3) / statistics.stdev(h4), wow_change=None,
               is_anomaly=False, direction=None)


def _trends(**kw) -> Params:
    return Params(ds=D, trends=TrendParams(**kw))


def test_trend_params_and_drop(tmp_path: Path) -> None:
    d0 = dt.date(2024, 5, 1)
    counts = [30, 32, 30, 32, 5]
    days = []
    for i, n in enumerate(counts):
        day = d0 + dt.timedelta(days=i)
        t = dt.datetime.combine(day, dt.time(1), UTC)
        write(tmp_path, "decisions", day, [viol(f"s{k}", decided_at=t) for k in range(n)])
        days.append(day)
    out = reference_tables(tmp_path, days, _trends(min_baseline_days=4, zscore_threshold=2.0, min_volume=31.0))
    tr = by_key(out[days[-1]]["violation_trends"], "market", "policy_category")
    z = (5 - 31) / statistics.stdev([30, 32, 30, 32])
    assert_row(tr[("US", "spam")], actioned=5, actioned_7d_mean=sum(counts) / 5, baseline_days=4, baseline_mean=31.0,
               baseline_std=statistics.stdev([30, 32, 30, 32]), zscore=z, wow_change=None, is_anomaly=True,
               direction="drop")
    out = reference_tables(tmp_path, days, _trends(min_baseline_days=4, zscore_threshold=2.0, min_volume=31.5))
    tr = by_key(out[days[-1]]["violation_trends"], "market", "policy_category")
    assert_some(tr[("US", "spam")], zscore=z, is_anomaly=False, direction=None)
    # Constant baseline: std 0 -> zscore null.
    t = dt.datetime.combine(d0 + dt.timedelta(days=1), dt.time(1), UTC)
    write(tmp_path, "decisions", d0 + dt.timedelta(days=1), [viol(f"s{k}", decided_at=t) for k in range(30)])
    write(tmp_path, "decisions", d0 + dt.timedelta(days=3), [
        viol(f"s{k}", decided_at=t + dt.timedelta(days=2)) for k in range(30)])
    out = reference_tables(tmp_path, days, _trends(min_baseline_days=4))
    assert_some(out[days[-1]]["violation_trends"].row(0, named=True), baseline_std=0.0, zscore=None,
                is_anomaly=False)


# ---------------------------------------------------------------- diff helper


def test_diff_table_reports_differences(tmp_path: Path) -> None:
    tables = one_day(tmp_path, [viol("v1"), dec("n1", reviewer_id="r2")])
    rd = tables["reviewer_daily"]
    assert diff_table("reviewer_daily", rd, rd.reverse()) == []
    assert diff_table("reviewer_daily", rd, rd.with_columns(pl.col("aht_s") * (1 + 1e-12))) == []
    bad = rd.with_columns(pl.when(pl.col("reviewer_id") == "r2").then(99).otherwise(pl.col("decisions"))
                          .alias("decisions"))
    assert any("decisions" in p and "r2" in p for p in diff_table("reviewer_daily", rd, bad))
    assert diff_table("reviewer_daily", rd, rd.with_columns(pl.col("decisions").cast(pl.Int32)))
    # Every column of the contract, on both sides: one the reference left out, added, mistyped or moved
    # is a difference too, not a column quietly skipped.
    assert any("(expected)" in p and "aht_s" in p for p in diff_table("reviewer_daily", rd.drop("aht_s"), rd))
    assert diff_table("reviewer_daily", rd.with_columns(pl.col("aht_s").cast(pl.Float32)), rd)
    assert diff_table("reviewer_daily", rd.with_columns(pl.lit(1).alias("extra")), rd)
    assert diff_table("reviewer_daily", rd, rd.select(["team", *[c for c in rd.columns if c != "team"]]))
    # A difference in the last column, which no caller names.
    last = rd.columns[-1]
    assert any(last in p for p in diff_table("reviewer_daily", rd, rd.with_columns(pl.lit(0.123).alias(last))))
    q = one_day(tmp_path / "q", [dec(None)])["quarantine"]
    assert q.height == 1
    # The rejected row itself is part of the table (DESIGN §3): an empty JSON object is a difference.
    assert any("quarantine.row" in p for p in diff_table("quarantine", q, q.with_columns(pl.lit("{}").alias("row"))))


# Each mutation is one way diff_table could go lenient: a float off by far or by a little more than
# the 1e-9 tolerance (a 1e-3 tolerance would pass it), a null or NaN against a value either way, a
# row missing or added.
_FLOAT_AND_ROW_MUTATIONS = {
    "float_off": lambda df: df.with_columns(pl.col("aht_s") * 1.5),
    "float_off_by_1e-6": lambda df: df.with_columns(pl.col("aht_s") * (1 + 1e-6)),
    "float_null_for_value": lambda df: df.with_columns(pl.lit(None, pl.Float64).alias("aht_s")),
    "float_value_for_null": lambda df: df.with_columns(pl.col("occupancy").fill_null(0.5)),
    "float_nan_for_value": lambda df: df.with_columns(
        pl.when(pl.col("aht_s").is_not_null()).then(float("nan")).alias("aht_s")),  # nulls stay null
    "float_value_for_nan": lambda df: df.with_columns(pl.col("aht_s").fill_nan(1.0)),
    "row_missing": lambda df: df.head(1),
    "row_added": lambda df: pl.concat([df, df.head(1)]),
}


@pytest.mark.parametrize("mutation", list(_FLOAT_AND_ROW_MUTATIONS))
def test_diff_table_catches_float_and_row_count_differences(tmp_path: Path, mutation: str) -> None:
    rd = one_day(tmp_path, [viol("v1"), dec("n1", reviewer_id="r2")], shifts=[shift("r1"), shift("r3")])["reviewer_daily"]
    assert rd.height == 3 and rd["occupancy"].null_count() > 0  # r2 has no shift
    expected = rd.with_columns(pl.col("aht_s").fill_null(float("nan"))) if mutation == "float_value_for_nan" else rd
    assert diff_table("reviewer_daily", expected, expected) == []
    assert diff_table("reviewer_daily", expected, _FLOAT_AND_ROW_MUTATIONS[mutation](expected)), mutation


def _job_spelling(source_table: str, row: str) -> str:
    """The same rejected row as the job's encoder writes it: ISO timestamps with `T`, six digits and `Z`,
    NaN and ±Infinity as strings, and (JSON objects being unordered) the keys in another order."""
    ts = {c for c, t in INPUT_SCHEMAS[source_table].items() if t == nw.Datetime}
    out = {}
    for k, v in reversed(json.loads(row).items()):
        if k in ts and v is not None:
            v = dt.datetime.fromisoformat(v).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        elif isinstance(v, float) and not math.isfinite(v):
            v = "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
        out[k] = v
    return json.dumps(out)


def _rejected_rows(tmp_path: Path) -> pl.DataFrame:
    q = one_day(tmp_path, [dec(None), dec("v1", outcome="bogus", decided_at=T.replace(microsecond=120000)),
                           dec("v2", handle_time_s=float("nan")), dec("v3", handle_time_s=float("inf")),
                           dec("v4", handle_time_s=-math.inf)],
                shifts=[shift("s1", logged_in_s=float("nan"))])["quarantine"]
    assert q.height == 6
    return q


def test_quarantine_rows_compare_as_parsed_json(tmp_path: Path) -> None:
    q = _rejected_rows(tmp_path)
    # DuckDB's spelling (`2024-03-10 12:00:00.12+00`, bare NaN) and the job's are the same rows.
    assert any(" " in r and "+00" in r and "NaN" in r for r in q["row"])
    job = q.with_columns(pl.Series("row", [_job_spelling(t, r) for t, r in zip(q["source_table"], q["row"])]))
    assert diff_table("quarantine", q, job.reverse()) == []
    # Every row's JSON replaced by the first one's: the other four columns still match.
    assert diff_table("quarantine", q, q.with_columns(pl.lit(q["row"][0]).alias("row")))
    # One value of one row.
    i = q["record_id"].to_list().index("v1")
    other = json.loads(q["row"][i]) | {"views_before_action": 11}
    assert diff_table("quarantine", q, q.with_columns(q["row"].scatter(i, json.dumps(other))))
    # A NaN written as null (json_encode's own spelling) reads as a missing value: not the same row.
    j = q["record_id"].to_list().index("v2")
    as_null = json.loads(q["row"][j]) | {"handle_time_s": None}
    assert diff_table("quarantine", q, q.with_columns(q["row"].scatter(j, json.dumps(as_null))))
    # A timestamp a microsecond off, and text that is not JSON.
    t = json.loads(_job_spelling("decisions", q["row"][i])) | {"decided_at": "2024-03-10T12:00:00.120001Z"}
    assert diff_table("quarantine", q, q.with_columns(q["row"].scatter(i, json.dumps(t))))
    assert diff_table("quarantine", q, q.with_columns(q["row"].scatter(i, "not json")))


def test_canonical_row_spellings() -> None:
    duck = '{"decided_at":"2024-01-01 18:49:46.33475+00","enqueued_at":"2024-01-01 18:00:00","handle_time_s":NaN}'
    job = '{"handle_time_s":"NaN","enqueued_at":"2024-01-01T18:00:00.000000Z","decided_at":"2024-01-01T18:49:46.334750Z"}'
    assert canonical_row("decisions", duck) == canonical_row("decisions", job)
    assert canonical_row("shifts", '{"logged_in_s":-Infinity}') == canonical_row("shifts", '{"logged_in_s":"-Infinity"}')
    assert canonical_row("shifts", '{"logged_in_s":null}') != canonical_row("shifts", '{"logged_in_s":NaN}')
    assert canonical_row("decisions", None) is None


def test_a_missing_output_partition_raises(tmp_path: Path) -> None:
    # DESIGN §4: "A run always writes every table's partition for its ds, even when it has no rows."
    tables = one_day(tmp_path / "in", [viol("v1")])
    assert tables["quarantine"].height == 0
    write_tables(tmp_path / "out", {D: tables})
    assert read_output_table(tmp_path / "out", "quarantine", D).height == 0  # written, empty: fine
    with pytest.raises(MissingPartition, match="quarantine: missing partition"):
        read_output_table(tmp_path / "no_such_output", "quarantine", D)
    for f in (tmp_path / "out" / "quarantine" / f"ds={D}").glob("*.parquet"):
        f.unlink()
    with pytest.raises(MissingPartition):  # the folder without its file is no partition either
        read_output_table(tmp_path / "out", "quarantine", D)


def test_assert_row_checks_every_column() -> None:
    row = {c: None for c in OUTPUT_SCHEMAS["repeat_offenders"]} | {"creator_id": "x", "violations_30d": 3}
    assert_some(row, violations_30d=3)
    with pytest.raises(AssertionError, match="columns not given.*distinct_categories"):
        assert_row(row, violations_30d=3)  # a wrong column left out would pass unseen
    assert_row(row, violations_30d=3, distinct_categories=None, last_violation_at=None)
    with pytest.raises(AssertionError, match="distinct_categories"):
        assert_row(row, violations_30d=3, distinct_categories=1, last_violation_at=None)


def test_cli_config_gives_the_job_params(tmp_path: Path) -> None:
    """`--config` reads the job's TOML file: its SLAs and proactive sources reach the tables."""
    from benchmarks.duckdb_reference import main
    from jobs.config import load_config

    decisions = [viol("v1", detection_source="user_report", queue="live_realtime", enqueued_at=T - _s(100))]
    one_day(tmp_path / "in", decisions)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[sla_s]\nlive_realtime = 50\n[job]\nproactive_sources = ["user_report"]\n'
                   "[offenders]\nmin_violations = 1\nwindow_days = 2\n[trends]\nwindow_days = 3\nmin_baseline_days = 2\n")
    assert main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--ds", D.isoformat(),
                 "--config", str(cfg)]) == 0
    expected = reference_tables(tmp_path / "in", [D], load_config(cfg).job)[D]
    for table in OUTPUT_SCHEMAS:
        assert diff_table(table, expected[table], read_output_table(tmp_path / "out", table, D)) == [], table
    assert_some(read_output_table(tmp_path / "out", "queue_daily", D).row(0, named=True), sla_s=50.0, sla_met=0)
    assert read_output_table(tmp_path / "out", "repeat_offenders", D)["creator_id"].to_list() == ["u1"]
    vd = by_key(read_output_table(tmp_path / "out", "violation_daily", D), "market", "policy_category")
    assert_some(vd[("ALL", "ALL")], proactive=1)
    with pytest.raises(SystemExit):
        main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "o2"), "--ds", D.isoformat(),
              "--config", str(tmp_path / "missing.toml")])
