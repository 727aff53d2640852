"""`riskinsight` command line: generate, run, report, demo, dsa (DESIGN §9).

Expected errors print one line (`riskinsight: error: ...`) and exit with their code
(2 usage, 3 DQ gate failed, 4 input missing or unreadable, 5 ds locked); --verbose adds the traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import math
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from jobs.errors import RiskInsightError, UsageError, range_failure

DEMO_START = dt.date(2024, 1, 1)
DEMO_DAYS = 35
DEMO_ROWS = 20_000
# Most demo days are clean and pass the gate; every ninth, counting back from the last (the page the
# demo prints), has an upstream incident's dirty and unknown rows and warns. With dirt on every day
# every day warned, and the index's DQ column said nothing.
DEMO_INCIDENT_EVERY = 9
DEMO_INCIDENT_DIRTY_RATE = 0.002


def demo_dirty_rates(days: Sequence[dt.date]) -> dict[dt.date, float]:
    """The demo's dirty rate per day: 0 on quiet days, DEMO_INCIDENT_DIRTY_RATE on incident days."""
    last = len(days) - 1
    return {d: DEMO_INCIDENT_DIRTY_RATE if (last - i) % DEMO_INCIDENT_EVERY == 0 else 0.0 for i, d in enumerate(days)}


def iso_date(text: str) -> dt.date:
    """A real calendar date in YYYY-MM-DD form, nothing else (it ends up in paths)."""
    try:
        # fromisoformat alone also takes week dates (2024-W11-4) and basic forms (20240314).
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            raise ValueError
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a calendar date in YYYY-MM-DD form: {text!r}") from None


def utc_timestamp(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 timestamp: {text!r}") from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be an integer >= {low}: {text!r}")
    return value


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


def positive_int(text: str) -> int:
    """An integer >= 1 (argparse names the flag: `argument --days: must be an integer >= 1: '0'`)."""
    return _int_at_least(text, 1)


def non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    # nan compares false with everything: a lock wait of nan seconds never timed out.
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0: {text!r}")
    return value


def run_window(ds: dt.date | None, start: dt.date | None, end: dt.date | None, lookback: int) -> list[dt.date]:
    """Days to run: ds (or start..end) and the `lookback` days before the first of them."""
    if ds is not None and (start is not None or end is not None):
        # Not one silently winning over the other: `--ds D --start A --end B` ran D alone.
        raise UsageError("give either --ds D or --start D --end D, not both")
    if ds is not None:
        start = end = ds
    if start is None or end is None:
        raise UsageError("give --ds D, or --start D and --end D")
    if end < start:
        raise UsageError(f"--end {end} is before --start {start}")
    try:
        first = start - dt.timedelta(days=lookback)
    except OverflowError:
        raise UsageError(f"--lookback {lookback} reaches before the first date there is (0001-01-01)") from None
    from jobs.config import MAX_DAYS

    if (span := (end - first).days + 1) > MAX_DAYS:
        # A typo in a year (2020 for 2024) ran a thousand days and printed a line for each.
        with_lookback = f" with --lookback {lookback}" if lookback else ""
        raise UsageError(f"{first}..{end}{with_lookback} is {span} days; a run takes at most {MAX_DAYS} days (about ten years)")
    return [first + dt.timedelta(days=i) for i in range(span)]


