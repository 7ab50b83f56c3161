"""plan.yml on a big fleet: N nodes that fit (the production inventory's settings, its dev role made
small, a /16 bridge), beside the floor measured in the same run: ansible-playbook of one empty play
on the same inventory (Ansible's start and the inventory's parse, what no model code can save).

  .venv/bin/python bench/plan_scale.py            # 300 nodes, best of 3
  .venv/bin/python bench/plan_scale.py --nodes 1000 --runs 5

Needs no LXD: the inventory declares its host (fleet_host). Exit 1 when plan.yml fails.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = ROOT / "inventories" / "production" / "group_vars" / "all.yml"
GOAL = 2.0


def inventory(directory, count):
    """An inventory of ``count`` dev nodes that fit their host, in ``directory``."""
    settings = yaml.safe_load(PRODUCTION.read_text(encoding="utf-8"))
    settings["fleet_network"] = {"name": "fleetbr0", "ipv4": "10.10.0.1/16"}
    settings["fleet_roles"]["dev"].update(cpu=1, memory="256MiB", disk="5GiB")
    settings["fleet_host"] = {"cpus": 256, "memory": "%dGiB" % (count // 4 + 16)}
    settings["fleet_capacity"]["cpu_overcommit"] = max(2.0, count / 256.0)
    settings["fleet_pools"][0]["size"] = "%dGiB" % (count * 5 + 100)
    dev = {"dev-n%04d" % i: {"fleet_ipv4": "10.10.%d.%d" % (11 + i // 250, 2 + i % 250),
                             "fleet_member": {"login": "u%04d" % i, "name": "User %d" % i,
                                              "email": "u%04d@adelie.invalid" % i}}
           for i in range(count)}
    roles = {role: {"hosts": {}} for role in settings["fleet_roles"]}
    roles["dev"] = {"hosts": dev}
    hosts = {"all": {"children": {"lxd_hosts": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}},
        "fleet": {"children": roles}}}}
    (directory / "group_vars").mkdir()
    (directory / "group_vars" / "all.yml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    (directory / "hosts.yml").write_text(yaml.safe_dump(hosts), encoding="utf-8")


def best(argv, runs):
    """The fastest of ``runs`` runs of argv, in seconds (exits when it fails)."""
    times = []
    for _run in range(runs):
        started = time.monotonic()
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
        times.append(time.monotonic() - started)
        if proc.returncode != 0:
            sys.exit("%s failed:\n%s" % (" ".join(argv), (proc.stdout + proc.stderr)[-3000:]))
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--nodes", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    playbook = str(Path(sys.executable).parent / "ansible-playbook")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "inventory"
        directory.mkdir()
        inventory(directory, args.nodes)
        empty = Path(tmp) / "empty.yml"
        empty.write_text("- name: Nothing\n  hosts: localhost\n  gather_facts: false\n  tasks: []\n", encoding="utf-8")
        env_floor = best([playbook, "-i", str(directory), str(empty)], args.runs)
        plan = best([playbook, "-i", str(directory), "playbooks/plan.yml"], args.runs)
    print("%-44s %7.2f s   (floor: an empty play on the same inventory %.2f s; x%.1f; goal %.0f s)"
          % ("plan.yml at %d nodes" % args.nodes, plan, env_floor, plan / env_floor, GOAL))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("ANSIBLE_NOCOLOR", "1")
    sys.exit(main())
