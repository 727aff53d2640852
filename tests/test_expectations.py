"""The DQ gate: every expectation fails on a frame built to break it, with its severity, and passes clean."""

from __future__ import annotations

import datetime as dt
import contextlib
import json
import math
from collections.abc import Callable
from dataclasses import replace

import pandas as pd
import polars as pl
import pytest

from expectations.gate import GateResult, InputFigures, evaluate, to_pandas, validate_table
from expectations.thresholds import DQThresholds
from transforms.params import EPOCH, OffenderParams, Params
from transforms.schemas import OUTPUT_SCHEMAS


def clean_figures() -> InputFigures:
    return InputFigures(
        raw_rows={"decisions": 1001, "appeals": 20, "qa_audits": 30, "shifts": 3},
        distinct_rows={"decisions": 1001, "appeals": 20, "qa_audits": 30, "shifts": 3},
        duplicates_dropped={"decisions": 0, "appeals": 0, "qa_audits": 0, "shifts": 0},
        quarantined={"decisions": {"bad_mode": 1}},
        profile={
            ("decisions", "staged_rows"): 1000.0,
            ("decisions", "human_decisions"): 600.0,
            ("decisions", "automated_decisions"): 400.0,
            ("decisions", "violations"): 300.0,
            ("decisions", "unknown_market"): 0.0,
            ("decisions", "unknown_category"): 0.0,
            ("decisions", "unknown_queue"): 0.0,
            ("decisions", "unknown_action"): 0.0,
            ("decisions", "action_mismatch"): 0.0,
            ("appeals", "staged_rows"): 20.0,
            ("appeals", "human_appeals"): 12.0,
            ("appeals", "unknown_market"): 0.0,
            ("appeals", "unknown_category"): 0.0,
            ("qa_audits", "staged_rows"): 30.0,
            ("qa_audits", "unknown_market"): 0.0,
            ("qa_audits", "unknown_queue"): 0.0,
            ("qa_audits", "unknown_category"): 0.0,
            ("shifts", "staged_rows"): 3.0,
        },
        trailing_volumes=[1000, 990, 1010, 1005, 995, 1000, 1002],
    )


def _frame(table: str, rows: list[dict]) -> pd.DataFrame:
    columns = list(OUTPUT_SCHEMAS[table])
    return pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns)