def _progress(days: list[dt.date], verbose: bool):
    """A progress bar for multi-day runs (stderr), and each day's line as soon as it is done.

    A published day's line goes to stdout when the day finishes, not after the whole range: in a
    range where a later day fails, the days that did publish still say so (and where their reports are).
    """
    from tqdm import tqdm

    # disable=None: no bar where stderr is not a terminal (cron, systemd, a pipe): its carriage-return
    # frames would fill the log. The day lines are written either way.
    bar = tqdm(total=len(days), unit="day", disable=True if len(days) < 2 else None, file=sys.stderr, dynamic_ncols=True)

    def on_day(ds, outcome):
        if isinstance(outcome, RiskInsightError):
            if len(days) > 1:  # a single day's failure is the final error line itself
                bar.write(f"{ds}: FAILED: {outcome}", file=sys.stderr)
        else:
            line = f"{outcome.ds}: {outcome.verdict}, published {sum(outcome.rows_written.values())} rows"
            bar.write(line + (f", report {outcome.report}" if outcome.report else ""), file=sys.stdout)
            # Flushed now: under cron or systemd stdout is a pipe or a file, block-buffered, and a run
            # killed later (a lock wait, the OOM killer) lost the lines of the days it did publish.
            sys.stdout.flush()
            bar.set_postfix_str(f"{ds} {outcome.verdict}")
        bar.update(1)

    return bar, on_day


def _generate_progress(days: int, verbose: bool):
    """A bar over the days being generated (stderr), its note the latest step; every step's line
    with --verbose. A day of millions of decisions takes a while, and is written in chunks. The bar
    starts with the first step, so an argument generate() refuses leaves its one error line alone."""
    from tqdm import tqdm

    bar: tqdm | None = None

    def on_step(message: str) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=days, unit="day", file=sys.stderr, dynamic_ncols=True, disable=None)  # none in a log
        if verbose:
            bar.write(message, file=sys.stderr)
        bar.set_postfix_str(message.removeprefix("generate "), refresh=False)
        if _DAY_DONE.search(message):
            bar.update(1)
        else:
            bar.refresh()

    def close() -> None:
        if bar is not None:
            bar.close()

    return close, on_step


_DAY_DONE = re.compile(r"\(\d+/\d+\):")  # generate's line for a finished day: "generate D (i/N): counts"


def _generate(output: Path | str, start: dt.date, days: int, rows_per_day: int, seed: int, dirty_rate: float,
              verbose: bool, dirty_rate_on: dict[dt.date, float] | None = None) -> dict:  # fmt: skip
    from jobs.generate import generate

    close, on_step = _generate_progress(days, verbose)
    try:
        return generate(output, start, days, rows_per_day, seed, dirty_rate=dirty_rate, progress=on_step,
                        dirty_rate_on=dirty_rate_on)  # fmt: skip
    finally:
        close()


def cmd_generate(args: argparse.Namespace) -> int:
    summary = _generate(args.output, args.start, args.days, args.rows_per_day, args.seed, args.dirty_rate, args.verbose)
    total = sum(t["rows"] for day in summary["days"].values() for t in day.values())
    print(f"generated {args.days} day(s) from {args.start} into {args.output} ({total:,} rows)")
    return 0


def _load_config(path: str | None):
    """load_config, its notes (a queue not among the defaults, say) printed on stderr."""
    from jobs.config import load_config

    config = load_config(path)
    for note in config.notes:
        print(f"riskinsight: note: {note}", file=sys.stderr)
    return config


