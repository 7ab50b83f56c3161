"""Stress a transport to the fleet's nodes: N commands spread over the nodes, one worker per node.

Each command echoes a marker of its own; an answer without it (or with a non-zero status) is a
lost output, a command with no answer within --timeout is a hang (killed, counted, the run goes on).
Prints one line per transport: commands, lost, hangs, seconds, commands per second.

Transports (--via):
  ssh   ssh root@<fleet_ipv4> echo <marker>   (multiplexed: one ControlMaster per node)
  cli   <cli> exec <node> -- echo <marker>    (the daemon's client, LXD's or Incus': output streamed over a websocket)
  rest  POST /1.0/instances/<node>/exec on the daemon's unix socket, record-output, read back the log file
  ansible  ansible.builtin.command echo <marker> as a loop in one play, under ansible.cfg's strategy
        (Mitogen's, or linear with pipelining): the transport the playbooks themselves run modules over

The daemon's client and socket are the inventory's backend's (bench/fleet_backend.py).

  python bench/transport.py -i inventories/lab --via ssh cli rest --commands 2000
  python bench/transport.py -i tests/integration/inventory --via ssh --json   (the integration test)
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from fleet_backend import inventory_backend

SSH_OPTIONS = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10", "-o", "ControlMaster=auto",
               "-o", "ControlPath=/tmp/adelie-fleet-cp/bench-%C", "-o", "ControlPersist=60"]


def fleet_nodes(inventory):
    """{node: {"ipv4", "project", "key", "cli", "socket"}} of the inventory's fleet group, from ansible-inventory
    (cli and socket: its daemon's, bench/fleet_backend.py)."""
    binary = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")
    data = json.loads(subprocess.run([binary, "-i", inventory, "--list"], capture_output=True, text=True,
                                     check=True).stdout)
    daemon = inventory_backend(inventory)
    hostvars = data["_meta"]["hostvars"]
    nodes = {}
    for group in data.get("fleet", {}).get("children", []):
        for name in data.get(group, {}).get("hosts", []):
            host = hostvars[name]
            nodes[name] = {"ipv4": host["fleet_ipv4"], "project": host.get("fleet_project", "default"),
                           "key": os.path.expanduser(host.get("fleet_ssh_key_file", "~/.ssh/adelie_fleet_ed25519")),
                           "cli": daemon["cli"], "socket": daemon["socket"]}
    return nodes


def command_for(via, name, node, marker):
    if via == "ssh":
        return ["ssh", *SSH_OPTIONS, "-i", node["key"], "root@" + node["ipv4"], "echo", marker]
    return [node["cli"], "exec", "--project", node["project"], name, "--", "echo", marker]


class LXDError(Exception):
    """An error answer of LXD's REST API (or a failed operation)."""


class LXDConnection(http.client.HTTPConnection):
    """HTTP to the daemon's REST API over its unix socket; the timeout bounds every socket operation."""

    def __init__(self, socket_path, timeout):
        super().__init__("lxd", timeout=timeout)
        self.socket_path = socket_path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)

    def call(self, method, path, project, body=None):
        """The answer's body (raw for a log file, the JSON's metadata otherwise); LXDError on an error."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self.request(method, "%s%sproject=%s" % (path, "&" if "?" in path else "?", project),
                     body=None if body is None else json.dumps(body), headers=headers)
        response = self.getresponse()
        data = response.read()
        if response.getheader("Content-Type", "").startswith("application/json"):
            answer = json.loads(data)
            if answer.get("error"):
                raise LXDError("%s %s: %s" % (method, path, answer["error"]))
            return answer["metadata"]
        if response.status >= 400:
            raise LXDError("%s %s: HTTP %d" % (method, path, response.status))
        return data


def delete_logs(lxd, name, project, operation, output):
    """Delete the exec's log files, or they pile up in the daemon's log directory: those the operation names
    (Incus keeps them under logs/exec-output/), else LXD's names for them (an exec that failed names none)."""
    urls = list(output.values()) if output else [
        "/1.0/instances/%s/logs/exec_%s.%s" % (name, operation, stream) for stream in ("stdout", "stderr")]
    for url in urls:
        try:
            lxd.call("DELETE", url, project)
        except LXDError as error:
            print("rest %s: %s" % (name, error), file=sys.stderr)


def rest_exec(lxd, name, project, marker, timeout):
    """(exit status, stdout) of `echo marker` through LXD's REST API; TimeoutError past the timeout.

    A candidate to replace the client's exec: the output is recorded by LXD in log files, not streamed over
    a websocket. The exec is an async operation: wait for it, read its stdout log, delete its logs.
    """
    deadline = time.monotonic() + timeout
    try:
        operation = lxd.call("POST", "/1.0/instances/%s/exec" % name, project, {
            "command": ["echo", marker], "record-output": True, "wait-for-websocket": False,
            "interactive": False, "environment": {}})
        wait = max(1, math.ceil(deadline - time.monotonic()))
        operation = lxd.call("GET", "/1.0/operations/%s/wait?timeout=%d" % (operation["id"], wait), project)
        result = operation["metadata"] or {}
        stdout = lxd.call("GET", result["output"]["1"], project).decode() if "output" in result else ""
        delete_logs(lxd, name, project, operation["id"], result.get("output"))  # whatever became of the exec
        if operation["status"] == "Running":
            raise TimeoutError("operation %s still running" % operation["id"])
        if operation["status"] != "Success":
            raise LXDError("operation %s: %s" % (operation["status"], operation["err"]))
        return result["return"], stdout
    except TimeoutError:
        lxd.close()  # a timed-out answer may still come: start over on a new connection
        raise
    except (OSError, http.client.HTTPException, LXDError) as error:
        lxd.close()
        print("rest %s: %s" % (name, error), file=sys.stderr)
        return -1, ""


