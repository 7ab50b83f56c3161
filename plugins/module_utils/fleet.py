# -*- coding: utf-8 -*-
# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet model: inventory data -> validated nodes with effective quotas, and capacity arithmetic.

One place turns the inventory into the fleet (role defaults + node overrides), so that plan.yml,
the lxd_fleet role and the tests all agree. Every error names the node and the field.
"""

from __future__ import annotations

import ipaddress
import re

__metaclass__ = type

# LXD's own units: decimal kB/MB/GB/TB, binary KiB/MiB/GiB/TiB, plain bytes.
_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$", re.IGNORECASE)
# An LXD instance name: letters, digits and dashes, starting with a letter, not ending with a dash.
_NODE_RE = re.compile(r"^[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
# A portable Linux login (what useradd accepts without --badname).
_LOGIN_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_SSH_KEY_RE = re.compile(r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-\S+)\s+[A-Za-z0-9+/=]+(\s.*)?$")

# Node fields an inventory entry may set (as fleet_<field>); all but role/ipv4/member override
# the role's profile.
QUOTA_FIELDS = ("cpu", "memory", "disk", "pool")
GiB = 2**30


class FleetError(ValueError):
    """The inventory does not describe a valid fleet; the message lists every problem found."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("invalid fleet inventory:\n" + "\n".join("  - " + p for p in self.problems))


