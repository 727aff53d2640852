"""Engine sessions and their read/write/encode primitives; the only engine-specific code."""

from __future__ import annotations

from jobs.engines.base import Engine
from jobs.errors import UsageError

ENGINES = ("polars", "spark")


def get_engine(name: str, **options: object) -> Engine:
    if name == "polars":
        from jobs.engines.polars_engine import PolarsEngine

        return PolarsEngine()
    if name == "spark":
        from jobs.engines.spark_engine import SparkEngine

        return SparkEngine(**options)
    raise UsageError(f"unknown engine {name!r} (choose from {', '.join(ENGINES)})")
