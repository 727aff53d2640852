"""sor_daily and dsa_transparency figures on a tiny hand-built day: every delay, count and rate worked
out by hand (no shared sample needed). Delays: moderation = application_date - content_date,
disclosure = created_at - application_date; a zero delay is a delay like any other (in the
percentiles, not negative), a negative one is left out of the percentiles and counted."""

from __future__ import annotations

import polars as pl
import pytest

from tests.builders import sor_statements as _frame
from transforms.dsa_transparency import dsa_transparency
from transforms.sor_daily import sor_daily

S = 1_000_000  # microseconds per second

# uuid: (content_date, application_date, created_at) in seconds -> moderation and disclosure delays
DAY = [
    {"uuid": "a", "content_date_us": 0, "application_date_us": 0, "created_at_us": 0},  # mod 0, dis 0
    {"uuid": "b", "content_date_us": 0, "application_date_us": 10 * S, "created_at_us": 30 * S},  # mod 10, dis 20
    {"uuid": "c", "content_date_us": 0, "application_date_us": 20 * S, "created_at_us": 60 * S,  # mod 20, dis 40
     "automated_detection": "No", "automated_decision": "AUTOMATED_DECISION_PARTIALLY"},
    {"uuid": "d", "content_date_us": 0, "application_date_us": 40 * S, "created_at_us": 100 * S,  # mod 40, dis 60
     "automated_detection": "No", "automated_decision": "AUTOMATED_DECISION_NOT_AUTOMATED"},
    {"uuid": "e", "content_date_us": 0, "application_date_us": 100 * S, "created_at_us": 90 * S},  # mod 100, dis -10
    {"uuid": "f", "content_date_us": 50 * S, "application_date_us": 20 * S, "created_at_us": 25 * S},  # mod -30, dis 5
]  # fmt: skip


def _row(df: pl.DataFrame, **keys: str) -> dict:
    match = df.filter(*[pl.col(k) == v for k, v in keys.items()])
    assert match.height == 1, keys
    return match.row(0, named=True)


def test_sor_daily_delays_counts_and_rates_by_hand():
    """Moderation delays 0, 10, 20, 40, 100 (f's -30 left out): p50 20, p90 at 3.6 of 4 gaps =
    40 + 0.6 * 60 = 76. Disclosure delays 0, 5, 20, 40, 60 (e's -10 left out): p50 20, p90 at 3.6
    = 40 + 0.6 * 20 = 52. One negative delay of each kind; the zero delays are not negative.
    Automated detection 4 of 6, fully automated 4 of 6."""
    got = _row(sor_daily(_frame(DAY)).collect().to_native(), platform_name="ALL", category="ALL")
    assert got["statements"] == 6
    assert (got["automated_detection"], got["automated_fully"], got["automated_partially"], got["automated_not"]) == (4, 4, 1, 1)
    assert got["automated_detection_rate"] == pytest.approx(4 / 6) and got["fully_automated_rate"] == pytest.approx(4 / 6)
    assert (got["negative_moderation_delay"], got["negative_disclosure_delay"]) == (1, 1)
    assert got["moderation_delay_p50_s"] == 20.0
    assert got["moderation_delay_p90_s"] == pytest.approx(76.0)
    assert got["disclosure_delay_p50_s"] == 20.0
    assert got["disclosure_delay_p90_s"] == pytest.approx(52.0)


def test_dsa_transparency_delays_counts_and_share_by_hand():
    """Time to action is the moderation delay: 0, 10, 20, 40, 100 (-30 left out and counted):
    median 20, p90 76; a zero delay is not negative. Every rollup of one (category, source_type)
    holds the same figures."""
    out = dsa_transparency(_frame(DAY)).collect().to_native()
    want = {
        "actions": 6, "fully_automated": 4, "fully_automated_share": pytest.approx(4 / 6),
        "median_time_to_action_s": 20.0, "p90_time_to_action_s": pytest.approx(76.0), "negative_delays": 1,
    }  # fmt: skip
    assert out.height == 4
    for category, source in (("C", "SOURCE_VOLUNTARY"), ("C", "ALL"), ("ALL", "SOURCE_VOLUNTARY"), ("ALL", "ALL")):
        row = _row(out, category=category, source_type=source)
        assert {k: v for k, v in row.items() if k not in ("category", "source_type")} == want, (category, source)


def test_sor_dedup_keeps_the_earliest_created_copy_of_a_uuid():
    """Copies of a uuid that differ count once, the copy created first (sor_dedup orders by
    created_at first): here platform P's, created 1 s before TikTok's."""
    first = {"uuid": "a", "platform_name": "P", "application_date_us": 10 * S, "created_at_us": 40 * S}
    later = {"uuid": "a", "platform_name": "TikTok", "application_date_us": 10 * S, "created_at_us": 41 * S}
    for rows in ([first, later], [later, first]):
        daily = sor_daily(_frame(rows)).collect().to_native()
        platforms = daily.filter(pl.col("category") == "ALL")
        assert dict(zip(platforms["platform_name"], platforms["statements"], strict=True)) == {"ALL": 1, "P": 1}
        assert _row(daily, platform_name="ALL", category="ALL")["disclosure_delay_p50_s"] == 30.0


def test_sor_daily_has_every_combination_and_rollup_row_even_of_one_statement():
    """Rows for every (platform, category) with a statement and for each rollup: P has C1 twice and
    C2 once, Q has C1 once."""
    rows = [{"uuid": "a", "category": "C1"}, {"uuid": "b", "category": "C1"}, {"uuid": "c", "category": "C2"},
            {"uuid": "d", "platform_name": "Q", "category": "C1"}]  # fmt: skip
    daily = sor_daily(_frame(rows)).collect().to_native()
    assert {(r["platform_name"], r["category"]): r["statements"] for r in daily.iter_rows(named=True)} == {
        ("P", "C1"): 2, ("P", "C2"): 1, ("Q", "C1"): 1,
        ("P", "ALL"): 3, ("Q", "ALL"): 1, ("ALL", "C1"): 3, ("ALL", "C2"): 1, ("ALL", "ALL"): 4,
    }
