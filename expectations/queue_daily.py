"""Output suite for queue_daily (grain queue, market)."""

from __future__ import annotations

from expectations._checks import (
    Check, a_le_b, counts, grain_unique, non_negative, not_null, rate_in_0_1, reconcile_sum,
)
from expectations.figures import InputFigures
from expectations.thresholds import DQThresholds
from transforms.params import Params

TABLE = "queue_daily"
COUNTS = ("decisions", "automated", "violations", "sla_met")
SECONDS = ("wait_p50_s", "wait_p90_s", "wait_max_s", "sla_s")
RATES = ("automation_rate", "violation_rate", "sla_rate")


def suite(figures: InputFigures, thresholds: DQThresholds, params: Params) -> list[Check]:
    return [
        grain_unique(("queue", "market")),
        # An unknown or null queue or market is staged, not quarantined (DESIGN §3), and warned about
        # by the decisions suite; staging groups a null one as UNKNOWN, so a null key here is a
        # broken table: critical.
        not_null("queue"),
        not_null("market"),
        *counts(COUNTS),
        *[non_negative(c) for c in SECONDS],
        *[rate_in_0_1(c) for c in RATES],
        a_le_b("p50_le_p90:wait", "wait_p50_s", "wait_p90_s"),
        a_le_b("p90_le_max:wait", "wait_p90_s", "wait_max_s"),
        reconcile_sum("reconcile:decisions_eq_staged_decisions", "decisions", figures, ("decisions", "staged_rows")),
        reconcile_sum("reconcile:violations_eq_staged_violations", "violations", figures, ("decisions", "violations")),
        reconcile_sum("reconcile:automated_eq_staged_automated", "automated", figures,
                      ("decisions", "automated_decisions")),
    ]
