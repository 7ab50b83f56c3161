# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health sweep: the probe's parsers on real outputs, the shipped script, classification,
repair plans, the sweep with fake transports, and the renderers against the alert rules."""
from __future__ import annotations

import copy
import glob
import http.server
import json
import os
import re
import socketserver
import subprocess
import threading
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible_collections.adelie.fleet.plugins.module_utils import (
    health, health_findings, health_package, health_probe, health_repairs, health_report, health_transport, jwt_status)
from ansible_collections.adelie.fleet.plugins.module_utils.backend import BACKENDS

ROOT = Path(__file__).resolve().parents[4]
FIXTURES = Path(__file__).parent / "fixtures" / "health"
STRONG = "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c2b4d6f8e0a1c3e5b7d9f1a3c5e7b9d1f"


def fixture(name):
    return (FIXTURES / name).read_text(encoding="utf-8")


# ---------------------------------------------------------------------------
# parsers
# ---------------------------------------------------------------------------


def test_failed_units_from_systemctl():
    assert health_probe.parse_failed_units(fixture("systemctl_failed.txt")) == [
        "docker.service", "nginx.service", "systemd-binfmt.service"]
    assert health_probe.parse_failed_units("") == []
    # Without --plain systemd prints a bullet first.
    assert health_probe.parse_failed_units("\u25cf foo.service loaded failed failed Foo\n") == ["foo.service"]


@pytest.mark.parametrize("text, expected", [
    (fixture("git_status_diverged.txt"),
     {"branch": "main", "upstream": "origin/main", "ahead": 2, "behind": 3, "modified": 2, "untracked": 1}),
    ("## main...origin/main\n", {"branch": "main", "upstream": "origin/main", "ahead": 0, "behind": 0, "modified": 0}),
    ("## main...origin/main [behind 4]\n", {"behind": 4, "ahead": 0}),
    ("## feature/login\n?? x\n", {"branch": "feature/login", "upstream": None, "untracked": 1, "modified": 0}),
    ("## HEAD (no branch)\n", {"detached": True, "branch": "HEAD"}),
    ("## No commits yet on main\n", {"branch": "main"}),
    ("## main...origin/main [gone]\nUU a.txt\n", {"branch": "main", "conflicted": 1, "modified": 1}),
])
def test_git_status(text, expected):
    result = health_probe.parse_git_status(text)
    for key, value in expected.items():
        assert result[key] == value, key


def test_meminfo():
    info = health_probe.parse_meminfo(fixture("meminfo.txt"))
    assert info["MemTotal"] == 1048576 * 1024
    assert info["MemAvailable"] == 786432 * 1024
    assert info["HugePages_Total"] == 0


def test_compose_services_of_the_lab_fixture_app():
    text = (ROOT / "roles/lab_fixture_app/files/app/docker-compose.yml").read_text(encoding="utf-8")
    assert health_probe.parse_compose_services(text) == {
        "frontend": {"image": "fleet/frontend:local", "build": True},
        "backend-api": {"image": "fleet/backend-api:local", "build": True},
    }


def test_compose_services_other_shapes():
    text = """\
version: '3'
x-common: &common
  restart: always
services:
    # a comment
    db:
        image: "postgres:15"   # pinned
        environment:
            image: not-this-one
    worker:
        build:
            context: ./worker
    api: {image: 'registry.local/api:${TAG:-dev}', build: ./api}
    sidecar:
        command: sleep infinity
volumes:
    data: {}
