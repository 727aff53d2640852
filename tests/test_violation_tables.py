"""violation_daily (with rollups), violation_trends and repeat_offenders on hand-built data."""

from __future__ import annotations

import datetime as dt
import statistics

import polars as pl
import pytest

from tests.builders import appeal, automated, clean, decision, frame
from tests.conftest import DS, collect, rows_by, ts
from transforms import staging
from transforms.params import Params
from transforms.repeat_offenders import creator_category_daily, offender_categories, offender_pairs, repeat_offenders
from transforms.violation_daily import violation_daily
from transforms.violation_trends import violation_trends

P = Params(ds=DS)
DAY = dt.timedelta(days=1)


def staged(engine, table, rows):
    return staging.staged(staging.classify(engine.input_frame(table, frame(table, rows)), table, P), table)


def run_violation_daily(engine, decisions, appeals):
    out = violation_daily(staged(engine, "decisions", decisions), staged(engine, "appeals", appeals), P, engine.aggregate_sets)
    return rows_by(collect(engine, out), "market", "policy_category")


def _row(actioned, proactive, automated_, zero_view, within, p50, p90, removed, appeals, overturned):
    def rate(n):
        return None if actioned == 0 else pytest.approx(n / actioned)

    return {
        "actioned": actioned, "proactive": proactive, "proactive_rate": rate(proactive), "automated": automated_,
        "automated_rate": rate(automated_), "zero_view": zero_view, "zero_view_rate": rate(zero_view),
        "within_24h": within, "within_24h_rate": rate(within),
        "tta_p50_s": p50 if p50 is None else pytest.approx(p50), "tta_p90_s": p90 if p90 is None else pytest.approx(p90),
        "removed": removed, "appeals_resolved": appeals, "appeals_overturned": overturned,
        "overturn_rate": None if appeals == 0 else pytest.approx(overturned / appeals),
    }


def test_violation_daily_cells_and_rollups(engine):
    decisions = [
        # tta 3900 s; proactive; zero views; removed
        decision(market="US", policy_category="spam", detection_source="ml_model", views_before_action=0),
        # tta 26 h 5 min: not within 24 h
        automated(market="US", policy_category="spam", detection_source="user_report", views_before_action=10,
                  content_created_at=ts(0, day=DS - DAY), action="restrict"),
        # null views and null content_created_at: actioned, but neither zero-view nor within 24 h
        automated(market="US", policy_category="hate_speech", detection_source="rule_engine", views_before_action=None,
                  content_created_at=None),
        decision(market="DE", policy_category="spam", detection_source="trusted_flagger", content_created_at=ts(2), action="warn"),
        clean(market="DE"),  # no_violation: not in violation_daily
    ]
    appeals = [
        appeal(market="US", policy_category="spam", reviewer_id=None, decision_mode="automated", appeal_outcome="overturned"),
        appeal(market="FR", policy_category="scams_fraud", appeal_outcome="upheld"),
    ]
    got = run_violation_daily(engine, decisions, appeals)
    expected = {
        ("US", "spam"): _row(2, 1, 1, 1, 1, 48900.0, 84900.0, 1, 1, 1),
        ("US", "hate_speech"): _row(1, 1, 1, 0, 0, None, None, 1, 0, 0),
        ("DE", "spam"): _row(1, 0, 0, 1, 1, 300.0, 300.0, 0, 0, 0),
        ("FR", "scams_fraud"): _row(0, 0, 0, 0, 0, None, None, 0, 1, 0),
        ("ALL", "spam"): _row(3, 1, 1, 2, 2, 3900.0, 75900.0, 1, 1, 1),
        ("ALL", "hate_speech"): _row(1, 1, 1, 0, 0, None, None, 1, 0, 0),
        ("ALL", "scams_fraud"): _row(0, 0, 0, 0, 0, None, None, 0, 1, 0),
        ("US", "ALL"): _row(3, 2, 2, 1, 1, 48900.0, 84900.0, 2, 1, 1),
        ("DE", "ALL"): _row(1, 0, 0, 1, 1, 300.0, 300.0, 0, 0, 0),
        ("FR", "ALL"): _row(0, 0, 0, 0, 0, None, None, 0, 1, 0),
        ("ALL", "ALL"): _row(4, 2, 2, 2, 2, 3900.0, 75900.0, 2, 2, 1),
    }
    assert got == expected


