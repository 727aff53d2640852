"""Number formatting for tiles and tables (jinja filters); fixed formats keep output deterministic."""

from __future__ import annotations

import math


def _missing(x: object) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt_int(x: float | int | None) -> str:
    if _missing(x):
        return "–"
    return f"{int(round(float(x))):,}"


def fmt_float(x: float | None, digits: int = 2) -> str:
    if _missing(x):
        return "–"
    return f"{float(x):,.{digits}f}"


def fmt_pct(x: float | None, digits: int = 1) -> str:
    if _missing(x):
        return "–"
    return f"{100.0 * float(x):.{digits}f}%"


def fmt_signed_pct(x: float | None, digits: int = 1) -> str:
    if _missing(x):
        return "–"
    return f"{100.0 * float(x):+.{digits}f}%"


def fmt_pp(x: float | None, digits: int = 1) -> str:
    """A difference of two rates, in percentage points."""
    if _missing(x):
        return "–"
    return f"{100.0 * float(x):+.{digits}f} pp"


def fmt_seconds(x: float | None) -> str:
    if _missing(x):
        return "–"
    s = float(x)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        m, sec = divmod(int(round(s)), 60)
        return f"{m}m {sec:02d}s"
    if s < 86400:
        h, rem = divmod(int(round(s)), 3600)
        return f"{h}h {rem // 60:02d}m"
    d, rem = divmod(int(round(s)), 86400)
    return f"{d}d {rem // 3600:02d}h"


def fmt_kpi_value(x: float | None, kind: str) -> str:
    if kind == "count":
        return fmt_int(x)
    if kind == "rate":
        return fmt_pct(x)
    return fmt_seconds(x)


FILTERS = {
    "fmt_int": fmt_int,
    "fmt_float": fmt_float,
    "fmt_pct": fmt_pct,
    "fmt_signed_pct": fmt_signed_pct,
    "fmt_pp": fmt_pp,
    "fmt_seconds": fmt_seconds,
    "fmt_kpi": fmt_kpi_value,
}
