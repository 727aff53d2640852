"""Output suite for quarantine (rejected input rows; no grain)."""

from __future__ import annotations

from expectations._checks import Check, decided, in_set, not_null, tag
from expectations._gx import gxe
from expectations.figures import InputFigures
from expectations.results import CRITICAL
from expectations.thresholds import DQThresholds
from transforms.params import Params
from transforms.schemas import INPUT_TABLES

TABLE = "quarantine"
# DESIGN §3's reasons, written out rather than taken from transforms.staging: the gate holds staging
# to the contract, and a reason staging made up (or misspelt) fails it. A test keeps the two equal.
REASONS = ("missing_key", "bad_timestamp", "wrong_partition", "bad_mode", "bad_outcome", "bad_range",
           "conflicting_duplicate")


def suite(figures: InputFigures, thresholds: DQThresholds, params: Params) -> list[Check]:
    checks: list[Check] = [
        not_null("source_table"),
        not_null("reason"),
        not_null("row"),
        in_set("source_table", INPUT_TABLES),
        in_set("reason", REASONS),
    ]
    expected = figures.total_quarantined()
    unknown = sorted({r for per in figures.quarantined.values() for r in per} - set(REASONS))
    if unknown:
        checks.append(decided("reasons_known", CRITICAL, False, unknown, "the engine counted unknown reasons"))
    checks.append(gxe.ExpectTableRowCountToEqual(
        value=expected,
        meta=tag("reconcile:rows_eq_quarantined", CRITICAL, f"rows must equal the {expected} rows staging quarantined"),
    ))
    return checks
