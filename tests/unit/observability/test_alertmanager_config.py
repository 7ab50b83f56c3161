"""The alertmanager role's configuration, rendered by Ansible itself (the role's defaults, vars and
preflight checks, then its template) for several sets of channels, checked by Alertmanager 0.25's
own amtool: valid, each severity routed to its receiver with the team's timings, warnings inhibited
by the critical alert of the same target.

amtool comes from Debian's prometheus-alertmanager package, unpacked under build/tools by
`make tools` (a dependency of `make unit`); without it these tests fail, they do not skip.
"""

from __future__ import annotations

import json
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
PLAY = """\
- name: Render the alertmanager role's configuration
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Load the role's defaults and vars, and run its checks
      ansible.builtin.include_role:
        name: adelie.fleet.alertmanager
        tasks_from: preflight
        public: true
    - name: Render the role's template
      ansible.builtin.template:
        src: "{{ test_template }}"
        dest: "{{ test_dest }}"
        mode: "0600"
"""


def _amtool(*args):
    assert AMTOOL.is_file(), "%s is missing: run `make tools` (make unit does it)" % AMTOOL
    return subprocess.run([str(AMTOOL), *args], capture_output=True, text=True, check=False)


def render(tmp_path, **variables):
    """Render the template with the role's defaults and these variables; returns (result, path)."""
    dest = tmp_path / "alertmanager.yml"
    play = tmp_path / "render.yml"
    play.write_text(PLAY, encoding="utf-8")
    extra = {"ansible_python_interpreter": sys.executable, "test_template": str(TEMPLATE), "test_dest": str(dest),
             "fleet_node": {"ipv4": "10.10.10.10"}, **variables}
    extra_file = tmp_path / "vars.json"
    extra_file.write_text(json.dumps(extra), encoding="utf-8")
    result = run_playbook(str(play), "-c", "local", "-e", "@%s" % extra_file, inventory="localhost,")
    return result, dest


def rendered(tmp_path, **variables):
    result, dest = render(tmp_path, **variables)
    assert result.rc == 0, str(result)
    check = _amtool("check-config", str(dest))
    assert check.returncode == 0, check.stdout + check.stderr
    return dest, yaml.safe_load(dest.read_text(encoding="utf-8"))


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
def test_each_severity_goes_to_its_receiver_with_the_teams_timings(tmp_path, severity):
    path, config = rendered(tmp_path, alertmanager_discord_webhook_url=DISCORD)
    assert routed_receivers(path, "severity=%s" % severity, "alertname=NodeDown", "node=dev-hj") == [severity]
    (route,) = [r for r in config["route"]["routes"] if r["receiver"] == severity]
    assert route["matchers"] == ['severity="%s"' % severity]
    assert (route["group_wait"], route["repeat_interval"]) == TIMINGS[severity]


def test_an_alert_without_a_known_severity_is_a_warning(tmp_path):
    path, config = rendered(tmp_path)
    assert routed_receivers(path, "alertname=Whatever") == ["warning"]
    assert routed_receivers(path, "severity=page") == ["warning"]
    assert (config["route"]["group_wait"], config["route"]["repeat_interval"]) == TIMINGS["warning"]


def test_grouping_and_inhibition(tmp_path):
    config = rendered(tmp_path)[1]
    assert config["route"]["group_by"] == ["alertname", "node", "instance"]
    assert config["route"]["group_interval"] == "10s"
    assert config["global"] == {"resolve_timeout": "5m"}
    assert {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'],
            "equal": ["alertname", "instance"]} in config["inhibit_rules"]
    assert {"source_matchers": ['alertname="NodeDown"'], "target_matchers": ['alertname=~"ServiceDown|BackendDown"'],
            "equal": ["node"]} in config["inhibit_rules"]


def test_discord_only(tmp_path):
    config = rendered(tmp_path, alertmanager_discord_webhook_url=DISCORD)[1]
    for severity in SEVERITIES:
        got = receiver(config, severity)
        assert set(got) == {"name", "discord_configs"}, got
        (discord,) = got["discord_configs"]
        assert discord["webhook_url"] == DISCORD
        assert discord["send_resolved"] is True
        assert "{{ .GroupLabels.alertname }}" in discord["title"] and ".Annotations.description" in discord["message"]
    assert "smtp_smarthost" not in config["global"]


def test_discord_slack_and_email(tmp_path):
    config = rendered(tmp_path, alertmanager_discord_webhook_url=DISCORD, alertmanager_slack_webhook_url=SLACK,
                      alertmanager_slack_channel="#alerts", **EMAIL)[1]
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


