"""input_profile: a handful of counts over the staged inputs that the DQ gate checks (DESIGN §5).

The gate never sees a day of raw input; the engine computes these few numbers in its own
plan and the gate compares them with the outputs (reconciliation) and with thresholds
(unknown markets, categories, queues and actions, actions that do not fit the outcome).
"""

from __future__ import annotations

import narwhals.stable.v2 as nw

from transforms.iso_markets import ISO_3166_ALPHA2
from transforms.params import Params

PROFILE_SCHEMA: dict[str, nw.dtypes.DType] = {
    "table": nw.String(),
    "figure": nw.String(),
    "value": nw.Float64(),
}

_ISO = sorted(ISO_3166_ALPHA2)
# DESIGN §2: the actions a decision may take; "none" iff the outcome is no_violation.
ACTIONS: tuple[str, ...] = ("remove", "restrict", "age_restrict", "warn", "end_live", "suspend_account", "none")
_TAKEN = [a for a in ACTIONS if a != "none"]


def _count(condition: nw.Expr) -> nw.Expr:
    # Spark cannot sum booleans, and a null condition must count as "no": when/otherwise does both.
    return nw.when(condition).then(nw.lit(1, nw.Int64())).otherwise(nw.lit(0, nw.Int64())).sum()


def _outside(column: str, allowed: list[str]) -> nw.Expr:
    # is_in on a null yields null, not False; a null is outside every enumerated set (DESIGN §3).
    col = nw.col(column)
    return col.is_null() | ~col.is_in(allowed)


def _figures(table: str, params: Params) -> dict[str, nw.Expr]:
    taxonomy = list(params.taxonomy)
    queues = sorted(params.sla_s)
    figures: dict[str, nw.Expr] = {"staged_rows": nw.len()}
    if table == "decisions":
        violation = nw.col("outcome") == "violation"
        no_violation = nw.col("outcome") == "no_violation"
        figures |= {
            "human_decisions": _count(nw.col("decision_mode") == "human"),
            "automated_decisions": _count(nw.col("decision_mode") == "automated"),
            "violations": _count(violation),
            "unknown_market": _count(_outside("market", _ISO)),
            "unknown_category": _count(violation & _outside("policy_category", taxonomy)),
            "unknown_queue": _count(_outside("queue", queues)),
            # Disjoint, so an odd row warns once: an action outside the set (null included) is
            # unknown; a known one that contradicts the outcome is a mismatch.
            "unknown_action": _count(_outside("action", list(ACTIONS))),
            "action_mismatch": _count(
                (violation & (nw.col("action") == "none")) | (no_violation & nw.col("action").is_in(_TAKEN))
            ),
        }
    elif table == "appeals":
        figures |= {
            "human_appeals": _count(nw.col("decision_mode") == "human"),
            "unknown_market": _count(_outside("market", _ISO)),
            "unknown_category": _count(_outside("policy_category", taxonomy)),
        }
    elif table == "qa_audits":
        figures |= {
            "unknown_market": _count(_outside("market", _ISO)),
            "unknown_queue": _count(_outside("queue", queues)),
            "unknown_category": _count(
                ((nw.col("original_outcome") == "violation") & _outside("original_category", taxonomy))
                | ((nw.col("expected_outcome") == "violation") & _outside("expected_category", taxonomy))
            ),
        }
    return figures


def input_profile(staged: dict[str, nw.LazyFrame], params: Params) -> nw.LazyFrame:
    """Long frame (table, figure, value: float64) of counts over each staged input table.

    Figures: every table `staged_rows`; decisions `human_decisions`, `automated_decisions`,
    `violations`, `unknown_market`, `unknown_category`, `unknown_queue`, `unknown_action` (null or
    outside ACTIONS), `action_mismatch` (a known action that does not fit the outcome);
    appeals `human_appeals`, `unknown_market`, `unknown_category`; qa_audits `unknown_market`,
    `unknown_queue`, `unknown_category`.
    """
    parts: list[nw.LazyFrame] = []
    for table in sorted(staged):
        figures = _figures(table, params)
        # Spark sums zero rows to null; a count over an empty day is 0.
        one_row = staged[table].select(
            [expr.cast(nw.Int64()).fill_null(0).alias(name) for name, expr in figures.items()]
        )
        long = one_row.unpivot(on=list(figures), variable_name="figure", value_name="value")
        parts.append(
            long.select(
                nw.lit(table, nw.String()).alias("table"),
                nw.col("figure").cast(nw.String()),
                nw.col("value").cast(nw.Float64()),
            )
        )
    if not parts:
        raise ValueError("input_profile needs at least one staged table")
    return nw.concat(parts, how="vertical")


def profile_dict(profile: nw.DataFrame) -> dict[tuple[str, str], float]:
    """The collected profile as the `InputFigures.profile` mapping the gate takes."""
    rows = profile.select("table", "figure", "value").rows()
    return {(str(t), str(f)): float(v) for t, f, v in rows}
