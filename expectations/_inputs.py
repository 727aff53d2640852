"""Input-level checks: staging cannot see them row by row, so the engine counts and the gate judges.

Each input table becomes a one-row pandas frame of figures (rates, volume ratio, staged rows) and a
suite of ExpectColumnMaxToBeBetween on it, so these checks go through GE and are reported like the
output checks, with the figure itself as GE's observed value.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from expectations._checks import Check, decided, figure_between
from expectations.figures import InputFigures
from expectations.results import CRITICAL, WARNING
from expectations.thresholds import DQThresholds
from transforms.input_profile import ACTIONS

_UNKNOWN_LABEL = {
    "unknown_market": "market null or not ISO 3166-1 alpha-2",
    "unknown_category": "policy category outside the taxonomy",
    "unknown_queue": "queue without a configured SLA",
    "unknown_action": f"action null or outside {', '.join(ACTIONS)}",
    "action_mismatch": "known action does not fit the outcome (none iff no_violation)",
}


def _rate(part: float, whole: float) -> float:
    # An empty day has nothing to quarantine or duplicate: 0, so the rate checks pass.
    return float(part) / float(whole) if whole else 0.0


def _pct(x: float) -> str:
    return f"{x * 100:g}%"


def trailing_mean(figures: InputFigures, thresholds: DQThresholds) -> float | None:
    """Mean raw rows of the last `volume_trailing_days` trailing observed days
    (`figures.trailing_volumes`); None without any, or when they are all empty."""
    window = figures.trailing_volumes[: thresholds.volume_trailing_days]
    if not window or sum(window) == 0:
        return None
    return sum(window) / len(window)


def figures_frame(
    table: str, figures: InputFigures, thresholds: DQThresholds, flags: Sequence[str], volume: bool
) -> pd.DataFrame:
    """The one-row frame `input_checks` validates: quarantine_rate, duplicates_rate, staged_rows, a
    `<flag>_rate` per profile figure in `flags` (over staged rows) and, with `volume` and a trailing
    mean, volume_ratio (raw rows / trailing mean)."""
    distinct = figures.distinct_rows.get(table, 0)
    raw = figures.raw_rows.get(table, 0)
    staged = figures.profile.get((table, "staged_rows"), 0.0)
    row: dict[str, float] = {
        "quarantine_rate": _rate(figures.quarantined_total(table), distinct),
        "duplicates_rate": _rate(figures.duplicates_dropped.get(table, 0), raw),
        "staged_rows": float(staged),
    }
    for flag in flags:
        row[f"{flag}_rate"] = _rate(figures.profile.get((table, flag), 0.0), staged)
    mean = trailing_mean(figures, thresholds)
    if volume and mean is not None:
        row["volume_ratio"] = raw / mean
    return pd.DataFrame([row])


def input_checks(
    table: str, figures: InputFigures, thresholds: DQThresholds, flags: Sequence[str], volume: bool
) -> list[Check]:
    """An input table's suite over `figures_frame`'s columns: quarantine rate (critical, and a warning
    when elevated), duplicates rate, staged rows = distinct - quarantined (critical), each `flags`
    rate (warnings) and, with `volume`, raw rows against the trailing observed days (a warning)."""
    if table not in figures.raw_rows or table not in figures.distinct_rows:
        return [decided("figures_present", CRITICAL, False, None,
                        f"the engine passed no raw/distinct row counts for {table}")]
    raw = figures.raw_rows[table]
    distinct = figures.distinct_rows[table]
    quarantined = figures.quarantined.get(table, {})
    q_total = sum(quarantined.values())
    by_reason = ", ".join(f"{k} {v}" for k, v in sorted(quarantined.items()) if v) or "none"
    q_details = f"{q_total} of {distinct} distinct rows quarantined ({by_reason})"
    checks: list[Check] = [
        figure_between("quarantine_rate", "quarantine_rate", None, thresholds.quarantine_rate_critical, CRITICAL,
                       f"{q_details}; fails above {_pct(thresholds.quarantine_rate_critical)}"),
        figure_between("quarantine_rate_elevated", "quarantine_rate", None, thresholds.quarantine_rate_warning,
                       WARNING, f"{q_details}; warns above {_pct(thresholds.quarantine_rate_warning)}"),
        figure_between("duplicates_rate", "duplicates_rate", None, thresholds.duplicates_rate_warning, WARNING,
                       f"{figures.duplicates_dropped.get(table, 0)} of {raw} raw rows were exact duplicates; "
                       f"warns above {_pct(thresholds.duplicates_rate_warning)}"),
    ]
    staged = figures.profile.get((table, "staged_rows"))
    if staged is None:
        checks.append(decided("reconcile:staged_eq_distinct_minus_quarantined", CRITICAL, False, None,
                              f"input figure {table}.staged_rows missing from the input profile"))
    else:
        expected = distinct - q_total
        checks.append(figure_between(
            "reconcile:staged_eq_distinct_minus_quarantined", "staged_rows", expected, expected, CRITICAL,
            f"staged rows must equal {distinct} distinct - {q_total} quarantined = {expected}"))
    for flag in flags:
        limit = thresholds.action_mismatch_rate_warning if flag == "action_mismatch" else thresholds.unknown_rate_warning
        count = figures.profile.get((table, flag))
        if count is None:
            checks.append(decided(f"{flag}_rate", WARNING, False, None,
                                  f"input figure {table}.{flag} missing from the input profile"))
            continue
        checks.append(figure_between(
            f"{flag}_rate", f"{flag}_rate", None, limit, WARNING,
            f"{int(count)} of {int(staged or 0)} staged rows: {_UNKNOWN_LABEL[flag]}; warns above {_pct(limit)}"))
    if volume:
        checks.append(_volume_check(raw, figures, thresholds))
    return checks


def _volume_check(raw: int, figures: InputFigures, thresholds: DQThresholds) -> Check:
    name = f"volume_vs_trailing_{thresholds.volume_trailing_days}d"
    window = figures.trailing_volumes[: thresholds.volume_trailing_days]
    mean = trailing_mean(figures, thresholds)
    if mean is None:
        # The first days of a deployment have nothing to compare with: not a data problem.
        return decided(name, WARNING, True, "no history",
                       f"{raw} raw rows today; skipped: no trailing observed day with rows")
    return figure_between(
        name, "volume_ratio", thresholds.volume_low, thresholds.volume_high, WARNING,
        f"{raw} raw rows today vs mean {mean:.1f} of {len(window)} trailing observed days; "
        f"observed is the ratio, allowed x{thresholds.volume_low:g}..x{thresholds.volume_high:g}",
    )
