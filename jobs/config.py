"""The TOML configuration file and its documented defaults.

Every key is optional. An unknown section or key, a value of the wrong type or one outside its
allowed range is a usage error (exit 2, one line naming `section.key`), never ignored, so a typo
cannot silently fall back to a default and a bad value cannot cost a day's compute before failing.
[sla_s] takes any queue name (queues are added upstream) but an empty or space-padded one; a queue
that is not one of the defaults is named in a note (Config.notes, printed by the CLI on stderr).
An integer key takes a TOML integer only: `window_days = 7.9` and also `window_days = 7.0` are
refused, never truncated. A number key takes a TOML integer or float; nan and ±inf are refused.
The allowed ranges are the table RULES below; riskinsight.example.toml lists every key with its
default, meaning and range (tests keep this list, that file, RULES and the dataclasses in step).

    [sla_s]                 # seconds per queue, over these defaults; other queues get default_sla_s
    live_realtime = 300
    live_escalation = 900
    video_standard = 43200
    comments = 86400
    account_review = 86400
    [job]
    default_sla_s = 86400
    proactive_sources = ["ml_model", "rule_engine", "proactive_sweep"]
    taxonomy = ["violent_extremism", "hate_speech", ...]
    [trends]
    min_baseline_days = 14
    zscore_threshold = 3.0
    min_volume = 20
    window_days = 28
    [offenders]
    min_violations = 3
    window_days = 30
    [dq]                    # see expectations/thresholds.py
    quarantine_rate_critical = 0.01
    quarantine_rate_warning = 0.001
    volume_low = 0.5
    volume_high = 2.0
    volume_trailing_days = 7
    unknown_rate_warning = 0.0
    action_mismatch_rate_warning = 0.0
    duplicates_rate_warning = 0.001
    occupancy_max = 1.0
    [report]
    pseudonym_key = "..."   # no default; $RISKINSIGHT_PSEUDONYM_KEY wins over it; neither: a fixed demo key
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expectations.thresholds import DQThresholds
from jobs.errors import UsageError
from transforms.params import DEFAULT_SLA_S, EPOCH, OffenderParams, Params, TrendParams
from transforms.schemas import UNKNOWN


@dataclass(frozen=True)
class Config:
    # The transforms' parameters for any day; `params(ds)` fills in the day.
    job: Params = field(default_factory=lambda: Params(ds=EPOCH))
    dq: dict[str, float] = field(default_factory=dict)
    pseudonym_key: str | None = None
    source: str = "defaults"  # the file's absolute path
    sha256: str | None = None  # of the file's bytes: the record outlives edits to the file
    # One line each for the operator (the CLI prints them as `riskinsight: note: ...`): what the file
    # sets that is allowed but may be a mistake.
    notes: tuple[str, ...] = field(default=(), compare=False)

    def params(self, ds: dt.date) -> Params:
        return dataclasses.replace(self.job, ds=ds, sla_s=dict(self.job.sla_s))

    def dq_thresholds(self) -> DQThresholds:
        return DQThresholds(**_checked("dq", self.dq))


# ------------------------------------------------------------------ the allowed values of every key
def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


@dataclass(frozen=True)
class Number:
    """A finite number in [low, high] (low excluded when low_open); `integer`: a TOML integer only."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    integer: bool = False

    def allowed(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        low, high = (None if b is None else f"{b:d}" if self.integer else f"{b:g}" for b in (self.low, self.high))
        if low is not None and high is not None and not self.low_open:
            return f"{kind} from {low} to {high}"
        bounds = [f"{'>' if self.low_open else '>='} {low}" if low is not None else "", f"<= {high}" if high is not None else ""]
        return " ".join([kind, " and ".join(b for b in bounds if b)]).strip()

    def check(self, value: Any, where: str) -> int | float:
        if self.integer:
            if isinstance(value, bool) or not isinstance(value, int):
                raise UsageError(f"config: {where} must be an integer, got {_shown(value)}")
            number: float = value
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise UsageError(f"config: {where} must be a number, got {_shown(value)}")
            try:
                number = float(value)
            except OverflowError:  # a TOML integer too large for a float
                number = math.inf
        if (
            (not self.integer and not math.isfinite(number))
            or (self.low is not None and (number <= self.low if self.low_open else number < self.low))
            or (self.high is not None and number > self.high)
        ):
            raise UsageError(f"config: {where} = {_shown(value)} is out of range (allowed: {self.allowed()})")
        return number


@dataclass(frozen=True)
class Strings:
    """A list of non-empty strings; `required`: at least one."""

    required: bool = False

    def allowed(self) -> str:
        return f"a {'non-empty ' if self.required else ''}list of non-empty strings"

    def check(self, value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UsageError(f"config: {where} must be a list of strings")
        if (self.required and not value) or not all(value):
            raise UsageError(f"config: {where} = {_shown(value)} is out of range (allowed: {self.allowed()})")
        return tuple(value)


@dataclass(frozen=True)
class Text:
    """A non-empty string. Its value is never echoed: it may be a secret."""

    def allowed(self) -> str:
        return "a non-empty string"

    def check(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise UsageError(f"config: {where} must be a string")
        if not value:
            raise UsageError(f"config: {where} = '' is out of range (allowed: {self.allowed()}; leave the key out instead)")
        return value


# Day windows are subtracted from ds as dates: beyond ten years is a typo, and a huge count would
# only fail later (date out of range) after a day's work.
MAX_DAYS = 3660
# jobs.nightly.TRAILING_DAYS: the gate is given the raw volumes of at most 7 earlier published days,
# so a longer volume window would silently be 7 (a test keeps the two equal).
MAX_VOLUME_TRAILING_DAYS = 7
_POSITIVE = Number(0, low_open=True)  # SLA seconds, thresholds where 0 would flag everything
_NON_NEGATIVE = Number(0)
_RATE = Number(0, 1)  # a share of rows: 0 means any one row warns/fails, 1 means never
_DAYS = Number(1, MAX_DAYS, integer=True)

# Every key of every section; "sla_s.*" is any queue. The one place the types and ranges are decided.
RULES: dict[str, Number | Strings | Text] = {
    "sla_s.*": _POSITIVE,
    "job.default_sla_s": _POSITIVE,
    "job.proactive_sources": Strings(),  # may be empty: no source counts as proactive
    "job.taxonomy": Strings(required=True),  # empty: every violation would be an unknown category
    # A z-score needs the spread (ddof=1) of at least two baseline days; 0 or 1 would silently mean 2.
    "trends.min_baseline_days": Number(2, MAX_DAYS, integer=True),
    "trends.zscore_threshold": _POSITIVE,  # 0 would call every key with any variation an anomaly
    "trends.min_volume": _NON_NEGATIVE,  # 0: no volume floor
    "trends.window_days": _DAYS,  # baseline ds-window_days .. ds-1
    "offenders.min_violations": Number(1, 2**63 - 1, integer=True),  # compared with an Int64 count
    "offenders.window_days": _DAYS,  # ds-(window_days-1) .. ds
    "dq.quarantine_rate_critical": _RATE,
    "dq.quarantine_rate_warning": _RATE,
    "dq.volume_low": _NON_NEGATIVE,  # ratio of today's raw rows to the trailing mean; 0: never low
    "dq.volume_high": _POSITIVE,
    "dq.volume_trailing_days": Number(1, MAX_VOLUME_TRAILING_DAYS, integer=True),  # 0 refused: the check would never run
    "dq.unknown_rate_warning": _RATE,
    "dq.action_mismatch_rate_warning": _RATE,
    "dq.duplicates_rate_warning": _RATE,
    "dq.occupancy_max": _POSITIVE,  # handle time / logged-in time; 0 would warn on every reviewer
    "report.pseudonym_key": Text(),  # "" would silently mean the public demo key
}
# (smaller, larger) keys of one section: otherwise no z-score can ever be computed (so no anomaly
# flagged), every day's volume is out of its range, or a quarantine rate fails the day before it
# ever warns.
ORDERED = (
    ("trends.min_baseline_days", "trends.window_days"),
    ("dq.volume_low", "dq.volume_high"),
    ("dq.quarantine_rate_warning", "dq.quarantine_rate_critical"),
)
DEFAULTS: dict[str, Any] = {
    **{f"trends.{f.name}": f.default for f in dataclasses.fields(TrendParams)},
    **{f"offenders.{f.name}": f.default for f in dataclasses.fields(OffenderParams)},
    **{f"dq.{f.name}": f.default for f in dataclasses.fields(DQThresholds)},
}


def _keys(section: str) -> set[str]:
    return {k.split(".", 1)[1] for k in RULES if k.split(".", 1)[0] == section}


def _checked(section: str, values: dict[str, Any]) -> dict[str, Any]:
    """The section's values, typed and range-checked by RULES; unknown keys refused."""
    if f"{section}.*" not in RULES:
        unknown = sorted(set(values) - _keys(section))
        if unknown:
            raise UsageError(f"config: unknown key(s) in [{section}]: {', '.join(unknown)}")
    typed = {k: RULES.get(f"{section}.{k}", RULES.get(f"{section}.*")).check(v, f"{section}.{k}") for k, v in values.items()}
    for small, large in ORDERED:
        if small.split(".")[0] == section:
            a, b = (typed.get(k.split(".")[1], DEFAULTS[k]) for k in (small, large))
            if a > b:
                raise UsageError(f"config: {small} = {a!r} is out of range (allowed: at most {large} = {b!r})")
    return typed


SECTIONS = {"sla_s", "job", "trends", "offenders", "dq", "report"}


def load_config(path: str | Path | None) -> Config:
    if path is None:
        return Config()
    path = Path(path)
    try:
        data = path.read_bytes()
        raw = tomllib.loads(data.decode("utf-8"))
    except FileNotFoundError:
        raise UsageError(f"config: file not found: {path}") from None
    except OSError as exc:  # a directory, no read permission, ...
        raise UsageError(f"config: cannot read {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"config: {path} is not valid TOML: {exc}") from None
    try:
        return _from_toml(raw, path, data)
    except UsageError as exc:
        # The on-call sees one line, often from a scheduler that passed --config for them: which file.
        raise UsageError(f"{exc} (in {path})") from None


def _from_toml(raw: dict, path: Path, data: bytes) -> Config:
    unknown = sorted(set(raw) - SECTIONS)
    if unknown:
        raise UsageError(f"config: unknown section(s): {', '.join(unknown)}")
    for name, section in raw.items():
        if not isinstance(section, dict):
            raise UsageError(f"config: [{name}] must be a table")
    sections = {name: _checked(name, raw.get(name, {})) for name in sorted(SECTIONS)}
    for queue in sections["sla_s"]:
        if not queue or queue != queue.strip():
            raise UsageError(f"config: [sla_s] {queue!r} is not a queue name (empty, or spaces around it)")
        if queue == UNKNOWN:
            # Staging groups a null queue as UNKNOWN; DESIGN gives those decisions default_sla_s.
            raise UsageError(f"config: [sla_s] {UNKNOWN} is where decisions without a queue are grouped; "
                             "set their SLA with [job] default_sla_s")
    notes = []
    if new_queues := [q for q in sections["sla_s"] if q not in DEFAULT_SLA_S]:
        # Any queue may be given an SLA (queues are added upstream), so this is not an error; but a
        # misspelt queue (live_realtme) would leave the real one at its default without a word.
        notes.append(f"config: [sla_s] {', '.join(new_queues)}: not among the default queues "
                     f"({', '.join(DEFAULT_SLA_S)}); check the spelling, a misspelt queue keeps its default")

    defaults = Params(ds=EPOCH)
    job = sections["job"]
    return Config(
        job=Params(
            ds=EPOCH,
            sla_s={**DEFAULT_SLA_S, **sections["sla_s"]},
            default_sla_s=job.get("default_sla_s", defaults.default_sla_s),
            proactive_sources=job.get("proactive_sources", defaults.proactive_sources),
            taxonomy=job.get("taxonomy", defaults.taxonomy),
            trends=TrendParams(**sections["trends"]),
            offenders=OffenderParams(**sections["offenders"]),
        ),
        dq=sections["dq"],
        pseudonym_key=sections["report"].get("pseudonym_key"),
        source=os.path.abspath(path),
        sha256=hashlib.sha256(data).hexdigest(),
        notes=tuple(notes),
    )
