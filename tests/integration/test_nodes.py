"""The node layer from the inside: Docker, the member's account and toolchains, the app checkout.

By default these tests use the session fleet of the integration conftest (`lab`: LXD project
fleet-test, converged with site.yml). Pointed at an existing fleet they only look, never converge
or delete anything, and run the node layer in check mode instead of for real:

    FLEET_INVENTORY=inventories/production .venv/bin/python -m pytest tests/integration/test_nodes.py

(run on the LXD host, where `lxc` reaches the fleet's project). FLEET_VERIFY_WRITE=1 also allows
the tests that write: a marker line in each member's .env (removed afterwards) and a real re-run
of playbooks/nodes.yml.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ROLES = ["infra", "deploy", "staging", "dev", "dev_ai", "qa"]
# Roles whose nodes run the lab's fixture app (inventories/lab/group_vars/fleet.yml).
FIXTURE_ROLES = {"dev", "dev_ai", "qa", "deploy", "staging"}
PROJECT_LABEL = "com.docker.compose.project=fleet-app"
# LXD 5.0.2 here fails about 1 `lxc exec` in 100 with this message although the command ran;
# read-only commands are simply asked again.
LXD_EXEC_FLAKE = "Failed to retrieve PID of executing child process"
_RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


class ExistingFleet:
    """The `lab` interface over a fleet that already exists (the lab of `make up`, production)."""

    def __init__(self, inventory):
        self.inventory = str(REPO / inventory)
        self.project = self._var("fleet_project") or "default"
        out = subprocess.run(
            [str(BIN / "ansible"), "-i", self.inventory, "localhost", "-m", "adelie.fleet.fleet_model", "-a",
             '{"roles": "{{ fleet_roles }}", "network": "{{ fleet_network }}", "pools": "{{ fleet_pools }}"}',
             "-o"], cwd=REPO, capture_output=True, text=True, check=True).stdout
        self.nodes = json.loads(out.split("=>", 1)[1])["fleet"]["nodes"]

    def _var(self, name):
        out = subprocess.run([str(BIN / "ansible-inventory"), "-i", self.inventory, "--host", "localhost"],
                             cwd=REPO, capture_output=True, text=True, check=True).stdout
        return json.loads(out).get(name)

    def exec(self, node, cmd, user=None, check=False):
        command = ["su", "-", user, "-c", cmd] if user else ["sh", "-c", cmd]
        return subprocess.run(["lxc", "exec", "--project", self.project, node, "--", *command],
                              capture_output=True, text=True, check=check)

    def playbook(self, playbook, *args):
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", self.inventory, str(REPO / playbook), *args],
                              cwd=REPO, capture_output=True, text=True, check=False,
                              env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"})
        out = proc.stdout + proc.stderr
        recap = {m[0]: {"ok": int(m[1]), "changed": int(m[2]), "unreachable": int(m[3]), "failed": int(m[4])}
                 for m in _RECAP.findall(out)}
        return type("Result", (), {"rc": proc.returncode, "out": out, "recap": recap})()


def _existing_inventory(config):
    return config.getoption("--inventory", default=None) or os.environ.get("FLEET_INVENTORY")


@pytest.fixture(scope="session")
def fleet(request):
    inventory = _existing_inventory(request.config)
    if inventory:
        return ExistingFleet(inventory)
    return request.getfixturevalue("lab")


@pytest.fixture(scope="session")
def may_write(request):
    return not _existing_inventory(request.config) or os.environ.get("FLEET_VERIFY_WRITE") == "1"


def run(fleet, node, cmd, user=None, tries=4):
    """A read-only command in a node, asked again when LXD loses its result."""
    for _attempt in range(tries):
        proc = fleet.exec(node, cmd, user=user)
        if not (proc.returncode == 255 and LXD_EXEC_FLAKE in proc.stderr):
            return proc
        time.sleep(0.5)
    return proc


def playbook(fleet, *args, tries=3):
    """Run playbooks/nodes.yml; a run broken only by LXD's lost exec results is run again."""
    for _attempt in range(tries):
        result = fleet.playbook("playbooks/nodes.yml", *args)
        failures = [line for line in result.out.splitlines() if line.startswith(("fatal:", "failed:"))]
        if result.rc == 0 or not failures or not all(LXD_EXEC_FLAKE in line for line in failures):
            return result
    return result


def nodes_of(fleet, role, docker=None, member=None):
    """Names of the fleet's nodes of a role, optionally only those with Docker / with a member."""
    names = [name for name, node in sorted(fleet.nodes.items()) if node["role"] == role
             and (docker is None or bool(node["docker"]) == docker)
             and (member is None or bool(node["member"]) == member)]
    if not names:
        pytest.skip("no %snode of role %s in this fleet" % ("Docker " if docker else "member " if member else "", role))
    return names


def app_dir(node):
    return "/home/%s/app" % node["member"]["login"] if node["member"] else "/opt/fleet-app"