"""
    services = health_probe.parse_compose_services(text)
    assert services == {
        "db": {"image": "postgres:15", "build": False},
        "worker": {"image": None, "build": True},
        "api": {"image": "registry.local/api:${TAG:-dev}", "build": True},
        "sidecar": {"image": None, "build": False},
    }
    images = health_probe.compose_images(services, "Fleet-App", "docker-compose", {"TAG": ""})
    assert images == {
        "db": {"image": "postgres:15", "build": False},
        "worker": {"image": "fleet-app_worker:latest", "build": True},
        "api": {"image": "registry.local/api:dev", "build": True},
    }
    assert health_probe.compose_images(services, "fleet-app", "docker compose", {"TAG": "v2"})["worker"]["image"] == \
        "fleet-app-worker:latest"
    assert health_probe.interpolate("a${X-d}b$Y$$", {"X": ""}) == "ab$"


# A stand-in Docker daemon: Docker 20.10's answers from the fixtures, over a unix socket.
class _DockerHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes = {}

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = self.routes.get(self.path)
        status = 200 if body is not None else 404
        data = (body if body is not None else '{"message":"not found"}').encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, _address = super().get_request()
        return request, ("local", 0)


@pytest.fixture()
def docker_socket(tmp_path):
    containers = json.loads(fixture("containers.json"))
    _DockerHandler.routes = {
        "/_ping": "OK",
        "/containers/json?all=1": fixture("containers.json"),
        "/containers/%s/json" % containers[0]["Id"]: fixture("inspect_backend.json"),
        "/containers/%s/json" % containers[1]["Id"]: fixture("inspect_frontend.json"),
        "/images/json": fixture("images.json"),
    }
    path = str(tmp_path / "docker.sock")
    server = _UnixServer(path, _DockerHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path
    server.shutdown()
    server.server_close()


def test_docker_state_through_the_api(docker_socket):
    state = health_probe.docker_state(docker_socket, 5)
    assert state["answers"] is True
    assert "error" not in state
    backend, frontend = state["containers"]
    assert backend == {"id": "3f1c2b9a8d7e", "name": "fleet-app_backend-api_1", "image": "fleet/backend-api:local",
                       "state": "running", "status": "Up 12 minutes (unhealthy)", "health": "unhealthy",
                       "restart_count": 0, "project": "fleet-app", "service": "backend-api"}
    assert frontend["health"] is None and frontend["restart_count"] == 7 and frontend["state"] == "exited"
    assert state["images"] == ["fleet/backend-api:local", "fleet/base:local"]


def test_docker_get_refuses_an_error_answer(docker_socket):
    assert health_probe.docker_get(docker_socket, "/_ping", 5) == b"OK"
    with pytest.raises(OSError, match="/nowhere answered 404"):
        health_probe.docker_get(docker_socket, "/nowhere", 5)


def test_probe_runs_its_source_when_no_cache_can_be_written(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    node = {"name": "n", "app_dir": None, "docker": False}
    proc = subprocess.run(["sh", "-c", health_package.probe_command(str(blocker / "cache"))],
                          input=health_package.probe_input(node, dict(health.DEFAULTS, timeout=10)), capture_output=True,
                          text=True, timeout=30, check=True)
    assert json.loads(proc.stdout)["probe_version"] == health_probe.PROBE_VERSION


def test_docker_state_without_docker(tmp_path):
    state = health_probe.docker_state(str(tmp_path / "none.sock"), 1)
    assert state["answers"] is False and "no Docker socket" in state["error"]


# ---------------------------------------------------------------------------
# the shipped script: one file, module_utils' own code
# ---------------------------------------------------------------------------


def test_probe_script_is_one_self_contained_file():
    body = health_package.probe_body()
    compile(body, "probe", "exec")
    assert "ansible_collections" not in "".join(l for l in body.splitlines() if l.startswith(("import", "from")))
    assert body.count("from __future__ import annotations") == 1
    # The JWT rules are jwt_status's (the code jwt_secret rotates with), not a copy in the probe.
    probe_source = (ROOT / "plugins/module_utils/health_probe.py").read_text(encoding="utf-8")
    assert "changeme" not in probe_source and "def detect(" not in probe_source
    assert "def detect(" in body and "def file_status(" in body


def test_jwt_secret_module_uses_jwt_status():
    source = (ROOT / "plugins/modules/jwt_secret.py").read_text(encoding="utf-8")
    assert "module_utils.jwt_status import" in source
    assert "BUILTIN_WEAK_VALUES = (" not in source and "def detect(" not in source


@pytest.mark.parametrize("secret, reason", [("changeme", "default"), ("", "missing"), ("short", "too_short"),
                                            (STRONG, "ok")])
def test_probe_script_runs_and_judges_like_jwt_status(tmp_path, secret, reason):
    app = tmp_path / "app"
    app.mkdir()
    (app / ".env").write_text("APP_ENV=dev\nJWT_SECRET=%s\nDB_URL=postgres://u:pw@db/app\n" % secret)
    (app / "docker-compose.yml").write_text((ROOT / "roles/lab_fixture_app/files/app/docker-compose.yml").read_text())
    node = {"name": "n", "app_dir": str(app), "compose": "docker-compose", "docker": True}
    options = dict(health.DEFAULTS, timeout=10)
    cache = tmp_path / "cache"
    command = health_package.probe_command(str(cache))

    def run_probe():
        return subprocess.run(["sh", "-c", command], input=health_package.probe_input(node, options), capture_output=True,
                              text=True, timeout=30, check=True)

    proc = run_probe()
    result = json.loads(proc.stdout)
    # The first run keeps the code as a module named by its hash; the next imports its bytecode.
    cached = [path.name for path in cache.iterdir() if path.is_file()]
    assert cached == [command.split()[-2] + ".py"]
    assert len(list((cache / "__pycache__").iterdir())) == 1
    again = run_probe()
    assert {k: v for k, v in json.loads(again.stdout).items() if k not in ("elapsed_ms", "memory", "backups")} \
        == {k: v for k, v in result.items() if k not in ("elapsed_ms", "memory", "backups")}
    assert result["jwt"]["reason"] == reason == jwt_status.file_status(str(app / ".env"))["reason"]
    assert result["compose"]["images"]["frontend"] == {"image": "fleet/frontend:local", "build": True}
    assert result["git"] == {"present": False}
    assert "memory" in result and "systemd" in result and "units" in result
    # No value of the .env leaves the node.
    for value in ("pw@db", "APP_ENV=dev") + ((secret,) if len(secret) > 5 else ()):
        assert value not in proc.stdout


# ---------------------------------------------------------------------------
# classification and repair plans
# ---------------------------------------------------------------------------

SERVICES = [{"name": "sshd", "unit": "ssh.service", "port": 22},
            {"name": "node-exporter", "unit": "prometheus-node-exporter.service", "port": 9100},
            {"name": "docker", "unit": "docker.service", "port": None}]
NODE = {"name": "dev-hj", "role": "dev", "ipv4": "10.10.10.34", "app_dir": "/home/hj/app", "compose": "docker-compose",
        "docker": True, "memory_bytes": 1 << 30, "disk_bytes": 5 << 30, "services": SERVICES}


def unit(active="active", sub="running", load="loaded", active_for=3600.0):
    """A unit as the probe reports it (systemctl show)."""
    return {"load": load, "active": active, "sub": sub, "restarts": 0,
            "active_for": active_for if active == "active" else None}


def healthy_probe():
    return {
        "probe_version": 1,
        "systemd": {"state": "running", "failed_units": []},
        "units": {service["unit"]: unit() for service in SERVICES},
        "ports": {"22": True, "9100": True},
        "memory": {"total": 1 << 30, "available": 700 << 20},
        "docker": {"socket": True, "answers": True, "images": ["fleet/frontend:local", "fleet/backend-api:local"],
                   "containers": [
                       {"id": "aaa111", "name": "fleet-app_frontend_1", "state": "running", "health": None,
                        "restart_count": 0, "project": "fleet-app", "service": "frontend", "status": "Up 1 hour"},
                       {"id": "bbb222", "name": "fleet-app_backend-api_1", "state": "running", "health": "healthy",
                        "restart_count": 0, "project": "fleet-app", "service": "backend-api",
                        "status": "Up 1 hour (healthy)"}]},
        "compose": {"file": "/home/hj/app/docker-compose.yml", "images": {
            "frontend": {"image": "fleet/frontend:local", "build": True},
            "backend-api": {"image": "fleet/backend-api:local", "build": True}}},
        "app": {"dir": "/home/hj/app", "present": True},
        "git": {"present": True, "branch": "main", "upstream": "origin/main", "ahead": 0, "behind": 0, "modified": 0,
                "untracked": 0, "conflicted": 0, "detached": False},
        "jwt": {"present": True, "reason": "ok", "rotated_at": None},
    }


def kinds(findings):
    return sorted((f["kind"], f["target"]) for f in findings)


def test_a_healthy_node_has_no_finding():
    assert health_findings.classify(NODE, healthy_probe(), health.DEFAULTS, disk_used=1 << 30) == []


def test_every_fault_is_classified():
    probe = healthy_probe()
    probe["systemd"] = {"state": "degraded", "failed_units": ["nginx.service", "docker.service"]}
    probe["units"]["prometheus-node-exporter.service"] = unit("failed", "failed")
    probe["memory"]["available"] = 50 << 20
    backend = probe["docker"]["containers"][1]
    backend.update(health="unhealthy", status="Up 5 minutes (unhealthy)")
    probe["docker"]["containers"][0].update(state="restarting", restart_count=9)
    probe["docker"]["images"] = ["fleet/backend-api:local"]
    probe["git"].update(ahead=1, behind=2, modified=3)
    probe["jwt"]["reason"] = "default"
    found = health_findings.classify(NODE, probe, health.DEFAULTS, disk_used=int(4.8 * (1 << 30)))
    assert kinds(found) == [
        ("container_restarting", "fleet-app_frontend_1"), ("container_unhealthy", "fleet-app_backend-api_1"),
        ("disk_high", None), ("git_dirty", None), ("git_diverged", None), ("image_missing", "frontend"),
        ("jwt_default", ".env"), ("memory_high", None), ("service_down", "prometheus-node-exporter.service"),
        ("unit_failed", "nginx.service")]
    unhealthy = next(f for f in found if f["kind"] == "container_unhealthy")
    # backend-api with a weak secret: restarting it is useless, the JWT rotation recreates it.
    assert unhealthy["repair"] is None and "JWT" in unhealthy["message"]
    assert next(f for f in found if f["kind"] == "git_dirty")["severity"] == "info"
    assert all(".env" not in f["message"] or "JWT_SECRET" in f["message"] for f in found)


def test_dockerd_down_hides_container_checks():
    probe = healthy_probe()
    probe["docker"] = {"socket": True, "answers": False, "containers": [], "images": [],
                       "error": "ConnectionRefusedError: [Errno 111] Connection refused"}
    probe["units"]["docker.service"] = unit("failed", "failed")
    # One finding for dockerd (its API is the stronger check), not a second one for its declared unit.
    assert kinds(health_findings.classify(NODE, probe, health.DEFAULTS)) == [("dockerd_down", "docker.service")]


def test_probe_error_and_lxd_states():
    assert kinds(health_findings.classify(NODE, {"probe_error": "KeyError: x"}, health.DEFAULTS)) == [("probe_error", None)]
    assert [f["kind"] for f in health_findings.lxd_findings(NODE, "Stopped", "default")] == ["container_stopped"]
    assert [f["repair"] for f in health_findings.lxd_findings(NODE, "Frozen", "default")] == ["container_stopped"]
    assert [f["kind"] for f in health_findings.lxd_findings(NODE, None, "default")] == ["container_missing"]
    assert [f["kind"] for f in health_findings.lxd_findings(NODE, "Error", "default")] == ["container_state"]
    assert health_findings.lxd_findings(NODE, "Running", "default") == []


def test_repair_plan_only_enabled_kinds_once_in_order():
    found = [health_findings.finding(NODE, "image_missing", "m", "frontend"), health_findings.finding(NODE, "dockerd_down", "m", "docker.service"),
             health_findings.finding(NODE, "git_dirty", "m"), health_findings.finding(NODE, "jwt_default", "m", ".env"),
             health_findings.finding(NODE, "unit_failed", "m", "nginx.service")]
    assert health_repairs.plan_repairs(found, set()) == []
    plan = health_repairs.plan_repairs(found, set(health_repairs.REPAIR_KINDS))
    assert [p["repair"] for p in plan] == ["dockerd_down", "unit_failed", "image_missing", "jwt_default"]
    assert [p["repair"] for p in health_repairs.plan_repairs(found, {"image_missing", "unit_failed"})] == [
        "unit_failed", "image_missing"]
    attempted = {("dev-hj", "dockerd_down", "docker.service")}
    assert "dockerd_down" not in [p["repair"] for p in health_repairs.plan_repairs(found, set(health_repairs.REPAIR_KINDS), attempted)]


def test_repair_commands_are_bounded_and_quoted():
    options = health.DEFAULTS
    image = dict(health_findings.finding(NODE, "image_missing", "m", "frontend"))
    command = health_repairs.repair_command(image, NODE, options)
    assert command == ("cd /home/hj/app && timeout 300 docker-compose -p fleet-app build frontend && "
                       "timeout 300 docker-compose -p fleet-app up -d frontend")
    unit = health_findings.finding(NODE, "unit_failed", "m", "evil;rm -rf /.service")
    assert "'evil;rm -rf /.service'" in health_repairs.repair_command(unit, NODE, options)
    unhealthy = dict(health_findings.finding(NODE, "container_unhealthy", "m", "c"), container_id="abc123")
    assert health_repairs.repair_command(unhealthy, NODE, options) == "timeout 300 docker restart abc123"
    for kind in ("dockerd_down", "unit_failed", "container_unhealthy", "image_missing", "service_down"):
        item = dict(health_findings.finding(NODE, kind, "m", "x"), repair=kind, container_id="abc")
        text = health_repairs.repair_command(item, NODE, options)
        assert "timeout " in text
        assert not re.search(r"\b(rm|prune|down|reset --hard|clean|volume)\b", text), text


# ---------------------------------------------------------------------------
# the sweep with fake transports
# ---------------------------------------------------------------------------


def fleet_nodes():
    names = ["deploy-test", "dev-hj", "dev-jjjh02", "dev-ryejinn", "dev-yj99son", "staging"]
    nodes = []
    for index, name in enumerate(names):
        node = dict(NODE, name=name, ipv4="10.10.10.%d" % (40 + index), role="dev" if name.startswith("dev") else name)
        nodes.append(node)
    return nodes


class FakeFleet:
    """Nodes as probe dicts; repairs change them the way the real command would."""

    def __init__(self, probes, dead=(), broken_units=()):
        self.probes = probes
        self.dead = set(dead)
        # Units whose restart never holds (their executable is gone): activating, then failed.
        self.broken_units = set(broken_units)
        self.commands = []
        self.lock = threading.Lock()

    def run(self, node, command, stdin=None, timeout=None):
        name = node["name"]
        with self.lock:
            self.commands.append((name, command))
        if name in self.dead:
            return 255, "", "ssh: connect to host %s port 22: No route to host\r\n" % node["ipv4"]
        if command == health_package.probe_command():
            args, _nl, body = stdin.partition("\n")
            assert json.loads(args)["app_dir"] == node.get("app_dir") and body == health_package.probe_body()
            return 0, json.dumps({k: v for k, v in self.probes[name].items() if k != "ports"}) + "\n", ""
        probe = self.probes[name]
        if "restart docker.service" in command:
            probe["docker"]["answers"] = True
        elif "docker restart" in command:
            for container in probe["docker"]["containers"]:
                if container["id"] in command:
                    container["health"] = "healthy"
        elif " build " in command:
            service = command.rsplit(" ", 1)[-1]
            probe["docker"]["images"].append(probe["compose"]["images"][service]["image"])
            probe["docker"]["containers"].append({"id": "new%s" % service, "name": "fleet-app_%s_1" % service,
                                                  "state": "running", "health": None, "restart_count": 0,
                                                  "project": "fleet-app", "service": service, "status": "Up 1 second"})
        elif "systemctl restart" in command:
            name = command.rsplit(" ", 1)[-1]
            if name not in self.broken_units:
                probe["units"][name] = unit()
                probe["ports"].update({str(s["port"]): True for s in node["services"] if s["unit"] == name and s["port"]})
                probe["systemd"]["failed_units"] = [u for u in probe["systemd"]["failed_units"] if u != name]
        return 0, "", ""

    def port_open(self, node, port, timeout=2.0):
        return self.probes[node["name"]].get("ports", {}).get(str(port), False)


class FakeLxd:
    def __init__(self, statuses, usage=None):
        self.statuses = dict(statuses)
        self.usage = usage or {}
        self.actions = []

    def instances(self):
        return dict(self.statuses)

    def disk_usage(self):
        return dict(self.usage)

    def action(self, name, action):
        self.actions.append((action, name))
        if (action == "unfreeze") == (self.statuses[name] == "Frozen"):
            self.statuses[name] = "Running"
        return True, ""

    def status(self, name):
        return self.statuses.get(name)


def broken_fleet():
    probes = {node["name"]: healthy_probe() for node in fleet_nodes()}
    probes["dev-hj"]["jwt"]["reason"] = "default"
    probes["dev-hj"]["docker"]["containers"][1].update(health="unhealthy")
    probes["staging"]["docker"]["images"] = ["fleet/backend-api:local"]
    probes["staging"]["docker"]["containers"] = probes["staging"]["docker"]["containers"][1:]
    probes["deploy-test"]["docker"]["containers"][1].update(health="unhealthy")
    probes["deploy-test"]["units"]["prometheus-node-exporter.service"] = unit("inactive", "dead")
    probes["deploy-test"]["ports"]["9100"] = False
    probes["dev-ryejinn"]["systemd"]["failed_units"] = ["nginx.service"]
    return probes


def statuses(**changes):
    result = {node["name"]: "Running" for node in fleet_nodes()}
    result.update(changes)
    return {name: status for name, status in result.items() if status is not None}


def test_sweep_report_only_touches_nothing_and_survives_a_dead_node():
    fake = FakeFleet(broken_fleet(), dead={"dev-ryejinn"})
    lxd = FakeLxd(statuses(**{"dev-yj99son": "Stopped", "dev-jjjh02": None}))
    result = health.Sweep(fleet_nodes(), {"repair": []}, transport=fake, lxd=lxd).run()
    assert all(command == health_package.probe_command() for _node, command in fake.commands)
    # A stopped or missing container is not SSH'd; the dead node is reported, the others swept.
    assert sorted(call[0] for call in fake.commands) == ["deploy-test", "dev-hj", "dev-ryejinn", "staging"]
    by_node = {node["node"]: node for node in result["nodes"]}
    assert kinds(by_node["dev-ryejinn"]["findings"]) == [("unreachable", None)]
    assert "No route to host" in by_node["dev-ryejinn"]["findings"][0]["message"]
    assert kinds(by_node["dev-yj99son"]["findings"]) == [("container_stopped", None)]
    assert kinds(by_node["dev-jjjh02"]["findings"]) == [("container_missing", None)]
    assert kinds(by_node["staging"]["findings"]) == [("image_missing", "frontend")]
    assert result["repairs"] == [] and lxd.actions == []
    assert result["counts"]["broken"] == 6 and result["counts"]["unreachable"] == 3
    assert result["broken"]


def test_sweep_repairs_what_is_enabled_and_records_it():
    fake = FakeFleet(broken_fleet())
    lxd = FakeLxd(statuses(**{"dev-yj99son": "Stopped"}))
    result = health.Sweep(fleet_nodes(), {"repair": list(health_repairs.REPAIR_KINDS), "start_wait": 0},
                          transport=fake, lxd=lxd).run()
    assert lxd.actions == [("start", "dev-yj99son")]
    by_node = {node["node"]: node for node in result["nodes"]}
    repairs = {(r["node"], r["kind"], r["status"]) for r in result["repairs"]}
    assert repairs == {
        ("dev-yj99son", "container_stopped", "done"),
        ("deploy-test", "container_unhealthy", "done"), ("deploy-test", "service_down", "done"),
        ("staging", "image_missing", "done"), ("dev-ryejinn", "unit_failed", "done"),
        ("dev-hj", "jwt_default", "delegated"),
    }
    # backend-api on dev-hj is not restarted: its JWT secret is weak, the rotation recreates it.
    assert not any(name == "dev-hj" and "docker restart" in command for name, command in fake.commands)
    assert result["jwt_rotation_nodes"] == ["dev-hj"]
    assert by_node["deploy-test"]["state"] == "repaired" and by_node["deploy-test"]["broken"] == []
    assert kinds(by_node["deploy-test"]["fixed"]) == [("container_unhealthy", "fleet-app_backend-api_1"),
                                                      ("service_down", "prometheus-node-exporter.service")]
    assert by_node["dev-yj99son"]["state"] == "repaired" and by_node["dev-yj99son"]["reachable"]
    assert kinds(by_node["dev-hj"]["broken"]) == [
        ("container_unhealthy", "fleet-app_backend-api_1"), ("jwt_default", ".env")]
    assert [n for n in result["nodes"] if n["state"] == "broken"] == [by_node["dev-hj"]]


def test_sweep_second_round_after_dockerd_comes_back():
    probes = {node["name"]: healthy_probe() for node in fleet_nodes()}
    probe = probes["staging"]
    probe["docker"]["answers"] = False
    probe["docker"]["images"] = ["fleet/backend-api:local"]
    fake = FakeFleet(probes)
    result = health.Sweep(fleet_nodes(), {"repair": ["dockerd_down", "image_missing"]}, transport=fake,
                          lxd=FakeLxd(statuses())).run()
    assert [(r["kind"], r["status"]) for r in result["repairs"]] == [("dockerd_down", "done"), ("image_missing", "done")]
    assert result["broken"] == []


def test_check_mode_plans_and_runs_nothing():
    fake = FakeFleet(broken_fleet())
    lxd = FakeLxd(statuses(**{"dev-yj99son": "Frozen"}))
    result = health.Sweep(fleet_nodes(), {"repair": list(health_repairs.REPAIR_KINDS), "check_mode": True},
                          transport=fake, lxd=lxd).run()
    assert lxd.actions == []
    assert all(command == health_package.probe_command() for _node, command in fake.commands)
    statuses_seen = {r["status"] for r in result["repairs"]}
    assert statuses_seen == {"planned", "delegated"}
    assert any('"action": "unfreeze"' in r["action"] and "dev-yj99son" in r["action"] for r in result["repairs"])


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_planned_container_actions_name_the_backends_client(backend):
    lxd = FakeLxd(statuses(**{"dev-yj99son": "Frozen"}))
    result = health.Sweep(fleet_nodes(), {"repair": ["container_stopped"], "check_mode": True, "backend": backend},
                          transport=FakeFleet(broken_fleet()), lxd=lxd).run()
    shown = next(r["action"] for r in result["repairs"] if r["node"] == "dev-yj99son")
    assert shown.startswith(BACKENDS[backend]["cli"] + " query -X PUT --wait ")
    assert shown.endswith("/1.0/instances/dev-yj99son/state?project=default")


def test_lxd_failure_is_a_finding_not_a_crash():
    class BrokenLxd(FakeLxd):
        def instances(self):
            raise RuntimeError("Error: Get \"http://unix.socket/1.0\": dial unix %s: connect: no such file"
                               % BACKENDS["lxd"]["socket"])

        def disk_usage(self):
            raise RuntimeError("no LXD")

    result = health.Sweep(fleet_nodes(), {}, transport=FakeFleet({n["name"]: healthy_probe() for n in fleet_nodes()}),
                          lxd=BrokenLxd({})).run()
    assert [f["kind"] for f in result["fleet_findings"]] == ["lxd_error"]
    assert all(node["reachable"] for node in result["nodes"])


def test_previous_repairs_appear_in_the_final_report():
    previous = [{"node": "dev-hj", "kind": "jwt_default", "target": ".env", "status": "done", "message": "rotated",
                 "seconds": 3.0, "action": "jwt_rotation"}]
    result = health.Sweep(fleet_nodes(), {"previous_repairs": previous},
                          transport=FakeFleet({n["name"]: healthy_probe() for n in fleet_nodes()}),
                          lxd=FakeLxd(statuses())).run()
    node = next(n for n in result["nodes"] if n["node"] == "dev-hj")
    assert node["state"] == "repaired" and node["repairs"] == previous
    assert "dev-hj: jwt_default .env: done" in result["summary"]


@pytest.mark.parametrize("backend, cli", [("lxd", BACKENDS["lxd"]["cli"]), ("incus", "incus")])
def test_lxd_host_queries(backend, cli):
    calls = []

    def runner(argv, timeout, stdin=None):
        calls.append(argv)
        if "recursion=2" in argv[2]:
            return 0, json.dumps([{"name": "dev-hj", "state": {"disk": {"root": {"usage": 123}}}},
                                  {"name": "dev-yj99son", "state": None}]), ""
        return 0, fixture("lxd_instances.json"), ""

    lxd = health_transport.LxdHost(dict(health.DEFAULTS, project="fleet-test", backend=backend), runner=runner)
    assert lxd.instances() == {"dev-hj": "Running", "dev-yj99son": "Stopped", "dev-jjjh02": "Frozen",
                               "deploy-test": "Running"}
    assert lxd.disk_usage() == {"dev-hj": 123}
    assert calls[0] == [cli, "query", "/1.0/instances?recursion=1&project=fleet-test"]
    # The default is LXD's client, as before the backend map.
    assert health_transport.LxdHost(dict(health.DEFAULTS, project="p"), runner=runner).cli == BACKENDS["lxd"]["cli"]
    assert lxd.action("dev-hj", "start") == (True, "")
    assert calls[-1][:6] == [cli, "query", "-X", "PUT", "--wait", "-d"]
    assert calls[-1][7] == "/1.0/instances/dev-hj/state?project=fleet-test"


def test_ssh_transport_command_line():
    transport = health_transport.SshTransport(dict(health.DEFAULTS, ssh_key="/k/id", connect_timeout=4))
    argv = transport.argv(NODE, "uptime")
    assert argv[0] == "ssh" and argv[-4:] == ["-l", "root", "10.10.10.34", "uptime"]
    assert "ConnectTimeout=4" in argv and "BatchMode=yes" in argv and "ControlMaster=auto" in argv
    assert argv[argv.index("-i") + 1] == "/k/id"


# ---------------------------------------------------------------------------
# renderers
# ---------------------------------------------------------------------------


@pytest.fixture()
def swept():
    fake = FakeFleet(broken_fleet(), dead={"dev-ryejinn"})
    return health.Sweep(fleet_nodes(), {"repair": ["container_unhealthy", "service_down"]}, transport=fake,
                        lxd=FakeLxd(statuses(**{"dev-yj99son": "Stopped"}))).run()


PAGES = ROOT / "roles/nightly/templates/var/lib/adelie-fleet/health"


def page(name, result):
    """The nightly role's template of a report page, rendered as strictly as Ansible does (an undefined
    value is an error, not an empty string)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(PAGES)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    return env.get_template(name + ".j2").render(health_report=result)


