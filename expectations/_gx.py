"""great-expectations, imported as if its optional Spark and SQL integrations were not installed.

Every module of this package imports great-expectations through here, so that the first import,
the one that pays for it, always goes this way.

great-expectations probes for pyspark and sqlalchemy at import time (its `compatibility` modules)
and loads them whenever they are installed. This venv has pyspark for the Spark engine (and with it
scipy through `pyspark.ml`, grpc and protobuf) and sqlalchemy for Airflow, yet the gate validates
pandas frames only and never touches either. Hidden, they are never loaded: `import
expectations.gate` alone, six interleaved pairs, 4.91 -> 4.63 s median wall, 5.17 -> 4.88 s CPU
(CPU the first day's staging shares on two cores) and 317 -> 268 MB peak RSS. Neither is a
requirement of great-expectations (both are extras of its package); it then behaves as on an
install without them.

Two more, scipy.stats and altair (with what altair imports), are loaded on first use instead of
at import: great-expectations imports them at the top of its KL-divergence expectation and its two
Kolmogorov-Smirnov metrics, which use them only when they run, and the gate runs none of them.
They were 0.55-0.7 s of the import's 1.4-1.6 s of CPU (AMD EPYC). Any later use loads them whole,
the expectations included (`tests/test_gx_import.py` runs the KL-divergence one). On Python 3.11 a
thread that reads such a module while another is loading it may find it half-loaded (CPython
gh-114763, fixed in later versions); nothing of ours reads them at all.

Both only for the thread that imports great-expectations, and only while it does: the job imports
it in a background thread beside staging, and another thread may import pyspark meanwhile (the
Spark engine), or later in the same process.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Iterator, Sequence

HIDDEN = ("pyspark", "sqlalchemy")
DEFERRED = ("scipy.stats", "altair")


class _InThread(importlib.abc.MetaPathFinder):
    """A finder that answers for some module names, to one thread only; every other import passes it by."""

    def __init__(self, names: Sequence[str], thread: int) -> None:
        self._names = frozenset(names)
        self._thread = thread

    def _answers(self, name: str) -> bool:
        return threading.get_ident() == self._thread and name in self._names


class _HideFromThread(_InThread):
    """Makes `import name` (and its submodules) fail as not installed."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if self._answers(fullname.split(".")[0]):
            raise ModuleNotFoundError(f"No module named {fullname!r} (hidden from great-expectations)", name=fullname)
        return None


class _DeferInThread(_InThread):
    """Makes `import name` (exactly these names) bind a module that loads on its first attribute
    access (`importlib.util.LazyLoader`)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not self._answers(fullname):
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = None if finder is self or find is None else find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        # Only a loader that executes into a module object Python made can be deferred (not a builtin).
        if spec.loader is not None and hasattr(spec.loader, "exec_module") and spec.origin not in (None, "built-in"):
            spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


@contextlib.contextmanager
def _finder_in_this_thread(finder_class: type[_InThread], names: Sequence[str]) -> Iterator[None]:
    finder = finder_class(names, threading.get_ident())
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def hidden(names: Sequence[str]) -> contextlib.AbstractContextManager[None]:
    """Within the block, this thread imports `names` as if they were not installed.

    A module already imported stays visible (Python looks in sys.modules before any finder).
    """
    return _finder_in_this_thread(_HideFromThread, names)


def deferred(names: Sequence[str]) -> contextlib.AbstractContextManager[None]:
    """Within the block, this thread's imports of `names` are loaded on first use, by whichever thread.

    A module already imported stays as it is.
    """
    return _finder_in_this_thread(_DeferInThread, names)


with hidden(HIDDEN), deferred(DEFERRED):
    import great_expectations as gx
    import great_expectations.execution_engine.pandas_execution_engine as pandas_engine
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )
    from great_expectations.expectations.expectation import Expectation
    from great_expectations.expectations.row_conditions import Column

__all__ = [
    "DEFERRED", "HIDDEN", "Column", "DataContextConfig", "Expectation", "InMemoryStoreBackendDefaults", "ProgressBarsConfig",
    "deferred", "gx", "gxe", "hidden", "pandas_engine",
]
