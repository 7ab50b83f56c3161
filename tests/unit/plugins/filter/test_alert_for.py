"""adelie.fleet.alert_for: the `for` of named alerts set in a rule file's text, everything else kept."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.adelie.fleet.plugins.filter.alert_for import alert_for

RULES = (Path(__file__).resolve().parents[4] / "roles/prometheus/files/etc/prometheus/rules/adelie-fleet.rules.yml").read_text()

SMALL = """groups:
  - name: g
    rules:
      - record: job:up:sum
        expr: sum(up)
      - alert: A
        expr: up == 0
        for: 1m
        labels:
          for: label-named-for
      - alert: B
        expr: up == 2
        for: 5m
"""


def durations(text):
    return {rule["alert"]: rule.get("for") for group in yaml.safe_load(text)["groups"]
            for rule in group["rules"] if "alert" in rule}


def test_no_durations_returns_the_file_unchanged():
    assert alert_for(RULES, {}) == RULES


def test_only_the_named_alerts_change_and_every_other_line_is_kept():
    result = alert_for(RULES, {"NodeDown": "15s", "ContainerMemoryNearQuota": "20s"})
    before, after = durations(RULES), durations(result)
    assert after["NodeDown"] == "15s" and after["ContainerMemoryNearQuota"] == "20s"
    assert {k: v for k, v in after.items() if k not in ("NodeDown", "ContainerMemoryNearQuota")} == \
        {k: v for k, v in before.items() if k not in ("NodeDown", "ContainerMemoryNearQuota")}
    changed = [(a, b) for a, b in zip(RULES.splitlines(), result.splitlines()) if a != b]
    # NodeDown has one rule, ContainerMemoryNearQuota two (warning and critical): three `for` lines.
    assert len(changed) == 3 and all(old.strip().startswith("for:") for old, _new in changed), changed
    assert len(RULES.splitlines()) == len(result.splitlines()) and "# Alert rules" in result


def test_a_label_named_for_and_recording_rules_are_left_alone():
    result = alert_for(SMALL, {"A": "30s"})
    assert durations(result) == {"A": "30s", "B": "5m"}
    assert yaml.safe_load(result)["groups"][0]["rules"][1]["labels"]["for"] == "label-named-for"


@pytest.mark.parametrize("bad, message", [
    ({"Nope": "1m"}, "no alert named Nope"),
    ({"A": "1 minute"}, "prometheus_alert_for.A: '1 minute' is not a Prometheus duration"),
    ({"A": 60}, "prometheus_alert_for.A: 60 is not a Prometheus duration"),
    (["A"], "must be a mapping"),
])
def test_bad_durations_are_refused_by_name(bad, message):
    with pytest.raises(AnsibleFilterError, match=message):
        alert_for(SMALL, bad)


def test_a_rule_whose_for_line_cannot_be_set_is_an_error():
    commented = SMALL.replace("for: 5m", "for: 5m  # why")
    with pytest.raises(AnsibleFilterError, match="B: a rule of that alert has no plain `for:` line"):
        alert_for(commented, {"B": "1m"})
    without = SMALL.replace("        for: 5m\n", "")
    with pytest.raises(AnsibleFilterError, match="B: a rule of that alert has no plain `for:` line"):
        alert_for(without, {"B": "1m"})
