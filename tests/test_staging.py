"""Staging (DESIGN §3): every quarantine reason of every table, their order, and duplicates."""

from __future__ import annotations

import datetime as dt
import json
import math

import polars as pl
import pytest

from tests.builders import appeal, audit, automated, clean, decision, frame, shift
from tests.conftest import DS, collect, ts
from transforms import staging
from transforms.params import Params
from transforms.quarantine import quarantine

P = Params(ds=DS)
NEXT_DAY = DS + dt.timedelta(days=1)


def classify(engine, table: str, rows: list[dict]):
    out = collect(engine, staging.classify(engine.input_frame(table, frame(table, rows)), table, P))
    return {r[staging_key(table)] if r[staging_key(table)] is not None else None: r["reason"] for r in out.iter_rows(named=True)}, out


def staging_key(table: str) -> str:
    return {"decisions": "decision_id", "appeals": "appeal_id", "qa_audits": "audit_id", "shifts": "reviewer_id"}[table]


DECISION_CASES = [
    ("ok", decision(decision_id="ok"), None),
    ("missing content", decision(decision_id="m1", content_id=None), "missing_key"),
    ("missing creator", decision(decision_id="m2", creator_id=None), "missing_key"),
    ("null decided_at", decision(decision_id="t1", decided_at=None), "bad_timestamp"),
    ("null enqueued_at", decision(decision_id="t2", enqueued_at=None), "bad_timestamp"),
    ("enqueued after decided", decision(decision_id="t3", enqueued_at=ts(3)), "bad_timestamp"),
    ("created after decided", decision(decision_id="t4", content_created_at=ts(4)), "bad_timestamp"),
    ("next day", decision(decision_id="w1", content_created_at=ts(1, day=NEXT_DAY), enqueued_at=ts(1, day=NEXT_DAY), decided_at=ts(2, day=NEXT_DAY)), "wrong_partition"),
    ("unknown mode", decision(decision_id="b1", decision_mode="hybrid"), "bad_mode"),
    ("null mode", decision(decision_id="b2", decision_mode=None), "bad_mode"),
    ("human without reviewer", decision(decision_id="b3", reviewer_id=None), "bad_mode"),
    ("human without handle time", decision(decision_id="b4", handle_time_s=None), "bad_mode"),
    ("automated with reviewer", automated(decision_id="b5", reviewer_id="r9"), "bad_mode"),
    ("unknown outcome", decision(decision_id="o1", outcome="maybe"), "bad_outcome"),
    ("violation without category", decision(decision_id="o2", policy_category=None), "bad_outcome"),
    ("no_violation with category", clean(decision_id="o3", policy_category="spam"), "bad_outcome"),
    ("negative handle", decision(decision_id="r1", handle_time_s=-1.0), "bad_range"),
    ("handle above 4h", decision(decision_id="r2", handle_time_s=14400.5), "bad_range"),
    ("NaN handle", decision(decision_id="r3", handle_time_s=float("nan")), "bad_range"),
    ("negative views", decision(decision_id="r4", views_before_action=-3), "bad_range"),
    ("handle 4h exactly is fine", decision(decision_id="ok2", handle_time_s=14400.0), None),
    ("automated handle time ignored", automated(decision_id="ok3", handle_time_s=99999.0), None),
    ("null created_at is fine", decision(decision_id="ok4", content_created_at=None), None),
    ("unknown queue is fine", decision(decision_id="ok5", queue="brand_new_queue", policy_category="not_in_taxonomy"), None),
]


def test_every_decision_reason(engine):
    reasons, _ = classify(engine, "decisions", [c[1] for c in DECISION_CASES])
    assert reasons == {c[1]["decision_id"]: c[2] for c in DECISION_CASES}


def test_missing_key_wins_over_every_later_reason(engine):
    reasons, _ = classify(
        engine, "decisions", [decision(decision_id=None, decided_at=None, decision_mode="x", outcome="y", handle_time_s=-1.0)]
    )
    assert list(reasons.values()) == ["missing_key"]


