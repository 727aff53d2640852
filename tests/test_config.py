"""The TOML config: defaults, overrides that change results, and clear errors."""

from __future__ import annotations

import pytest

from jobs.config import Config, load_config
from jobs.errors import UsageError
from tests.builders import decision, frame
from tests.conftest import DS, collect, ts
from transforms import staging
from transforms.queue_daily import queue_daily


def test_defaults_match_the_documented_ones():
    c = load_config(None)
    p = c.params(DS)
    assert p.sla_s == {"live_realtime": 300.0, "live_escalation": 900.0, "video_standard": 43200.0, "comments": 86400.0, "account_review": 86400.0}
    assert p.default_sla_s == 86400.0
    assert p.proactive_sources == ("ml_model", "rule_engine", "proactive_sweep")
    assert (p.trends.min_baseline_days, p.trends.zscore_threshold, p.trends.min_volume) == (14, 3.0, 20.0)
    assert (p.offenders.min_violations, p.offenders.window_days) == (3, 30)
    assert c.dq_thresholds().quarantine_rate_critical == 0.01


def test_example_file_is_valid_and_equal_to_the_defaults():
    c = load_config("riskinsight.example.toml")
    assert c.params(DS) == Config().params(DS)
    assert c.dq_thresholds() == Config().dq_thresholds()


def test_overrides_change_the_computation(tmp_path, engine):
    path = tmp_path / "c.toml"
    path.write_text('[sla_s]\nvideo_standard = 60\nnew_queue = 10\n[job]\ndefault_sla_s = 1\n[trends]\nmin_volume = 5\n[dq]\nquarantine_rate_critical = 0.5\n')
    c = load_config(path)
    p = c.params(DS)
    assert (p.sla_s["video_standard"], p.sla_s["new_queue"], p.sla_s["live_realtime"]) == (60.0, 10.0, 300.0)
    assert p.trends.min_volume == 5.0 and c.dq_thresholds().quarantine_rate_critical == 0.5
    rows = [decision(enqueued_at=ts(2), decided_at=ts(2, 5))]  # 300 s wait on video_standard
    staged = staging.staged(staging.classify(engine.input_frame("decisions", frame("decisions", rows)), "decisions", p), "decisions")
    out = collect(engine, queue_daily(staged, p))
    assert out.select("sla_s", "sla_met").rows() == [(60.0, 0)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[trend]\nmin_volume = 3\n", "unknown section"),
        ("[trends]\nmin_volume = 'many'\n", "must be a number"),
        ("[job]\nproactive_sources = 'ml_model'\n", "list of strings"),
        ("[dq]\nquarantine_rate = 0.1\n", "unknown key"),
        ("[sla_s]\nlive_realtime = true\n", "must be a number"),
        ("sla_s = 3\n", "must be a table"),
    ],
)
def test_bad_config_is_a_usage_error(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        load_config(tmp_path / "absent.toml")
