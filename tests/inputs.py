"""Write hand-built input partitions in the warehouse layout (tests only)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tests.builders import frame
from transforms.schemas import INPUT_TABLES


def write_day(root: Path, ds: dt.date, tables: dict[str, list[dict]], *, success: bool = True) -> None:
    """Every input table gets a partition for ds (empty when not given)."""
    for table in INPUT_TABLES:
        part = Path(root) / table / f"ds={ds.isoformat()}"
        part.mkdir(parents=True, exist_ok=True)
        frame(table, tables.get(table, [])).write_parquet(part / "part-00000.parquet")
        if success:
            (part / "_SUCCESS").touch()
