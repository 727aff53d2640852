"""The manifest's CPU per stage counts the work the stage did: its threads and its child processes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from jobs.manifest import StageTimer, cpu_seconds


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


# Spins 0.4 s of CPU once told to, then stays alive: what it burns from "go" on is the stage's.
_CHILD_SPIN = """
import sys, time
sys.stdin.readline()
end = time.process_time() + 0.4
while time.process_time() < end:
    pass
print("done", flush=True)
time.sleep(30)
"""


def test_a_sleeping_stage_costs_no_cpu_and_a_busy_one_costs_its_work() -> None:
    timer = StageTimer()
    with timer.stage("sleep"):
        time.sleep(0.3)
    with timer.stage("spin"):
        _spin(0.3)
    assert timer.seconds["sleep"] >= 0.3 and timer.cpu_seconds["sleep"] < 0.1
    assert timer.cpu_seconds["spin"] >= 0.28


def test_cpu_of_other_threads_counts() -> None:
    timer = StageTimer()
    with timer.stage("threads"):
        workers = [threading.Thread(target=_spin, args=(0.2,)) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    assert timer.cpu_seconds["threads"] >= 0.38


def test_a_live_child_process_counts_as_does_one_that_has_ended() -> None:
    """A local Spark JVM runs beside the driver for the whole job: its CPU during a stage counts
    while it is still alive, read from /proc; a child that ended and was waited for counts too."""
    child = subprocess.Popen([sys.executable, "-c", _CHILD_SPIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        start = cpu_seconds()
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "done"  # it spun, and now sleeps: still alive
        alive = cpu_seconds() - start
        assert child.poll() is None and alive >= 0.35
    finally:
        child.kill()
        child.wait()
    assert cpu_seconds() - start >= alive - 0.02  # reaped: counted among the waited-for children


def test_stages_add_up_when_run_twice_and_record_into_a_manifest() -> None:
    timer = StageTimer()
    for _ in range(2):
        with timer.stage("spin"):
            _spin(0.15)
    manifest = {"stage_seconds": {"read_stage": 1.0}, "stage_cpu_seconds": {"read_stage": 1.5}}
    timer.record(manifest)
    assert manifest["stage_seconds"]["read_stage"] == 1.0 and manifest["stage_cpu_seconds"]["read_stage"] == 1.5
    assert manifest["stage_cpu_seconds"]["spin"] >= 0.28
    assert set(manifest["stage_seconds"]) == set(manifest["stage_cpu_seconds"]) == {"read_stage", "spin"}
