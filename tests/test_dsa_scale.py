"""A generated multi-million-row dump in the official nested-zip layout, ingested with bounded memory."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from jobs.dsa import cmd_daily
from jobs.dsa_synth import write_dump

ROOT = Path(__file__).resolve().parents[1]
DAY = dt.date(2024, 5, 2)
# Two parts of ten 100 000-row chunks: the official chunking, 2M rows (~0.8 GB of CSV).
PARTS, CHUNKS, ROWS = 2, 10, 100_000
PEAK_RSS_LIMIT = 1.5 * 1024**3


@pytest.mark.slow
def test_two_million_rows_ingest_with_bounded_memory(tmp_path: Path) -> None:
    dump = write_dump(tmp_path / "dump", DAY, parts=PARTS, chunks_per_part=CHUNKS, rows_per_chunk=ROWS,
                      dup_every=99_991, late_every=100_003)  # fmt: skip
    assert dump.rows == 2_000_000
    out = tmp_path / "out"
    # A fresh interpreter, so that its peak RSS is the ingest's alone.
    script = textwrap.dedent(f"""
        import json, resource, sys, time
        from dataclasses import asdict
        from pathlib import Path
        from jobs.dsa_ingest import ingest
        t = time.perf_counter()
        s = ingest([Path({str(dump.path)!r})], Path({str(out)!r}))
        print(json.dumps({{"summary": asdict(s), "seconds": time.perf_counter() - t,
                          "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    s = report["summary"]
    print(f"ingest of {dump.rows} rows: {report['seconds']:.1f} s, peak RSS {report['peak_rss'] / 2**20:.0f} MiB")
    assert report["peak_rss"] < PEAK_RSS_LIMIT
    assert s["sha1_verified"] == [dump.path.name]
    assert (s["parts_converted"], s["chunks"], s["rows_read"]) == (PARTS, PARTS * CHUNKS, dump.rows)
    assert s["quarantined"] == {"created_at_outside_dump_day": dump.late}
    # Every duplicate repeats a uuid of an earlier chunk: the ingest keeps them, sor_daily drops them.
    assert s["duplicates_dropped"] + s["rows_written"] + dump.late == dump.rows
    files = sorted((out / "sor" / f"ds={DAY}").glob("*.parquet"))
    assert len(files) == PARTS * CHUNKS
    r = cmd_daily(out, DAY, report=False)
    assert r.statements == dump.rows - dump.duplicates - dump.late
    assert r.duplicate_uuids + s["duplicates_dropped"] == dump.duplicates
    daily = pl.read_parquet(out / "sor_daily" / f"ds={DAY}" / "part-00000.parquet")
    per_platform = daily.filter((pl.col("category") == "ALL") & (pl.col("platform_name") != "ALL"))
    assert per_platform["statements"].sum() == r.statements
