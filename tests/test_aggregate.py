"""The aggregate primitive the transforms take: group aggregations plus exact linear quantiles.

Every engine's own `aggregate` must return exactly what the generic one does (Spark computes the
quantiles of a column from one percentile aggregate); expected values worked out by hand.
"""

from __future__ import annotations

import random

import narwhals.stable.v2 as nw
import polars as pl
import pytest

from tests.conftest import collect, rows_by
from transforms import _expr

QUANTILES = {"x_p50": ("x", 0.5), "x_p90": ("x", 0.9), "y_min": ("y", 0.0), "x_max": ("x", 1.0), "y_p25": ("y", 0.25)}


def _frame(engine):
    data = pl.DataFrame(
        {
            "k": ["a", "a", "a", "a", "b", "c", "c", None, None],
            "x": [4.0, 1.0, 3.0, 2.0, 5.0, None, None, 20.0, 10.0],
            "y": [1.0, 1.0, 1.0, 9.0, None, 7.0, None, 2.0, 2.0],
        }
    )
    return engine.frame(data)


AGGS = [nw.len().cast(nw.Int64).alias("rows"), nw.col("x").sum().alias("x_sum")]

EXPECTED = {
    # x 1,2,3,4: p50 at position 1.5 -> 2.5, p90 at 2.7 -> 3.7; y 1,1,1,9: p25 at 0.75 -> 1.
    "a": {"rows": 4, "x_sum": 10.0, "x_p50": 2.5, "x_p90": 3.7, "y_min": 1.0, "x_max": 4.0, "y_p25": 1.0},
    "b": {"rows": 1, "x_sum": 5.0, "x_p50": 5.0, "x_p90": 5.0, "y_min": None, "x_max": 5.0, "y_p25": None},
    # Quantiles ignore nulls; a group of nulls has none.
    "c": {"rows": 2, "x_sum": 0.0, "x_p50": None, "x_p90": None, "y_min": 7.0, "x_max": None, "y_p25": 7.0},
    # A null key is a group like any other.
    None: {"rows": 2, "x_sum": 30.0, "x_p50": 15.0, "x_p90": 19.0, "y_min": 2.0, "x_max": 20.0, "y_p25": 2.0},
}


