"""Zone-aware input timestamps whatever their zone's label (DESIGN §2: aware timestamps are converted
to UTC). pandas and pyarrow label a datetime.timezone offset "+05:30" (a producer in India) or "Z",
which Polars' zone database lacks; Parquet holds the UTC instant either way.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.cli import main
from tests.builders import decision, frame
from tests.conftest import DS
from tests.inputs import write_day

LABELS = ["+05:30", "-03:30", "Z", "+05:00"]


def _relabel(table: pa.Table, label: str) -> pa.Table:
    """The same instants, every timestamp column labelled with `label` (what pyarrow writes for an offset)."""
    fields = [pa.field(f.name, pa.timestamp("us", tz=label)) if pa.types.is_timestamp(f.type) else f for f in table.schema]
    return table.cast(pa.schema(fields))


def _write_decisions(root: Path, rows: list[dict], label: str) -> Path:
    write_day(root, DS, {})
    part = root / "decisions" / f"ds={DS.isoformat()}" / "part-00000.parquet"
    pq.write_table(_relabel(frame("decisions", rows).to_arrow(), label), part)
    return part


@pytest.mark.parametrize("label", LABELS)
def test_an_offset_labelled_timestamp_is_read_as_its_utc_instant(engine, tmp_path, label):
    row = decision()
    part = _write_decisions(tmp_path, [row], label)
    assert pq.read_schema(part).field("decided_at").type.tz == label
    got = engine.read_input("decisions", part.parent).collect().to_native()
    got = got if isinstance(got, pl.DataFrame) else pl.from_arrow(got)
    assert got["decided_at"].dtype == pl.Datetime("us", "UTC")
    assert got["decided_at"].to_list() == [row["decided_at"]]
    assert got["decided_at_us"].to_list() == [int(row["decided_at"].timestamp() * 1_000_000)]


def test_a_run_over_offset_labelled_input_publishes_the_utc_day(tmp_path, capsys):
    # 23:30 UTC on ds is 05:00 on ds+1 in India: the row belongs to ds, by its instant.
    late = dt.datetime.combine(DS, dt.time(23, 30), tzinfo=dt.UTC)
    rows = [decision(decided_at=late, enqueued_at=late - dt.timedelta(minutes=10)), decision()]
    _write_decisions(tmp_path / "in", rows, "+05:30")
    rc = main(["run", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--ds", DS.isoformat(), "--no-report"])
    assert rc == 0, capsys.readouterr().err
    qd = pl.read_parquet(tmp_path / "out" / "queue_daily" / f"ds={DS.isoformat()}" / "*.parquet")
    assert qd["decisions"].sum() == 2
    assert not pl.read_parquet(tmp_path / "out" / "quarantine" / f"ds={DS.isoformat()}" / "*.parquet").height