def test_the_notification_texts_are_valid_alertmanager_templates(tmp_path):
    config = rendered(tmp_path, alertmanager_discord_webhook_url=DISCORD)[1]
    discord = receiver(config, "critical")["discord_configs"][0]
    empty = tmp_path / "none.tmpl"
    empty.write_text("", encoding="utf-8")
    for text in (discord["title"], discord["message"]):
        result = _amtool("template", "render", "--template.glob=%s" % empty, "--template.text=%s" % text)
        assert result.returncode == 0, result.stdout + result.stderr


def test_no_channel_at_all_is_still_a_valid_configuration(tmp_path):
    path, config = rendered(tmp_path)
    assert [r["name"] for r in config["receivers"]] == list(SEVERITIES)
    assert all(set(r) == {"name"} for r in config["receivers"]), config["receivers"]
    assert routed_receivers(path, "severity=critical") == ["critical"]


def test_email_without_authentication_has_no_login(tmp_path):
    email = {**EMAIL, "alertmanager_smtp_auth_username": "", "alertmanager_smtp_auth_password": ""}
    config = rendered(tmp_path, **email)[1]
    assert "smtp_auth_username" not in config["global"] and "smtp_auth_password" not in config["global"]
    assert config["global"]["smtp_smarthost"] == "smtp.adelie.invalid:587"


def test_per_severity_overrides(tmp_path):
    overrides = {"info": {"email_to": ""}, "critical": {"email_to": "oncall@adelie.invalid"}}
    config = rendered(tmp_path, alertmanager_discord_webhook_url=DISCORD, **EMAIL,
                      alertmanager_receiver_overrides=overrides)[1]
    assert set(receiver(config, "info")) == {"name", "discord_configs"}
    assert receiver(config, "critical")["email_configs"][0]["to"] == "oncall@adelie.invalid"
    assert receiver(config, "warning")["email_configs"][0]["to"] == "infra@adelie.invalid"


def test_the_timings_can_be_changed(tmp_path):
    timings = {"critical": {"group_wait": "10s", "repeat_interval": "15m"},
               "warning": {"group_wait": "5m", "repeat_interval": "1h"},
               "info": {"group_wait": "1h", "repeat_interval": "24h"}}
    config = rendered(tmp_path, alertmanager_severity_timings=timings)[1]
    (critical,) = [r for r in config["route"]["routes"] if r["receiver"] == "critical"]
    assert (critical["group_wait"], critical["repeat_interval"]) == ("10s", "15m")


@pytest.mark.parametrize("variables, message", [
    ({"alertmanager_discord_webhook_url": "discord.com/api/webhooks/1/discord-token-do-not-print"},
     "The critical receiver's Discord or Slack webhook URL"),
    ({"alertmanager_slack_webhook_url": "ftp://hooks.slack.com/slack-token-do-not-print"},
     "The critical receiver's Discord or Slack webhook URL"),
    ({"alertmanager_receiver_overrides": {"info": {"discord_webhook_url": "not a url discord-token-do-not-print"}}},
     "The info receiver's Discord or Slack webhook URL"),
    ({"alertmanager_email_to": "infra@adelie.invalid"}, "alertmanager_smtp_smarthost"),
    ({"alertmanager_receiver_overrides": {"page": {}}}, "alertmanager_receiver_overrides: keys are severities"),
    ({"alertmanager_receiver_overrides": {"info": {"webhook": "x"}}}, "alertmanager_receiver_overrides: keys are severities"),
    ({"alertmanager_listen_address": ""}, "alertmanager_listen_address"),
    ({"fleet_node": {}}, "alertmanager_listen_address"),
    ({"alertmanager_port": 70000}, "alertmanager_port"),
    ({"alertmanager_extra_args": ["--log.level debug"]}, "alertmanager_extra_args"),
    ({"alertmanager_severity_timings": {"critical": {"group_wait": "0s"}}}, "alertmanager_severity_timings.critical"),
])
def test_the_checks_refuse_bad_inputs_without_printing_secrets(tmp_path, variables, message):
    result, dest = render(tmp_path, **variables)
    assert result.rc != 0, str(result)
    assert message in result.out, str(result)
    assert "do-not-print" not in result.out, str(result)
    assert not dest.exists()


def test_the_daemon_arguments(tmp_path):
    """/etc/default/prometheus-alertmanager: the fleet address, no gossip port, the storage path."""
    play = tmp_path / "args.yml"
    play.write_text(PLAY.replace('"{{ test_template }}"', '"%s"' % (ROLE / "templates/etc/default/prometheus-alertmanager.j2")),
                    encoding="utf-8")
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps({"ansible_python_interpreter": sys.executable, "fleet_node": {"ipv4": "10.10.10.10"},
                                 "test_dest": str(tmp_path / "args")}), encoding="utf-8")
    result = run_playbook(str(play), "-c", "local", "-e", "@%s" % extra, inventory="localhost,")
    assert result.rc == 0, str(result)
    (line,) = [line for line in (tmp_path / "args").read_text().splitlines() if line.startswith("ARGS=")]
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
