"""The fleet health sweep without ansible-playbook: for timing it and for quick looks.

  .venv/bin/python bench/health_sweep.py -i inventories/lab                  # nodes from the inventory's fleet model
  .venv/bin/python bench/health_sweep.py --nodes /var/lib/adelie-fleet/health/nodes.json   # nodes the nightly run saved
  .venv/bin/python bench/health_sweep.py -i inventories/lab --write-nodes build/health-nodes.json --no-sweep   # save them
  .venv/bin/python bench/health_sweep.py --nodes build/health-nodes.json --json                    # sweep without Ansible

Runs module_utils/health.py (the sweep) exactly as adelie.fleet.health_sweep does (same probe, same findings),
report only unless --repair is given. --nodes imports nothing of Ansible (the fast path, what the
"process start included" timing measures); -i builds the fleet model through Ansible's inventory
API first (about a second more). Exit status: 0 nothing left broken, 1 something is, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "build", "collections"))

from ansible_collections.adelie.fleet.plugins.module_utils import health, health_report  # noqa: E402
from fleet_backend import inventory_hostvars  # noqa: E402

# The nightly role's templates of the pages for people (health.md, health.html).
REPORT_TEMPLATES = os.path.join(ROOT, "roles", "nightly", "templates", "var", "lib", "adelie-fleet", "health")


def write_pages(result, report_dir):
    """health.md and health.html from the nightly role's templates, as the nightly run writes them."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(REPORT_TEMPLATES), keep_trailing_newline=True)
    for name in ("health.md", "health.html"):
        health_report.write_atomic(os.path.join(report_dir, name),
                                   env.get_template(name + ".j2").render(health_report=result))


def nodes_from_inventory(inventory):
    """The fleet model's nodes of ``inventory``, as playbooks/model.yml builds them (no capacity check)."""
    from ansible_collections.adelie.fleet.plugins.module_utils.fleet import (
        FleetError, inventory_options, model_from_inventory)

    hostvars, groups = inventory_hostvars(inventory)
    fleet = groups.get("fleet", [])
    if not fleet:
        raise SystemExit("%s: no hosts in group fleet" % inventory)
    node = hostvars[fleet[0]]
    # The model's options as model.yml's task reads them, from the LXD host (fleet_backend is its group's).
    host = hostvars[(groups.get("lxd_hosts") or fleet)[0]]
    try:
        model = model_from_inventory(hostvars, groups, inventory_options(host))
    except FleetError as error:
        raise SystemExit("%s: %s" % (inventory, error)) from None
    return {"project": model["project"], "backend": model["backend"]["name"], "ssh_key": node.get("fleet_ssh_key_file"),
            "nodes": sorted(model["nodes"].values(), key=lambda n: n["name"])}


def load_nodes(path):
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if isinstance(data, list):
        return {"nodes": data}
    nodes = data.get("nodes", data)
    if isinstance(nodes, dict):
        nodes = list(nodes.values())
    return dict(data, nodes=nodes)


def main(argv=None):
    started = time.monotonic()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("-i", "--inventory", help="build the nodes from this inventory's fleet model")
    source.add_argument("--nodes", help="JSON: a list of model nodes, or {project, backend, ssh_key, nodes}")
    parser.add_argument("--write-nodes", help="save the nodes (with project, backend and key) to this JSON file")
    parser.add_argument("--no-sweep", action="store_true", help="only build and save the nodes (--write-nodes)")
    parser.add_argument("--project", help="LXD project (default: from the nodes file or the inventory)")
    parser.add_argument("--key", help="SSH private key (default: from the nodes file or the inventory)")
    parser.add_argument("--no-lxd", action="store_true", help="do not ask the daemon (probe every node over SSH)")
    parser.add_argument("--limit", help="comma-separated node names")
    parser.add_argument("--repair", default="", help="comma-separated repair kinds (%s)" % ", ".join(health.REPAIR_KINDS))
    parser.add_argument("--check", action="store_true", help="plan repairs, run none, write nothing")
    parser.add_argument("--parallelism", type=int, default=32)
    parser.add_argument("--timeout", type=int, default=20)
    parser.add_argument("--report-dir", help="write health.json, health.md, health.html here")
    parser.add_argument("--textfile-dir", help="write the node-exporter textfile here")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    parser.add_argument("--quiet", action="store_true", help="print only the timing line")
    args = parser.parse_args(argv)

    data = nodes_from_inventory(args.inventory) if args.inventory else load_nodes(args.nodes)
    if args.write_nodes:
        with open(args.write_nodes, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
    if args.no_sweep:
        return 0
    nodes = data["nodes"]
    if args.limit:
        wanted = set(args.limit.split(","))
        nodes = [n for n in nodes if n["name"] in wanted]
    options = {
        "project": args.project or data.get("project") or "default",
        # The model's (a nodes file without it: the default, LXD).
        "backend": data.get("backend"),
        "ssh_key": args.key or data.get("ssh_key"),
        "lxd": not args.no_lxd, "repair": [k for k in args.repair.split(",") if k],
        "check_mode": args.check, "parallelism": args.parallelism, "timeout": args.timeout,
    }
    try:
        result = health.Sweep(nodes, options).run()
    except ValueError as error:
        parser.error(str(error))
    if not args.check:
        health_report.write_reports(result, args.report_dir, args.textfile_dir)
        if args.report_dir:
            write_pages(result, args.report_dir)
    if args.json:
        print(health_report.render_json(result), end="")
    elif not args.quiet:
        print(result["summary"])
    print("health sweep: %d node(s), %.3f s sweep, %.3f s since process start" % (
        len(nodes), result["seconds"], time.monotonic() - started), file=sys.stderr)
    return 1 if result["broken"] else 0


if __name__ == "__main__":
    sys.exit(main())
