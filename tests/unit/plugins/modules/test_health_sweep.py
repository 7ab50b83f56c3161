# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""adelie.fleet.health_sweep's main() with set arguments and a fake fleet (no SSH, no LXD)."""
from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.adelie.fleet.plugins.module_utils import health, health_package, health_repairs
from ansible_collections.adelie.fleet.plugins.modules import health_sweep

EXPORTER = {"name": "node-exporter", "unit": "prometheus-node-exporter.service", "port": 9100}
NODES = [
    {"name": "dev-hj", "role": "dev", "ipv4": "10.10.10.34", "app_dir": "/home/hj/app", "compose": "docker-compose",
     "docker": True, "memory_bytes": 1 << 30, "disk_bytes": 5 << 30, "member": {"login": "hj"}, "services": [EXPORTER]},
    {"name": "staging", "role": "staging", "ipv4": "10.10.10.21", "app_dir": "/opt/fleet-app",
     "compose": "docker-compose", "docker": True, "memory_bytes": 2 << 30, "disk_bytes": 6 << 30, "member": None,
     "services": [EXPORTER]},
    {"name": "dev-gone", "role": "dev", "ipv4": "10.10.10.39", "app_dir": "/home/g/app", "compose": "docker-compose",
     "docker": True, "memory_bytes": 1 << 30, "disk_bytes": 5 << 30, "member": {"login": "g"}},
]


def unit(state):
    return {"load": "loaded", "active": state, "sub": "", "restarts": 0, "active_for": 600.0 if state == "active" else None}


def probe(unhealthy=False, exporter="active", weak=False):
    return {
        "systemd": {"state": "running", "failed_units": []},
        "units": {"prometheus-node-exporter.service": unit(exporter), "docker.service": unit("active")},
        "memory": {"total": 1 << 30, "available": 800 << 20},
        "docker": {"answers": True, "images": ["fleet/backend-api:local"], "containers": [
            {"id": "c0ffee", "name": "fleet-app_backend-api_1", "state": "running",
             "health": "unhealthy" if unhealthy else "healthy", "restart_count": 0, "project": "fleet-app",
             "service": "backend-api", "status": "Up"}]},
        "compose": {"images": {"backend-api": {"image": "fleet/backend-api:local", "build": True}}},
        "git": {"present": True, "branch": "main", "ahead": 0, "behind": 0, "modified": 0},
        "jwt": {"present": True, "reason": "default" if weak else "ok"},
    }


class Fleet:
    instances = {}

    def __init__(self, options):
        self.options = options
        Fleet.instances["transport"] = self
        self.state = {"dev-hj": probe(weak=True), "staging": probe(unhealthy=True, exporter="failed")}
        self.commands = []

    def run(self, node, command, stdin=None, timeout=None):
        self.commands.append((node["name"], command))
        if node["name"] not in self.state:
            return 124, "", ""
        if command == health_package.probe_command():
            return 0, json.dumps(self.state[node["name"]]), ""
        if "docker restart c0ffee" in command:
            self.state[node["name"]]["docker"]["containers"][0]["health"] = "healthy"
        if "restart prometheus-node-exporter" in command:
            self.state[node["name"]]["units"]["prometheus-node-exporter.service"] = unit("active")
        return 0, "", ""

    def port_open(self, node, port, timeout=2.0):
        return self.state[node["name"]]["units"]["prometheus-node-exporter.service"]["active"] == "active"


class Lxd:
    def __init__(self, options):
        self.options = options
        self.actions = []
        Fleet.instances["lxd"] = self

    def instances(self):
        return {"dev-hj": "Running", "staging": "Running", "dev-gone": "Running"}

    def disk_usage(self):
        return {"dev-hj": 1 << 30}

    def action(self, name, action):
        self.actions.append((action, name))
        return True, ""

    def status(self, name):
        return "Running"


@pytest.fixture(autouse=True)
def fake_fleet(monkeypatch):
    monkeypatch.setattr(health, "SshTransport", Fleet)
    monkeypatch.setattr(health, "LxdHost", Lxd)


