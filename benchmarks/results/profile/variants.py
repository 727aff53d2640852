"""One profiling variant per process (run under /usr/bin/time): python variants.py VARIANT INPUT SCRATCH."""
import datetime as dt, sys, time, json
from pathlib import Path
import narwhals.stable.v2 as nw
import polars as pl
from jobs.config import Config
from jobs.engines.polars_engine import PolarsEngine, _normalise
from transforms import staging
from transforms.staging import RULES, REASON, CONFLICTING_DUPLICATE
from transforms.schemas import INPUT_KEYS

variant, inp, scratch = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
ds = dt.date(2024, 1, 1)
params = Config().params(ds)
eng = PolarsEngine()
T = "decisions"
part = inp / T / f"ds={ds}"
scratch.mkdir(parents=True, exist_ok=True)
out = scratch / f"{variant}.parquet"


def classify_with(distinct, shared_key):
    first = None
    for name, rule in RULES[T]:
        cond = rule(params)
        first = nw.when(cond).then(nw.lit(name)) if first is None else first.when(cond).then(nw.lit(name))
    first = first.when(shared_key).then(nw.lit(CONFLICTING_DUPLICATE))
    return distinct.with_columns(first.otherwise(nw.lit(None, nw.String)).alias(REASON))


def sink(frame, **kw):
    native = frame.to_native() if hasattr(frame, "to_native") else frame
    native.sink_parquet(out, engine="streaming", **kw)


t0 = time.perf_counter()
key = INPUT_KEYS[T]
if variant == "scan_decisions":
    pl.scan_parquet(f"{part}/*.parquet").select(pl.all().max(), pl.len()).collect(engine="streaming")
elif variant == "read_normalise_sink":
    sink(eng.read_input(T, part))
elif variant == "unique_sink":
    sink(eng.read_input(T, part).unique())
elif variant == "classify_current":  # what read_stage does for decisions
    sink(staging.classify(eng.read_input(T, part), T, params))
elif variant == "classify_current_lz4":
    sink(staging.classify(eng.read_input(T, part), T, params), compression="lz4")
elif variant == "classify_current_uncompressed":
    sink(staging.classify(eng.read_input(T, part), T, params), compression="uncompressed")
elif variant == "classify_no_conflict_check":  # lower bound: what the window costs
    sink(classify_with(eng.read_input(T, part).unique(), nw.lit(False)))
elif variant == "classify_is_duplicated":
    native = eng.read_input(T, part).to_native().unique()
    sk = pl.col(key).is_duplicated() & pl.col(key).is_not_null()
    sink(classify_with(nw.from_native(native.with_columns(sk.alias("__sk"))), nw.col("__sk")).drop("__sk"))
elif variant == "classify_semi_join":
    # keys seen on more than one distinct row, computed as a small group_by and joined back
    distinct = eng.read_input(T, part).to_native().unique()
    dup = distinct.group_by(key).agg(pl.len().alias("__n")).filter(pl.col("__n") > 1).select(key, pl.lit(True).alias("__sk"))
    j = distinct.join(dup, on=key, how="left").with_columns(pl.col("__sk").fill_null(False))
    sink(classify_with(nw.from_native(j), nw.col("__sk")).drop("__sk"))
elif variant == "classify_dedupe_first":
    # unique() on the raw contract columns before the readers' normalisation / epoch helper columns
    files = sorted(part.glob("*.parquet"))
    raw = pl.concat([pl.scan_parquet(f) for f in files]).unique()
    norm = _normalise(raw, T, dict(pl.read_parquet_schema(files[0])), files[0])
    sink(staging.classify(nw.from_native(norm), T, params).to_native())
elif variant == "classify_dedupe_first_is_duplicated_lz4":
    files = sorted(part.glob("*.parquet"))
    raw = pl.concat([pl.scan_parquet(f) for f in files]).unique()
    norm = _normalise(raw, T, dict(pl.read_parquet_schema(files[0])), files[0])
    sk = pl.col(key).is_duplicated() & pl.col(key).is_not_null()
    sink(classify_with(nw.from_native(norm.with_columns(sk.alias("__sk"))), nw.col("__sk")).drop("__sk"), compression="lz4")
elif variant == "stage_by_key_current":  # the committed read_stage path for decisions
    from functools import partial
    d = scratch / "sbk"
    eng.stage_by_key(eng.read_input(T, part), key, partial(staging.classify, table=T, params=params), d)
    out = d / "part-00000.parquet"
elif variant == "stage_by_key_1bucket":
    from functools import partial
    eng.rows_per_bucket = 10**12
    d = scratch / "sbk1"
    eng.stage_by_key(eng.read_input(T, part), key, partial(staging.classify, table=T, params=params), d)
    out = d / "part-00000.parquet"
elif variant == "spread_only":
    from jobs.engines.polars_engine import _BUCKET
    native = eng.read_input(T, part).to_native()
    native.with_columns((pl.col(key).hash(seed=0) % 3).alias(_BUCKET)).sink_parquet(
        pl.PartitionBy(scratch / "spread", key=_BUCKET), mkdir=True, engine="streaming")
elif variant == "count_only":
    print(eng.read_input(T, part).to_native().select(pl.len()).collect().item())
elif variant.startswith("classify_key_first"):
    # Only rows whose key occurs more than once can be exact or conflicting duplicates: find those keys
    # with a key-only group_by, dedupe + window on that small set, pass every other row straight through.
    raw = eng.read_input(T, part).to_native()
    dup_keys = raw.group_by(key).agg(pl.len().alias("__n")).filter(pl.col("__n") > 1).select(key)
    dup_keys = dup_keys.collect(engine="streaming").lazy()  # tiny: a few thousand keys
    singles = raw.join(dup_keys, on=key, how="anti", nulls_equal=True)
    multis = raw.join(dup_keys, on=key, how="semi", nulls_equal=True).unique()
    a = classify_with(nw.from_native(singles), nw.lit(False)).to_native()
    b = classify_with(nw.from_native(multis), (nw.col(key).count().over(key) > 1).fill_null(False)).to_native()
    kw = {"compression": "lz4"} if variant.endswith("lz4") else {}
    sink(pl.concat([a, b]), **kw)
    print(pl.scan_parquet(out).group_by(REASON).agg(pl.len()).sort(REASON).collect().rows())
elif variant == "reasons_current":
    print(staging.classify(eng.read_input(T, part), T, params).to_native().group_by(REASON).agg(pl.len()).sort(REASON).collect(engine="streaming").rows())
elif variant == "explain_classify":
    print(staging.classify(eng.read_input(T, part), T, params).to_native().explain(engine="streaming"))
else:
    raise SystemExit(f"unknown variant {variant}")
el = time.perf_counter() - t0
size = out.stat().st_size if out.exists() else 0
print(json.dumps({"variant": variant, "inner_s": round(el, 2), "scratch_mib": round(size / 2**20, 1)}))
