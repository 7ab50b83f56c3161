"""Offline validation of the grafana, loki, alloy and cadvisor roles. None of the four programs can be
had on the machines this project is built on, so nothing here runs them: the roles' templates are
rendered with Ansible's own templating (a playbook on local hosts carrying a fake fleet_node) and the
results are parsed and cross-checked (ports and paths agree between Alloy, Loki and Grafana); the
dashboards' queries are checked against the metric names the fleet really exports; Grafana's preflight
is run and must refuse weak admin passwords. A real install is only done by real users.
"""

from __future__ import annotations

import configparser
import json
import re
import subprocess
import sys

import pytest
import yaml
from dashboards import dashboard_datasource_uids, dashboard_paths, load, all_panels, panel_queries
from playbook_run import REPO, run_playbook

HERE = "tests/unit/observability"
INFRA = {"name": "infra-server", "role": "infra", "ipv4": "10.10.10.10", "cpu": 2, "memory_bytes": 3 << 30,
         "disk_bytes": 8 << 30, "gateway": "10.10.10.1", "docker": True}
DEPLOY = {"name": "deploy-test", "role": "deploy", "ipv4": "10.10.10.20", "cpu": 2, "memory_bytes": 2 << 30,
          "disk_bytes": 6 << 30, "gateway": "10.10.10.1", "docker": True}
GOOD_PASSWORD = "Vq3-horse-staple-91xk"
SECRET_KEY = "a3f1" * 16

TEMPLATES = {
    "grafana": ["etc/grafana/grafana.ini.j2", "etc/grafana/provisioning/datasources/adelie-fleet.yml.j2",
                "etc/grafana/provisioning/dashboards/adelie-fleet.yml.j2", "etc/apt/sources.list.d/grafana.sources.j2"],
    "loki": ["etc/loki/config.yml.j2", "etc/systemd/system/loki.service.j2"],
    "alloy": ["etc/alloy/config.alloy.j2", "etc/systemd/system/alloy.service.j2"],
    "cadvisor": ["etc/systemd/system/cadvisor.service.j2"],
}


