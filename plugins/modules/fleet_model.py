#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The work is done by the action plugin of the same name on the controller: this file documents it.

from __future__ import annotations

DOCUMENTATION = r"""
module: fleet_model
short_description: Validate the fleet inventory and compute each node's effective quotas and the host's capacity
version_added: 0.1.0
author: Adelie infra team (@adelie)
description:
  - Reads every fleet node's inventory entry (role group, C(fleet_ipv4), C(fleet_member), and the overrides
    C(fleet_cpu), C(fleet_memory), C(fleet_disk), C(fleet_pool)), merges them over the role's quotas in O(roles)
    and returns the fleet model.
  - Fails before anything changes, with a message naming every bad node and field
    (unknown role, bad login, duplicate address or login, address outside the subnet, unparsable size, unknown pool).
  - With O(host), compares the fleet's totals with the host (CPU, memory after a reserve, disk per pool, each with
    an overcommit ratio from O(policy)) and refuses an overcommitted fleet, naming its biggest consumers.
  - Runs on the controller as an action plugin; it changes nothing.
attributes:
  check_mode:
    support: full
    description: Changes nothing in any mode.
  diff_mode:
    support: none
    description: Returns no diff.
  action:
    support: full
    description: Runs on the controller.
options:
  nodes:
    description: Inventory names of the fleet's nodes. Defaults to the C(fleet) group.
    type: list
    elements: str
  roles:
    description: The C(fleet_roles) mapping, role name to C(cpu), C(memory), C(disk), C(pool), C(docker), C(member_required).
    type: dict
    required: true
  network:
    description: The C(fleet_network) bridge, C(name) and C(ipv4) (gateway/prefix).
    type: dict
    required: true
  pools:
    description: The C(fleet_pools) list, each with C(name), C(driver) and C(size) or C(source).
    type: list
    elements: dict
    required: true
  live_pools:
    description: Names of the storage pools the LXD host really has; each pool of O(pools) must be among them.
    type: list
    elements: str
  host:
    description: The host's capacity, C(cpus) and C(memory) (a size). Without it no capacity check is made.
    type: dict
  policy:
    description: The C(fleet_capacity) policy, C(memory_reserve), C(memory_overcommit), C(cpu_overcommit), C(disk_overcommit).
    type: dict
  check_capacity:
    description: Fail when the fleet does not fit the host. C(false) only reports.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Validate the fleet and check it fits the host
  adelie.fleet.fleet_model:
    roles: "{{ fleet_roles }}"
    network: "{{ fleet_network }}"
    pools: "{{ fleet_pools }}"
    host:
      cpus: "{{ ansible_facts.processor_vcpus }}"
      memory: "{{ ansible_facts.memtotal_mb }}MiB"
    policy: "{{ fleet_capacity }}"
  register: fleet
"""

RETURN = r"""
fleet:
  description: The model. C(nodes) maps each node to its effective C(role), C(profile), C(cpu), C(memory), C(disk), C(pool),
    C(docker), C(ipv4) and C(member); C(profiles) maps each role to its LXD profile; C(network) and C(pools) as validated.
  returned: success
  type: dict
capacity:
  description: One row per resource with C(requested), C(available) and C(used_percent).
  returned: when O(host) is given
  type: list
  elements: dict
table:
  description: The capacity table as lines of text, nodes first, then the totals.
  returned: when O(host) is given
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(
        nodes=dict(type="list", elements="str"),
        roles=dict(type="dict", required=True),
        network=dict(type="dict", required=True),
        pools=dict(type="list", elements="dict", required=True),
        live_pools=dict(type="list", elements="str"),
        host=dict(type="dict"),
        policy=dict(type="dict"),
        check_capacity=dict(type="bool", default=True),
    ), supports_check_mode=True)
    module.fail_json(msg="adelie.fleet.fleet_model runs on the controller as an action plugin; it cannot run as a module")


if __name__ == "__main__":
    main()
