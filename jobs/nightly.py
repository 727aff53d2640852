"""The nightly run of one ds: prepare (read, stage, compute, write aside) -> gate -> publish -> report.

Each phase is a function of (output, ds) so Airflow can run them as separate idempotent tasks;
`run_days` chains them for the CLI. The only clock read is the run's start time, at this edge.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import narwhals.stable.v2 as nw
import polars as pl

from jobs import faults, lineage
from jobs import warehouse as wh
from jobs.background_import import import_in_background
from jobs.config import Config, load_config
from jobs.engines import get_engine
from jobs.engines.base import Engine
from jobs.errors import (
    CandidateMissing, CandidateReplaced, DQGateFailed, RiskInsightError, WarehouseConflict, WarehouseUnavailable, first_line, range_failure,
)
from jobs.manifest import OFFENDER_CATEGORIES, StageTimer, code_revision, versions
from transforms import staging
from transforms.input_profile import input_profile
from transforms.quarantine import quarantine
from transforms.params import Params, recorded_params
from transforms.queue_daily import queue_daily
from transforms.repeat_offenders import add_offender_categories, creator_category_daily, offender_pairs, offender_tables
from transforms.reviewer_daily import reviewer_daily
from transforms.schemas import INPUT_TABLES, OUTPUT_GRAINS, OUTPUT_TABLES
from transforms.violation_daily import violation_daily
from transforms.violation_trends import violation_trends

PART = "part-00000.parquet"
TRAILING_DAYS = 7  # the DQ volume check compares ds with the last 7 published days
# Rows of history one part of repeat_offenders may hold (Polars): nearly every row of the 30 days is
# a group of its own, and 94 M rows (10 M decisions a day) took 4.3 GiB in 4 parts, 1.8 GiB in 16.
HISTORY_ROWS_PER_PART = 6_000_000

# (table, first, last) -> {day: partition}: where a run reads the published earlier days.
History = Callable[[str, dt.date, dt.date], dict[dt.date, Path | str]]


@dataclass(frozen=True)
class Candidate:
    """A ds computed and written aside, not yet published. Re-derivable from (output, ds).

    With `run_id`, the candidate of that run only: another run of the same ds prepares in the same
    place, and gate and publish read the manifest under the ds lock, so they refuse a candidate
    that was replaced since instead of validating or publishing another run's tables.
    """

    output: Path
    ds: dt.date
    run_id: str | None = None

    @property
    def path(self) -> Path:
        return wh.candidate_dir(self.output, self.ds)

    def table_dir(self, table: str) -> Path:
        return self.path / "tables" / table

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @property
    def dq_path(self) -> Path:
        return self.path / "dq.json"

    def manifest(self) -> dict:
        data = wh.read_json(self.manifest_path)
        if data is None:
            raise CandidateMissing(f"no prepared candidate for ds={self.ds} in {self.output} (run prepare first)")
        if self.run_id is not None and data.get("run_id") != self.run_id:
            raise CandidateReplaced(
                f"the candidate of ds={self.ds} is run {data.get('run_id')}'s, not run {self.run_id}'s: "
                "another run of that day prepared it since; this run publishes nothing"
            )
        return data

    def pinned(self) -> Candidate:
        """This candidate, pinned to the run whose manifest is in place now."""
        return dataclasses.replace(self, run_id=self.manifest()["run_id"])

    def read_table(self, table: str) -> pl.DataFrame:
        return pl.read_parquet(self.table_dir(table) / PART)


def load_candidate(output: str | Path, ds: dt.date, run_id: str | None = None) -> Candidate:
    """The prepared candidate of ds (of run `run_id` only, when given); raises if there is none."""
    candidate = Candidate(Path(output), ds, run_id)
    candidate.manifest()
    return candidate


@dataclass(frozen=True)
class DayResult:
    ds: dt.date
    verdict: str
    published: bool
    rows_written: dict[str, int]
    report: Path | str | None = None


def input_partitions(eng: Engine, input_dir: str | Path, ds: dt.date) -> dict[str, Path | str]:
    """Every input table's partition of ds, or the one-line InputMissing of the first that is
    missing or incomplete. Checked before anything is written: a mistyped --input (or a day whose
    upstream has not landed) must not leave a lock file in the warehouse."""
    return {t: eng.input_partition(input_dir, t, ds) for t in INPUT_TABLES}


def _as_engine(engine: str | Engine) -> Engine:
    return get_engine(engine) if isinstance(engine, str) else engine


def _count(frame: nw.LazyFrame) -> nw.LazyFrame:
    return frame.select(nw.len().cast(nw.Int64).alias("rows"))


def prepare_day(
    input_dir: str | Path,
    output_dir: str | Path,
    ds: dt.date,
    engine: str | Engine = "polars",
    config: Config | None = None,
    run_started_at: dt.datetime | None = None,
    history: History | None = None,
    lock_wait: float = 0.0,
) -> Candidate:
    """Read, stage and compute every output table of ds, and write them aside with the manifest.

    `history` locates the published earlier days (default: output's own partitions); `lock_wait`:
    seconds to wait for another run of ds (`run --phase prepare --lock-wait`)."""
    output = Path(output_dir)
    config = config or Config()
    eng = _as_engine(engine)
    params = config.params(ds)
    timer = StageTimer()
    started = (run_started_at or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    candidate = Candidate(output, ds)
    partitions = input_partitions(eng, input_dir, ds)
    with wh.ds_lock(output, ds, wait_s=lock_wait):
        if candidate.path.exists():
            shutil.rmtree(candidate.path)
        try:
            with timer.stage("read_stage"):
                raw = {t: eng.read_input(t, partitions[t]) for t in INPUT_TABLES}
                classified = {
                    t: eng.stage(raw[t], t, params, candidate.path / "_scratch" / t, source=f"{t} {partitions[t]}")
                    for t in INPUT_TABLES
                }
            faults.point("after_staging")
            with timer.stage("compute"):
                # Built inside the stage: an engine may compute a large table part by part right here.
                staged = {t: staging.staged(classified[t], t) for t in INPUT_TABLES}
                frames: dict[str, nw.LazyFrame] = {
                    "reviewer_daily": reviewer_daily(
                        staged["decisions"], staged["shifts"], staged["qa_audits"], staged["appeals"], params, eng.aggregate
                    ),
                    "queue_daily": queue_daily(staged["decisions"], params, eng.aggregate),
                    "violation_daily": violation_daily(staged["decisions"], staged["appeals"], params, eng.aggregate_sets),
                    "creator_category_daily": eng.by_key_parts(staged["decisions"], ["creator_id"], creator_category_daily),
                    "quarantine": quarantine(classified, eng.encode_rows),
                    "_profile": input_profile(staged, params),
                }
                for t in INPUT_TABLES:
                    frames[f"_raw_rows:{t}"] = _count(raw[t])
                    frames[f"_reasons:{t}"] = staging.reason_counts(classified[t])
                tables = eng.collect(frames)
            with timer.stage("history"):
                read_history = lineage.record(output, ds, params)
                tables.update(_history_tables(eng, history or partial(wh.published_partitions, output), params, tables))
            with timer.stage("write"):
                rows_written, table_sha256 = {}, {}
                for table in OUTPUT_TABLES:
                    target = candidate.table_dir(table)
                    target.mkdir(parents=True, exist_ok=True)
                    # Sorted by grain so a rerun writes identical files, not just equal sets of rows. Lazily:
                    # Polars' lazy multi-key sort took 1.2 s where the eager one took 2.0 s (3 M rows).
                    tables[table] = tables[table].lazy().sort(_sort_keys(table), nulls_last=True).collect()
                    # zstd at level 1: creator_category_daily (3 M rows at 10 M decisions) wrote in 0.33 s
                    # instead of 0.55-0.7 s at Polars' default level 3, for files 2.7 % larger.
                    try:
                        tables[table].write_parquet(target / PART, compression="zstd", compression_level=1)
                    except pl.exceptions.PolarsError as exc:  # Polars' own wrapping of a full or failing disk
                        raise WarehouseUnavailable(f"output {target}: cannot write {table}: {first_line(exc)}") from exc
                    rows_written[table] = tables[table].height
                    table_sha256[table] = lineage.file_sha256(target / PART)
                    faults.point(f"after_write:{table}")
                shutil.rmtree(candidate.path / "_scratch", ignore_errors=True)

            raw_rows = {t: int(tables[f"_raw_rows:{t}"]["rows"][0]) for t in INPUT_TABLES}
            reasons = {t: _reason_dict(tables[f"_reasons:{t}"]) for t in INPUT_TABLES}
            distinct = {t: sum(reasons[t].values()) for t in INPUT_TABLES}
            for t in INPUT_TABLES:
                reasons[t].pop("", None)
            profile = [
                {"table": r["table"], "figure": r["figure"], "value": r["value"]} for r in tables["_profile"].iter_rows(named=True)
            ]
            manifest = {
                "ds": ds.isoformat(),
                "engine": eng.name,
                "versions": {**versions(), **eng.versions()},
                "code_revision": code_revision(),
                "run_id": _new_run_id(started, wh.attempts_dir(output, ds)),
                "run_started_at": started.isoformat().replace("+00:00", "Z"),
                "config": config.source,
                "config_sha256": config.sha256,
                # Every parameter the tables were computed with, whatever the config file says
                # later: the report describes the tables in these terms (its baseline and anomaly
                # notes, the offenders' threshold), and a change between days is on record.
                "params": _recorded_params(params, config),
                "inputs": {
                    t: {"path": _absolute(partitions[t]), "files": len(eng.input_files(partitions[t])), "rows": raw_rows[t]}
                    for t in INPUT_TABLES
                },
                "distinct_rows": distinct,
                "duplicates_dropped": {t: raw_rows[t] - distinct[t] for t in INPUT_TABLES},
                "quarantined": reasons,
                "staged_rows": {t: distinct[t] - sum(reasons[t].values()) for t in INPUT_TABLES},
                "profile": profile,
                "rows_written": rows_written,
                # What later days' history records of this day, and what this run read of earlier
                # ones (jobs.lineage: which published days are stale after a rerun or a backfill).
                "table_sha256": table_sha256,
                "history": read_history,
                OFFENDER_CATEGORIES: tables[OFFENDER_CATEGORIES].sort("policy_category").to_dicts(),
                "stage_seconds": timer.seconds,
                "stage_cpu_seconds": timer.cpu_seconds,
                "dq": {"verdict": "pending"},
                "published": False,
            }
            wh.write_json(candidate.manifest_path, manifest)
            candidate = dataclasses.replace(candidate, run_id=manifest["run_id"])
        except BaseException:
            # A half-written candidate is of no use, and its staging checkpoint is gigabytes on a
            # large day: a prepare that fails leaves nothing behind (the next run would remove it).
            shutil.rmtree(candidate.path, ignore_errors=True)
            raise
    return candidate


def _recorded_params(params: Params, config: Config) -> dict:
    return {**recorded_params(params), "dq": dataclasses.asdict(config.dq_thresholds())}


def _absolute(partition: Path | str) -> str:
    """A local input path made absolute (a relative one means nothing away from the run's working
    directory); a URI as it is."""
    return str(partition) if wh.is_uri(partition) else os.path.abspath(partition)


def _new_run_id(started: dt.datetime, attempts: Path) -> str:
    """`<start, to the second>-<pid>`, or with `-2`, `-3`... when that names an attempt already recorded.

    A run records its attempt under `_runs/ds=D/attempts/<run id>/`. Two runs of one ds within the
    same second, in one process (a scripted rerun, a test, any rerun with a fixed --run-ts) or in
    containers that give their processes the same pid, would share an id, and the later one would
    overwrite the earlier one's record. Called under the ds lock, so no other run records meanwhile.
    """
    base = f"{started.strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}"
    run_id, n = base, 1
    while (attempts / run_id).exists():
        n += 1
        run_id = f"{base}-{n}"
    return run_id


def _sort_keys(table: str) -> list[str]:
    return list(OUTPUT_GRAINS[table]) or ["source_table", "record_id", "reason", "row"]


def _reason_dict(counts: pl.DataFrame) -> dict[str, int]:
    """reason -> rows; staged rows (null reason) under the key ''."""
    return {(r["reason"] or ""): int(r["rows"]) for r in counts.iter_rows(named=True)}


def _history_tables(eng: Engine, history: History, params, today: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """violation_trends, repeat_offenders and the offenders' categories: today's tables plus the
    published earlier days.

    The partition of ds itself is excluded from history: this run replaces it.
    """
    ds = params.ds
    reach = lineage.history_days(params)

    def window(daily: str, days: int) -> nw.LazyFrame:
        earlier = history(daily, ds - dt.timedelta(days=days), ds - dt.timedelta(days=1))
        parts = [eng.frame(today[daily].with_columns(pl.lit(ds).alias("ds")))]
        before = eng.read_history(daily, earlier)
        if before is not None:
            parts.insert(0, before.select(parts[0].columns))
        return nw.concat(parts, how="vertical")

    # The 30 days are aggregated once, per (offender, category), for both offender tables.
    offenders = eng.by_key_parts_tables(
        window("creator_category_daily", reach["creator_category_daily"]), ["creator_id"],
        partial(offender_pairs, params=params), offender_tables, rows_per_part=HISTORY_ROWS_PER_PART,
    )
    out = eng.collect({
        # Whole, never in key parts: a day is observed when it was run, whatever combinations it had,
        # and a part of the (market, category) keys without the ALL rows did not see every such day
        # (its combinations' zeros were left out of their means). violation_daily is a rollup of a
        # few hundred rows a day, so its window never needs parts.
        "violation_trends": violation_trends(window("violation_daily", reach["violation_daily"]), params=params),
        **offenders,
    })
    # One row per category and part of creators, a few dozen in all: added up where they are.
    partials = nw.from_native(out[OFFENDER_CATEGORIES].lazy())
    out[OFFENDER_CATEGORIES] = add_offender_categories(partials).to_native().collect()
    return out


def gate_day(candidate: Candidate, config: Config | None = None) -> dict:
    """Validate the candidate; record dq.json; raise DQGateFailed (nothing published) on a critical failure."""
    from expectations.gate import OUTPUT_SUITES, InputFigures, evaluate
    from transforms.params import OffenderParams, from_recorded

    config = config or Config()
    with wh.ds_lock(candidate.output, candidate.ds):
        manifest = candidate.manifest()
        timer = StageTimer()
        with timer.stage("dq"):
            # As Polars tables: the gate counts NaN, and all of creator_category_daily (millions of
            # rows), in Polars, and converts to pandas only the tables it validates row by row.
            outputs = {m.TABLE: candidate.read_table(m.TABLE) for m in OUTPUT_SUITES}
            figures = InputFigures(
                raw_rows={t: v["rows"] for t, v in manifest["inputs"].items()},
                distinct_rows=manifest["distinct_rows"],
                duplicates_dropped=manifest["duplicates_dropped"],
                quarantined=manifest["quarantined"],
                profile={(p["table"], p["figure"]): p["value"] for p in manifest["profile"]},
                trailing_volumes=_trailing_volumes(candidate.output, candidate.ds),
            )
            # The offender minimum the tables were computed with, as prepare recorded it, even if the
            # config changed since (a candidate prepared before manifests held params: the config's).
            params = config.params(candidate.ds)
            if recorded := manifest.get("params", {}).get("offenders"):
                params = dataclasses.replace(params, offenders=from_recorded(OffenderParams, recorded))
            result = evaluate(outputs, figures, config.dq_thresholds(), params)
        # run_id ties dq.json to its manifest: the latest attempt's two files are written one after
        # the other, and a kill between them leaves a pair from two runs that a reader must tell apart.
        dq = {"ds": candidate.ds.isoformat(), "run_id": manifest["run_id"], **result.to_json()}
        manifest["dq"] = result.summary()
        timer.record(manifest)
        wh.write_json(candidate.dq_path, dq)
        wh.write_json(candidate.manifest_path, manifest)
        if result.verdict == "fail":
            # The failure is recorded for the ds and archived; the published tables stay as they were.
            _record_attempt(candidate, manifest, dq, published=False)
            failed = ", ".join(manifest["dq"]["critical_failed"])
            # Where to look, relative to the warehouse (a URI warehouse's run files are pushed to the
            # same place; its candidate stays in a local mirror, so the candidate is not named here).
            dq_file = wh.runs_dir(Path("."), candidate.ds) / "dq.json"
            raise DQGateFailed(f"ds={candidate.ds}: DQ gate failed ({failed}); nothing published; results in {dq_file.as_posix()} of the warehouse")
        return dq


def _trailing_volumes(output: Path, ds: dt.date, days: int = TRAILING_DAYS) -> list[int]:
    """Raw decision rows of the most recent observed days before ds, newest first."""
    observed = [d for d in wh.published_days(output, "violation_daily") if d < ds][-days:]
    volumes = []
    for d in reversed(observed):
        manifest = wh.read_json(wh.published_run_file(output, d, "manifest.json"))
        if manifest and manifest.get("published"):
            volumes.append(int(manifest["inputs"]["decisions"]["rows"]))
    return volumes


def _record_attempt(candidate: Candidate, manifest: dict, dq: dict, *, published: bool) -> None:
    manifest = {**manifest, "published": published}
    runs = wh.runs_dir(candidate.output, candidate.ds)
    attempt = wh.attempts_dir(candidate.output, candidate.ds) / manifest["run_id"]
    wh.write_json(attempt / "manifest.json", manifest)
    wh.write_json(attempt / "dq.json", dq)
    if not published:
        wh.write_json(runs / "manifest.json", manifest)
        faults.point("attempt:manifest_written")
        wh.write_json(runs / "dq.json", dq)


def published_run(output: Path | str, ds: dt.date, run_id: str) -> dict | None:
    """The manifest of ds's publication in place if run `run_id` published it, else None.

    A manifest in place that is not JSON (truncated, edited by hand) is no run's: a rerun of ds
    publishes over it, which is what the WarehouseConflict naming that file advises. Raised here,
    it made every rerun of the day fail the same way after its gate."""
    try:
        manifest = wh.read_json(wh.published_run_file(Path(output), ds, "manifest.json"))
    except WarehouseConflict:
        return None
    return manifest if manifest is not None and manifest.get("run_id") == run_id else None


def publish_day(candidate: Candidate) -> dict:
    """Swap the candidate's tables and run files in; returns the published manifest.

    Idempotent: a retry after a publish that flipped and died before it finished (an Airflow retry)
    returns the publication in place. Published again, the same run became `previous` too, and the
    real previous publication was deleted at once instead of being kept one round."""
    with wh.ds_lock(candidate.output, candidate.ds):
        run_id = candidate.run_id or candidate.manifest()["run_id"]
        if (done := published_run(candidate.output, candidate.ds, run_id)) is not None:
            # A retry of a publish that completed; a candidate in place now is another run's, kept.
            if (wh.read_json(candidate.manifest_path) or {}).get("run_id") == run_id:
                shutil.rmtree(candidate.path, ignore_errors=True)
            return done
        manifest = candidate.manifest()
        if manifest["dq"].get("verdict") not in ("pass", "warn"):
            raise RiskInsightError(f"ds={candidate.ds}: candidate has DQ verdict {manifest['dq'].get('verdict')!r}; not publishing")
        dq = wh.read_json(candidate.dq_path)
        timer = StageTimer()
        with timer.stage("publish"):
            manifest["published"] = True
            wh.write_json(candidate.manifest_path, manifest)
            # Recorded before the flip, so that a run killed right after it still has its attempt
            # (and its run id is taken: the next run of ds gets a new one).
            _record_attempt(candidate, manifest, dq or {}, published=True)
            try:
                wh.publish(
                    candidate.output,
                    candidate.ds,
                    # Unique even when a rerun reuses the run id (same --run-ts in one process).
                    f"{manifest['run_id']}-{secrets.token_hex(4)}",
                    {t: candidate.table_dir(t) for t in OUTPUT_TABLES},
                    {"manifest.json": candidate.manifest_path, "dq.json": candidate.dq_path},
                )
            except Exception:
                if published_run(candidate.output, candidate.ds, manifest["run_id"]) is None:
                    shutil.rmtree(wh.attempts_dir(candidate.output, candidate.ds) / manifest["run_id"], ignore_errors=True)
                raise
        timer.record(manifest)
        _record_published_stages(candidate.output, candidate.ds, timer)
        shutil.rmtree(candidate.path, ignore_errors=True)
    return manifest


def run_day(
    input_dir: Path | str,
    output: Path,
    ds: dt.date,
    engine: Engine,
    config: Config,
    *,
    report: bool = True,
    lock_wait: float = 0.0,
    run_started_at: dt.datetime | None = None,
    history: History | None = None,
) -> DayResult:
    """One day end to end under its lock: prepare, gate (with the failure's page when `report`),
    publish, then the day's page (or, without `report`, the removal of its older page).

    What `run_days` does per day for a local warehouse, and `jobs.remote_run` inside each day's
    mirror (`history` then points at the remote partitions). Raises what the phases raise."""
    with wh.ds_lock(output, ds, wait_s=lock_wait):
        candidate = prepare_day(input_dir, output, ds, engine, config, run_started_at=run_started_at, history=history)
        if report:
            gate_day_reporting_failure(candidate, config)
        else:
            gate_day(candidate, config)
        manifest = publish_day(candidate)
        faults.point("before_report")
        try:
            report_path = _report_published(output, ds, config) if report else _remove_page(output, ds)
        except RiskInsightError as exc:
            # The day is published whatever the page does: the error says so (its tables are in place).
            raise type(exc)(f"ds={ds} was published, but its report failed: {exc}") from exc
        except OSError as exc:
            # A full disk or a refused write of the page: as a bare OSError it read as if nothing
            # had been published, and it ended the range before its later days ran.
            raise WarehouseUnavailable(f"ds={ds} was published, but its report failed: {exc}") from exc
    return DayResult(ds, manifest["dq"]["verdict"], True, manifest["rows_written"], report_path)


def _remove_page(output: Path, ds: dt.date) -> None:
    """After a publication without a report, the day's page of the publication before (or of a
    failed run) is removed, and the index rewritten without its link: kept, it described tables
    that are no longer published. `riskinsight report` renders it again."""
    from jobs.report import render_index, report_path

    page = report_path(output, ds)
    if page.exists():
        page.unlink()
        render_index(output)


def _report_published(output: Path, ds: dt.date, config: Config) -> Path:
    """Render the day just published and time it into that publication's manifest. Called under the
    ds lock: after it, a run of ds that published meanwhile had its manifest rewritten with this
    run's report time (or a `--no-report` run's manifest gained a report stage), and the page could
    describe a publication other than this run's."""
    from jobs.report import render_day

    timer = StageTimer()
    with timer.stage("report"):
        path = render_day(output, ds, pseudonym_key=config.pseudonym_key)
    _record_published_stages(output, ds, timer)
    return path


