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
  - Checks every value against the schema of C(plugins/module_utils/fleet_schema.py), one table row per field
    (kind, required, bounds), and reports every problem at once. Strict on purpose, so that a careless edit fails
    instead of meaning something else. A size is a string with its unit (a bare C(8) would be 8 bytes) and
    at least 64MiB of memory, 1GiB of disk or pool; a CPU count is a YAML integer (C('4') and C(4.0) are refused)
    and no node has more CPUs than the host has threads; C(docker) and C(member_required) are YAML booleans (the
    string C('false') would count as true); the overcommit ratios lie within 0.1-16 (CPU), 0.1-2 (memory), 0.1-4
    (disk). An unknown field of any C(fleet_*) mapping, and a host variable named C(fleet_*) that is not one of the
    collection's, are refused with a did-you-mean.
  - Also refuses an inventory without a fleet node (an empty C(hosts.yml), a misspelt C(fleet:) or C(children:)),
    a host of a role group that is not in group C(fleet), two pools of one name, a bridge name the kernel refuses
    (at most 15 characters), a pool driver LXD 5.0 does not know, a role name that cannot be an Ansible group and
    the profile C(fleet-<role>), an SSH key whose base64 does not hold a key of the type it names, and a service
    unit or name twice on the nodes of a role.
  - Fails before anything changes, with a message naming every bad node and field
    (unknown role, bad login, duplicate address or login, address outside the subnet, unparsable size, unknown pool).
  - Refuses in particular a node name LXD or DNS would reject or fold (lowercase letters, digits and dashes only,
    at most 63), a node without C(fleet_ipv4) (the node layer reaches every node by SSH at its static address),
    a member login that is a system account or group of the nodes (C(root), C(docker), C(systemd-*), ...),
    a name, login or e-mail with a line break or another control character, a pool without C(size), and a size
    LXD would refuse. Sizes follow LXD's own grammar exactly, an integer directly followed by a case-sensitive
    unit C(B), C(kB), C(MB), C(GB), C(TB), C(PB), C(EB), C(KiB), C(MiB), C(GiB), C(TiB), C(PiB), C(EiB) (or
    C( bytes)), for example C(8GiB); C(8 GiB), C(1.5GiB), C(8gb) and C(8KB) are refused, and so is a size without
    a unit.
  - Every derived fact the roles need about a node (quotas, profile, address, gateway, app checkout, compose
    command, LXD project and host, shared-services tenant) and about the fleet (LXD project, LXD host, the
    shared services' environments, tenants and password store) comes from this model, so that the roles and
    the tests agree.
  - With O(host), compares the fleet's totals with the host (CPU, memory after a reserve, disk per pool, each with
    an overcommit ratio from O(policy)) and refuses an overcommitted fleet, naming its biggest consumers.
  - Several hosts in group C(lxd_hosts) are the members of one cluster. Each node gets a C(location), the member it
    runs on (its C(fleet_location), else the member with the most memory left, the biggest nodes first), and the
    capacity check is made per member (one table each, then the cluster's totals); an overcommitted member is
    refused by name even when the cluster has room.
  - Every option but O(nodes), O(live_pools), O(live_locations), O(locations), O(without), O(hosts), O(host), O(measured)
    and O(check_capacity) defaults to an inventory
    variable, as the task's host sees it (named in each option; C(plugins/module_utils/fleet.py) maps them, and
    C(bench/health_sweep.py) and the integration tests read them the same way). C(playbooks/model.yml) gives only
    O(measured).
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
    description:
      - The C(fleet_roles) mapping, role name to C(cpu), C(memory), C(disk), C(pool), C(docker), C(member_required).
      - Defaults to the inventory's C(fleet_roles); refused when neither is set.
    type: dict
  network:
    description:
      - The C(fleet_network) bridge, C(name) and C(ipv4) (gateway/prefix).
      - Defaults to the inventory's C(fleet_network); refused when neither is set.
    type: dict
  pools:
    description:
      - The C(fleet_pools) list, each with C(name), C(driver) and C(size) or C(source).
      - Defaults to the inventory's C(fleet_pools); refused when neither is set.
    type: list
    elements: dict
  live_locations:
    description:
      - Where a cluster's nodes run now (node name to member); a node without C(fleet_location) stays there.
    type: dict
  locations:
    description:
      - A move to plan (node name to member, or null to let the model place the node), over C(fleet_location).
        C(playbooks/move.yml) and C(playbooks/evacuate.yml) check the members' capacity with it before they move.
    type: dict
  without:
    description: A member the nodes must leave (an evacuation); it takes no node and its capacity is not counted.
    type: str
  hosts:
    description:
      - Each member's size (member to C(cpus) and C(memory)), as a model built before holds them (C(fleet_model.hosts)).
      - Not given, each member's C(fleet_host), else O(measured).
    type: dict
  live_pools:
    description: Names of the storage pools the LXD host really has; each pool of O(pools) must be among them.
    type: list
    elements: str
  host:
    description:
      - The host's capacity, C(cpus) and C(memory) (a size). Without it (or O(measured) and the hosts' C(fleet_host))
        no capacity check is made.
    type: dict
  measured:
    description:
      - Member name to the lines of C(nproc --all; grep MemTotal /proc/meminfo) read there; a member's C(fleet_host)
        comes first.
    type: dict
  policy:
    description:
      - The C(fleet_capacity) policy, C(memory_reserve), C(memory_overcommit), C(cpu_overcommit), C(disk_overcommit).
      - Defaults to the inventory's C(fleet_capacity).
    type: dict
  check_capacity:
    description: Fail when the fleet does not fit the host. C(false) only reports.
    type: bool
    default: true
  app_dir:
    description:
      - The app checkout of a node without a member; a member's node has it at C(/home/<login>/app).
      - Must be an absolute path. Defaults to the inventory's C(fleet_app_dir), else C(/opt/fleet-app).
    type: str
  services:
    description:
      - The C(fleet_services) mapping, what every node must have running. Its keys are C(all) (every node),
        C(docker) (the nodes of a role with C(docker=true)) and the names of O(roles); each a list of C(name) (a
        short label), C(unit) (a systemd unit ending in C(.service)) and maybe C(port) (1 to 65535).
      - Each node gets the list of its C(all), C(docker) and role entries, in that order; a unit or a name may be
        in it once.
      - Defaults to the inventory's C(fleet_services), else none.
    type: dict
  compose_command:
    description:
      - How the docker nodes run compose, C(docker-compose) (v1, Debian's package) or C(docker compose) (the v2
        plugin, production). Returned as each docker node's C(compose).
      - Defaults to the inventory's C(fleet_compose_command), else C(docker-compose).
    type: str
    choices: [docker-compose, docker compose]
  project:
    description:
      - The LXD project of the fleet's containers and profiles (a name).
      - Defaults to the inventory's C(fleet_project), else C(default).
    type: str
  environments:
    description:
      - The roles of O(roles) whose nodes are environments with a shared-services tenant of their own (named after
        the role); every member is a tenant too (C(dev_<login>)).
      - Defaults to the inventory's C(shared_services_environments), else C(deploy) and C(staging) where the fleet
        has them.
    type: list
    elements: str
  secrets_file:
    description:
      - The shared services' vault-encrypted password store on the controller.
      - Defaults to the inventory's C(shared_services_secrets_file), else
        C(~/.config/adelie-fleet/<project>-shared-services.vault.yml).
    type: str
  vault_password_file:
    description:
      - The file holding the store's vault password.
      - Defaults to the inventory's C(shared_services_vault_password_file), else C(~/.config/adelie-fleet/vault-pass).
    type: str