def run_node(via, name, node, count, timeout):
    lost = hangs = 0
    # one connection per worker; the socket timeout (a margin over LXD's own wait) stops a stuck request
    lxd = LXDConnection(node["socket"], timeout + 5) if via == "rest" else None
    for index in range(count):
        marker = "adelie-%s-%d" % (name, index)
        try:
            if lxd:
                returncode, stdout = rest_exec(lxd, name, node["project"], marker, timeout)
            else:
                proc = subprocess.run(command_for(via, name, node, marker), capture_output=True, text=True,
                                      timeout=timeout, check=False)
                returncode, stdout = proc.returncode, proc.stdout
        except (subprocess.TimeoutExpired, TimeoutError):
            hangs += 1
            continue
        if returncode != 0 or stdout.strip() != marker:
            lost += 1
    if lxd:
        lxd.close()
    return lost, hangs


# Each node echoes its share of markers as module runs; the last task prints what came back wrong.
ANSIBLE_PLAY = """
- hosts: "{{ nodes }}"
  gather_facts: false
  tasks:
    - ansible.builtin.command: echo adelie-{{ inventory_hostname }}-{{ item }}
      loop: "{{ range(share[inventory_hostname] | int) | list }}"
      loop_control: {label: "{{ item }}"}
      register: echoed
      changed_when: false
      failed_when: false
      timeout: "{{ hang_after }}"
    - ansible.builtin.debug:
        msg: >-
          TRANSPORT {{ inventory_hostname }}
          hangs={{ echoed.results | selectattr('timedout', 'defined') | list | length }}
          wrong={{ echoed.results | rejectattr('stdout', 'defined') | list | length
                   + echoed.results | selectattr('stdout', 'defined') | rejectattr('rc', 'eq', 0) | list | length
                   + echoed.results | selectattr('stdout', 'defined') | selectattr('rc', 'eq', 0)
                     | rejectattr('stdout', 'match', '^adelie-' ~ inventory_hostname ~ '-[0-9]+$') | list | length }}
"""


def ansible_stress(inventory, names, share, timeout):
    """(lost, hangs) of the whole play; a node that never reports counts all its commands lost."""
    binary = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    with tempfile.TemporaryDirectory() as tmp:
        play = os.path.join(tmp, "transport.yml")
        with open(play, "w", encoding="utf-8") as handle:
            handle.write(ANSIBLE_PLAY)
        extra = json.dumps({"nodes": names, "share": dict(zip(names, share)), "hang_after": int(timeout)})
        proc = subprocess.run([binary, "-i", inventory, play, "-e", extra], capture_output=True, text=True,
                              check=False, env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
    reported = {}
    for match in re.finditer(r"TRANSPORT (\S+) hangs=(\d+) wrong=(\d+)", proc.stdout):
        reported[match[1]] = (int(match[2]), int(match[3]))
    hangs = sum(reported.get(name, (0, 0))[0] for name in names)
    lost = sum(reported[name][1] - reported[name][0] if name in reported else count
               for name, count in zip(names, share))
    return lost, hangs


def stress(via, nodes, commands, timeout, inventory=None):
    names = sorted(nodes)
    share = [commands // len(names) + (1 if i < commands % len(names) else 0) for i in range(len(names))]
    if via == "ansible":
        started = time.monotonic()
        lost, hangs = ansible_stress(inventory, names, share, timeout)
        seconds = time.monotonic() - started
        return {"via": via, "nodes": len(names), "commands": commands, "lost": lost, "hangs": hangs,
                "seconds": round(seconds, 1), "per_second": round(commands / seconds, 1)}
    os.makedirs("/tmp/adelie-fleet-cp", exist_ok=True)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        results = list(pool.map(lambda i: run_node(via, names[i], nodes[names[i]], share[i], timeout),
                                range(len(names))))
    seconds = time.monotonic() - started
    return {"via": via, "nodes": len(names), "commands": commands, "lost": sum(r[0] for r in results),
            "hangs": sum(r[1] for r in results), "seconds": round(seconds, 1),
            "per_second": round(commands / seconds, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", default="inventories/lab")
    parser.add_argument("--via", nargs="+", choices=("ssh", "cli", "rest", "ansible"), default=["ssh", "cli"])
    parser.add_argument("--commands", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before a command counts as hung")
    parser.add_argument("--json", action="store_true", help="one JSON object per transport")
    args = parser.parse_args()
    nodes = fleet_nodes(args.inventory)
    daemon = inventory_backend(args.inventory)["name"]
    for via in args.via:
        result = dict(stress(via, nodes, args.commands, args.timeout, args.inventory), daemon=daemon)
        if args.json:
            print(json.dumps(result))
        else:
            print("%-5s %-7s %d commands over %d nodes: %d lost, %d hung, %.1f s, %.1f commands/s" % (
                daemon, via, result["commands"], result["nodes"], result["lost"], result["hangs"], result["seconds"],
                result["per_second"]))


if __name__ == "__main__":
    main()
