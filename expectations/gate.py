"""The data-quality gate (DESIGN §5): every suite through great-expectations, one verdict.

`evaluate` runs each table's suite once, on one ephemeral GE context per call: output tables
are validated as pandas frames (they are small), input tables through a one-row frame of the
figures the engine computed (a day of raw input never reaches pandas). What pandas cannot show
is counted in Polars first and validated as a one-row frame of counts the same way
(`expectations._counted`): NaN and ±inf in every output table's float columns, and all of
creator_category_daily, too large to convert.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import threading
from collections.abc import Collection, Iterator, Mapping
from types import ModuleType
from typing import Any

import pandas as pd
import polars as pl

from expectations import (
    appeals,
    creator_category_daily,
    decisions,
    qa_audits,
    quarantine,
    queue_daily,
    repeat_offenders,
    reviewer_daily,
    shifts,
    violation_daily,
    violation_trends,
)
from expectations._checks import Check, decided, tag
from expectations._counted import counts_frame, finite_counts
from expectations._gx import (
    DataContextConfig,
    Expectation,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
    gx,
    pandas_engine,
)
from expectations.figures import InputFigures
from expectations.results import CRITICAL, ExpectationResult, GateResult
from expectations.thresholds import DQThresholds
from transforms.params import EPOCH, Params
from transforms.schemas import OUTPUT_SCHEMAS

__all__ = ["InputFigures", "ExpectationResult", "GateResult", "DQThresholds", "evaluate", "validate_table",
           "to_pandas", "INPUT_SUITES", "OUTPUT_SUITES", "SUITES"]

INPUT_SUITES: tuple[ModuleType, ...] = (decisions, appeals, qa_audits, shifts)
OUTPUT_SUITES: tuple[ModuleType, ...] = (
    reviewer_daily, queue_daily, violation_daily, violation_trends, repeat_offenders, creator_category_daily,
    quarantine,
)
# Output tables whose suite checks counts taken in Polars (`module.counted`), never their rows as pandas.
COUNTED_SUITES: tuple[ModuleType, ...] = (creator_category_daily,)
# An output table as the job hands it over (Polars), or as a test builds it (pandas, where a NaN
# float is indistinguishable from a null, so only a Polars table has its NaN found).
Table = pl.DataFrame | pd.DataFrame
# One great-expectations validation: the frame and the checks run on it.
Batch = tuple[pd.DataFrame | None, list[Check]]

# BASIC keeps a few failing values for the details without SUMMARY's per-value counting.
_RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 5}
_SAMPLE = 5
_SOURCE = "riskinsight"


def _context() -> Any:
    # In memory only (nothing written next to the job), no usage statistics leaving the machine,
    # and no tqdm bars: GE turns them on for every metric batch unless the context says otherwise.
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(project_config=config, mode="ephemeral")


SUITES: dict[str, ModuleType] = {m.TABLE: m for m in (*INPUT_SUITES, *OUTPUT_SUITES)}

# GE fingerprints every pandas batch by hashing every value (twice per table: get_batch, then
# validate) unless the frame's shallow size passes this threshold. The fingerprint only labels a
# batch's markers, which the gate never reads; hashing was 22 s of the 30 s it took to validate a
# month's 5 M-row repeat_offenders (10 M decisions a day).
pandas_engine.HASH_THRESHOLD = 0


def to_pandas(frame: pl.DataFrame) -> pd.DataFrame:
    """A table as the gate validates it: strings Arrow-backed, everything else NumPy.

    Building a Python str per value took 5.9 s for those 5 M creator ids, Arrow-backed 0.1 s.
    Numbers stay NumPy-backed, where a NaN counts as missing to the not-null checks.
    """
    strings = [c for c, t in frame.schema.items() if t == pl.String]
    parts = [frame.drop(strings).to_pandas(), frame.select(strings).to_pandas(use_pyarrow_extension_array=True)]
    return pd.concat(parts, axis=1)[frame.columns]


def evaluate(
    outputs: Mapping[str, Table],
    figures: InputFigures,
    thresholds: DQThresholds | None = None,
    params: Params | None = None,
) -> GateResult:
    """Run every input and output suite on one context; the verdict fails on any critical failure.

    `params`: those the output tables were computed with (default: the defaults)."""
    thresholds = thresholds or DQThresholds()
    context = _context()
    results: list[ExpectationResult] = []
    for module in INPUT_SUITES:
        results += validate_table(module.TABLE, None, figures, thresholds, params, context=context)
    for module in OUTPUT_SUITES:
        results += validate_table(module.TABLE, outputs.get(module.TABLE), figures, thresholds, params, context=context)
    return GateResult(results)


def validate_table(
    table: str,
    frame: Table | None,
    figures: InputFigures,
    thresholds: DQThresholds | None = None,
    params: Params | None = None,
    *,
    only: Collection[str] | None = None,
    context: Any = None,
) -> list[ExpectationResult]:
    """One table's suite. Input tables validate their figures (pass frame=None); `only` keeps the named checks."""
    thresholds = thresholds or DQThresholds()
    params = params or Params(ds=EPOCH)
    context = context if context is not None else _context()
    module = SUITES[table]
    if module in INPUT_SUITES:
        batches: list[Batch] = [(module.frame(figures, thresholds), module.suite(figures, thresholds))]
    elif frame is None:
        batches = [(None, [decided("table_present", CRITICAL, False, None, f"{table} was not passed to the gate")])]
    else:
        batches = _output_batches(module, frame, figures, thresholds, params)
    if only is not None:
        batches = [(f, [c for c in checks if _name(c) in only]) for f, checks in batches]
    _names_once(table, [c for _, checks in batches for c in checks])
    return [result for f, checks in batches for result in _run(context, table, f, checks)]


