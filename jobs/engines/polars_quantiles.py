"""Exact per-group quantiles in Polars for groups too large to hold: ranks found by counting.

Polars' `quantile` in a group_by holds every grouped row's keys and values until the end of the
query, whichever engine runs it: queue_daily's two quantiles over 95 queues took 3.7 GiB and 13.6 s
at 100 M decisions (in four parts of the key, to stay under 8 GB). `ranked_quantiles` gets the same
numbers, to the bit, from two streaming passes over the values and an in-memory sort of a few:

1. count the values per group and order-preserving bucket (`_bucket`: 16 buckets per power of two);
2. from the running counts, the buckets that hold each wanted rank (floor and ceil of q * (n - 1));
3. read back only those buckets' values, sort them and read the two ranks of each quantile, then
   interpolate linearly as Polars does: x[lo] + (pos - lo) * (x[hi] - x[lo]).

Several grouping sets share both passes: the counts of the finest grouping add up to every coarser
one's, and one read keeps the values in any set's wanted buckets. queue_daily at 100 M: 4.1 s and
0.4 GiB. It costs a count table of (group, bucket) pairs and three reads of the values, so it pays
where groups are large (a few queues or markets, or the whole frame) and not for many small ones
(reviewer_daily's reviewers: 1.1 s against 0.36 s at 10 M), which keep Polars' own quantile. The
Spark engine ranks the same way (`spark_engine._ranked_quantiles`).

Memory is bounded by the values in the wanted buckets, a few percent of a group for spread values.
At worst (a group's values packed into one bucket: all within about 4 % of each other) those are
the whole group, which is what the group_by's quantile holds anyway.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence

import polars as pl

# floor(16 * log2|v|) shifted by _OFFSET so that negatives, zero and positives stay in order
# (|floor(16 * log2|v|)| < 2**15 for every finite double); infinities and NaN (which Polars sorts
# last) get buckets of their own. The Spark engine buckets its values with the same constants.
_PER_OCTAVE, _OFFSET, _TOP = 16, 1 << 20, 1 << 21


def _bucket(value: pl.Expr) -> pl.Expr:
    """An order-preserving bucket of `value`: v <= w implies bucket(v) <= bucket(w)."""
    # Float until the end: log2(0) is -inf, which no integer holds, on rows the branches then drop.
    magnitude = (value.abs().log(2) * _PER_OCTAVE).floor()
    return (
        pl.when(value.is_nan()).then(_TOP + 1)
        .when(value == float("inf")).then(_TOP)
        .when(value == float("-inf")).then(-_TOP)
        .when(value > 0).then(_OFFSET + magnitude)
        .when(value < 0).then(-(_OFFSET + magnitude))
        .otherwise(0)
        .cast(pl.Int64)
    )


def _targets(counts: pl.DataFrame, by: list[str], wanted: list[tuple[str, float]]) -> pl.DataFrame:
    """The (group, bucket)s holding a wanted rank, with the values below the bucket (`_start`) and
    the group's size (`_n`); `counts` holds the values per (group, bucket)."""
    counts = counts.sort(*by, "_b")
    per_group = (lambda e: e.over(by)) if by else (lambda e: e)
    counts = counts.with_columns(_end=per_group(pl.col("_c").cum_sum()), _n=per_group(pl.col("_c").sum()))
    start = pl.col("_end") - pl.col("_c")
    ranks = []
    for _, q in wanted:
        pos = (pl.col("_n") - 1) * q
        ranks += [pos.floor(), pos.ceil()]
    holding = functools.reduce(operator.or_, [(start <= rank) & (rank < pl.col("_end")) for rank in ranks])
    return counts.filter(holding).select(*by, "_b", start.alias("_start"), "_n")


def _picked(kept: pl.DataFrame, targets: pl.DataFrame, by: list[str], wanted: list[tuple[str, float]]) -> pl.DataFrame:
    """Each group's quantiles from its kept values (every value of its target buckets)."""
    kept = kept.join(targets, on=[*by, "_b"], how="inner", nulls_equal=True)
    # One stable sort by value puts each (group, bucket)'s rows in order; a row's rank in its group
    # is its place in its bucket plus the values in the group's lower buckets.
    kept = kept.sort("_v").with_columns(_rank=pl.int_range(pl.len()).over([*by, "_b"]) + pl.col("_start"))
    n = pl.col("_n").first()
    picks = []
    for name, q in wanted:
        pos = (n - 1) * q
        lo, hi = pos.floor(), pos.ceil()
        at_lo = pl.col("_v").filter(pl.col("_rank") == lo).first()
        at_hi = pl.col("_v").filter(pl.col("_rank") == hi).first()
        interpolated = pl.when((lo == hi) | (at_lo == at_hi)).then(at_lo).otherwise(at_lo + (pos - lo) * (at_hi - at_lo))
        picks.append(interpolated.cast(pl.Float64).alias(name))
    if by:
        return kept.group_by(by).agg(picks)
    return kept.select(picks) if kept.height else pl.DataFrame(schema=dict.fromkeys([name for name, _ in wanted], pl.Float64)).clear(1)


def ranked_quantiles(
    frame: pl.LazyFrame, sets: Sequence[Sequence[str]], column: str, wanted: list[tuple[str, float]]
) -> list[pl.DataFrame]:
    """Exact linear quantiles of `column`'s non-null values per group of each grouping set, as
    `quantile(q, "linear")` computes them: per set, its keys and one Float64 column per wanted
    (name, q), one row per group holding a value; for the empty set exactly one row, null when
    there is no value."""
    keys = list(dict.fromkeys(k for kept in sets for k in kept))
    values = frame.select(*keys, pl.col(column).alias("_v")).filter(pl.col("_v").is_not_null()).with_columns(_b=_bucket(pl.col("_v")))
    counts = values.group_by(*keys, "_b").len("_c").collect(engine="streaming")
    targets = []
    for kept in map(list, sets):
        coarser = counts if kept == keys else counts.group_by(*kept, "_b").agg(pl.col("_c").sum())
        targets.append(_targets(coarser, kept, wanted))
    # The finest (group, bucket)s that fall in any set's target: a handful per group, so the inner
    # join keeps their few rows as the frame streams past.
    wanted_buckets = pl.concat(
        [counts.select(*keys, "_b").join(t.select(*kept, "_b"), on=[*kept, "_b"], how="semi", nulls_equal=True) for kept, t in zip(sets, targets, strict=True)]
    ).unique()
    kept_values = values.join(wanted_buckets.lazy(), on=[*keys, "_b"], how="inner", nulls_equal=True).collect(engine="streaming")
    return [_picked(kept_values, t, list(kept), wanted) for kept, t in zip(sets, targets, strict=True)]