def test_bad_timestamp_before_wrong_partition_before_mode(engine):
    rows = [
        decision(decision_id="a", enqueued_at=ts(5), decision_mode="x"),
        decision(decision_id="b", decided_at=ts(1, day=NEXT_DAY), decision_mode="x"),
    ]
    reasons, _ = classify(engine, "decisions", rows)
    assert reasons == {"a": "bad_timestamp", "b": "wrong_partition"}


def test_exact_duplicates_kept_once_conflicting_ones_quarantined(engine):
    same = decision(decision_id="dup")
    rows = [
        same,
        dict(same),
        dict(same),
        decision(decision_id="conf", outcome="violation"),
        decision(decision_id="conf", handle_time_s=61.0),
        # The key is shared with a row that broke an earlier rule: the clean one is still conflicting.
        decision(decision_id="mixed"),
        decision(decision_id="mixed", decision_mode="hybrid"),
    ]
    _, out = classify(engine, "decisions", rows)
    got = sorted((r["decision_id"], r["reason"] or "") for r in out.iter_rows(named=True))
    assert got == [
        ("conf", "conflicting_duplicate"),
        ("conf", "conflicting_duplicate"),
        ("dup", ""),
        ("mixed", "bad_mode"),
        ("mixed", "conflicting_duplicate"),
    ]


def test_appeal_reasons(engine):
    rows = [
        appeal(appeal_id="ok"),
        appeal(appeal_id="automated ok", reviewer_id=None, decision_mode="automated"),
        appeal(appeal_id="m", decision_id=None),
        appeal(appeal_id="t1", appealed_at=None),
        appeal(appeal_id="t2", appealed_at=ts(10)),
        appeal(appeal_id="t3", decided_at=ts(4)),
        appeal(appeal_id="t4", resolved_at=None),
        appeal(appeal_id="w", appealed_at=ts(1, day=NEXT_DAY), resolved_at=ts(2, day=NEXT_DAY)),
        appeal(appeal_id="b1", decision_mode=None),
        appeal(appeal_id="b2", reviewer_id=None),
        appeal(appeal_id="b3", decision_mode="automated"),
        appeal(appeal_id="o", appeal_outcome="partially"),
        appeal(appeal_id="c"),
        appeal(appeal_id="c", appeal_outcome="overturned"),
    ]
    reasons, out = classify(engine, "appeals", rows)
    assert reasons == {
        "ok": None, "automated ok": None, "m": "missing_key", "t1": "bad_timestamp", "t2": "bad_timestamp",
        "t3": "bad_timestamp", "t4": "bad_timestamp", "w": "wrong_partition", "b1": "bad_mode", "b2": "bad_mode", "b3": "bad_mode",
        "o": "bad_outcome", "c": "conflicting_duplicate",
    }
    assert out.height == len(rows)


def test_qa_audit_reasons(engine):
    rows = [
        audit(audit_id="ok"),
        audit(audit_id="ok nv", original_outcome="no_violation", original_category=None, expected_outcome="no_violation", expected_category=None),
        audit(audit_id="m", reviewer_id=None),
        audit(audit_id="m2", decision_id=None),
        audit(audit_id="t", audited_at=None),
        audit(audit_id="w", audited_at=ts(0, day=NEXT_DAY)),
        audit(audit_id="o1", original_outcome="unsure"),
        audit(audit_id="o2", expected_outcome=None),
        audit(audit_id="o3", expected_category=None),
        audit(audit_id="o4", original_category=None),
        audit(audit_id="c", auditor_id="a1"),
        audit(audit_id="c", auditor_id="a2"),
    ]
    reasons, _ = classify(engine, "qa_audits", rows)
    assert reasons == {
        "ok": None, "ok nv": None, "m": "missing_key", "m2": "missing_key", "t": "bad_timestamp", "w": "wrong_partition",
        "o1": "bad_outcome", "o2": "bad_outcome", "o3": "bad_outcome", "o4": "bad_outcome", "c": "conflicting_duplicate",
    }


