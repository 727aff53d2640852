"""The nightly run of a day into a warehouse behind a Hadoop filesystem URI (Spark engine).

Each day runs exactly as on a local warehouse, in a local mirror, under the remote lease of ds:
the earlier days its DQ check and report read, and ds's own publication in place, are mirrored in
first, the history its trends and offenders aggregate is read by the executors straight from the
remote partitions, and the day's publication (or, after a failed gate, its attempt record) is pushed
and swapped in last, then its page, then the index, re-rendered from what the remote holds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import tempfile
from pathlib import Path

from py4j.protocol import Py4JJavaError

from jobs import lineage, nightly
from jobs.config import Config
from jobs.engines.base import Engine
from jobs.engines.spark_engine import first_line
from jobs.errors import DQGateFailed, UsageError, WarehouseUnavailable
from jobs.remote_warehouse import RemoteWarehouse, pid_alive, process_space
from jobs.report import TREND_WINDOW_DAYS
from transforms.params import Params


MIRROR_PREFIX = "riskinsight-mirror-"
OWNER = ".owner"  # in a mirror: the pid of the run it is of, and where that pid names it


def _remove_dead_mirrors() -> None:
    """The mirrors of runs killed on this host (close never ran), with up to a month of tables each."""
    for mirror in Path(tempfile.gettempdir()).glob(f"{MIRROR_PREFIX}*"):
        try:
            owner = json.loads((mirror / OWNER).read_text())
            if mirror.stat().st_uid != os.getuid() or owner.get("space") != process_space():
                continue
            pid = owner.get("pid")
            if isinstance(pid, int) and pid != os.getpid() and not pid_alive(pid):
                shutil.rmtree(mirror, ignore_errors=True)
        except (OSError, ValueError, AttributeError):
            continue  # not one of ours, or one being made or removed


def mirror_window(ds: dt.date, params: Params, published: list[dt.date]) -> list[dt.date]:
    """The earlier days a run of ds reads from the warehouse: the report's and history's windows,
    and the days of the DQ gate's trailing volumes (the last published ones, however far back)."""
    span = max(TREND_WINDOW_DAYS, params.trends.window_days, params.offenders.window_days)
    days = {ds - dt.timedelta(days=i) for i in range(1, span + 1)}
    return sorted(days | set([d for d in published if d < ds][-nightly.TRAILING_DAYS:]))


class RemoteRun:
    def __init__(self, output: str, engine: Engine) -> None:
        fs = getattr(engine, "fs", None)
        if fs is None:
            raise UsageError(
                f"--output {output}: a warehouse behind a filesystem URI is written through Spark's Hadoop "
                "filesystem; run it with --engine spark (or give a local or mounted path)"
            )
        self.output = output
        self.remote = RemoteWarehouse(fs, output)
        _remove_dead_mirrors()
        self.mirror = Path(tempfile.mkdtemp(prefix=MIRROR_PREFIX))
        (self.mirror / OWNER).write_text(json.dumps({"pid": os.getpid(), "space": process_space()}))
        # What the report index reads of every day with a page; apart from the mirror, which holds
        # whole days, and only the ones this run reads.
        self.index_dir = self.mirror / "_index"

    def run_day(
        self,
        input_dir: Path | str,
        ds: dt.date,
        engine: Engine,
        config: Config,
        *,
        report: bool = True,
        lock_wait: float = 0.0,
        run_started_at: dt.datetime | None = None,
    ) -> nightly.DayResult:
        try:
            return self._run_day(input_dir, ds, engine, config, report, lock_wait, run_started_at)
        except (OSError, Py4JJavaError) as exc:
            # The filesystem's own words, in one line (a JVM exception runs to pages of stack).
            raise WarehouseUnavailable(f"ds={ds}: warehouse {self.output}: {first_line(exc)}") from exc

    def _run_day(self, input_dir, ds, engine, config, report, lock_wait, run_started_at) -> nightly.DayResult:
        params = config.params(ds)
        window = mirror_window(ds, params, self.remote.published_days("violation_daily"))
        self.remote.settle(window, ds=ds, wait_s=lock_wait)
        with self.remote.lease(ds, wait_s=lock_wait):  # which settles ds itself
            # ds too: after a failed gate its page shows the publication in place under a banner, as
            # on a local warehouse. Without it, the page of a failed rerun said ds was never
            # published, and replaced the good page.
            self.remote.mirror_days(self.mirror, [*window, ds])
            self.remote.mirror_attempts(self.mirror, ds)
            try:
                result = nightly.run_day(
                    input_dir, self.mirror, ds, engine, config,
                    report=report, run_started_at=run_started_at, history=self.remote.published_partitions,
                )
            except DQGateFailed:
                # run_day rendered the day's page of the failure (over the publication in place, if any).
                self._push(ds, tables=False, report=report)
                raise
            except BaseException:
                self.remote.forget(self.mirror, ds)
                raise
            self._push(ds, tables=True, report=report)
        report_uri = self.remote.uri("reports", f"{ds.isoformat()}.html") if result.report else None
        return dataclasses.replace(result, report=report_uri)

    def _push(self, ds: dt.date, *, tables: bool, report: bool) -> None:
        try:
            self.remote.publish(self.mirror, ds, tables=tables)
            if report:
                self.remote.put_reports(self.mirror, [f"{ds.isoformat()}.html"])
                self.remote.put_index(self.index_dir)
            elif tables and self.remote.remove_report(f"{ds.isoformat()}.html"):
                # As on a local warehouse (nightly._remove_page): the page of the publication
                # before described tables that are no longer there, and the index linked to it.
                self.remote.put_index(self.index_dir)
        except BaseException:
            # The mirror must not keep what the remote did not get: later days would read it.
            self.remote.forget(self.mirror, ds)
            raise

    def stale_note(self, days: list[dt.date], params: Params) -> str | None:
        """lineage.stale_note for the remote: from the run files of every published day, pulled for
        the index (`index_dir` holds what the index lists: each day's manifest, which is all the
        lineage check reads). None where the remote cannot be read now: the note is advice, and a
        run that could not reach the remote says so in its days' own errors."""
        try:
            self.remote.sync_index(self.index_dir)
        except (OSError, Py4JJavaError):
            return None
        return lineage.stale_note(self.index_dir, days, params)

    def close(self) -> None:
        shutil.rmtree(self.mirror, ignore_errors=True)
