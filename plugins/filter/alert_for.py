# Copyright: (c) 2026, Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How long each alert of a Prometheus rule file must hold before it fires, set per alert name."""

from __future__ import annotations

import re

import yaml
from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: alert_for
short_description: Set the C(for) duration of alerts in a Prometheus rule file, by alert name
version_added: 0.2.0
author: Adelie infra team (@adelie)
description:
  - Takes a rule file's text and returns it with the C(for) of every rule of each named alert replaced;
    every other line (comments included) is kept as it is, so an empty O(durations) returns the text unchanged.
  - Fails, naming the key, when an alert is not in the file, or when a duration is not a Prometheus duration
    such as C(30s), C(2m) or C(1h).
options:
  _input:
    description: The rule file's text (YAML, C(groups) of C(rules)).
    type: str
    required: true
  durations:
    description: "Alert name to duration, for example C({NodeDown: 5m})."
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: The collection's rules with NodeDown paging after 5 minutes
  ansible.builtin.copy:
    content: "{{ lookup('ansible.builtin.file', 'etc/prometheus/rules/adelie-fleet.rules.yml') | adelie.fleet.alert_for({'NodeDown': '5m'}) }}"
    dest: /etc/prometheus/rules/adelie-fleet.rules.yml
    mode: "0644"
"""

RETURN = r"""
_value:
  description: The rule file's text with the durations set.
  type: str
"""

DURATION = re.compile(r"^[0-9]+(ms|s|m|h|d|w|y)$")
# A rule's first line ("- alert: Name" or "- record: name"), and a rule's own `for` (at its keys' indent).
RULE_LINE = re.compile(r"^(\s*-\s+)(alert|record):\s*(\S+)\s*$")
FOR_LINE = re.compile(r"^(\s*)for:\s*\S+\s*$")


def alert_for(text, durations, name="prometheus_alert_for"):
    if not isinstance(durations, dict):
        raise AnsibleFilterError("%s must be a mapping of alert name to duration, got %s" % (name, type(durations).__name__))
    if not durations:
        return text
    for alert, duration in durations.items():
        if not isinstance(duration, str) or not DURATION.match(duration):
            raise AnsibleFilterError("%s.%s: %r is not a Prometheus duration (e.g. 30s, 2m, 1h)" % (name, alert, duration))
    try:
        groups = (yaml.safe_load(text) or {}).get("groups") or []
    except yaml.YAMLError as exc:
        raise AnsibleFilterError("alert_for: the rule file is not YAML: %s" % exc) from exc
    known = {rule["alert"] for group in groups for rule in group.get("rules") or [] if "alert" in rule}
    unknown = sorted(set(durations) - known)
    if unknown:
        raise AnsibleFilterError("%s: no alert named %s in the rule file (its alerts: %s)"
                                 % (name, ", ".join(unknown), ", ".join(sorted(known))))
    lines, current, indent = [], None, None
    for line in text.splitlines(keepends=True):
        rule, for_line = RULE_LINE.match(line), FOR_LINE.match(line)
        if rule:
            current = rule.group(3).strip("'\"") if rule.group(2) == "alert" else None
            indent = len(rule.group(1))
        elif for_line and current in durations and len(for_line.group(1)) == indent:
            line = "%sfor: %s\n" % (for_line.group(1), durations[current])
        lines.append(line)
    result = "".join(lines)
    # Every rule of a named alert must now say its duration: one without a `for` line, or with one this
    # line-wise edit did not recognise (a comment after it), is an error rather than a duration ignored.
    for group in yaml.safe_load(result)["groups"]:
        for rule in group.get("rules") or []:
            if rule.get("alert") in durations and str(rule.get("for")) != durations[rule["alert"]]:
                raise AnsibleFilterError("%s.%s: a rule of that alert has no plain `for:` line to set (it says %r)"
                                         % (name, rule["alert"], rule.get("for")))
    return result


class FilterModule:
    def filters(self):
        return {"alert_for": alert_for}