def cmd_run(args: argparse.Namespace) -> int:
    from jobs.nightly import run_days
    from jobs.warehouse import is_uri, missing_dir

    days = run_window(args.ds, args.start, args.end, args.lookback)
    config = _load_config(args.config)
    engine = args.engine if isinstance(args.engine, str) else args.engine.name
    # Polars reads and writes local paths only (a URI input failed once per day, after its lock).
    for flag, path, what in (("--output", args.output, "a warehouse behind a filesystem URI is written"),
                             ("--input", args.input, "input behind a filesystem URI is read")):
        if is_uri(path) and engine != "spark":
            raise UsageError(f"{flag} {path}: {what} through Spark's Hadoop filesystem; "
                             "run it with --engine spark (or give a local or mounted path)")
    if is_uri(args.output) and args.phase == "prepare":
        raise UsageError(
            f"--output {args.output}: --phase prepare leaves its candidate for separate gate and publish "
            "tasks, which need a warehouse path they share; a URI warehouse takes whole runs"
        )
    if not is_uri(args.input) and not is_uri(args.output):
        # Resolved (links, `..`, a relative path): the same directory under two spellings overlaps too.
        inp, out = Path(args.input).resolve(), Path(args.output).resolve()
        if inp == out or inp in out.parents or out in inp.parents:
            raise UsageError(
                f"--input {args.input} and --output {args.output} overlap (the same directory, or one inside "
                "the other): the warehouse would be written into the raw data; give separate directories"
            )
    if not is_uri(args.input) and not Path(args.input).is_dir():
        from jobs.errors import InputMissing

        raise InputMissing(f"input directory {args.input} {missing_dir(Path(args.input))}")
    if args.phase == "prepare":
        return _prepare_only(args, days, config)
    bar, on_day = _progress(days, args.verbose)
    remote_notes: list[str] = []
    finished = False
    try:
        run_days(
            args.input, args.output, days, engine=args.engine, config=config,
            report=not args.no_report, lock_wait=args.lock_wait, on_day=on_day, run_started_at=args.run_ts,
            # A URI warehouse's note is computed from the remote before the run's mirror goes.
            on_stale_note=remote_notes.append if is_uri(args.output) else None,
        )
        finished = True
    finally:
        bar.close()
        for note in remote_notes:
            _print_stale_note(note)
        if not is_uri(args.output) and Path(args.output).is_dir():
            _note_stale_days(Path(args.output), days, config, after_error=not finished, report=not args.no_report)
    return 0


def _note_stale_days(output: Path, days: list[dt.date], config, after_error: bool = False, report: bool = True) -> None:
    """Published days this run left built on replaced tables (later days after a rerun with new rows
    or a backfill; these days, if another day was published while they computed): one line on stderr,
    and (with reports) the later days' pages rendered again to carry the stale-history banner.

    Advice only, checked in a `finally`: where the check itself fails (a corrupt manifest of some
    day), the run's own result stands (its exit code, its one error line): after a run that
    failed nothing more is printed, after one that succeeded one note line says why."""
    from jobs import lineage
    from jobs.report import refresh_stale_pages

    try:
        stale = lineage.stale_after(output, min(days), max(days), config.params(max(days)))
        note = lineage.rerun_hint(stale) if stale else None
        if stale and report:
            refresh_stale_pages(output, days, stale, config.pseudonym_key)
    except (RiskInsightError, OSError) as exc:
        if after_error:
            return
        note = f"could not check for published days left stale: {exc}"
    if note:
        _print_stale_note(note)


def _print_stale_note(note: str) -> None:
    print(f"riskinsight: note: {note}", file=sys.stderr)


def _prepare_only(args: argparse.Namespace, days: list[dt.date], config) -> int:
    """Compute and write each day's candidate aside, nothing gated or published (Airflow's prepare
    task on Spark; the gate and publish tasks pick the candidate up from the warehouse)."""
    from jobs.engines import get_engine
    from jobs.nightly import prepare_day

    if len(days) > 1:
        # A prepared day is not published, so a later day of the range would build its trends and
        # repeat offenders without it: what no published run of those days would give.
        raise UsageError("--phase prepare takes one day (--ds D, no --lookback): a later day's history reads only published days")
    engine = get_engine(args.engine) if isinstance(args.engine, str) else args.engine
    try:
        for ds in days:
            candidate = prepare_day(args.input, args.output, ds, engine, config, run_started_at=args.run_ts,
                                    lock_wait=args.lock_wait)
            print(f"{ds}: prepared {candidate.path}", flush=True)
    finally:
        engine.close()
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from jobs.report import render_day
    from jobs.warehouse import is_uri

    if is_uri(args.output):
        raise UsageError(f"--output {args.output}: reports are rendered from a local warehouse (a URI warehouse gets its reports from `run`)")

    config = _load_config(args.config)
    print(render_day(Path(args.output), args.ds, pseudonym_key=config.pseudonym_key, lock_wait=args.lock_wait))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from jobs.nightly import run_days
    from jobs.summary import day_summary

    output = Path(args.output)
    inputs = output / "input"
    days = [DEMO_START + dt.timedelta(days=i) for i in range(args.days)]
    print(f"generating {len(days)} days of synthetic moderation logs into {inputs} ...", file=sys.stderr)
    _generate(inputs, DEMO_START, len(days), args.rows_per_day, 7, 0.0, args.verbose, demo_dirty_rates(days))
    warehouse = output / "warehouse"
    bar, on_day = _progress(days, args.verbose)
    try:
        results = run_days(inputs, warehouse, days, engine="polars", report=True, on_day=on_day)
    finally:
        bar.close()
    last = results[-1]
    print(day_summary(warehouse, last.ds))
    print(f"tables: {warehouse}")
    print(last.report)
    return 0


