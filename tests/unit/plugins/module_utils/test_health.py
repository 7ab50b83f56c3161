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

import pytest
import yaml
from ansible_collections.adelie.fleet.plugins.module_utils import health, health_probe, jwt_status

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


def test_compose_services_of_the_fixture_app():
    text = (ROOT / "roles/fixture_app/files/app/docker-compose.yml").read_text(encoding="utf-8")
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
    proc = subprocess.run(["sh", "-c", health.probe_command(str(blocker / "cache"))],
                          input=health.probe_input(node, dict(health.DEFAULTS, timeout=10)), capture_output=True,
                          text=True, timeout=30, check=True)
    assert json.loads(proc.stdout)["probe_version"] == health_probe.PROBE_VERSION


def test_docker_state_without_docker(tmp_path):
    state = health_probe.docker_state(str(tmp_path / "none.sock"), 1)
    assert state["answers"] is False and "no Docker socket" in state["error"]


# ---------------------------------------------------------------------------
# the shipped script: one file, module_utils' own code
# ---------------------------------------------------------------------------


def test_probe_script_is_one_self_contained_file():
    body = health.probe_body()
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
    (app / "docker-compose.yml").write_text((ROOT / "roles/fixture_app/files/app/docker-compose.yml").read_text())
    node = {"name": "n", "app_dir": str(app), "compose": "docker-compose", "docker": True}
    options = dict(health.DEFAULTS, timeout=10)
    cache = tmp_path / "cache"
    command = health.probe_command(str(cache))

    def run_probe():
        return subprocess.run(["sh", "-c", command], input=health.probe_input(node, options), capture_output=True,
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

NODE = {"name": "dev-hj", "role": "dev", "ipv4": "10.10.10.34", "app_dir": "/home/hj/app", "compose": "docker-compose",
        "docker": True, "memory_bytes": 1 << 30, "disk_bytes": 5 << 30}


def healthy_probe():
    return {
        "probe_version": 1,
        "systemd": {"state": "running", "failed_units": []},
        "units": {"prometheus-node-exporter.service": "active", "docker.service": "active"},
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
    assert health.classify(NODE, healthy_probe(), health.DEFAULTS, disk_used=1 << 30) == []


def test_every_fault_is_classified():
    probe = healthy_probe()
    probe["systemd"] = {"state": "degraded", "failed_units": ["nginx.service", "docker.service"]}
    probe["units"]["prometheus-node-exporter.service"] = "failed"
    probe["memory"]["available"] = 50 << 20
    backend = probe["docker"]["containers"][1]
    backend.update(health="unhealthy", status="Up 5 minutes (unhealthy)")
    probe["docker"]["containers"][0].update(state="restarting", restart_count=9)
    probe["docker"]["images"] = ["fleet/backend-api:local"]
    probe["git"].update(ahead=1, behind=2, modified=3)
    probe["jwt"]["reason"] = "default"
    found = health.classify(NODE, probe, health.DEFAULTS, disk_used=int(4.8 * (1 << 30)))
    assert kinds(found) == [
        ("container_restarting", "fleet-app_frontend_1"), ("container_unhealthy", "fleet-app_backend-api_1"),
        ("disk_high", None), ("git_dirty", None), ("git_diverged", None), ("image_missing", "frontend"),
        ("jwt_default", ".env"), ("memory_high", None), ("node_exporter_down", "prometheus-node-exporter.service"),
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
    probe["units"]["docker.service"] = "failed"
    assert kinds(health.classify(NODE, probe, health.DEFAULTS)) == [("dockerd_down", "docker.service")]


def test_probe_error_and_lxd_states():
    assert kinds(health.classify(NODE, {"probe_error": "KeyError: x"}, health.DEFAULTS)) == [("probe_error", None)]
    assert [f["kind"] for f in health.lxd_findings(NODE, "Stopped", "default")] == ["container_stopped"]
    assert [f["repair"] for f in health.lxd_findings(NODE, "Frozen", "default")] == ["container_stopped"]
    assert [f["kind"] for f in health.lxd_findings(NODE, None, "default")] == ["container_missing"]
    assert [f["kind"] for f in health.lxd_findings(NODE, "Error", "default")] == ["container_state"]
    assert health.lxd_findings(NODE, "Running", "default") == []


def test_repair_plan_only_enabled_kinds_once_in_order():
    found = [health.finding(NODE, "image_missing", "m", "frontend"), health.finding(NODE, "dockerd_down", "m", "docker.service"),
             health.finding(NODE, "git_dirty", "m"), health.finding(NODE, "jwt_default", "m", ".env"),
             health.finding(NODE, "unit_failed", "m", "nginx.service")]
    assert health.plan_repairs(found, set()) == []
    plan = health.plan_repairs(found, set(health.REPAIR_KINDS))
    assert [p["repair"] for p in plan] == ["dockerd_down", "unit_failed", "image_missing", "jwt_default"]
    assert [p["repair"] for p in health.plan_repairs(found, {"image_missing", "unit_failed"})] == [
        "unit_failed", "image_missing"]
    attempted = {("dev-hj", "dockerd_down", "docker.service")}
    assert "dockerd_down" not in [p["repair"] for p in health.plan_repairs(found, set(health.REPAIR_KINDS), attempted)]


def test_repair_commands_are_bounded_and_quoted():
    options = health.DEFAULTS
    image = dict(health.finding(NODE, "image_missing", "m", "frontend"))
    command = health.repair_command(image, NODE, options)
    assert command == ("cd /home/hj/app && timeout 300 docker-compose -p fleet-app build frontend && "
                       "timeout 300 docker-compose -p fleet-app up -d frontend")
    unit = health.finding(NODE, "unit_failed", "m", "evil;rm -rf /.service")
    assert "'evil;rm -rf /.service'" in health.repair_command(unit, NODE, options)
    unhealthy = dict(health.finding(NODE, "container_unhealthy", "m", "c"), container_id="abc123")
    assert health.repair_command(unhealthy, NODE, options) == "timeout 300 docker restart abc123"
    for kind in ("dockerd_down", "unit_failed", "container_unhealthy", "image_missing", "node_exporter_down"):
        item = dict(health.finding(NODE, kind, "m", "x"), repair=kind, container_id="abc")
        text = health.repair_command(item, NODE, options)
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

    def __init__(self, probes, dead=()):
        self.probes = probes
        self.dead = set(dead)
        self.commands = []
        self.lock = threading.Lock()

    def run(self, node, command, stdin=None, timeout=None):
        name = node["name"]
        with self.lock:
            self.commands.append((name, command))
        if name in self.dead:
            return 255, "", "ssh: connect to host %s port 22: No route to host\r\n" % node["ipv4"]
        if command == health.probe_command():
            args, _nl, body = stdin.partition("\n")
            assert json.loads(args)["app_dir"] == node.get("app_dir") and body == health.probe_body()
            return 0, json.dumps(self.probes[name]) + "\n", ""
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
        elif "restart prometheus-node-exporter" in command:
            probe["units"]["prometheus-node-exporter.service"] = "active"
        elif "systemctl restart" in command:
            probe["systemd"]["failed_units"] = []
        return 0, "", ""


class FakeLxd:
    def __init__(self, statuses, usage=None):
        self.statuses = dict(statuses)
        self.usage = usage or {}
        self.actions = []

    def instances(self):
        return dict(self.statuses)

    def disk_usage(self):
        return dict(self.usage)

    def action(self, name, verb):
        self.actions.append((verb, name))
        self.statuses[name] = "Running"
        return True, ""


def broken_fleet():
    probes = {node["name"]: healthy_probe() for node in fleet_nodes()}
    probes["dev-hj"]["jwt"]["reason"] = "default"
    probes["dev-hj"]["docker"]["containers"][1].update(health="unhealthy")
    probes["staging"]["docker"]["images"] = ["fleet/backend-api:local"]
    probes["staging"]["docker"]["containers"] = probes["staging"]["docker"]["containers"][1:]
    probes["deploy-test"]["docker"]["containers"][1].update(health="unhealthy")
    probes["deploy-test"]["units"]["prometheus-node-exporter.service"] = "inactive"
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
    assert all(command == health.probe_command() for _node, command in fake.commands)
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
    result = health.Sweep(fleet_nodes(), {"repair": list(health.REPAIR_KINDS), "start_wait": 0},
                          transport=fake, lxd=lxd).run()
    assert lxd.actions == [("start", "dev-yj99son")]
    by_node = {node["node"]: node for node in result["nodes"]}
    repairs = {(r["node"], r["kind"], r["status"]) for r in result["repairs"]}
    assert repairs == {
        ("dev-yj99son", "container_stopped", "done"),
        ("deploy-test", "container_unhealthy", "done"), ("deploy-test", "node_exporter_down", "done"),
        ("staging", "image_missing", "done"), ("dev-ryejinn", "unit_failed", "done"),
        ("dev-hj", "jwt_default", "delegated"),
    }
    # backend-api on dev-hj is not restarted: its JWT secret is weak, the rotation recreates it.
    assert not any(name == "dev-hj" and "docker restart" in command for name, command in fake.commands)
    assert result["jwt_rotation_nodes"] == ["dev-hj"]
    assert by_node["deploy-test"]["state"] == "repaired" and by_node["deploy-test"]["broken"] == []
    assert kinds(by_node["deploy-test"]["fixed"]) == [("container_unhealthy", "fleet-app_backend-api_1"),
                                                      ("node_exporter_down", "prometheus-node-exporter.service")]
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
    result = health.Sweep(fleet_nodes(), {"repair": list(health.REPAIR_KINDS), "check_mode": True},
                          transport=fake, lxd=lxd).run()
    assert lxd.actions == []
    assert all(command == health.probe_command() for _node, command in fake.commands)
    statuses_seen = {r["status"] for r in result["repairs"]}
    assert statuses_seen == {"planned", "delegated"}
    assert any(r["action"] == "lxc unfreeze --project default dev-yj99son" for r in result["repairs"])


def test_lxd_failure_is_a_finding_not_a_crash():
    class BrokenLxd(FakeLxd):
        def instances(self):
            raise RuntimeError("Error: Get \"http://unix.socket/1.0\": dial unix /var/lib/lxd/unix.socket: connect: no such file")

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


def test_lxd_host_queries(monkeypatch):
    calls = []

    def runner(argv, timeout, stdin=None):
        calls.append(argv)
        if "recursion=2" in argv[2]:
            return 0, json.dumps([{"name": "dev-hj", "state": {"disk": {"root": {"usage": 123}}}},
                                  {"name": "dev-yj99son", "state": None}]), ""
        return 0, fixture("lxd_instances.json"), ""

    lxd = health.LxdHost(dict(health.DEFAULTS, project="fleet-test"), runner=runner)
    assert lxd.instances() == {"dev-hj": "Running", "dev-yj99son": "Stopped", "dev-jjjh02": "Frozen",
                               "deploy-test": "Running"}
    assert lxd.disk_usage() == {"dev-hj": 123}
    assert calls[0] == ["lxc", "query", "/1.0/instances?recursion=1&project=fleet-test"]


def test_ssh_transport_command_line():
    transport = health.SshTransport(dict(health.DEFAULTS, ssh_key="/k/id", connect_timeout=4))
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
    return health.Sweep(fleet_nodes(), {"repair": ["container_unhealthy", "node_exporter_down"]}, transport=fake,
                        lxd=FakeLxd(statuses(**{"dev-yj99son": "Stopped"}))).run()


def test_markdown_table(swept):
    text = health.render_markdown(swept)
    assert "| node | role | state | git | findings | repairs | still broken |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| node")]
    assert [row.split(" | ")[0][2:] for row in rows] == [n["name"] for n in fleet_nodes()]
    assert "container_unhealthy fleet-app_backend-api_1: done" in text


def test_html_is_self_contained_with_the_table(swept):
    page = health.render_html(swept)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert not re.search(r"<(script|link|img)\b", page) and "http" not in page.replace("http-equiv", "")
    assert page.count("<tr class=") == len(fleet_nodes())
    for state in ("repaired", "broken", "unreachable"):
        assert '<tr class="%s">' % state in page
    assert "<th>still broken</th>" in page


def test_html_escapes(swept):
    swept["nodes"][0]["findings"].append(health.finding(NODE, "unit_failed", "<script>x</script>", "u"))
    assert "<script>x" not in health.render_html(swept)


def _rule_and_dashboard_exprs():
    exprs = []
    for path in glob.glob(str(ROOT / "roles/prometheus/files/etc/prometheus/rules/*.yml")):
        for group in yaml.safe_load(Path(path).read_text(encoding="utf-8"))["groups"]:
            exprs += [(rule["expr"], rule.get("annotations", {})) for rule in group["rules"]]
    dashboard = json.loads((ROOT / "roles/grafana/files/dashboards/fleet-health.json").read_text(encoding="utf-8"))
    exprs += [(target["expr"], {}) for panel in dashboard["panels"] for target in panel.get("targets", [])]
    return exprs


def test_textfile_metrics_match_the_rules_and_the_dashboard(swept):
    text = health.render_textfile(swept)
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
    proc = subprocess.run([promtool, "check", "metrics"], input=health.render_textfile(swept), capture_output=True,
                          text=True, check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_webhook_and_summary(swept):
    payload = health.webhook_payload(swept)
    assert payload["text"] == swept["summary"] and payload["content"] == swept["summary"]
    assert "Still broken:" in swept["summary"] and "dev-ryejinn: unreachable" in swept["summary"]
    long = copy.deepcopy(swept)
    long["summary"] = "line\n" * 1000
    assert len(health.webhook_payload(long)["content"]) <= 2000


def test_reports_are_written_atomically(swept, tmp_path):
    files = health.write_reports(swept, str(tmp_path / "reports"), str(tmp_path))
    assert sorted(Path(f).name for f in files) == ["adelie_fleet_health.prom", "health.html", "health.json", "health.md"]
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
    found = health.classify(NODE, probe, health.DEFAULTS, disk_used=1 << 30)
    assert kinds(found) == [("backup_old", "deploy")]
    assert "57.6 h" in found[0]["message"] and found[0]["severity"] == "warning"
    assert health.backup_ages(probe) == {"dev_hj": 7200.0, "deploy": 207200.0}
    # A node without the shared services has no backup to report.
    assert health.backup_ages(healthy_probe()) == {}
