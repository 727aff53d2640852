"""Tests of `jobs.generate`: schema, determinism, realism and the dirty rows it promises.

The dirty-row tests re-implement DESIGN §3 (first matching reason, in order; exact duplicates
first; conflicting_duplicate last) independently of the generator and check that staging
would quarantine exactly what the generator says it injected.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs import cli
from jobs import generate as gen
from jobs import generate_model as gm
from jobs.generate_dirty import inject, reasons
from transforms.params import DEFAULT_SLA_S, DEFAULT_TAXONOMY
from transforms.schemas import INPUT_SCHEMAS

TABLES = ("decisions", "appeals", "qa_audits", "shifts")
START = dt.date(2024, 1, 1)
EXPECTED_ARROW = {
    "String": pa.string(),
    "Float64": pa.float64(),
    "Int64": pa.int64(),
    "Date": pa.date32(),
    "Datetime(time_unit='us', time_zone='UTC')": pa.timestamp("us", tz="UTC"),
}


def _days(n: int) -> list[dt.date]:
    return [START + dt.timedelta(days=i) for i in range(n)]


def _read(root: Path, table: str, day: dt.date) -> pl.DataFrame:
    return pl.read_parquet(root / table / f"ds={day.isoformat()}" / "*.parquet")


def _read_all(root: Path, table: str, n_days: int) -> pl.DataFrame:
    return pl.concat([_read(root, table, d).with_columns(ds=pl.lit(d)) for d in _days(n_days)])


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("clean")
    return root, gen.generate(root, START, 4, 3000, seed=5, dirty_rate=0.0, anomalies=False)


@pytest.fixture(scope="module")
def dirty_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("dirty")
    return root, gen.generate(root, START, 2, 3000, seed=9, dirty_rate=0.01)


# ---------------------------------------------------------------- reference staging (DESIGN §3)
c = pl.col


def _in(col: str, values: list[str]) -> pl.Expr:
    return c(col).is_in(values).fill_null(False)


def _f(expr: pl.Expr) -> pl.Expr:
    return expr.fill_null(False)


def _rules(table: str, ds: dt.date) -> list[tuple[str, pl.Expr]]:
    if table == "decisions":
        return [
            ("missing_key", c("decision_id").is_null() | c("content_id").is_null() | c("creator_id").is_null()),
            (
                "bad_timestamp",
                c("enqueued_at").is_null()
                | c("decided_at").is_null()
                | _f(c("enqueued_at") > c("decided_at"))
                | _f(c("content_created_at") > c("decided_at")),
            ),
            ("wrong_partition", _f(c("decided_at").dt.date() != ds)),
            (
                "bad_mode",
                ~_in("decision_mode", ["human", "automated"])
                | _f((c("decision_mode") == "human") & (c("reviewer_id").is_null() | c("handle_time_s").is_null()))
                | _f((c("decision_mode") == "automated") & c("reviewer_id").is_not_null()),
            ),
            (
                "bad_outcome",
                ~_in("outcome", ["violation", "no_violation"])
                | _f((c("outcome") == "violation") & c("policy_category").is_null())
                | _f((c("outcome") == "no_violation") & c("policy_category").is_not_null()),
            ),
            (
                "bad_range",
                _f((c("handle_time_s") < 0) | (c("handle_time_s") > 14400) | c("handle_time_s").is_nan())
                | _f(c("views_before_action") < 0),
            ),
        ]
    if table == "appeals":
        return [
            ("missing_key", c("appeal_id").is_null() | c("decision_id").is_null()),
            (
                "bad_timestamp",
                c("appealed_at").is_null()
                | c("resolved_at").is_null()
                | _f(c("appealed_at") > c("resolved_at"))
                | _f(c("decided_at") > c("appealed_at")),
            ),
            ("wrong_partition", _f(c("resolved_at").dt.date() != ds)),
            (
                "bad_mode",
                ~_in("decision_mode", ["human", "automated"])
                | _f((c("decision_mode") == "human") & c("reviewer_id").is_null())
                | _f((c("decision_mode") == "automated") & c("reviewer_id").is_not_null()),
            ),
            ("bad_outcome", ~_in("appeal_outcome", ["upheld", "overturned"])),
        ]
    if table == "qa_audits":
        return [
            ("missing_key", c("audit_id").is_null() | c("decision_id").is_null() | c("reviewer_id").is_null()),
            ("bad_timestamp", c("audited_at").is_null()),
            ("wrong_partition", _f(c("audited_at").dt.date() != ds)),
            (
                "bad_outcome",
                ~_in("original_outcome", ["violation", "no_violation"])
                | ~_in("expected_outcome", ["violation", "no_violation"])
                | _f((c("original_outcome") == "violation") & c("original_category").is_null())
                | _f((c("expected_outcome") == "violation") & c("expected_category").is_null()),
            ),
        ]
    return [
        ("missing_key", c("reviewer_id").is_null() | c("shift_date").is_null()),
        ("wrong_partition", _f(c("shift_date") != ds)),
        (
            "bad_range",
            c("logged_in_s").is_null()
            | _f(c("logged_in_s").is_nan() | (c("logged_in_s") < 0) | (c("logged_in_s") > 86400)),
        ),
    ]


KEYS = {"decisions": "decision_id", "appeals": "appeal_id", "qa_audits": "audit_id", "shifts": "reviewer_id"}


def _stage(table: str, raw: pl.DataFrame, ds: dt.date) -> tuple[int, dict[str, int]]:
    """(duplicates dropped, rows quarantined per reason) as DESIGN §3 defines them."""
    distinct = raw.unique(maintain_order=True)
    reason = pl.lit(None, dtype=pl.String)
    for name, rule in reversed(_rules(table, ds)):
        reason = pl.when(rule).then(pl.lit(name)).otherwise(reason)
    key = KEYS[table]
    shared = c(key).is_not_null() & (pl.len().over(key) > 1)
    staged = distinct.with_columns(reason=reason).with_columns(
        reason=pl.when(c("reason").is_null() & shared).then(pl.lit("conflicting_duplicate")).otherwise(c("reason"))
    )
    counts = dict(staged.group_by("reason").len().drop_nulls("reason").iter_rows())
    return raw.height - distinct.height, {r: counts.get(r, 0) for r in reasons(table)}


# ---------------------------------------------------------------- layout and schema
def test_every_partition_has_one_part_and_success_marker(clean_run: tuple[Path, dict]) -> None:
    root, summary = clean_run
    for table in TABLES:
        for day in _days(4):
            part = root / table / f"ds={day.isoformat()}"
            assert (part / "_SUCCESS").is_file() and (part / "_SUCCESS").stat().st_size == 0
            assert sorted(p.name for p in part.glob("*.parquet")) == ["part-00000.parquet"]
            assert pq.ParquetFile(part / "part-00000.parquet").metadata.num_rows == (
                summary["days"][day.isoformat()][table]["rows"]
            )


def test_schema_is_exactly_input_schemas(clean_run: tuple[Path, dict]) -> None:
    root, _ = clean_run
    for table, columns in INPUT_SCHEMAS.items():
        schema = pq.read_schema(root / table / f"ds={START.isoformat()}" / "part-00000.parquet")
        assert schema.names == list(columns)
        for name, dtype in columns.items():
            assert schema.field(name).type == EXPECTED_ARROW[str(dtype)], (table, name)


def test_rows_per_day_follow_the_weekly_mean(clean_run: tuple[Path, dict]) -> None:
    _, summary = clean_run
    rows = [summary["days"][d.isoformat()]["decisions"]["rows"] for d in _days(4)]
    assert all(0.9 * 3000 <= r <= 1.1 * 3000 for r in rows)
    for d in _days(4):
        day = summary["days"][d.isoformat()]
        assert day["appeals"]["rows"] > 0 and day["qa_audits"]["rows"] > 0 and day["shifts"]["rows"] >= 5


# ---------------------------------------------------------------- determinism
def _digests(root: Path) -> dict[str, str]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a, b, other = tmp_path / "a", tmp_path / "b", tmp_path / "other"
    sa = gen.generate(a, START, 2, 1500, seed=3, dirty_rate=0.01)
    sb = gen.generate(b, START, 2, 1500, seed=3, dirty_rate=0.01)
    gen.generate(other, START, 2, 1500, seed=4, dirty_rate=0.01)
    da, db, do = _digests(a), _digests(b), _digests(other)
    assert len(da) == 4 * 2 * 2  # a parquet part and a _SUCCESS per table and day
    assert da == db
    assert sa == sb
    assert set(da) == set(do)
    parquet = [k for k in da if k.endswith(".parquet")]
    assert all(da[k] != do[k] for k in parquet if "decisions" in k)


def test_regenerating_replaces_stale_parts(tmp_path: Path) -> None:
    stale = tmp_path / "decisions" / f"ds={START.isoformat()}" / "part-00007.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    gen.generate(tmp_path, START, 1, 500, seed=1)
    assert not stale.exists()


# ---------------------------------------------------------------- clean data
def test_clean_rows_satisfy_design_invariants(clean_run: tuple[Path, dict]) -> None:
    root, _ = clean_run
    for day in _days(4):
        d = _read(root, "decisions", day)
        assert d.height > 0
        bad = d.filter(
            (c("enqueued_at") > c("decided_at"))
            | (c("decided_at").dt.date() != day)
            | _f(c("content_created_at") > c("decided_at"))
            | ((c("decision_mode") == "human") != c("reviewer_id").is_not_null())
            | ((c("decision_mode") == "human") != c("handle_time_s").is_not_null())
            | ((c("outcome") == "violation") != c("policy_category").is_not_null())
            | ((c("action") == "none") != (c("outcome") == "no_violation"))
            | ~_f(c("handle_time_s").is_between(0, 14400)) & (c("decision_mode") == "human")
            | _f(c("views_before_action") < 0)
        )
        assert bad.height == 0, bad.head()
        assert set(d["decision_mode"].unique()) == {"human", "automated"}
        assert set(d["policy_category"].drop_nulls().unique()) <= set(DEFAULT_TAXONOMY)
        assert set(d["queue"].unique()) <= {*DEFAULT_SLA_S, "account_review"}
        assert d["decision_id"].n_unique() == d.height
        # Every table of a clean run stages without a single quarantined or duplicate row.
        for table in TABLES:
            dups, quarantined = _stage(table, _read(root, table, day), day)
            assert dups == 0 and sum(quarantined.values()) == 0, (table, quarantined)


def test_realistic_mix(clean_run: tuple[Path, dict]) -> None:
    root, _ = clean_run
    d = _read_all(root, "decisions", 4)
    share = lambda expr: d.select(expr.mean()).item()  # noqa: E731
    assert 0.5 <= share(c("decision_mode") == "automated") <= 0.7
    assert 0.28 <= share(c("outcome") == "violation") <= 0.45
    assert share(c("views_before_action") == 0) > 0.2
    assert 0 < share(c("views_before_action").is_null()) < 0.05
    assert d["market"].value_counts(sort=True)["market"][0] == "US"
    assert d["content_type"].n_unique() == 5 and d["detection_source"].n_unique() == 5
    # Live queues mostly meet their SLA, but a tail of human decisions misses it.
    wait = (c("decided_at") - c("enqueued_at")).dt.total_seconds()
    live = d.filter(c("queue") == "live_realtime", c("decision_mode") == "human")
    met = live.select((wait <= DEFAULT_SLA_S["live_realtime"]).mean()).item()
    assert 0.8 <= met < 0.99
    v = d.filter(c("outcome") == "violation")
    tta = (c("decided_at") - c("content_created_at")).dt.total_seconds()
    within = v.select((tta <= 86400).mean()).item()
    assert 0.7 <= within < 0.99  # minutes to hours, with a tail beyond a day
    # The spam head of the taxonomy is bigger than its rarest category.
    counts = v["policy_category"].value_counts()
    assert counts["count"].max() > 5 * counts["count"].min()
    # Repeat offenders: some creators collect 3+ violations within the run.
    assert v.group_by("creator_id").len().filter(c("len") >= 3).height > 0
    # Reviewers differ in speed.
    aht = d.filter(c("decision_mode") == "human").group_by("reviewer_id").agg(c("handle_time_s").mean())
    assert aht["handle_time_s"].max() > 1.3 * aht["handle_time_s"].min()
    s = _read_all(root, "shifts", 4)
    assert s["logged_in_s"].is_between(6 * 3600, 9 * 3600).all()
    assert (s["shift_date"] == s["ds"]).all()


def test_diurnal_cycle(clean_run: tuple[Path, dict]) -> None:
    root, _ = clean_run
    hours = _read_all(root, "decisions", 4).group_by(c("decided_at").dt.hour()).len()
    assert hours.height == 24
    assert hours["len"].max() > 1.5 * hours["len"].min()


def test_appeal_snapshots_match_the_appealed_decision(clean_run: tuple[Path, dict]) -> None:
    root, _ = clean_run
    decisions = _read_all(root, "decisions", 4).drop("ds")
    appeals = _read_all(root, "appeals", 4)
    joined = appeals.join(decisions, on="decision_id", how="inner", suffix="_dec")
    # Appeals of the first days also reach decisions from before the range; the rest must join.
    in_range = appeals.filter(c("decided_at").dt.date() >= START)
    assert joined.height == in_range.height > 0
    for col in ("reviewer_id", "decision_mode", "market", "policy_category", "decided_at"):
        assert joined.filter(c(col).ne_missing(c(f"{col}_dec"))).height == 0, col
    assert (joined["outcome"] == "violation").all()
    assert appeals.filter(
        ~((c("decided_at") <= c("appealed_at")) & (c("appealed_at") <= c("resolved_at")))
        | (c("resolved_at").dt.date() != c("ds"))
        | ((c("decision_mode") == "automated") != c("reviewer_id").is_null())
    ).is_empty()
    assert appeals.filter(c("decided_at").dt.date() < c("ds")).height > 0  # appeals of earlier days
    assert set(appeals["appeal_outcome"].unique()) == {"upheld", "overturned"}
    # About 3% of violations are appealed (steady state from the first day on).
    per_day = appeals.group_by("ds").len()["len"]
    violations = decisions.filter(c("outcome") == "violation").height / 4
    assert 0.015 * violations < per_day.min() and per_day.max() < 0.05 * violations


def test_audit_snapshots_match_the_audited_decision(clean_run: tuple[Path, dict]) -> None:
    root, _ = clean_run
    decisions = _read_all(root, "decisions", 4).drop("ds")
    audits = _read_all(root, "qa_audits", 4)
    joined = audits.join(decisions, on="decision_id", how="inner")
    assert joined.height == audits.filter(c("decision_id").str.slice(4, 8) >= "20240101").height > 0
    assert (joined["decision_mode"] == "human").all()
    assert (joined["reviewer_id"] == joined["reviewer_id_right"]).all()
    assert (joined["market"] == joined["market_right"]).all() and (joined["queue"] == joined["queue_right"]).all()
    assert (joined["original_outcome"] == joined["outcome"]).all()
    assert joined.filter(c("original_category").ne_missing(c("policy_category"))).is_empty()
    assert joined.filter((c("audited_at") < c("decided_at")) | (c("audited_at").dt.date() != c("ds"))).is_empty()
    agree = (c("expected_outcome") == c("original_outcome")) & (
        (c("original_outcome") == "no_violation") | (c("expected_category") == c("original_category"))
    )
    rate = audits.select(agree.mean()).item()
    assert 0.8 < rate < 0.99  # reviewers are mostly, not always, right
    assert audits.filter((c("expected_outcome") == "violation") != c("expected_category").is_not_null()).is_empty()


def test_shifts_cover_most_but_not_all_deciders(clean_run: tuple[Path, dict]) -> None:
    root, _ = clean_run
    deciders_without_shift = shifts_without_decisions = 0
    for day in _days(4):
        shifts = set(_read(root, "shifts", day)["reviewer_id"])
        deciders = set(_read(root, "decisions", day)["reviewer_id"].drop_nulls())
        assert len(shifts & deciders) >= 0.6 * len(deciders)
        deciders_without_shift += len(deciders - shifts)
        shifts_without_decisions += len(shifts - deciders)
    assert deciders_without_shift > 0 and shifts_without_decisions > 0


def test_worse_reviewers_are_overturned_more_and_agreed_with_less() -> None:
    world = gm.build_world(seed=6, rows_per_day=20_000)
    day = dt.date(2024, 3, 4)
    rng = gm.rng_for(6, 1)
    dec = gm.gen_decisions(world, day, 40_000, 0, rng, gm.staffing_for(world, day))
    ones = np.ones(len(dec), dtype=bool)
    appeals = gm.select_appeals(world, dec, ones, day, rng, rate=1.0)
    audits = gm.select_audits(world, dec, ones, day, rng, rate=1.0)
    weak = world.accuracy < np.median(world.accuracy)

    human = appeals.cols["decision_mode"] == gm.HUMAN
    weak_appeal = weak[appeals.cols["reviewer_id"][human]]
    overturned = appeals.cols["appeal_outcome"][human] == 1
    assert overturned[weak_appeal].mean() > overturned[~weak_appeal].mean() + 0.03

    a = audits.cols
    agree = (a["expected_outcome"] == a["original_outcome"]) & (a["expected_category"] == a["original_category"])
    weak_audit = weak[a["reviewer_id"]]
    assert agree[weak_audit].mean() < agree[~weak_audit].mean() - 0.02


# ---------------------------------------------------------------- dirty rows
def test_dirty_rows_are_quarantined_exactly_as_the_summary_says(dirty_run: tuple[Path, dict]) -> None:
    root, summary = dirty_run
    for day in _days(2):
        for table in TABLES:
            expected = summary["days"][day.isoformat()][table]
            raw = _read(root, table, day)
            assert raw.height == expected["rows"]
            dups, quarantined = _stage(table, raw, day)
            assert dups == expected["exact_duplicates"], table
            assert quarantined == expected["dirty"], table
        decisions = summary["days"][day.isoformat()]["decisions"]
        assert all(n >= 1 for n in decisions["dirty"].values()), decisions["dirty"]
        assert decisions["exact_duplicates"] >= 1


def test_two_rules_checked_directly(dirty_run: tuple[Path, dict]) -> None:
    """Spot checks without the reference staging: NaN handle times and events of another day."""
    root, summary = dirty_run
    day = START
    d = _read(root, "decisions", day)
    expected = summary["days"][day.isoformat()]["decisions"]["dirty"]
    nan_handle = d.filter(c("handle_time_s").is_nan())
    # Polars orders NaN above every number, so `> 14400` alone would count NaN too.
    out_of_range = d.filter(
        _f(~c("handle_time_s").is_nan() & ((c("handle_time_s") < 0) | (c("handle_time_s") > 14400)))
        | _f(c("views_before_action") < 0)
    )
    assert nan_handle.height >= 1 and out_of_range.height >= 1
    assert nan_handle.height + out_of_range.height == expected["bad_range"]
    other_day = d.filter(c("decided_at").dt.date() != day)
    assert other_day.height == expected["wrong_partition"]
    assert set(other_day["decided_at"].dt.date().to_list()) <= {day - dt.timedelta(days=1), day + dt.timedelta(days=1)}


def test_oddities_are_present_and_not_quarantined(dirty_run: tuple[Path, dict]) -> None:
    root, summary = dirty_run
    d = _read(root, "decisions", START)
    odd = summary["days"][START.isoformat()]["decisions"]["oddities"]
    assert d.filter(c("queue") == "legacy_review").height == odd["unknown_queue"] >= 1
    assert d.filter(~_in("policy_category", list(DEFAULT_TAXONOMY)) & c("policy_category").is_not_null()).height >= 1
    assert d["content_created_at"].null_count() == odd["null_content_created_at"] >= 1
    assert d["views_before_action"].null_count() == odd["null_views_before_action"] >= 1
    assert d.filter(c("decision_mode") == "automated", c("handle_time_s").is_not_null()).height >= 1


def _clean_frames(world: gm.World, day: dt.date) -> dict[str, gm.Frame]:
    rng = gm.rng_for(77, 1)
    staffing = gm.staffing_for(world, day)
    dec = gm.gen_decisions(world, day, 15_000, 0, rng, staffing)
    ones = np.ones(len(dec), dtype=bool)
    today = day.toordinal()
    appeals = gm.select_appeals(world, dec, ones, day, rng, rate=1.0)
    audits = gm.select_audits(world, dec, ones, day, rng, rate=1.0)
    return {
        "decisions": dec,
        "appeals": appeals.take(np.flatnonzero(appeals.cols["due"] == today)),
        "qa_audits": audits.take(np.flatnonzero(audits.cols["due"] == today)),
        "shifts": gm.shifts_frame(world, day, staffing),
    }


@pytest.mark.parametrize("table", TABLES)
def test_every_reason_of_every_table_from_1000_rows(table: str) -> None:
    # 600k rows/day sizes the reviewer pool (1500) so that shifts has over 1000 rows too.
    world = gm.build_world(seed=2, rows_per_day=600_000)
    day = dt.date(2024, 2, 1)
    frame = _clean_frames(world, day)[table]
    assert len(frame) >= 1000
    before = pl.from_arrow(gen._to_arrow_with(table, frame, None))
    assert _stage(table, before, day) == (0, dict.fromkeys(reasons(table), 0))

    injected = inject(table, frame, len(frame), 0.03, gm.rng_for(1), world.n_reviewers)
    raw = pl.from_arrow(gen._to_arrow_with(table, injected.frame, injected.appended))
    dups, quarantined = _stage(table, raw, day)
    assert dups == injected.exact_duplicates >= 1
    assert quarantined == injected.dirty
    assert all(n >= 1 for n in quarantined.values()), quarantined
    assert quarantined["conflicting_duplicate"] % 2 == 0


def test_small_tables_get_rounded_counts_and_no_dirty_at_rate_zero() -> None:
    world = gm.build_world(seed=2, rows_per_day=20_000)
    day = dt.date(2024, 2, 1)
    shifts = gm.shifts_frame(world, day, gm.staffing_for(world, day))
    none = inject("shifts", shifts, len(shifts), 0.0, gm.rng_for(1), world.n_reviewers)
    assert none.appended is None and sum(none.dirty.values()) == 0 and none.eligible.all()
    # 0.002 of ~45 shift rows rounds to nothing: a default run never quarantines a tenth of shifts.
    default = inject("shifts", shifts, len(shifts), 0.002, gm.rng_for(1), world.n_reviewers)
    assert sum(default.dirty.values()) == 0
    some = inject("shifts", shifts, len(shifts), 0.1, gm.rng_for(1), world.n_reviewers)
    units = sum(some.dirty.values()) - some.dirty["conflicting_duplicate"] // 2 + some.exact_duplicates
    assert units == round(0.1 * len(shifts))


def test_big_days_are_written_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gen, "CHUNK_ROWS", 700)
    summary = gen.generate(tmp_path, START, 1, 2500, seed=8, dirty_rate=0.01)
    d = _read(tmp_path, "decisions", START)
    expected = summary["days"][START.isoformat()]["decisions"]
    assert d.height == expected["rows"]
    assert pq.ParquetFile(tmp_path / "decisions" / f"ds={START.isoformat()}" / "part-00000.parquet").num_row_groups >= 4
    dups, quarantined = _stage("decisions", d, START)
    assert (dups, quarantined) == (expected["exact_duplicates"], expected["dirty"])
    ids = d.unique()["decision_id"].drop_nulls()
    # Only the conflicting pairs share an id.
    assert ids.len() - ids.n_unique() == expected["dirty"]["conflicting_duplicate"] // 2


# ---------------------------------------------------------------- anomalies
def test_injected_anomalies_stand_out_against_the_baseline(tmp_path: Path) -> None:
    days = 16
    summary = gen.generate(tmp_path, START, days, 12_000, seed=3, dirty_rate=0.0)
    last = _days(days)[-1].isoformat()
    plan = [a for a in summary["anomalies"] if a["ds"] == last]
    assert {a["kind"] for a in plan} == {"spike", "drop"}
    v = _read_all(tmp_path, "decisions", days).filter(c("outcome") == "violation")
    for a in plan:
        series = (
            v.filter(c("market") == a["market"], c("policy_category") == a["policy_category"])
            .group_by("ds")
            .len()
            .sort("ds")["len"]
            .to_numpy()
        )
        assert len(series) == days
        base = series[:-1]
        z = (series[-1] - base.mean()) / base.std(ddof=1)
        assert max(series[-1], base.mean()) >= 20  # the trend test's volume floor
        assert (z >= 3) if a["kind"] == "spike" else (z <= -3), (a, series)


def test_no_anomalies_when_disabled_or_without_baseline(tmp_path: Path) -> None:
    assert gen.generate(tmp_path / "a", START, 3, 300, seed=1, anomalies=True)["anomalies"] == []
    assert gen.generate(tmp_path / "b", START, 15, 300, seed=1, anomalies=False)["anomalies"] == []


@pytest.mark.parametrize(
    "kwargs",
    [{"days": 0}, {"rows_per_day": 0}, {"seed": -1}, {"dirty_rate": 0.5}, {"dirty_rate": -0.1}],
)
def test_bad_arguments_raise(tmp_path: Path, kwargs: dict) -> None:
    args = {"output": tmp_path, "start": START, "days": 1, "rows_per_day": 100, "seed": 1} | kwargs
    with pytest.raises(ValueError):
        gen.generate(**args)


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--days", "0"], "argument --days: must be an integer >= 1: '0'"),
     (["--rows-per-day", "0"], "argument --rows-per-day: must be an integer >= 1: '0'"),
     (["--seed", "-1"], "seed must be >= 0, got -1"), (["--dirty-rate", "0.5"], "dirty_rate must be within 0..0.2"),
     # Dates past the calendar's ends were an OverflowError traceback, after writing the first days.
     (["--start", "9999-12-31", "--days", "2"], "2 day(s) from 9999-12-31 (and the 6 days before it"),
     (["--start", "0001-01-03"], "1 day(s) from 0001-01-03 (and the 6 days before it")],
)
def test_command_line_turns_bad_arguments_into_one_line(tmp_path: Path, capsys, flags: list[str], message: str) -> None:
    args = {"--start": START.isoformat(), "--days": "1", "--rows-per-day": "100", "--seed": "1"} | dict(zip(flags[::2], flags[1::2]))
    argv = ["generate", "--output", str(tmp_path / "out"), *(x for kv in args.items() for x in kv)]
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # refused by argparse, before the command runs
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"riskinsight: error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_progress_reports_each_day(tmp_path: Path) -> None:
    lines: list[str] = []
    gen.generate(tmp_path, START, 2, 200, seed=1, progress=lines.append)
    assert len(lines) == 2 and "2024-01-02" in lines[1] and "decisions=" in lines[1]


@pytest.mark.parametrize("table", TABLES)
def test_injected_dirty_rows_are_what_the_real_staging_quarantines(table: str, tmp_path: Path) -> None:
    """The test above checks the generator against this file's own reading of DESIGN §3; this one
    against the job's staging itself (the Polars engine's checkpointing stage)."""
    from jobs.engines import get_engine
    from transforms.params import Params

    world = gm.build_world(seed=2, rows_per_day=600_000)
    day = dt.date(2024, 2, 1)
    frame = _clean_frames(world, day)[table]
    injected = inject(table, frame, len(frame), 0.05, gm.rng_for(1), world.n_reviewers)
    raw = pl.from_arrow(gen._to_arrow_with(table, injected.frame, injected.appended))
    engine = get_engine("polars")
    try:
        staged = engine.stage(engine.input_frame(table, raw), table, Params(ds=day), tmp_path / "s", source=table)
        day_rows = staged.to_native().collect()
    finally:
        engine.close()
    assert dict(day_rows.group_by("reason").len().drop_nulls("reason").iter_rows()) == {
        reason: n for reason, n in injected.dirty.items() if n
    }
    assert raw.height - day_rows.height == injected.exact_duplicates >= 1


def test_the_command_shows_each_day_and_counts_the_rows(tmp_path: Path, capsys, monkeypatch) -> None:
    argv = ["generate", "--output", str(tmp_path / "g"), "--start", "2024-01-01", "--days", "3",
            "--rows-per-day", "200", "--seed", "1"]  # fmt: skip
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # the bar is for a terminal only
    assert cli.main(argv) == 0
    out = capsys.readouterr()
    assert "3/3" in out.err and "2024-01-03 (3/3)" in out.err  # the bar, with its latest day
    written = sum(pl.read_parquet(f).height for f in (tmp_path / "g").rglob("*.parquet"))
    assert out.out.strip().endswith(f"({written:,} rows)")
    assert cli.main([*argv, "--verbose"]) == 0
    assert "generate 2024-01-02 (2/3): decisions=" in capsys.readouterr().err


def test_a_days_own_dirty_rate_applies_to_every_table_of_that_day_and_is_range_checked(tmp_path: Path) -> None:
    """The demo's quiet days and incidents: a day's rate from dirty_rate_on, for decisions and for
    the appeals, audits and shifts of that day alike."""
    day2 = START + dt.timedelta(days=1)
    summary = gen.generate(tmp_path / "in", START, 2, 3000, 7, dirty_rate=0.0, dirty_rate_on={day2: 0.2})
    dirty = {d: {t: sum(summary["days"][d][t]["dirty"].values()) for t in gen.TABLES} for d in summary["days"]}
    assert set(dirty[START.isoformat()].values()) == {0}
    assert all(n > 0 for n in dirty[day2.isoformat()].values()), dirty
    assert summary["dirty_rate_on"] == {day2.isoformat(): 0.2}
    with pytest.raises(gen.GenerateArgumentError, match="dirty_rate must be within 0..0.2, got 5.0"):
        gen.generate(tmp_path / "bad", START, 1, 100, 7, dirty_rate_on={START: 5.0})
