"""Reading the report indexes' rows in tests: each row is `<tr data-day="D" ...>`, its header cell
the day (linked to its page, if it has one)."""

from __future__ import annotations

import datetime as dt
import re

_ROW = re.compile(r'<tr[^>]*\bdata-day="(\d{4}-\d{2}-\d{2})"(?: data-until="(\d{4}-\d{2}-\d{2})")?[^>]*>(.*?)</tr>', re.S)


def index_rows(index_html: str) -> list[tuple[str, str]]:
    """(day, the row's cells) in page order; a run of days without data is "A to B" when A != B."""
    rows = []
    for day, until, cells in _ROW.findall(index_html):
        rows.append((day if not until or until == day else f"{day} to {until}", cells))
    return rows


def index_row(index_html: str, day: dt.date | str) -> str:
    """The cells of `day`'s row; fails the test when the index does not list it."""
    found = [cells for d, cells in index_rows(index_html) if d == str(day)]
    assert len(found) == 1, f"{day} is listed {len(found)} times in the index"
    return found[0]
