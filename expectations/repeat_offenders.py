"""Output suite for repeat_offenders (grain creator_id)."""

from __future__ import annotations

from expectations._checks import Check, a_le_b, between, counts, grain_unique, not_null
from expectations.figures import InputFigures
from expectations.results import CRITICAL
from expectations.thresholds import DQThresholds
from transforms.params import Params

TABLE = "repeat_offenders"


def suite(figures: InputFigures, thresholds: DQThresholds, params: Params) -> list[Check]:
    return [
        grain_unique(("creator_id",)),
        not_null("creator_id"),
        not_null("last_violation_at"),
        *counts(("violations_30d", "distinct_categories")),
        # The minimum this day's table was computed with: the gate is given the run's own params.
        between("violations_30d_ge_min_violations", "violations_30d", params.offenders.min_violations, None, CRITICAL,
                f"a repeat offender has at least offenders.min_violations = {params.offenders.min_violations}"),
        between("distinct_categories_ge_1", "distinct_categories", 1, None, CRITICAL),
        a_le_b("distinct_categories_le_violations", "distinct_categories", "violations_30d"),
    ]
