"""violation_trends — grain (ds, market, policy_category), rollups included.

Built from the violation_daily partitions of ds-28..ds (the observed days); statistics in trends.py.
"""

from __future__ import annotations

import narwhals.stable.v2 as nw

from transforms.params import Params
from transforms.schemas import OUTPUT_SCHEMAS, select_schema
from transforms.trends import trend_table


def violation_trends(violation_daily_history: nw.LazyFrame, params: Params) -> nw.LazyFrame:
    """`violation_daily_history`: violation_daily rows of the observed days (with a `ds` date column), ds included."""
    out = trend_table(violation_daily_history, params.ds, ["market", "policy_category"], "actioned", params.trends)
    return select_schema(out, OUTPUT_SCHEMAS["violation_trends"])
