"""The small numbers about a day's inputs that the engine computes and the gate checks."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class InputFigures:
    """All small numbers, computed in the engine (jobs/) in the same pass as staging.

    raw_rows / distinct_rows / duplicates_dropped: per input table, before and after dropping exact duplicates.
    quarantined: table -> reason -> rows sent to quarantine.
    profile: (table, figure) -> value, from `transforms.input_profile.input_profile` (see `profile_dict`).
    trailing_volumes: raw decision rows of up to the 7 previous observed days, newest first.
    """

    raw_rows: dict[str, int]
    distinct_rows: dict[str, int]
    duplicates_dropped: dict[str, int]
    quarantined: dict[str, dict[str, int]]
    profile: dict[tuple[str, str], float]
    trailing_volumes: list[int] = field(default_factory=list)

    def quarantined_total(self, table: str) -> int:
        return sum(self.quarantined.get(table, {}).values())

    def total_quarantined(self) -> int:
        return sum(self.quarantined_total(t) for t in self.quarantined)
