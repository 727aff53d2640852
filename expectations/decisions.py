"""Input suite for decisions: quarantine and duplicate rates, unknown markets, categories, queues and actions, known actions that do not fit the outcome, and the day's volume against the trailing observed days."""

from __future__ import annotations

import pandas as pd

from expectations._checks import Check
from expectations._inputs import figures_frame, input_checks
from expectations.figures import InputFigures
from expectations.thresholds import DQThresholds

TABLE = "decisions"
FLAGS: tuple[str, ...] = (
    "unknown_market", "unknown_category", "unknown_queue", "unknown_action", "action_mismatch",
)
CHECK_VOLUME = True


def frame(figures: InputFigures, thresholds: DQThresholds) -> pd.DataFrame:
    """The one-row frame of this table's figures that the suite validates."""
    return figures_frame(TABLE, figures, thresholds, FLAGS, CHECK_VOLUME)


def suite(figures: InputFigures, thresholds: DQThresholds) -> list[Check]:
    return input_checks(TABLE, figures, thresholds, FLAGS, CHECK_VOLUME)
