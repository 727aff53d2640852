"""Thresholds of the data-quality gate (DESIGN §5); jobs.config loads the `[dq]` TOML section into it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DQThresholds:
    # Share of distinct input rows that staging quarantined: above critical the run fails.
    quarantine_rate_critical: float = 0.01
    quarantine_rate_warning: float = 0.001
    # Raw decision rows of the day against the mean of the trailing observed days.
    volume_low: float = 0.5
    volume_high: float = 2.0
    volume_trailing_days: int = 7
    # Share of staged rows with an unknown market, category, queue or action; 0.0 means any one warns.
    unknown_rate_warning: float = 0.0
    # Share of staged decisions whose (known) action does not fit the outcome (DESIGN §3: a warning, not quarantine).
    action_mismatch_rate_warning: float = 0.0
    # Share of raw rows dropped as exact duplicates.
    duplicates_rate_warning: float = 0.001
    # Occupancy above this is implausible (handle time longer than time logged in) but not fatal.
    occupancy_max: float = 1.0