def _output_batches(
    module: ModuleType, frame: Table, figures: InputFigures, thresholds: DQThresholds, params: Params
) -> list[Batch]:
    """Two validations: the table's rows as pandas, and a one-row frame of what Polars counted in it."""
    rows = frame if isinstance(frame, pl.DataFrame) else pl.from_pandas(frame)
    suite = module.suite(figures, thresholds, params)
    schema = _schema_check(module.TABLE)
    counts, on_counts = finite_counts(module.TABLE, rows)
    if module in COUNTED_SUITES:
        # Only its columns reach great-expectations, for columns_match_schema.
        return [(to_pandas(rows.head(0)), [schema]), (counts_frame(counts | module.counted(rows)), [*on_counts, *suite])]
    as_pandas = frame if isinstance(frame, pd.DataFrame) else to_pandas(frame)
    return [(as_pandas, [schema, *suite]), (counts_frame(counts), on_counts)]


def _schema_check(table: str) -> Expectation:
    return gx.expectations.ExpectTableColumnsToMatchSet(
        column_set=list(OUTPUT_SCHEMAS[table]), exact_match=True,
        meta=tag("columns_match_schema", CRITICAL, "exactly the OUTPUT_SCHEMAS columns"),
    )


def _batch_definition(context: Any, table: str) -> Any:
    # Get-or-add: a context may validate the same table again (a test, a rerun in one process).
    try:
        source = context.data_sources.get(_SOURCE)
    except KeyError:
        source = context.data_sources.add_pandas(_SOURCE)
    try:
        return source.get_asset(table).get_batch_definition(table)
    except (KeyError, LookupError):
        return source.add_dataframe_asset(table).add_batch_definition_whole_dataframe(table)


def _with_table(table: str, result: ExpectationResult) -> ExpectationResult:
    result.table = table
    return result


def _name(check: Check) -> str:
    return check.meta["name"] if isinstance(check, Expectation) else check.expectation


def _names_once(table: str, checks: list[Check]) -> None:
    # A name is the result's key in dq.json and the manifest.
    names = [_name(c) for c in checks]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise ValueError(f"suite {table} names {sorted(duplicated)} more than once")


