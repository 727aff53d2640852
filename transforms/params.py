"""The small typed parameter object every transform takes (built from the TOML config in jobs/)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field, fields
from typing import TypeVar

DEFAULT_SLA_S: dict[str, float] = {
    "live_realtime": 300.0,
    "live_escalation": 900.0,
    "video_standard": 43200.0,
    "comments": 86400.0,
    # Listed (at the default value) so the DQ gate counts it as a known queue, not an unknown one.
    "account_review": 86400.0,
}

DEFAULT_TAXONOMY: tuple[str, ...] = (
    "violent_extremism",
    "hate_speech",
    "harassment",
    "child_safety",
    "adult_nudity",
    "self_harm",
    "dangerous_acts",
    "violent_graphic",
    "spam",
    "scams_fraud",
    "misinformation",
    "illegal_goods",
    "ip_infringement",
    "minor_safety",
)


@dataclass(frozen=True)
class TrendParams:
    min_baseline_days: int = 14
    zscore_threshold: float = 3.0
    min_volume: float = 20.0
    window_days: int = 28  # baseline window ds-28 .. ds-1

    @property
    def history_days(self) -> int:
        """Days before ds a trend reads: the baseline window, and never less than the week that
        the 7-day mean (ds-6..ds) and the week-ago value (ds-7) need, whatever the window."""
        return max(self.window_days, 7)


@dataclass(frozen=True)
class OffenderParams:
    min_violations: int = 3
    window_days: int = 30  # ds-29 .. ds


@dataclass(frozen=True)
class Params:
    """Everything a transform needs besides frames. `ds` is the partition being computed."""

    ds: dt.date
    sla_s: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SLA_S))
    default_sla_s: float = 86400.0
    proactive_sources: tuple[str, ...] = ("ml_model", "rule_engine", "proactive_sweep")
    taxonomy: tuple[str, ...] = DEFAULT_TAXONOMY
    trends: TrendParams = field(default_factory=TrendParams)
    offenders: OffenderParams = field(default_factory=OffenderParams)


EPOCH = dt.date(1970, 1, 1)
US_PER_DAY = 86_400_000_000
US_PER_S = 1_000_000


def epoch_day(day: dt.date) -> int:
    """Days since 1970-01-01, to compare with `<ts>_us // US_PER_DAY` without any engine date function."""
    return (day - EPOCH).days


_Recorded = TypeVar("_Recorded", "TrendParams", "OffenderParams")


def from_recorded(cls: type[_Recorded], recorded: object) -> _Recorded:
    """Parameters as a manifest recorded them: the fields this version knows, each missing one at
    its default. A manifest written by another version (a field added or dropped since) still
    describes its tables; all-or-nothing, one unknown key turned every recorded value into a default."""
    if not isinstance(recorded, dict):
        return cls()
    return cls(**{f.name: recorded[f.name] for f in fields(cls) if f.name in recorded})


def recorded_params(params: Params) -> dict[str, dict]:
    """`params` as a manifest records them (`trends`, `offenders`, and the rest as `job`, without ds),
    in JSON's types."""
    job = asdict(params)
    return {
        "trends": job.pop("trends"),
        "offenders": job.pop("offenders"),
        "job": {k: list(v) if isinstance(v, tuple) else v for k, v in job.items() if k != "ds"},
    }
