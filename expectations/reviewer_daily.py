"""Output suite for reviewer_daily (grain reviewer_id)."""

from __future__ import annotations

from expectations._checks import (
    Check, a_le_b, between, counts, grain_unique, non_negative, not_null, rate_in_0_1, reconcile_sum,
)
from expectations.figures import InputFigures
from expectations.results import WARNING
from expectations.thresholds import DQThresholds
from transforms.params import Params

TABLE = "reviewer_daily"
COUNTS = ("decisions", "violations", "sla_met", "qa_audits", "qa_agreed", "appeals_resolved", "appeals_overturned")
SECONDS = ("handle_time_total_s", "aht_s", "handle_p50_s", "handle_p90_s", "logged_in_s")
RATES = ("sla_rate", "qa_accuracy", "overturn_rate")


def suite(figures: InputFigures, thresholds: DQThresholds, params: Params) -> list[Check]:
    return [
        grain_unique(("reviewer_id",)),
        not_null("reviewer_id"),
        *counts(COUNTS),
        not_null("handle_time_total_s"),  # 0, not null, for a reviewer without decisions
        *[non_negative(c) for c in (*SECONDS, "decisions_per_hour", "occupancy")],
        *[rate_in_0_1(c) for c in RATES],
        # More handle time than time logged in is implausible, but it is the shift feed that is off.
        between("occupancy_le_max", "occupancy", None, thresholds.occupancy_max, WARNING),
        a_le_b("p50_le_p90:handle", "handle_p50_s", "handle_p90_s"),
        reconcile_sum("reconcile:decisions_eq_staged_human_decisions", "decisions", figures,
                      ("decisions", "human_decisions")),
        reconcile_sum("reconcile:qa_audits_eq_staged_audits", "qa_audits", figures, ("qa_audits", "staged_rows")),
        reconcile_sum("reconcile:appeals_eq_staged_human_appeals", "appeals_resolved", figures,
                      ("appeals", "human_appeals")),
    ]