def test_shift_reasons(engine):
    rows = [
        shift(reviewer_id="ok"),
        shift(reviewer_id="zero", logged_in_s=0.0),
        shift(reviewer_id="full day", logged_in_s=86400.0),
        shift(reviewer_id="nodate", shift_date=None),
        shift(reviewer_id="w", shift_date=NEXT_DAY),
        shift(reviewer_id="r1", logged_in_s=None),
        shift(reviewer_id="r2", logged_in_s=float("nan")),
        shift(reviewer_id="r3", logged_in_s=-5.0),
        shift(reviewer_id="r4", logged_in_s=86400.5),
        shift(reviewer_id="c", team="A"),
        shift(reviewer_id="c", team="B"),
        shift(reviewer_id=None),
    ]
    reasons, out = classify(engine, "shifts", rows)
    assert reasons == {
        "ok": None, "zero": None, "full day": None, "nodate": "missing_key", "w": "wrong_partition",
        "r1": "bad_range", "r2": "bad_range", "r3": "bad_range", "r4": "bad_range", "c": "conflicting_duplicate",
        None: "missing_key",
    }


def test_staged_rows_map_null_grouping_values_to_unknown(engine):
    classified = staging.classify(engine.input_frame("decisions", frame("decisions", [decision(market=None, queue=None)])), "decisions", P)
    out = collect(engine, staging.staged(classified, "decisions"))
    assert (out["market"][0], out["queue"][0]) == ("UNKNOWN", "UNKNOWN")
    assert "reason" not in out.columns


def test_quarantine_table_rows_and_json(engine):
    classified = {
        "decisions": staging.classify(
            engine.input_frame("decisions", frame("decisions", [decision(decision_id="bad", decision_mode="x", market='"quoted"\n'), decision(decision_id="good")])),
            "decisions", P),
        "shifts": staging.classify(engine.input_frame("shifts", frame("shifts", [shift(reviewer_id="s", logged_in_s=-1.0)])), "shifts", P),
    }
    out = collect(engine, quarantine(classified, engine.encode_rows)).sort("source_table")
    assert out.columns == ["source_table", "reason", "record_id", "decision_id", "row"]
    assert out.select("source_table", "reason", "record_id", "decision_id").rows() == [
        ("decisions", "bad_mode", "bad", "bad"),
        ("shifts", "bad_range", "s", None),
    ]
    row = json.loads(out["row"][0])
    assert row["market"] == '"quoted"\n'
    assert row["decided_at"] == "2024-03-14T02:05:00.000000Z"
    assert "decided_at_us" not in row
    assert json.loads(out["row"][1])["shift_date"] == "2024-03-14"


@pytest.mark.parametrize("table", ["decisions", "appeals", "qa_audits", "shifts"])
def test_reason_lists_follow_design_order(table):
    expected = {
        "decisions": ["missing_key", "bad_timestamp", "wrong_partition", "bad_mode", "bad_outcome", "bad_range", "conflicting_duplicate"],
        "appeals": ["missing_key", "bad_timestamp", "wrong_partition", "bad_mode", "bad_outcome", "conflicting_duplicate"],
        "qa_audits": ["missing_key", "bad_timestamp", "wrong_partition", "bad_outcome", "conflicting_duplicate"],
        "shifts": ["missing_key", "wrong_partition", "bad_range", "conflicting_duplicate"],
    }[table]
    assert staging.reasons(table) == expected


