"""The alertmanager role's configuration, rendered by Ansible itself (the role's defaults, vars and
preflight checks, then its template) for several sets of channels, checked by Alertmanager 0.25's
own amtool: valid, each severity routed to its receiver with the team's timings, warnings inhibited
by the critical alert of the same target.

amtool comes from Debian's prometheus-alertmanager package, unpacked under build/tools by
`make tools` (a dependency of `make unit`); without it these tests fail, they do not skip.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml
from playbook_run import REPO, run_playbook

AMTOOL = REPO / "build" / "tools" / "usr" / "bin" / "amtool"
ROLE = REPO / "roles" / "alertmanager"
TEMPLATE = ROLE / "templates" / "etc" / "prometheus" / "alertmanager.yml.j2"

DISCORD = "https://discord.com/api/webhooks/123456789/discord-token-do-not-print"
SLACK = "https://hooks.slack.com/services/T000/B000/slack-token-do-not-print"
SMTP_PASSWORD = "smtp-password-do-not-print"
EMAIL = {
    "alertmanager_email_to": "infra@adelie.invalid",
    "alertmanager_smtp_smarthost": "smtp.adelie.invalid:587",
    "alertmanager_smtp_from": "alertmanager@adelie.invalid",
    "alertmanager_smtp_auth_username": "alertmanager",
    "alertmanager_smtp_auth_password": SMTP_PASSWORD,
}
SEVERITIES = ("critical", "warning", "info")
TIMINGS = {"critical": ("0s", "5m"), "warning": ("5m", "1h"), "info": ("1h", "24h")}
# Every case is a play of one playbook run (an ansible-playbook start costs seconds): its variables are
# play vars, over the role's defaults; a case the role's checks refuse is rescued, so the next play runs.
CASES = {
    "none": {},
    "discord": {"alertmanager_discord_webhook_url": DISCORD},
    "all": {"alertmanager_discord_webhook_url": DISCORD, "alertmanager_slack_webhook_url": SLACK,
            "alertmanager_slack_channel": "#alerts", **EMAIL},
    "email_no_login": {**EMAIL, "alertmanager_smtp_auth_username": "", "alertmanager_smtp_auth_password": ""},
    "overrides": {"alertmanager_discord_webhook_url": DISCORD, **EMAIL, "alertmanager_receiver_overrides": {
        "info": {"email_to": ""}, "critical": {"email_to": "oncall@adelie.invalid"}}},
    "vault": {"vault_alertmanager_discord_webhook_url": DISCORD, "vault_alertmanager_slack_webhook_url": SLACK,
              **{k: v for k, v in EMAIL.items() if k != "alertmanager_smtp_auth_password"},
              "vault_alertmanager_smtp_auth_password": SMTP_PASSWORD},
    "timings": {"alertmanager_severity_timings": {
        "critical": {"group_wait": "10s", "repeat_interval": "15m"},
        "warning": {"group_wait": "5m", "repeat_interval": "1h"},
        "info": {"group_wait": "1h", "repeat_interval": "24h"}}},
}
REFUSED = {
    "discord_no_scheme": ({"alertmanager_discord_webhook_url": "discord.com/api/webhooks/1/discord-token-do-not-print"},
                          "The critical receiver's Discord or Slack webhook URL"),
    "slack_ftp": ({"alertmanager_slack_webhook_url": "ftp://hooks.slack.com/slack-token-do-not-print"},
                  "The critical receiver's Discord or Slack webhook URL"),
    "override_not_url": ({"alertmanager_receiver_overrides": {"info": {
        "discord_webhook_url": "not a url discord-token-do-not-print"}}}, "The info receiver's Discord or Slack webhook URL"),
    "email_no_server": ({"alertmanager_email_to": "infra@adelie.invalid"}, "alertmanager_smtp_smarthost"),
    "override_severity": ({"alertmanager_receiver_overrides": {"page": {}}},
                          "alertmanager_receiver_overrides: keys are severities"),
    "override_channel": ({"alertmanager_receiver_overrides": {"info": {"webhook": "x"}}},
                         "alertmanager_receiver_overrides: keys are severities"),
    "listen_empty": ({"alertmanager_listen_address": ""}, "alertmanager_listen_address"),
    "no_fleet_address": ({"fleet_node": {}}, "alertmanager_listen_address"),
    "port": ({"alertmanager_port": 70000}, "alertmanager_port"),
    "args_blank": ({"alertmanager_extra_args": ["--log.level debug"]}, "alertmanager_extra_args"),
    "timings_missing": ({"alertmanager_severity_timings": {"critical": {"group_wait": "0s"}}},
                        "alertmanager_severity_timings.critical"),
}


def _play(name, variables, template, dest):
    return {
        "name": "case %s" % name, "hosts": "localhost", "gather_facts": False,
        "vars": {"fleet_node": {"ipv4": "10.10.10.10"}, **variables},
        "tasks": [{"name": "Check and render", "block": [
            {"name": "Load the role's defaults and vars, and run its checks",
             "ansible.builtin.include_role": {"name": "adelie.fleet.alertmanager", "tasks_from": "preflight", "public": True}},
            {"name": "Render the role's template",
             "ansible.builtin.template": {"src": str(template), "dest": str(dest), "mode": "0600"}},
        ], "rescue": [{"name": "Say the case was refused", "ansible.builtin.debug": {"msg": "REFUSED %s" % name}}]}],
    }


def render_cases(directory, cases, template=TEMPLATE):
    """Render the template once per case; returns the run's result, each case's output section and file."""
    paths = {name: directory / ("%s.out" % name) for name in cases}
    playbook = directory / "render.yml"
    playbook.write_text(json.dumps([_play(name, variables, template, paths[name])
                                    for name, variables in cases.items()]), encoding="utf-8")
    result = run_playbook(str(playbook), "-c", "local", "-e", json.dumps({"ansible_python_interpreter": sys.executable}),
                          inventory="localhost,")
    assert result.rc == 0, str(result)
    sections = dict(re.findall(r"^PLAY \[case (\S+)\] \**\n(.*?)(?=^PLAY )", result.out, re.M | re.S))
    assert set(sections) == set(cases), str(result)
    return result, sections, paths


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    """Each valid case's configuration: its path and parsed content, checked by amtool check-config."""
    sections, paths = render_cases(tmp_path_factory.mktemp("alertmanager"), CASES)[1:]
    found = {}
    for name, path in paths.items():
        assert "REFUSED %s" % name not in sections[name], sections[name]
        check = _amtool("check-config", str(path))
        assert check.returncode == 0, "%s: %s" % (name, check.stdout + check.stderr)
        found[name] = (path, yaml.safe_load(path.read_text(encoding="utf-8")))
    return found