def test_markdown_table(swept):
    text = page("health.md", swept)
    assert "| node | role | state | git | findings | repairs | still broken |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| node")]
    assert [row.split(" | ")[0][2:] for row in rows] == [n["name"] for n in fleet_nodes()]
    assert "container_unhealthy fleet-app_backend-api_1: done" in text


def test_html_is_self_contained_with_the_table(swept):
    html = page("health.html", swept)
    assert html.startswith("<!DOCTYPE html>") and "<style>" in html
    assert not re.search(r"<(script|link|img)\b", html) and "http" not in html.replace("http-equiv", "")
    assert html.count("<tr class=") == len(fleet_nodes())
    for state in ("repaired", "broken", "unreachable"):
        assert '<tr class="%s">' % state in html
    assert "<th>still broken</th>" in html


def test_html_escapes(swept):
    swept["nodes"][0]["findings"].append(health_findings.finding(NODE, "unit_failed", "<script>x</script>", "u"))
    swept["nodes"][0]["repairs"].append({"kind": "unit_failed", "target": "<b>", "status": "failed", "message": "<i>"})
    html = page("health.html", swept)
    assert "<script>x" not in html and "&lt;script&gt;x" in html
    assert "<b>" not in html and "<i>" not in html


def _rule_and_dashboard_exprs():
    exprs = []
    for path in glob.glob(str(ROOT / "roles/prometheus/files/etc/prometheus/rules/*.yml")):
        for group in yaml.safe_load(Path(path).read_text(encoding="utf-8"))["groups"]:
            exprs += [(rule["expr"], rule.get("annotations", {})) for rule in group["rules"]]
    dashboard = json.loads((ROOT / "roles/grafana/files/dashboards/fleet-health.json").read_text(encoding="utf-8"))
    exprs += [(target["expr"], {}) for panel in dashboard["panels"] for target in panel.get("targets", [])]
    return exprs


