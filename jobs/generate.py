"""`riskinsight generate`: realistic, deterministic synthetic moderation logs (DESIGN §2, §3, §9).

Writes `<output>/<table>/ds=D/part-00000.parquet` + `_SUCCESS` for decisions, appeals,
qa_audits and shifts, with exactly the columns and types of `transforms.schemas.INPUT_SCHEMAS`.
The same arguments give byte-identical files: every random stream is seeded from
(seed, day, stream, chunk) and nothing reads the clock. Big days are generated and written
`CHUNK_ROWS` rows at a time (row groups of one Parquet part), so memory stays bounded.

The distributions live in `jobs.generate_model`, the dirty rows in `jobs.generate_dirty`.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs import generate_model as gm
from jobs.errors import UsageError
from jobs.generate_dirty import inject, reasons
from transforms.schemas import INPUT_SCHEMAS


class GenerateArgumentError(UsageError, ValueError):
    """An argument generate() cannot honour: a ValueError to callers, a one-line usage error (exit 2)
    from the command line."""


CHUNK_ROWS = 2_000_000
TABLES = ("decisions", "appeals", "qa_audits", "shifts")
MAX_DIRTY_RATE = 0.2  # the CLI's --dirty-rate help and the README say "within 0..0.2": keep them in step

_ARROW_TYPES = {"String": pa.string(), "Float64": pa.float64(), "Int64": pa.int64(), "Date": pa.date32()}


def _arrow_type(dtype: object) -> pa.DataType:
    if str(dtype).startswith("Datetime"):
        return pa.timestamp("us", tz="UTC")
    return _ARROW_TYPES[str(dtype)]


ARROW_SCHEMAS: dict[str, pa.Schema] = {
    table: pa.schema([(name, _arrow_type(dtype)) for name, dtype in cols.items()])
    for table, cols in INPUT_SCHEMAS.items()
}


# ---------------------------------------------------------------- arrow conversion
def _validity(nulls: np.ndarray) -> pa.Buffer | None:
    # pa.array(..., mask=) converts the mask slowly; a packed bitmap is what Arrow stores anyway.
    return pa.py_buffer(np.packbits(~nulls, bitorder="little")) if nulls.any() else None


def _primitive(values: np.ndarray, nulls: np.ndarray, numpy_type: type, arrow_type: pa.DataType) -> pa.Array:
    data = np.ascontiguousarray(values, dtype=numpy_type)
    return pa.Array.from_buffers(arrow_type, len(data), [_validity(nulls), pa.py_buffer(data)])


def _codes(vocab: list[str], codes: np.ndarray) -> pa.Array:
    nulls = codes < 0
    return pc.take(pa.array(vocab, pa.string()), _primitive(np.where(nulls, 0, codes), nulls, np.int32, pa.int32()))


Part = bytes | tuple[np.ndarray, int] | tuple[np.ndarray, np.ndarray]


def _fixed_width(parts: list[Part], nulls: np.ndarray) -> pa.Array:
    """Fixed-width ASCII ids built as one byte matrix.

    A part is a constant, (non-negative ints, digits), or (codes, lookup matrix of equal-length
    byte strings). Arrow's string kernels (cast, lpad, join) cost seconds per 2M ids; these ids
    have a fixed width, so the offsets are an arange and the bytes a numpy matrix.
    """
    n = len(nulls)
    widths = [len(p) if isinstance(p, bytes) else p[1] if isinstance(p[1], int) else p[1].shape[1] for p in parts]
    buf = np.empty((n, sum(widths)), dtype=np.uint8)
    pos = 0
    for part, w in zip(parts, widths, strict=True):
        if isinstance(part, bytes):
            buf[:, pos : pos + w] = np.frombuffer(part, dtype=np.uint8)
        elif isinstance(part[1], np.ndarray):
            buf[:, pos : pos + w] = part[1][np.where(nulls, 0, part[0])]
        else:
            v = np.where(nulls, 0, part[0]).astype(np.int64)
            if n and v.max() >= 10**w:
                raise ValueError(f"id value {v.max()} does not fit {w} digits")
            for j in range(pos + w - 1, pos - 1, -1):
                buf[:, j] = 48 + v % 10
                v //= 10
        pos += w
    offsets = np.arange(0, (n + 1) * pos, pos, dtype=np.int32)
    validity = pa.py_buffer(np.packbits(~nulls, bitorder="little")) if nulls.any() else None
    return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(buf)])


def _ids(prefix: str, values: np.ndarray, digits: int) -> pa.Array:
    return _fixed_width([f"{prefix}-".encode(), (values, digits)], values < 0)


def _event_ids(prefix: str, day_ymd: np.ndarray, idx: np.ndarray) -> pa.Array:
    """`dec-20240131-000000042`: the id names its day, so ids never collide across days."""
    return _fixed_width([f"{prefix}-".encode(), (day_ymd, 8), b"-", (idx, 9)], idx < 0)


def _creator_ids(ranks: np.ndarray) -> pa.Array:
    # rank * odd constant mod 2**40 is a bijection: distinct ranks, distinct ids, no visible ordering.
    hashed = (ranks.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) & np.uint64(2**40 - 1)).astype(np.int64)
    return _fixed_width([b"cr-", (hashed, 13)], ranks < 0)


_CONTENT_PREFIX = np.frombuffer("".join(gm.CONTENT_PREFIX).encode(), dtype=np.uint8).reshape(len(gm.CONTENT_PREFIX), -1)


def _content_ids(ctype: np.ndarray, num: np.ndarray) -> pa.Array:
    """`ls-000000123456`: the prefix names the content type."""
    return _fixed_width([(ctype, _CONTENT_PREFIX), b"-", (num, 12)], num < 0)


def _ts(values: np.ndarray) -> pa.Array:
    return _primitive(values, values == gm.NAT, np.int64, pa.timestamp("us", tz="UTC"))


def _f64(f: gm.Frame, col: str) -> pa.Array:
    return _primitive(f.cols[col], f.masks[col], np.float64, pa.float64())


def _to_arrow(table: str, f: gm.Frame) -> pa.Table:
    c = f.cols
    if table == "decisions":
        arrays = [
            _event_ids("dec", c["dec_ymd"], c["dec_idx"]),
            _content_ids(c["content_type"], c["content_id"]),
            _codes(gm.CONTENT_TYPES, c["content_type"]),
            _creator_ids(c["creator_id"]),
            _codes(gm.MARKETS, c["market"]),
            _codes(gm.QUEUES, c["queue"]),
            _codes(gm.SOURCES, c["detection_source"]),
            _ts(c["content_created_at"]),
            _ts(c["enqueued_at"]),
            _ts(c["decided_at"]),
            _codes(gm.MODES, c["decision_mode"]),
            _ids("rv", c["reviewer_id"], 6),
            _codes(gm.OUTCOMES, c["outcome"]),
            _codes(gm.CATEGORIES, c["policy_category"]),
            _codes(gm.ACTIONS, c["action"]),
            _f64(f, "handle_time_s"),
            _primitive(c["views_before_action"], f.masks["views_before_action"], np.int64, pa.int64()),
        ]
    elif table == "appeals":
        arrays = [
            _event_ids("ap", c["key_ymd"], c["key_idx"]),
            _event_ids("dec", c["dec_ymd"], c["dec_idx"]),
            _ts(c["appealed_at"]),
            _ts(c["resolved_at"]),
            _codes(gm.APPEAL_OUTCOMES, c["appeal_outcome"]),
            _ids("rv", c["reviewer_id"], 6),
            _codes(gm.MODES, c["decision_mode"]),
            _codes(gm.MARKETS, c["market"]),
            _codes(gm.CATEGORIES, c["policy_category"]),
            _ts(c["decided_at"]),
        ]
    elif table == "qa_audits":
        arrays = [
            _event_ids("qa", c["key_ymd"], c["key_idx"]),
            _event_ids("dec", c["dec_ymd"], c["dec_idx"]),
            _ids("aud", c["auditor_id"], 5),
            _ts(c["audited_at"]),
            _ids("rv", c["reviewer_id"], 6),
            _codes(gm.MARKETS, c["market"]),
            _codes(gm.QUEUES, c["queue"]),
            _codes(gm.OUTCOMES, c["original_outcome"]),
            _codes(gm.CATEGORIES, c["original_category"]),
            _codes(gm.OUTCOMES, c["expected_outcome"]),
            _codes(gm.CATEGORIES, c["expected_category"]),
        ]
    else:
        d = c["shift_date"]
        arrays = [
            _ids("rv", c["reviewer_id"], 6),
            _primitive(np.where(d == gm.NAT, 0, d), d == gm.NAT, np.int32, pa.date32()),
            _codes(gm.TEAMS, c["team"]),
            _codes(gm.SITES, c["site"]),
            _f64(f, "logged_in_s"),
        ]
    return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMAS[table])


def _to_arrow_with(table: str, frame: gm.Frame, appended: gm.Frame | None) -> pa.Table:
    # Concatenating Arrow tables is zero-copy; concatenating the numpy frame would copy the chunk.
    out = _to_arrow(table, frame)
    return out if appended is None else pa.concat_tables([out, _to_arrow(table, appended)])


# ---------------------------------------------------------------- writing
_LOW_CARDINALITY = {
    "content_type", "market", "queue", "detection_source", "decision_mode", "reviewer_id", "outcome",
    "policy_category", "action", "appeal_outcome", "auditor_id", "original_outcome", "original_category",
    "expected_outcome", "expected_category", "team", "site", "shift_date",
}  # fmt: skip
class _PartitionWriter:
    """One table's ds partition: stale parts and `_SUCCESS` go first, `_SUCCESS` comes back only on success."""

    def __init__(self, root: Path, table: str, day: dt.date) -> None:
        self.dir = root / table / f"ds={day.isoformat()}"
        self.schema = ARROW_SCHEMAS[table]
        self.rows = 0

    def __enter__(self) -> _PartitionWriter:
        self.dir.mkdir(parents=True, exist_ok=True)
        for p in self.dir.iterdir():
            if p.name == "_SUCCESS" or (p.name.startswith("part-") and p.suffix == ".parquet"):
                p.unlink()
        # Dictionary pages only where values repeat; on unique ids they cost time and save nothing.
        self._writer = pq.ParquetWriter(
            self.dir / "part-00000.parquet",
            self.schema,
            compression="zstd",
            use_dictionary=[c for c in self.schema.names if c in _LOW_CARDINALITY],
        )
        return self

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)
        self.rows += table.num_rows

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._writer.close()
        if exc_type is None:
            (self.dir / "_SUCCESS").write_bytes(b"")


