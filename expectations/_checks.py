"""Builders of the tagged great-expectations expectations the table suites are made of.

Every expectation carries meta {"name", "severity", "details"}: the gate reports it under that
stable name, so a renamed GE class or argument never changes dq.json.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

from expectations._gx import Column, Expectation, gxe
from expectations.figures import InputFigures
from expectations.results import CRITICAL, ExpectationResult, Severity
from transforms.schemas import ALL

# A suite is a list of checks: GE expectations, or results decided without data (a figure the
# engine did not provide, a volume check without history) so that they are reported alike.
Check = Union[Expectation, ExpectationResult]


def tag(name: str, severity: Severity, details: str = "") -> dict[str, str]:
    return {"name": name, "severity": severity, "details": details}


def decided(name: str, severity: Severity, success: bool, observed: object, details: str) -> ExpectationResult:
    return ExpectationResult(table="", expectation=name, severity=severity, success=success,
                             observed_value=observed, details=details)


def grain_unique(columns: Sequence[str]) -> Expectation:
    meta = tag("grain_unique", CRITICAL, f"one row per ({', '.join(columns)})")
    if len(columns) == 1:
        return gxe.ExpectColumnValuesToBeUnique(column=columns[0], meta=meta)
    # Nulls are a group of their own in a grain (an unknown market is staged, not quarantined).
    return gxe.ExpectCompoundColumnsToBeUnique(column_list=list(columns), ignore_row_if="never", meta=meta)


def not_null(column: str, severity: Severity = CRITICAL) -> Expectation:
    return gxe.ExpectColumnValuesToNotBeNull(column=column, meta=tag(f"not_null:{column}", severity))


def rate_in_0_1(column: str, severity: Severity = CRITICAL) -> Expectation:
    # Nulls (rate over a zero denominator) are not checked.
    return gxe.ExpectColumnValuesToBeBetween(
        column=column, min_value=0, max_value=1, meta=tag(f"rate_in_0_1:{column}", severity, "nulls allowed")
    )


def non_negative(column: str, severity: Severity = CRITICAL) -> Expectation:
    return gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, meta=tag(f"non_negative:{column}", severity))


def counts(columns: Sequence[str]) -> list[Expectation]:
    """A count is never null (0, not missing) and never negative."""
    out: list[Expectation] = []
    for column in columns:
        out += [not_null(column), non_negative(column)]
    return out


def a_le_b(name: str, a: str, b: str, severity: Severity = CRITICAL) -> Expectation:
    return gxe.ExpectColumnPairValuesAToBeGreaterThanB(
        column_A=b, column_B=a, or_equal=True, ignore_row_if="either_value_is_missing",
        meta=tag(name, severity, f"{a} <= {b}; rows with a null ignored"),
    )


def between(
    name: str, column: str, low: float | None, high: float | None, severity: Severity, details: str = ""
) -> Expectation:
    return gxe.ExpectColumnValuesToBeBetween(
        column=column, min_value=low, max_value=high, meta=tag(name, severity, details)
    )


def in_set(column: str, values: Sequence[str], severity: Severity = CRITICAL) -> Expectation:
    return gxe.ExpectColumnValuesToBeInSet(
        column=column, value_set=sorted(values), meta=tag(f"in_set:{column}", severity)
    )


ALL_ALL = (Column("market") == ALL) & (Column("policy_category") == ALL)


def market_category_grain() -> list[Expectation]:
    """Grain checks shared by violation_daily and violation_trends. Staging maps a null market or
    category to UNKNOWN, so a null key here is a broken table (critical)."""
    return [
        grain_unique(("market", "policy_category")),
        not_null("market"),
        not_null("policy_category"),
        rollup_present(),
    ]


def rollup_present() -> Expectation:
    return gxe.ExpectTableRowCountToEqual(
        value=1, row_condition=ALL_ALL, meta=tag("rollup_all_all_present", CRITICAL, "exactly one ALL/ALL row")
    )


def profile_value(figures: InputFigures, table: str, figure: str) -> int | None:
    value = figures.profile.get((table, figure))
    return None if value is None else int(round(value))


def reconcile_sum(
    name: str,
    column: str,
    figures: InputFigures,
    source: tuple[str, str],
    *,
    all_all_only: bool = False,
) -> Check:
    """sum(column) equals an input-profile figure; a missing figure is a critical failure, never a pass."""
    expected = profile_value(figures, *source)
    what = f"{source[0]}.{source[1]}"
    if expected is None:
        return decided(name, CRITICAL, False, None, f"input figure {what} missing from the input profile")
    details = f"sum({column}){' on the ALL/ALL row' if all_all_only else ''} must equal staged {what} = {expected}"
    return gxe.ExpectColumnSumToBeBetween(
        column=column, min_value=expected, max_value=expected,
        row_condition=ALL_ALL if all_all_only else None,
        meta=tag(name, CRITICAL, details),
    )


def figure_between(
    name: str, column: str, low: float | None, high: float | None, severity: Severity, details: str
) -> Expectation:
    """For one-row frames of figures (the inputs', the counts taken in Polars): GE's observed value
    is then the figure itself."""
    return gxe.ExpectColumnMaxToBeBetween(
        column=column, min_value=low, max_value=high, meta=tag(name, severity, details)
    )

