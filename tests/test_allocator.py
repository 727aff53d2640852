"""The allocator setting `jobs` makes for Polars (see jobs/__init__.py) must reach jemalloc.

jemalloc reads `_RJEM_MALLOC_CONF` once, when polars is first loaded; `stats_print` makes it print
the options it actually runs with at exit, so these tests read the allocator's own word.
"""

from __future__ import annotations

import os
import subprocess
import sys

# Import jobs, add stats_print to whatever it left in the environment, then load polars.
_PROBE = (
    "import os, jobs; os.environ['_RJEM_MALLOC_CONF'] += ',stats_print:true';"
    " import polars as pl; pl.DataFrame({'a': [1, 2]}).sum()"
)


def _jemalloc_options(env_conf: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    if env_conf is not None:
        env["_RJEM_MALLOC_CONF"] = env_conf
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120, check=True)
    return done.stderr


def test_importing_jobs_slows_the_return_of_freed_pages_before_polars_loads() -> None:
    options = _jemalloc_options(None)
    assert "opt.dirty_decay_ms: 2000" in options
    assert "opt.muzzy_decay_ms: 2000" in options


def test_an_allocator_setting_in_the_environment_wins() -> None:
    options = _jemalloc_options("dirty_decay_ms:700")
    assert "opt.dirty_decay_ms: 700" in options
    assert "opt.muzzy_decay_ms: 2000" not in options
