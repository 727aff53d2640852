"""Output suite for creator_category_daily (grain creator_id, policy_category), counted in Polars.

About 3 M rows at 10 M decisions a day: in pandas, great-expectations' uniqueness check alone would
take seconds (about 2 s on repeat_offenders' 5 M rows), so `counted` counts the faults in Polars
(about 0.1 s) and the suite checks that one-row frame of counts (the table itself reaches
great-expectations only as its columns, for columns_match_schema). A row is one (creator, category)
with staged violations on ds, so each row has at least one and together they are the day's staged
violations.
"""

from __future__ import annotations

import polars as pl

from expectations._checks import Check, figure_between, reconcile_sum
from expectations.figures import InputFigures
from expectations.results import CRITICAL
from expectations.thresholds import DQThresholds
from transforms.params import Params
from transforms.schemas import OUTPUT_GRAINS

TABLE = "creator_category_daily"
GRAIN = OUTPUT_GRAINS[TABLE]
NOT_NULL = (*GRAIN, "last_violation_at")  # creator_id and decided_at are never null once staged
# Named like the table's column so that reconcile_sum, over the one row, reads the table's sum.
TOTAL = "violations"


def counted(frame: pl.DataFrame) -> dict[str, float]:
    """The counts the suite checks. One whose column the table lacks (or holds as non-numbers) is
    left out: its check then fails with an error, beside columns_match_schema, and the gate goes on."""
    out: dict[str, float] = {}
    if set(GRAIN) <= set(frame.columns):
        out["duplicate_key_rows"] = _duplicate_key_rows(frame)
    out |= {f"null:{c}": frame[c].null_count() for c in NOT_NULL if c in frame.columns}
    if TOTAL in frame.columns and frame.schema[TOTAL].is_numeric():
        violations = frame[TOTAL]
        out["violations_below_1"] = violations.null_count() + int((violations < 1).sum())
        out[TOTAL] = violations.sum()
    return out


def _duplicate_key_rows(frame: pl.DataFrame) -> int:
    """Every row of a repeated key, as great-expectations counts a compound-unique failure.

    Equal keys hash equal, so when no sorted 64-bit hash repeats the grain is unique (80 ms at
    3 M rows); only a repeat (a broken table, or a collision) pays for the exact count over the
    strings (270 ms).
    """
    hashes = frame.select(pl.struct(GRAIN).hash()).to_series().sort()
    if not (hashes == hashes.shift(1)).any():
        return 0
    return int(frame.select(GRAIN).is_duplicated().sum())


def suite(figures: InputFigures, thresholds: DQThresholds, params: Params) -> list[Check]:
    """Checks of the `counted` frame, named like their row-by-row counterparts of the other tables."""
    return [
        figure_between("grain_unique", "duplicate_key_rows", None, 0, CRITICAL,
                       f"rows whose ({', '.join(GRAIN)}) another row has"),
        *[figure_between(f"not_null:{c}", f"null:{c}", None, 0, CRITICAL, f"rows with a null {c}") for c in NOT_NULL],
        figure_between("violations_ge_1", "violations_below_1", None, 0, CRITICAL,
                       "rows with violations null or below 1: a row is a (creator, category) with a staged violation"),
        reconcile_sum("reconcile:violations_eq_staged_violations", TOTAL, figures, ("decisions", "violations")),
    ]