def _table_summary(rows: int, injected_dirty: dict[str, int], dups: int, oddities: dict[str, int]) -> dict:
    return {"rows": rows, "exact_duplicates": dups, "dirty": injected_dirty, "oddities": oddities}


def _empty(table: str, world: gm.World, day: dt.date) -> gm.Frame:
    """A zero-row frame with the columns `select_appeals` / `select_audits` produce."""
    dec = gm.gen_decisions(world, day, 0, 0, gm.rng_for(world.seed), gm.staffing_for(world, day))
    select = gm.select_appeals if table == "appeals" else gm.select_audits
    return select(world, dec, np.zeros(0, dtype=bool), day, gm.rng_for(world.seed))


# ---------------------------------------------------------------- generate
def generate(
    output: str | Path,
    start: dt.date,
    days: int,
    rows_per_day: int,
    seed: int,
    dirty_rate: float = 0.002,
    anomalies: bool = True,
    progress: Callable[[str], None] | None = None,
    dirty_rate_on: Mapping[dt.date, float] | None = None,
) -> dict:
    """Write `days` days of synthetic input logs from `start` under `output`; return what was injected.

    The summary's `days[ds][table]` holds `rows` (raw rows written), `exact_duplicates`
    (rows staging drops as identical), `dirty` (distinct rows staging must quarantine, by
    reason; a conflicting-duplicate pair counts 2) and `oddities` (rows DESIGN §3 keeps
    but the DQ suites warn about; for decisions also the rows written with a null
    content_created_at / views_before_action, which staging keeps).

    `dirty_rate_on` overrides `dirty_rate` on the days it names (the demo's quiet days and incidents).

    `days` and `rows_per_day` (decisions a day, the weekly mean) must be >= 1, `seed` >= 0 and
    every dirty rate within 0..`MAX_DIRTY_RATE`; otherwise `GenerateArgumentError` (exit 2 from the CLI).
    """
    dirty_rate_on = dict(dirty_rate_on or {})
    if days < 1:
        raise GenerateArgumentError(f"days must be >= 1, got {days}")
    if rows_per_day < 1:
        raise GenerateArgumentError(f"rows_per_day must be >= 1, got {rows_per_day}")
    if seed < 0:
        raise GenerateArgumentError(f"seed must be >= 0, got {seed}")
    for rate in (dirty_rate, *dirty_rate_on.values()):
        if not 0.0 <= rate <= MAX_DIRTY_RATE:
            raise GenerateArgumentError(f"dirty_rate must be within 0..{MAX_DIRTY_RATE}, got {rate}")
    if isinstance(start, dt.datetime):  # a datetime is a date too, but would put a time in ds=
        start = start.date()
    # The warm-up draws the decisions of the days before `start` whose appeals and audits land in the range.
    before = max(len(gm.APPEAL_LAG_P), len(gm.AUDIT_LAG_P)) - 1
    try:
        start - dt.timedelta(days=before)
        start + dt.timedelta(days=days - 1)
    except OverflowError:
        raise GenerateArgumentError(
            f"{days} day(s) from {start} (and the {before} days before it, for their appeals and audits) "
            f"fall outside {dt.date.min}..{dt.date.max}"
        ) from None
    root = Path(output)
    world = gm.build_world(seed, rows_per_day)
    plan = gm.anomaly_plan(seed, start, days) if anomalies else []
    end_ord = start.toordinal() + days - 1

    pending: dict[str, dict[int, list[gm.Frame]]] = {"appeals": defaultdict(list), "qa_audits": defaultdict(list)}

    def defer(table: str, frame: gm.Frame) -> None:
        due = frame.cols["due"]
        for d in np.unique(due[due <= end_ord]):
            pending[table][int(d)].append(frame.take(np.flatnonzero(due == d)))

    warm_appeals, warm_audits = gm.warm_up_followups(world, start)
    for f in warm_appeals:
        defer("appeals", f)
    for f in warm_audits:
        defer("qa_audits", f)

    summary: dict = {
        "start": start.isoformat(),
        "days_generated": days,
        "rows_per_day": rows_per_day,
        "seed": seed,
        "dirty_rate": dirty_rate,
        "dirty_rate_on": {d.isoformat(): r for d, r in sorted(dirty_rate_on.items())},
        "reviewers": world.n_reviewers,
        "auditors": world.n_auditors,
        "anomalies": [],
        "days": {},
    }
    for i in range(days):
        day = start + dt.timedelta(days=i)
        todays = [a for a in plan if a.day == day]
        rate = dirty_rate_on.get(day, dirty_rate)
        day_summary = {"decisions": _write_decisions(root, world, day, todays, rate, defer, summary, progress)}
        for table in ("appeals", "qa_audits"):
            frames = pending[table].pop(day.toordinal(), [])
            frame = gm.Frame.concat(frames) if frames else _empty(table, world, day)
            day_summary[table] = _write_small(root, world, table, day, frame, rate)
        staffing = gm.staffing_for(world, day)
        day_summary["shifts"] = _write_small(
            root, world, "shifts", day, gm.shifts_frame(world, day, staffing), rate
        )
        summary["days"][day.isoformat()] = day_summary
        if progress is not None:
            counts = " ".join(f"{t}={day_summary[t]['rows']}" for t in TABLES)
            progress(f"generate {day.isoformat()} ({i + 1}/{days}): {counts}")
    return summary


