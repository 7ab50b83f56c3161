# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the health sweep reaches things: a node over SSH, a node's port from the LXD host, and LXD (or Incus).

Standard library only (bench/health_sweep.py runs the sweep without Ansible).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile

from ansible_collections.adelie.fleet.plugins.module_utils.backend import backend

__metaclass__ = type

DEFAULT_SSH_ARGS = (
    "-o", "BatchMode=yes", "-o", "ControlMaster=auto", "-o", "ControlPersist=120s",
    "-o", "ControlPath=/tmp/adelie-fleet-cp/health-%C", "-o", "ServerAliveInterval=5",
    "-o", "ServerAliveCountMax=3", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
)


def run_local(argv, timeout, stdin=None):
    """(rc, stdout, stderr) of a command on this host; rc 124 when it timed out, 127 when missing."""
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return 124, "", "%s timed out after %s s" % (argv[0], timeout)
    except OSError as error:
        return 127, "", "%s: %s" % (argv[0], error)
    return proc.returncode, proc.stdout, proc.stderr


class SshTransport:
    """Runs a command on a node over SSH (one ControlMaster per node, reused by the repairs), and
    tries a node's TCP port from here: a service must answer on the bridge, where its users reach it."""

    def __init__(self, options):
        self.options = options
        for arg in options["ssh_args"]:
            if arg.startswith("ControlPath="):
                os.makedirs(os.path.dirname(arg.split("=", 1)[1]), mode=0o700, exist_ok=True)

    def argv(self, node, command):
        argv = ["ssh"] + list(self.options["ssh_args"]) + ["-o", "ConnectTimeout=%d" % self.options["connect_timeout"]]
        if self.options.get("ssh_key"):
            argv += ["-i", os.path.expanduser(self.options["ssh_key"])]
        return argv + ["-l", self.options["ssh_user"], node["ipv4"], command]

    def run(self, node, command, stdin=None, timeout=None):
        timeout = timeout or self.options["timeout"]
        # stderr to a file: a ControlPersist master started by this call keeps its stderr open.
        with tempfile.TemporaryFile() as errors:
            try:
                proc = subprocess.Popen(self.argv(node, command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=errors)
            except OSError as error:
                return 127, "", "ssh: %s" % error
            try:
                out, _err = proc.communicate(stdin.encode() if stdin is not None else None, timeout=timeout)
                rc = proc.returncode
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _err = proc.communicate()
                rc = 124
            errors.seek(0)
            err = errors.read().decode("utf-8", "replace")
        return rc, out.decode("utf-8", "replace"), err if rc != 124 else "no answer within %s s" % timeout

    def port_open(self, node, port, timeout=2.0):
        """True when a TCP connection to the node's fleet address and ``port`` is accepted."""
        try:
            with socket.create_connection((node["ipv4"], int(port)), timeout=timeout):
                return True
        except OSError:
            return False


class LxdHost:
    """The daemon's side, through its REST API (``<cli> query``, the client of options["backend"]):
    instances' states, disk use, state actions."""

    def __init__(self, options, runner=run_local):
        self.project = options["project"]
        self.timeout = options["timeout"]
        self.cli = backend(options["backend"])["cli"]
        self.runner = runner

    def _query(self, path, method="GET", data=None, timeout=None):
        sep = "&" if "?" in path else "?"
        argv = [self.cli, "query"]
        if method != "GET":
            # --wait: the answer comes when LXD's operation has ended (its error included).
            argv += ["-X", method, "--wait", "-d", json.dumps(data)]
        rc, out, err = self.runner(argv + ["%s%sproject=%s" % (path, sep, self.project)], timeout or self.timeout)
        if rc != 0:
            raise RuntimeError((err or out).strip()[:300] or "%s query exited %d" % (self.cli, rc))
        return json.loads(out) if out.strip() else None

    def instances(self):
        """name -> status ("Running", "Stopped", "Frozen", ...)."""
        # Incus prints nothing for an empty list (LXD prints []).
        return {item["name"]: item.get("status") for item in self._query("/1.0/instances?recursion=1") or []}

    def status(self, name):
        """The container's status now, or None when LXD cannot say."""
        try:
            return (self._query("/1.0/instances/%s/state" % name) or {}).get("status")
        except (RuntimeError, ValueError):
            return None

    def disk_usage(self):
        """name -> bytes used on the root disk (LXD's state: the quota group, what the quota limits)."""
        usage = {}
        for item in self._query("/1.0/instances?recursion=2") or []:
            root = ((item.get("state") or {}).get("disk") or {}).get("root") or {}
            if "usage" in root:
                usage[item["name"]] = int(root["usage"])
        return usage

    def action(self, name, action):
        """(ok, message) of a state action of the API: ``start`` a stopped container, ``unfreeze`` a
        frozen one (LXD's client has no unfreeze command; the API has no resume)."""
        try:
            self._query("/1.0/instances/%s/state" % name, "PUT", {"action": action, "timeout": 30},
                        timeout=max(self.timeout, 60))
        except (RuntimeError, ValueError) as error:
            return False, str(error)
        return True, ""


def action_command(project, name, action, backend_name=None):
    """What LxdHost.action runs (with the client of ``backend_name``, default LXD's), as the reports show it."""
    return "%s query -X PUT --wait -d '{\"action\": \"%s\"}' /1.0/instances/%s/state?project=%s" % (
        backend(backend_name)["cli"], action, name, project)
