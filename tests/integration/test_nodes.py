"""The node layer from the inside: Docker, the member's account and toolchains, the app checkout.

testinfra hosts reached by SSH at the nodes' addresses, as the playbooks reach them.
By default these tests use the session fleets of the integration conftest (`lab`: project fleet-test
on the lab's daemon, and `other_lab`: fleet-test-other on the other daemon, both converged with
site.yml). Pointed at an existing fleet they only look, never converge
or delete anything, and run the node layer in check mode instead of for real:

    FLEET_INVENTORY=inventories/production .venv/bin/python -m pytest tests/integration/test_nodes.py

(run where the controller's SSH key reaches the nodes). FLEET_VERIFY_WRITE=1 also allows
the tests that write: a marker line in each member's .env (removed afterwards) and a real re-run
of playbooks/nodes.yml.
"""

from __future__ import annotations

import json
import os
import re

import pytest
from conftest import INVENTORY, INVENTORY_OTHER, REPO, Fleet, eventually, inventory_nodes

pytestmark = pytest.mark.integration

PROJECT_LABEL = "com.docker.compose.project=fleet-app"


def _existing_inventory(_config):
    return os.environ.get("FLEET_INVENTORY")


# Which nodes each kind of test runs on; a test is generated per node of each fleet (its id: role:node),
# so none is skipped for a role a fleet lacks.
NODE_KINDS = {
    "docker_node": lambda node: node["docker"],
    "member_node": lambda node: bool(node["member"]),
    "fixture_node": lambda node: node["fixture"],
    "app_node": lambda node: bool(node["member"]) or node["fixture"],
}


def _fleets(config):
    """(the fleet's fixture, its inventory) of every fleet the tests look at."""
    existing = _existing_inventory(config)
    if existing:
        return [("existing", REPO / existing)]
    return [("lab", INVENTORY), ("other_lab", INVENTORY_OTHER)]


def pytest_generate_tests(metafunc):
    if "fleet" not in metafunc.fixturenames:
        return
    kind = next((kind for kind in NODE_KINDS if kind in metafunc.fixturenames), None)
    if kind is None:
        # Re-runs of the node layer do not depend on the daemon: on the first fleet only.
        source = _fleets(metafunc.config)[0][0]
        metafunc.parametrize("fleet", [source], ids=[source], indirect=True, scope="session")
        return
    params, ids = [], []
    for source, inventory in _fleets(metafunc.config):
        nodes = inventory_nodes(str(inventory))
        for name in sorted(name for name, node in nodes.items() if NODE_KINDS[kind](node)):
            params.append((source, name))
            ids.append("%s:%s" % (nodes[name]["role"], name))
    metafunc.parametrize(["fleet", kind], params, ids=ids, indirect=["fleet"], scope="session")


@pytest.fixture(scope="session")
def fleet(request):
    if request.param == "existing":
        return Fleet(REPO / _existing_inventory(request.config))
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def may_write(request):
    return not _existing_inventory(request.config) or os.environ.get("FLEET_VERIFY_WRITE") == "1"


def playbook(fleet, *args):
    return fleet.playbook("playbooks/nodes.yml", *args)


def as_member(host, login, cmd):
    """Run cmd in a login shell of the member (their groups, HOME and PATH)."""
    return host.run("su - %s -c %s", login, cmd)


def http_get(host, url):
    """GET url from inside the node with its python3 (curl is only on members' nodes)."""
    return host.run("python3 -c %s %s", "import sys, urllib.request; "
                    "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())", url)


def fixture_containers(host):
    return host.run("docker ps -q --filter label=%s", PROJECT_LABEL).stdout.split()


def test_docker_engine_runs(fleet, docker_node):
    host = fleet.host(docker_node)
    docker = host.service("docker")
    assert docker.is_running and docker.is_enabled
    assert host.check_output("docker info --format '{{.LoggingDriver}}'") == "json-file"
    daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert daemon["log-opts"] == {"max-size": "10m", "max-file": "3"}, daemon


def test_compose_command_answers(fleet, docker_node):
    proc = fleet.host(docker_node).run("docker-compose version --short 2>/dev/null || docker compose version --short")
    assert proc.rc == 0 and re.match(r"^v?\d+\.\d+", proc.stdout.strip()), (proc.stdout, proc.stderr)