def _close(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key, row in want.items():
        for column, value in row.items():
            assert got[key][column] == (value if value is None else pytest.approx(value, rel=1e-12)), (key, column)


def test_engine_aggregate_per_group(engine):
    frame = _frame(engine)
    for build in (_expr.aggregate, engine.aggregate):
        out = collect(engine, build(frame, ["k"], AGGS, QUANTILES))
        assert out.columns[:3] == ["k", "rows", "x_sum"] and set(out.columns[3:]) == set(QUANTILES)
        _close(rows_by(out, "k"), EXPECTED)


def test_engine_aggregate_without_keys_and_without_quantiles(engine):
    frame = _frame(engine)
    whole = collect(engine, engine.aggregate(frame, [], AGGS, {"x_p50": ("x", 0.5), "y_p90": ("y", 0.9)}))
    # x: 1,2,3,4,5,10,20 -> median 4; y: 1,1,1,2,2,7,9 -> position 5.4 -> 7 + 0.4 * 2 = 7.8.
    assert whole.height == 1
    assert whole.row(0, named=True) == {"rows": 9, "x_sum": 45.0, "x_p50": 4.0, "y_p90": pytest.approx(7.8, rel=1e-12)}
    counts = collect(engine, engine.aggregate(frame, ["k"], AGGS, {}))
    assert {k: r["rows"] for k, r in rows_by(counts, "k").items()} == {"a": 4, "b": 1, "c": 2, None: 2}


def test_engine_aggregate_without_keys_over_no_values(engine):
    """A whole-frame aggregate is one row even when the column has no value, or the frame no row."""
    only_nulls = _frame(engine).filter(nw.col("k") == "c")
    for frame, rows in ((only_nulls, 2), (only_nulls.filter(nw.col("k") == "none"), 0)):
        for build in (_expr.aggregate, engine.aggregate):
            out = collect(engine, build(frame, [], [nw.len().cast(nw.Int64).alias("rows")], {"x_p50": ("x", 0.5), "y_p90": ("y", 0.9)}))
            assert out.height == 1
            want_y = 7.0 if rows else None
            assert out.row(0, named=True) == {"rows": rows, "x_p50": None, "y_p90": want_y}


def _random_values(seed: int, rows: int) -> list[tuple]:
    """(k1, k2, v) rows whose values test the order of ranked quantiles' buckets and sort: ties,
    nulls, negatives, signed zeros, subnormals, infinities and NaN, and null keys."""
    rng = random.Random(seed)
    specials = [0.0, -0.0, 5e-324, -5e-324, 1e-300, float("inf"), float("-inf"), float("nan")]

    def value() -> float | None:
        kind = rng.randrange(6)
        if kind == 0:
            return None
        if kind == 1:
            return rng.randint(0, 9) / 4
        if kind == 2:
            return -rng.random() * 1e3
        if kind == 3:
            return rng.gauss(100, 10)
        return rng.choice(specials) if rng.random() < 0.05 else rng.random() * 1e6

    return [(rng.choice(["a", "b", None]), rng.choice(["x", "y"]), value()) for _ in range(rows)] + [("single", "x", 2.5)]


@pytest.mark.spark
@pytest.mark.parametrize("method", ["_ranked_quantiles", "_listed_quantiles"])
def test_spark_quantiles_equal_spark_percentile(spark_session, method):
    """Both ways the Spark engine picks quantiles (ranks by bucket; sorted lists) are Spark's own
    `percentile`, to the bit: ties, nulls, null keys, single values, positions that fall on a row or
    between two, and the values that test the order of the buckets and of the sort (negatives,
    signed zeros, subnormals, infinities, NaN)."""
    from pyspark.sql import functions as F

    from jobs.engines import spark_engine

    quantiles = getattr(spark_engine, method)
    rows = _random_values(7, 20000)
    df = spark_session.createDataFrame(rows, "k1 string, k2 string, v double")
    qs = [0.0, 0.1, 0.25, 0.5, 0.9, 0.99, 1.0]
    wanted = [(f"q{i}", q) for i, q in enumerate(qs)]
    for by in (["k1", "k2"], ["k1"], []):
        ours = quantiles(df, by, "v", wanted).collect()
        grouped = df.groupBy(*by) if by else df
        theirs = grouped.agg(F.percentile("v", F.array(*[F.lit(q) for q in qs])).alias("p")).collect()
        # repr: NaN equals NaN and -0.0 differs from 0.0.
        got = {tuple(r[f"_key_{k}"] for k in by): [repr(r[name]) for name, _ in wanted] for r in ours}
        want = {tuple(r[k] for k in by): [repr(x) for x in r["p"]] for r in theirs}
        assert got == want



SETS = (("k", "j"), ("j",), ("k",), ())


def _sets_frame(engine):
    # j holds a real "ALL" once: its ("j",) group must stay apart from the empty set's row.
    data = pl.DataFrame(
        {
            "k": ["a", "a", "a", "a", "b", "c", "c", None, None],
            "j": ["x", "y", "x", "y", "x", "x", "y", "x", "ALL"],
            "x": [4.0, 1.0, 3.0, 2.0, 5.0, None, None, 20.0, 10.0],
            "y": [1.0, 1.0, 1.0, 9.0, None, 7.0, None, 2.0, 2.0],
        }
    )
    return engine.frame(data)


def _rows(df: pl.DataFrame) -> list[tuple]:
    return sorted(df.iter_rows(), key=repr)


# 15 values and 20 nulls in one group: Polars' quantile over the column with its nulls put p90
# 1 ulp above the interpolation (90027.07058120002); over the values alone it is exact.
_WITH_NULLS = [95046.369633, 14415.961272, 94864.944714, 31183.145201, 42332.644897, 82770.259382, 40919.913637,
               54959.368767, 2755.911324, 75351.310867, 53814.331322, 32973.17165, 78842.870343, 30319.482929,
               45349.788948]


def test_engine_quantiles_among_nulls_are_the_interpolation_to_the_last_bit(engine):
    """Every engine's aggregate gives x[lo] + (pos - lo) * (x[hi] - x[lo]) exactly, nulls beside the
    values or not: Polars' and Spark's quantiles agree to the bit."""
    frame = engine.frame(pl.DataFrame({"k": ["g"] * 35, "x": _WITH_NULLS + [None] * 20}))
    values = sorted(_WITH_NULLS)
    pos = (len(values) - 1) * 0.9
    lo, hi = int(pos), int(pos) + 1
    want = values[lo] + (pos - lo) * (values[hi] - values[lo])
    assert want == 90027.0705812
    for by in (["k"], []):
        out = collect(engine, engine.aggregate(frame, by, [nw.len().alias("rows")], {"x_p90": ("x", 0.9)}))
        assert out["x_p90"].to_list() == [want], by
        # The generic primitive on this engine's own quantile: the same number, to 1e-12.
        generic = collect(engine, _expr.aggregate(frame, by, [nw.len().alias("rows")], {"x_p90": ("x", 0.9)}))
        assert generic["x_p90"].to_list() == [pytest.approx(want, rel=1e-12)], by


def test_engine_aggregate_sets_equal_one_aggregate_per_set(engine):
    """An engine's one-pass grouping sets return the generic stack of one `aggregate` per set."""
    frame = _sets_frame(engine)
    quantiles = {"x_p50": ("x", 0.5), "y_p90": ("y", 0.9)}
    ours = collect(engine, engine.aggregate_sets(frame, ["k", "j"], SETS, AGGS, quantiles, "ALL"))
    generic = collect(engine, _expr.aggregate_sets(frame, ["k", "j"], SETS, AGGS, quantiles, "ALL", engine.aggregate))
    assert ours.columns == generic.columns == ["k", "j", "rows", "x_sum", "x_p50", "y_p90"]
    assert ours.schema == generic.schema
    assert _rows(ours) == _rows(generic)
    # 7 (k, j) pairs, 3 j values, 4 k values (null among them), and the whole frame.
    assert ours.height == 7 + 3 + 4 + 1
    by_key: dict[tuple, list[dict]] = {}
    for row in ours.iter_rows(named=True):
        by_key.setdefault((row["k"], row["j"]), []).append(row)
    # The real j = "ALL" (one row, x 10) and the whole frame (x 1,2,3,4,5,10,20 -> median 4) stay two rows.
    assert sorted((r["rows"], r["x_p50"]) for r in by_key[("ALL", "ALL")]) == [(1, 10.0), (9, 4.0)]
    assert [(r["rows"], r["x_sum"], r["x_p50"]) for r in by_key[("a", "ALL")]] == [(4, 10.0, 2.5)]
    # (null, "ALL"): the pair (null, the real "ALL") and the null k of the ("k",) set.
    assert sorted((r["rows"], r["x_p50"]) for r in by_key[(None, "ALL")]) == [(1, 10.0), (2, 15.0)]
    # j = "y": x 1, 2 (and a null) -> 1.5; y 1, 9 -> position 0.9 -> 1 + 0.9 * 8 = 8.2.
    assert [(r["rows"], r["x_p50"], r["y_p90"]) for r in by_key[("ALL", "y")]] == [(3, 1.5, pytest.approx(8.2, rel=1e-12))]


def test_engine_aggregate_sets_over_no_rows_keep_the_whole_frame_row(engine):
    frame = _sets_frame(engine).filter(nw.col("k") == "none")
    out = collect(engine, engine.aggregate_sets(frame, ["k", "j"], SETS, [nw.len().cast(nw.Int64).alias("rows")], {"x_p50": ("x", 0.5)}, "ALL"))
    assert out.to_dicts() == [{"k": "ALL", "j": "ALL", "rows": 0, "x_p50": None}]


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_polars_ranked_quantiles_equal_polars_quantile(seed):
    """The Polars engine's quantiles ranked by counting are Polars' own `quantile` over the values,
    to the bit (repr: NaN equals NaN, -0.0 differs from 0.0), per group of two keys, of one, and
    over the whole frame, each set alone and all four from one count; and for a frame without any
    value, and one whose values all fall in one bucket."""
    from jobs.engines.polars_quantiles import ranked_quantiles

    df = pl.DataFrame(_random_values(seed, 20000), schema={"k1": pl.String, "k2": pl.String, "v": pl.Float64}, orient="row")
    wanted = [(f"q{i}", q) for i, q in enumerate([0.0, 0.1, 0.25, 0.5, 0.9, 0.99, 1.0])]
    sets = (["k1", "k2"], ["k1"], [], ["k2"])
    one_bucket = df.with_columns(v=pl.when(pl.col("v").is_null()).then(None).otherwise(100.0 + pl.int_range(pl.len()) % 7 / 1e3))
    for frame in (df, df.filter(pl.col("v").is_null()), one_bucket):
        together = ranked_quantiles(frame.lazy(), sets, "v", wanted)
        for by, from_all in zip(sets, together, strict=True):
            values = frame.filter(pl.col("v").is_not_null())
            exprs = [pl.col("v").quantile(q, "linear").alias(name) for name, q in wanted]
            theirs = values.group_by(by).agg(exprs) if by else values.select(exprs)
            want = {tuple(r[k] for k in by): [repr(r[name]) for name, _ in wanted] for r in theirs.iter_rows(named=True)}
            for ours in (from_all, ranked_quantiles(frame.lazy(), [by], "v", wanted)[0]):
                got = {tuple(r[k] for k in by): [repr(r[name]) for name, _ in wanted] for r in ours.iter_rows(named=True)}
                assert got == want, (by, frame.height)
                assert ours.schema == {**{k: pl.String for k in by}, **dict.fromkeys([n for n, _ in wanted], pl.Float64)}


def test_polars_engine_ranks_only_large_groups(monkeypatch):
    """The Polars engine ranks quantiles by counting for groups of low-cardinality keys (queues,
    markets, categories) or of the whole frame, which hold millions of values at 100 M decisions,
    and leaves many small groups (reviewers) to the group_by; either way the numbers are the same."""
    from jobs.engines import polars_engine
    from jobs.engines.polars_engine import PolarsEngine

    ranked: list[list[str]] = []
    real = polars_engine.ranked_quantiles

    def spy(frame, sets, column, wanted):
        ranked.extend(list(by) for by in sets)
        return real(frame, sets, column, wanted)

    monkeypatch.setattr(polars_engine, "ranked_quantiles", spy)
    engine = PolarsEngine()
    df = pl.DataFrame(_random_values(3, 5000), schema={"queue": pl.String, "reviewer_id": pl.String, "v": pl.Float64}, orient="row")
    frame = engine.frame(df.with_columns(market=pl.col("queue").cast(pl.Categorical)))
    quantiles = {"p50": ("v", 0.5), "p90": ("v", 0.9)}
    for by, ranks in ((["queue", "market"], True), ([], True), (["reviewer_id"], False), (["queue", "reviewer_id"], False)):
        ranked.clear()
        ours = collect(engine, engine.aggregate(frame, by, AGGS[:1], quantiles))
        generic = collect(engine, polars_engine._grouped_quantiles(frame, by, AGGS[:1], quantiles))
        assert ranked == ([by] if ranks else []), by
        assert ours.columns == generic.columns
        assert sorted(map(repr, ours.iter_rows())) == sorted(map(repr, generic.iter_rows())), by


def test_polars_engine_ranks_every_grouping_set_from_one_count(monkeypatch):
    """violation_daily's grouping sets (low-cardinality keys) rank their quantiles together, one call
    per quantile column for all four sets, and give the generic stack of one group_by per set."""
    from jobs.engines import polars_engine
    from jobs.engines.polars_engine import PolarsEngine

    calls: list[tuple[str, list[list[str]]]] = []
    real = polars_engine.ranked_quantiles

    def spy(frame, sets, column, wanted):
        calls.append((column, [list(s) for s in sets]))
        return real(frame, sets, column, wanted)

    monkeypatch.setattr(polars_engine, "ranked_quantiles", spy)
    engine = PolarsEngine()
    names = {"k": "market", "j": "policy_category"}
    frame = _sets_frame(engine).rename(names)
    sets = tuple(tuple(names[k] for k in kept) for kept in SETS)
    quantiles = {"x_p50": ("x", 0.5), "y_p90": ("y", 0.9), "x_p90": ("x", 0.9)}
    keys = ["market", "policy_category"]
    ours = collect(engine, engine.aggregate_sets(frame, keys, sets, AGGS, quantiles, "ALL"))
    generic = collect(engine, _expr.aggregate_sets(frame, keys, sets, AGGS, quantiles, "ALL", polars_engine._grouped_quantiles))
    assert sorted(c for c, _ in calls) == ["x", "y"] and all(s == [list(k) for k in sets] for _, s in calls)
    assert ours.schema == generic.schema
    assert _rows(ours) == _rows(generic)
    assert ours.height == 7 + 3 + 4 + 1