def _run(context: Any, table: str, frame: pd.DataFrame | None, checks: list[Check]) -> list[ExpectationResult]:
    names = [_name(c) for c in checks]
    expectations = [c for c in checks if isinstance(c, Expectation)]
    by_name: dict[str, ExpectationResult] = {}
    if expectations:
        suite = gx.ExpectationSuite(name=table, expectations=expectations)
        batch = _batch_definition(context, table).get_batch(batch_parameters={"dataframe": frame})
        with _configurations_built_once():
            validation = batch.validate(suite, result_format=_RESULT_FORMAT)
        for item in validation.results:
            result = _convert(table, item)
            by_name[result.expectation] = result
    out: list[ExpectationResult] = []
    for check, name in zip(checks, names):
        out.append(by_name[name] if isinstance(check, Expectation) else _with_table(table, check))
    return out


_PLAIN_CONFIGURATION = Expectation.configuration
_ONE_VALIDATION_AT_A_TIME = threading.Lock()


@contextlib.contextmanager
def _configurations_built_once() -> Iterator[None]:
    """Within one validation, each expectation's `configuration` is built once, not on every access.

    great-expectations 1.x rebuilds it (a pydantic dict, a regex over the class name, a new
    ExpectationConfiguration) each time it is read, about 90 times per expectation while it plans
    the metrics: half the gate's time on a small day (147 expectations: 1.1-1.6 s -> 0.6-0.9 s).
    Nothing edits an expectation while it is validated, and GE copies a configuration before it
    changes one (`Expectation.validate_`), so every read gets what it would have built. The lock
    keeps a second thread from swapping the property while this one holds it swapped.
    """
    built: dict[int, tuple[Expectation, Any]] = {}

    def configuration(self: Expectation) -> Any:
        # Keyed by identity, holding the expectation itself, so an id is never reused for another.
        hit = built.get(id(self))
        if hit is None or hit[0] is not self:
            hit = built[id(self)] = (self, _PLAIN_CONFIGURATION.fget(self))
        return hit[1]

    with _ONE_VALIDATION_AT_A_TIME:
        Expectation.configuration = property(configuration)  # type: ignore[method-assign]
        try:
            yield
        finally:
            Expectation.configuration = _PLAIN_CONFIGURATION  # type: ignore[method-assign]


def _convert(table: str, item: Any) -> ExpectationResult:
    meta = item.expectation_config.meta or {}
    result = dict(item.result or {})
    error = _error_message(item.exception_info)
    details = meta.get("details", "")
    if error is not None:
        return ExpectationResult(table, meta["name"], meta["severity"], False, None,
                                 f"{details}; error: {error}" if details else f"error: {error}")
    bounds: tuple[float | None, float | None] = (None, None)
    if "observed_value" in result:
        observed = _jsonable(result["observed_value"])
        # The observed value is the checked figure itself (a max, a sum, a rate): its bounds are
        # what a reader compares it with. A per-row check's observed value is a count of rows.
        kwargs = item.expectation_config.kwargs or {}
        bounds = (_bound(kwargs.get("min_value")), _bound(kwargs.get("max_value")))
        if not item.success and result.get("details"):
            # e.g. the missing and unexpected columns of columns_match_schema
            more = str(_jsonable(result["details"]))[:300]
            details = f"{details}; {more}" if details else more
    else:
        observed = _jsonable(result.get("unexpected_count", 0))
        if not item.success:
            sample = _jsonable(result.get("partial_unexpected_list", [])[:_SAMPLE])
            counted = f"{observed} of {result.get('element_count')} rows unexpected, e.g. {sample}"
            details = f"{details}; {counted}" if details else counted
    return ExpectationResult(table, meta["name"], meta["severity"], bool(item.success), observed, details, *bounds)


def _bound(value: Any) -> float | None:
    return None if value is None else float(value)


def _error_message(info: Any) -> str | None:
    """GE reports a failed metric either flat or keyed by metric id; an error is never a pass."""
    if not isinstance(info, dict) or not info:
        return None
    candidates = [info, *(v for v in info.values() if isinstance(v, dict))]
    for candidate in candidates:
        if candidate.get("raised_exception"):
            message = str(candidate.get("exception_message") or "exception")
            return message.splitlines()[0][:300] if message else "exception"
    return None


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (pd.Timestamp, dt.datetime, dt.date)):
        return value.isoformat()
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        try:
            value = value.item()  # numpy scalar
        except (ValueError, TypeError):
            return str(value)
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, int):
        return value
    return str(value)