def test_a_market_or_category_spelled_all_cannot_merge_into_a_rollup(engine):
    """ALL is the rollups' value: a data value ALL was merged into the rollup rows (its own
    figures vanished from the table). Like a null it is grouped as UNKNOWN (the DQ gate warns)."""
    decisions = [decision(market="ALL", policy_category="spam")]
    decisions += [decision(market="US", policy_category="spam") for _ in range(2)]
    decisions += [decision(market="US", policy_category="ALL")]
    got = run_violation_daily(engine, decisions, [appeal(market="ALL", policy_category="ALL", decided_at=ts(1))])
    actioned = {k: v["actioned"] for k, v in got.items()}
    assert actioned == {
        ("UNKNOWN", "spam"): 1, ("US", "spam"): 2, ("US", "UNKNOWN"): 1,
        ("ALL", "spam"): 3, ("ALL", "UNKNOWN"): 1, ("UNKNOWN", "ALL"): 1, ("US", "ALL"): 3, ("ALL", "ALL"): 4,
        ("UNKNOWN", "UNKNOWN"): 0,  # the appeal's own combination
    }
    assert got[("UNKNOWN", "UNKNOWN")]["appeals_resolved"] == 1 and got[("ALL", "ALL")]["appeals_resolved"] == 1


def test_violation_daily_empty_day_has_only_all_all(engine):
    got = run_violation_daily(engine, [clean()], [])
    assert got == {("ALL", "ALL"): _row(0, 0, 0, 0, 0, None, None, 0, 0, 0)}


def test_violation_daily_boundaries_of_within_24h_and_removed(engine):
    """within_24h is time to action <= 24 h (DESIGN §4); removed counts action 'remove' only, not
    end_live or suspend_account."""
    decisions = [
        decision(market="US", content_created_at=ts(2, 5, day=DS - DAY)),  # exactly 24 h: within
        decision(market="US", content_created_at=ts(2, 4, 59, day=DS - DAY), decided_at=ts(2, 5, micro=1)),  # 24 h 1 s
        decision(market="US", action="end_live"),
        decision(market="US", action="suspend_account"),
    ]
    got = run_violation_daily(engine, decisions, [])[("US", "spam")]
    assert (got["actioned"], got["within_24h"], got["removed"]) == (4, 3, 2)  # the builder's action is remove


# ------------------------------------------------------------------ trends
def history_frame(engine, rows):
    """rows: (ds, market, category, actioned)."""
    df = pl.DataFrame(rows, schema={"ds": pl.Date, "market": pl.String, "policy_category": pl.String, "actioned": pl.Int64}, orient="row")
    return engine.frame(df)


def trends(engine, rows):
    return rows_by(collect(engine, violation_trends(history_frame(engine, rows), P)), "market", "policy_category")


def test_trends_full_window_spike_and_sparse_combination(engine):
    baseline = [100 if i % 2 == 0 else 110 for i in range(28)]  # ds-28 .. ds-1
    rows = [(DS - dt.timedelta(days=28 - i), "ALL", "ALL", v) for i, v in enumerate(baseline)]
    rows.append((DS, "ALL", "ALL", 200))
    rows.append((DS - dt.timedelta(days=3), "US", "spam", 5))  # absent today and on every other day
    got = trends(engine, rows)

    mean, std = statistics.mean(baseline), statistics.stdev(baseline)
    all_all = got[("ALL", "ALL")]
    assert all_all["actioned"] == 200 and all_all["baseline_days"] == 28
    assert all_all["baseline_mean"] == pytest.approx(mean) and all_all["baseline_std"] == pytest.approx(std)
    assert all_all["zscore"] == pytest.approx((200 - mean) / std)
    assert all_all["actioned_7d_mean"] == pytest.approx((sum(baseline[-6:]) + 200) / 7)
    assert all_all["wow_change"] == pytest.approx(200 / baseline[21] - 1)
    assert (all_all["is_anomaly"], all_all["direction"]) == (True, "spike")

    sparse = got[("US", "spam")]
    zeros = [0] * 28
    zeros[25] = 5  # ds-3
    assert sparse["actioned"] == 0 and sparse["baseline_days"] == 28
    assert sparse["baseline_mean"] == pytest.approx(5 / 28)
    assert sparse["zscore"] == pytest.approx((0 - 5 / 28) / statistics.stdev(zeros))
    assert sparse["wow_change"] is None  # actioned 0 a week ago
    assert (sparse["is_anomaly"], sparse["direction"]) == (False, None)


def test_trends_unobserved_days_are_missing_not_zero(engine):
    observed = {0: 30, 1: 10, 2: 20, 5: 40, 10: 50}  # days before ds -> actioned; ds-7 unobserved
    rows = [(DS - dt.timedelta(days=k), "ALL", "ALL", v) for k, v in observed.items()]
    got = trends(engine, rows)[("ALL", "ALL")]
    assert got["baseline_days"] == 4
    assert got["baseline_mean"] == pytest.approx(statistics.mean([10, 20, 40, 50]))
    assert got["baseline_std"] == pytest.approx(statistics.stdev([10, 20, 40, 50]))
    assert got["actioned_7d_mean"] == pytest.approx(statistics.mean([30, 10, 20, 40]))
    assert got["zscore"] is None and got["wow_change"] is None  # < 14 baseline days; ds-7 unobserved
    assert (got["is_anomaly"], got["direction"]) == (False, None)


