"""jobs: the I/O edge of riskinsight: command line, nightly phases (which the Airflow tasks call), engines, warehouse."""

import os

# Polars allocates through jemalloc, which by default hands freed pages back to the kernel after
# 0.5-1 s; a run then faults them straight back in (9.5 s of system time at 10 M decisions). Two
# seconds: 7.0 s of system time and a run about 10 % faster, for about 150 MiB more peak
# (benchmarks/README.md). A default only (set _RJEM_MALLOC_CONF to override), and it takes effect
# only when set before polars is first imported, which is why it lives in the package's init.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:2000,muzzy_decay_ms:2000")
