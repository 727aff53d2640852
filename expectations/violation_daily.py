"""Output suite for violation_daily (grain market, policy_category, with ALL rollups)."""

from __future__ import annotations

from expectations._checks import (
    Check, a_le_b, counts, market_category_grain, non_negative, rate_in_0_1, reconcile_sum,
)
from expectations.figures import InputFigures
from expectations.thresholds import DQThresholds
from transforms.params import Params

TABLE = "violation_daily"
COUNTS = ("actioned", "proactive", "automated", "zero_view", "within_24h", "removed",
          "appeals_resolved", "appeals_overturned")
RATES = ("proactive_rate", "automated_rate", "zero_view_rate", "within_24h_rate", "overturn_rate")


def suite(figures: InputFigures, thresholds: DQThresholds, params: Params) -> list[Check]:
    return [
        *market_category_grain(),
        *counts(COUNTS),
        *[non_negative(c) for c in ("tta_p50_s", "tta_p90_s")],
        *[rate_in_0_1(c) for c in RATES],
        a_le_b("p50_le_p90:tta", "tta_p50_s", "tta_p90_s"),
        reconcile_sum("reconcile:actioned_eq_staged_violations", "actioned", figures,
                      ("decisions", "violations"), all_all_only=True),
        reconcile_sum("reconcile:appeals_eq_staged_appeals", "appeals_resolved", figures,
                      ("appeals", "staged_rows"), all_all_only=True),
    ]
