"""quarantine — grain: one row per rejected distinct input row of ds.

Columns: source_table, reason, record_id (the row's key), decision_id (null for shifts),
row (the rejected row as JSON, produced by the engine's row encoder).
"""

from __future__ import annotations

from collections.abc import Callable

import narwhals.stable.v2 as nw

from transforms.schemas import INPUT_KEYS, OUTPUT_SCHEMAS, select_schema
from transforms.staging import REASON, rejected, row_columns

# Engines serialise rows differently (Polars json_encode, Spark to_json); each passes its own.
RowEncoder = Callable[[nw.LazyFrame, list[str]], nw.LazyFrame]


def quarantine(classified: dict[str, nw.LazyFrame], encode_rows: RowEncoder) -> nw.LazyFrame:
    parts = []
    for table, frame in classified.items():
        bad = encode_rows(rejected(frame), row_columns(table))
        decision_id = nw.col("decision_id") if "decision_id" in row_columns(table) else nw.lit(None, nw.String)
        parts.append(
            bad.select(
                nw.lit(table).alias("source_table"),
                nw.col(REASON).alias("reason"),
                nw.col(INPUT_KEYS[table]).cast(nw.String).alias("record_id"),
                decision_id.cast(nw.String).alias("decision_id"),
                nw.col("row"),
            )
        )
    return select_schema(nw.concat(parts, how="vertical"), OUTPUT_SCHEMAS["quarantine"])
