"""A synthetic DSA daily dump in the official nested-zip layout, written streaming (scale tests).

Rows are drawn from a small pool of realistic templates with fresh uuids and created_at times across
the day, so millions of rows cost little CPU; the file is built chunk by chunk into a temporary part
zip on disk and then streamed into the day zip, so memory stays flat whatever the size. The `.sha1`
sidecar is written as the Commission publishes it.

Known contents, for assertions: `dup_every` rows repeat the uuid of the previous chunk's first row
(a cross-chunk duplicate); `late_every` rows are created a month after the dump's day.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import random
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from jobs.dsa_ingest import NEW_HEADER, OLD_HEADER

PLATFORMS = ("TikTok", "Google Shopping", "Pinterest", "AliExpress", "Snapchat", "Facebook", "Instagram", "YouTube")
CATEGORIES = (
    "STATEMENT_CATEGORY_SCOPE_OF_PLATFORM_SERVICE", "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH",
    "STATEMENT_CATEGORY_PROTECTION_OF_MINORS", "STATEMENT_CATEGORY_SCAMS_AND_FRAUD",
    "STATEMENT_CATEGORY_PORNOGRAPHY_OR_SEXUALIZED_CONTENT", "STATEMENT_CATEGORY_VIOLENCE",
)  # fmt: skip
VISIBILITY = ("DECISION_VISIBILITY_CONTENT_REMOVED", "DECISION_VISIBILITY_CONTENT_DISABLED",
              "DECISION_VISIBILITY_CONTENT_DEMOTED", "DECISION_VISIBILITY_OTHER")  # fmt: skip
AUTOMATION = ("AUTOMATED_DECISION_FULLY", "AUTOMATED_DECISION_PARTIALLY", "AUTOMATED_DECISION_NOT_AUTOMATED")
SOURCES = ("SOURCE_VOLUNTARY", "SOURCE_ARTICLE_16", "SOURCE_TRUSTED_NOTIFIER", "SOURCE_TYPE_OTHER_NOTIFICATION")
TEXT = (
    "We proactively enforce our Community Guidelines through a mix of technology and human moderation. "
    "The content was found to violate the policy on {cat}. Für weitere Informationen siehe die Richtlinien, "
    'including the "Minimum Age Requirement", and an explanation, with commas, of the measure.'
)


@dataclass(frozen=True)
class SynthDump:
    path: Path
    rows: int  # CSV rows written, duplicates and late rows included
    duplicates: int
    late: int


def _templates(day: dt.date, rng: random.Random, new_header: bool, n: int = 256) -> list[dict[str, str]]:
    out = []
    for _ in range(n):
        cat = rng.choice(CATEGORIES)
        content_date = day - dt.timedelta(days=rng.choice((0, 0, 1, 2, 7, 30, 400)))
        row = {c: "" for c in (NEW_HEADER if new_header else OLD_HEADER)}
        row.update(
            decision_visibility=json.dumps([rng.choice(VISIBILITY)], separators=(",", ":")),
            decision_account=rng.choice(("", "", "", "DECISION_ACCOUNT_SUSPENDED", "DECISION_ACCOUNT_TERMINATED")),
            decision_ground=rng.choice(("DECISION_GROUND_INCOMPATIBLE_CONTENT",) * 4 + ("DECISION_GROUND_ILLEGAL_CONTENT",)),
            incompatible_content_ground="Community Guidelines",
            incompatible_content_explanation=TEXT.format(cat=cat.lower()),
            category=cat,
            content_type=json.dumps(["CONTENT_TYPE_VIDEO", "CONTENT_TYPE_TEXT"][: rng.randint(1, 2)], separators=(",", ":")),
            content_date=f"{content_date.isoformat()} 00:00:00",
            territorial_scope='["AT","BE","BG","CY","CZ","DE","DK","EE","ES","FI","FR"]',
            application_date=f"{day.isoformat()} 00:00:00",
            decision_facts="The decision was taken pursuant to own-initiative investigations.",
            source_type=rng.choice(SOURCES[:1] * 6 + SOURCES),
            automated_detection=rng.choice(("Yes", "Yes", "No")),
            automated_decision=rng.choice(AUTOMATION),
            platform_name=rng.choice(PLATFORMS),
        )
        out.append(row)
    return out


def write_dump(directory: Path, day: dt.date, *, parts: int, chunks_per_part: int, rows_per_chunk: int,
               seed: int = 7, dup_every: int = 0, late_every: int = 0) -> SynthDump:  # fmt: skip
    """Write `sor-global-<day>-full.zip` (+ `.sha1`) into `directory`."""
    rng = random.Random(seed)
    new_header = day >= dt.date(2025, 7, 1)
    header = NEW_HEADER if new_header else OLD_HEADER
    templates = _templates(day, rng, new_header)
    stem = f"sor-global-{day.isoformat()}-full"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}.zip"
    base = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    total = parts * chunks_per_part * rows_per_chunk
    serial = dups = late = 0
    prev_first_uuid: str | None = None
    scratch = Path(tempfile.mkdtemp(dir=directory))
    try:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as outer:
            for p in range(parts):
                inner_path = scratch / f"{stem}-{p:05d}.csv.zip"
                with zipfile.ZipFile(inner_path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as inner:
                    for c in range(chunks_per_part):
                        with inner.open(f"{stem}-{p:05d}-{c:05d}.csv", "w", force_zip64=True) as raw:
                            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                            w = csv.writer(text, lineterminator="\n")
                            w.writerow(header)
                            first_uuid = None
                            for _ in range(rows_per_chunk):
                                serial += 1
                                row = dict(templates[serial % len(templates)])
                                uuid = f"{serial:08x}-{seed:04x}-4000-8000-{serial * 2654435761 % 16**12:012x}"
                                if dup_every and prev_first_uuid and serial % dup_every == 0:
                                    uuid, dups = prev_first_uuid, dups + 1
                                first_uuid = first_uuid or uuid
                                created = base + dt.timedelta(microseconds=(serial * 86_400_000_000 // (total + 1)))
                                if late_every and serial % late_every == 0:
                                    created, late = created + dt.timedelta(days=30), late + 1
                                row["uuid"] = uuid
                                row["platform_uid"] = str(7_000_000_000_000_000_000 + serial)
                                row["created_at"] = created.strftime("%Y-%m-%d %H:%M:%S")
                                w.writerow(row.values())
                            text.flush()
                            text.detach()
                            prev_first_uuid = first_uuid
                outer.write(inner_path, arcname=inner_path.name)
                inner_path.unlink()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    path.with_name(path.name + ".sha1").write_text(f"{h.hexdigest()}  {path.name}", encoding="ascii")
    return SynthDump(path, total, dups, late)