"""

EXAMPLES = r"""
- name: Validate the inventory's fleet and check it fits the host
  adelie.fleet.fleet_model:
    host:
      cpus: "{{ ansible_facts.processor_vcpus }}"
      memory: "{{ ansible_facts.memtotal_mb }}MiB"
  register: fleet

- name: The model of a fleet given here rather than by the inventory's variables
  adelie.fleet.fleet_model:
    roles: "{{ my_roles }}"
    network: {name: fleetbr0, ipv4: 10.10.10.1/24}
    pools: [{name: nvme, driver: btrfs, size: 1TiB}]
    compose_command: docker compose
  register: other

- name: Show where each node keeps the app and how it runs compose
  ansible.builtin.debug:
    msg: "{{ item.key }}: {{ item.value.app_dir }} ({{ item.value.compose or 'no docker' }})"
  loop: "{{ fleet.fleet.nodes | dict2items }}"
"""

RETURN = r"""
fleet:
  description: The model.
  returned: success
  type: dict
  contains:
    nodes:
      description:
        - Each node's effective C(name), C(role), C(profile), C(cpu), C(memory) and C(memory_bytes), C(disk) and
          C(disk_bytes), C(pool), C(docker), C(ipv4), C(member) (C(login), C(name), C(email), C(ssh_key) or null),
        - C(gateway), the bridge's address without prefix (for example C(10.10.10.1)),
        - C(app_dir), the app checkout (C(/home/<login>/app) for a node with a member, else O(app_dir)),
        - C(compose), O(compose_command) for a docker node, null for a node whose role has no docker.
        - C(services), the services the node must run (O(services)), each C(name), C(unit) and C(port) (or null).
        - C(project) and C(lxd_host), as the model's; C(tenant), the node's shared-services tenant or null.
        - C(location), the member of C(lxd_hosts) it runs on (C(lxd_host) without a cluster).
      type: dict
      sample:
        dev-hj: {name: dev-hj, role: dev, profile: fleet-dev, cpu: 4, memory: 8GiB, memory_bytes: 8589934592,
                 disk: 150GiB, disk_bytes: 161061273600, pool: nvme, docker: true, ipv4: 10.10.10.34,
                 gateway: 10.10.10.1, app_dir: /home/hj/app, compose: docker compose,
                 member: {login: hj, name: hj, email: hj@adelie.invalid, ssh_key: null},
                 services: [{name: sshd, unit: ssh.service, port: 22}, {name: docker, unit: docker.service, port: null}],
                 project: default, lxd_host: adelie-server, location: adelie-server, tenant: dev_hj}
    profiles:
      description: Each role's LXD profile, C(name), C(cpu), C(memory), C(disk), C(pool), C(docker).
      type: dict
    pools:
      description: Each pool's size in bytes.
      type: dict
    members:
      description: Each member's login mapped to the name of their node.
      type: dict
      sample: {hj: dev-hj, ryejinn: dev-ryejinn}
    network:
      description:
        - The bridge, C(name), C(ipv4) (address/prefix), C(subnet) and C(gateway) (address alone), and C(parent), the
          uplink a cluster's nodes are routed on (null with a bridge).
      type: dict
      sample: {name: fleetbr0, ipv4: 10.10.10.1/24, subnet: 10.10.10.0/24, gateway: 10.10.10.1, parent: null}
    project:
      description: The LXD project of the containers and profiles (O(project)).
      type: str
    lxd_host:
      description: The inventory name of the LXD host (the first host of group C(lxd_hosts)).
      type: str
    lxd_hosts:
      description: Group C(lxd_hosts), the members of the cluster (one host when C(clustered) is false).
      type: list
      elements: str
    clustered:
      description: Whether the fleet runs on a cluster of several members.
      type: bool
    hosts:
      description: Each member's size the capacity check used (C(cpus), C(memory)), declared or measured.
      type: dict
      sample: {adelie-server: {cpus: 32, memory: 84GiB}}
    environments:
      description: The environment roles (O(environments)).
      type: list
      elements: str
    tenants:
      description:
        - The names of the shared services' tenants, sorted (each environment role that has a node, C(dev_<login>) of
          each member).
      type: list
      elements: str
      sample: [deploy, dev_hj, staging]
    secrets_file:
      description: The shared services' password store on the controller (O(secrets_file)).
      type: str
    vault_password_file:
      description: Its vault password file (O(vault_password_file)).
      type: str
