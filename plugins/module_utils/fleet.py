# -*- coding: utf-8 -*-
# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet model: inventory data -> validated nodes with effective quotas, and capacity arithmetic.

One place turns the inventory into the fleet (role defaults + node overrides) and its global facts (the
LXD project and host, the shared services' tenants and password store), so that plan.yml, the roles,
bench/ and the tests all agree. Every error names the node and the field, and every problem is reported
at once. What each value may be is fleet_schema's tables; here is what relates values to each other
(pools, roles, addresses, logins, services, the host's threads, the groups).
"""

from __future__ import annotations

import ipaddress

from ansible_collections.adelie.fleet.plugins.module_utils.backend import BACKENDS, DEFAULT_BACKEND, backend as backend_entry
from ansible_collections.adelie.fleet.plugins.module_utils import fleet_schema as schema
from ansible_collections.adelie.fleet.plugins.module_utils.fleet_schema import (
    CONTROL_RE, GiB, format_size, parse_size)
from ansible_collections.adelie.fleet.plugins.module_utils.shared_services import (
    DEFAULT_ENVIRONMENTS, TenantError, tenant_for_node, tenants)

__metaclass__ = type

# Node fields an inventory entry may set (as fleet_<field>); all but role/ipv4/member override
# the role's profile.
QUOTA_FIELDS = ("cpu", "memory", "disk", "pool")
# Where a node without a member keeps the app checkout (a member's is /home/<login>/app).
DEFAULT_APP_DIR = "/opt/fleet-app"
# The compose commands the node layer knows: v1 (Debian's docker-compose) and the v2 plugin.
COMPOSE_COMMANDS = ("docker-compose", "docker compose")
DEFAULT_COMPOSE_COMMAND = "docker-compose"
DEFAULT_PROJECT = "default"
# The shared services' store of generated passwords on the controller (one per LXD project, so that a test
# fleet never shares the lab's), and the file holding its vault password.
SECRETS_FILE = "~/.config/adelie-fleet/%s-shared-services.vault.yml"
DEFAULT_VAULT_PASSWORD_FILE = "~/.config/adelie-fleet/vault-pass"
# The fleet's certificate authority on the controller (one per project, beside the store): the registry's
# certificate is signed by it and every Docker node trusts it for the registry.
CA_DIR = "~/.config/adelie-fleet/%s-ca"
# The image registry runs on the first infra node (sorted by name), on this port of its bridge address.
REGISTRY_ROLE = "infra"
REGISTRY_PORT = 5000
# build_model's options and the inventory variable each one is read from: by adelie.fleet.fleet_model (for an
# option its task does not give), bench/health_sweep.py and the integration tests, so all build one model.
INVENTORY_VARIABLES = {
    "roles": "fleet_roles",
    "network": "fleet_network",
    "pools": "fleet_pools",
    "services": "fleet_services",
    "policy": "fleet_capacity",
    "app_dir": "fleet_app_dir",
    "compose_command": "fleet_compose_command",
    "project": "fleet_project",
    "backend": "fleet_backend",
    "environments": "shared_services_environments",
    "secrets_file": "shared_services_secrets_file",
    "vault_password_file": "shared_services_vault_password_file",
}
# The options a missing inventory variable must reach build_model for (as None: it reports them missing).
_REQUIRED_OPTIONS = ("roles", "network", "pools")


class FleetError(ValueError):
    """The inventory does not describe a valid fleet; the message lists every problem found."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("invalid fleet inventory:\n" + "\n".join("  - " + p for p in self.problems))


def _options(problems, app_dir, compose_command, project, secrets_file, vault_password_file, backend):
    if not isinstance(app_dir, str) or not app_dir.startswith("/") or CONTROL_RE.search(app_dir):
        problems.append("app_dir %r must be an absolute path, like %s" % (app_dir, DEFAULT_APP_DIR))
    if compose_command not in COMPOSE_COMMANDS:
        problems.append("compose_command %r must be one of %s"
                        % (compose_command, ", ".join(repr(c) for c in COMPOSE_COMMANDS)))
    if not isinstance(backend, str) or backend not in BACKENDS:
        problems.append("fleet_backend %r must be one of %s" % (backend, ", ".join(BACKENDS)))
    checks = (("fleet_project", project, "name"), ("shared_services_secrets_file", secrets_file, "text"),
              ("shared_services_vault_password_file", vault_password_file, "text"))
    for variable, value, kind in checks:
        problem = schema.KINDS[kind](value, None)
        if problem:
            problems.append("%s %s" % (variable, problem))


def _environments(problems, environments, roles):
    """The roles whose nodes are environments with a tenant of their own (by default deploy and staging, those
    of them the fleet has: a fleet without staging is no mistake, a misspelt role given is)."""
    if not isinstance(roles, dict):
        return []
    if environments is None:
        return [role for role in DEFAULT_ENVIRONMENTS if role in roles]
    if not isinstance(environments, list):
        problems.append("shared_services_environments must be a list of roles of fleet_roles, not %r" % (environments,))
        return []
    for role in environments:
        if role not in roles:
            problems.append(schema.unknown("shared_services_environments: ", role, sorted(roles, key=str),
                                           "is not a role of fleet_roles"))
    return [role for role in environments if role in roles]


def _groups(problems, nodes, groups, roles):
    """The inventory's shape: at least one fleet node, and every host of a role group in group fleet."""
    if not nodes:
        problems.append("the inventory has no fleet node: group fleet is empty or missing (hosts.yml needs "
                        "all: children: fleet: children: <role>: hosts:; is fleet: or children: misspelt?)")
    if groups is None or not isinstance(roles, dict):
        return
    fleet = set(groups.get("fleet", ()))
    for role in sorted(roles, key=str):
        for host in groups.get(role, ()):
            if host not in fleet:
                problems.append("%s: in role group %s but not in group fleet (in hosts.yml, %s: belongs under "
                                "fleet: children:)" % (host, role, role))


def _where(variable, entry, index):
    """How a message names an entry of a list: by its name when it has one, else by its index."""
    name = entry.get("name") if isinstance(entry, dict) else None
    return "%s.%s" % (variable, name) if isinstance(name, str) and name else "%s[%d]" % (variable, index)


def _pools(problems, pools, live_pools):
    """Each pool's size in bytes (None when not valid), by name."""
    sizes, seen = {}, {}
    if not isinstance(pools, list):
        problems.append("fleet_pools is missing (a list of pools: name, driver, size)" if pools is None else
                        "fleet_pools must be a list of pools (name, driver, size), not %r" % (pools,))
        return sizes
    for index, pool in enumerate(pools):
        where = _where("fleet_pools", pool, index)
        valid, found = schema.check(schema.POOL, pool, where)
        problems += found
        if not valid or "name" not in valid:
            continue
        name = valid["name"]
        if name in seen:
            problems.append("%s: listed twice (fleet_pools[%d] and fleet_pools[%d]); the later would replace the "
                            "earlier" % (where, seen[name], index))
            continue
        seen[name] = index
        sizes[name] = parse_size(valid["size"]) if "size" in valid else None
    if live_pools is not None:
        for name in sorted(set(sizes) - set(live_pools)):
            problems.append("fleet_pools.%s: the LXD host has no such storage pool" % name)
    return sizes


def _roles(problems, roles, pool_sizes):
    """Each role's quotas (sizes in bytes) and flags; None for a field that is not valid."""
    effective = {}
    if not isinstance(roles, dict):
        problems.append("fleet_roles is missing (a mapping of each role to its cpu, memory, disk and pool)"
                        if roles is None else
                        "fleet_roles must be a mapping of each role to its cpu, memory, disk and pool, not %r"
                        % (roles,))
        return effective
    for role, spec in sorted(roles.items(), key=lambda item: str(item[0])):
        where = "fleet_roles.%s" % role
        name_problem = schema.role_name_problem(role)
        if name_problem:
            problems.append("%s: %s" % (where, name_problem))
        valid, found = schema.check(schema.ROLE, spec, where)
        problems += found
        valid = valid or {}
        pool = valid.get("pool")
        if pool is not None and pool not in pool_sizes:
            problems.append("%s: pool %r is not one of the fleet's pools (%s)"
                            % (where, pool, ", ".join(sorted(pool_sizes))))
        effective[role] = {
            "cpu": valid.get("cpu"),
            "memory": parse_size(valid["memory"]) if "memory" in valid else None,
            "disk": parse_size(valid["disk"]) if "disk" in valid else None,
            "pool": pool,
            "docker": valid.get("docker", False),
            "member_required": valid.get("member_required", False),
        }
    return effective


def _network(problems, network):
    """The bridge's address/prefix (None when not valid), its name, and the uplink of routed NICs (or None)."""
    valid, found = schema.check(schema.NETWORK, network, "fleet_network")
    problems += found
    valid = valid or {}
    bridge = ipaddress.IPv4Interface(valid["ipv4"]) if "ipv4" in valid else None
    return bridge, valid.get("name"), valid.get("parent")


def _services(problems, services, roles):
    """Each role's services: those of all, then of docker (a role with docker), then the role's own."""
    keys = list(schema.SERVICE_GROUPS) + sorted(roles, key=str)
    if services is None:
        services = {}
    elif not isinstance(services, dict):
        problems.append("fleet_services must be a mapping of all, docker or a role's name to a list of services, "
                        "not %r" % (services,))
        services = {}
    lists = {}
    for key, entries in services.items():
        where = "fleet_services.%s" % key
        if key not in keys:
            problems.append(schema.unknown("fleet_services.", key, keys, "is not all, docker or a role of fleet_roles"))
            continue
        if not isinstance(entries, list):
            problems.append("%s must be a list of services (name, unit, port), not %r" % (where, entries))
            continue
        lists[key] = []
        for index, entry in enumerate(entries):
            valid, found = schema.check(schema.SERVICE, entry, _where(where, entry, index))
            problems += found
            if not found:
                lists[key].append({"name": valid["name"], "unit": valid["unit"], "port": valid.get("port"),
                                   "from": key})
    # A unit or a name twice in one list; then in two lists that a role's nodes both get.
    for key, items in lists.items():
        for field in ("unit", "name"):
            values = [item[field] for item in items]
            for value in sorted({value for value in values if values.count(value) > 1}):
                problems.append("fleet_services.%s: %s %s is listed twice" % (key, field, value))
    effective, twice = {}, {}
    for role, spec in sorted(roles.items(), key=lambda item: str(item[0])):
        items = [item for key in ["all"] + (["docker"] if spec["docker"] else []) + [role]
                 for item in lists.get(key, [])]
        for field in ("unit", "name"):
            first = {}
            for item in items:
                source = first.setdefault(item[field], item["from"])
                if source != item["from"]:
                    twice.setdefault((field, item[field], source, item["from"]), set()).add(str(role))
        effective[role] = [{"name": item["name"], "unit": item["unit"], "port": item["port"]} for item in items]
    for (field, value, one, other), with_roles in sorted(twice.items()):
        problems.append("fleet_services: %s %s would be listed twice for the nodes of %s %s (in %s and in %s)"
                        % (field, value, "role" if len(with_roles) == 1 else "roles", ", ".join(sorted(with_roles)),
                           one, other))
    return effective


def _host_and_policy(problems, host, policy):
    """fleet_host and fleet_capacity: (CPU threads, memory, memory reserve, overcommit ratios), None if not valid."""
    host, found = schema.check(schema.HOST, host, "fleet_host", ".")
    problems += found
    policy, found = schema.check(schema.CAPACITY, {} if policy is None else policy, "fleet_capacity", ".")
    problems += found
    host, policy = host or {}, policy or {}
    memory = parse_size(host["memory"]) if "memory" in host else None
    reserve = parse_size(policy["memory_reserve"]) if policy.get("memory_reserve") else 0
    if memory is not None and reserve >= memory:
        problems.append("fleet_capacity.memory_reserve %r leaves nothing of the host's %s of memory"
                        % (policy["memory_reserve"], format_size(memory)))
    ratios = {field: float(policy.get(field, 1.0))
              for field in ("cpu_overcommit", "memory_overcommit", "disk_overcommit")}
    return host.get("cpus"), memory, reserve, ratios


def _address(problems, name, ipv4, bridge, bridge_name, addresses):
    """The node's address, in the bridge's subnet and no other node's."""
    if ipv4 is None:
        return None
    address = ipaddress.IPv4Address(ipv4)
    if bridge is not None and (address not in bridge.network or address in (
            bridge.ip, bridge.network.network_address, bridge.network.broadcast_address)):
        problems.append("%s: fleet_ipv4 %s is outside %s's subnet %s or reserved in it"
                        % (name, ipv4, bridge_name, bridge.network))
    elif ipv4 in addresses:
        problems.append("%s: fleet_ipv4 %s is already the address of %s" % (name, ipv4, addresses[ipv4]))
    else:
        addresses[ipv4] = name
    return ipv4


def _member(problems, node, member, logins):
    """The member as the model has it (its fields passed the schema); its login is no other node's."""
    login = member.get("login")
    if login in logins:
        problems.append("%s: fleet_member.login %r is already the member of %s" % (node, login, logins[login]))
    elif login is not None:
        logins[login] = node
    key = member.get("ssh_key")
    return {"login": login, "name": member.get("name", login), "email": member.get("email"),
            "ssh_key": key.strip() if key else None}


def build_model(nodes, roles, network, pools, live_pools=None, app_dir=DEFAULT_APP_DIR,
                compose_command=DEFAULT_COMPOSE_COMMAND, services=None, host=None, policy=None, groups=None,
                variables=None, project=DEFAULT_PROJECT, lxd_host=None, environments=None, secrets_file=None,
                vault_password_file=DEFAULT_VAULT_PASSWORD_FILE, backend=DEFAULT_BACKEND, lxd_hosts=None, hosts=None,
                live_locations=None):
    """Validate the inventory and return the fleet model.

    nodes: {name: {"groups": [...], "ipv4": ..., "member": ..., "cpu"/"memory"/"disk"/"pool": overrides}}
    roles: fleet_roles (role -> cpu, memory, disk, pool, docker, member_required)
    network: fleet_network (name, ipv4 gateway/prefix)
    pools: fleet_pools (name, driver, size and maybe source)
    live_pools: names of the pools the LXD host really has, when known.
    app_dir: the app checkout of a node without a member (a member's is /home/<login>/app).
    compose_command: how docker nodes run compose, "docker-compose" (v1) or "docker compose" (v2).
    services: fleet_services (all, docker or a role -> [{name, unit, port}]); each node gets its role's.
    host, policy: fleet_host and fleet_capacity, checked here too so that every problem is reported at once,
      and no node may have more CPUs than the host has threads (capacity() compares the totals).
    groups: the inventory's groups ({group: [hosts]}): a host of a role group must be in group fleet.
    variables: {host: names of its variables} for every host: a fleet_* name the schema does not know is refused.
    project: fleet_project, the LXD project of the containers and profiles.
    backend: fleet_backend, the LXD host's daemon (lxd or incus); the model carries its entry of BACKENDS
      (module_utils/backend.py): CLI, paths, packages, group, metric names.
    lxd_host: the inventory name of the LXD host (the one host of group lxd_hosts).
    lxd_hosts: group lxd_hosts, when it may hold several: the members of one cluster, the first of them
      the lxd_host the playbooks drive the cluster from. Each node gets a location, the member it runs on:
      its fleet_location, else where it runs now (live_locations: {node: member}, when known: a re-run
      never moves a node by itself), else where place() puts it.
    hosts: {member: fleet_host} of a cluster (host is a single server's); each member's threads bound the
      CPUs of the nodes placed there, and its free memory guides place().
    environments: the roles whose nodes are environments with a shared-services tenant of their own (the
      role's name); by default deploy and staging, those the fleet has. Every member is a tenant (dev_<login>).
    secrets_file, vault_password_file: the shared services' password store on the controller (by default
      one per project) and its vault password file.
    The global facts (project, lxd_host, backend, the store, the CA, the registry, environments, tenants) are in
    the model, and a node's
    (project, lxd_host, tenant) in its entry, so that no role derives them again.
    Raises FleetError naming every bad node and field.
    """
    problems = []
    if secrets_file is None:
        secrets_file = SECRETS_FILE % project
    _options(problems, app_dir, compose_command, project, secrets_file, vault_password_file, backend)
    if variables is not None:
        problems += schema.unknown_variables(variables)
    _groups(problems, nodes, groups, roles)
    pool_sizes = _pools(problems, pools, live_pools)
    role_specs = _roles(problems, roles, pool_sizes)
    bridge, bridge_name, uplink = _network(problems, network)
    # Without fleet_roles, the services' keys and the nodes' role groups cannot be checked: said once, above.
    roles_known = isinstance(roles, dict)
    role_services = _services(problems, services, role_specs) if roles_known else {}
    environments = _environments(problems, environments, roles)
    members = list(lxd_hosts or ([lxd_host] if lxd_host else []))
    lxd_host = members[0] if members else lxd_host
    # LXD and Incus keep a managed bridge's address cluster-wide (only its parent and external interfaces
    # are per member): every member's bridge would answer for the one gateway. Routed NICs need no bridge.
    if len(members) > 1 and bridge_name and not uplink:
        problems.append("fleet_network.parent: a cluster's nodes need it (the uplink each member routes their "
                        "addresses on, like eth0): a bridge's address would be the same on every member")
    if hosts is None and host is not None:
        hosts = {lxd_host: host}
    sizes = {}
    for member, size in (hosts or {}).items():
        found = []
        cpus, memory, reserve, ratios = _host_and_policy(found, size, policy)
        problems += [problem.replace("fleet_host", "%s: fleet_host" % member, 1) if len(members) > 1 else problem
                     for problem in found if problem not in problems]
        sizes[member] = {"cpus": cpus, "free": (memory - reserve) * ratios["memory_overcommit"] if memory else 0}

    model_nodes = {}
    addresses = {}
    logins = {}
    for name in sorted(nodes, key=str):
        node = nodes[name]
        name_problem = schema.node_name_problem(name)
        if name_problem:
            problems.append("%s: %s" % (name, name_problem))
        node_roles = sorted(set(node.get("groups", [])) & set(role_specs))
        if not roles_known:
            continue
        if len(node_roles) != 1:
            problems.append("%s: must be in exactly one role group of %s, is in %s"
                            % (name, ", ".join(sorted(role_specs)), node_roles or "none"))
            continue
        role = node_roles[0]
        spec = dict(role_specs[role])
        valid, found = schema.check(schema.NODE, {k: v for k, v in node.items() if k != "groups"}, name, ": fleet_")
        problems += found
        if "cpu" in valid:
            spec["cpu"] = valid["cpu"]
        for field in ("memory", "disk"):
            if field in valid:
                spec[field] = parse_size(valid[field])
        if "pool" in valid:
            spec["pool"] = valid["pool"]
            if valid["pool"] not in pool_sizes:
                problems.append("%s: fleet_pool %r is not one of the fleet's pools (%s)"
                                % (name, valid["pool"], ", ".join(sorted(pool_sizes))))
        if "location" in valid and valid["location"] not in members:
            problems.append("%s: fleet_location %r is not a host of group lxd_hosts (%s)"
                            % (name, valid["location"], ", ".join(members) or "none"))
        ipv4 = _address(problems, name, valid.get("ipv4"), bridge, bridge_name, addresses)

        member = None
        if "member" in valid:
            member = _member(problems, name, valid["member"], logins)
        elif node.get("member") is None and spec["member_required"]:
            problems.append("%s: role %s needs a fleet_member (login, name, email, ssh_key)" % (name, role))

        model_nodes[name] = {
            "name": name,
            "role": role,
            "profile": "fleet-" + role.replace("_", "-"),
            "cpu": spec["cpu"],
            "memory_bytes": spec["memory"],
            "memory": format_size(spec["memory"]) if spec["memory"] else None,
            "disk_bytes": spec["disk"],
            "disk": format_size(spec["disk"]) if spec["disk"] else None,
            "pool": spec["pool"],
            "docker": spec["docker"],
            "ipv4": ipv4,
            "gateway": str(bridge.ip) if bridge is not None else None,
            "member": member,
            "app_dir": "/home/%s/app" % member["login"] if member else app_dir,
            "compose": compose_command if spec["docker"] else None,
            "services": [dict(service) for service in role_services.get(role, [])],
            "project": project,
            "lxd_host": lxd_host,
            "location": valid.get("location"),
        }
        tenant = tenant_for_node(model_nodes[name], environments)
        model_nodes[name]["tenant"] = tenant["name"] if tenant else None
    place(model_nodes, members, sizes, live_locations or {})
    for name, node in sorted(model_nodes.items()):
        threads = sizes.get(node["location"], {}).get("cpus")
        if threads is not None and node["cpu"] is not None and node["cpu"] > threads:
            problems.append("%s: %s %d is more than the %s's %d CPU threads" % (
                name, "fleet_cpu" if nodes[name].get("cpu") is not None else "cpu (fleet_roles.%s.cpu)" % node["role"],
                node["cpu"], "host" if len(members) < 2 else "member %s" % node["location"], threads))
    try:
        tenant_names = [tenant["name"] for tenant in tenants(model_nodes, environments)]
    except TenantError as error:
        problems.append(str(error))
    if problems:
        raise FleetError(problems)
    profiles = {
        role: {
            "name": "fleet-" + role.replace("_", "-"),
            "cpu": spec["cpu"], "memory": format_size(spec["memory"]),
            "disk": format_size(spec["disk"]), "pool": spec["pool"], "docker": spec["docker"],
        }
        for role, spec in role_specs.items()
    }
    registry_node = next((model_nodes[name] for name in sorted(model_nodes) if model_nodes[name]["role"] == REGISTRY_ROLE), None)
    registry = None
    if registry_node:
        registry = {"node": registry_node["name"], "address": registry_node["ipv4"], "port": REGISTRY_PORT,
                    "host": "%s:%d" % (registry_node["ipv4"], REGISTRY_PORT)}
    return {"nodes": model_nodes, "profiles": profiles, "pools": pool_sizes,
            "members": {node["member"]["login"]: name for name, node in model_nodes.items() if node["member"]},
            "network": {"name": bridge_name, "ipv4": str(bridge), "subnet": str(bridge.network),
                        "gateway": str(bridge.ip), "parent": uplink},
            "project": project, "lxd_host": lxd_host, "lxd_hosts": members, "clustered": len(members) > 1,
            "hosts": {member: dict(size) for member, size in (hosts or {}).items() if isinstance(size, dict)},
            "environments": environments, "tenants": tenant_names,
            "secrets_file": secrets_file, "vault_password_file": vault_password_file,
            "ca_dir": CA_DIR % project, "registry": registry, "backend": backend_entry(backend)}


def place(nodes, members, sizes, live_locations):
    """Give each node its location: its fleet_location, else where it runs now, else the member with the most
    memory left after the nodes placed before it (its memory after the reserve, as capacity() counts it), the
    biggest nodes first; ties go to the member listed first. The same inventory gives the same placement, and
    a node already running stays where it is."""
    left = {member: sizes.get(member, {}).get("free", 0) for member in members}
    for node in nodes.values():
        if node["location"] is None and live_locations.get(node["name"]) in left:
            node["location"] = live_locations[node["name"]]
        if node["location"] in left:
            left[node["location"]] -= node["memory_bytes"] or 0
    for node in sorted(nodes.values(), key=lambda n: (-(n["memory_bytes"] or 0), n["name"])):
        if node["location"] is None and members:
            node["location"] = max(members, key=lambda m: (left[m], -members.index(m)))
            left[node["location"]] -= node["memory_bytes"] or 0


def model_from_inventory(hostvars, groups, options, nodes=None, locations=None, without=None):
    """build_model of an inventory, as Ansible gives it: every fleet node's entry from its variables.

    hostvars: {host: its variables} for every host (Ansible's hostvars, or a plain mapping); groups: {group:
    [hosts]}; options: build_model's keyword arguments (inventory_options); nodes: the fleet's node names
    (default: group fleet). The LXD hosts are group lxd_hosts: one server, or the members of one cluster.
    A move is planned with locations ({node: member, or None to let the model place it}, over fleet_location)
    and without (a member the nodes must leave: it takes none).
    """
    fleet = list(nodes or groups.get("fleet", []))
    in_fleet = set(fleet)
    entries, variables = {}, {}
    for name in dict.fromkeys([*groups.get("all", []), *fleet]):
        # One look-up of the host's variables; listing their names templates none of them.
        host = hostvars[name]
        variables[name] = [var for var in host if var.startswith("fleet_")]
        if name in in_fleet:
            entry = {"groups": list(host.get("group_names", [])),
                     "ipv4": host.get("fleet_ipv4"), "member": host.get("fleet_member")}
            for field in (*QUOTA_FIELDS, "location"):
                entry[field] = host.get("fleet_" + field)
            if name in (locations or {}):
                entry["location"] = locations[name]
            entries[name] = entry
    members = [member for member in groups.get("lxd_hosts", []) if member != without]
    return build_model(entries, groups=groups, variables=variables, lxd_hosts=members, **options)


def inventory_options(variables, given=None):
    """build_model's options: each one in ``given``, else the inventory variable INVENTORY_VARIABLES names.

    variables: one host's variables (a mapping). An optional option the inventory leaves unset is left out
    (build_model's default); a required one reaches build_model as None, which reports it missing.
    """
    given = given or {}
    options = {}
    for option, variable in INVENTORY_VARIABLES.items():
        value = given[option] if option in given else variables.get(variable)
        if value is not None or option in _REQUIRED_OPTIONS:
            options[option] = value
    return options


def _show(resource):
    """How the capacity table writes an amount of the resource (cpu, memory or disk:<pool>)."""
    if resource == "cpu":
        return lambda v: "%g" % v
    if resource == "memory":
        return lambda v: format_size(int(v)) if v and v == int(v) else "%.1fGiB" % (v / GiB)
    return lambda v: "%.1fGiB" % (v / GiB)


def capacity(model, host, policy, where=("the fleet asks", "the host may hand out")):
    """Compare the fleet's totals with what the host may hand out.

    host: fleet_host {"cpus": whole number, "memory": size}; pool sizes come from the model.
    policy: fleet_capacity (memory_reserve, memory_overcommit, cpu_overcommit, disk_overcommit).
    Returns {"rows": [...], "problems": [...]}; a problem names the resource and its biggest consumers.
    Raises FleetError naming the variable and field when host or policy is not valid.
    """
    errors = []
    cpus, memory_total, reserve, ratios = _host_and_policy(errors, host, policy)
    if errors:
        raise FleetError(errors)

    nodes = list(model["nodes"].values())
    resources = [
        ("cpu", "CPU", cpus * ratios["cpu_overcommit"], nodes, lambda n: n["cpu"]),
        ("memory", "memory", (memory_total - reserve) * ratios["memory_overcommit"], nodes, lambda n: n["memory_bytes"]),
    ]
    for pool, size in sorted(model["pools"].items()):
        if size is None:
            continue
        on_pool = [n for n in nodes if n["pool"] == pool]
        resources.append(("disk:" + pool, "disk on pool " + pool, size * ratios["disk_overcommit"],
                          on_pool, lambda n: n["disk_bytes"]))
    rows, problems = [], []
    for key, label, available, members, amount in resources:
        show = _show(key)
        requested = sum(amount(n) for n in members)
        row = {"resource": key, "requested": requested, "available": available,
               "used_percent": round(100.0 * requested / available, 1) if available > 0 else None,
               "requested_text": show(requested), "available_text": show(available)}
        rows.append(row)
        if requested > available:
            biggest = sorted(members, key=lambda n: (-amount(n), n["name"]))[:5]
            problems.append("%s overcommitted: %s %s, %s %s. Biggest consumers: %s"
                            % (label, where[0], show(requested), where[1], show(available),
                               ", ".join("%s %s" % (n["name"], show(amount(n))) for n in biggest)))
    return {"rows": rows, "problems": problems}


def _on_member(model, member):
    """The model with only the nodes placed on member."""
    return dict(model, nodes={name: node for name, node in model["nodes"].items() if node["location"] == member})


def cluster_capacity(model, hosts, policy):
    """capacity() of each member of a cluster against the nodes placed there (hosts: {member: fleet_host}).

    Returns {"members": {member: its report}, "rows": the cluster's totals, "problems": every member's,
    each naming the member}: a member that is overcommitted is refused even when the cluster has room.
    """
    members, problems, totals = {}, [], {}
    for member in model["lxd_hosts"]:
        report = capacity(_on_member(model, member), hosts[member], policy,
                          ("the nodes placed on member %s ask" % member, "it may hand out"))
        members[member] = report
        problems += report["problems"]
        for row in report["rows"]:
            total = totals.setdefault(row["resource"], {"resource": row["resource"], "requested": 0, "available": 0})
            total["requested"] += row["requested"]
            total["available"] += row["available"]
    rows = []
    for total in totals.values():
        total["used_percent"] = round(100.0 * total["requested"] / total["available"], 1) if total["available"] > 0 else None
        show = _show(total["resource"])
        total["requested_text"], total["available_text"] = show(total["requested"]), show(total["available"])
        rows.append(total)
    return {"members": members, "rows": rows, "problems": problems}


def cluster_capacity_table(model, report):
    """capacity_table of each member (its nodes, its totals), then the cluster's totals."""
    lines = []
    for member, member_report in report["members"].items():
        lines += ["member %s" % member] + capacity_table(_on_member(model, member), member_report["rows"]) + [""]
    lines += ["cluster of %d members" % len(report["members"])] + _totals_lines(report["rows"])
    return lines


def _totals_lines(rows):
    lines = ["%-18s %12s %12s %7s" % ("resource", "requested", "available", "used")]
    for row in rows:
        lines.append("%-18s %12s %12s %6s%%" % (
            row["resource"], row["requested_text"], row["available_text"], row["used_percent"]))
    return lines


def capacity_table(model, rows):
    """Human-readable lines: one per node, then the totals against the host."""
    lines = ["%-16s %-8s %4s %9s %9s  %-8s %s" % ("node", "role", "cpu", "memory", "disk", "pool", "address")]
    for node in sorted(model["nodes"].values(), key=lambda n: n["name"]):
        lines.append("%-16s %-8s %4s %9s %9s  %-8s %s" % (
            node["name"], node["role"], node["cpu"], node["memory"], node["disk"], node["pool"], node["ipv4"]))
    lines.append("")
    return lines + _totals_lines(rows)
