"""Shared fixtures: every transform test runs on every engine (narwhals TPC-H style)."""

from __future__ import annotations

import datetime as dt
import gc
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest

from jobs.engines import get_engine
from jobs.engines.base import Engine

DS = dt.date(2024, 3, 14)
UTC = dt.UTC


def ts(hour: int, minute: int = 0, second: int = 0, day: dt.date = DS, micro: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=UTC)


@pytest.fixture(scope="session")
def spark_session() -> Iterator[object]:
    from jobs.engines.spark_session import local_session

    session = local_session()
    yield session
    session.stop()


@pytest.fixture(params=["polars", pytest.param("spark", marks=pytest.mark.spark)])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    if request.param == "spark":
        request.getfixturevalue("spark_session")
    eng = get_engine(request.param)
    yield eng
    eng.close()  # the shared session outlives it: an engine stops only a session it started


@pytest.fixture
def spark_engine(spark_session) -> Iterator[Engine]:
    """The Spark engine alone, for tests of what only Spark does (its reader, checkpoint, plans)."""
    from jobs.engines.spark_engine import SparkEngine

    eng = SparkEngine()
    yield eng
    eng.close()


def collect(engine: Engine, frame) -> pl.DataFrame:
    return engine.collect({"out": frame})["out"]


def second_while_first_waits(first: Callable[[], object], second: Callable[[], object], first_waiting: threading.Event,
                             timeout: float) -> None:
    """Run `first` in a thread named "first"; once it sets `first_waiting`, run `second` in a thread
    named "second"; wait for both (a race of two writers, the first stalled where it matters)."""
    a = threading.Thread(target=first, name="first")
    b = threading.Thread(target=second, name="second")
    a.start()
    assert first_waiting.wait(timeout)
    b.start()
    a.join(2 * timeout)
    b.join(2 * timeout)


def rows_by(df: pl.DataFrame, *keys: str) -> dict:
    """Rows keyed by their grain, so expected values read as plain dicts and row order never matters."""
    out = {}
    for row in df.iter_rows(named=True):
        k = tuple(row[c] for c in keys)
        out[k[0] if len(k) == 1 else k] = {c: v for c, v in row.items() if c not in keys}
    return out


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKINSIGHT_REVISION", os.environ.get("RISKINSIGHT_REVISION", "test"))


# ------------------------------------------------------------------ the shared sample data (shared/)
SHARED_ENV = "RISKINSIGHT_SHARED"


def shared_places() -> list[Path]:
    """Where `shared/` (DESIGN.md, data/) is looked for: $RISKINSIGHT_SHARED alone when it is set,
    else beside the checkout (`<repo>/../shared`, where the README's links expect it), then /work/shared."""
    if env := os.environ.get(SHARED_ENV):
        return [Path(env)]
    return [Path(__file__).resolve().parents[1].parent / "shared", Path("/work/shared")]


def shared_path(*parts: str) -> Path:
    """`parts` under the first of `shared_places()` that holds them. When none does, under the first
    place anyway (a path that does not exist): module-level constants still import, and the tests
    that read it fail through `require_shared`."""
    places = shared_places()
    return next((p.joinpath(*parts) for p in places if p.joinpath(*parts).exists()), places[0].joinpath(*parts))


def require_shared(*parts: str) -> Path:
    """`shared_path(*parts)`, or the test fails with one line naming every place tried."""
    path = shared_path(*parts)
    if not path.exists():
        tried = ", ".join(str(p) for p in shared_places())
        if os.environ.get(SHARED_ENV):
            how = f"${SHARED_ENV} is set, so only it is tried"
        else:
            how = f"put shared/ beside the checkout, or set ${SHARED_ENV} to where it is"
        pytest.fail(f"the shared sample data is missing: no {Path(*parts)} in {tried} ({how})", pytrace=False)
    return path


@pytest.fixture(scope="session")
def dsa_sor() -> Path:
    """The DSA Transparency Database sample dumps (`shared/data/dsa_sor`)."""
    return require_shared("data", "dsa_sor")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Runs in this process freeze the heap after importing great-expectations
    # (jobs.background_import.import_without_collecting), which the job does to spare its own collections.
    # Frozen objects outlive the interpreter's last collection, and duckdb's bindings then report
    # every object of theirs still alive at exit as a leak, a page of noise after the test summary.
    gc.unfreeze()
    gc.collect()
