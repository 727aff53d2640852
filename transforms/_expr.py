"""Expression helpers shared by the transforms (engine-agnostic narwhals)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import narwhals.stable.v2 as nw

from transforms.params import US_PER_S
from transforms.schemas import epoch_us_column


def is_in(column: str, values: Iterable[str]) -> nw.Expr:
    """Membership where a null counts as outside the set (DESIGN §3)."""
    return nw.col(column).is_in(list(values)).fill_null(False)


def flag(expr: nw.Expr) -> nw.Expr:
    """A boolean as 0/1 Int64: Spark cannot sum booleans, and a null condition counts as not met."""
    return nw.when(expr.fill_null(False)).then(nw.lit(1)).otherwise(nw.lit(0)).cast(nw.Int64)


def seconds_between(end: str, start: str) -> nw.Expr:
    """end - start in float seconds, exact to the microsecond, from the readers' epoch-us columns."""
    return (nw.col(epoch_us_column(end)) - nw.col(epoch_us_column(start))) / US_PER_S


def ratio(numerator: str, denominator: str) -> nw.Expr:
    """numerator / denominator as float64, null when the denominator is 0 or null (DESIGN §4)."""
    den = nw.col(denominator)
    return (
        nw.when(den.fill_null(0) != 0)
        .then(nw.col(numerator).cast(nw.Float64) / den.cast(nw.Float64))
        .otherwise(nw.lit(None, nw.Float64))
    )


def quantile(values: nw.Expr, q: float) -> nw.Expr:
    # DESIGN §1: always linear interpolation, so every engine agrees with numpy's default.
    return values.quantile(q, interpolation="linear")


# Output column -> (input column, q): exact quantiles with linear interpolation (DESIGN §1).
Quantiles = dict[str, tuple[str, float]]


def quantiles_by_column(quantiles: Quantiles) -> dict[str, list[tuple[str, float]]]:
    """Input column -> its (output column, q) pairs: an engine that ranks values does so once per column."""
    per_column: dict[str, list[tuple[str, float]]] = {}
    for name, (column, q) in quantiles.items():
        per_column.setdefault(column, []).append((name, q))
    return per_column


# (frame, group keys, aggregations, quantiles) -> one row per group (one row in all when keys are
# empty) with the aggregations' and the quantiles' columns.
Aggregate = Callable[[nw.LazyFrame, list[str], list[nw.Expr], Quantiles], nw.LazyFrame]


def aggregate(
    frame: nw.LazyFrame,
    by: list[str],
    aggs: list[nw.Expr],
    quantiles: Quantiles,
    values: Callable[[str], nw.Expr] = nw.col,
) -> nw.LazyFrame:
    """group_by(by).agg(aggs and the quantiles), in one pass: what every engine computes.

    Transforms take this as a parameter so that an engine may compute the same exact quantiles
    its own faster way: ranking only the values in the buckets that hold each quantile (Spark over
    a whole frame, Polars for large groups), or sorting each keyed group once (Spark). It must
    return what this returns. `values` gives the expression a quantile column is read through
    (Polars: without its nulls)."""
    exprs = aggs + [quantile(values(column), q).alias(name) for name, (column, q) in quantiles.items()]
    return frame.group_by(by).agg(exprs) if by else frame.select(exprs)


# (frame, keys, grouping sets, aggregations, quantiles, rolled_up) -> aggregate_sets' rows.
AggregateSets = Callable[[nw.LazyFrame, list[str], Sequence[Sequence[str]], list[nw.Expr], Quantiles, str], nw.LazyFrame]


def aggregate_sets(
    frame: nw.LazyFrame,
    keys: list[str],
    sets: Sequence[Sequence[str]],
    aggs: list[nw.Expr],
    quantiles: Quantiles,
    rolled_up: str,
    aggregate: Aggregate = aggregate,
) -> nw.LazyFrame:
    """aggregate() once per grouping set, stacked: a set names the keys it keeps (as strings), and
    every key it leaves out holds `rolled_up`. The empty set always yields exactly one row.

    Transforms take this as a parameter so that an engine may compute all the sets in one pass over
    the frame (Spark); it must return what this returns."""
    parts = []
    for kept in sets:
        agg = aggregate(frame, list(kept), aggs, quantiles)
        # Keys as String: the parts are stacked, and an engine may hand grouping columns over dictionary-encoded.
        cols = [nw.col(k).cast(nw.String) if k in kept else nw.lit(rolled_up).alias(k) for k in keys]
        parts.append(agg.select(cols + [c for c in agg.columns if c not in keys]))
    return nw.concat(parts, how="vertical")


def sla_seconds(params_sla: dict[str, float], default: float, queue: str = "queue") -> nw.Expr:
    """The configured SLA of each row's queue; unknown (or null) queues get the default."""
    expr = None
    for name, seconds in sorted(params_sla.items()):
        cond = nw.col(queue) == nw.lit(name)
        expr = nw.when(cond).then(nw.lit(float(seconds))) if expr is None else expr.when(cond).then(nw.lit(float(seconds)))
    if expr is None:
        return nw.lit(float(default), nw.Float64)
    return expr.otherwise(nw.lit(float(default))).cast(nw.Float64)


def wait_and_sla(params_sla: dict[str, float], default: float) -> dict[str, nw.Expr]:
    """A decision's queue wait (`wait_s`: enqueued to decided) and its queue's SLA (`sla_s`), the
    two columns `sla_met` compares: queue_daily and reviewer_daily count it alike."""
    return {"wait_s": seconds_between("decided_at", "enqueued_at"), "sla_s": sla_seconds(params_sla, default)}


def sla_met() -> nw.Expr:
    """Decisions within their queue's SLA (DESIGN §4: wait_s <= sla_s), over rows with wait_and_sla's columns."""
    return flag(nw.col("wait_s") <= nw.col("sla_s")).sum().alias("sla_met")


def outer_combine(frames: list[nw.LazyFrame], keys: list[str]) -> nw.LazyFrame:
    """One row per key present in any frame, with every frame's columns (null where it has no row).

    Each frame holds at most one row per key. Stacked and regrouped rather than left-joined to the
    union of keys, so each frame is referenced once: no engine computes an aggregation (and its
    exact quantiles) twice, which Polars' streaming engine does for a subplan used twice.
    """
    types: dict[str, nw.dtypes.DType] = {}
    for frame in frames:
        for column, dtype in frame.collect_schema().items():
            if column not in keys:
                types.setdefault(column, dtype)

    def side(frame: nw.LazyFrame) -> nw.LazyFrame:
        present = set(frame.columns)
        return frame.select(
            [nw.col(k) for k in keys]
            + [(nw.col(c) if c in present else nw.lit(None)).cast(t).alias(c) for c, t in types.items()]
        )

    stacked = nw.concat([side(f) for f in frames], how="vertical")
    # At most one non-null value per key and column: max picks it.
    return stacked.group_by(keys).agg([nw.col(c).max() for c in types])