def parse_size(value):
    """Bytes from an LXD-style size ('8GiB', '512MiB', '300GB', 1073741824); ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(value)
        return value
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ValueError(value)
    number, unit = match.groups()
    size = int(float(number) * _UNITS[(unit or "").lower()])
    if size <= 0:
        raise ValueError(value)
    return size


def format_size(size):
    """The shortest exact LXD size string for a byte count ('8GiB', '1536MiB', '123B')."""
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size % factor == 0:
            return "%d%s" % (size // factor, unit)
    return "%dB" % size


def _size_field(problems, where, field, value):
    try:
        return parse_size(value)
    except (TypeError, ValueError):
        problems.append("%s: %s %r is not a size (write it like 8GiB, 512MiB or 300GB)" % (where, field, value))
        return None


def _cpu_field(problems, where, field, value):
    if isinstance(value, bool) or not str(value).isdigit() or int(value) < 1:
        problems.append("%s: %s %r is not a whole number of CPUs (1 or more)" % (where, field, value))
        return None
    return int(value)


def _member(problems, node, member, logins):
    if not isinstance(member, dict):
        problems.append("%s: fleet_member must be a mapping with login, name, email" % node)
        return None
    login = str(member.get("login", ""))
    if not _LOGIN_RE.match(login):
        problems.append("%s: fleet_member.login %r is not a valid Linux login (lowercase letters, digits, _ and -, "
                        "starting with a letter, at most 32)" % (node, login))
    elif login in logins:
        problems.append("%s: fleet_member.login %r is already the member of %s" % (node, login, logins[login]))
    else:
        logins[login] = node
    email = member.get("email")
    if email is not None and not re.match(r"^[^@\s]+@[^@\s]+$", str(email)):
        problems.append("%s: fleet_member.email %r is not an e-mail address" % (node, email))
    key = member.get("ssh_key")
    if key is not None and not _SSH_KEY_RE.match(str(key).strip()):
        problems.append("%s: fleet_member.ssh_key is not an OpenSSH public key line" % node)
    return {
        "login": login,
        "name": str(member.get("name", login)),
        "email": email,
        "ssh_key": str(key).strip() if key else None,
    }


def _network(problems, network):
    try:
        return ipaddress.ip_interface(str(network["ipv4"]))
    except (KeyError, TypeError, ValueError):
        problems.append("fleet_network: ipv4 %r must be the bridge's address and prefix, like 10.10.10.1/24"
                        % (network or {}).get("ipv4"))
        return None


def _roles(problems, roles, pool_names):
    effective = {}
    for role, spec in sorted((roles or {}).items()):
        where = "fleet_roles.%s" % role
        if not isinstance(spec, dict):
            problems.append("%s: must be a mapping of cpu, memory, disk, pool" % where)
            continue
        memory = _size_field(problems, where, "memory", spec.get("memory"))
        disk = _size_field(problems, where, "disk", spec.get("disk"))
        cpu = _cpu_field(problems, where, "cpu", spec.get("cpu"))
        pool = spec.get("pool")
        if pool not in pool_names:
            problems.append("%s: pool %r is not one of the fleet's pools (%s)" % (where, pool, ", ".join(sorted(pool_names))))
        effective[role] = {
            "cpu": cpu, "memory": memory, "disk": disk, "pool": pool,
            "docker": bool(spec.get("docker", False)),
            "member_required": bool(spec.get("member_required", False)),
        }
    return effective


def build_model(nodes, roles, network, pools, live_pools=None):
    """Validate the inventory and return the fleet model.

    nodes: {name: {"groups": [...], "ipv4": ..., "member": ..., "cpu"/"memory"/"disk"/"pool": overrides}}
    roles: fleet_roles (role -> cpu, memory, disk, pool, docker, member_required)
    network: fleet_network (name, ipv4 gateway/prefix)
    pools: fleet_pools (name, driver, size or source)
    live_pools: names of the pools the LXD host really has, when known.
    Raises FleetError naming every bad node and field.
    """
    problems = []
    pool_sizes = {}
    for pool in pools or []:
        name = pool.get("name") if isinstance(pool, dict) else None
        if not name:
            problems.append("fleet_pools: every pool needs a name (%r)" % (pool,))
            continue
        pool_sizes[name] = _size_field(problems, "fleet_pools.%s" % name, "size", pool["size"]) if "size" in pool else None
    if live_pools is not None:
        for name in sorted(set(pool_sizes) - set(live_pools)):
            problems.append("fleet_pools.%s: the LXD host has no such storage pool" % name)
    role_specs = _roles(problems, roles, set(pool_sizes))
    bridge = _network(problems, network)

    model_nodes = {}
    addresses = {}
    logins = {}
    for name in sorted(nodes):
        node = nodes[name]
        if not _NODE_RE.match(name):
            problems.append("%s: not a valid container name (letters, digits, dashes; at most 63)" % name)
        node_roles = sorted(set(node.get("groups", [])) & set(role_specs))
        if len(node_roles) != 1:
            problems.append("%s: must be in exactly one role group of %s, is in %s"
                            % (name, ", ".join(sorted(role_specs)), node_roles or "none"))
            continue
        role = node_roles[0]
        spec = dict(role_specs[role])
        if node.get("cpu") is not None:
            spec["cpu"] = _cpu_field(problems, name, "fleet_cpu", node["cpu"])
        for field in ("memory", "disk"):
            if node.get(field) is not None:
                spec[field] = _size_field(problems, name, "fleet_" + field, node[field])
        if node.get("pool") is not None:
            spec["pool"] = node["pool"]
            if node["pool"] not in pool_sizes:
                problems.append("%s: fleet_pool %r is not one of the fleet's pools (%s)"
                                % (name, node["pool"], ", ".join(sorted(pool_sizes))))

        ipv4 = node.get("ipv4")
        if ipv4 is not None:
            ipv4 = str(ipv4)
            try:
                address = ipaddress.ip_address(ipv4)
            except ValueError:
                problems.append("%s: fleet_ipv4 %r is not an IPv4 address" % (name, ipv4))
            else:
                if bridge is not None and (address not in bridge.network or address in (
                        bridge.ip, bridge.network.network_address, bridge.network.broadcast_address)):
                    problems.append("%s: fleet_ipv4 %s is outside %s's subnet %s or reserved in it"
                                    % (name, ipv4, network.get("name"), bridge.network))
                elif ipv4 in addresses:
                    problems.append("%s: fleet_ipv4 %s is already the address of %s" % (name, ipv4, addresses[ipv4]))
                else:
                    addresses[ipv4] = name

        member = None
        if node.get("member") is not None:
            member = _member(problems, name, node["member"], logins)
        elif spec["member_required"]:
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
            "member": member,
        }
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
    return {"nodes": model_nodes, "profiles": profiles, "pools": pool_sizes,
            "network": {"name": network["name"], "ipv4": str(bridge), "subnet": str(bridge.network)}}


def capacity(model, host, policy):
    """Compare the fleet's totals with what the host may hand out.

    host: {"cpus": int, "memory": size}; pool sizes come from the model.
    policy: fleet_capacity (memory_reserve, memory_overcommit, cpu_overcommit, disk_overcommit).
    Returns {"rows": [...], "problems": [...]}; a problem names the resource and its biggest consumers.
    """
    policy = policy or {}
    nodes = list(model["nodes"].values())
    memory_total = parse_size(host["memory"])
    reserve = parse_size(policy.get("memory_reserve", 0)) if policy.get("memory_reserve") else 0
    resources = [
        ("cpu", "CPU", int(host["cpus"]) * float(policy.get("cpu_overcommit", 1.0)),
         nodes, lambda n: n["cpu"], lambda v: "%g" % v),
        ("memory", "memory", (memory_total - reserve) * float(policy.get("memory_overcommit", 1.0)),
         nodes, lambda n: n["memory_bytes"], lambda v: format_size(int(v)) if v == int(v) else "%.1fGiB" % (v / GiB)),
    ]
    for pool, size in sorted(model["pools"].items()):
        if size is None:
            continue
        on_pool = [n for n in nodes if n["pool"] == pool]
        resources.append(("disk:" + pool, "disk on pool " + pool, size * float(policy.get("disk_overcommit", 1.0)),
                          on_pool, lambda n: n["disk_bytes"], lambda v: "%.1fGiB" % (v / GiB)))
    rows, problems = [], []
    for key, label, available, members, amount, show in resources:
        requested = sum(amount(n) for n in members)
        row = {"resource": key, "requested": requested, "available": available,
               "used_percent": round(100.0 * requested / available, 1) if available else None,
               "requested_text": show(requested), "available_text": show(available)}
        rows.append(row)
        if requested > available:
            biggest = sorted(members, key=lambda n: (-amount(n), n["name"]))[:5]
            problems.append("%s overcommitted: the fleet asks %s, the host may hand out %s. Biggest consumers: %s"
                            % (label, show(requested), show(available),
                               ", ".join("%s %s" % (n["name"], show(amount(n))) for n in biggest)))
    return {"rows": rows, "problems": problems}


def capacity_table(model, rows):
    """Human-readable lines: one per node, then the totals against the host."""
    lines = ["%-16s %-8s %4s %9s %9s  %-8s %s" % ("node", "role", "cpu", "memory", "disk", "pool", "address")]
    for node in sorted(model["nodes"].values(), key=lambda n: n["name"]):
        lines.append("%-16s %-8s %4s %9s %9s  %-8s %s" % (
            node["name"], node["role"], node["cpu"], node["memory"], node["disk"], node["pool"], node["ipv4"] or "dhcp"))
    lines.append("")
    lines.append("%-18s %12s %12s %7s" % ("resource", "requested", "available", "used"))
    for row in rows:
        lines.append("%-18s %12s %12s %6s%%" % (
            row["resource"], row["requested_text"], row["available_text"], row["used_percent"]))
    return lines
