"""The TOML config: defaults, overrides that change results, and clear errors."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

import jobs.config
from expectations.thresholds import DQThresholds
from jobs import nightly
from jobs.config import RULES, Config, load_config
from jobs.errors import UsageError
from transforms.params import DEFAULT_SLA_S, OffenderParams, Params, TrendParams
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


EXAMPLE = Path(__file__).resolve().parents[1] / "riskinsight.example.toml"


def test_example_file_is_valid_and_equal_to_the_defaults():
    c = load_config(EXAMPLE)
    assert c.params(DS) == Config().params(DS)
    assert c.dq_thresholds() == Config().dq_thresholds()
    assert c.pseudonym_key is None


def _expected_keys() -> dict[str, set[str]]:
    """Every key of every section, from the dataclasses the sections are loaded into."""
    nested = {"ds", "sla_s", "trends", "offenders"}  # Params fields that are not [job] keys
    return {
        "sla_s": set(DEFAULT_SLA_S),
        "job": {f.name for f in dataclasses.fields(Params)} - nested,
        "trends": {f.name for f in dataclasses.fields(TrendParams)},
        "offenders": {f.name for f in dataclasses.fields(OffenderParams)},
        "dq": {f.name for f in dataclasses.fields(DQThresholds)},
        "report": {f.name for f in dataclasses.fields(Config)} - {"job", "dq", "source", "sha256", "notes"},
    }


def _documented_lines(text: str) -> dict[tuple[str, str], str]:
    """(section, key) -> its line, for `key = ...` lines (commented out or not) under `[section]` lines."""
    lines, section = {}, ""
    for line in text.splitlines():
        if m := re.match(r"\s*\[(\w+)\]", line):
            section = m.group(1)
            lines[(section, "*")] = line
        elif m := re.match(r"\s*#?\s*(\w+)\s*=", line):
            lines[(section, m.group(1))] = line
    return lines


def test_every_key_has_a_rule_in_the_example_file_and_in_the_docstring():
    expected = _expected_keys()
    assert set(expected) == jobs.config.SECTIONS
    rules = {(k.split(".")[0], k.split(".")[1]) for k in RULES}
    assert rules == {("sla_s", "*")} | {(s, k) for s, keys in expected.items() if s != "sla_s" for k in keys}

    example = _documented_lines(EXAMPLE.read_text(encoding="utf-8"))
    docstring = _documented_lines(jobs.config.__doc__)
    for section, keys in expected.items():
        for key in keys:
            assert (section, key) in docstring, f"{section}.{key} missing from jobs/config.py's docstring"
            assert (section, key) in example, f"{section}.{key} missing from riskinsight.example.toml"
            rule = RULES.get(f"{section}.{key}", RULES.get(f"{section}.*"))
            line = example[(section, key) if f"{section}.{key}" in RULES else (section, "*")]
            assert rule.allowed() in line, f"{section}.{key}: the example's comment does not say {rule.allowed()!r}"
    # The example sets every key that has a default (pseudonym_key has none: it is commented out).
    raw = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert {s: set(v) for s, v in raw.items()} == {**expected, "report": set()}


def test_volume_window_is_bounded_by_the_volumes_the_gate_is_given():
    assert RULES["dq.volume_trailing_days"].high == nightly.TRAILING_DAYS


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
        # null queues are grouped as UNKNOWN and take default_sla_s (DESIGN §3), not an SLA of that name
        ("[sla_s]\nUNKNOWN = 5\n", "set their SLA with \\[job\\] default_sla_s"),
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


# ------------------------------------------------------------------ types and ranges
def _refused(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as exc:
        load_config(path)
    message = str(exc.value)
    assert "\n" not in message and message.startswith("config: "), message
    return message


# (section, key, TOML value, fragments of the one-line message)
REFUSED = [
    # integers take TOML integers only: never truncated
    ("offenders", "min_violations", "2.7", ["offenders.min_violations must be an integer, got 2.7"]),
    ("trends", "window_days", "7.9", ["trends.window_days must be an integer, got 7.9"]),
    ("trends", "window_days", "7.0", ["trends.window_days must be an integer, got 7.0"]),
    ("dq", "volume_trailing_days", "3.5", ["dq.volume_trailing_days must be an integer"]),
    ("trends", "min_baseline_days", "'14'", ["trends.min_baseline_days must be an integer, got '14'"]),
    ("offenders", "window_days", "true", ["offenders.window_days must be an integer, got True"]),
    ("trends", "zscore_threshold", "false", ["trends.zscore_threshold must be a number, got False"]),
    ("job", "taxonomy", "['spam', 3]", ["job.taxonomy must be a list of strings"]),
    ("report", "pseudonym_key", "7", ["report.pseudonym_key must be a string"]),
    # day counts
    ("offenders", "window_days", "0", ["offenders.window_days = 0", "an integer from 1 to 3660"]),
    ("offenders", "window_days", "3661", ["offenders.window_days = 3661", "an integer from 1 to 3660"]),
    ("trends", "window_days", "-3", ["trends.window_days = -3", "an integer from 1 to 3660"]),
    ("trends", "window_days", "1000000000", ["trends.window_days = 1000000000", "from 1 to 3660"]),
    ("trends", "min_baseline_days", "1", ["trends.min_baseline_days = 1", "an integer from 2 to 3660"]),
    ("dq", "volume_trailing_days", "0", ["dq.volume_trailing_days = 0", "an integer from 1 to 7"]),
    ("dq", "volume_trailing_days", "8", ["dq.volume_trailing_days = 8", "an integer from 1 to 7"]),
    # minimum counts
    ("offenders", "min_violations", "0", ["offenders.min_violations = 0", "an integer from 1 to"]),
    ("offenders", "min_violations", "-1", ["offenders.min_violations = -1", "an integer from 1 to"]),
    ("offenders", "min_violations", str(2**63), ["offenders.min_violations = 922337", "to 9223372036854775807"]),
    ("trends", "min_volume", "-0.5", ["trends.min_volume = -0.5", "a finite number >= 0"]),
    # SLA seconds
    ("sla_s", "live_realtime", "-5", ["sla_s.live_realtime = -5", "a finite number > 0"]),
    ("sla_s", "live_realtime", "0", ["sla_s.live_realtime = 0", "a finite number > 0"]),
    ("sla_s", "new_queue", "inf", ["sla_s.new_queue = inf", "a finite number > 0"]),
    ("sla_s", "comments", "nan", ["sla_s.comments = nan", "a finite number > 0"]),
    ("job", "default_sla_s", "0.0", ["job.default_sla_s = 0.0", "a finite number > 0"]),
    ("job", "default_sla_s", "1" + "0" * 400, ["job.default_sla_s = 1000", "...", "a finite number > 0"]),
    # thresholds
    ("trends", "zscore_threshold", "nan", ["trends.zscore_threshold = nan", "a finite number > 0"]),
    ("trends", "zscore_threshold", "0", ["trends.zscore_threshold = 0", "a finite number > 0"]),
    ("trends", "zscore_threshold", "-inf", ["trends.zscore_threshold = -inf", "a finite number > 0"]),
    ("trends", "min_volume", "inf", ["trends.min_volume = inf", "a finite number >= 0"]),
    ("dq", "volume_low", "-0.1", ["dq.volume_low = -0.1", "a finite number >= 0"]),
    ("dq", "volume_high", "0", ["dq.volume_high = 0", "a finite number > 0"]),
    ("dq", "volume_high", "inf", ["dq.volume_high = inf", "a finite number > 0"]),
    ("dq", "occupancy_max", "0", ["dq.occupancy_max = 0", "a finite number > 0"]),
    ("dq", "occupancy_max", "nan", ["dq.occupancy_max = nan", "a finite number > 0"]),
    # rates
    *[("dq", key, value, [f"dq.{key} = {value}", "a finite number from 0 to 1"])
      for key in ("quarantine_rate_critical", "quarantine_rate_warning", "unknown_rate_warning",
                  "action_mismatch_rate_warning", "duplicates_rate_warning")
      for value in ("-0.01", "1.5", "nan")],
    # lists and strings
    ("job", "taxonomy", "[]", ["job.taxonomy = []", "a non-empty list of non-empty strings"]),
    ("job", "taxonomy", "['spam', '']", ["job.taxonomy = ['spam', '']", "non-empty strings"]),
    ("job", "proactive_sources", "['']", ["job.proactive_sources = ['']", "a list of non-empty strings"]),
    ("report", "pseudonym_key", "''", ["report.pseudonym_key = ''", "a non-empty string"]),
]


@pytest.mark.parametrize(("section", "key", "value", "fragments"), REFUSED, ids=[f"{s}.{k}={v[:12]}" for s, k, v, _ in REFUSED])
def test_wrong_type_or_out_of_range_is_a_one_line_usage_error(tmp_path, section, key, value, fragments):
    message = _refused(tmp_path, f"[{section}]\n{key} = {value}\n")
    for fragment in fragments:
        assert fragment in message, message


def test_every_rule_is_exercised_by_a_refusal():
    covered = {f"{s}.{k}" for s, k, _, _ in REFUSED}
    assert {k for k in RULES if not k.endswith(".*")} <= covered
    assert any(s == "sla_s" for s, _, _, _ in REFUSED)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[trends]\nmin_baseline_days = 29\n", "trends.min_baseline_days = 29 is out of range (allowed: at most trends.window_days = 28)"),
        ("[trends]\nwindow_days = 10\n", "trends.min_baseline_days = 14 is out of range (allowed: at most trends.window_days = 10)"),
        ("[dq]\nvolume_low = 2.5\n", "dq.volume_low = 2.5 is out of range (allowed: at most dq.volume_high = 2.0)"),
        ("[dq]\nvolume_high = 0.4\n", "dq.volume_low = 0.5 is out of range (allowed: at most dq.volume_high = 0.4)"),
        # A warning threshold above its critical one: the day would fail before it ever warned.
        ("[dq]\nquarantine_rate_warning = 0.02\n",
         "dq.quarantine_rate_warning = 0.02 is out of range (allowed: at most dq.quarantine_rate_critical = 0.01)"),
        ("[dq]\nquarantine_rate_critical = 0.0005\n",
         "dq.quarantine_rate_warning = 0.001 is out of range (allowed: at most dq.quarantine_rate_critical = 0.0005)"),
    ],
)
def test_keys_that_bound_each_other(tmp_path, text, fragment):
    assert fragment in _refused(tmp_path, text)


def test_bounding_keys_may_be_equal(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[dq]\nquarantine_rate_warning = 0.05\nquarantine_rate_critical = 0.05\nvolume_low = 1\nvolume_high = 1\n")
    thresholds = load_config(path).dq_thresholds()
    assert thresholds.quarantine_rate_warning == thresholds.quarantine_rate_critical == 0.05


def test_every_warning_threshold_is_bounded_by_its_critical_one():
    """A `<x>_warning` key with a `<x>_critical` sibling must not exceed it (jobs.config.ORDERED)."""
    keys = {f"dq.{f.name}" for f in dataclasses.fields(DQThresholds)}
    pairs = {(k, k.removesuffix("_warning") + "_critical") for k in keys if k.endswith("_warning")}
    pairs = {p for p in pairs if p[1] in keys}
    assert pairs == {("dq.quarantine_rate_warning", "dq.quarantine_rate_critical")}
    assert pairs <= set(jobs.config.ORDERED)


def test_boundary_values_are_accepted(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        "[sla_s]\nlive_realtime = 0.001\nnew_queue = 1\n"
        "[job]\ndefault_sla_s = 1e300\nproactive_sources = []\ntaxonomy = ['spam']\n"
        "[trends]\nmin_baseline_days = 2\nwindow_days = 2\nzscore_threshold = 0.001\nmin_volume = 0\n"
        "[offenders]\nmin_violations = 1\nwindow_days = 3660\n"
        "[dq]\nquarantine_rate_critical = 1\nquarantine_rate_warning = 0\nvolume_low = 0\nvolume_high = 0.001\n"
        "volume_trailing_days = 7\nunknown_rate_warning = 1.0\naction_mismatch_rate_warning = 0\n"
        "duplicates_rate_warning = 1\noccupancy_max = 1e-9\n"
        "[report]\npseudonym_key = 'k'\n"
    )
    c = load_config(path)
    p = c.params(DS)
    assert p.sla_s["live_realtime"] == 0.001 and p.sla_s["new_queue"] == 1.0 and p.default_sla_s == 1e300
    assert (p.proactive_sources, p.taxonomy) == ((), ("spam",))
    assert p.trends == TrendParams(min_baseline_days=2, zscore_threshold=0.001, min_volume=0.0, window_days=2)
    assert p.offenders == OffenderParams(min_violations=1, window_days=3660)
    assert type(p.offenders.min_violations) is int and type(p.trends.min_volume) is float
    assert c.dq_thresholds() == DQThresholds(
        quarantine_rate_critical=1.0, quarantine_rate_warning=0.0, volume_low=0.0, volume_high=0.001,
        volume_trailing_days=7, unknown_rate_warning=1.0, action_mismatch_rate_warning=0.0,
        duplicates_rate_warning=1.0, occupancy_max=1e-9,
    )
    assert c.pseudonym_key == "k"


def test_integer_valued_number_keys_take_integers(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[trends]\nzscore_threshold = 2\n[offenders]\nmin_violations = 2\nwindow_days = 1\n")
    p = load_config(path).params(DS)
    assert (p.trends.zscore_threshold, p.offenders.min_violations, p.offenders.window_days) == (2.0, 2, 1)


# ------------------------------------------------------------------ a file that cannot be read
def test_a_directory_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match=r"^config: cannot read .*: Is a directory$"):
        load_config(tmp_path)


def test_a_path_through_a_file_is_a_usage_error(tmp_path):
    (tmp_path / "c.toml").write_text("")
    with pytest.raises(UsageError, match=r"^config: cannot read .*c\.toml/x\.toml: Not a directory$"):
        load_config(tmp_path / "c.toml" / "x.toml")


def test_a_read_error_is_a_usage_error(tmp_path, monkeypatch):
    """No read permission, as the OS reports it (injected: CI runs as root, which reads any file)."""
    path = tmp_path / "c.toml"
    path.write_text("[trends]\nmin_volume = 3\n")

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(UsageError, match=r"^config: cannot read .*c\.toml: Permission denied$"):
        load_config(path)


@pytest.mark.parametrize("key", ['""', '" live_realtime"', '"live_realtime "', '"\\tcomments"'])
def test_an_empty_or_space_padded_queue_name_is_a_usage_error(tmp_path, key):
    path = tmp_path / "c.toml"
    path.write_text(f"[sla_s]\n{key} = 60\n")
    with pytest.raises(UsageError, match=r"^config: \[sla_s\] '.*' is not a queue name \(empty, or spaces around it\) \(in .*c\.toml\)$"):
        load_config(path)


def test_a_queue_that_is_not_a_default_one_gets_a_note_not_an_error(tmp_path, capsys):
    """A new queue is legitimate; a misspelt one (live_realtme) left live_realtime at its default
    without a word, so it is named on stderr."""
    from jobs.cli import main

    path = tmp_path / "c.toml"
    path.write_text("[sla_s]\nlive_realtme = 60\ncomments = 100\nnew_queue = 5\n")
    config = load_config(path)
    assert config.params(DS).sla_s["live_realtme"] == 60.0
    assert config.notes == (
        "config: [sla_s] live_realtme, new_queue: not among the default queues "
        f"({', '.join(DEFAULT_SLA_S)}); check the spelling, a misspelt queue keeps its default",
    )
    path.write_text("[sla_s]\nlive_realtime = 60\n")
    assert load_config(path).notes == () and load_config(None).notes == ()
    path.write_text("[sla_s]\nlive_realtme = 60\n")
    capsys.readouterr()
    assert main(["run", "--input", str(tmp_path / "absent"), "--output", str(tmp_path / "out"), "--ds", str(DS), "--config", str(path)]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("riskinsight: note: config: [sla_s] live_realtme: not among the default queues")
    assert len(err) == 2 and err[1].startswith("riskinsight: error: input directory")


def test_a_value_error_names_the_config_file(tmp_path: Path) -> None:
    """Under a scheduler, --config is in a DAG's conf or a Variable, not on the on-call's screen:
    the one line says which file holds the bad value."""
    path = tmp_path / "prod.toml"
    path.write_text("[dq]\nquarantine_rate_critical = 2\n")
    with pytest.raises(UsageError, match=rf"^config: dq\.quarantine_rate_critical = 2 is out of range .* \(in {re.escape(str(path))}\)$"):
        load_config(path)
