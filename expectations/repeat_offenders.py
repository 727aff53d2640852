"""Output suite for repeat_offenders (grain creator_id)."""

from __future__ import annotations

from expectations._checks import Check, a_le_b, between, counts, grain_unique, not_null
from expectations.figures import InputFigures
from expectations.results import CRITICAL
from expectations.thresholds import DQThresholds

TABLE = "repeat_offenders"


def suite(figures: InputFigures, thresholds: DQThresholds) -> list[Check]:
    return [
        grain_unique(("creator_id",)),
        not_null("creator_id"),
        not_null("last_violation_at"),
        *counts(("violations_30d", "distinct_categories")),
        # The configured minimum (default 3) lives in Params; 1 holds under any configuration.
        between("violations_30d_ge_1", "violations_30d", 1, None, CRITICAL),
        between("distinct_categories_ge_1", "distinct_categories", 1, None, CRITICAL),
        a_le_b("distinct_categories_le_violations", "distinct_categories", "violations_30d"),
    ]