def test_limited_container_runs_from_local_image(fleet, fixture_node):
    # fleet/base:local is built on the node by the fixture app; --cpus needs a writable cgroup in
    # the node (raw.lxc lxc.mount.auto=cgroup:mixed:force). The limits are read as the kernel
    # enforces them, cgroup v2 or v1 (this machine's host is v1).
    limits = ("if [ -f /sys/fs/cgroup/cpu.max ]; then cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/memory.max; "
              "else cd /sys/fs/cgroup && cat cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us memory/memory.limit_in_bytes; fi")
    proc = fleet.host(fixture_node).run("docker run --rm --cpus 0.5 -m 64m fleet/base:local sh -c %s", limits)
    assert proc.rc == 0, proc.stderr
    assert proc.stdout.split() == ["50000", "100000", str(64 * 1024 * 1024)], proc.stdout


def test_containers_rotate_their_logs(fleet, fixture_node):
    host = fleet.host(fixture_node)
    containers = fixture_containers(host)
    assert containers, "the fixture app runs no container"
    for container in containers:
        log = json.loads(host.check_output("docker inspect --format '{{json .HostConfig.LogConfig}}' %s", container))
        assert log == {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}, (container, log)


def test_member_account_and_docker_without_sudo(fleet, member_node):
    host = fleet.host(member_node)
    login = fleet.nodes[member_node]["member"]["login"]
    user = host.user(login)
    assert user.exists and user.shell == "/bin/bash"
    sudoers = host.file("/etc/sudoers.d/%s" % login)
    assert sudoers.exists, "%s has no sudoers entry" % login
    assert sudoers.mode == 0o440 and host.run("visudo -cf %s", sudoers.path).rc == 0
    if fleet.nodes[member_node]["docker"]:
        assert "docker" in user.groups
        proc = as_member(host, login, "docker ps --format '{{.Names}}'")
        assert proc.rc == 0, proc.stderr


def test_member_toolchains(fleet, member_node):
    host = fleet.host(member_node)
    member = fleet.nodes[member_node]["member"]
    node = as_member(host, member["login"], "node --version && npm --version")
    assert node.rc == 0 and node.stdout.startswith("v"), node.stderr
    assert int(node.stdout[1:].split(".")[0]) >= 18, node.stdout
    venv = as_member(host, member["login"], "python3 -m venv /tmp/venv-check && /tmp/venv-check/bin/pip --version"
                     " && rm -rf /tmp/venv-check")
    assert venv.rc == 0, venv.stderr
    for package in ("git", "curl", "make", "jq"):
        assert host.package(package).is_installed, package
    email = as_member(host, member["login"], "git config --global user.email").stdout.strip()
    assert email == (member["email"] or ""), email


def test_app_checkout_and_env(fleet, app_node):
    host = fleet.host(app_node)
    node = fleet.nodes[app_node]
    owner = node["member"]["login"] if node["member"] else "root"
    app = node["app_dir"]
    assert host.file("%s/.git" % app).is_directory, "%s is not a checkout" % app
    assert host.file(app).user == owner
    env = host.file("%s/.env" % app)
    assert (env.mode, env.user) == (0o600, owner)
    # The generated secret is not the template's default (the value itself is never printed).
    weak = host.run("grep -qxE 'JWT_SECRET=(changeme|secret|.{0,31})' %s", env.path)
    assert weak.rc == 1, "JWT_SECRET in %s is a default or short" % env.path


def test_lab_fixture_app_serves_health_and_metrics(fleet, fixture_node):
    host = fleet.host(fixture_node)

    def backend_health():
        return host.run("docker inspect --format '{{.State.Health.Status}}' "
                        "$(docker ps -q --filter label=%s --filter label=com.docker.compose.service=backend-api)",
                        PROJECT_LABEL).stdout.strip()

    status = eventually(backend_health, "healthy", timeout=90)
    assert status == "healthy", status
    health = http_get(host, "http://127.0.0.1:8000/health")
    assert health.stdout.strip() == "ok", (health.stdout, health.stderr)
    metrics = http_get(host, "http://127.0.0.1:8000/metrics").stdout
    assert re.search(r"^app_requests_total\{[^}]*\} \d+$", metrics, re.M), metrics
    assert re.search(r"^app_jwt_secret_ok 1$", metrics, re.M), metrics
    assert "fleet-app" in http_get(host, "http://127.0.0.1:8080/").stdout


def test_fixture_healthcheck_rule(fleet, fixture_node):
    """The backend image's HEALTHCHECK fails for a known default or a short secret, passes otherwise."""
    host = fleet.host(fixture_node)
    check = "httpd -p 8000 -h /www && sleep 0.3 && sh /bin/healthcheck"
    cases = {"changeme": "known default", "Secret": "known default", "x" * 31: "shorter than 32 bytes",
             "": "not set", "a1" * 32: None}
    for value, reason in cases.items():
        proc = host.run("docker run --rm -e JWT_SECRET=%s fleet/backend-api:local sh -c %s", value, check)
        if reason is None:
            assert proc.rc == 0 and proc.stdout.strip() == "ok", (value, proc.stdout, proc.stderr)
        else:
            assert proc.rc == 1 and reason in proc.stdout, (value, proc.stdout, proc.stderr)