def http_get(fleet, name, url):
    """GET url from inside the node with its python3 (curl is only on members' nodes)."""
    return run(fleet, name, "python3 -c 'import sys, urllib.request; "
               "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' %s" % url)


def fixture_containers(fleet, name):
    return run(fleet, name, "docker ps -q --filter label=%s" % PROJECT_LABEL).stdout.split()


@pytest.mark.parametrize("role", ROLES)
def test_docker_engine_runs(fleet, role):
    for name in nodes_of(fleet, role, docker=True):
        assert run(fleet, name, "systemctl is-active docker").stdout.strip() == "active", name
        info = run(fleet, name, "docker info --format '{{.ServerVersion}} {{.LoggingDriver}}'")
        assert info.returncode == 0, (name, info.stderr)
        assert info.stdout.split()[1] == "json-file", (name, info.stdout)
        daemon = json.loads(run(fleet, name, "cat /etc/docker/daemon.json").stdout)
        assert daemon["log-opts"] == {"max-size": "10m", "max-file": "3"}, (name, daemon)


@pytest.mark.parametrize("role", ROLES)
def test_compose_command_answers(fleet, role):
    for name in nodes_of(fleet, role, docker=True):
        proc = run(fleet, name, "docker-compose version --short 2>/dev/null || docker compose version --short")
        assert proc.returncode == 0 and re.match(r"^v?\d+\.\d+", proc.stdout.strip()), (name, proc.stdout, proc.stderr)


@pytest.mark.parametrize("role", ROLES)
def test_limited_container_runs_from_local_image(fleet, role):
    names = [name for name in nodes_of(fleet, role, docker=True)
             if run(fleet, name, "docker image inspect fleet/base:local >/dev/null 2>&1").returncode == 0]
    if not names:
        pytest.skip("no node of role %s has the locally built fleet/base:local" % role)
    for name in names:
        # --cpus needs a writable cgroup in the node (raw.lxc lxc.mount.auto=cgroup:mixed:force).
        proc = run(fleet, name, "docker run --rm --cpus 0.5 -m 64m fleet/base:local true")
        assert proc.returncode == 0, (name, proc.stderr)


@pytest.mark.parametrize("role", ROLES)
def test_containers_rotate_their_logs(fleet, role):
    names = [name for name in nodes_of(fleet, role, docker=True) if fixture_containers(fleet, name)]
    if not names:
        pytest.skip("no node of role %s runs the app" % role)
    for name in names:
        for container in fixture_containers(fleet, name):
            log = json.loads(run(fleet, name, "docker inspect --format '{{json .HostConfig.LogConfig}}' %s"
                                 % container).stdout)
            assert log == {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}, (name, log)


@pytest.mark.parametrize("role", ROLES)
def test_member_account_and_docker_without_sudo(fleet, role):
    for name in nodes_of(fleet, role, member=True):
        login = fleet.nodes[name]["member"]["login"]
        passwd = run(fleet, name, "getent passwd %s" % login).stdout.strip().split(":")
        assert passwd[0] == login and passwd[6] == "/bin/bash", (name, passwd)
        sudoers = "/etc/sudoers.d/%s" % login
        if run(fleet, name, "test -e %s" % sudoers).returncode == 0:
            assert run(fleet, name, "visudo -cf %s" % sudoers).returncode == 0, name
            assert run(fleet, name, "stat -c %%a %s" % sudoers).stdout.strip() == "440", name
        if fleet.nodes[name]["docker"]:
            proc = run(fleet, name, "docker ps --format '{{.Names}}'", user=login)
            assert proc.returncode == 0, (name, proc.stderr)


@pytest.mark.parametrize("role", ROLES)
def test_member_toolchains(fleet, role):
    for name in nodes_of(fleet, role, member=True):
        member = fleet.nodes[name]["member"]
        node = run(fleet, name, "node --version && npm --version", user=member["login"])
        assert node.returncode == 0 and node.stdout.startswith("v"), (name, node.stderr)
        assert int(node.stdout[1:].split(".")[0]) >= 18, (name, node.stdout)
        venv = run(fleet, name, "python3 -m venv /tmp/venv-check && /tmp/venv-check/bin/pip --version"
                   " && rm -rf /tmp/venv-check", user=member["login"])
        assert venv.returncode == 0, (name, venv.stderr)
        tools = run(fleet, name, "git --version && curl --version && make --version && jq --version")
        assert tools.returncode == 0, (name, tools.stderr)
        email = run(fleet, name, "git config --global user.email", user=member["login"]).stdout.strip()
        assert email == (member["email"] or ""), (name, email)


