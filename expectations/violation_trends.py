"""Output suite for violation_trends (grain market, policy_category, rollups included)."""

from __future__ import annotations

from expectations._checks import (
    Check, between, counts, in_set, market_category_grain, non_negative, not_null, reconcile_sum,
)
from expectations.figures import InputFigures
from expectations.results import CRITICAL
from expectations.thresholds import DQThresholds
from transforms.params import Params

TABLE = "violation_trends"


def suite(figures: InputFigures, thresholds: DQThresholds, params: Params) -> list[Check]:
    return [
        *market_category_grain(),
        *counts(("actioned", "baseline_days")),
        *[non_negative(c) for c in ("actioned_7d_mean", "baseline_mean", "baseline_std")],
        # actioned / actioned(ds-7) - 1 cannot fall below -1 with non-negative counts.
        between("wow_change_ge_minus_1", "wow_change", -1, None, CRITICAL),
        not_null("is_anomaly"),  # false, not null, when zscore is null
        in_set("direction", ("spike", "drop")),
        reconcile_sum("reconcile:actioned_eq_staged_violations", "actioned", figures,
                      ("decisions", "violations"), all_all_only=True),
    ]
