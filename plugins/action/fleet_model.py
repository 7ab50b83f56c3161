# -*- coding: utf-8 -*-
# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of adelie.fleet.fleet_model: reads the fleet's host entries from the inventory.

An action plugin rather than a module because the model needs every node's inventory
variables (hostvars) and the inventory's groups, which only the controller has: it also hands
build_model the groups (a host of a role group must be in group fleet) and the names of every
host's variables (a fleet_* name the schema does not know is refused), so that one run reports
every problem of the inventory.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.adelie.fleet.plugins.module_utils.fleet import (
    QUOTA_FIELDS, FleetError, build_model, capacity, capacity_table)

__metaclass__ = type


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("nodes", "roles", "network", "pools", "live_pools", "host", "policy", "check_capacity",
                             "app_dir", "compose_command", "services"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        hostvars = task_vars["hostvars"]
        groups = task_vars["groups"]
        fleet = list(args.get("nodes") or groups.get("fleet", []))
        in_fleet = set(fleet)
        nodes, variables = {}, {}
        for name in dict.fromkeys([*groups.get("all", []), *fleet]):
            # One look-up of the host's variables; listing their names templates none of them.
            host = hostvars[name]
            variables[name] = [var for var in host if var.startswith("fleet_")]
            if name in in_fleet:
                entry = {"groups": list(host.get("group_names", [])),
                         "ipv4": host.get("fleet_ipv4"), "member": host.get("fleet_member")}
                for field in QUOTA_FIELDS:
                    entry[field] = host.get("fleet_" + field)
                nodes[name] = entry
        # Unset options keep build_model's defaults (/opt/fleet-app, docker-compose).
        options = {name: args[name] for name in ("app_dir", "compose_command") if args.get(name) is not None}
        try:
            model = build_model(nodes, args.get("roles"), args.get("network"), args.get("pools"),
                                live_pools=args.get("live_pools"), services=args.get("services"),
                                host=args.get("host") or None, policy=args.get("policy"), groups=groups,
                                variables=variables, **options)
        except FleetError as error:
            raise AnsibleActionFail(str(error)) from None
        result.update(changed=False, fleet=model)
        if args.get("host"):
            # host and policy passed build_model's checks.
            report = capacity(model, args["host"], args.get("policy"))
            result["capacity"] = report["rows"]
            result["table"] = capacity_table(model, report["rows"])
            if report["problems"] and args.get("check_capacity", True):
                raise AnsibleActionFail("refused, the fleet does not fit the host:\n" + "\n".join(
                    "  - " + p for p in report["problems"]) + "\n" + "\n".join(result["table"]))
        return result
