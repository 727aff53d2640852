"""Dirty rows for `riskinsight generate`: one variant per way of breaking each DESIGN §3 rule.

Each dirty row is a clean row changed so that it breaks exactly one rule and none listed
before it, so the count staging quarantines under each reason equals the count injected.
Exact duplicates and conflicting duplicates are appended copies; every other dirty row
and every oddity is changed in place, on distinct rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from jobs.generate_model import (
    A_NONE,
    A_WARN,
    AUTOMATED,
    BAD_APPEAL_OUTCOMES,
    BAD_MODES,
    BAD_OUTCOMES,
    HUMAN,
    N_TAXONOMY,
    NAT,
    NO_VIOLATION,
    ODD_CATEGORY,
    ODD_MARKET,
    ODD_QUEUE,
    US_PER_DAY,
    US_PER_S,
    VIOLATION,
    Frame,
)

Rows = np.ndarray
Where = Callable[[Frame, Rows], np.ndarray]
Apply = Callable[[Frame, Rows, np.random.Generator, int], None]  # last argument: reviewer pool size


@dataclass(frozen=True)
class Variant:
    where: Where | None  # which rows the variant may take (None: any)
    apply: Apply


def _eq(col: str, value: int) -> Where:
    return lambda f, idx: f.cols[col][idx] == value


def _set_int(col: str, value: int) -> Apply:
    def apply(f: Frame, idx: Rows, rng: np.random.Generator, n_rev: int) -> None:
        f.cols[col][idx] = value

    return apply


def _cycle(col: str, values: tuple[int, ...]) -> Apply:
    def apply(f: Frame, idx: Rows, rng: np.random.Generator, n_rev: int) -> None:
        f.cols[col][idx] = np.asarray(values)[np.arange(len(idx)) % len(values)]

    return apply


def _later_than(col: str, ref: str, max_s: int) -> Apply:
    def apply(f: Frame, idx: Rows, rng: np.random.Generator, n_rev: int) -> None:
        f.cols[col][idx] = f.cols[ref][idx] + rng.integers(US_PER_S, max_s * US_PER_S, len(idx))

    return apply


def _shift_day(cols: tuple[str, ...], unit: int) -> Apply:
    """Move the event (and the times it must stay after) to the day before or after, alternately."""

    def apply(f: Frame, idx: Rows, rng: np.random.Generator, n_rev: int) -> None:
        step = np.where(np.arange(len(idx)) % 2 == 0, -unit, unit)
        for c in cols:
            v = f.cols[c][idx]
            ok = v != NAT
            v[ok] += step[ok]
            f.cols[c][idx] = v

    return apply


def _null_value(col: str) -> Apply:
    def apply(f: Frame, idx: Rows, rng: np.random.Generator, n_rev: int) -> None:
        f.masks[col][idx] = True

    return apply


def _value(col: str, draw: Callable[[np.random.Generator, int], np.ndarray]) -> Apply:
    def apply(f: Frame, idx: Rows, rng: np.random.Generator, n_rev: int) -> None:
        f.cols[col][idx] = draw(rng, len(idx))
        if col in f.masks:
            f.masks[col][idx] = False

    return apply


def _some_reviewer(col: str) -> Apply:
    def apply(f: Frame, idx: Rows, rng: np.random.Generator, n_rev: int) -> None:
        f.cols[col][idx] = rng.integers(0, n_rev, len(idx))

    return apply


def _some_category(col: str) -> Apply:
    return _value(col, lambda rng, k: rng.integers(0, N_TAXONOMY, k).astype(np.int16))


_HUMAN = _eq("decision_mode", HUMAN)
_AUTO = _eq("decision_mode", AUTOMATED)
_NAN = _value("handle_time_s", lambda rng, k: np.full(k, np.nan))

# In DESIGN §3 order: a row is quarantined for the first reason it breaks.
REASONS: dict[str, dict[str, list[Variant]]] = {
    "decisions": {
        "missing_key": [
            Variant(None, _set_int("dec_idx", -1)),
            Variant(None, _set_int("content_id", -1)),
            Variant(None, _set_int("creator_id", -1)),
        ],
        "bad_timestamp": [
            Variant(None, _set_int("enqueued_at", NAT)),
            Variant(None, _set_int("decided_at", NAT)),
            Variant(None, _later_than("enqueued_at", "decided_at", 600)),
            Variant(None, _later_than("content_created_at", "decided_at", 3600)),
        ],
        "wrong_partition": [
            Variant(None, _shift_day(("decided_at", "enqueued_at", "content_created_at"), US_PER_DAY)),
        ],
        "bad_mode": [
            Variant(None, _cycle("decision_mode", BAD_MODES)),
            Variant(_HUMAN, _set_int("reviewer_id", -1)),
            Variant(_HUMAN, _null_value("handle_time_s")),
            Variant(_AUTO, _some_reviewer("reviewer_id")),
        ],
        "bad_outcome": [
            Variant(None, _cycle("outcome", BAD_OUTCOMES)),
            Variant(_eq("outcome", VIOLATION), _set_int("policy_category", -1)),
            Variant(_eq("outcome", NO_VIOLATION), _some_category("policy_category")),
        ],
        "bad_range": [
            Variant(_HUMAN, _value("handle_time_s", lambda rng, k: -np.round(rng.uniform(1, 100, k), 3))),
            Variant(_HUMAN, _value("handle_time_s", lambda rng, k: 14400 + np.round(rng.uniform(1, 5000, k), 3))),
            Variant(_HUMAN, _NAN),
            Variant(None, _value("views_before_action", lambda rng, k: -rng.integers(1, 50, k))),
        ],
    },
    "appeals": {
        "missing_key": [Variant(None, _set_int("key_idx", -1)), Variant(None, _set_int("dec_idx", -1))],
        "bad_timestamp": [
            Variant(None, _set_int("appealed_at", NAT)),
            Variant(None, _set_int("resolved_at", NAT)),
            Variant(None, _later_than("appealed_at", "resolved_at", 3600)),
            Variant(None, _later_than("decided_at", "appealed_at", 3600)),
        ],
        "wrong_partition": [Variant(None, _shift_day(("resolved_at", "appealed_at", "decided_at"), US_PER_DAY))],
        "bad_mode": [
            Variant(None, _cycle("decision_mode", BAD_MODES)),
            Variant(_HUMAN, _set_int("reviewer_id", -1)),
            Variant(_AUTO, _some_reviewer("reviewer_id")),
        ],
        "bad_outcome": [Variant(None, _cycle("appeal_outcome", BAD_APPEAL_OUTCOMES))],
    },
    "qa_audits": {
        "missing_key": [
            Variant(None, _set_int("key_idx", -1)),
            Variant(None, _set_int("dec_idx", -1)),
            Variant(None, _set_int("reviewer_id", -1)),
        ],
        "bad_timestamp": [Variant(None, _set_int("audited_at", NAT))],
        "wrong_partition": [Variant(None, _shift_day(("audited_at",), US_PER_DAY))],
        "bad_outcome": [
            Variant(None, _cycle("original_outcome", BAD_OUTCOMES)),
            Variant(None, _cycle("expected_outcome", BAD_OUTCOMES)),
            Variant(_eq("original_outcome", VIOLATION), _set_int("original_category", -1)),
            Variant(_eq("expected_outcome", VIOLATION), _set_int("expected_category", -1)),
        ],
    },
    "shifts": {
        "missing_key": [Variant(None, _set_int("reviewer_id", -1)), Variant(None, _set_int("shift_date", NAT))],
        "wrong_partition": [Variant(None, _shift_day(("shift_date",), 1))],
        "bad_range": [
            Variant(None, _null_value("logged_in_s")),
            Variant(None, _value("logged_in_s", lambda rng, k: np.full(k, np.nan))),
            Variant(None, _value("logged_in_s", lambda rng, k: -np.round(rng.uniform(1, 3600, k)))),
            Variant(None, _value("logged_in_s", lambda rng, k: 86400 + np.round(rng.uniform(1, 20000, k)))),
        ],
    },
}


def _conflict_decisions(f: Frame, idx: Rows, rng: np.random.Generator, n_rev: int) -> None:
    # A replayed event with a later view count: same key, other content, still valid on its own.
    v, m = f.cols["views_before_action"], f.masks["views_before_action"]
    v[idx] = np.where(m[idx], 3, v[idx] + 7)
    m[idx] = False


def _conflict_appeals(f: Frame, idx: Rows, rng: np.random.Generator, n_rev: int) -> None:
    f.cols["appeal_outcome"][idx] = 1 - f.cols["appeal_outcome"][idx]


def _conflict_audits(f: Frame, idx: Rows, rng: np.random.Generator, n_rev: int) -> None:
    out, cat = f.cols["expected_outcome"], f.cols["expected_category"]
    was_v = out[idx] == VIOLATION
    out[idx] = np.where(was_v, NO_VIOLATION, VIOLATION)
    cat[idx] = np.where(was_v, -1, rng.integers(0, N_TAXONOMY, len(idx)))


def _conflict_shifts(f: Frame, idx: Rows, rng: np.random.Generator, n_rev: int) -> None:
    v = f.cols["logged_in_s"]
    v[idx] = np.where(v[idx] > 43200, v[idx] - 1800, v[idx] + 1800)


CONFLICT: dict[str, Apply] = {
    "decisions": _conflict_decisions,
    "appeals": _conflict_appeals,
    "qa_audits": _conflict_audits,
    "shifts": _conflict_shifts,
}

# DESIGN §3 "not quarantined": warnings for the DQ suites, never quarantine.
ODDITIES: dict[str, dict[str, list[Variant]]] = {
    "decisions": {
        "unknown_queue": [Variant(None, _set_int("queue", ODD_QUEUE))],
        "unknown_market": [Variant(None, _set_int("market", ODD_MARKET))],
        "unknown_category": [Variant(_eq("outcome", VIOLATION), _set_int("policy_category", ODD_CATEGORY))],
        "action_mismatch": [
            Variant(_eq("outcome", NO_VIOLATION), _set_int("action", A_WARN)),
            Variant(_eq("outcome", VIOLATION), _set_int("action", A_NONE)),
        ],
        "automated_handle_time": [
            Variant(_AUTO, _value("handle_time_s", lambda rng, k: np.round(rng.uniform(1, 300, k), 3)))
        ],
    },
    "appeals": {},
    "qa_audits": {},
    "shifts": {},
}


def reasons(table: str) -> list[str]:
    """Quarantine reasons of `table` in DESIGN order, conflicting_duplicate last."""
    return [*REASONS[table], "conflicting_duplicate"]


def plan_counts(table: str, n: int, rate: float, rng: np.random.Generator) -> tuple[dict[str, int], dict[str, int]]:
    """Units to inject per reason (a conflicting-duplicate unit is one pair) and per oddity.

    From 1000 rows every reason gets at least one. Smaller tables (shifts, appeals at demo
    volume) get round(rate * n) units in all, spread over the reasons from a day-dependent
    start, so a default run does not push a 50-row shifts table past the DQ quarantine limit.
    """
    units = [*reasons(table), "exact_duplicate"]
    counts = dict.fromkeys(units, 0)
    odd = dict.fromkeys(ODDITIES[table], 0)
    if rate <= 0 or n <= 0:
        return counts, odd
    per_unit = rate * n / len(units)
    if n >= 1000:
        counts = {u: max(1, round(per_unit)) for u in units}
        odd = {k: max(1, round(per_unit / 2)) for k in odd}
    else:
        offset = int(rng.integers(len(units)))
        for j in range(round(rate * n)):
            counts[units[(offset + j) % len(units)]] += 1
        odd = {k: round(per_unit / 2) for k in odd}
    return counts, odd


@dataclass
class Injected:
    frame: Frame  # the input frame, some rows changed in place
    appended: Frame | None  # conflicting and exact duplicate copies, written after `frame`
    eligible: np.ndarray  # rows of `frame` fit to be appealed or audited (not dirty)
    dirty: dict[str, int]  # distinct rows staging must quarantine, by reason
    exact_duplicates: int  # appended identical copies (= duplicates_dropped)
    oddities: dict[str, int]


def inject(
    table: str, frame: Frame, n_basis: int, rate: float, rng: np.random.Generator, n_reviewers: int
) -> Injected:
    """Turn some of a clean `frame`'s rows dirty (in place) and make the duplicate copies.

    `n_basis` is the row count the rate applies to (the whole day when `frame` is one chunk of it).
    """
    counts, odd_counts = plan_counts(table, n_basis, rate, rng)
    n = len(frame)
    need = sum(counts.values()) + sum(odd_counts.values())
    dirty = dict.fromkeys(reasons(table), 0)
    if need == 0 or n == 0:
        return Injected(frame, None, np.ones(n, dtype=bool), dirty, 0, dict(odd_counts))

    # A random pool a few times larger than needed, so predicates (human, violation, ...) find rows.
    pool = rng.permutation(n)[: min(n, 8 * need + 256)]
    used = np.zeros(len(pool), dtype=bool)

    def pick(where: Where | None, k: int) -> Rows:
        ok = ~used if where is None else ~used & where(frame, pool)
        pos = np.flatnonzero(ok)[:k]
        used[pos] = True
        return pool[pos]

    def run(variants: list[Variant], k: int) -> Rows:
        taken = []
        for i, var in enumerate(variants):
            idx = pick(var.where, len(range(i, k, len(variants))))
            if len(idx):
                var.apply(frame, idx, rng, n_reviewers)
            taken.append(idx)
        return np.concatenate(taken) if taken else np.empty(0, dtype=np.int64)

    for reason, variants in REASONS[table].items():
        dirty[reason] = len(run(variants, counts[reason]))
    odd_rows = []
    oddities = {}
    for kind, variants in ODDITIES[table].items():
        rows = run(variants, odd_counts[kind])
        oddities[kind] = len(rows)
        odd_rows.append(rows)

    conflict_src = pick(None, counts["conflicting_duplicate"])
    conflicts = frame.take(conflict_src)
    CONFLICT[table](conflicts, np.arange(len(conflicts)), rng, n_reviewers)
    dirty["conflicting_duplicate"] = 2 * len(conflict_src)
    dup_src = pick(None, counts["exact_duplicate"])
    dups = frame.take(dup_src)

    eligible = np.ones(n, dtype=bool)
    eligible[pool[used]] = False
    eligible[dup_src] = True  # the original of an exact duplicate is a clean row
    for rows in odd_rows:
        eligible[rows] = True
    return Injected(frame, Frame.concat([conflicts, dups]), eligible, dirty, len(dup_src), oddities)
