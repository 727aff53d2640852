"""violation_trends — grain (ds, market, policy_category), rollups included.

Built from the violation_daily partitions of ds-28..ds (the observed days: a day is observed when
its partition exists); statistics in trends.py. Rows: every combination with a violation_daily row on
an observed day of the window. The window and the thresholds are the [trends] config keys
(defaults window_days 28, min_baseline_days 14, zscore_threshold 3, min_volume 20). Columns (types in
transforms.schemas.OUTPUT_SCHEMAS; DESIGN §4):

    market, policy_category  string   the grain, as violation_daily (rollups included)
    actioned            int64    violation_daily.actioned on ds (0 without a row on ds)
    actioned_7d_mean    float64  mean actioned over the observed days of ds-6..ds
    baseline_days       int64    observed days in ds-28..ds-1
    baseline_mean       float64  mean actioned over those days (a day without a row counts 0)
    baseline_std        float64  their sample standard deviation (ddof=1); null under 2 days
    zscore              float64  (actioned - baseline_mean) / baseline_std; null under 14 baseline days
                                 or when baseline_std is 0 or null
    wow_change          float64  actioned / actioned(ds-7) - 1; null when ds-7 is unobserved or its actioned is 0
    is_anomaly          bool     |zscore| >= 3 and max(actioned, baseline_mean) >= 20; false when zscore is null
    direction           string   spike (zscore > 0) or drop (zscore < 0); null when not an anomaly
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
