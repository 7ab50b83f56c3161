"""A real LXD fleet for the integration tests, made once per session in its own LXD project.

`lab` converges tests/integration/inventory with site.yml (host, image, containers, node layer)
and removes the project's containers, profiles and the project afterwards, also on failure.
FLEET_TEST_KEEP=1 keeps the fleet for debugging.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INVENTORY = Path(__file__).resolve().parent / "inventory"
PROJECT = "fleet-test"
LXD_LOST_EXEC = "Failed to retrieve PID of executing child process"
BIN = Path(sys.executable).parent
_RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)

pytestmark = pytest.mark.integration


@dataclass
class Result:
    rc: int
    out: str
    seconds: float
    recap: dict = field(default_factory=dict)

    def changed_hosts(self):
        return {host: counts["changed"] for host, counts in self.recap.items() if counts["changed"]}

    def __str__(self):
        """For assertion messages: every failed task with its message, then the end of the output."""
        lines = self.out.splitlines()
        failed = [" / ".join(lines[i:i + 3]) for i, line in enumerate(lines)
                  if line.startswith(("fatal:", "failed:")) or "FAILED!" in line]
        return "\n".join(failed[:20] + ["..."] + lines[-40:])


def run_playbook(playbook, *args, inventory=INVENTORY, env=None):
    """ansible-playbook from the checkout; returns rc, the whole output and the parsed recap."""
    started = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(REPO / playbook), *args],
        cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", **(env or {})}, check=False)
    out = proc.stdout + proc.stderr
    recap = {m[0]: {"ok": int(m[1]), "changed": int(m[2]), "unreachable": int(m[3]), "failed": int(m[4])}
             for m in _RECAP.findall(out)}
    return Result(proc.returncode, out, time.monotonic() - started, recap)


def lxc(*args, check=True):
    return subprocess.run(["lxc", *args], capture_output=True, text=True, check=check)


def lxc_json(path, project=PROJECT):
    sep = "&" if "?" in path else "?"
    proc = lxc("query", "%s%sproject=%s" % (path, sep, project), check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def _name(url):
    """The last path element of an API URL such as /1.0/instances/ft-dev1?project=fleet-test."""
    return url.split("?", 1)[0].rsplit("/", 1)[-1]


def remove_project(project=PROJECT):
    """Delete everything the tests made in their project, then the project."""
    if lxc("project", "show", project, check=False).returncode != 0:
        return
    for url in lxc_json("/1.0/instances", project) or []:
        lxc("delete", "--force", "--project", project, _name(url), check=False)
    for url in lxc_json("/1.0/profiles", project) or []:
        name = _name(url)
        if name != "default":
            lxc("profile", "delete", "--project", project, name, check=False)
    lxc("project", "delete", project, check=False)


class Lab:
    project = PROJECT
    inventory = INVENTORY

    def __init__(self, first_run):
        self.first_run = first_run
        model = subprocess.run(
            [str(BIN / "ansible"), "-i", str(INVENTORY), "localhost", "-m", "adelie.fleet.fleet_model", "-a",
             '{"roles": "{{ fleet_roles }}", "network": "{{ fleet_network }}", "pools": "{{ fleet_pools }}"}',
             "-o"], cwd=REPO, capture_output=True, text=True, check=True).stdout
        self.model = json.loads(model.split("=>", 1)[1])["fleet"]
        self.nodes = self.model["nodes"]

    def playbook(self, playbook, *args, **kwargs):
        return run_playbook(playbook, *args, **kwargs)

    def exec(self, node, cmd, user=None, check=False):
        """Run cmd in the node. LXD 5.0.2 sometimes loses an exec's output and status (the command
        did run, see plugins/connection/lxd.py): the tests' commands are safe to run again."""
        command = ["su", "-", user, "-c", cmd] if user else ["sh", "-c", cmd]
        for attempt in range(4):
            proc = subprocess.run(["lxc", "exec", "--project", self.project, node, "--", *command],
                                  capture_output=True, text=True, check=False)
            if not (proc.returncode == 255 and LXD_LOST_EXEC in proc.stderr):
                break
            time.sleep(1 + attempt)
        if check:
            proc.check_returncode()
        return proc

    def config(self, node):
        return lxc_json("/1.0/instances/%s" % node)


@pytest.fixture(scope="session")
def lab():
    try:
        # On a bare machine the first converge installs LXD itself: nothing to clean before it.
        if Path("/usr/bin/lxc").exists():
            remove_project()
        result = run_playbook("site.yml")
        assert result.rc == 0, str(result)
        yield Lab(result)
    finally:
        if not os.environ.get("FLEET_TEST_KEEP"):
            remove_project()
