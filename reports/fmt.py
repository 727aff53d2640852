"""Number formatting for tiles and tables (jinja filters); fixed formats keep output deterministic.

One rounding rule throughout: a value is rounded (half up) to the unit it is displayed in, and the
unit is chosen from the rounded value, so 59.97 s reads "1m 00s" rather than "60.0 s" and 11,879 s
reads "3h 18m". A signed change that rounds to zero prints without a sign ("0.0 pp", never "-0.0 pp").
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Context, Decimal


def _missing(x: object) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _half_up(x: float) -> int:
    """x rounded to the nearest integer, halves away from zero (not Python's round-half-even)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


# Enough digits for any float's integer part (up to 309), so quantize never runs out of precision.
_DECIMAL = Context(prec=400, rounding=ROUND_HALF_UP)


def _decimal(x: float | int, scale: int = 1) -> Decimal:
    """x times `scale` exactly, from the float as it prints (its shortest repr): 2.675 rounds as the
    2.675 it reads as, not as the binary 2.67499999... it is stored as, and 100 x 1/16 is 6.25."""
    d = Decimal(x) if isinstance(x, int) else Decimal(repr(float(x)))
    return d * scale


def _fixed(d: Decimal, digits: int, spec: str = ",") -> str:
    """d rounded half up (halves away from zero) to `digits` decimals. Python's own formatting and
    round() go half to even ("6.2%" for 6.25%, 2 for 2.5): not what a reader rounding by hand gets."""
    if not d.is_finite():
        return f"{float(d):{spec}.{digits}f}"
    return f"{d.quantize(Decimal(1).scaleb(-digits), context=_DECIMAL):{spec}.{digits}f}"


def fmt_int(x: float | int | None) -> str:
    if _missing(x):
        return "–"
    return _fixed(_decimal(x), 0)


def fmt_float(x: float | None, digits: int = 2) -> str:
    if _missing(x):
        return "–"
    return _fixed(_decimal(x), digits)


def fmt_pct(x: float | None, digits: int = 1) -> str:
    if _missing(x):
        return "–"
    return _fixed(_decimal(x, 100), digits, "") + "%"


def _signed(value: Decimal, digits: int, suffix: str) -> str:
    text = _fixed(value, digits, "+")
    if float(text) == 0.0:  # "+0.0" / "-0.0": no change at the shown precision, so no direction either
        text = text[1:]
    return text + suffix


def fmt_signed_pct(x: float | None, digits: int = 1) -> str:
    if _missing(x):
        return "–"
    return _signed(_decimal(x, 100), digits, "%")


def fmt_pp(x: float | None, digits: int = 1) -> str:
    """A difference of two rates, in percentage points."""
    if _missing(x):
        return "–"
    return _signed(_decimal(x, 100), digits, " pp")


def fmt_seconds(x: float | None) -> str:
    """A duration: "12.3 s", "4m 05s", "3h 18m", "2d 07h", each rounded to its last unit shown."""
    if _missing(x):
        return "–"
    s = float(x)
    if s < 0:
        return "-" + fmt_seconds(-s)
    tenths = _half_up(s * 10)
    if tenths < 600:
        return f"{tenths // 10}.{tenths % 10} s"
    secs = _half_up(s)
    if secs < 3600:
        return f"{secs // 60}m {secs % 60:02d}s"
    mins = _half_up(s / 60)
    if mins < 24 * 60:
        return f"{mins // 60}h {mins % 60:02d}m"
    hours = _half_up(s / 3600)
    return f"{hours // 24}d {hours % 24:02d}h"


def fmt_kpi_value(x: float | None, kind: str) -> str:
    if kind == "count":
        return fmt_int(x)
    if kind == "rate":
        return fmt_pct(x)
    return fmt_seconds(x)


def _significant(x: float, sig: int) -> str:
    """x with `sig` significant digits, in plain decimal notation (no exponent), trailing zeros kept."""
    if x == 0:
        return "0"
    decimals = max(0, sig - 1 - math.floor(math.log10(abs(x))))
    return _fixed(_decimal(x), decimals)


def fmt_distinct(x: float, limits: tuple[float, ...] = (), sig: int = 3) -> str:
    """x with `sig` significant digits, or as many more as it takes not to read equal to a limit it
    is not equal to: a rate of 0.10004% against a threshold of 0.1% reads "0.10004", not "0.100"."""
    # A limit computed in floats (100 * 0.0007) is compared as written (0.07).
    written = [float(f"{t:.12g}") for t in limits if x != t]
    for digits in range(sig, 18):
        text = _significant(x, digits)
        if all(float(text.replace(",", "")) != t for t in written):
            return text
    return repr(x)


def fmt_rate_observed(x: float, thresholds: tuple[float, ...] = ()) -> str:
    """A rate (a share, 0..1) checked against thresholds (shares too), as a percentage."""
    return fmt_distinct(100.0 * x, tuple(100.0 * t for t in thresholds)) + "%"


# Integers of 4 or more digits standing alone in prose ("3 of 21383 staged rows"), not parts of
# dates, times, ids, versions or decimals' fractions.
_PROSE_INT = re.compile(r"(?<![\w.:/\-+=])(\d{4,})(?=(\.\d+)?(?![\w:/\-]|\.\d))")


# Where a sentence turns into quoted data (a sample of unexpected values, a dict or list dumped
# as it was): from there on the digits are values, shown as they are.
_DATA_START = re.compile(r"e\.g\.|[\[{]")


def thousands_in_text(text: str) -> str:
    """Thousands separators in the counts of a sentence: "3 of 21383" -> "3 of 21,383"."""
    m = _DATA_START.search(text)
    prose, data = (text[: m.start()], text[m.start():]) if m else (text, "")
    return _PROSE_INT.sub(lambda m: f"{int(m.group(1)):,}", prose) + data


FILTERS = {
    "fmt_int": fmt_int,
    "fmt_float": fmt_float,
    "fmt_pct": fmt_pct,
    "fmt_signed_pct": fmt_signed_pct,
    "fmt_pp": fmt_pp,
    "fmt_seconds": fmt_seconds,
    "fmt_kpi": fmt_kpi_value,
}