def test_textfile_metrics_match_the_rules_and_the_dashboard(swept):
    text = health_report.render_textfile(swept)
    produced = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            match = re.match(r"^([a-z_:]+)\{([^}]*)\} (\S+)$", line)
            assert match, line
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
            produced.setdefault(match.group(1), []).append(labels)
            float(match.group(3))
    used = set()
    for expr, annotations in _rule_and_dashboard_exprs():
        names = set(re.findall(r"\badelie_fleet_health_[a-z_]+", expr))
        used |= names
        wanted = set(re.findall(r"\$labels\.(\w+)", json.dumps(annotations))) | set(
            label for group in re.findall(r"by \(([^)]*)\)", expr) for label in group.replace(" ", "").split(","))
        for name in names:
            assert name in produced, "%s (used by %r) is not produced" % (name, expr)
            for labels in produced[name]:
                assert wanted <= set(labels), (name, wanted, labels)
    assert {"adelie_fleet_health_findings", "adelie_fleet_health_container_unhealthy",
            "adelie_fleet_health_jwt_secret_weak", "adelie_fleet_health_last_sweep_timestamp_seconds",
            "adelie_fleet_health_node_up", "adelie_fleet_health_repairs"} <= used
    for labels in produced["adelie_fleet_health_node_up"]:
        assert set(labels) == {"node", "role"}
    up = {labels["node"]: line for labels, line in zip(produced["adelie_fleet_health_node_up"],
                                                       [l for l in text.splitlines() if l.startswith("adelie_fleet_health_node_up{")])}
    assert up["dev-ryejinn"].endswith(" 0") and up["dev-yj99son"].endswith(" 0") and up["dev-hj"].endswith(" 1")
    assert 'adelie_fleet_health_container_unhealthy{node="dev-hj",role="dev",container="fleet-app_backend-api_1"} 1' in text
    assert 'adelie_fleet_health_jwt_secret_weak{node="dev-hj",role="dev"} 1' in text