def _amtool(*args):
    assert AMTOOL.is_file(), "%s is missing: run `make tools` (make unit does it)" % AMTOOL
    return subprocess.run([str(AMTOOL), *args], capture_output=True, text=True, check=False)


def routed_receivers(path, *labels):
    result = _amtool("config", "routes", "test", "--config.file=%s" % path, *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.split()


def receiver(config, name):
    (found,) = [r for r in config["receivers"] if r["name"] == name]
    return found


def test_amtool_is_there():
    result = _amtool("--version")
    assert result.returncode == 0 and "version 0.25" in result.stdout + result.stderr, result


@pytest.mark.parametrize("severity", SEVERITIES)
def test_each_severity_goes_to_its_receiver_with_the_teams_timings(configs, severity):
    path, config = configs["discord"]
    assert routed_receivers(path, "severity=%s" % severity, "alertname=NodeDown", "node=dev-hj") == [severity]
    (route,) = [r for r in config["route"]["routes"] if r["receiver"] == severity]
    assert route["matchers"] == ['severity="%s"' % severity]
    assert (route["group_wait"], route["repeat_interval"]) == TIMINGS[severity]


def test_an_alert_without_a_known_severity_is_a_warning(configs):
    path, config = configs["none"]
    assert routed_receivers(path, "alertname=Whatever") == ["warning"]
    assert routed_receivers(path, "severity=page") == ["warning"]
    assert (config["route"]["group_wait"], config["route"]["repeat_interval"]) == TIMINGS["warning"]


def test_grouping_and_inhibition(configs):
    config = configs["none"][1]
    assert config["route"]["group_by"] == ["alertname", "node", "instance"]
    assert config["route"]["group_interval"] == "10s"
    assert config["global"] == {"resolve_timeout": "5m"}
    assert {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'],
            "equal": ["alertname", "instance"]} in config["inhibit_rules"]
    assert {"source_matchers": ['alertname="NodeDown"'], "target_matchers": ['alertname=~"ServiceDown|BackendDown"'],
            "equal": ["node"]} in config["inhibit_rules"]


def test_discord_only(configs):
    config = configs["discord"][1]
    for severity in SEVERITIES:
        got = receiver(config, severity)
        assert set(got) == {"name", "discord_configs"}, got
        (discord,) = got["discord_configs"]
        assert discord["webhook_url"] == DISCORD
        assert discord["send_resolved"] is True
        assert "{{ .GroupLabels.alertname }}" in discord["title"] and ".Annotations.description" in discord["message"]
    assert "smtp_smarthost" not in config["global"]


def test_discord_slack_and_email(configs):
    config = configs["all"][1]
    assert config["global"] == {
        "resolve_timeout": "5m", "smtp_smarthost": "smtp.adelie.invalid:587", "smtp_from": "alertmanager@adelie.invalid",
        "smtp_require_tls": True, "smtp_auth_username": "alertmanager", "smtp_auth_password": SMTP_PASSWORD}
    for severity in SEVERITIES:
        got = receiver(config, severity)
        assert set(got) == {"name", "discord_configs", "slack_configs", "email_configs"}, got
        (slack,) = got["slack_configs"]
        assert (slack["api_url"], slack["channel"], slack["send_resolved"]) == (SLACK, "#alerts", True)
        (email,) = got["email_configs"]
        assert (email["to"], email["send_resolved"]) == ("infra@adelie.invalid", True)
    assert receiver(config, "critical")["slack_configs"][0]["color"] == "danger"


def test_the_secrets_come_from_the_vault_by_default(configs):
    config = configs["vault"][1]
    assert config["global"]["smtp_auth_password"] == SMTP_PASSWORD
    for severity in SEVERITIES:
        got = receiver(config, severity)
        assert got["discord_configs"][0]["webhook_url"] == DISCORD
        assert got["slack_configs"][0]["api_url"] == SLACK


def test_the_notification_texts_are_valid_alertmanager_templates(configs, tmp_path):
    slack = receiver(configs["all"][1], "critical")["slack_configs"][0]
    empty = tmp_path / "none.tmpl"
    empty.write_text("", encoding="utf-8")
    for text in (slack["title"], slack["text"]):
        result = _amtool("template", "render", "--template.glob=%s" % empty, "--template.text=%s" % text)
        assert result.returncode == 0, result.stdout + result.stderr


def test_no_channel_at_all_is_still_a_valid_configuration(configs):
    path, config = configs["none"]
    assert [r["name"] for r in config["receivers"]] == list(SEVERITIES)
    assert all(set(r) == {"name"} for r in config["receivers"]), config["receivers"]
    assert routed_receivers(path, "severity=critical") == ["critical"]


def test_email_without_authentication_has_no_login(configs):
    config = configs["email_no_login"][1]
    assert "smtp_auth_username" not in config["global"] and "smtp_auth_password" not in config["global"]
    assert config["global"]["smtp_smarthost"] == "smtp.adelie.invalid:587"


def test_per_severity_overrides(configs):
    config = configs["overrides"][1]
    assert set(receiver(config, "info")) == {"name", "discord_configs"}
    assert receiver(config, "critical")["email_configs"][0]["to"] == "oncall@adelie.invalid"
    assert receiver(config, "warning")["email_configs"][0]["to"] == "infra@adelie.invalid"


def test_the_timings_can_be_changed(configs):
    (critical,) = [r for r in configs["timings"][1]["route"]["routes"] if r["receiver"] == "critical"]
    assert (critical["group_wait"], critical["repeat_interval"]) == ("10s", "15m")


def test_the_checks_refuse_bad_inputs_without_printing_secrets(tmp_path):
    # A good case last: the refused ones before it leave nothing behind for it.
    cases = {**{name: variables for name, (variables, _message) in REFUSED.items()}, "good": {}}
    result, sections, paths = render_cases(tmp_path, cases)
    for name, (_variables, message) in REFUSED.items():
        assert "REFUSED %s" % name in sections[name], "%s was not refused:\n%s" % (name, sections[name])
        assert message in sections[name], "%s: no %r in\n%s" % (name, message, sections[name])
        assert not paths[name].exists(), name
    assert "REFUSED good" not in sections["good"] and paths["good"].exists(), sections["good"]
    assert "do-not-print" not in result.out, str(result)


def test_the_daemon_arguments(tmp_path):
    """/etc/default/prometheus-alertmanager: the fleet address, no gossip port, the storage path."""
    sections, paths = render_cases(tmp_path, {"args": {}}, ROLE / "templates/etc/default/prometheus-alertmanager.j2")[1:]
    assert "REFUSED" not in sections["args"], sections["args"]
    (line,) = [line for line in paths["args"].read_text(encoding="utf-8").splitlines() if line.startswith("ARGS=")]
    assert line == ('ARGS="--config.file=/etc/prometheus/alertmanager.yml --storage.path=/var/lib/prometheus/alertmanager'
                    ' --data.retention=120h --web.listen-address=10.10.10.10:9093'
                    ' --web.external-url=http://10.10.10.10:9093/ --cluster.listen-address="')


def test_the_configuration_task_hides_its_secrets():
    tasks = yaml.safe_load((ROLE / "tasks" / "configure.yml").read_text(encoding="utf-8"))
    (task,) = [t for t in tasks if t.get("ansible.builtin.template", {}).get("dest") == "/etc/prometheus/alertmanager.yml"]
    template = task["ansible.builtin.template"]
    assert template["validate"] == "amtool check-config %s"
    assert (template["owner"], template["group"], template["mode"]) == ("root", "prometheus", "0640")
    assert task["diff"] is False
    assert task["no_log"] == "{{ alertmanager_no_log }}"
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    assert defaults["alertmanager_no_log"] is True
