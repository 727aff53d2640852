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

Hidden only from the thread that imports great-expectations, and only while it does: the job
imports it in a background thread beside staging, and another thread may import pyspark meanwhile
(the Spark engine), or later in the same process.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import sys
import threading
from collections.abc import Iterator, Sequence

HIDDEN = ("pyspark", "sqlalchemy")


class _HideFromThread(importlib.abc.MetaPathFinder):
    """Makes `import name` (and its submodules) fail as not installed, in one thread only."""

    def __init__(self, names: Sequence[str], thread: int) -> None:
        self._names = tuple(names)
        self._thread = thread

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if threading.get_ident() == self._thread and fullname.split(".")[0] in self._names:
            raise ModuleNotFoundError(f"No module named {fullname!r} (hidden from great-expectations)", name=fullname)
        return None


@contextlib.contextmanager
def hidden(names: Sequence[str]) -> Iterator[None]:
    """Within the block, this thread imports `names` as if they were not installed.

    A module already imported stays visible (Python looks in sys.modules before any finder).
    """
    finder = _HideFromThread(names, threading.get_ident())
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


with hidden(HIDDEN):
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
    "HIDDEN", "Column", "DataContextConfig", "Expectation", "InMemoryStoreBackendDefaults", "ProgressBarsConfig",
    "gx", "gxe", "hidden", "pandas_engine",
]