def test_textfile_passes_promtool(swept):
    promtool = os.path.join(ROOT, "build", "tools", "usr", "bin", "promtool")
    assert os.path.isfile(promtool), "%s is missing: run `make tools` (make unit does it)" % promtool
    proc = subprocess.run([promtool, "check", "metrics"], input=health_report.render_textfile(swept), capture_output=True,
                          text=True, check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_webhook_and_summary(swept):
    payload = health_report.webhook_payload(swept)
    assert payload["text"] == swept["summary"] and payload["content"] == swept["summary"]
    assert "Still broken:" in swept["summary"] and "dev-ryejinn: unreachable" in swept["summary"]
    long = copy.deepcopy(swept)
    long["summary"] = "line\n" * 1000
    assert len(health_report.webhook_payload(long)["content"]) <= 2000


def test_reports_are_written_atomically(swept, tmp_path):
    files = health_report.write_reports(swept, str(tmp_path / "reports"), str(tmp_path))
    assert sorted(Path(f).name for f in files) == ["adelie_fleet_health.prom", "health.json"]
    assert json.loads((tmp_path / "reports/health.json").read_text())["counts"] == swept["counts"]
    assert not list(tmp_path.glob(".*.tmp")) and not list((tmp_path / "reports").glob(".*"))


def test_a_node_without_python_is_a_probe_error_not_unreachable():
    class NoPython(FakeFleet):
        def run(self, node, command, stdin=None, timeout=None):
            return 127, "", "bash: line 1: python3: command not found\n"

    result = health.Sweep(fleet_nodes()[:1], {}, transport=NoPython({}), lxd=FakeLxd(statuses())).run()
    finding = result["nodes"][0]["findings"][0]
    assert finding["kind"] == "probe_error" and "python3: command not found" in finding["message"]
    assert not result["nodes"][0]["reachable"]


BACKUP_TEXTFILE = """# HELP adelie_fleet_backup_last_success_timestamp_seconds Time of the newest complete backup.
# TYPE adelie_fleet_backup_last_success_timestamp_seconds gauge
adelie_fleet_backup_last_success_timestamp_seconds{db="dev_hj"} 1795300000
adelie_fleet_backup_last_success_timestamp_seconds{db="deploy"} 1.7951e+09
adelie_fleet_backup_last_run_failures 0
"""


def test_backup_metrics_are_read_from_the_textfile():
    assert health_probe.parse_backup_metrics(BACKUP_TEXTFILE) == {"dev_hj": 1795300000.0, "deploy": 1795100000.0}
    assert health_probe.parse_backup_metrics("") == {}


def test_an_old_backup_is_a_finding_and_every_age_is_reported():
    probe = healthy_probe()
    # dev_hj backed up 2 h ago, deploy 2 days and 7.6 h ago.
    probe["backups"] = {"now": 1795307200.0, "last_success": health_probe.parse_backup_metrics(BACKUP_TEXTFILE)}
    found = health_findings.classify(NODE, probe, health.DEFAULTS, disk_used=1 << 30)
    assert kinds(found) == [("backup_old", "deploy")]
    assert "57.6 h" in found[0]["message"] and found[0]["severity"] == "warning"
    assert health_findings.backup_ages(probe) == {"dev_hj": 7200.0, "deploy": 207200.0}
    # A node without the shared services has no backup to report.
    assert health_findings.backup_ages(healthy_probe()) == {}


# ---------------------------------------------------------------------------
# declared services, and repairs judged from outside
# ---------------------------------------------------------------------------


def test_unit_states_from_systemctl_show():
    units = ["ssh.service", "nope.service", "prometheus-node-exporter.service", "redis-server.service"]
    # Real output of systemd 252 on a node (the monotonic clock at 567.3 s).
    state = health_probe.parse_unit_show(fixture("systemctl_show.txt"), units, 567.3)
    assert state["ssh.service"] == {"load": "loaded", "active": "active", "sub": "running", "restarts": 0,
                                    "active_for": 10.0}
    assert state["nope.service"]["load"] == "not-found"
    assert state["prometheus-node-exporter.service"] == {"load": "loaded", "active": "activating", "sub": "auto-restart",
                                                         "restarts": 3, "active_for": None}
    assert state["redis-server.service"]["load"] == "masked"
    assert health_probe.parse_unit_show("", units, 1.0) == {}


def test_the_probe_is_asked_for_the_declared_units():
    args = json.loads(health_package.probe_input(NODE, health.DEFAULTS, units=["nginx.service"]).split("\n", 1)[0])
    assert args["units"] == ["docker.service", "nginx.service", "prometheus-node-exporter.service", "ssh.service"]


@pytest.mark.parametrize("state, port, message, repair", [
    (unit("inactive", "dead"), True, "service node-exporter (prometheus-node-exporter.service) is inactive (dead)",
     "service_down"),
    (unit("activating", "auto-restart"), False, "is activating (auto-restart)", "service_down"),
    (unit("active"), False, "is active but port 9100 does not answer on 10.10.10.34", "service_down"),
    (unit("inactive", "dead", load="masked"), True, "is masked", None),
    (unit("inactive", "dead", load="not-found"), True, "is not installed", None),
])
def test_a_declared_service_must_be_active_and_answer(state, port, message, repair):
    probe = healthy_probe()
    probe["units"]["prometheus-node-exporter.service"] = state
    probe["ports"]["9100"] = port
    found = health_findings.classify(NODE, probe, health.DEFAULTS, disk_used=1 << 30)
    assert kinds(found) == [("service_down", "prometheus-node-exporter.service")]
    assert message in found[0]["message"] and found[0]["repair"] == repair and found[0]["severity"] == "critical"


def test_services_are_declared_not_hard_coded():
    probe = healthy_probe()
    probe["units"] = {}
    # A node that declares nothing is not held to any unit (what it must run comes from the model).
    assert health_findings.classify(dict(NODE, services=[]), probe, health.DEFAULTS) == []
    assert {f["target"] for f in health_findings.classify(NODE, probe, health.DEFAULTS)} == {
        "ssh.service", "prometheus-node-exporter.service", "docker.service"}


def fleet_with_services(**overrides):
    probes = {node["name"]: healthy_probe() for node in fleet_nodes()}
    for name, changes in overrides.items():
        for key, value in changes.items():
            probes[name]["units"][key] = value
            probes[name]["ports"]["9100"] = False
    return probes


FAST = {"settle": 0, "verify_timeout": 0, "verify_interval": 0}


def test_a_restart_that_does_not_hold_is_failed_and_the_node_stays_broken():
    # node-exporter's executable is gone: the restart command exits 0, the unit goes activating, then failed.
    probes = fleet_with_services(**{"dev-hj": {"prometheus-node-exporter.service": unit("failed", "failed")}})
    fake = FakeFleet(probes, broken_units={"prometheus-node-exporter.service"})
    result = health.Sweep(fleet_nodes(), dict(FAST, repair=["service_down"]), transport=fake,
                          lxd=FakeLxd(statuses())).run()
    node = next(n for n in result["nodes"] if n["node"] == "dev-hj")
    assert [(r["kind"], r["status"]) for r in node["repairs"]] == [("service_down", "failed")]
    assert "later unit prometheus-node-exporter.service is failed (failed)" in node["repairs"][0]["message"]
    assert node["state"] == "broken" and kinds(node["broken"]) == [("service_down", "prometheus-node-exporter.service")]
    assert result["counts"]["repairs_failed"] == 1 and "repaired" not in result["summary"].split("Repairs:")[1]


def test_a_restarted_unit_must_stay_active_for_the_settle_time():
    probes = fleet_with_services(**{"dev-hj": {"prometheus-node-exporter.service": unit("inactive", "dead")}})

    class JustStarted(FakeFleet):
        def run(self, node, command, stdin=None, timeout=None):
            rc, out, err = super().run(node, command, stdin, timeout)
            if "systemctl restart" in command:
                self.probes[node["name"]]["units"]["prometheus-node-exporter.service"]["active_for"] = 2.0
            return rc, out, err

    options = {"repair": ["service_down"], "settle": 10, "verify_timeout": 0.2, "verify_interval": 0.05}
    result = health.Sweep(fleet_nodes(), options, transport=JustStarted(probes), lxd=FakeLxd(statuses())).run()
    record = result["repairs"][0]
    assert record["status"] == "failed" and "not active for 10 s" in record["message"]
    # A unit that has been active long enough holds at once.
    probes = fleet_with_services(**{"dev-hj": {"prometheus-node-exporter.service": unit("inactive", "dead")}})
    result = health.Sweep(fleet_nodes(), {"repair": ["service_down"]}, transport=FakeFleet(probes),
                          lxd=FakeLxd(statuses())).run()
    assert result["repairs"][0]["status"] == "done" and result["broken"] == []
    assert result["repairs"][0]["message"].startswith("holds")


def test_masked_or_missing_services_are_reported_not_touched():
    probes = fleet_with_services(**{"dev-hj": {"prometheus-node-exporter.service": unit("inactive", "dead", "masked")},
                                    "staging": {"prometheus-node-exporter.service": unit("inactive", "dead", "not-found")}})
    fake = FakeFleet(probes)
    result = health.Sweep(fleet_nodes(), {"repair": list(health_repairs.REPAIR_KINDS)}, transport=fake,
                          lxd=FakeLxd(statuses())).run()
    assert result["repairs"] == [] and all(command == health_package.probe_command() for _n, command in fake.commands)
    assert {(f["node"], f["kind"]) for f in result["broken"]} == {("dev-hj", "service_down"), ("staging", "service_down")}


def test_a_frozen_container_is_unfrozen_through_the_api_and_must_answer():
    lxd = FakeLxd(statuses(**{"dev-hj": "Frozen", "staging": "Stopped"}))
    result = health.Sweep(fleet_nodes(), {"repair": ["container_stopped"], "start_wait": 0},
                          transport=FakeFleet({n["name"]: healthy_probe() for n in fleet_nodes()}), lxd=lxd).run()
    assert sorted(lxd.actions) == [("start", "staging"), ("unfreeze", "dev-hj")]
    assert lxd.statuses["dev-hj"] == "Running"
    assert {(r["node"], r["status"]) for r in result["repairs"]} == {("dev-hj", "done"), ("staging", "done")}

    # A container LXD does not report Running after the action, or one that never answers SSH: failed.
    class Stuck(FakeLxd):
        """dev-hj stays frozen whatever is asked; staging starts (and never answers SSH)."""

        def action(self, name, action):
            self.actions.append((action, name))
            if name == "staging":
                self.statuses[name] = "Running"
            return True, ""

    fake = FakeFleet({n["name"]: healthy_probe() for n in fleet_nodes()}, dead={"staging"})
    result = health.Sweep(fleet_nodes(), {"repair": ["container_stopped"], "start_wait": 0}, transport=fake,
                          lxd=Stuck(statuses(**{"dev-hj": "Frozen", "staging": "Stopped"}))).run()
    records = {r["node"]: r for r in result["repairs"]}
    assert records["dev-hj"]["status"] == "failed" and "LXD says Frozen after unfreeze" in records["dev-hj"]["message"]
    assert records["staging"]["status"] == "failed" and "does not answer SSH" in records["staging"]["message"]
    assert {n["node"] for n in result["nodes"] if n["state"] == "broken"} == {"dev-hj", "staging"}


def test_a_failed_repair_leaves_the_node_broken_even_when_its_finding_is_gone():
    previous = [{"node": "dev-hj", "kind": "service_down", "target": "nginx.service", "status": "failed",
                 "message": "ran, but 60 s later unit nginx.service is activating", "seconds": 60, "action": "x"}]
    result = health.Sweep(fleet_nodes(), {"previous_repairs": previous},
                          transport=FakeFleet({n["name"]: healthy_probe() for n in fleet_nodes()}),
                          lxd=FakeLxd(statuses())).run()
    node = next(n for n in result["nodes"] if n["node"] == "dev-hj")
    assert node["state"] == "broken" and kinds(node["broken"]) == [("repair_failed", "nginx.service")]


def test_container_repairs_are_judged_by_health_and_images():
    probe = healthy_probe()
    item = dict(health_findings.finding(NODE, "container_unhealthy", "m", "fleet-app_backend-api_1"))
    assert health_repairs.judge(item, NODE, probe, 10) == (True, "")
    probe["docker"]["containers"][1]["health"] = "starting"
    assert health_repairs.judge(item, NODE, probe, 10) == (False, "container fleet-app_backend-api_1 is starting")
    image = dict(health_findings.finding(NODE, "image_missing", "m", "frontend"), image="fleet/frontend:local")
    assert health_repairs.judge(image, NODE, healthy_probe(), 10) == (True, "")
    gone = healthy_probe()
    gone["docker"]["images"].remove("fleet/frontend:local")
    assert health_repairs.judge(image, NODE, gone, 10) == (False, "image fleet/frontend:local is still missing")
    assert health_repairs.judge(image, NODE, None, 10)[0] is False
