"""Expected failures: each carries the process exit code and prints as one line (DESIGN §6)."""

from __future__ import annotations


class RiskInsightError(Exception):
    exit_code = 1


class UsageError(RiskInsightError):
    """Bad arguments or configuration."""

    exit_code = 2


class DQGateFailed(RiskInsightError):
    """A critical expectation failed: nothing was published for that ds."""

    exit_code = 3


class InputMissing(RiskInsightError):
    """An input partition, its _SUCCESS marker, or a readable file is missing."""

    exit_code = 4


class InputUnreadable(InputMissing):
    """An input file exists but cannot be read as the contract says (corrupt, wrong schema)."""


class EngineFailed(RiskInsightError):
    """The engine could not compute a table (a resource limit, a lost executor): nothing was written."""

    exit_code = 1


class LockHeld(RiskInsightError):
    """Another run of the same (output, ds) holds the lock."""

    exit_code = 5


class CandidateReplaced(LockHeld):
    """Another run of the same (output, ds) prepared its candidate over this run's since."""


class CandidateMissing(RiskInsightError):
    """No candidate of ds is prepared (or none of the run asked for): only a new prepare makes one."""


class WarehouseUnavailable(RiskInsightError):
    """The warehouse's filesystem refused an operation (unknown scheme, permissions, lost namenode)."""

    exit_code = 1


class WarehouseConflict(RiskInsightError):
    """The warehouse holds something publishing did not make (a real directory where a link belongs)."""

    exit_code = 1


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (Polars and Spark append plans and traces)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# Failed days a range's final error names one by one; the rest are counted, with their first and
# last day (every failed day has had its own `D: FAILED: ...` line on stderr already).
NAMED_FAILURES = 5


def range_failure(failures: list[tuple[object, RiskInsightError]]) -> RiskInsightError:
    """The error a range of days ends with: the first day's (its type, so its exit code), naming
    the other days that failed (the first few, then how many more and from when to when). A failed
    day does not stop the days after it."""
    first = failures[0][1]
    if len(failures) == 1:
        return first
    others = [str(day) for day, _ in failures[1:]]
    named = ", ".join(others[:NAMED_FAILURES])
    if len(others) > NAMED_FAILURES:
        rest = others[NAMED_FAILURES:]
        named += f" and {len(rest)} more, {rest[0]}..{rest[-1]}" if len(rest) > 1 else f", {rest[0]}"
    return type(first)(f"{first} (also failed: {named})")