def _inventory(tmp_path):
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {"all": {"children": {
        "infra": {"hosts": {"infra-server": {**local, "fleet_node": INFRA}}},
        "deploy": {"hosts": {"deploy-test": {**local, "fleet_node": DEPLOY}}},
    }}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Every template of the four roles rendered on both hosts, with the roles' defaults."""
    tmp_path = tmp_path_factory.mktemp("render")
    out = tmp_path / "out"
    pairs = [[role, template] for role, templates in TEMPLATES.items() for template in templates]
    for host in ("infra-server", "deploy-test"):
        for _role, template in pairs:
            (out / host / template).parent.mkdir(parents=True, exist_ok=True)
    extra = {"render_out": str(out), "render_templates": pairs,
             "vault_grafana_admin_password": GOOD_PASSWORD, "vault_grafana_secret_key": SECRET_KEY}
    result = run_playbook(f"{HERE}/render.yml", "-e", json.dumps(extra), inventory=_inventory(tmp_path))
    assert result.rc == 0, str(result)
    return out


def _defaults(role):
    return yaml.safe_load((REPO / "roles" / role / "defaults" / "main.yml").read_text())


def _ini(path):
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.read_string(path.read_text())
    return parser


def _unquote(value):
    return value[3:-3] if value.startswith('"""') and value.endswith('"""') else value


def _exec_start(unit_text):
    """ExecStart's words, its backslash continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", unit_text)
    line = next(line for line in joined.splitlines() if line.startswith("ExecStart="))
    return line[len("ExecStart="):].split()


# --- Grafana -------------------------------------------------------------------------------------

def test_grafana_ini_requires_login_and_takes_the_vault_password(rendered):
    ini = _ini(rendered / "infra-server" / "etc/grafana/grafana.ini")
    assert ini["users"]["allow_sign_up"] == "false"
    assert ini["users"]["allow_org_create"] == "false"
    assert ini["auth.anonymous"]["enabled"] == "false"
    assert ini["auth"]["disable_login_form"] == "false"
    assert ini["security"]["admin_user"] == "admin"
    assert _unquote(ini["security"]["admin_password"]) == GOOD_PASSWORD
    assert _unquote(ini["security"]["secret_key"]) == SECRET_KEY
    assert ini["server"]["http_addr"] == INFRA["ipv4"]
    assert ini["server"]["http_port"] == "3000"
    assert ini["analytics"]["reporting_enabled"] == "false"


def test_grafana_datasources_point_at_prometheus_and_loki(rendered):
    data = yaml.safe_load((rendered / "infra-server" / "etc/grafana/provisioning/datasources/adelie-fleet.yml").read_text())
    assert data["apiVersion"] == 1
    sources = {source["uid"]: source for source in data["datasources"]}
    assert set(sources) == {"prometheus", "loki"}
    assert sources["prometheus"]["type"] == "prometheus" and sources["loki"]["type"] == "loki"
    assert sources["prometheus"]["url"] == "http://10.10.10.10:9090"
    assert [s["name"] for s in data["datasources"] if s.get("isDefault")] == ["Prometheus"]
    for source in data["datasources"]:
        assert {"name", "type", "access", "url"} <= set(source), source


def test_grafana_dashboard_provider_reads_where_the_role_copies(rendered):
    data = yaml.safe_load((rendered / "infra-server" / "etc/grafana/provisioning/dashboards/adelie-fleet.yml").read_text())
    (provider,) = data["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == _defaults("grafana")["grafana_provisioned_dashboards_dir"]


def test_grafana_apt_source_is_deb822_with_the_key(rendered):
    text = (rendered / "infra-server" / "etc/apt/sources.list.d/grafana.sources").read_text()
    assert "URIs: https://apt.grafana.com" in text and "Signed-By: /etc/apt/keyrings/grafana.asc" in text


# --- Dashboards ----------------------------------------------------------------------------------

# Metric names the fleet exports (the contract of the scrape jobs; see docs/observability.md), and PromQL's words.
KNOWN_METRICS = {
    "up",
    "lxd_cpu_seconds_total", "lxd_memory_MemTotal_bytes", "lxd_memory_MemAvailable_bytes", "lxd_memory_RSS_bytes",
    "lxd_filesystem_size_bytes", "lxd_network_receive_bytes_total", "lxd_network_transmit_bytes_total",
    "lxd_procs_total",
    "adelie_fleet_quota_cpu", "adelie_fleet_quota_memory_bytes", "adelie_fleet_quota_disk_bytes",
    "adelie_fleet_disk_used_bytes",
    "adelie_fleet_health_findings", "adelie_fleet_health_repairs", "adelie_fleet_health_container_unhealthy",
    "adelie_fleet_health_jwt_secret_weak", "adelie_fleet_health_last_sweep_timestamp_seconds",
    "adelie_fleet_health_node_up",
    "adelie_fleet_release_info", "adelie_fleet_release_last_outcome", "adelie_fleet_release_last_deploy_timestamp_seconds",
    "http_requests_total", "http_request_duration_seconds_bucket", "app_requests_total", "app_jwt_secret_ok",
    "container_cpu_usage_seconds_total", "container_memory_usage_bytes", "container_memory_working_set_bytes",
    "container_network_receive_bytes_total", "container_network_transmit_bytes_total", "container_last_seen",
}
FUNCTIONS = {
    "abs", "absent", "ceil", "clamp_min", "clamp_max", "delta", "deriv", "floor", "histogram_quantile",
    "increase", "irate", "label_replace", "label_join", "rate", "round", "scalar", "sort", "sort_desc",
    "time", "timestamp", "vector", "avg_over_time", "max_over_time", "min_over_time", "sum_over_time",
    "count_over_time", "last_over_time", "changes", "resets", "predict_linear",
}
AGGREGATIONS = {"sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
                "count_values", "group"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
            "offset"}
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\[[^\]]*\]|[A-Za-z_:][A-Za-z0-9_:]*|\d+(?:\.\d+)?(?:e[+-]?\d+)?|==|!=|=~|!~|>=|<=|[-+*/%^(){},<>=]|\s+')
_DURATION = re.compile(r"^\[(\d+(ms|s|m|h|d|w|y))+(:(\d+(ms|s|m|h|d|w|y))*)?\]$")


def promql_problems(expr):
    """What a PromQL parser would reject, or what names no exporter of the fleet gives: balanced
    brackets, known functions, metric names from the contract, valid range durations, matchers."""
    problems, depth, pos, tokens = [], [], 0, []
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if not match:
            return ["cannot read %r at %d" % (expr[pos:pos + 10], pos)]
        pos = match.end()
        if not match.group().isspace():
            tokens.append(match.group())
    pairs = {")": "(", "}": "{"}
    in_braces = in_grouping = False
    for i, token in enumerate(tokens):
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        previous = tokens[i - 1] if i else ""
        if token in "({":
            depth.append(token)
            in_braces = in_braces or token == "{"
        elif token in ")}":
            if not depth or depth.pop() != pairs[token]:
                problems.append("unbalanced %s" % token)
            if token == "}":
                in_braces = False
            if token == ")":
                in_grouping = False
        elif token.startswith("["):
            if not _DURATION.match(token):
                problems.append("bad range %s" % token)
        elif re.match(r"[A-Za-z_:]", token):
            if in_braces:
                if following not in {"=", "!=", "=~", "!~"} and previous not in {"=", "!=", "=~", "!~"}:
                    problems.append("label matcher %s lacks an operator" % token)
                continue
            if in_grouping:
                continue
            if token in KEYWORDS:
                if following == "(" and token in {"by", "without", "on", "ignoring", "group_left", "group_right"}:
                    in_grouping = True
                continue
            if token in AGGREGATIONS and following in {"by", "without"}:
                continue
            if following == "(":
                if token not in FUNCTIONS | AGGREGATIONS:
                    problems.append("unknown function %s" % token)
                continue
            if token not in KNOWN_METRICS:
                problems.append("metric %s is not exported by the fleet" % token)
        elif token.startswith('"') and not in_braces and previous != "(" and previous != ",":
            problems.append("stray string %s" % token)
    if depth:
        problems.append("unclosed %s" % "".join(depth))
    return problems


@pytest.mark.parametrize("bad", [
    'sum(rate(lxd_cpu_seconds_total[5m])', 'rate(lxd_cpu_seconds_total[5x])', 'nosuch_metric_total',
    'summ by (node) (up)', 'up{job "node"}', 'rate(up[$__rate_interval])',
])
def test_the_promql_check_catches_mistakes(bad):
    assert promql_problems(bad), bad


def test_there_are_the_four_dashboards():
    names = {path.name for path in dashboard_paths()}
    assert names == {"fleet-overview.json", "docker-containers.json", "app-overview.json", "fleet-health.json"}


@pytest.mark.parametrize("path", dashboard_paths(), ids=lambda p: p.name)
def test_dashboard_is_valid_json_with_unique_panel_ids(path):
    dashboard = load(path)
    assert dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in all_panels(dashboard)]
    assert len(ids) == len(set(ids)), ids
    for panel in all_panels(dashboard):
        if panel["type"] != "row":
            assert panel.get("targets"), panel["title"]
            assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), panel["title"]


@pytest.mark.parametrize("path", dashboard_paths(), ids=lambda p: p.name)
def test_dashboard_uses_only_provisioned_datasources(path, rendered):
    data = yaml.safe_load((rendered / "infra-server" / "etc/grafana/provisioning/datasources/adelie-fleet.yml").read_text())
    provisioned = {source["uid"] for source in data["datasources"]}
    uids = dashboard_datasource_uids(path)
    assert uids and uids <= provisioned, uids - provisioned


@pytest.mark.parametrize("path", dashboard_paths(), ids=lambda p: p.name)
def test_dashboard_queries_are_promql_on_the_fleets_metrics(path):
    queries = panel_queries(path)
    assert queries
    for title, expr in queries:
        assert "$" not in expr, (title, expr)
        assert promql_problems(expr) == [], (title, expr, promql_problems(expr))


def test_nested_row_panels_are_included():
    titles = {title for title, _expr in panel_queries(next(p for p in dashboard_paths() if p.name == "fleet-overview.json"))}
    assert {"Network received", "Network sent"} <= titles


def test_fleet_overview_compares_with_each_quota():
    exprs = " ".join(expr for _title, expr in panel_queries(next(p for p in dashboard_paths() if p.name == "fleet-overview.json")))
    for quota in ("adelie_fleet_quota_cpu", "adelie_fleet_quota_memory_bytes", "adelie_fleet_quota_disk_bytes"):
        assert "on (project, node)" in exprs and quota in exprs
    # The pool's size is not a container's quota.
    assert "lxd_filesystem_size_bytes" not in exprs


def test_dashboard_queries_pass_promtool(tmp_path):
    # Debian's promtool, unpacked by `make tools` (a dependency of make unit).
    promtool = REPO / "build" / "tools" / "usr" / "bin" / "promtool"
    assert promtool.is_file(), "%s is missing: run `make tools`" % promtool
    rules = [{"record": "adelie:check_%d" % i, "expr": expr}
             for i, (_title, expr) in enumerate(q for path in dashboard_paths() for q in panel_queries(path))]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    proc = subprocess.run([str(promtool), "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- Loki and Alloy: ports and paths agree -------------------------------------------------------

def test_loki_config_keeps_30_days_and_listens_on_the_bridge(rendered):
    config = yaml.safe_load((rendered / "infra-server" / "etc/loki/config.yml").read_text())
    assert config["limits_config"]["retention_period"] == "30d"
    assert config["compactor"]["retention_enabled"] is True
    assert config["compactor"]["delete_request_store"] == "filesystem"
    assert config["server"]["http_listen_address"] == INFRA["ipv4"]
    assert config["server"]["grpc_listen_address"] == INFRA["ipv4"]
    assert config["server"]["http_listen_port"] == 3100 and config["server"]["grpc_listen_port"] == 9095
    assert config["common"]["storage"]["filesystem"]["chunks_directory"].startswith(_defaults("loki")["loki_data_dir"])
    assert config["schema_config"]["configs"][0]["object_store"] == "filesystem"
    unit = (rendered / "infra-server" / "etc/systemd/system/loki.service").read_text()
    assert _exec_start(unit) == ["/usr/local/bin/loki", "-config.file=/etc/loki/config.yml"]


def test_alloy_pushes_to_where_loki_and_grafana_say_loki_is(rendered):
    loki = yaml.safe_load((rendered / "infra-server" / "etc/loki/config.yml").read_text())
    grafana = yaml.safe_load((rendered / "infra-server" / "etc/grafana/provisioning/datasources/adelie-fleet.yml").read_text())
    loki_url = "http://%s:%d" % (loki["server"]["http_listen_address"], loki["server"]["http_listen_port"])
    assert next(s["url"] for s in grafana["datasources"] if s["uid"] == "loki") == loki_url
    for host in ("infra-server", "deploy-test"):
        config = (rendered / host / "etc/alloy/config.alloy").read_text()
        assert 'url = "%s/loki/api/v1/push"' % loki_url in config, host


def test_alloy_labels_every_line_with_node_role_and_container(rendered):
    config = (rendered / "deploy-test" / "etc/alloy/config.alloy").read_text()
    assert 'node = "deploy-test"' in config and 'role = "deploy"' in config
    assert 'target_label  = "container"' in config and '"__meta_docker_container_name"' in config
    for block in ('loki.source.journal "journal"', 'discovery.docker "containers"', 'loki.source.docker "containers"',
                  'loki.write "fleet"'):
        assert block in config
    code = re.sub(r'"(?:[^"\\]|\\.)*"|//[^\n]*', "", config)
    assert code.count("{") == code.count("}") and code.count("[") == code.count("]")
    # Every component referred to is defined.
    for kind, label in re.findall(r"\b((?:loki|discovery)\.[a-z.]+)\.([a-z_]+)\.(?:receiver|rules|targets)\b", code):
        assert '%s "%s"' % (kind, label) in config, (kind, label)


def test_alloy_serves_on_the_bridge_address(rendered):
    words = _exec_start((rendered / "deploy-test" / "etc/systemd/system/alloy.service").read_text())
    assert words[:2] == ["/usr/local/bin/alloy", "run"]
    assert "--server.http.listen-addr=%s:12345" % DEPLOY["ipv4"] in words
    assert words[-1] == "/etc/alloy/config.alloy"


def test_cadvisor_listens_on_its_port_and_the_bridge_address(rendered):
    words = _exec_start((rendered / "deploy-test" / "etc/systemd/system/cadvisor.service").read_text())
    port = _defaults("cadvisor")["cadvisor_port"]
    assert port != 8080
    assert "--port=%d" % port in words and "--listen_ip=%s" % DEPLOY["ipv4"] in words
    assert "--docker_only=true" in words
    assert all(word.startswith("--") for word in words[1:]), words


# --- Preflights refuse before anything is installed ---------------------------------------------

def _preflight(tmp_path, role, **extra):
    extra = {"preflight_role": role, "vault_grafana_secret_key": SECRET_KEY, **extra}
    return run_playbook(f"{HERE}/preflight.yml", "-l", "infra-server", "-e", json.dumps(extra),
                        inventory=_inventory(tmp_path))


@pytest.mark.parametrize("password", ["", "admin", "Admin", "changeme", "prom-operator", "short-pw1"])
def test_grafana_preflight_refuses_a_weak_admin_password(tmp_path, password):
    result = _preflight(tmp_path, "grafana", vault_grafana_admin_password=password)
    assert result.rc != 0
    assert "refusing the Grafana admin password" in result.out, str(result)
    # The message names the rule, never the value (the words of the list of defaults aside).
    if password == "short-pw1":
        assert password not in result.out, str(result)


def test_grafana_preflight_refuses_the_builtin_secret_key(tmp_path):
    result = _preflight(tmp_path, "grafana", vault_grafana_admin_password=GOOD_PASSWORD,
                        vault_grafana_secret_key="SW2YcwTIb9zpOOhoPsMm")
    assert result.rc != 0 and "refusing grafana_secret_key" in result.out, str(result)


def test_grafana_preflight_passes_a_strong_password(tmp_path):
    result = _preflight(tmp_path, "grafana", vault_grafana_admin_password=GOOD_PASSWORD)
    assert result.rc == 0, str(result)
    assert GOOD_PASSWORD not in result.out


def test_grafana_preflight_refuses_opening_sign_up(tmp_path):
    result = _preflight(tmp_path, "grafana", vault_grafana_admin_password=GOOD_PASSWORD,
                        grafana_ini_options={"users": {"allow_sign_up": True}})
    assert result.rc != 0 and "sign-up, anonymous access" in result.out, str(result)


@pytest.mark.parametrize("role", ["loki", "alloy", "cadvisor"])
def test_release_roles_refuse_a_download_without_checksum(tmp_path, role):
    result = _preflight(tmp_path, role)
    assert result.rc != 0 and "%s_checksum" % role in result.out, str(result)
    good = _preflight(tmp_path, role, **{"%s_checksum" % role: "sha256:" + "ab" * 32})
    assert good.rc == 0, str(good)


def test_cadvisor_preflight_refuses_the_apps_port(tmp_path):
    result = _preflight(tmp_path, "cadvisor", cadvisor_checksum="sha256:" + "ab" * 32, cadvisor_port=8080)
    assert result.rc != 0 and "not 8080" in result.out, str(result)