def clean_outputs() -> dict[str, pd.DataFrame]:
    reviewers = [
        {"reviewer_id": f"r{i}", "team": "t", "site": "s", "decisions": 200, "violations": 100,
         "handle_time_total_s": 7200.0, "aht_s": 36.0, "handle_p50_s": 30.0, "handle_p90_s": 60.0,
         "decisions_per_hour": 100.0, "logged_in_s": 28800.0, "occupancy": 0.25, "sla_met": 190,
         "sla_rate": 0.95, "qa_audits": 10, "qa_agreed": 9, "qa_accuracy": 0.9,
         "appeals_resolved": 4, "appeals_overturned": 1, "overturn_rate": 0.25}
        for i in range(3)
    ]
    # A reviewer with a shift only: null rates and percentiles are fine.
    reviewers.append({"reviewer_id": "r9", "decisions": 0, "violations": 0, "handle_time_total_s": 0.0,
                      "logged_in_s": 0.0, "sla_met": 0, "qa_audits": 0, "qa_agreed": 0,
                      "appeals_resolved": 0, "appeals_overturned": 0})
    queues = [
        {"queue": "comments", "market": "US", "decisions": 600, "automated": 0, "automation_rate": 0.0,
         "violations": 200, "violation_rate": 1 / 3, "wait_p50_s": 10.0, "wait_p90_s": 50.0, "wait_max_s": 90.0,
         "sla_s": 86400.0, "sla_met": 600, "sla_rate": 1.0},
        {"queue": "live_realtime", "market": "DE", "decisions": 400, "automated": 400, "automation_rate": 1.0,
         "violations": 100, "violation_rate": 0.25, "wait_p50_s": 1.0, "wait_p90_s": 2.0, "wait_max_s": 2.0,
         "sla_s": 300.0, "sla_met": 400, "sla_rate": 1.0},
    ]

    def vd(market: str, category: str, actioned: int, appeals: int) -> dict:
        return {"market": market, "policy_category": category, "actioned": actioned, "proactive": actioned // 2,
                "proactive_rate": 0.5, "automated": actioned // 3, "automated_rate": 1 / 3, "zero_view": 0,
                "zero_view_rate": 0.0, "within_24h": actioned, "within_24h_rate": 1.0, "tta_p50_s": 100.0,
                "tta_p90_s": 900.0, "removed": actioned, "appeals_resolved": appeals,
                "appeals_overturned": appeals // 4, "overturn_rate": 0.25}

    violation_daily = [vd("ALL", "ALL", 300, 20), vd("US", "ALL", 300, 20), vd("ALL", "spam", 300, 20),
                       vd("US", "spam", 300, 20)]
    # A combination with appeals and no actioned violation: null rates.
    violation_daily.append(vd("US", "hate_speech", 0, 0) | {r: None for r in
                           ("proactive_rate", "automated_rate", "zero_view_rate", "within_24h_rate",
                            "tta_p50_s", "tta_p90_s", "overturn_rate")})

    def vt(market: str, category: str, actioned: int) -> dict:
        return {"market": market, "policy_category": category, "actioned": actioned,
                "actioned_7d_mean": 290.0, "baseline_days": 28, "baseline_mean": 280.0, "baseline_std": 10.0,
                "zscore": 2.0, "wow_change": -0.1, "is_anomaly": False, "direction": None}

    trends = [vt("ALL", "ALL", 300), vt("US", "spam", 300),
              vt("US", "hate_speech", 0) | {"zscore": None, "wow_change": None, "baseline_std": None}]
    trends[1] |= {"zscore": 4.0, "is_anomaly": True, "direction": "spike"}
    ts = pd.Timestamp("2024-01-31 12:00", tz="UTC")
    offenders = [
        {"creator_id": "c1", "violations_30d": 3, "distinct_categories": 1, "last_violation_at": ts},
        {"creator_id": "c2", "violations_30d": 7, "distinct_categories": 3, "last_violation_at": ts},
    ]
    # The day's 300 staged violations, per (creator, category).
    creator_categories = [
        {"creator_id": "c1", "policy_category": "spam", "violations": 100, "last_violation_at": ts},
        {"creator_id": "c2", "policy_category": "spam", "violations": 150, "last_violation_at": ts},
        {"creator_id": "c2", "policy_category": "hate_speech", "violations": 50, "last_violation_at": ts},
    ]
    quarantine = [{"source_table": "decisions", "reason": "bad_mode", "record_id": "d1", "decision_id": "d1",
                   "row": "{}"}]
    return {
        "reviewer_daily": _frame("reviewer_daily", reviewers),
        "queue_daily": _frame("queue_daily", queues),
        "violation_daily": _frame("violation_daily", violation_daily),
        "violation_trends": _frame("violation_trends", trends),
        "repeat_offenders": _frame("repeat_offenders", offenders),
        "creator_category_daily": _frame("creator_category_daily", creator_categories),
        "quarantine": _frame("quarantine", quarantine),
    }


# ------------------------------------------------------------------ breakers
Breaker = Callable[[pd.DataFrame | None, InputFigures], tuple[pd.DataFrame | None, InputFigures]]

# Key columns whose null is only a warning. None: staging maps a null market, queue or category to
# UNKNOWN (warned about by the input suites), so a null grain key in an output is a broken table.
WARNING_KEYS: set[tuple[str, str]] = set()
INPUT_TABLES = ("decisions", "appeals", "qa_audits", "shifts")


def set_cell(column: str, value: object, row: int = 0) -> Breaker:
    def breaker(frame, figures):
        frame = frame.copy()
        if value is None or isinstance(value, str):
            frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        return frame, figures
    return breaker


def duplicate_last_row(frame, figures):
    return pd.concat([frame, frame.iloc[[-1]]], ignore_index=True), figures


def drop_row(row: int) -> Breaker:
    return lambda frame, figures: (frame.drop(index=row).reset_index(drop=True), figures)


def drop_column(frame, figures):
    return frame.drop(columns=[frame.columns[-1]]), figures


def p_above(low: str, high: str) -> Breaker:
    def breaker(frame, figures):
        frame = frame.copy()
        frame.loc[0, low] = frame.loc[0, high] + 1
        return frame, figures
    return breaker


def bump(column: str, row: int = 0) -> Breaker:
    def breaker(frame, figures):
        frame = frame.copy()
        frame.loc[row, column] = frame.loc[row, column] + 1
        return frame, figures
    return breaker


def with_figures(**changes: object) -> Breaker:
    return lambda frame, figures: (frame, replace(figures, **changes))


def profile_set(table: str, figure: str, value: float) -> Breaker:
    def breaker(frame, figures):
        return frame, replace(figures, profile={**figures.profile, (table, figure): value})
    return breaker


def input_breakers(table: str) -> dict[str, tuple[str, Breaker]]:
    base = clean_figures()
    distinct = base.distinct_rows[table]
    staged = base.profile[(table, "staged_rows")]
    # 5% of the distinct rows quarantined; staged rows follow so only the rate breaks.
    many = max(2, distinct // 20)

    def quarantine(n: int, total: int) -> Breaker:
        def breaker(frame, figures):
            return frame, replace(
                figures,
                distinct_rows={**figures.distinct_rows, table: total},
                quarantined={**figures.quarantined, table: {"missing_key": n}},
                profile={**figures.profile, (table, "staged_rows"): float(total - n)},
            )
        return breaker

    out: dict[str, tuple[str, Breaker]] = {
        "quarantine_rate": ("critical", quarantine(many, distinct)),
        "quarantine_rate_elevated": ("warning", quarantine(5, 1000)),  # 0.5%: above 0.1%, under 1%
        "duplicates_rate": ("warning", with_figures(duplicates_dropped={**base.duplicates_dropped, table: 5},
                                                    raw_rows={**base.raw_rows, table: 1000})),
        "reconcile:staged_eq_distinct_minus_quarantined": ("critical", profile_set(table, "staged_rows", staged - 1)),
    }
    flags = {"decisions": ("unknown_market", "unknown_category", "unknown_queue", "unknown_action", "action_mismatch"),
             "appeals": ("unknown_market", "unknown_category"),
             "qa_audits": ("unknown_market", "unknown_category", "unknown_queue"), "shifts": ()}[table]
    for flag in flags:
        out[f"{flag}_rate"] = ("warning", profile_set(table, flag, 1.0))
    if table == "decisions":
        out["volume_vs_trailing_7d"] = ("warning", with_figures(raw_rows={**base.raw_rows, "decisions": 3000}))
    return out


def infinite_float(frame, figures):
    """+inf in the table's first float column (a pandas NaN would be a null: see the Polars tests)."""
    frame = frame.copy()
    column = next(c for c in frame.columns if pd.api.types.is_float_dtype(frame[c]))
    frame.loc[0, column] = math.inf
    return frame, figures


def generic_breaker(table: str, name: str) -> tuple[str, Breaker] | None:
    kind, _, column = name.partition(":")
    if kind == "not_null":
        return ("warning" if (table, column) in WARNING_KEYS else "critical"), set_cell(column, None)
    if kind == "non_negative":
        return "critical", set_cell(column, -1)
    if kind == "rate_in_0_1":
        return "critical", set_cell(column, 1.5)
    if kind == "in_set":
        return "critical", set_cell(column, "bogus")
    if kind == "p50_le_p90":
        prefix = {"handle": "handle", "wait": "wait", "tta": "tta"}[column]
        return "critical", p_above(f"{prefix}_p50_s", f"{prefix}_p90_s")
    if name == "grain_unique":
        return "critical", duplicate_last_row
    if name == "columns_match_schema":
        return "critical", drop_column
    if name == "floats_finite":
        return "critical", infinite_float
    return None


SPECIFIC: dict[tuple[str, str], tuple[str, Breaker]] = {
    ("reviewer_daily", "occupancy_le_max"): ("warning", set_cell("occupancy", 1.2)),
    ("reviewer_daily", "reconcile:decisions_eq_staged_human_decisions"): ("critical", bump("decisions")),
    ("reviewer_daily", "reconcile:qa_audits_eq_staged_audits"): ("critical", bump("qa_audits")),
    ("reviewer_daily", "reconcile:appeals_eq_staged_human_appeals"): ("critical", bump("appeals_resolved")),
    ("queue_daily", "p90_le_max:wait"): ("critical", p_above("wait_p90_s", "wait_max_s")),
    ("queue_daily", "reconcile:decisions_eq_staged_decisions"): ("critical", bump("decisions")),
    ("queue_daily", "reconcile:violations_eq_staged_violations"): ("critical", bump("violations")),
    ("queue_daily", "reconcile:automated_eq_staged_automated"): ("critical", bump("automated")),
    ("violation_daily", "rollup_all_all_present"): ("critical", drop_row(0)),
    ("violation_daily", "reconcile:actioned_eq_staged_violations"): ("critical", bump("actioned", 0)),
    ("violation_daily", "reconcile:appeals_eq_staged_appeals"): ("critical", bump("appeals_resolved", 0)),
    ("violation_trends", "rollup_all_all_present"): ("critical", drop_row(0)),
    ("violation_trends", "wow_change_ge_minus_1"): ("critical", set_cell("wow_change", -1.5)),
    ("violation_trends", "reconcile:actioned_eq_staged_violations"): ("critical", bump("actioned", 0)),
    # 2 violations, 1 category: consistent, but under the configured minimum of 3.
    ("repeat_offenders", "violations_30d_ge_min_violations"): ("critical", set_cell("violations_30d", 2)),
    ("repeat_offenders", "distinct_categories_ge_1"): ("critical", set_cell("distinct_categories", 0)),
    ("repeat_offenders", "distinct_categories_le_violations"): ("critical", set_cell("distinct_categories", 4)),
    ("creator_category_daily", "violations_ge_1"): ("critical", set_cell("violations", 0)),
    ("creator_category_daily", "reconcile:violations_eq_staged_violations"): ("critical", bump("violations")),
    ("quarantine", "reconcile:rows_eq_quarantined"): ("critical", drop_row(0)),
}


def all_cases() -> list[tuple[str, str, str, Breaker]]:
    cases = []
    for table in INPUT_TABLES:
        for name, (severity, breaker) in input_breakers(table).items():
            cases.append((table, name, severity, breaker))
    for table in clean_outputs():
        for name in _clean_names(table):
            found = SPECIFIC.get((table, name)) or generic_breaker(table, name)
            if found is not None:
                cases.append((table, name, found[0], found[1]))
    return cases


_CLEAN: GateResult | None = None


def clean_result() -> GateResult:
    global _CLEAN
    if _CLEAN is None:
        _CLEAN = evaluate(clean_outputs(), clean_figures(), DQThresholds())
    return _CLEAN


def _clean_names(table: str) -> list[str]:
    return [r.expectation for r in clean_result().results if r.table == table]


CASES = all_cases()


# ------------------------------------------------------------------ tests
def test_clean_frames_pass_every_expectation() -> None:
    result = clean_result()
    failed = [(r.table, r.expectation, r.details) for r in result.results if not r.success]
    assert failed == []
    assert result.verdict == "pass"
    assert {r.table for r in result.results} == set(INPUT_TABLES) | set(clean_outputs())


def test_clean_tables_pass_through_the_gate_conversion_without_fingerprinting(monkeypatch) -> None:
    import great_expectations.execution_engine.pandas_execution_engine as pandas_engine

    def fingerprint(_frame):
        raise AssertionError("GE fingerprinted a batch: hashing every value, which the gate never needs")

    monkeypatch.setattr(pandas_engine, "hash_pandas_dataframe", fingerprint)
    converted = to_pandas(pl.from_pandas(clean_outputs()["reviewer_daily"]))
    assert pd.api.types.is_string_dtype(converted["reviewer_id"])
    assert isinstance(converted["reviewer_id"].dtype, pd.ArrowDtype)
    # Polars tables, as gate_day hands them over: their null rates are nulls, not NaN.
    outputs = {t: pl.from_pandas(f) for t, f in clean_outputs().items()}
    assert outputs["reviewer_daily"]["sla_rate"].null_count() == 1
    result = evaluate(outputs, clean_figures(), DQThresholds())
    assert [(r.table, r.expectation, r.details) for r in result.results if not r.success] == []


def test_each_expectation_configuration_is_built_once_per_validation(monkeypatch) -> None:
    """GE reads an expectation's configuration about 90 times while it validates it, and builds it
    anew each time unless the gate holds one per expectation; the gate gives GE's own property back
    afterwards, and the verdicts are those of the plain property."""
    from great_expectations.expectations.expectation import Expectation

    import expectations.gate as gate

    plain = gate._PLAIN_CONFIGURATION
    built: dict[int, list] = {}

    def counting(self):
        entry = built.setdefault(id(self), [self, 0])
        entry[1] += 1
        return plain.fget(self)

    counting_property = property(counting)
    monkeypatch.setattr(gate, "_PLAIN_CONFIGURATION", counting_property)
    monkeypatch.setattr(Expectation, "configuration", counting_property)  # undo() gives GE's own back
    memoised = evaluate(clean_outputs(), clean_figures(), DQThresholds())
    assert len(built) > 100  # every GE expectation of the ten suites
    assert max(count for _, count in built.values()) == 1
    assert Expectation.configuration is counting_property  # given back after each validation
    monkeypatch.undo()
    assert Expectation.configuration is plain
    monkeypatch.setattr(gate, "_configurations_built_once", contextlib.nullcontext)
    unmemoised = evaluate(clean_outputs(), clean_figures(), DQThresholds())
    assert memoised.to_json() == unmemoised.to_json()


def test_every_expectation_has_a_breaking_case() -> None:
    covered = {(t, n) for t, n, _, _ in CASES}
    reported = {(r.table, r.expectation) for r in clean_result().results}
    assert reported - covered == set()
    assert covered - reported == set()
    # The cases are built from what the suites report, so a check dropped from a suite would drop
    # its case too: every check named here must still be reported.
    declared = set(SPECIFIC) | {(t, n) for t in INPUT_TABLES for n in input_breakers(t)}
    assert declared - reported == set()


@pytest.mark.parametrize("conversion", ["pandas", "gate"])
@pytest.mark.parametrize(("table", "name", "severity", "breaker"), CASES,
                         ids=[f"{t}.{n}" for t, n, _, _ in CASES])
def test_broken_frame_fails_expectation(table: str, name: str, severity: str, breaker: Breaker, conversion: str) -> None:
    # "gate": the broken table as the job hands it over, a Polars table through gate.to_pandas
    # (Arrow-backed strings), so a conversion that hid a failure would show here.
    frame = None if table in INPUT_TABLES else clean_outputs()[table]
    frame, figures = breaker(frame, clean_figures())
    if conversion == "gate" and frame is not None:
        frame = to_pandas(pl.from_pandas(frame))
    (result,) = validate_table(table, frame, figures, DQThresholds(), only={name})
    assert (result.table, result.expectation) == (table, name)
    assert result.success is False, result
    assert result.severity == severity
    json.dumps(result.observed_value)


def _decisions_verdict(figures: InputFigures, thresholds: DQThresholds = DQThresholds()) -> GateResult:
    return GateResult(validate_table("decisions", None, figures, thresholds))


def _quarantined(rate_per_10k: int) -> InputFigures:
    base = clean_figures()
    distinct, quarantined = 10_000, rate_per_10k
    return replace(
        base,
        raw_rows={**base.raw_rows, "decisions": distinct},
        distinct_rows={**base.distinct_rows, "decisions": distinct},
        quarantined={"decisions": {"bad_mode": quarantined - quarantined // 2, "missing_key": quarantined // 2}},
        profile={**base.profile, ("decisions", "staged_rows"): float(distinct - quarantined)},
        trailing_volumes=[distinct] * 7,
    )


# DESIGN §5: "critical above 1%, warning above 0.1%": exactly at a threshold is not above it.
@pytest.mark.parametrize(("per_10k", "verdict"),
                         [(300, "fail"), (101, "fail"), (100, "warn"), (50, "warn"), (11, "warn"), (10, "pass"), (5, "pass")])
def test_quarantine_rate_verdicts(per_10k: int, verdict: str) -> None:
    result = _decisions_verdict(_quarantined(per_10k))
    assert result.verdict == verdict
    rate = next(r for r in result.results if r.expectation == "quarantine_rate")
    assert rate.observed_value == pytest.approx(per_10k / 10_000)
    assert "bad_mode" in rate.details


def test_quarantine_rate_thresholds_come_from_config() -> None:
    strict = DQThresholds(quarantine_rate_critical=0.001, quarantine_rate_warning=0.0001)
    assert _decisions_verdict(_quarantined(5), strict).verdict == "warn"
    assert _decisions_verdict(_quarantined(50), strict).verdict == "fail"


def _volume(result: GateResult):
    return next(r for r in result.results if r.expectation == "volume_vs_trailing_7d")


# DESIGN §5: "warning outside x0.5..x2": both bounds are inside.
@pytest.mark.parametrize(("today", "success"),
                         [(1000, True), (500, True), (501, True), (1999, True), (2000, True), (499, False), (2001, False)])
def test_volume_against_trailing_mean(today: int, success: bool) -> None:
    base = clean_figures()
    figures = replace(base, raw_rows={**base.raw_rows, "decisions": today}, trailing_volumes=[1000] * 7)
    check = _volume(_decisions_verdict(figures))
    assert check.success is success
    assert check.severity == "warning"
    assert check.observed_value == pytest.approx(today / 1000)


def test_volume_uses_only_the_newest_trailing_days() -> None:
    base = clean_figures()
    # An 8th, much older day with 100x the volume must not enter the mean.
    figures = replace(base, raw_rows={**base.raw_rows, "decisions": 1000}, trailing_volumes=[1000] * 7 + [100_000])
    assert _volume(_decisions_verdict(figures)).success is True
    # With a 3-day window only the 3 newest count: mean 400 -> today is x2.5.
    figures = replace(figures, trailing_volumes=[400, 400, 400, 1000, 1000])
    check = next(r for r in _decisions_verdict(figures, DQThresholds(volume_trailing_days=3)).results
                 if r.expectation == "volume_vs_trailing_3d")
    assert check.success is False and check.observed_value == pytest.approx(2.5)


@pytest.mark.parametrize("trailing", [[], [0, 0]])
def test_volume_without_history_is_skipped_as_success(trailing: list[int]) -> None:
    base = clean_figures()
    figures = replace(base, raw_rows={**base.raw_rows, "decisions": 5}, trailing_volumes=trailing)
    check = _volume(_decisions_verdict(figures))
    assert check.success is True
    assert check.observed_value == "no history"
    assert "skipped" in check.details


def test_verdict_pass_warn_fail() -> None:
    figures = clean_figures()
    assert clean_result().verdict == "pass"

    # Occupancy above 1 is a warning only: the run publishes.
    warned = clean_outputs()
    warned["reviewer_daily"].loc[0, "occupancy"] = 1.3
    result = evaluate(warned, figures)
    assert result.verdict == "warn"
    assert [r.key for r in result.warnings()] == ["reviewer_daily.occupancy_le_max"]
    assert result.critical_failures() == []

    # A critical failure wins over warnings.
    failed = clean_outputs()
    failed["reviewer_daily"].loc[0, "occupancy"] = 1.3
    failed["violation_daily"].loc[0, "actioned"] = 299
    result = evaluate(failed, figures)
    assert result.verdict == "fail"
    assert [r.key for r in result.critical_failures()] == ["violation_daily.reconcile:actioned_eq_staged_violations"]
    assert result.summary() == {
        "verdict": "fail",
        "critical_failed": ["violation_daily.reconcile:actioned_eq_staged_violations"],
        "warnings": ["reviewer_daily.occupancy_le_max"],
    }


def test_to_json_lists_every_expectation_with_observed_value() -> None:
    result = clean_result()
    doc = json.loads(json.dumps(result.to_json(ds="2024-01-31")))
    assert doc["ds"] == "2024-01-31" and doc["verdict"] == "pass"
    assert len(doc["results"]) == len(result.results) > 100
    for row in doc["results"]:
        assert set(row) == {"table", "expectation", "severity", "success", "observed_value", "details",
                            "min_value", "max_value"}
        assert row["severity"] in ("critical", "warning")
    by_key = {(r["table"], r["expectation"]): r for r in doc["results"]}
    assert by_key[("violation_daily", "reconcile:actioned_eq_staged_violations")]["observed_value"] == 300
    assert by_key[("decisions", "quarantine_rate")]["observed_value"] == pytest.approx(1 / 1001)
    # The bounds a reader compares the observed value with (DESIGN §5's 1% and 0.1%), as numbers.
    bounds = {name: (by_key[("decisions", name)]["min_value"], by_key[("decisions", name)]["max_value"])
              for name in ("quarantine_rate", "quarantine_rate_elevated", "volume_vs_trailing_7d")}
    assert bounds == {"quarantine_rate": (None, 0.01), "quarantine_rate_elevated": (None, 0.001),
                      "volume_vs_trailing_7d": (0.5, 2.0)}
    assert (by_key[("reviewer_daily", "grain_unique")]["min_value"], by_key[("reviewer_daily", "grain_unique")]["max_value"]) == (None, None)
    # A per-row check's observed value counts rows: bounds beside it would read as "1 is within 0..1".
    assert (by_key[("reviewer_daily", "rate_in_0_1:qa_accuracy")]["min_value"],
            by_key[("reviewer_daily", "rate_in_0_1:qa_accuracy")]["max_value"]) == (None, None)
    reconcile = by_key[("violation_daily", "reconcile:actioned_eq_staged_violations")]
    assert reconcile["min_value"] == reconcile["max_value"] == reconcile["observed_value"] == 300
    assert by_key[("reviewer_daily", "grain_unique")]["observed_value"] == 0  # unexpected rows
    assert by_key[("quarantine", "reconcile:rows_eq_quarantined")]["observed_value"] == 1
    # Names are stable keys: one per (table, expectation).
    assert len(by_key) == len(doc["results"])


def test_missing_column_is_a_reported_failure_not_a_crash() -> None:
    frame = clean_outputs()["reviewer_daily"].drop(columns=["overturn_rate"])
    results = {r.expectation: r for r in validate_table("reviewer_daily", frame, clean_figures())}
    assert results["columns_match_schema"].success is False
    broken = results["rate_in_0_1:overturn_rate"]
    assert broken.success is False and broken.severity == "critical"
    assert "error" in broken.details
    assert results["rate_in_0_1:sla_rate"].success is True


def test_grain_counts_null_keys_as_a_group() -> None:
    frame = clean_outputs()["queue_daily"]
    frame["market"] = None  # both rows (comments, null) and (live_realtime, null): still unique
    (ok,) = validate_table("queue_daily", frame, clean_figures(), only={"grain_unique"})
    assert ok.success
    frame["queue"] = "comments"  # now two (comments, null) rows
    (dup,) = validate_table("queue_daily", frame, clean_figures(), only={"grain_unique"})
    assert not dup.success and dup.observed_value == 2


def test_failure_details_show_offending_values() -> None:
    frame = clean_outputs()["queue_daily"]
    frame.loc[1, "sla_rate"] = 1.25
    (failure,) = GateResult(validate_table("queue_daily", frame, clean_figures())).critical_failures()
    assert failure.key == "queue_daily.rate_in_0_1:sla_rate"
    assert failure.observed_value == 1
    assert "1.25" in failure.details and "1 of 2 rows" in failure.details


def test_reconciliation_reads_only_the_all_all_row() -> None:
    frame = clean_outputs()["violation_daily"]
    # Changing a cell row leaves the staged-violation reconciliation (which reads ALL/ALL) intact.
    frame.loc[3, "actioned"] = 299
    (check,) = validate_table("violation_daily", frame, clean_figures(),
                              only={"reconcile:actioned_eq_staged_violations"})
    assert check.success and check.observed_value == 300


def test_p50_le_p90_ignores_nulls_and_equal_values() -> None:
    frame = clean_outputs()["reviewer_daily"]
    frame.loc[0, "handle_p90_s"] = None
    frame.loc[1, "handle_p50_s"] = frame.loc[1, "handle_p90_s"]
    (check,) = validate_table("reviewer_daily", frame, clean_figures(), only={"p50_le_p90:handle"})
    assert check.success and check.observed_value == 0


def test_missing_inputs_to_the_gate_fail_critically() -> None:
    outputs = clean_outputs()
    del outputs["repeat_offenders"]
    base = clean_figures()
    profile = {k: v for k, v in base.profile.items() if k != ("decisions", "human_decisions")}
    figures = replace(base, profile=profile, raw_rows={k: v for k, v in base.raw_rows.items() if k != "shifts"})
    result = evaluate(outputs, figures)
    failed = {r.key: r for r in result.critical_failures()}
    assert set(failed) == {
        "repeat_offenders.table_present",
        "reviewer_daily.reconcile:decisions_eq_staged_human_decisions",
        "shifts.figures_present",
    }
    assert "decisions.human_decisions" in failed["reviewer_daily.reconcile:decisions_eq_staged_human_decisions"].details


def test_unknown_figures_warn_and_report_counts() -> None:
    base = clean_figures()
    figures = replace(base, profile={**base.profile, ("decisions", "unknown_market"): 7.0})
    result = evaluate(clean_outputs(), figures)
    assert result.verdict == "warn"
    (warning,) = result.warnings()
    assert warning.key == "decisions.unknown_market_rate"
    assert warning.observed_value == pytest.approx(7 / 1000)
    assert warning.details.startswith("7 of 1000 staged rows")
    # A tolerance in the config silences it.
    assert _decisions_verdict(figures, DQThresholds(unknown_rate_warning=0.01)).verdict == "pass"
    # And a mismatch's tolerance is its own, not the unknown values'.
    mismatch = replace(base, profile={**base.profile, ("decisions", "action_mismatch"): 2.0})
    assert _decisions_verdict(mismatch).verdict == "warn"
    assert _decisions_verdict(mismatch, DQThresholds(action_mismatch_rate_warning=0.01)).verdict == "pass"
    assert _decisions_verdict(mismatch, DQThresholds(unknown_rate_warning=0.01)).verdict == "warn"


def test_empty_day_passes() -> None:
    """A day without rows is not a DQ failure (ALL/ALL still exists with actioned 0)."""
    outputs = {t: f.iloc[0:0] for t, f in clean_outputs().items()}
    outputs["violation_daily"] = clean_outputs()["violation_daily"].iloc[[0]].assign(actioned=0, appeals_resolved=0)
    outputs["violation_trends"] = clean_outputs()["violation_trends"].iloc[[0]].assign(actioned=0)
    zero = {t: 0 for t in INPUT_TABLES}
    figures = InputFigures(raw_rows=zero, distinct_rows=zero, duplicates_dropped=zero, quarantined={},
                           profile={k: 0.0 for k in clean_figures().profile}, trailing_volumes=[])
    result = evaluate(outputs, figures)
    assert result.verdict == "pass", [r for r in result.results if not r.success]


def test_no_progress_bars_on_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    # Without the context's progress_bars setting GE prints "Calculating Metrics: ...it/s" here.
    validate_table("violation_daily", clean_outputs()["violation_daily"], clean_figures())
    captured = capfd.readouterr()
    assert "Calculating Metrics" not in captured.err
    assert "it/s" not in captured.err


def test_unknown_action_warns_apart_from_a_mismatch() -> None:
    """DESIGN §3: an action that does not fit the outcome is a DQ warning; an action outside DESIGN §2's
    set ("banana", "REMOVE") is one too, reported as unknown like a market, category or queue."""
    base = clean_figures()
    figures = replace(base, profile={**base.profile, ("decisions", "unknown_action"): 2.0})
    result = evaluate(clean_outputs(), figures)
    assert result.verdict == "warn"
    (warning,) = result.warnings()
    assert warning.key == "decisions.unknown_action_rate"
    assert warning.observed_value == pytest.approx(2 / 1000)
    assert warning.details.startswith("2 of 1000 staged rows: action null or outside remove, restrict")
    # Its tolerance is the unknown values' one, not the mismatches'.
    assert _decisions_verdict(figures, DQThresholds(action_mismatch_rate_warning=1.0)).verdict == "warn"
    assert _decisions_verdict(figures, DQThresholds(unknown_rate_warning=0.01)).verdict == "pass"
    # And a mismatch's tolerance is its own, not the unknown values'.
    mismatch = replace(base, profile={**base.profile, ("decisions", "action_mismatch"): 2.0})
    assert _decisions_verdict(mismatch).verdict == "warn"
    assert _decisions_verdict(mismatch, DQThresholds(action_mismatch_rate_warning=0.01)).verdict == "pass"
    assert _decisions_verdict(mismatch, DQThresholds(unknown_rate_warning=0.01)).verdict == "warn"


# ------------------------------------------------------------------ NaN and ±inf, counted in Polars
FLOAT_COLUMNS = [(t, c) for t, schema in OUTPUT_SCHEMAS.items() for c, dtype in schema.items() if dtype.is_float()]


def _polars_with(table: str, column: str, value: float) -> pl.DataFrame:
    frame = pl.from_pandas(clean_outputs()[table])
    return frame.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(value).otherwise(pl.col(column)).alias(column))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize(("table", "column"), FLOAT_COLUMNS, ids=[f"{t}.{c}" for t, c in FLOAT_COLUMNS])
def test_nan_or_inf_in_any_float_column_fails_critically(table: str, column: str, value: float) -> None:
    """DESIGN §4: a rate over a zero denominator is null. pandas holds a null float as NaN and GE skips
    it as missing, so the gate counts NaN and ±inf in Polars, before converting."""
    (result,) = validate_table(table, _polars_with(table, column, value), clean_figures(), only={"floats_finite"})
    assert (result.success, result.severity, result.observed_value) == (False, "critical", 1)
    assert f"{column} 1" in result.details


def test_nan_rate_is_not_a_null_rate() -> None:
    """The reviewer's case: NaN in two rates of reviewer_daily passed every expectation."""
    frame = _polars_with("reviewer_daily", "occupancy", math.nan)
    frame = frame.with_columns(pl.when(pl.col("reviewer_id") == "r9").then(math.nan).otherwise("sla_rate").alias("sla_rate"))
    failed = GateResult(validate_table("reviewer_daily", frame, clean_figures())).critical_failures()
    assert [(r.key, r.observed_value) for r in failed] == [("reviewer_daily.floats_finite", 2)]
    assert "occupancy 1" in failed[0].details and "sla_rate 1" in failed[0].details


def test_only_tables_with_float_columns_get_floats_finite() -> None:
    checked = {r.table for r in clean_result().results if r.expectation == "floats_finite"}
    assert checked == {t for t, _ in FLOAT_COLUMNS}
    assert checked >= {"reviewer_daily", "queue_daily", "violation_daily", "violation_trends"}


# ------------------------------------------------------------------ repeat offenders' configured minimum
@pytest.mark.parametrize(("minimum", "success"), [(1, True), (3, True), (4, False)])
def test_repeat_offenders_follow_the_configured_minimum(minimum: int, success: bool) -> None:
    """DESIGN §4: "at least 3 staged violations" (offenders.min_violations); the clean table's least is 3."""
    params = Params(ds=EPOCH, offenders=OffenderParams(min_violations=minimum))
    (result,) = validate_table("repeat_offenders", clean_outputs()["repeat_offenders"], clean_figures(), None, params,
                               only={"violations_30d_ge_min_violations"})
    assert (result.success, result.severity) == (success, "critical")
    assert f"offenders.min_violations = {minimum}" in result.details
    assert result.observed_value == (0 if success else 1)


# ------------------------------------------------------------------ creator_category_daily, counted in Polars
def test_creator_category_daily_never_reaches_pandas(monkeypatch) -> None:
    """About 3 M rows at 10 M decisions: only its columns (no row) go to pandas, for the schema check."""
    import expectations.gate as gate

    heights: list[tuple[int, list[str]]] = []

    def recording(frame: pl.DataFrame) -> pd.DataFrame:
        heights.append((frame.height, frame.columns))
        return to_pandas(frame)

    monkeypatch.setattr(gate, "to_pandas", recording)
    table = pl.from_pandas(clean_outputs()["creator_category_daily"])
    results = validate_table("creator_category_daily", table, clean_figures())
    assert heights == [(0, list(OUTPUT_SCHEMAS["creator_category_daily"]))]
    assert [r.expectation for r in results] == [
        "columns_match_schema", "grain_unique", "not_null:creator_id", "not_null:policy_category",
        "not_null:last_violation_at", "violations_ge_1", "reconcile:violations_eq_staged_violations",
    ]
    assert all(r.success for r in results)
    observed = {r.expectation: r.observed_value for r in results}
    assert observed["reconcile:violations_eq_staged_violations"] == 300 and observed["grain_unique"] == 0


def test_creator_category_daily_counts_what_it_found() -> None:
    table = pl.from_pandas(clean_outputs()["creator_category_daily"])
    # A repeated key (twice: both rows count, as GE counts them), a null creator, a 0-violation row.
    broken = pl.concat([table, table.head(1), table.head(1).with_columns(creator_id=None, violations=pl.lit(0, pl.Int64))])
    failed = {r.expectation: r for r in validate_table("creator_category_daily", broken, clean_figures()) if not r.success}
    assert {k: (r.severity, r.observed_value) for k, r in failed.items()} == {
        "grain_unique": ("critical", 2),
        "not_null:creator_id": ("critical", 1),
        "violations_ge_1": ("critical", 1),
        "reconcile:violations_eq_staged_violations": ("critical", 400),
    }
    assert "staged decisions.violations = 300" in failed["reconcile:violations_eq_staged_violations"].details


@pytest.mark.parametrize(("categories", "observed"), [(["spam", "spam"], 2), (["spam", "hate_speech"], 0)])
def test_creator_category_daily_null_keys_are_a_group(categories: list[str], observed: int) -> None:
    table = pl.from_pandas(clean_outputs()["creator_category_daily"])
    nulls = table.head(2).with_columns(creator_id=pl.lit(None, pl.String), policy_category=pl.Series(categories))
    (check,) = validate_table("creator_category_daily", pl.concat([table, nulls]), clean_figures(), only={"grain_unique"})
    assert (check.success, check.observed_value) == (observed == 0, observed)


def test_creator_category_daily_missing_column_is_a_reported_failure_not_a_crash() -> None:
    table = pl.from_pandas(clean_outputs()["creator_category_daily"]).drop("violations")
    results = {r.expectation: r for r in validate_table("creator_category_daily", table, clean_figures())}
    assert results["columns_match_schema"].success is False
    for name in ("violations_ge_1", "reconcile:violations_eq_staged_violations"):
        assert results[name].success is False and results[name].severity == "critical"
    assert results["grain_unique"].success is True


def test_the_gates_quarantine_reasons_are_exactly_the_ones_staging_can_give() -> None:
    """Written out twice on purpose (the gate checks staging against DESIGN §3): a rule added to
    staging without its reason in the gate would fail the critical in_set check on every day it
    quarantines a row; a reason the gate lists that no rule gives is a contract nobody keeps."""
    from expectations.quarantine import REASONS
    from transforms import staging
    from transforms.schemas import INPUT_TABLES

    assert set(REASONS) == {r for t in INPUT_TABLES for r in staging.reasons(t)}


# Numeric output columns no expectation of their suite names, each with the reason.
UNCHECKED_ON_PURPOSE = {
    ("violation_trends", "zscore"): "any real number; NaN and ±inf fail floats_finite (counted in Polars)",
}


def test_every_numeric_output_column_is_checked_by_its_suite_or_exempted_with_a_reason() -> None:
    """A column added to an output table without a range check would pass the gate with any value:
    the suites name every count, duration and rate (non-negative, rates in [0, 1], ...)."""
    import narwhals.stable.v2 as nw

    from expectations.gate import OUTPUT_SUITES

    unchecked = set()
    for module in OUTPUT_SUITES:
        named: set[str] = set()
        for check in module.suite(clean_figures(), DQThresholds(), Params(ds=dt.date(2024, 3, 14))):
            for attr in ("column", "column_A", "column_B", "column_list"):
                value = getattr(check, attr, None)
                named.update(value if isinstance(value, (list, tuple)) else [value] if value else [])
        numeric = [c for c, t in OUTPUT_SCHEMAS[module.TABLE].items() if t in (nw.Int64, nw.Float64)]
        unchecked |= {(module.TABLE, c) for c in numeric if c not in named}
    assert unchecked == set(UNCHECKED_ON_PURPOSE)


def test_every_output_table_has_a_suite_in_the_gate() -> None:
    """The gate validates the tables of OUTPUT_SUITES only: a table added to OUTPUT_SCHEMAS without
    its suite would be published unchecked, and no other test would notice."""
    from expectations.gate import OUTPUT_SUITES

    assert sorted(module.TABLE for module in OUTPUT_SUITES) == sorted(OUTPUT_SCHEMAS)


def test_every_grain_key_is_checked_unique_and_not_null_critically() -> None:
    """DESIGN §5: output suites check grain uniqueness and not-null keys, critical. A check dropped
    from a suite drops its breaking case from CASES with it, so only a list of what DESIGN asks for
    notices (a null market in queue_daily passed the gate when its not_null was dropped)."""
    from transforms.schemas import OUTPUT_GRAINS

    reported = {(r.table, r.expectation): r.severity for r in clean_result().results}
    for table, grain in OUTPUT_GRAINS.items():
        expected = {f"not_null:{c}" for c in grain} | ({"grain_unique"} if grain else set())
        assert {n: reported.get((table, n)) for n in expected} == dict.fromkeys(expected, "critical"), table


def test_quarantine_rate_is_over_distinct_rows_not_raw_rows() -> None:
    """DESIGN §3: each distinct row gets a reason; exact duplicates are dropped first. 15 of 1000
    distinct rows quarantined is 1.5 % (fail), even when the day's 2000 raw rows held 1000 exact
    duplicates (over raw rows it read 0.75 %, a mere warning, and the run published)."""
    base = clean_figures()
    figures = replace(
        base,
        raw_rows={**base.raw_rows, "decisions": 2000},
        distinct_rows={**base.distinct_rows, "decisions": 1000},
        duplicates_dropped={**base.duplicates_dropped, "decisions": 1000},
        quarantined={"decisions": {"bad_mode": 15}},
        profile={**base.profile, ("decisions", "staged_rows"): 985.0},
        trailing_volumes=[2000] * 7,
    )
    result = _decisions_verdict(figures)
    rate = next(r for r in result.results if r.expectation == "quarantine_rate")
    assert (rate.success, rate.observed_value) == (False, pytest.approx(0.015))
    assert result.verdict == "fail"


@pytest.mark.parametrize(("dropped", "success"), [(1, True), (2, False)])
def test_duplicates_rate_is_over_raw_rows(dropped: int, success: bool) -> None:
    """thresholds.duplicates_rate_warning: the share of raw rows dropped as exact duplicates, warning
    above 0.1 %. 1 of 1000 raw rows is 0.1 % exactly: not above (over the 999 distinct rows it read
    0.1001 % and warned); 2 of 1000 is above."""
    base = clean_figures()
    figures = replace(
        base,
        raw_rows={**base.raw_rows, "decisions": 1000},
        distinct_rows={**base.distinct_rows, "decisions": 1000 - dropped},
        duplicates_dropped={**base.duplicates_dropped, "decisions": dropped},
        quarantined={"decisions": {}},
        profile={**base.profile, ("decisions", "staged_rows"): float(1000 - dropped)},
        trailing_volumes=[1000] * 7,
    )
    check = next(r for r in _decisions_verdict(figures).results if r.expectation == "duplicates_rate")
    assert (check.success, check.severity) == (success, "warning")
    assert check.observed_value == pytest.approx(dropped / 1000)