def cmd_dsa_ingest(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from jobs.dsa import cmd_ingest

    print(json.dumps(dataclasses.asdict(cmd_ingest(args)), indent=2, default=str))
    return 0


def cmd_dsa_daily(args: argparse.Namespace) -> int:
    from jobs.dsa import cmd_daily

    days = run_window(args.ds, args.start, args.end, 0)
    params = _load_config(args.config).job.trends  # the same [trends] thresholds as violation_trends
    failures: list[tuple[object, RiskInsightError]] = []
    for ds in days:
        # Like `run`, a day that fails (not ingested, say) does not stop the days after it.
        try:
            result = cmd_daily(args.output, ds, params=params, report=not args.no_report, lock_wait=args.lock_wait)
        except RiskInsightError as exc:
            failures.append((ds, exc))
            if len(days) > 1:
                print(f"{ds}: FAILED: {exc}", file=sys.stderr)
            continue
        print(f"{result.ds}: {result.statements} statements, {result.anomalies} anomalies" + (f", report {result.report}" if result.report else ""),
              flush=True)  # a day's line as it is done, even where stdout is a pipe (see _progress)
    if failures:
        raise range_failure(failures)
    return 0


def cmd_dsa_transparency(args: argparse.Namespace) -> int:
    from jobs.dsa import cmd_transparency

    print(cmd_transparency(args.output, args.start, args.end, args.csv, platforms=args.platform or None))
    return 0


def _add_dsa(sub: argparse._SubParsersAction) -> None:
    dsa = sub.add_parser("dsa", help="the EU DSA Transparency Database as a second source")
    dsa.register("action", "parsers", _SubParsers)  # --verbose after `dsa daily` too
    dsub = dsa.add_subparsers(dest="dsa_command", required=True)
    i = dsub.add_parser("ingest", help="convert daily dumps (nested zips or CSVs) to Parquet, resumably")
    i.add_argument(
        "--dump", required=True, nargs="+", action="extend", metavar="FILE",
        help="dump zip(s), part .csv.zip(s) or chunk CSV(s); --dump may be repeated",
    )
    i.add_argument("--output", required=True, metavar="DIR", help="the DSA warehouse directory (created if missing)")
    i.add_argument("--quiet", action="store_true", help="no progress lines on stderr (the JSON summary still goes to stdout)")
    i.set_defaults(func=cmd_dsa_ingest)
    d = dsub.add_parser("daily", help="sor_daily, trends and the report page of a day (or a range)")
    d.add_argument("--output", required=True, metavar="DIR", help="the DSA warehouse directory `dsa ingest` wrote")
    d.add_argument("--ds", type=iso_date, metavar="YYYY-MM-DD", help="one day (YYYY-MM-DD)")
    d.add_argument("--start", type=iso_date, metavar="YYYY-MM-DD", help="with --end: every day of the range, in order (instead of --ds)")
    d.add_argument("--end", type=iso_date, metavar="YYYY-MM-DD", help="the range's last day, included")
    d.add_argument("--no-report", action="store_true", help="write the tables without the day's HTML page (an older page of the day is removed)")
    d.add_argument(
        "--lock-wait", type=non_negative_seconds, default=0.0,
        help="seconds to wait for another run of the same day (default: %(default)s, fail at once with exit 5)",
    )
    d.add_argument(
        "--config", metavar="FILE",
        help="TOML config; only its [trends] keys apply here, the trend thresholds (see riskinsight.example.toml; DESIGN §10)",
    )
    d.set_defaults(func=cmd_dsa_daily)
    t = dsub.add_parser("transparency", help="DSA Art. 15 style table for a period, as CSV")
    t.add_argument("--output", required=True, metavar="DIR", help="the DSA warehouse directory `dsa ingest` wrote")
    t.add_argument("--start", required=True, type=iso_date, metavar="YYYY-MM-DD", help="the period's first day")
    t.add_argument("--end", required=True, type=iso_date, metavar="YYYY-MM-DD", help="the period's last day, included (days without ingested statements are named on stderr)")
    t.add_argument("--csv", required=True, metavar="FILE", help="the CSV file to write (replaced whole if it exists)")
    t.add_argument("--platform", action="append", metavar="NAME", help="limit to a platform, its platform_name exactly as in the dump (repeatable)")
    t.set_defaults(func=cmd_dsa_transparency)


class _Parser(argparse.ArgumentParser):
    """Bad arguments are one line, like every other expected error (argparse prints its usage
    block first); the subcommand's --help is named instead."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"riskinsight: error: {message} (see: {self.prog} --help)\n")


class _SubParsers(argparse._SubParsersAction):
    """Every subcommand also takes --verbose after its name (`riskinsight run ... --verbose`).

    SUPPRESS as its default keeps a subcommand that did not get it from resetting the flag given
    before the subcommand's name."""

    def add_parser(self, name: str, **kwargs):  # type: ignore[no-untyped-def, override]
        # `--out` for --output, `--no` for --no-report: an abbreviation accepted today is ambiguous
        # (or silently another flag) once a flag is added.
        kwargs.setdefault("allow_abbrev", False)
        parser = super().add_parser(name, **kwargs)
        parser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
        if kwargs.get("help") and parser.description is None:
            parser.description = kwargs["help"]
        return parser


VERBOSE_HELP = "show the traceback of an error as well as its one line"
RUN_EPILOG = """exit codes:
  0    every day published, DQ warnings included (--phase prepare: prepared)
  1    the filesystem refused a write, the engine failed, or the warehouse holds
       something it did not make (a corrupt run file, a real directory for a link)
  2    usage or configuration error (nothing run)
  3    DQ gate failed (nothing published for that ds)
  4    input missing or unreadable
  5    another run of the same ds holds its lock (--lock-wait SECONDS waits instead)
  130  interrupted
a range carries on past a failed day and exits with the first failed day's code."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="riskinsight", description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.register("action", "parsers", _SubParsers)
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write realistic synthetic moderation logs")
    g.add_argument("--output", required=True)
    g.add_argument("--start", required=True, type=iso_date)
    g.add_argument("--days", required=True, type=positive_int, help="how many days from --start (>= 1)")
    g.add_argument("--rows-per-day", required=True, type=positive_int, help="decisions a day, the weekly mean (>= 1)")
    g.add_argument("--seed", type=int, default=0, help="random seed, >= 0; the same arguments give the same files (default: %(default)s)")
    g.add_argument(
        "--dirty-rate", type=float, default=0.002,
        help="fraction of dirty rows per table, within 0..0.2 (jobs.generate.MAX_DIRTY_RATE; default: %(default)s)",
    )
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser(
        "run", help="run the nightly job for a ds or a range", epilog=RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument(
        "--input", required=True, metavar="DIR",
        help="the raw logs: <table>/ds=YYYY-MM-DD/ partitions with _SUCCESS markers (a Hadoop URI with --engine spark)",
    )
    r.add_argument(
        "--output", required=True, metavar="DIR",
        help="the warehouse directory (created if missing; a Hadoop URI with --engine spark); not inside --input, nor it inside this",
    )
    r.add_argument("--ds", type=iso_date, metavar="YYYY-MM-DD", help="the day to run, YYYY-MM-DD; either --ds or --start and --end")
    r.add_argument("--start", type=iso_date, metavar="YYYY-MM-DD", help="first day of a range, YYYY-MM-DD, with --end (instead of --ds); days run in order")
    r.add_argument("--end", type=iso_date, metavar="YYYY-MM-DD", help="last day of the range, YYYY-MM-DD, included; at most 3660 days with --lookback")
    r.add_argument("--engine", default="polars", choices=["polars", "spark"], help="(default: %(default)s)")
    r.add_argument("--lookback", type=non_negative_int, default=0, help="also rerun the N days before (default: %(default)s)")
    r.add_argument("--config", help="TOML config file; every key, its default and range: riskinsight.example.toml")
    r.add_argument(
        "--lock-wait", type=non_negative_seconds, default=0.0,
        help="seconds to wait for another run of the same ds (default: %(default)s, fail at once with exit 5)",
    )
    r.add_argument(
        "--no-report", action="store_true",
        help="publish tables without rendering the HTML report (the day's older page is removed; `report` renders it again)",
    )
    r.add_argument(
        "--phase", choices=["all", "prepare"], default="all",
        help="prepare: only compute and write the candidate aside (the gate and publish run separately, e.g. in Airflow)",
    )
    r.add_argument("--run-ts", type=utc_timestamp, help="the run's timestamp (UTC ISO-8601; default now): fixes the report's run metadata")
    r.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="re-render the HTML report of one ds")
    p.add_argument("--output", required=True, help="the warehouse directory `run` published the day into")
    p.add_argument("--ds", required=True, type=iso_date, help="the day, YYYY-MM-DD")
    p.add_argument("--config", help="TOML config file; its [report] pseudonym_key keys the reviewer pseudonyms")
    p.add_argument(
        "--lock-wait", type=non_negative_seconds, default=0.0,
        help="seconds to wait for a run of the same ds to finish (the page is rendered under its lock; default: %(default)s)",
    )
    p.set_defaults(func=cmd_report)

    d = sub.add_parser("demo", help="generate about five weeks, run them, print the report's path")
    d.add_argument("--output", default="demo-output", help="(default: %(default)s)")
    d.add_argument("--days", type=positive_int, default=DEMO_DAYS, help="days from 2024-01-01, >= 1 (default: %(default)s)")
    d.add_argument("--rows-per-day", type=positive_int, default=DEMO_ROWS, help="decisions a day, the weekly mean, >= 1 (default: %(default)s)")
    d.set_defaults(func=cmd_demo)
    _add_dsa(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return exit_code_of(lambda: args.func(args), args.verbose)


def exit_code_of(command: Callable[[], int], verbose: bool) -> int:
    """command()'s exit code, an expected error or a filesystem refusal printed as one line.

    The one place both entry points (`riskinsight`, `spark_entry.py`) turn errors into exit codes.
    """
    try:
        return command()
    except RiskInsightError as exc:
        return _one_line(exc, exc.exit_code, verbose)
    except OSError as exc:
        # The filesystem refused (a file where the warehouse's directory belongs, no space, no
        # permission): the machine's failure, not the job's, so one line names it with its path.
        return _one_line(exc, 1, verbose)
    except KeyboardInterrupt:
        print("riskinsight: interrupted", file=sys.stderr)
        return 130


def _one_line(exc: BaseException, code: int, verbose: bool) -> int:
    if verbose:
        traceback.print_exc()
    print(f"riskinsight: error: {exc}", file=sys.stderr)
    return code


def console() -> None:
    """The `riskinsight` program: main(), then exit with its code."""
    code = main()
    # At exit the interpreter collects every object once more; after a run that is everything
    # great-expectations, pandas and plotly built (1.2 s at 10 M decisions), for memory the process
    # hands back whole anyway. Frozen objects are left out of that collection; exit still flushes
    # and runs atexit handlers.
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    console()
