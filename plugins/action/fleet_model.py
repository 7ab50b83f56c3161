# -*- coding: utf-8 -*-
# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of adelie.fleet.fleet_model: reads the fleet's host entries from the inventory.

An action plugin rather than a module because the model needs every node's inventory
variables (hostvars) and the inventory's groups, which only the controller has: it also hands
build_model the groups (a host of a role group must be in group fleet) and the names of every
host's variables (a fleet_* name the schema does not know is refused), so that one run reports
every problem of the inventory. An option the task does not give is read from the inventory variable
fleet.INVENTORY_VARIABLES names, as the task's host sees it (bench/health_sweep.py and the integration
tests read them the same way).
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.adelie.fleet.plugins.module_utils.fleet import (
    INVENTORY_VARIABLES, FleetError, capacity, capacity_table, cluster_capacity, cluster_capacity_table, inventory_options,
    model_from_inventory)

__metaclass__ = type


def member_sizes(hostvars, members, measured):
    """{member: its size}: its fleet_host, else what model.yml measured there (measured: {member: the lines of
    `nproc --all; grep MemTotal /proc/meminfo`}); None when neither is known for every member."""
    sizes = {}
    for member in members:
        declared = hostvars[member].get("fleet_host") if member in hostvars else None
        lines = (measured or {}).get(member) or []
        if declared is not None:
            sizes[member] = declared
        elif len(lines) == 2 and lines[0].strip().isdigit() and len(lines[1].split()) >= 2:
            sizes[member] = {"cpus": int(lines[0]), "memory": lines[1].split()[1] + "KiB"}
        else:
            return None
    return sizes or None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("nodes", "live_pools", "host", "measured", "check_capacity", "live_locations", "locations",
                             "without", "hosts", *INVENTORY_VARIABLES))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        hostvars = task_vars["hostvars"]
        me = task_vars.get("inventory_hostname")
        options = inventory_options(hostvars[me] if me in hostvars else {}, args)
        without = args.get("without")
        members = [member for member in task_vars["groups"].get("lxd_hosts", []) if member != without]
        hosts = ({member: size for member, size in args["hosts"].items() if member in members} if args.get("hosts")
                 else member_sizes(hostvars, members, args.get("measured")))
        checks = {"live_pools": args.get("live_pools"), "host": args.get("host") or None, "hosts": hosts,
                  "live_locations": args.get("live_locations")}
        try:
            model = model_from_inventory(hostvars, task_vars["groups"], dict(options, **checks), nodes=args.get("nodes"),
                                         locations=args.get("locations"), without=without)
        except FleetError as error:
            raise AnsibleActionFail(str(error)) from None
        result.update(changed=False, fleet=model)
        host = args.get("host") or (hosts or {}).get(model["lxd_host"])
        if model["clustered"] and hosts:
            # Each member's size and the policy passed build_model's checks.
            report = cluster_capacity(model, hosts, options.get("policy"))
            result["table"] = cluster_capacity_table(model, report)
        elif host:
            report = capacity(model, host, options.get("policy"))
            result["table"] = capacity_table(model, report["rows"])
        else:
            return result
        result["capacity"] = report["rows"]
        if report["problems"] and args.get("check_capacity", True):
            where = "its members" if model["clustered"] else "the host"
            if without:
                where = "the members left without %s (%s)" % (without, ", ".join(members))
            raise AnsibleActionFail("refused, the fleet does not fit %s:\n" % where
                                    + "\n".join("  - " + p for p in report["problems"]) + "\n" + "\n".join(result["table"]))
        return result
