"""Real fleets for the integration tests, each made once per session in its own project.

`lab` converges tests/integration/inventory with site.yml (host, image, containers, node layer) on the
lab's daemon; `other_lab` converges tests/integration/inventory_other, a smaller fleet, on the other
daemon (Incus beside an LXD lab); `each_lab` runs a core test on both. Each fixture removes its project's
containers, profiles and the project afterwards, also on failure. FLEET_TEST_KEEP=1 keeps the fleets.

Each Fleet talks to its own daemon (its inventory's fleet_backend): Fleet.cli is that daemon's client
command from the backend map (module_utils/backend.py, carried by the fleet model), and Fleet.client and
Fleet.client_json run it.
"""
from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import playbook_run
import pytest
import testinfra
from playbook_run import BIN, REPO

INVENTORY = Path(__file__).resolve().parent / "inventory"
# The second test fleet, on the daemon the lab does not run (Incus beside an LXD lab): the core tests
# run on both (each_lab).
INVENTORY_OTHER = Path(__file__).resolve().parent / "inventory_other"
# The LXD host's bridge address, where the webhook stand-in listens (the test inventory's
# alertmanager_discord_webhook_url and nightly_webhook_url point there).
GATEWAY = "10.10.10.1"
RECEIVER_PORT = 18099
# Seconds before a test's command that never answers fails the test (never a hang of the suite).
EXEC_TIMEOUT = 300
# The tests reach the nodes as the playbooks do: SSH over the bridge as root with the controller's
# key (inventories/*/group_vars/fleet.yml), one connection per node kept open.
SSH_OPTIONS = ("-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
               "-o ConnectTimeout=10 -o ServerAliveInterval=15 -o ServerAliveCountMax=4")

pytestmark = pytest.mark.integration


def run_playbook(playbook, *args, inventory=INVENTORY, env=None):
    return playbook_run.run_playbook(playbook, *args, inventory=inventory, env=env)


def eventually(read, wanted, timeout=30, interval=1):
    """Call read until it returns wanted or timeout seconds pass; returns the last value read."""
    deadline = time.monotonic() + timeout
    value = read()
    while value != wanted and time.monotonic() < deadline:
        time.sleep(interval)
        value = read()
    return value


def _name(url):
    """The last path element of an API URL such as /1.0/instances/ft-dev1?project=fleet-test."""
    return url.split("?", 1)[0].rsplit("/", 1)[-1]