def run_module(capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        health_sweep.main()
    return json.loads(capsys.readouterr().out), exit_info.value.code


def test_check_mode_sweeps_plans_and_writes_nothing(capsys, tmp_path):
    result, code = run_module(capsys, nodes=NODES, repair=list(health_repairs.REPAIR_KINDS), report_dir=str(tmp_path / "r"),
                              textfile_dir=str(tmp_path), _ansible_check_mode=True)
    assert code == 0 and result["changed"] is False
    assert result["files"] == [] and list(tmp_path.iterdir()) == []
    assert [command for _node, command in Fleet.instances["transport"].commands] == [health_package.probe_command()] * 3
    assert {(r["node"], r["kind"], r["status"]) for r in result["repairs"]} == {
        ("staging", "container_unhealthy", "planned"), ("staging", "service_down", "planned"),
        ("dev-hj", "jwt_default", "delegated")}
    # dev-gone does not answer: reported, and the others were swept.
    gone = next(n for n in result["nodes"] if n["node"] == "dev-gone")
    assert [f["kind"] for f in gone["findings"]] == ["unreachable"] and not gone["reachable"]
    assert result["counts"]["unreachable"] == 1 and result["counts"]["nodes"] == 3
    assert result["webhook"]["content"] == result["summary"]


def test_repair_mode_repairs_records_and_writes_reports(capsys, tmp_path):
    result, code = run_module(capsys, nodes=NODES, repair=["container_unhealthy", "service_down", "jwt_default"],
                              report_dir=str(tmp_path / "r"), textfile_dir=str(tmp_path), ssh_key="/k")
    assert code == 0 and result["changed"] is True
    assert {(r["node"], r["kind"], r["status"]) for r in result["repairs"]} == {
        ("staging", "container_unhealthy", "done"), ("staging", "service_down", "done"),
        ("dev-hj", "jwt_default", "delegated")}
    assert result["jwt_rotation_nodes"] == ["dev-hj"]
    states = {n["node"]: n["state"] for n in result["nodes"]}
    assert states == {"dev-hj": "broken", "staging": "repaired", "dev-gone": "broken"}
    assert sorted(f["kind"] for f in result["broken"]) == ["jwt_default", "unreachable"]
    assert sorted(p.split("/")[-1] for p in result["files"]) == ["adelie_fleet_health.prom", "health.json"]
    assert 'adelie_fleet_health_node_up{node="dev-gone",role="dev"} 0' in (tmp_path / "adelie_fleet_health.prom").read_text()


def test_report_only_by_default(capsys):
    result, _code = run_module(capsys, nodes=NODES)
    assert result["repairs"] == [] and result["changed"] is False
    assert all(command == health_package.probe_command() for _node, command in Fleet.instances["transport"].commands)


def test_the_backend_reaches_the_sweep(capsys):
    result, _code = run_module(capsys, nodes=NODES)
    assert result["backend"] == "lxd" and Fleet.instances["lxd"].options["backend"] == "lxd"
    result, _code = run_module(capsys, nodes=NODES, backend="incus")
    assert result["backend"] == "incus" and Fleet.instances["lxd"].options["backend"] == "incus"
    result, code = run_module(capsys, nodes=NODES, backend="docker")
    assert code == 1 and "backend" in result["msg"]


def test_bad_arguments(capsys):
    result, code = run_module(capsys, nodes=[{"name": "x"}], repair=["container_unhealthy"])
    assert code == 1 and "nodes[0] has no ipv4" in result["msg"]
    result, code = run_module(capsys, nodes=NODES, repair=["delete_everything"])
    assert code == 1 and "delete_everything" in result["msg"]


def test_missing_textfile_dir_is_a_warning(capsys, tmp_path):
    result, code = run_module(capsys, nodes=NODES, textfile_dir=str(tmp_path / "absent"))
    assert code == 0 and "textfile_dir" in json.dumps(result.get("warnings", result.get("deprecations", "")))
