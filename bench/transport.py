#!/usr/bin/env python3
"""Stress a transport to the fleet's nodes: N commands spread over the nodes, one worker per node.

Each command echoes a marker of its own; an answer without it (or with a non-zero status) is a
lost output, a command with no answer within --timeout is a hang (killed, counted, the run goes on).
Prints one line per transport: commands, lost, hangs, seconds, commands per second.

  bench/transport.py -i inventories/lab --via ssh lxc --commands 2000
  bench/transport.py -i tests/integration/inventory --via ssh --json   (the integration test)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

SSH_OPTIONS = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10", "-o", "ControlMaster=auto",
               "-o", "ControlPath=/tmp/adelie-fleet-cp/bench-%C", "-o", "ControlPersist=60"]


def fleet_nodes(inventory):
    """{node: {"ipv4", "project", "key"}} of the inventory's fleet group, from ansible-inventory."""
    binary = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")
    data = json.loads(subprocess.run([binary, "-i", inventory, "--list"], capture_output=True, text=True,
                                     check=True).stdout)
    hostvars = data["_meta"]["hostvars"]
    nodes = {}
    for group in data.get("fleet", {}).get("children", []):
        for name in data.get(group, {}).get("hosts", []):
            host = hostvars[name]
            nodes[name] = {"ipv4": host["fleet_ipv4"], "project": host.get("fleet_project", "default"),
                           "key": os.path.expanduser(host.get("fleet_ssh_key_file", "~/.ssh/adelie_fleet_ed25519"))}
    return nodes


def command_for(via, name, node, marker):
    if via == "ssh":
        return ["ssh", *SSH_OPTIONS, "-i", node["key"], "root@" + node["ipv4"], "echo", marker]
    return ["lxc", "exec", "--project", node["project"], name, "--", "echo", marker]


def run_node(via, name, node, count, timeout):
    lost = hangs = 0
    for index in range(count):
        marker = "adelie-%s-%d" % (name, index)
        try:
            proc = subprocess.run(command_for(via, name, node, marker), capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            hangs += 1
            continue
        if proc.returncode != 0 or proc.stdout.strip() != marker:
            lost += 1
    return lost, hangs


def stress(via, nodes, commands, timeout):
    names = sorted(nodes)
    share = [commands // len(names) + (1 if i < commands % len(names) else 0) for i in range(len(names))]
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
    parser.add_argument("--via", nargs="+", choices=("ssh", "lxc"), default=["ssh", "lxc"])
    parser.add_argument("--commands", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before a command counts as hung")
    parser.add_argument("--json", action="store_true", help="one JSON object per transport")
    args = parser.parse_args()
    nodes = fleet_nodes(args.inventory)
    for via in args.via:
        result = stress(via, nodes, args.commands, args.timeout)
        if args.json:
            print(json.dumps(result))
        else:
            print("%-4s %d commands over %d nodes: %d lost, %d hung, %.1f s, %.1f commands/s" % (
                via, result["commands"], result["nodes"], result["lost"], result["hangs"], result["seconds"],
                result["per_second"]))


if __name__ == "__main__":
    main()