def gate_day_reporting_failure(candidate: Candidate, config: Config) -> dict:
    """gate_day; after a failed gate the day's page (and the index) say so before it raises.

    Over a publication in place, the page keeps showing it under a banner naming the failed run; a
    day that failed its first run gets the page explaining what the gate found, and so a row in the
    index, which lists the days that have a page. (`run` with a report, and the DAG's gate tasks,
    after which no report task runs.)
    """
    try:
        return gate_day(candidate, config)
    except DQGateFailed:
        from jobs.report import render_day

        render_day(candidate.output, candidate.ds, pseudonym_key=config.pseudonym_key)
        raise


def _record_published_stages(output: Path, ds: dt.date, timer: StageTimer) -> None:
    path = wh.published_run_file(output, ds, "manifest.json")
    manifest = wh.read_json(path)
    if manifest is not None:
        timer.record(manifest)
        wh.write_json(path, manifest)


def run_days(
    input_dir: str | Path,
    output_dir: str | Path,
    days: list[dt.date],
    engine: str | Engine = "polars",
    config: Config | str | Path | None = None,
    *,
    report: bool = True,
    lock_wait: float = 0.0,
    run_started_at: dt.datetime | None = None,
    on_day: Callable[[dt.date, DayResult | RiskInsightError], None] | None = None,
    on_stale_note: Callable[[str], None] | None = None,
) -> list[DayResult]:
    """Run every day in order (later days' trends read earlier days). A day that fails does not stop
    the others; the first failure is raised at the end with every failed day named.

    A URI warehouse's stale-history note (lineage.stale_note) is computed here, from the remote,
    before its mirror goes, and handed to on_stale_note; the CLI computes a local one itself."""
    cfg = config if isinstance(config, Config) else load_config(config)
    # great-expectations takes seconds to import; do it while the first day computes.
    import_in_background("expectations.gate")
    eng = _as_engine(engine)
    results: list[DayResult] = []
    failures: list[tuple[dt.date, RiskInsightError]] = []
    remote = None
    try:
        day_runner: Callable[..., DayResult] = partial(run_day, input_dir, Path(output_dir))
        if wh.is_uri(output_dir):
            from jobs.remote_run import RemoteRun

            remote = RemoteRun(str(output_dir), eng)
            day_runner = partial(remote.run_day, input_dir)
        for ds in sorted(days):
            try:
                # Before day_runner, which takes the ds lock (or a URI warehouse's lease and mirror).
                input_partitions(eng, input_dir, ds)
                result = day_runner(ds, eng, cfg, report=report, lock_wait=lock_wait, run_started_at=run_started_at)
                results.append(result)
                if on_day:
                    on_day(ds, result)
            except RiskInsightError as exc:
                failures.append((ds, exc))
                if on_day:
                    on_day(ds, exc)
        if remote is not None and on_stale_note is not None and days:
            if note := remote.stale_note(sorted(days), cfg.params(max(days))):
                on_stale_note(note)
    finally:
        if remote is not None:
            remote.close()
        eng.close()
    if failures:
        raise range_failure(failures)
    return results