@pytest.mark.parametrize("role", ROLES)
def test_app_checkout_and_env(fleet, role):
    names = [name for name in nodes_of(fleet, role)
             if run(fleet, name, "test -d %s/.git" % app_dir(fleet.nodes[name])).returncode == 0]
    if not names:
        pytest.skip("no node of role %s has the app checked out" % role)
    for name in names:
        node = fleet.nodes[name]
        owner = node["member"]["login"] if node["member"] else "root"
        app = app_dir(node)
        assert run(fleet, name, "stat -c %%U %s" % app).stdout.strip() == owner, name
        assert run(fleet, name, "stat -c '%%a %%U' %s/.env" % app).stdout.strip() == "600 %s" % owner, name
        # The generated secret is not the template's default (the value itself is never printed).
        weak = run(fleet, name, "grep -qxE 'JWT_SECRET=(changeme|secret|.{0,31})' %s/.env" % app)
        assert weak.returncode == 1, "%s: JWT_SECRET in %s/.env is a default or short" % (name, app)


@pytest.mark.parametrize("role", sorted(FIXTURE_ROLES))
def test_fixture_app_serves_health_and_metrics(fleet, role):
    names = [name for name in nodes_of(fleet, role, docker=True) if fixture_containers(fleet, name)]
    if not names:
        pytest.skip("the fixture app does not run on role %s here" % role)
    for name in names:
        status = ""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status = run(fleet, name, "docker inspect --format '{{.State.Health.Status}}' "
                         "$(docker ps -q --filter label=%s "
                         "--filter label=com.docker.compose.service=backend-api)" % PROJECT_LABEL).stdout.strip()
            if status == "healthy":
                break
            time.sleep(3)
        assert status == "healthy", (name, status)
        health = http_get(fleet, name, "http://127.0.0.1:8000/health")
        assert health.stdout.strip() == "ok", (name, health.stdout, health.stderr)
        metrics = http_get(fleet, name, "http://127.0.0.1:8000/metrics").stdout
        assert re.search(r"^app_requests_total\{[^}]*\} \d+$", metrics, re.M), (name, metrics)
        assert re.search(r"^app_jwt_secret_ok 1$", metrics, re.M), (name, metrics)
        assert "fleet-app" in http_get(fleet, name, "http://127.0.0.1:8080/").stdout, name


def test_fixture_healthcheck_rule(fleet):
    """The backend image's HEALTHCHECK fails for a known default or a short secret, passes otherwise."""
    names = [name for name, node in sorted(fleet.nodes.items()) if node["docker"]
             and run(fleet, name, "docker image inspect fleet/backend-api:local >/dev/null 2>&1").returncode == 0]
    if not names:
        pytest.skip("no node has the fixture's backend image")
    check = ("docker run --rm -e JWT_SECRET=%s fleet/backend-api:local "
             "sh -c 'httpd -p 8000 -h /www && sleep 0.3 && sh /bin/healthcheck'")
    cases = {"changeme": "known default", "Secret": "known default", "x" * 31: "shorter than 32 bytes",
             "''": "not set", "a1" * 32: None}
    for value, reason in cases.items():
        proc = run(fleet, names[0], check % value)
        if reason is None:
            assert proc.returncode == 0 and proc.stdout.strip() == "ok", (value, proc.stdout, proc.stderr)
        else:
            assert proc.returncode == 1 and reason in proc.stdout, (value, proc.stdout, proc.stderr)


def test_check_mode_changes_nothing(fleet):
    result = playbook(fleet, "--check", "--diff")
    assert result.rc == 0, result.out[-4000:]
    changed = {host: counts["changed"] for host, counts in result.recap.items() if counts["changed"]}
    assert changed == {}, result.out[-6000:]


def test_rerun_changes_nothing_and_keeps_a_hand_edited_env(fleet, may_write):
    if not may_write:
        pytest.skip("existing fleet: set FLEET_VERIFY_WRITE=1 to re-run the node layer and edit .env files")
    members = [name for name, node in sorted(fleet.nodes.items()) if node["member"]
               and run(fleet, name, "test -f %s/.env" % app_dir(node)).returncode == 0]
    marker = "# edited-by-hand-test-nodes-%d" % os.getpid()
    digests = {}
    for name in members:
        env = "%s/.env" % app_dir(fleet.nodes[name])
        proc = fleet.exec(name, "echo '%s' >> %s" % (marker, env), user=fleet.nodes[name]["member"]["login"])
        assert proc.returncode == 0 or LXD_EXEC_FLAKE in proc.stderr, (name, proc.stderr)
        digests[name] = run(fleet, name, "sha256sum %s" % env).stdout.split()[0]
        assert marker in run(fleet, name, "tail -n 1 %s" % env).stdout, name
    try:
        result = playbook(fleet)
        assert result.rc == 0, result.out[-4000:]
        changed = {host: counts["changed"] for host, counts in result.recap.items() if counts["changed"]}
        assert changed == {}, result.out[-6000:]
        for name in members:
            env = "%s/.env" % app_dir(fleet.nodes[name])
            assert run(fleet, name, "sha256sum %s" % env).stdout.split()[0] == digests[name], name
    finally:
        for name in members:  # as the member: sed -i keeps the file's owner and mode
            run(fleet, name, "sed -i '/^%s$/d' %s/.env" % (marker, app_dir(fleet.nodes[name])),
                user=fleet.nodes[name]["member"]["login"])
