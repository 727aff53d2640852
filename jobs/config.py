"""The TOML configuration file and its documented defaults.

Every key is optional; an unknown key or a wrong type is a usage error (exit 2), never ignored,
so a typo cannot silently fall back to a default.

    [sla_s]                 # seconds per queue; other queues get default_sla_s
    live_realtime = 300
    [job]
    default_sla_s = 86400
    proactive_sources = ["ml_model", "rule_engine", "proactive_sweep"]
    taxonomy = ["hate_speech", ...]
    [trends]
    min_baseline_days = 14
    zscore_threshold = 3.0
    min_volume = 20
    [offenders]
    min_violations = 3
    window_days = 30
    [dq]                    # see expectations/thresholds.py
    quarantine_rate_critical = 0.01
    [report]
    pseudonym_key = "..."   # else $RISKINSIGHT_PSEUDONYM_KEY, else a fixed demo key
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.errors import UsageError
from transforms.params import DEFAULT_SLA_S, EPOCH, OffenderParams, Params, TrendParams


@dataclass(frozen=True)
class Config:
    # The transforms' parameters for any day; `params(ds)` fills in the day.
    job: Params = field(default_factory=lambda: Params(ds=EPOCH))
    dq: dict[str, float] = field(default_factory=dict)
    pseudonym_key: str | None = None
    source: str = "defaults"

    def params(self, ds: dt.date) -> Params:
        return dataclasses.replace(self.job, ds=ds, sla_s=dict(self.job.sla_s))

    def dq_thresholds(self) -> Any:
        from expectations.thresholds import DQThresholds

        return _build(DQThresholds, self.dq, "dq")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"config: {where} must be a number, got {value!r}")
    return float(value)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"config: {where} must be a list of strings")
    return tuple(value)


def _build(cls: type, values: dict[str, Any], section: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UsageError(f"config: unknown key(s) in [{section}]: {', '.join(unknown)}")
    typed = {}
    for name, value in values.items():
        default = known[name].default
        typed[name] = int(_number(value, f"{section}.{name}")) if isinstance(default, int) and not isinstance(default, bool) else _number(value, f"{section}.{name}")
    return cls(**typed)


SECTIONS = {"sla_s", "job", "trends", "offenders", "dq", "report"}


def load_config(path: str | Path | None) -> Config:
    if path is None:
        return Config()
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"config: file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"config: {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(raw) - SECTIONS)
    if unknown:
        raise UsageError(f"config: unknown section(s): {', '.join(unknown)}")
    for name, section in raw.items():
        if not isinstance(section, dict):
            raise UsageError(f"config: [{name}] must be a table")

    sla = dict(DEFAULT_SLA_S)
    sla.update({q: _number(v, f"sla_s.{q}") for q, v in raw.get("sla_s", {}).items()})
    job = raw.get("job", {})
    unknown_job = sorted(set(job) - {"default_sla_s", "proactive_sources", "taxonomy"})
    if unknown_job:
        raise UsageError(f"config: unknown key(s) in [job]: {', '.join(unknown_job)}")
    report = raw.get("report", {})
    if set(report) - {"pseudonym_key"}:
        raise UsageError(f"config: unknown key(s) in [report]: {', '.join(sorted(set(report) - {'pseudonym_key'}))}")
    if "pseudonym_key" in report and not isinstance(report["pseudonym_key"], str):
        raise UsageError("config: report.pseudonym_key must be a string")
    dq = raw.get("dq", {})
    for k, v in dq.items():
        _number(v, f"dq.{k}")
    defaults = Params(ds=EPOCH)
    config = Config(
        job=Params(
            ds=EPOCH,
            sla_s=sla,
            default_sla_s=_number(job.get("default_sla_s", defaults.default_sla_s), "job.default_sla_s"),
            proactive_sources=_strings(job.get("proactive_sources", list(defaults.proactive_sources)), "job.proactive_sources"),
            taxonomy=_strings(job.get("taxonomy", list(defaults.taxonomy)), "job.taxonomy"),
            trends=_build(TrendParams, raw.get("trends", {}), "trends"),
            offenders=_build(OffenderParams, raw.get("offenders", {}), "offenders"),
        ),
        dq=dict(dq),
        pseudonym_key=report.get("pseudonym_key"),
        source=str(path),
    )
    config.dq_thresholds()  # unknown or mistyped [dq] keys fail now, not after a day's compute
    return config