def test_check_mode_changes_nothing(fleet):
    result = playbook(fleet, "--check", "--diff")
    assert result.rc == 0, str(result)
    assert result.changed_hosts() == {}, str(result)


def test_rerun_changes_nothing_and_keeps_a_hand_edited_env(fleet, may_write):
    if not may_write:
        pytest.skip("existing fleet: set FLEET_VERIFY_WRITE=1 to re-run the node layer and edit .env files")
    hosts = {name: fleet.host(name) for name, node in sorted(fleet.nodes.items()) if node["member"]}
    envs = {name: hosts[name].file("%s/.env" % fleet.nodes[name]["app_dir"]) for name in hosts}
    envs = {name: env for name, env in envs.items() if env.exists}
    assert envs, "no member's node has an app checkout with a .env"
    marker = "# edited-by-hand-test-nodes-%d" % os.getpid()
    digests = {}
    for name, env in envs.items():
        # As the member (the file keeps its owner and mode), once.
        proc = as_member(hosts[name], fleet.nodes[name]["member"]["login"],
                         "grep -qxF '%s' %s || echo '%s' >> %s" % (marker, env.path, marker, env.path))
        assert proc.rc == 0, (name, proc.stderr)
        assert env.content_string.splitlines()[-1] == marker, name
        digests[name] = env.sha256sum
    try:
        result = playbook(fleet)
        assert result.rc == 0, str(result)
        assert result.changed_hosts() == {}, str(result)
        assert {name: env.sha256sum for name, env in envs.items()} == digests
    finally:
        for name, env in envs.items():
            as_member(hosts[name], fleet.nodes[name]["member"]["login"], "sed -i '/^%s$/d' %s" % (marker, env.path))


def test_rerun_puts_back_node_files_edited_by_hand(fleet, may_write, request):
    """Drift: on one node that has a member and Docker, the apt proxy file, the member's sudoers
    entry and Docker's daemon.json are edited by hand (each edit keeps the file valid); a re-run of
    playbooks/nodes.yml puts each back as it was (content, mode, owner) and changes no other node.
    On an existing fleet daemon.json is left alone: putting it back restarts Docker and every
    container of that node."""
    if not may_write:
        pytest.skip("existing fleet: set FLEET_VERIFY_WRITE=1 to edit node files and re-run the node layer")
    names = [name for name, node in sorted(fleet.nodes.items()) if node["member"] and node["docker"]]
    if not names:
        pytest.skip("no node has both a member and Docker")
    name = names[0]
    host = fleet.host(name)
    login = fleet.nodes[name]["member"]["login"]
    edits = {
        "/etc/apt/apt.conf.d/01adelie-fleet-proxy": "echo '// edited by hand' >> %s",
        "/etc/sudoers.d/%s" % login: "echo '# edited by hand' >> %s",
    }
    if not _existing_inventory(request.config):
        edits["/etc/docker/daemon.json"] = """sed -i 's/"max-file": "3"/"max-file": "9"/' %s"""
    files = {path: host.file(path) for path in edits}
    before = {path: (f.sha256sum, f.mode, f.user, f.group) for path, f in files.items()}
    # Copies outside the edited directories: apt and sudo read every file of theirs.
    backup = "/root/drift-test-%d" % os.getpid()
    assert host.run("mkdir -p %s", backup).rc == 0
    try:
        for path, edit in edits.items():
            assert host.run("cp -p %s %s/", path, backup).rc == 0, path
            proc = host.run(edit, path)
            assert proc.rc == 0 and files[path].sha256sum != before[path][0], (path, proc.stderr)
        result = playbook(fleet)
        assert result.rc == 0, str(result)
        assert set(result.changed_hosts()) == {name}, str(result)
        after = {path: (f.sha256sum, f.mode, f.user, f.group) for path, f in files.items()}
        assert after == before
        assert host.run("visudo -cf /etc/sudoers.d/%s", login).rc == 0
        if "/etc/docker/daemon.json" in edits:
            assert eventually(lambda: host.service("docker").is_running, True), "docker did not come back"
    finally:
        for path, f in files.items():
            if f.sha256sum != before[path][0]:
                host.run("cp -p %s/%s %s", backup, os.path.basename(path), path)
        host.run("rm -rf %s", backup)
