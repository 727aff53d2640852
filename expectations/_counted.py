"""Checks counted in Polars, on a table as the job wrote it, before any of it reaches pandas.

Two faults only Polars still sees: a NaN or ±inf float (pandas, and great-expectations with it,
holds a null float as NaN and skips both as missing, so a NaN rate passed "in [0, 1]" and an inf
passed ">= 0"), and a table too large to convert at all (creator_category_daily). The counts become
a one-row frame that great-expectations validates, like the input figures, so dq.json reports them
as it reports every other check, with the count as the observed value.
"""

from __future__ import annotations

import pandas as pd
import polars as pl

from expectations._checks import figure_between
from expectations._gx import Expectation
from expectations.results import CRITICAL
from transforms.schemas import OUTPUT_SCHEMAS

NON_FINITE = "non_finite"
# Tables with float columns get floats_finite; the others hold no value it could find.
_HAS_FLOATS = {t: any(dtype.is_float() for dtype in schema.values()) for t, schema in OUTPUT_SCHEMAS.items()}


def finite_counts(table: str, frame: pl.DataFrame) -> tuple[dict[str, float], list[Expectation]]:
    """floats_finite and the count it checks, for a table with float columns (none for the others)."""
    if not _HAS_FLOATS[table]:
        return {}, []
    counts = non_finite_counts(frame)
    return {NON_FINITE: sum(counts.values())}, [floats_finite(counts)]


def non_finite_counts(frame: pl.DataFrame) -> dict[str, int]:
    """NaN and ±inf values per float column the table has (a null is neither: is_finite keeps it null)."""
    floats = [c for c, dtype in frame.schema.items() if dtype.is_float()]
    if not floats:
        return {}
    counts = frame.select([(~pl.col(c).is_finite()).sum().alias(c) for c in floats]).row(0, named=True)
    return {c: int(n) for c, n in counts.items()}


def floats_finite(counts: dict[str, int]) -> Expectation:
    """Critical: DESIGN §4 makes a rate over a zero denominator null, never NaN, and no figure is infinite."""
    found = ", ".join(f"{c} {n}" for c, n in counts.items() if n) or "none"
    return figure_between(
        "floats_finite", NON_FINITE, None, 0, CRITICAL,
        f"NaN or ±inf values in the {len(counts)} float columns ({found}); a rate over 0 is null, not NaN",
    )


def counts_frame(counts: dict[str, float]) -> pd.DataFrame:
    """The one-row frame great-expectations validates the counts on: its observed value is the count."""
    return pd.DataFrame([counts])
