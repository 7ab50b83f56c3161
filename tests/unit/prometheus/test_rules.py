"""The fleet's Prometheus alert rules: valid for Prometheus 2.42's promtool, every rule unit-tested
with `promtool test rules` (the *.test.yml beside this file), firing and not firing.

promtool comes from Debian's prometheus package, unpacked under build/tools by `make tools` (a
dependency of `make unit`); without it these tests fail, they do not skip.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
PROMTOOL = REPO / "build" / "tools" / "usr" / "bin" / "promtool"
RULES_DIR = REPO / "roles" / "prometheus" / "files" / "etc" / "prometheus" / "rules"
RULES = RULES_DIR / "adelie-fleet.rules.yml"
TESTS_DIR = Path(__file__).resolve().parent
TEST_FILES = sorted(TESTS_DIR.glob("*.test.yml"))
SEVERITIES = {"critical", "warning", "info"}


def _promtool(*args):
    assert PROMTOOL.is_file(), "%s is missing: run `make tools` (make unit does it)" % PROMTOOL
    return subprocess.run([str(PROMTOOL), *args], capture_output=True, text=True, check=False, cwd=TESTS_DIR)


def _rules():
    return [rule for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"] for rule in group["rules"]]


def _alert_tests():
    """(alertname, exp_alerts) of every alert_rule_test of every test file."""
    found = []
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for case in test.get("alert_rule_test") or []:
                found.append((case["alertname"], case.get("exp_alerts") or []))
    return found


def test_promtool_is_there():
    result = _promtool("--version")
    assert result.returncode == 0 and "version 2." in result.stdout + result.stderr, result


def test_the_rules_pass_promtool_check_rules():
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout, result.stdout


def test_there_are_unit_tests():
    assert len(TEST_FILES) >= 5, TEST_FILES


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda path: path.name)
def test_promtool_test_rules(test_file):
    data = yaml.safe_load(test_file.read_text(encoding="utf-8"))
    assert [(test_file.parent / name).resolve() for name in data["rule_files"]] == [RULES], \
        "%s must test the role's rules file" % test_file.name
    result = _promtool("test", "rules", test_file.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_not_firing():
    tests = _alert_tests()
    tested = {test[0] for test in tests}
    quiet = {name for name, expected in tests if not expected}
    for rule in _rules():
        name = rule["alert"]
        assert name in tested, "%s is in no alert_rule_test of tests/unit/prometheus" % name
        assert name in quiet, "%s has no test where it must not fire" % name


def test_every_severity_of_every_alert_is_seen_firing():
    fired = {(name, alert["exp_labels"]["severity"]) for name, expected in _alert_tests() for alert in expected}
    for rule in _rules():
        assert (rule["alert"], rule["labels"]["severity"]) in fired, \
            "no test sees %s fire with severity %s" % (rule["alert"], rule["labels"]["severity"])


def test_the_rules_the_integration_tests_use_exist():
    names = {rule["alert"] for rule in _rules()}
    for name in ("NodeDown", "ServiceDown", "BackendDown", "ContainerCpuHigh", "ContainerMemoryNearQuota",
                 "ContainerDiskNearQuota", "HighErrorRate", "HighLatency", "HealthSweepStale",
                 "ContainerUnhealthy", "JwtSecretWeak", "PostgresDown", "PostgresTooManyConnections",
                 "RedisDown", "RedisMemoryNearLimit"):
        assert name in names, name


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: "%s-%s" % (rule["alert"], rule["labels"]["severity"]))
def test_every_alert_has_a_severity_and_says_which_node(rule):
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule.get("for"), "%s: no for: (a single bad scrape would page)" % rule["alert"]
    annotations = rule["annotations"]
    assert set(annotations) >= {"summary", "description"}
    if not rule["expr"].startswith("absent("):  # absent() has no series, so no node to name
        for key in ("summary", "description"):
            assert "{{ $labels.node }}" in annotations[key], "%s: the %s does not name the node" % (rule["alert"], key)


def test_the_rules_directory_holds_only_rule_files():
    """The prometheus role copies every file of the directory and validates each as rules."""
    for path in RULES_DIR.iterdir():
        assert path.name.endswith(".rules.yml"), path
