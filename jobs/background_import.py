"""great-expectations imported while the first day is staged, on the CPU staging leaves over.

The import takes 1.0-1.6 s of one core alone and is needed only by the DQ gate, after staging,
computing and writing. Beside staging it costs less than before it, but not nothing: at the same
priority it took a core from Polars' two threads whenever it wanted one, and at 10 M decisions the
day was prepared in 7.3-8.6 s against 5.9-6.7 s without it (AMD EPYC, two cores). At the lowest
priority (nice 19) it runs when a core would otherwise idle: it finishes later, and the data waits
less (full runs 8.4-9.3 -> 7.9-8.3 s, four interleaved pairs).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import sys
import threading

LOWEST_PRIORITY = 19


def import_in_background(module: str) -> threading.Thread:
    """Start importing `module` in a daemon thread of the lowest CPU priority; the thread is returned.

    Whoever imports `module` later waits on Python's import lock until this import is done, and
    meanwhile nothing else competes with it for the CPU. Threads inherit the priority of the thread
    that starts them: those the import starts (numpy's BLAS workers, an allocator's page purger) run
    at the lowest too, and do nothing the day's data waits on. Polars' pools are started by the
    thread that first runs a query, staging's (`tests/test_background_import.py` checks both).
    """
    thread = threading.Thread(target=_import_at_lowest_priority, args=(module,), name=f"import {module}", daemon=True)
    thread.start()
    return thread


def _import_at_lowest_priority(module: str) -> None:
    lower_this_threads_priority()
    import_without_collecting(module)


def lower_this_threads_priority() -> None:
    """Give the calling thread alone the lowest CPU priority, on Linux; elsewhere nothing changes.

    Linux applies `setpriority(PRIO_PROCESS, tid)` to that one thread (setpriority(2), "BUGS"); other
    systems would take the id for a process's, so they are left alone. Any process may lower its
    own priority, so this does not fail for want of privileges; a refusal anyway (a sandbox) only
    leaves the import at its normal priority.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOWEST_PRIORITY)


def import_without_collecting(module: str) -> None:
    """Import `module` with the cyclic garbage collector paused, then freeze what it built.

    Importing great-expectations allocates some 500 k objects, and each collection the allocations
    set off walks all of those made so far: 1.0-1.7 s of the import's 4.4-5.6 s of CPU (four of five
    measurements; the fifth equal), taken from a two-core machine while the day is staged beside
    it. Modules stay alive anyway, so the pause keeps only their few cycles (about 6 MiB). Frozen,
    they are also left out of the collections the DQ gate's own allocations set off later. A failed
    import is left to the gate, whose own import raises it again with its context.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        with contextlib.suppress(Exception):
            importlib.import_module(module)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
