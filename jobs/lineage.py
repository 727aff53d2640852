"""Which published earlier days a day's history tables were built on, and which days are stale.

violation_trends and repeat_offenders of ds read the published violation_daily and
creator_category_daily of the days before it. When one of those days is published anew with other
contents (a rerun with late rows, a backfill run after ds, a day published while ds computed), ds's
tables describe data that is no longer there. Each run records what it read (the manifest's
`history`: per table, the days of its window and a digest of each day's table as it was then), so
that any later reader can tell which published days are stale and which days to rerun.

A day's table is identified by the sha256 its own manifest records of the file (`table_sha256`),
not by its publication's version: a rerun that writes the same bytes (DESIGN §6) leaves the days
after it valid. Publications from before digests were recorded are identified by their version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from pathlib import Path

from jobs import warehouse as wh
from transforms.params import Params

# Digested when a run writes its tables: what a later day's history reads of it.
HISTORY_TABLES = ("violation_daily", "creator_category_daily")


def history_days(params: Params) -> dict[str, int]:
    """table -> how many days before ds the history reads of it (ds-n .. ds-1)."""
    return {
        "violation_daily": params.trends.history_days,
        "creator_category_daily": params.offenders.window_days - 1,
    }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _span(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _local(output: Path | str) -> Path:
    """A URI warehouse has no `current` links to read: every day would read as unpublished and
    nothing as stale. Its runs check a local copy of its manifests (RemoteRun.stale_note)."""
    if wh.is_uri(output):
        raise ValueError(f"{output}: lineage reads a local warehouse, not a URI")
    return Path(output)


class _Published:
    """What is published now, read once per day (a check of many days reads each day once)."""

    def __init__(self, output: Path | str) -> None:
        self.output = _local(output)
        self._days: dict[dt.date, tuple[str | None, dict | None]] = {}

    def _day(self, day: dt.date) -> tuple[str | None, dict | None]:
        """(version, manifest) of the publication in place; (None, None) where day is unpublished."""
        if day not in self._days:
            version = wh.current_version(self.output, day)
            manifest = wh.read_json(wh.published_run_file(self.output, day, "manifest.json")) if version else None
            self._days[day] = (version, manifest)
        return self._days[day]

    def manifest(self, day: dt.date) -> dict | None:
        return self._day(day)[1]

    def token(self, day: dt.date, table: str) -> str | None:
        """The published table's identity on `day`: its digest, else its version; None if unpublished."""
        version, manifest = self._day(day)
        if version is None:
            return None
        digest = ((manifest or {}).get("table_sha256") or {}).get(table)
        return digest or f"version:{version}"


def record(output: Path, ds: dt.date, params: Params) -> dict:
    """The manifest's `history`: per history table, its window and each published day's identity.

    Taken before the tables are read: a day republished in between then shows as changed (ds is
    reported stale, and a rerun is suggested) rather than a change going unnoticed."""
    published = _Published(output)
    out = {}
    for table, days in history_days(params).items():
        first, last = ds - dt.timedelta(days=days), ds - dt.timedelta(days=1)
        tokens = {d.isoformat(): t for d in _span(first, last) if (t := published.token(d, table)) is not None}
        out[table] = {"first": first.isoformat(), "last": last.isoformat(), "read": tokens}
    return out


def changed_inputs(published: _Published, manifest: dict) -> list[dt.date]:
    """The days whose published history tables differ from what `manifest`'s run read."""
    changed: set[dt.date] = set()
    for table, seen in (manifest.get("history") or {}).items():
        first, last = dt.date.fromisoformat(seen["first"]), dt.date.fromisoformat(seen["last"])
        for day in _span(first, last):
            if published.token(day, table) != seen["read"].get(day.isoformat()):
                changed.add(day)
    return sorted(changed)


def stale_days(output: Path | str, days: Iterable[dt.date]) -> dict[dt.date, list[dt.date]]:
    """Published days among `days` whose history tables were built on other tables of earlier days
    than those published now: day -> those earlier days. A day whose manifest predates the record
    is not judged."""
    published = _Published(output)
    out = {}
    for day in sorted(set(days)):
        manifest = published.manifest(day)
        if manifest and (changed := changed_inputs(published, manifest)):
            out[day] = changed
    return out


def stale_after(output: Path | str, first: dt.date, last: dt.date, params: Params) -> dict[dt.date, list[dt.date]]:
    """stale_days over the published days a run of first..last can have made stale: those days
    themselves (another day published while they computed) and every day whose history window
    reaches back into them."""
    reach = max(history_days(params).values())
    candidates = [d for d in wh.published_days(_local(output), "violation_daily") if first <= d <= last + dt.timedelta(days=reach)]
    return stale_days(output, candidates)


def stale_note(output: Path | str, days: list[dt.date], params: Params) -> str | None:
    """After a run of `days`: the one line naming the published days it left stale, or None."""
    stale = stale_after(output, min(days), max(days), params)
    return rerun_hint(stale) if stale else None


def rerun_hint(stale: dict[dt.date, list[dt.date]]) -> str:
    """One line naming the stale days and the range that refreshes them."""
    days = sorted(stale)
    changed = sorted({d for earlier in stale.values() for d in earlier})
    shown = ", ".join(d.isoformat() for d in days[:5]) + (f" and {len(days) - 5} more" if len(days) > 5 else "")
    return (
        f"{len(days)} published day(s) were built on earlier tables of {', '.join(d.isoformat() for d in changed[:5])}"
        f"{' …' if len(changed) > 5 else ''} than those published now: {shown}; their violation_trends and "
        f"repeat_offenders are stale until rerun (run --start {days[0]} --end {days[-1]})"
    )
