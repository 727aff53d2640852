"""What the gate returns: one result per expectation and the verdict over them (dq.json, DESIGN §4)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["critical", "warning"]
Verdict = Literal["pass", "warn", "fail"]
CRITICAL: Severity = "critical"
WARNING: Severity = "warning"


@dataclass
class ExpectationResult:
    table: str
    expectation: str
    severity: Severity
    success: bool
    observed_value: Any  # JSON-serialisable: a number, a string, a small list, or None
    details: str = ""
    # The bounds the observed figure is checked against, where observed_value is that figure (an
    # input rate, a volume ratio, a column sum or max); None: unbounded on that side, or a check
    # whose observed_value counts the rows that broke a per-row rule.
    min_value: float | None = None
    max_value: float | None = None

    @property
    def key(self) -> str:
        return f"{self.table}.{self.expectation}"


@dataclass
class GateResult:
    results: list[ExpectationResult] = field(default_factory=list)

    def critical_failures(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.success and r.severity == CRITICAL]

    def warnings(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.success and r.severity == WARNING]

    @property
    def verdict(self) -> Verdict:
        if self.critical_failures():
            return "fail"
        if self.warnings():
            return "warn"
        return "pass"

    def summary(self) -> dict[str, Any]:
        """The `dq` block of manifest.json."""
        return {
            "verdict": self.verdict,
            "critical_failed": [r.key for r in self.critical_failures()],
            "warnings": [r.key for r in self.warnings()],
        }

    def to_json(self, ds: str | None = None) -> dict[str, Any]:
        """dq.json (docs/INTERFACES.md): every expectation, in suite order, with its observed value."""
        out: dict[str, Any] = {} if ds is None else {"ds": ds}
        out["verdict"] = self.verdict
        out["results"] = [asdict(r) for r in self.results]
        return out