def test_engine_staging_equals_staging_the_whole_day(engine, tmp_path):
    """Staging compares only rows sharing a key, so each engine's own way of finding the repeated
    keys (Polars: counted in hash buckets, bounded memory; Spark: materialised once and broadcast,
    or shuffled when there are many) and classifying the unique-key rows apart from the few
    shared-key ones must give exactly the rows of classifying the whole day at once."""
    same = decision(decision_id="dup")
    rows = [same, dict(same), decision(decision_id="conf"), decision(decision_id="conf", handle_time_s=5.0),
            decision(decision_id=None), decision(decision_id=None, content_id=None), decision(decision_id="mixed"),
            decision(decision_id="mixed", decision_mode="x")] + [decision(decision_id=f"u{i}") for i in range(40)]
    raw = engine.input_frame("decisions", frame("decisions", rows))
    whole = staging.classify(raw, "decisions", P)
    assert set(collect(engine, staging.repeated_keys(raw, "decisions"))["decision_id"]) == {"dup", "conf", "mixed"}

    def views(classified):
        """What the nightly run reads of a classified day: rejected rows whole, passing rows as staged."""
        return [collect(engine, v) for v in (staging.rejected(classified), staging.staged(classified, "decisions"))]

    def same(a: pl.DataFrame, b: pl.DataFrame) -> bool:
        return a.sort(a.columns, nulls_last=True).equals(b.sort(b.columns, nulls_last=True))

    expected = views(whole)
    assert expected[0].height > 0 and expected[0].height + expected[1].height == len(rows) - 1
    # Polars, 48 rows: one bucket, then 4 and 16 buckets of keys. Spark: 3 repeated keys broadcast,
    # then too many to broadcast (a shuffle join).
    knob, settings = ("keys_per_bucket", (100, 12, 3)) if engine.name == "polars" else ("broadcast_keys", (100, 2))
    for setting in settings:
        setattr(engine, knob, setting)
        checkpoint = engine.stage(raw, "decisions", P, tmp_path / f"scratch-{setting}", source="decisions")
        assert all(same(g, e) for g, e in zip(views(checkpoint), expected, strict=True))
        assert collect(engine, checkpoint).height == len(rows) - 1
    if engine.name == "polars":
        # Polars picks the rows to deduplicate by a 64-bit hash of the key; a collision only adds
        # rows to that set. The extreme case, every row a candidate, must change nothing.
        native = raw.to_native()
        candidates = native.filter(engine._candidates(native, "decisions")).collect()
        assert candidates.height == 8 and set(candidates["decision_id"].drop_nulls()) == {"dup", "conf", "mixed"}
        engine._candidates = lambda native, table: pl.lit(True)
        checkpoint = engine.stage(raw, "decisions", P, tmp_path / "scratch-all", source="decisions")
        assert all(same(g, e) for g, e in zip(views(checkpoint), expected, strict=True))


def test_checkpointed_day_keeps_ids_only_on_rejected_rows(engine):
    """What the engines checkpoint: the quarantine-only columns survive on rejected rows (the
    quarantine serialises them) and are null on passing ones, every other column untouched."""
    rows = [decision(decision_id="ok", content_id="c1"), decision(decision_id="bad", content_id="c2", outcome="maybe")]
    classified = staging.classify(engine.input_frame("decisions", frame("decisions", rows)), "decisions", P)
    out = collect(engine, staging.blank_quarantine_only(classified, "decisions"))
    by_reason = {r["reason"]: r for r in out.iter_rows(named=True)}
    assert {k: by_reason[None][k] for k in staging.QUARANTINE_ONLY["decisions"]} == dict.fromkeys(staging.QUARANTINE_ONLY["decisions"])
    assert (by_reason["bad_outcome"]["decision_id"], by_reason["bad_outcome"]["content_id"]) == ("bad", "c2")
    assert by_reason[None]["creator_id"] == by_reason["bad_outcome"]["creator_id"] is not None
    assert out.columns == collect(engine, classified).columns


