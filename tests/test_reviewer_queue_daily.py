"""reviewer_daily and queue_daily on tiny hand-built days; expected values worked out by hand."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.builders import appeal, audit, automated, clean, decision, frame, shift
from tests.conftest import DS, collect, rows_by, ts
from transforms import staging
from transforms.params import Params
from transforms.queue_daily import queue_daily
from transforms.reviewer_daily import reviewer_daily

P = Params(ds=DS)


def staged(engine, table, rows):
    return staging.staged(staging.classify(engine.input_frame(table, frame(table, rows)), table, P), table)


def run_reviewer_daily(engine, decisions=(), shifts=(), audits=(), appeals=()):
    out = reviewer_daily(
        staged(engine, "decisions", list(decisions)),
        staged(engine, "shifts", list(shifts)),
        staged(engine, "qa_audits", list(audits)),
        staged(engine, "appeals", list(appeals)),
        P,
        engine.aggregate,
    )
    return collect(engine, out)


def test_reviewer_daily_every_column(engine):
    decisions = [
        # r1: waits 300 s (video_standard, SLA 43200: met), 600 s and 299 s (live_realtime, SLA 300).
        decision(reviewer_id="r1", handle_time_s=60.0),
        clean(reviewer_id="r1", handle_time_s=120.0, queue="live_realtime", decided_at=ts(2, 10)),
        decision(reviewer_id="r1", handle_time_s=300.0, queue="live_realtime", decided_at=ts(2, 4, 59)),
        decision(reviewer_id="r2", handle_time_s=0.0),
        clean(reviewer_id="r2", handle_time_s=0.0),
        automated(),  # automated decisions belong to no reviewer
        decision(reviewer_id="r6", handle_time_s=40.0),
        decision(reviewer_id="r6", handle_time_s=10.0),
        decision(reviewer_id="r6", handle_time_s=30.0),
        decision(reviewer_id="r6", handle_time_s=20.0),
    ]
    shifts = [
        shift(reviewer_id="r1", team="T1", site="Dublin", logged_in_s=28800.0),
        shift(reviewer_id="r2", team="T2", site="Lisbon", logged_in_s=0.0),
        shift(reviewer_id="r3", team="T3", site="Manila", logged_in_s=3600.0),
    ]
    audits = [
        audit(reviewer_id="r1", original_outcome="no_violation", original_category=None, expected_outcome="no_violation", expected_category=None),
        audit(reviewer_id="r4"),
        audit(reviewer_id="r4", expected_category="hate_speech"),
    ]
    appeals = [
        appeal(reviewer_id="r5", appeal_outcome="overturned"),
        appeal(reviewer_id="r5", appeal_outcome="upheld"),
        appeal(reviewer_id=None, decision_mode="automated", appeal_outcome="overturned"),
    ]
    got = rows_by(run_reviewer_daily(engine, decisions, shifts, audits, appeals), "reviewer_id")
    assert set(got) == {"r1", "r2", "r3", "r4", "r5", "r6"}
    assert got["r1"] == {
        "team": "T1", "site": "Dublin", "decisions": 3, "violations": 2, "handle_time_total_s": 480.0,
        "aht_s": 160.0, "handle_p50_s": 120.0, "handle_p90_s": pytest.approx(264.0), "decisions_per_hour": 22.5,
        "logged_in_s": 28800.0, "occupancy": pytest.approx(480 / 28800), "sla_met": 2, "sla_rate": pytest.approx(2 / 3),
        "qa_audits": 1, "qa_agreed": 1, "qa_accuracy": 1.0, "appeals_resolved": 0, "appeals_overturned": 0, "overturn_rate": None,
    }
    # Handle time all zero: no throughput; logged_in_s 0: no occupancy.
    assert got["r2"]["decisions_per_hour"] is None and got["r2"]["occupancy"] is None
    assert got["r2"]["handle_time_total_s"] == 0.0 and got["r2"]["aht_s"] == 0.0
    assert got["r3"] == {
        "team": "T3", "site": "Manila", "decisions": 0, "violations": 0, "handle_time_total_s": 0.0, "aht_s": None,
        "handle_p50_s": None, "handle_p90_s": None, "decisions_per_hour": None, "logged_in_s": 3600.0, "occupancy": 0.0,
        "sla_met": 0, "sla_rate": None, "qa_audits": 0, "qa_agreed": 0, "qa_accuracy": None,
        "appeals_resolved": 0, "appeals_overturned": 0, "overturn_rate": None,
    }
    assert (got["r4"]["team"], got["r4"]["logged_in_s"], got["r4"]["occupancy"]) == (None, None, None)
    assert (got["r4"]["qa_audits"], got["r4"]["qa_agreed"], got["r4"]["qa_accuracy"]) == (2, 1, 0.5)
    assert (got["r5"]["appeals_resolved"], got["r5"]["appeals_overturned"], got["r5"]["overturn_rate"]) == (2, 1, 0.5)
    # Even count: p50 between the middle two, p90 at 2.7 of 3 gaps (numpy's linear rule).
    assert (got["r6"]["handle_p50_s"], got["r6"]["handle_p90_s"]) == (25.0, pytest.approx(37.0))


def test_reviewer_daily_empty_day_has_no_rows_and_the_schema(engine):
    out = run_reviewer_daily(engine)
    assert out.height == 0
    assert out.columns[:4] == ["reviewer_id", "team", "site", "decisions"]


def test_reviewer_daily_single_decision(engine):
    got = rows_by(run_reviewer_daily(engine, [decision(reviewer_id="solo", handle_time_s=90.0)]), "reviewer_id")
    assert got["solo"]["handle_p50_s"] == got["solo"]["handle_p90_s"] == 90.0
    assert got["solo"]["decisions_per_hour"] == 40.0
    assert got["solo"]["logged_in_s"] is None and got["solo"]["occupancy"] is None


def test_queue_daily_every_column(engine):
    rows = [
        clean(queue="live_realtime", decided_at=ts(2, 10)),  # human, wait 600 > 300
        automated(queue="live_realtime", decided_at=ts(2, 1)),  # wait 60
        automated(queue="live_realtime", decided_at=ts(2, 5), outcome="no_violation", policy_category=None, action="none"),  # 300: met
        automated(queue="new_queue", market="DE", enqueued_at=ts(1, day=DS - dt.timedelta(days=2)), decided_at=ts(2)),
    ]
    got = rows_by(collect(engine, queue_daily(staged(engine, "decisions", rows), P, engine.aggregate)), "queue", "market")
    assert got[("live_realtime", "US")] == {
        "decisions": 3, "automated": 2, "automation_rate": pytest.approx(2 / 3), "violations": 1,
        "violation_rate": pytest.approx(1 / 3), "wait_p50_s": 300.0, "wait_p90_s": pytest.approx(540.0),
        "wait_max_s": 600.0, "sla_s": 300.0, "sla_met": 2, "sla_rate": pytest.approx(2 / 3),
    }
    unknown = got[("new_queue", "DE")]
    assert unknown["sla_s"] == 86400.0  # unknown queue: the default SLA
    assert (unknown["wait_max_s"], unknown["sla_met"], unknown["sla_rate"]) == (2 * 86400.0 + 3600.0, 0, 0.0)


def test_queue_daily_wait_keeps_microseconds(engine):
    rows = [automated(queue="live_realtime", enqueued_at=ts(2, micro=1), decided_at=ts(2, 0, 1, micro=2))]
    got = rows_by(collect(engine, queue_daily(staged(engine, "decisions", rows), P, engine.aggregate)), "queue", "market")
    assert got[("live_realtime", "US")]["wait_max_s"] == 1.000001


def test_a_wait_equal_to_the_sla_meets_it_and_a_microsecond_more_does_not(engine):
    """DESIGN §4: sla_met counts decisions with wait <= the queue's SLA (live_realtime: 300 s)."""
    rows = [
        decision(reviewer_id="e", queue="live_realtime", enqueued_at=ts(2), decided_at=ts(2, 5)),
        decision(reviewer_id="e", queue="live_realtime", enqueued_at=ts(2), decided_at=ts(2, 5, micro=1)),
    ]
    assert run_reviewer_daily(engine, rows).to_dicts()[0]["sla_met"] == 1
    got = rows_by(collect(engine, queue_daily(staged(engine, "decisions", rows), P, engine.aggregate)), "queue", "market")
    assert got[("live_realtime", "US")]["sla_met"] == 1


def test_handle_times_add_up_to_the_microsecond(engine):
    """DESIGN §4: seconds keep microsecond precision, nothing is rounded. Handle times 0.4 s and
    1.000001 s: total 1.400001 s, aht 0.7000005 s, 2 / (1.400001 / 3600) decisions per hour."""
    rows = [decision(reviewer_id="q", handle_time_s=0.4), decision(reviewer_id="q", handle_time_s=1.000001)]
    got = rows_by(run_reviewer_daily(engine, rows), "reviewer_id")["q"]
    assert got["handle_time_total_s"] == 1.400001
    assert got["aht_s"] == pytest.approx(0.7000005, rel=1e-12)
    assert got["handle_p50_s"] == pytest.approx(0.7000005, rel=1e-12)
    assert got["decisions_per_hour"] == pytest.approx(2 / (1.400001 / 3600), rel=1e-12)
