"""Clean synthetic moderation logs: the distributions behind `riskinsight generate`.

Everything here is vectorised numpy over one chunk of rows. String columns stay
integer codes (index into a vocabulary, -1 = null) and ids stay integers until the
writer formats them, so a 2M-row chunk costs a few hundred MB and no Python loop
runs over rows. Timestamps are int64 epoch microseconds (NAT = null).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from transforms.params import DEFAULT_TAXONOMY

US_PER_S = 1_000_000
US_PER_DAY = 86_400 * US_PER_S
NAT = np.iinfo(np.int64).min  # null timestamp / date
EPOCH = dt.date(1970, 1, 1)

# Stream tags: every random stream is seeded by (seed, day, tag, chunk), so a day's
# data does not depend on how many chunks or days came before it.
TAG_WORLD, TAG_STAFF, TAG_DECISIONS, TAG_FOLLOWUP, TAG_WARMUP = 1, 2, 3, 4, 5
TAG_ANOMALY, TAG_DIRTY, TAG_SPIKE = 6, 7, 8


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def epoch_us(day: dt.date) -> int:
    return (day - EPOCH).days * US_PER_DAY


def epoch_days(day: dt.date) -> int:
    return (day - EPOCH).days


def ymd(day: dt.date) -> int:
    return day.year * 10_000 + day.month * 100 + day.day


# ---------------------------------------------------------------- vocabularies
# Clean values come first; values after them exist only for dirty rows and oddities.
CONTENT_TYPES = ["live_stream", "live_comment", "video", "comment", "account"]
CONTENT_PREFIX = ["ls", "lc", "vd", "cm", "ac"]
MARKETS = ["US", "IN", "BR", "ID", "MX", "GB", "DE", "FR", "JP", "TR", "PH", "VN", "ES", "IT", "KR", "ZZ"]
ODD_MARKET = MARKETS.index("ZZ")
QUEUES = ["live_realtime", "live_escalation", "video_standard", "comments", "account_review", "legacy_review"]
ODD_QUEUE = QUEUES.index("legacy_review")
SOURCES = ["ml_model", "rule_engine", "proactive_sweep", "user_report", "trusted_flagger"]
MODES = ["human", "automated", "HUMAN", "bot"]
HUMAN, AUTOMATED = 0, 1
BAD_MODES = (2, 3, -1)
OUTCOMES = ["violation", "no_violation", "VIOLATION", "removed"]
VIOLATION, NO_VIOLATION = 0, 1
BAD_OUTCOMES = (2, 3, -1)
CATEGORIES = [*DEFAULT_TAXONOMY, "crypto_giveaway"]
N_TAXONOMY = len(DEFAULT_TAXONOMY)
ODD_CATEGORY = N_TAXONOMY
ACTIONS = ["remove", "restrict", "age_restrict", "warn", "end_live", "suspend_account", "none"]
A_REMOVE, A_RESTRICT, A_AGE, A_WARN, A_END_LIVE, A_SUSPEND, A_NONE = range(7)
APPEAL_OUTCOMES = ["upheld", "overturned", "pending", "UPHELD"]
BAD_APPEAL_OUTCOMES = (2, 3, -1)
TEAMS = ["live-safety", "video-review", "comments-ops", "account-integrity", "escalations"]
SITES = ["dublin", "singapore", "austin", "sao-paulo", "lisbon", "kuala-lumpur"]


def _norm(x: list[float] | np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    return a / a.sum(axis=-1, keepdims=True)


# ---------------------------------------------------------------- distributions
MARKET_P = _norm([0.20, 0.12, 0.10, 0.08, 0.06, 0.06, 0.05, 0.05, 0.05, 0.05, 0.05, 0.04, 0.03, 0.03, 0.03, 0.0])
# UTC offset of each market's population centre: the diurnal curve is local time.
MARKET_TZ_US = (np.array([-6, 5.5, -3, 7, -6, 0, 1, 1, 9, 3, 8, 7, 1, 1, 9, 0]) * 3600 * US_PER_S).astype(np.int64)
# Local hour weights: trough before dawn, peak in the evening; mixed over markets the UTC
# busiest hour carries about twice the quietest.
HOUR_P = _norm([14, 9, 6, 4, 3, 3, 5, 10, 20, 30, 38, 43, 46, 47, 48, 50, 54, 60, 68, 76, 82, 80, 66, 36])
# Monday..Sunday; mean 1 so rows_per_day is the weekly mean.
WEEKLY = np.array([0.96, 0.95, 0.97, 0.99, 1.02, 1.06, 1.05])

CONTENT_TYPE_P = _norm([0.14, 0.22, 0.30, 0.27, 0.07])
QUEUE_GIVEN_TYPE = _norm(
    [
        [0.82, 0.18, 0, 0, 0, 0],  # live_stream
        [0.70, 0.05, 0, 0.25, 0, 0],  # live_comment
        [0, 0, 1, 0, 0, 0],  # video
        [0, 0, 0, 1, 0, 0],  # comment
        [0, 0, 0, 0, 1, 0],  # account
    ]
)
SOURCE_GIVEN_TYPE = _norm(
    [
        [0.55, 0.10, 0.05, 0.25, 0.05],
        [0.50, 0.25, 0.02, 0.20, 0.03],
        [0.45, 0.12, 0.13, 0.25, 0.05],
        [0.40, 0.25, 0.05, 0.27, 0.03],
        [0.25, 0.20, 0.25, 0.20, 0.10],
    ]
)
P_AUTO_BY_SOURCE = np.array([0.82, 0.90, 0.50, 0.40, 0.12])
# Escalations and account reviews are mostly people.
AUTO_FACTOR_BY_QUEUE = np.array([1.0, 0.15, 1.0, 1.0, 0.3, 1.0])
P_VIOLATION_BY_SOURCE = np.array([0.33, 0.40, 0.28, 0.26, 0.60])
P_VIOLATION_BAD_CREATOR = 0.8
BAD_CREATOR_SHARE = 0.06

_CAT_BASE = np.array(
    # violent_extremism hate harassment child adult self_harm dangerous graphic spam scams misinfo illegal ip minor
    [0.01, 0.08, 0.13, 0.015, 0.12, 0.03, 0.05, 0.05, 0.22, 0.10, 0.07, 0.04, 0.04, 0.035]
)
_CAT_TYPE_MULT = np.ones((5, N_TAXONOMY))
_CAT_TYPE_MULT[0, [4, 6, 7, 8, 12, 13]] = [2.0, 2.5, 1.5, 0.3, 0.5, 1.5]  # live_stream
_CAT_TYPE_MULT[1, [1, 2, 4, 8]] = [1.5, 1.8, 0.3, 1.5]  # live_comment
_CAT_TYPE_MULT[2, [6, 10, 12]] = [1.3, 1.5, 2.5]  # video
_CAT_TYPE_MULT[3, [1, 2, 4, 8]] = [1.3, 1.5, 0.3, 1.6]  # comment
_CAT_TYPE_MULT[4, [4, 8, 9, 11]] = [0.5, 2.0, 3.0, 2.0]  # account
CATEGORY_P = _norm(_CAT_BASE)
CATEGORY_GIVEN_TYPE = _norm(_CAT_BASE * _CAT_TYPE_MULT)

# Action given category, over (remove, restrict, age_restrict, warn, end_live, suspend_account).
_ACTION_DEFAULT = [0.60, 0.15, 0.05, 0.15, 0.0, 0.05]
_ACTION_BY_CAT = {
    "violent_extremism": [0.75, 0, 0, 0, 0, 0.25],
    "child_safety": [0.70, 0, 0, 0, 0, 0.30],
    "adult_nudity": [0.55, 0.15, 0.25, 0.05, 0, 0],
    "violent_graphic": [0.55, 0.10, 0.30, 0.05, 0, 0],
    "dangerous_acts": [0.55, 0.10, 0.25, 0.10, 0, 0],
    "spam": [0.55, 0.20, 0, 0.15, 0, 0.10],
    "scams_fraud": [0.60, 0.10, 0, 0.10, 0, 0.20],
    "misinformation": [0.35, 0.40, 0, 0.25, 0, 0],
    "minor_safety": [0.60, 0.15, 0.10, 0.10, 0, 0.05],
}
ACTION_GIVEN_CATEGORY = _norm([_ACTION_BY_CAT.get(c, _ACTION_DEFAULT) for c in DEFAULT_TAXONOMY])

HANDLE_MEDIAN_S = np.array([45.0, 15.0, 80.0, 20.0, 240.0])  # by content type
HANDLE_SIGMA = 0.65
# Human waits by queue: medians well inside the live SLAs (300 s, 900 s) with a lognormal tail that misses.
WAIT_MEDIAN_S = np.array([60.0, 240.0, 5400.0, 10800.0, 21600.0, 3600.0])
WAIT_SIGMA = np.array([0.85, 0.80, 1.0, 1.1, 1.0, 1.0])
AUTO_WAIT_MEDIAN_S = np.array([2.0, 5.0, 30.0, 20.0, 60.0, 10.0])
# Time from posting (or stream start) to entering review, by content type.
DETECT_MEDIAN_S = np.array([900.0, 60.0, 7200.0, 1800.0, 3 * 86400.0])
DETECT_SIGMA = 1.3
DETECT_MULT_BY_SOURCE = np.array([1.0, 1.0, 1.5, 3.0, 2.0])
P_ZERO_VIEWS_BY_SOURCE = np.array([0.60, 0.65, 0.35, 0.03, 0.15])
VIEWS_MEDIAN = np.array([200.0, 5.0, 120.0, 3.0, 50.0])
P_NULL_CREATED = 0.003
P_NULL_VIEWS = 0.01

APPEAL_RATE = 0.03  # of violations
APPEAL_LAG_P = _norm([0.20, 0.30, 0.20, 0.12, 0.08, 0.06, 0.04])  # days from decision to resolution
OVERTURN_AUTOMATED = 0.15
AUDIT_RATE = 0.05  # of human decisions
AUDIT_LAG_P = _norm([0.35, 0.45, 0.20])


# ---------------------------------------------------------------- frame
@dataclass
class Frame:
    """Column arrays of one table chunk.

    `masks` holds explicit null masks only for the float and views columns, where
    every value (NaN, negatives) is meaningful; other columns use -1 / NAT.
    """

    cols: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.cols.values())))

    def take(self, idx: np.ndarray) -> Frame:
        return Frame({k: v[idx] for k, v in self.cols.items()}, {k: v[idx] for k, v in self.masks.items()})

    @staticmethod
    def concat(frames: list[Frame]) -> Frame:
        if len(frames) == 1:
            return frames[0]
        first = frames[0]
        return Frame(
            {k: np.concatenate([f.cols[k] for f in frames]) for k in first.cols},
            {k: np.concatenate([f.masks[k] for f in frames]) for k in first.masks},
        )


def grouped_choice(rng: np.random.Generator, groups: np.ndarray, table: np.ndarray) -> np.ndarray:
    """One categorical draw per row from the row's group's distribution (loops over groups, not rows)."""
    u = rng.random(len(groups))
    cum = np.cumsum(table, axis=1)
    cum[:, -1] = 1.0
    out = np.empty(len(groups), dtype=np.int16)
    for g in range(table.shape[0]):
        m = groups == g
        if m.any():
            out[m] = np.searchsorted(cum[g], u[m], side="right")
    return out


def draw(rng: np.random.Generator, p: np.ndarray, n: int) -> np.ndarray:
    cum = np.cumsum(p)
    cum[-1] = 1.0
    return np.searchsorted(cum, rng.random(n), side="right").astype(np.int16)


def _hash_u(x: np.ndarray, const: int) -> np.ndarray:
    """A fixed pseudo-random uniform per integer (a creator's market, whether it is a bad actor)."""
    h = (x.astype(np.uint64) + np.uint64(1)) * np.uint64(const)
    h ^= h >> np.uint64(29)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(32)
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


_C_MARKET, _C_BAD = 0x9E3779B97F4A7C15, 0xD1B54A32D192ED03


def creator_market(ranks: np.ndarray) -> np.ndarray:
    cum = np.cumsum(MARKET_P)
    cum[-1] = 1.0
    return np.searchsorted(cum, _hash_u(ranks, _C_MARKET), side="right").astype(np.int16)


def bad_creator(ranks: np.ndarray) -> np.ndarray:
    return _hash_u(ranks, _C_BAD) < BAD_CREATOR_SHARE


def zipf_ranks(rng: np.random.Generator, n: int, pool: int, q: float, s: float = 1.2) -> np.ndarray:
    """Ranks from a shifted power law (k+q)^-s on [0, pool): a head of prolific creators, a long tail."""
    a, b = q ** (1 - s), (pool + q) ** (1 - s)
    x = (a + rng.random(n) * (b - a)) ** (1 / (1 - s)) - q
    return np.minimum(x.astype(np.int64), pool - 1)


# ---------------------------------------------------------------- world
@dataclass(frozen=True)
class World:
    """What stays fixed for a whole generated range: the reviewer pool and the creator pool."""

    seed: int
    rows_per_day: int
    speed: np.ndarray  # handle-time multiplier per reviewer
    accuracy: np.ndarray  # probability an auditor agrees with the reviewer
    team: np.ndarray
    site: np.ndarray
    n_auditors: int
    creator_pool: int
    zipf_q: float

    @property
    def n_reviewers(self) -> int:
        return len(self.speed)


def build_world(seed: int, rows_per_day: int) -> World:
    rng = rng_for(seed, 0, TAG_WORLD)
    n_rev = max(5, rows_per_day // 400)
    return World(
        seed=seed,
        rows_per_day=rows_per_day,
        speed=np.exp(rng.normal(0.0, 0.3, n_rev)),
        accuracy=np.clip(1.0 - rng.beta(2.0, 24.0, n_rev), 0.6, 0.995),
        team=rng.integers(0, len(TEAMS), n_rev).astype(np.int16),
        site=rng.integers(0, len(SITES), n_rev).astype(np.int16),
        n_auditors=max(2, n_rev // 20),
        creator_pool=max(10_000, rows_per_day * 20),
        # The head's share of rows stays about constant as volume grows (top creator ~50 decisions/day).
        zipf_q=max(20.0, rows_per_day / 200),
    )


def day_volume(rows_per_day: int, day: dt.date) -> int:
    return max(1, round(rows_per_day * WEEKLY[day.weekday()]))


@dataclass(frozen=True)
class Staffing:
    shift_reviewers: np.ndarray  # reviewers with a shift row
    logged_in_s: np.ndarray
    deciders: np.ndarray  # reviewers who take human decisions
    cum_weight: np.ndarray


def staffing_for(world: World, day: dt.date) -> Staffing:
    rng = rng_for(world.seed, day.toordinal(), TAG_STAFF)
    n = world.n_reviewers
    on = rng.random(n) < 0.88
    if on.sum() < 2:
        on[rng.permutation(n)[:2]] = True
    logged = np.round(rng.uniform(6 * 3600, 9 * 3600, n))
    on_idx, off_idx = np.flatnonzero(on), np.flatnonzero(~on)
    weight = np.where(on, logged, 0.0)
    # A few shifts without decisions (training, tooling outage) ...
    if len(on_idx) >= 3:
        weight[rng.choice(on_idx, max(1, round(0.02 * len(on_idx))), replace=False)] = 0.0
    # ... and a few people deciding without a shift row (overtime not rostered).
    if len(off_idx):
        weight[rng.choice(off_idx, min(len(off_idx), max(1, round(0.02 * n))), replace=False)] = 3 * 3600.0
    weight = weight / world.speed  # fast reviewers get more items for the same hours
    deciders = np.flatnonzero(weight > 0)
    return Staffing(on_idx, logged[on_idx], deciders, np.cumsum(weight[deciders]))


def shifts_frame(world: World, day: dt.date, staffing: Staffing) -> Frame:
    r = staffing.shift_reviewers
    return Frame(
        {
            "reviewer_id": r.astype(np.int64),
            "shift_date": np.full(len(r), epoch_days(day), dtype=np.int64),
            "team": world.team[r],
            "site": world.site[r],
            "logged_in_s": staffing.logged_in_s.astype(np.float64),
        },
        {"logged_in_s": np.zeros(len(r), dtype=bool)},
    )


# ---------------------------------------------------------------- decisions
def gen_decisions(
    world: World,
    day: dt.date,
    n: int,
    idx0: int,
    rng: np.random.Generator,
    staffing: Staffing,
    force: tuple[int, int] | None = None,
) -> Frame:
    """`n` clean decisions decided on `day` with ids from `idx0`.

    `force` = (market, category) makes them a violation campaign (an anomaly spike).
    """
    if force is None:
        ranks = zipf_ranks(rng, n, world.creator_pool, world.zipf_q)
        market = creator_market(ranks)
        bad = bad_creator(ranks)
    else:
        # A coordinated campaign: a few accounts outside the regular pool, all in one market.
        ranks = world.creator_pool + rng.integers(0, 40, n)
        market = np.full(n, force[0], dtype=np.int16)
        bad = np.ones(n, dtype=bool)

    ctype = draw(rng, CONTENT_TYPE_P, n)
    queue = grouped_choice(rng, ctype, QUEUE_GIVEN_TYPE)
    source = grouped_choice(rng, ctype, SOURCE_GIVEN_TYPE)
    automated = rng.random(n) < P_AUTO_BY_SOURCE[source] * AUTO_FACTOR_BY_QUEUE[queue]
    human = ~automated
    n_h = int(human.sum())

    reviewer = np.full(n, -1, dtype=np.int64)
    picks = np.searchsorted(staffing.cum_weight, rng.random(n_h) * staffing.cum_weight[-1], side="right")
    reviewer[human] = staffing.deciders[np.minimum(picks, len(staffing.deciders) - 1)]

    viol = rng.random(n) < np.where(bad, P_VIOLATION_BAD_CREATOR, P_VIOLATION_BY_SOURCE[source])
    if force is not None:
        viol[:] = True
    category = np.full(n, -1, dtype=np.int16)
    category[viol] = grouped_choice(rng, ctype[viol], CATEGORY_GIVEN_TYPE)
    if force is not None:
        category[:] = force[1]
    action = np.full(n, A_NONE, dtype=np.int16)
    action[viol] = grouped_choice(rng, category[viol], ACTION_GIVEN_CATEGORY)
    u = rng.random(n)
    action[viol & (ctype == 0) & (u < 0.6) & (action != A_SUSPEND)] = A_END_LIVE
    acct = viol & (ctype == 4)
    action[acct] = np.where(u[acct] < 0.65, A_SUSPEND, A_WARN)

    local_hour = draw(rng, HOUR_P, n).astype(np.int64)
    local_us = local_hour * 3600 * US_PER_S + rng.integers(0, 3600 * US_PER_S, n)
    decided = epoch_us(day) + (local_us - MARKET_TZ_US[market]) % US_PER_DAY

    handle = np.zeros(n)
    handle[human] = np.round(
        np.clip(
            HANDLE_MEDIAN_S[ctype[human]] * np.exp(rng.normal(0, HANDLE_SIGMA, n_h)) * world.speed[reviewer[human]],
            1.0,
            14400.0,
        ),
        3,
    )
    z = rng.normal(0, 1, n)
    wait_s = np.where(
        human,
        WAIT_MEDIAN_S[queue] * np.exp(WAIT_SIGMA[queue] * z) + handle,
        AUTO_WAIT_MEDIAN_S[queue] * np.exp(z),
    )
    enqueued = decided - (wait_s * US_PER_S).astype(np.int64)
    detect_s = DETECT_MEDIAN_S[ctype] * np.exp(rng.normal(0, DETECT_SIGMA, n)) * DETECT_MULT_BY_SOURCE[source]
    created = enqueued - (detect_s * US_PER_S).astype(np.int64)
    created[rng.random(n) < P_NULL_CREATED] = NAT

    views = np.where(
        rng.random(n) < P_ZERO_VIEWS_BY_SOURCE[source],
        0,
        np.floor(VIEWS_MEDIAN[ctype] * np.exp(rng.normal(0, 1.8, n))).astype(np.int64) + 1,
    ).astype(np.int64)

    return Frame(
        {
            "dec_ymd": np.full(n, ymd(day), dtype=np.int64),
            "dec_idx": np.arange(idx0, idx0 + n, dtype=np.int64),
            "content_id": rng.integers(0, 10**12, n),
            "content_type": ctype,
            "creator_id": ranks,
            "market": market,
            "queue": queue,
            "detection_source": source,
            "content_created_at": created,
            "enqueued_at": enqueued,
            "decided_at": decided,
            "decision_mode": np.where(human, HUMAN, AUTOMATED).astype(np.int16),
            "reviewer_id": reviewer,
            "outcome": np.where(viol, VIOLATION, NO_VIOLATION).astype(np.int16),
            "policy_category": category,
            "action": action,
            "handle_time_s": handle,
            "views_before_action": views,
        },
        {"handle_time_s": automated.copy(), "views_before_action": rng.random(n) < P_NULL_VIEWS},
    )


# ---------------------------------------------------------------- follow-ups (appeals, audits)
def _lags(rng: np.random.Generator, p: np.ndarray, n: int, min_lag: int) -> np.ndarray:
    q = p.copy()
    q[:min_lag] = 0.0
    return draw(rng, q / q.sum(), n).astype(np.int64)


def _time_on_due_day(rng: np.random.Generator, decided: np.ndarray, day: dt.date, lag: np.ndarray) -> np.ndarray:
    """A timestamp on day+lag, never before `decided` (same-day follow-ups come after the decision)."""
    start = epoch_us(day) + lag * US_PER_DAY
    return rng.integers(np.maximum(decided, start), start + US_PER_DAY)


def select_appeals(
    world: World,
    dec: Frame,
    eligible: np.ndarray,
    day: dt.date,
    rng: np.random.Generator,
    rate: float = APPEAL_RATE,
    min_lag: int = 0,
) -> Frame:
    """Appeals of some of `dec`'s violations; column `due` is the ordinal of the day each is resolved."""
    c = dec.cols
    sel = np.flatnonzero(eligible & (c["outcome"] == VIOLATION) & (rng.random(len(dec)) < rate))
    m = len(sel)
    lag = _lags(rng, APPEAL_LAG_P, m, min_lag)
    decided = c["decided_at"][sel]
    resolved = _time_on_due_day(rng, decided, day, lag)
    appealed = decided + (rng.beta(1.2, 4.0, m) * (resolved - decided)).astype(np.int64)
    mode = c["decision_mode"][sel]
    reviewer = c["reviewer_id"][sel]
    human = mode == HUMAN
    acc = np.where(human, world.accuracy[np.maximum(reviewer, 0)], 1.0)
    p_over = np.where(human, np.clip(0.04 + 2.2 * (1.0 - acc), 0.0, 0.9), OVERTURN_AUTOMATED)
    return Frame(
        {
            "key_ymd": c["dec_ymd"][sel],
            "key_idx": c["dec_idx"][sel],
            "dec_ymd": c["dec_ymd"][sel],
            "dec_idx": c["dec_idx"][sel],
            "appealed_at": appealed,
            "resolved_at": resolved,
            "appeal_outcome": (rng.random(m) < p_over).astype(np.int16),
            "reviewer_id": reviewer,
            "decision_mode": mode,
            "market": c["market"][sel],
            "policy_category": c["policy_category"][sel],
            "decided_at": decided,
            "due": day.toordinal() + lag,
        },
        {},
    )


def select_audits(
    world: World,
    dec: Frame,
    eligible: np.ndarray,
    day: dt.date,
    rng: np.random.Generator,
    rate: float = AUDIT_RATE,
    min_lag: int = 0,
) -> Frame:
    """QA audits of some of `dec`'s human decisions; the auditor agrees with the reviewer's accuracy."""
    c = dec.cols
    sel = np.flatnonzero(eligible & (c["decision_mode"] == HUMAN) & (rng.random(len(dec)) < rate))
    m = len(sel)
    lag = _lags(rng, AUDIT_LAG_P, m, min_lag)
    audited = _time_on_due_day(rng, c["decided_at"][sel], day, lag)
    reviewer = c["reviewer_id"][sel]
    orig_out = c["outcome"][sel]
    orig_cat = c["policy_category"][sel]
    exp_out, exp_cat = orig_out.copy(), orig_cat.copy()
    disagree = rng.random(m) >= world.accuracy[reviewer]
    # A disagreement on a violation is half "not a violation", half "another category".
    flip = disagree & ((orig_out == NO_VIOLATION) | (rng.random(m) < 0.5))
    exp_out[flip] = np.where(orig_out[flip] == VIOLATION, NO_VIOLATION, VIOLATION)
    exp_cat[flip & (orig_out == VIOLATION)] = -1
    new_v = flip & (orig_out == NO_VIOLATION)
    exp_cat[new_v] = draw(rng, CATEGORY_P, int(new_v.sum()))
    recat = disagree & ~flip
    exp_cat[recat] = (orig_cat[recat] + rng.integers(1, N_TAXONOMY, int(recat.sum()))) % N_TAXONOMY
    return Frame(
        {
            "key_ymd": c["dec_ymd"][sel],
            "key_idx": c["dec_idx"][sel],
            "dec_ymd": c["dec_ymd"][sel],
            "dec_idx": c["dec_idx"][sel],
            "auditor_id": rng.integers(0, world.n_auditors, m),
            "audited_at": audited,
            "reviewer_id": reviewer,
            "market": c["market"][sel],
            "queue": c["queue"][sel],
            "original_outcome": orig_out,
            "original_category": orig_cat,
            "expected_outcome": exp_out,
            "expected_category": exp_cat,
            "due": day.toordinal() + lag,
        },
        {},
    )


def warm_up_followups(world: World, start: dt.date) -> tuple[list[Frame], list[Frame]]:
    """Appeals and audits resolved in the range whose decisions predate it.

    Without them the first days would have far fewer appeals than steady state. Only the
    decisions that can reach the range are drawn: a `1/boost` sample of the earlier day
    selected at `boost` times the rate, with lags conditioned to land on or after `start`.
    """
    boost = 10.0
    appeals: list[Frame] = []
    audits: list[Frame] = []
    for lag_p, rate, out, tag in ((APPEAL_LAG_P, APPEAL_RATE, appeals, 0), (AUDIT_LAG_P, AUDIT_RATE, audits, 1)):
        for k in range(1, len(lag_p)):
            day = start - dt.timedelta(days=k)
            n = math.ceil(day_volume(world.rows_per_day, day) * lag_p[k:].sum() / boost)
            rng = rng_for(world.seed, day.toordinal(), TAG_WARMUP, tag)
            # Offset ids so virtual decisions behind appeals and audits never share an id.
            dec = gen_decisions(world, day, n, tag * 500_000_000, rng, staffing_for(world, day))
            select = select_appeals if tag == 0 else select_audits
            out.append(select(world, dec, np.ones(n, dtype=bool), day, rng, min(1.0, rate * boost), min_lag=k))
    return appeals, audits


# ---------------------------------------------------------------- anomalies
@dataclass(frozen=True)
class Anomaly:
    day: dt.date
    kind: str  # spike | drop
    market: int
    category: int
    factor: float  # volume multiplier for a spike, share kept for a drop


# High-volume combinations, so a spike or drop clears the volume floor of the trend test.
_ANOMALY_MARKETS = (0, 1, 2, 3)
_ANOMALY_CATEGORIES = tuple(DEFAULT_TAXONOMY.index(c) for c in ("spam", "harassment", "adult_nudity", "scams_fraud"))


def anomaly_plan(seed: int, start: dt.date, days: int, min_baseline: int = 14) -> list[Anomaly]:
    """A spike and a drop on the last day and nine days before it, where a 14-day baseline exists."""
    offsets = sorted({o for o in (days - 1, days - 10) if o >= min_baseline})
    rng = rng_for(seed, 0, TAG_ANOMALY)
    pairs = [(m, c) for m in _ANOMALY_MARKETS for c in _ANOMALY_CATEGORIES]
    order = rng.permutation(len(pairs))
    plan: list[Anomaly] = []
    for i, off in enumerate(offsets):
        day = start + dt.timedelta(days=off)
        sm, sc = pairs[order[2 * i]]
        dm, dc = pairs[order[2 * i + 1]]
        plan.append(Anomaly(day, "spike", sm, sc, float(round(rng.uniform(4.0, 6.0), 2))))
        plan.append(Anomaly(day, "drop", dm, dc, float(round(rng.uniform(0.08, 0.2), 2))))
    return plan
