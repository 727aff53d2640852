"""Tiny hand-built input rows: every field defaults to a clean value, a test overrides what it is about."""

from __future__ import annotations

import datetime as dt
import itertools

import narwhals.stable.v2 as nw
import polars as pl

from tests.conftest import DS, ts
from transforms.schemas import INPUT_SCHEMAS, TS

_ids = itertools.count(1)

_POLARS = {"String": pl.String, "Float64": pl.Float64, "Int64": pl.Int64, "Date": pl.Date}


def polars_schema(table: str) -> dict[str, pl.DataType]:
    return {
        c: pl.Datetime("us", "UTC") if t == TS else _POLARS[type(t).__name__] for c, t in INPUT_SCHEMAS[table].items()
    }


def frame(table: str, rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=polars_schema(table), orient="row") if rows else pl.DataFrame(schema=polars_schema(table))


def decision(**kw: object) -> dict:
    n = next(_ids)
    row = {
        "decision_id": f"d{n}",
        "content_id": f"k{n}",
        "content_type": "video",
        "creator_id": "c1",
        "market": "US",
        "queue": "video_standard",
        "detection_source": "ml_model",
        "content_created_at": ts(1),
        "enqueued_at": ts(2),
        "decided_at": ts(2, 5),
        "decision_mode": "human",
        "reviewer_id": "r1",
        "outcome": "violation",
        "policy_category": "spam",
        "action": "remove",
        "handle_time_s": 60.0,
        "views_before_action": 0,
    }
    row.update(kw)
    return row


def automated(**kw: object) -> dict:
    return decision(**{"decision_mode": "automated", "reviewer_id": None, "handle_time_s": None, **kw})


def clean(**kw: object) -> dict:
    """A no_violation human decision."""
    return decision(**{"outcome": "no_violation", "policy_category": None, "action": "none", **kw})


def appeal(**kw: object) -> dict:
    n = next(_ids)
    row = {
        "appeal_id": f"a{n}",
        "decision_id": f"d{n}",
        "appealed_at": ts(3),
        "resolved_at": ts(9),
        "appeal_outcome": "upheld",
        "reviewer_id": "r1",
        "decision_mode": "human",
        "market": "US",
        "policy_category": "spam",
        "decided_at": ts(1, day=DS - dt.timedelta(days=2)),
    }
    row.update(kw)
    return row


def audit(**kw: object) -> dict:
    n = next(_ids)
    row = {
        "audit_id": f"q{n}",
        "decision_id": f"d{n}",
        "auditor_id": "aud1",
        "audited_at": ts(10),
        "reviewer_id": "r1",
        "market": "US",
        "queue": "video_standard",
        "original_outcome": "violation",
        "original_category": "spam",
        "expected_outcome": "violation",
        "expected_category": "spam",
    }
    row.update(kw)
    return row


def shift(**kw: object) -> dict:
    row = {"reviewer_id": "r1", "shift_date": DS, "team": "T1", "site": "Dublin", "logged_in_s": 28800.0}
    row.update(kw)
    return row


# A DSA statement of reasons as `jobs.dsa.read_sor` gives it (dates as epoch microseconds).
SOR_STATEMENT = {
    "uuid": "u", "platform_name": "P", "category": "C", "automated_detection": "Yes",
    "automated_decision": "AUTOMATED_DECISION_FULLY", "source_type": "SOURCE_VOLUNTARY",
    "decision_ground": "DECISION_GROUND_ILLEGAL_CONTENT", "decision_visibility": None,
    "decision_monetary": None, "decision_provision": None, "decision_account": None,
    "content_date_us": 0, "application_date_us": 0, "created_at_us": 0,
}  # fmt: skip


def sor_statements(rows: list[dict]) -> nw.LazyFrame:
    """Statements of reasons: SOR_STATEMENT with each row's fields over it."""
    schema = {c: (pl.List(pl.String) if c == "decision_visibility" else pl.Int64 if c.endswith("_us") else pl.String)
              for c in SOR_STATEMENT}  # fmt: skip
    return nw.from_native(pl.DataFrame([{**SOR_STATEMENT, **r} for r in rows], schema=schema).lazy())