def _ansible(inventory, pattern, module, args=""):
    """`ansible -o` that never connects to a node (fleet_model and debug run on the controller)."""
    out = subprocess.run([str(BIN / "ansible"), "-i", str(inventory), pattern, "-m", module, "-a", args, "-o"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return {line.split(" | ", 1)[0]: json.loads(line.split("=>", 1)[1]) for line in out.splitlines() if "=>" in line}


@functools.lru_cache(maxsize=None)
def inventory_model(inventory):
    """The inventory's fleet model (its nodes, project, backend, ...), its nodes each with `fixture`:
    whether the lab's fixture app runs there, and `key`: the controller's SSH key. Read from the
    inventory alone (no LXD), so tests can be generated per node. The model is playbooks/model.yml's:
    without arguments, adelie.fleet.fleet_model reads the inventory's variables as model.yml has it do
    (minus the host's size)."""
    model = _ansible(inventory, "localhost", "adelie.fleet.fleet_model")["localhost"]["fleet"]
    nodes = model["nodes"]
    settings = _ansible(inventory, "fleet", "ansible.builtin.debug",
                        "msg={{ {'roles': lab_fixture_app_node_roles | default([]), 'key': fleet_ssh_key_file} }}")
    for name, node in nodes.items():
        node["fixture"] = node["docker"] and node["role"] in settings[name]["msg"]["roles"]
        node["key"] = os.path.expanduser(settings[name]["msg"]["key"])
    return model


def inventory_nodes(inventory):
    """The nodes of inventory_model."""
    return inventory_model(inventory)["nodes"]


class Fleet:
    """A fleet of an inventory, reached by SSH at the nodes' addresses and through its daemon's client."""

    def __init__(self, inventory=INVENTORY, project=None):
        self.inventory = Path(inventory)
        model = inventory_model(str(self.inventory))
        self.nodes = model["nodes"]
        # The fleet's LXD project: the model's (every node carries it).
        self.project = project or next(iter(self.nodes.values()))["project"]
        # Its daemon's client command and data directory: the model's entry of the backend map.
        self.cli = model["backend"]["cli"]
        self.var_dir = model["backend"]["var_dir"]

    def client(self, *args, check=True):
        """The daemon's client with args (e.g. "stop", "--force", "--project", project, node)."""
        return subprocess.run([self.cli, *args], capture_output=True, text=True, check=check)

    def client_json(self, path, project=None):
        """The REST API's answer at path in project (default: the fleet's), or None when it is an error."""
        sep = "&" if "?" in path else "?"
        proc = self.client("query", "%s%sproject=%s" % (path, sep, project or self.project), check=False)
        # Incus prints nothing for an empty list (LXD prints []).
        return json.loads(proc.stdout or "[]") if proc.returncode == 0 else None

    def remove_project(self):
        """Delete everything the tests made in the fleet's project, then the project."""
        project = self.project
        if self.client("project", "show", project, check=False).returncode != 0:
            return
        for url in self.client_json("/1.0/instances") or []:
            self.client("delete", "--force", "--project", project, _name(url), check=False)
        for url in self.client_json("/1.0/profiles") or []:
            name = _name(url)
            if name != "default":
                self.client("profile", "delete", "--project", project, name, check=False)
        # Custom volumes (the backups'): LXD 5.0 deletes a project without them but leaves their subvolume.
        for pool in (_name(url) for url in self.client_json("/1.0/storage-pools") or []):
            for url in self.client_json("/1.0/storage-pools/%s/volumes/custom" % pool) or []:
                self.client("storage", "volume", "delete", pool, _name(url), "--project", project, check=False)
        self.client("project", "delete", project, check=False)
        remove_host_files(project)

    def first(self, role=None, cpu=0):
        """The first node (by name) of a role, or with at least cpu CPUs: tests pick theirs by kind."""
        return next(name for name, node in sorted(self.nodes.items())
                    if role in (None, node["role"]) and node["cpu"] >= cpu)

    def playbook(self, playbook, *args, **kwargs):
        kwargs.setdefault("inventory", self.inventory)
        return run_playbook(playbook, *args, **kwargs)

    def exec(self, node, cmd, user=None, check=False):
        """Run cmd in the node as root (or as user, through su) by SSH."""
        command = ["ssh", *SSH_OPTIONS.split(), "-o", "ControlMaster=auto", "-o", "ControlPersist=60",
                   "-o", "ControlPath=/tmp/adelie-fleet-cp/test-%C", "-i", self.key, "root@" + self.address(node)]
        # ssh hands its words to the remote shell: cmd as it is, or quoted once for su.
        command += ["su", "-", user, "-c", shlex.quote(cmd)] if user else [cmd]
        os.makedirs("/tmp/adelie-fleet-cp", exist_ok=True)
        try:
            proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=EXEC_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc = subprocess.CompletedProcess(command, 124, "", "%s: no answer in %d s" % (node, EXEC_TIMEOUT))
        if check:
            proc.check_returncode()
        return proc

    def config(self, node):
        return self.client_json("/1.0/instances/%s" % node)

    def host(self, node):
        """The node as a testinfra host (its ssh backend)."""
        return testinfra.get_host("ssh://root@" + self.address(node), ssh_identity_file=self.key,
                                  ssh_extra_args=SSH_OPTIONS, timeout=EXEC_TIMEOUT)

    @property
    def key(self):
        return next(iter(self.nodes.values()))["key"]

    @property
    def monitoring_node(self):
        return next(name for name, node in self.nodes.items() if node["role"] == "infra")

    def api(self, path, port=9090, **params):
        """GET a JSON API of the monitoring node: Prometheus's (9090) or Alertmanager's (9093)."""
        url = "http://%s:%d%s" % (self.address(self.monitoring_node), port, path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (the test fleet's own address)
            return json.load(response)

    def query(self, expr):
        """A PromQL instant query's result vector."""
        return self.api("/api/v1/query", query=expr)["data"]["result"]

    def target_health(self, job, node=None):
        """{node label: health} of Prometheus's targets of a job."""
        return {t["labels"].get("node"): t["health"] for t in self.api("/api/v1/targets")["data"]["activeTargets"]
                if t["labels"]["job"] == job and (node is None or t["labels"].get("node") == node)}

    def disk_used(self, node):
        """The container's root-disk use as LXD reports it (its btrfs quota group). btrfs updates quota
        groups at its commits, and gives a deleted file's space back only then (45 s after an rm here):
        the node's pool, mounted on the host, is committed first."""
        pool = "%s/storage-pools/%s" % (self.var_dir, self.nodes[node]["pool"])
        subprocess.run(["btrfs", "filesystem", "sync", pool], capture_output=True, check=True)
        return int(self.client_json("/1.0/instances/%s/state" % node)["disk"]["root"]["usage"])

    def address(self, node):
        """The node's address: from the inventory, or for a node a test added (onboarding), from LXD."""
        if node in self.nodes:
            return self.nodes[node]["ipv4"]
        state = self.client_json("/1.0/instances/%s/state" % node) or {}
        addresses = state.get("network", {}).get("eth0", {}).get("addresses", [])
        return next(a["address"] for a in addresses if a["family"] == "inet")


# What the lxd_metrics role leaves per project on the host (roles/lxd_metrics/vars/main.yml): its textfiles, and
# where PID 1 is not systemd, the disk-use publisher with its pid file.
TEXTFILE_DIR = Path("/var/lib/prometheus/node-exporter")
PUBLISHER_PID_FILE = "/run/adelie-fleet-disk-usage-%s.pid"


def remove_host_files(project):
    """The removed project's publisher stopped and its textfiles deleted: the lab's Prometheus, which scrapes
    the host's node-exporter, keeps no series of a test fleet that is gone."""
    pid_file = Path(PUBLISHER_PID_FILE % project)
    if pid_file.exists():
        pid = int(pid_file.read_text().strip() or 0)
        cmdline = Path("/proc/%d/cmdline" % pid)
        # Only the publisher this pid file names (a pid can be reused).
        if pid and cmdline.exists() and ("\0%s\0" % project).encode() in cmdline.read_bytes():
            os.kill(pid, signal.SIGTERM)
        pid_file.unlink()
    for name in ("adelie_fleet_quota_%s.prom", "adelie_fleet_disk_usage_%s.prom"):
        (TEXTFILE_DIR / (name % project)).unlink(missing_ok=True)


def converged(inventory):
    """The fleet of an inventory converged by site.yml; its project removed afterwards, also on failure."""
    # The inventory alone (no daemon needed) names the fleet's daemon and project.
    fleet = Fleet(inventory)
    try:
        # On a bare machine the first converge installs the daemon itself: nothing to clean before it.
        # A fleet kept by FLEET_TEST_KEEP=1 is converged again instead of rebuilt.
        if shutil.which(fleet.cli) and not os.environ.get("FLEET_TEST_KEEP"):
            fleet.remove_project()
        result = fleet.playbook("site.yml")
        assert result.rc == 0, str(result)
        yield fleet
    finally:
        if not os.environ.get("FLEET_TEST_KEEP"):
            fleet.remove_project()


@pytest.fixture(scope="session")
def lab():
    yield from converged(INVENTORY)


@pytest.fixture(scope="session")
def other_lab(lab):
    """After the lab: the host's shared services (apt cache, fixture repository) listen on its bridge."""
    yield from converged(INVENTORY_OTHER)


@pytest.fixture(scope="session", params=["lab", "other_lab"], ids=["lab_daemon", "other_daemon"])
def each_lab(request):
    """The core tests' fleet: the lab's daemon's, then the other daemon's (one run covers LXD and Incus)."""
    return request.getfixturevalue(request.param)


# A test, or one that shares an each_lab fixture with core tests, on one of the two fleets only: what
# does not depend on the daemon runs once (the suite's time stays within its budget).
ON_LAB_ONLY = pytest.mark.parametrize("each_lab", ["lab"], indirect=True, ids=["lab_daemon"])
ON_OTHER_ONLY = pytest.mark.parametrize("each_lab", ["other_lab"], indirect=True, ids=["other_daemon"])


class WebhookHandler(BaseHTTPRequestHandler):
    """Records every POST on its server: (arrival time, path, JSON body)."""

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.posts.append((time.time(), self.path, json.loads(body or b"{}")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
        pass


class Receiver(ThreadingHTTPServer):
    """A real HTTP listener on the host's bridge address standing in for the Discord/Slack webhook."""

    def __init__(self):
        self.posts = []
        super().__init__((GATEWAY, RECEIVER_PORT), WebhookHandler)


@pytest.fixture(scope="session")
def receiver(lab):
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