def test_the_checkpoint_stores_timestamps_once_as_int64_microseconds(engine, tmp_path):
    """Each engine writes its checkpoint of the day without the `<ts>_us` twins (they are derived from
    the timestamps again on reading) and with timestamps as 8-byte microseconds, not Spark's legacy
    12-byte INT96; what it hands on still carries the twins, equal to the timestamps."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from transforms.schemas import epoch_us_column, epoch_us_columns, timestamp_columns

    raw = engine.input_frame("decisions", frame("decisions", [decision(decision_id=f"d{i}") for i in range(3)]))
    scratch = tmp_path / "scratch"
    out = collect(engine, engine.stage(raw, "decisions", P, scratch, source="decisions"))
    files = sorted(scratch.rglob("*.parquet"))
    assert files
    for path in files:
        schema = pq.read_schema(path)
        assert not set(epoch_us_columns("decisions")) & set(schema.names)
        for column in timestamp_columns("decisions"):
            assert schema.field(column).type == pa.timestamp("us", tz="UTC"), (path.name, column)
            assert pq.ParquetFile(path).schema.column(schema.get_field_index(column)).physical_type == "INT64"
    for column in timestamp_columns("decisions"):
        assert out[epoch_us_column(column)].to_list() == out[column].dt.epoch("us").to_list()
        assert out[column].null_count() == 0


def test_a_rejected_rows_json_spells_out_nan_and_infinity(engine) -> None:
    """A row quarantined as bad_range for a NaN handle time must show the NaN: written as null (as
    Polars' json_encode does), it read as a missing handle time, which is another rule (bad_mode).
    Both engines write the strings Spark's to_json uses, which strict JSON parsers accept."""
    nan, inf = float("nan"), float("inf")
    data = pl.DataFrame({"k": ["a", "b", "c", "d", "e"], "x": [nan, inf, -inf, 1.5, None]})
    got = collect(engine, engine.encode_rows(engine.frame(data), ["k", "x"]))
    assert dict(zip(got["k"], got["row"])) == {
        "a": '{"k":"a","x":"NaN"}', "b": '{"k":"b","x":"Infinity"}', "c": '{"k":"c","x":"-Infinity"}',
        "d": '{"k":"d","x":1.5}', "e": '{"k":"e","x":null}',
    }


def test_a_rejected_rows_json_numbers_read_back_as_the_values_themselves(engine) -> None:
    """The text of a number is each engine's own (Polars 10000000.0 and 1e+20, Spark's to_json 1.0E7
    and 1.0E20), which DESIGN §8's float tolerance cannot cover in a string cell; what both promise
    is strict JSON that parses back to the very value, the last bit and the sign of zero included."""
    values = [1e7, 1e-5, 1e20, 123456789.125, 5e-324, -0.0, 0.1 + 0.2, 1.7976931348623157e308, -2.5e-8]
    data = pl.DataFrame({"k": [f"k{i}\u001f" for i in range(len(values))], "x": values})
    got = collect(engine, engine.encode_rows(engine.frame(data), ["k", "x"]))
    decoded = {row["k"]: row["x"] for row in map(json.loads, got["row"])}
    assert {k: (x, math.copysign(1.0, x)) for k, x in decoded.items()} == {
        f"k{i}\u001f": (x, math.copysign(1.0, x)) for i, x in enumerate(values)
    }


def test_a_checkpoint_that_cannot_be_written_is_the_outputs_failure_not_the_inputs(engine, tmp_path) -> None:
    """One pass reads the day and writes the checkpoint. A checkpoint that cannot be written (here a
    file where its directory belongs; a full output volume alike) was reported as unreadable input
    (exit 4), which the DAG does not retry and which sends on-call to the upstream logs."""
    from jobs.errors import InputUnreadable, WarehouseUnavailable

    raw = engine.input_frame("decisions", frame("decisions", [decision(decision_id="a"), decision(decision_id="b")]))
    blocker = tmp_path / "scratch-is-a-file"
    blocker.write_text("")
    with pytest.raises(WarehouseUnavailable) as failed:
        collect(engine, engine.stage(raw, "decisions", P, blocker / "decisions", source="decisions somewhere"))
    assert str(failed.value).startswith(f"output {blocker / 'decisions'}: cannot write the staging checkpoint: ")
    assert "\n" not in str(failed.value) and not isinstance(failed.value, InputUnreadable)


# A second value per column that keeps the row clean on its own (DESIGN §3): rows of one key that
# differ in that column alone are two distinct rows, not exact duplicates, so both are
# conflicting_duplicate. Not every column can change alone without breaking an earlier rule:
# decision_mode (bad_mode), a decision's outcome (bad_outcome), shift_date (wrong_partition).
OTHER_CLEAN_VALUE: dict[str, dict[str, object]] = {
    "decisions": {
        "content_id": "k-other", "content_type": "comment", "creator_id": "c2", "market": "DE", "queue": "comments",
        "detection_source": "user_report", "content_created_at": ts(1, 30), "enqueued_at": ts(2, 1),
        "decided_at": ts(2, 6), "reviewer_id": "r2", "policy_category": "hate_speech", "action": "restrict",
        "handle_time_s": 61.0, "views_before_action": 1,
    },
    "appeals": {
        "decision_id": "d-other", "appealed_at": ts(4), "resolved_at": ts(10), "appeal_outcome": "overturned",
        "reviewer_id": "r2", "market": "DE", "policy_category": "hate_speech",
        "decided_at": ts(1, day=DS - dt.timedelta(days=3)),
    },
    "qa_audits": {
        "decision_id": "d-other", "auditor_id": "aud2", "audited_at": ts(11), "reviewer_id": "r2", "market": "DE",
        "queue": "comments", "original_outcome": "no_violation", "original_category": "hate_speech",
        "expected_outcome": "no_violation", "expected_category": "hate_speech",
    },
    "shifts": {"team": "T2", "site": "Manila", "logged_in_s": 28801.0},
}
CANNOT_CHANGE_ALONE = {"decisions": {"decision_mode", "outcome"}, "appeals": {"decision_mode"}, "qa_audits": set(),
                       "shifts": {"shift_date"}}
BUILDERS = {"decisions": decision, "appeals": appeal, "qa_audits": audit, "shifts": shift}


def test_every_column_has_a_one_column_conflict_case() -> None:
    for table, others in OTHER_CLEAN_VALUE.items():
        assert {staging_key(table), *others, *CANNOT_CHANGE_ALONE[table]} == set(staging.row_columns(table)), table


@pytest.mark.parametrize(("table", "column"), [(t, c) for t, cs in OTHER_CLEAN_VALUE.items() for c in cs])
def test_rows_of_one_key_differing_in_any_one_column_are_both_conflicting(engine, table: str, column: str) -> None:
    """Exact duplicates are rows identical in EVERY column (DESIGN §3.1): a dedupe over a subset of the
    columns would keep one of two conflicting versions, and stage it."""
    key = staging_key(table)
    row = BUILDERS[table](**{key: "k"})
    other = {**row, column: OTHER_CLEAN_VALUE[table][column]}
    assert other != row
    _, out = classify(engine, table, [row, other, dict(row)])
    assert out["reason"].to_list() == ["conflicting_duplicate"] * 2
    alone, _ = classify(engine, table, [other])
    assert alone == {"k": None}, "the other value must be clean on its own"


@pytest.mark.parametrize("table", ["decisions", "appeals", "qa_audits", "shifts"])
def test_exact_duplicates_without_a_key_are_kept_once(engine, table: str) -> None:
    """DESIGN §3.1 dedupes every row identical in every column, a null key included: three copies
    of a keyless row are one missing_key row (so duplicates_dropped counts two), and a keyless row
    that differs is another one."""
    key = staging_key(table)
    row = BUILDERS[table](**{key: None})
    different = {**row, **{c: v for c, v in list(OTHER_CLEAN_VALUE[table].items())[-1:]}}
    _, out = classify(engine, table, [row, dict(row), dict(row), different])
    assert out["reason"].to_list() == ["missing_key"] * 2