def _write_decisions(
    root: Path,
    world: gm.World,
    day: dt.date,
    todays: list[gm.Anomaly],
    dirty_rate: float,
    defer: Callable[[str, gm.Frame], None],
    summary: dict,
    progress: Callable[[str], None] | None,
) -> dict:
    seed, ordinal = world.seed, day.toordinal()
    staffing = gm.staffing_for(world, day)
    n_day = gm.day_volume(world.rows_per_day, day)
    spikes = [a for a in todays if a.kind == "spike"]
    drops = [a for a in todays if a.kind == "drop"]
    dirty: dict[str, int] = dict.fromkeys(reasons("decisions"), 0)
    oddities: dict[str, int] = {}
    dups = 0
    null_created = null_views = 0
    anomaly_rows = {id(a): 0 for a in todays}
    with _PartitionWriter(root, "decisions", day) as writer:
        for chunk, idx0 in enumerate(range(0, n_day, CHUNK_ROWS)):
            n = min(CHUNK_ROWS, n_day - idx0)
            rng = gm.rng_for(seed, ordinal, gm.TAG_DECISIONS, chunk)
            frame = gm.gen_decisions(world, day, n, idx0, rng, staffing)
            c = frame.cols
            for a in drops:
                hit = (c["market"] == a.market) & (c["policy_category"] == a.category)
                gone = hit & (rng.random(len(frame)) >= a.factor)
                anomaly_rows[id(a)] -= int(gone.sum())
                frame = frame.take(np.flatnonzero(~gone))
                c = frame.cols
            if chunk == 0:
                extra: list[gm.Frame] = []
                for a in spikes:
                    base = int(((c["market"] == a.market) & (c["policy_category"] == a.category)).sum())
                    k = round((a.factor - 1.0) * base * n_day / n)
                    srng = gm.rng_for(seed, ordinal, gm.TAG_SPIKE, a.market * 100 + a.category)
                    # Ids after the day's regular range keep them unique across chunks.
                    idx0_spike = (1 + len(extra)) * n_day
                    extra.append(gm.gen_decisions(world, day, k, idx0_spike, srng, staffing, (a.market, a.category)))
                    anomaly_rows[id(a)] += k
                frame = gm.Frame.concat([frame, *extra])
                injected = inject(
                    "decisions", frame, n_day, dirty_rate, gm.rng_for(seed, ordinal, gm.TAG_DIRTY, 0), world.n_reviewers
                )
                eligible, appended = injected.eligible, injected.appended
                dirty, dups, oddities = injected.dirty, injected.exact_duplicates, injected.oddities
            else:
                eligible, appended = np.ones(len(frame), dtype=bool), None
            for part in (frame, appended) if appended is not None else (frame,):
                null_created += int((part.cols["content_created_at"] == gm.NAT).sum())
                null_views += int(part.masks["views_before_action"].sum())
            frng = gm.rng_for(seed, ordinal, gm.TAG_FOLLOWUP, chunk)
            defer("appeals", gm.select_appeals(world, frame, eligible, day, frng))
            defer("qa_audits", gm.select_audits(world, frame, eligible, day, frng))
            writer.write(_to_arrow_with("decisions", frame, appended))
            if progress is not None and n_day > CHUNK_ROWS:
                progress(f"generate {day.isoformat()}: decisions {min(idx0 + n, n_day)}/{n_day} rows")
    for a in todays:
        summary["anomalies"].append(
            {
                "ds": day.isoformat(),
                "kind": a.kind,
                "market": gm.MARKETS[a.market],
                "policy_category": gm.CATEGORIES[a.category],
                "factor": a.factor,
                "rows_changed": anomaly_rows[id(a)],
            }
        )
    oddities = {**oddities, "null_content_created_at": null_created, "null_views_before_action": null_views}
    return _table_summary(writer.rows, dirty, dups, oddities)


def _write_small(
    root: Path, world: gm.World, table: str, day: dt.date, frame: gm.Frame, dirty_rate: float
) -> dict:
    """Tables that fit in memory whole (appeals, audits, shifts): inject, write in one go."""
    tag = gm.TAG_DIRTY * 10 + TABLES.index(table)
    rng = gm.rng_for(world.seed, day.toordinal(), tag)
    injected = inject(table, frame, len(frame), dirty_rate, rng, world.n_reviewers)
    with _PartitionWriter(root, table, day) as writer:
        writer.write(_to_arrow_with(table, injected.frame, injected.appended))
    return _table_summary(writer.rows, injected.dirty, injected.exact_duplicates, injected.oddities)