def test_trends_drop_needs_volume_and_zero_std_gives_no_zscore(engine):
    rows = []
    for k in range(1, 29):
        rows.append((DS - dt.timedelta(days=k), "ALL", "ALL", 50 + (k % 3)))
        rows.append((DS - dt.timedelta(days=k), "GB", "spam", 7))  # constant: std 0
        rows.append((DS - dt.timedelta(days=k), "DE", "spam", 2 + (k % 2)))  # small volume
    rows += [(DS, "ALL", "ALL", 5), (DS, "GB", "spam", 100), (DS, "DE", "spam", 30)]
    got = trends(engine, rows)
    assert (got[("ALL", "ALL")]["is_anomaly"], got[("ALL", "ALL")]["direction"]) == (True, "drop")
    assert got[("GB", "spam")]["baseline_std"] == 0.0 and got[("GB", "spam")]["zscore"] is None
    assert got[("GB", "spam")]["is_anomaly"] is False
    # |z| is huge but max(actioned 30, mean 2.5) >= 20, so it is an anomaly; at actioned 19 it would not be.
    assert got[("DE", "spam")]["is_anomaly"] is True
    rows[-1] = (DS, "DE", "spam", 19)
    assert trends(engine, rows)[("DE", "spam")]["is_anomaly"] is False


def test_trends_thresholds_are_inclusive(engine):
    """DESIGN §4: a z-score needs baseline_days >= min_baseline_days; an anomaly is |z| >= the
    threshold with max(actioned, baseline_mean) >= min_volume. Baseline 7, 10, 13 (mean 10, std 3
    exactly) and 19 today: z is exactly 3, volume exactly 19."""
    from dataclasses import replace

    params = replace(P, trends=replace(P.trends, min_baseline_days=3, zscore_threshold=3.0, min_volume=19.0))
    rows = [(DS - dt.timedelta(days=k), "ALL", "ALL", v) for k, v in ((3, 7), (2, 10), (1, 13), (0, 19))]
    got = rows_by(collect(engine, violation_trends(history_frame(engine, rows), params)), "market", "policy_category")
    row = got[("ALL", "ALL")]
    assert (row["baseline_days"], row["baseline_mean"], row["baseline_std"], row["zscore"]) == (3, 10.0, 3.0, 3.0)
    assert (row["is_anomaly"], row["direction"]) == (True, "spike")


def test_trends_statistics_are_the_same_bits_on_every_run(engine):
    """A float mean and std depended on the order the joined rows were added in: this baseline's
    std (exactly 1) came out 1.0000000000000013 in some runs, so z = 3 read 2.9999999999999996 and
    the anomaly came and went between reruns of the same day (DESIGN §6: same contents)."""
    vals = [50] * 17 + [53, 47]
    rows = [(DS - dt.timedelta(days=k + 1), "ALL", "ALL", v) for k, v in enumerate(vals)] + [(DS, "ALL", "ALL", 53)]
    rows += [(DS - dt.timedelta(days=k + 1), "US", "spam", 10**9 + k % 2) for k in range(19)]  # large, std tiny
    for _ in range(4):
        got = trends(engine, rows)
        row = got[("ALL", "ALL")]
        assert (row["baseline_mean"], row["baseline_std"], row["zscore"], row["is_anomaly"]) == (50.0, 1.0, 3.0, True)
        big = got[("US", "spam")]
        assert big["baseline_mean"] == pytest.approx(10**9 + 9 / 19, rel=1e-15)
        assert big["baseline_std"] == pytest.approx(statistics.stdev([k % 2 for k in range(19)]), rel=1e-12)


def test_trends_window_ignores_days_older_than_28(engine):
    rows = [(DS - dt.timedelta(days=29), "ALL", "ALL", 1000), (DS - dt.timedelta(days=28), "ALL", "ALL", 10), (DS, "ALL", "ALL", 12)]
    got = trends(engine, rows)[("ALL", "ALL")]
    assert got["baseline_days"] == 1 and got["baseline_mean"] == 10.0 and got["baseline_std"] is None