capacity:
  description: One row per resource with C(requested), C(available) and C(used_percent).
  returned: when the hosts' sizes are known
  type: list
  elements: dict
table:
  description: The capacity table as lines of text, nodes first, then the totals (per member of a cluster, then its totals).
  returned: when the hosts' sizes are known
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(
        nodes=dict(type="list", elements="str"),
        roles=dict(type="dict"),
        network=dict(type="dict"),
        pools=dict(type="list", elements="dict"),
        live_pools=dict(type="list", elements="str"),
        live_locations=dict(type="dict"),
        locations=dict(type="dict"),
        without=dict(type="str"),
        hosts=dict(type="dict"),
        host=dict(type="dict"),
        measured=dict(type="dict"),
        policy=dict(type="dict"),
        check_capacity=dict(type="bool", default=True),
        app_dir=dict(type="str"),
        compose_command=dict(type="str", choices=["docker-compose", "docker compose"]),
        services=dict(type="dict"),
        project=dict(type="str"),
        environments=dict(type="list", elements="str"),
        secrets_file=dict(type="str"),
        vault_password_file=dict(type="str"),
    ), supports_check_mode=True)
    module.fail_json(msg="adelie.fleet.fleet_model runs on the controller as an action plugin; it cannot run as a module")


if __name__ == "__main__":
    main()