def test_trends_combination_seen_only_on_the_windows_first_day_has_a_row(engine):
    """DESIGN §4: the combinations are those with a row on any observed day of ds-28..ds. US/spam
    was seen on ds-28 only (the window's first day): it has a row, 0 today; DE/spam, seen on ds-29
    only, has none. Observed days: ds-29, ds-28 and ds, so the baseline is ds-28 alone."""
    rows = [(DS - dt.timedelta(days=k), "ALL", "ALL", 10) for k in (29, 28)] + [(DS, "ALL", "ALL", 12)]
    rows += [(DS - dt.timedelta(days=28), "US", "spam", 4), (DS - dt.timedelta(days=29), "DE", "spam", 9)]
    got = trends(engine, rows)
    assert set(got) == {("ALL", "ALL"), ("US", "spam")}
    assert got[("US", "spam")] == {
        "actioned": 0, "actioned_7d_mean": 0.0, "baseline_days": 1, "baseline_mean": 4.0, "baseline_std": None,
        "zscore": None, "wow_change": None, "is_anomaly": False, "direction": None,
    }


def test_trends_window_shorter_than_a_week_still_reads_the_week(engine):
    # DESIGN §4: the 7-day mean is over ds-6..ds and wow_change compares with ds-7 whatever the
    # baseline window; a 3-day window limits the baseline and the combinations only.
    from dataclasses import replace

    params = replace(P, trends=replace(P.trends, window_days=3, min_baseline_days=2))
    actioned = {k: 10 * (k + 1) for k in range(0, 10)}  # days before ds -> actioned
    rows = [(DS - dt.timedelta(days=k), "ALL", "ALL", v) for k, v in actioned.items()]
    rows.append((DS - dt.timedelta(days=5), "US", "spam", 4))  # outside the 3-day window: no row
    got = rows_by(collect(engine, violation_trends(history_frame(engine, rows), params)), "market", "policy_category")
    assert set(got) == {("ALL", "ALL")}
    row = got[("ALL", "ALL")]
    assert row["actioned_7d_mean"] == pytest.approx(statistics.mean(actioned[k] for k in range(7)))
    assert row["wow_change"] == pytest.approx(actioned[0] / actioned[7] - 1)
    assert row["baseline_days"] == 3
    assert row["baseline_mean"] == pytest.approx(statistics.mean([20, 30, 40]))
    assert row["baseline_std"] == pytest.approx(statistics.stdev([20, 30, 40]))


# ------------------------------------------------------------------ repeat offenders
def test_creator_category_daily_and_repeat_offenders(engine):
    today = [
        decision(creator_id="A", policy_category="spam", decided_at=ts(5)),
        decision(creator_id="B", policy_category="spam"),
        decision(creator_id="B", policy_category="spam", decided_at=ts(7)),
        decision(creator_id="C", policy_category="hate_speech", decided_at=ts(3)),
        decision(creator_id="C", policy_category="hate_speech", decided_at=ts(4)),
        decision(creator_id="C", policy_category="hate_speech", decided_at=ts(6)),
        clean(creator_id="D"),
    ]
    daily = collect(engine, creator_category_daily(staged(engine, "decisions", today)))
    assert rows_by(daily, "creator_id", "policy_category") == {
        ("A", "spam"): {"violations": 1, "last_violation_at": ts(5)},
        ("B", "spam"): {"violations": 2, "last_violation_at": ts(7)},
        ("C", "hate_speech"): {"violations": 3, "last_violation_at": ts(6)},
    }
    earlier = pl.DataFrame(
        {
            "creator_id": ["A", "A", "B", "D"],
            "policy_category": ["spam", "hate_speech", "spam", "spam"],
            "violations": [1, 1, 5, 2],
            "last_violation_at": [ts(1, day=DS - 29 * DAY), ts(1, day=DS - 10 * DAY), ts(1, day=DS - 30 * DAY), ts(9, day=DS - DAY)],
            "ds": [DS - 29 * DAY, DS - 10 * DAY, DS - 30 * DAY, DS - DAY],
        }
    )
    history = pl.concat([earlier, daily.with_columns(pl.lit(DS).alias("ds"))], how="vertical_relaxed")
    got = rows_by(collect(engine, repeat_offenders(engine.frame(history), P)), "creator_id")
    assert got == {
        "A": {"violations_30d": 3, "distinct_categories": 2, "last_violation_at": ts(5)},
        "C": {"violations_30d": 3, "distinct_categories": 1, "last_violation_at": ts(6)},
    }  # B: its 5 are from ds-30, outside the window; D: 2 < 3
    categories = rows_by(collect(engine, offender_categories(offender_pairs(engine.frame(history), P))), "policy_category")
    assert categories == {
        "spam": {"creators": 1, "violations": 2},  # A's 1 + 1; B and D are no offenders
        "hate_speech": {"creators": 2, "violations": 4},  # A's 1, C's 3
    }
