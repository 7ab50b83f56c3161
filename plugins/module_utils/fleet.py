# -*- coding: utf-8 -*-
# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet model: inventory data -> validated nodes with effective quotas, and capacity arithmetic.

One place turns the inventory into the fleet (role defaults + node overrides), so that plan.yml,
the lxd_fleet role and the tests all agree. Every error names the node and the field.
"""

from __future__ import annotations

import ipaddress
import math
import re

__metaclass__ = type

# Exactly what LXD 5.0's units.ParseByteSizeString (shared/units/units.go) accepts, so that a size the
# model passes LXD would also pass: a run of ASCII digits (an integer: no sign, no fraction, no blank)
# directly followed by one of these suffixes, case-sensitive ("kB" but "KiB"; "KB", "gb", "Gi" are
# refused). " bytes" (with its blank) is LXD's own spelling of plain bytes.
_UNITS = {
    "": 1, "B": 1, " bytes": 1,
    "kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "PB": 10**15, "EB": 10**18,
    "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "PiB": 2**50, "EiB": 2**60,
}
_SIZE_RE = re.compile(r"([0-9]+)(%s)" % "|".join(re.escape(unit) for unit in sorted(_UNITS, key=len, reverse=True)))
_INT64_MAX = 2**63 - 1  # LXD refuses a size that overflows int64
# An LXD instance name that DNS keeps as written: lowercase letters, digits and dashes, starting with a
# letter, not ending with a dash, at most 63 (one DNS label). LXD and DNS fold case, so no uppercase.
_NODE_RE = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
# A portable Linux login (what useradd accepts without --badname).
_LOGIN_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
# Accounts and groups a Debian node already has (base-passwd, the packages the node layer installs, the
# usual service accounts): a teammate's login must not take one over (useradd also refuses a login that
# is an existing group's name). Any login starting with "systemd-" is refused as well.
SYSTEM_ACCOUNTS = frozenset((
    # base-passwd users
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
    "www-data", "backup", "list", "irc", "gnats", "nobody", "_apt",
    # base-passwd groups
    "adm", "tty", "disk", "kmem", "dialout", "fax", "voice", "cdrom", "floppy", "tape", "sudo", "audio",
    "dip", "operator", "src", "shadow", "utmp", "video", "sasl", "plugdev", "staff", "users", "nogroup",
    # services of a Debian node and of the fleet
    "messagebus", "sshd", "_ssh", "ssh", "polkitd", "docker", "crontab", "netdev", "input", "render", "kvm",
    "sgx", "lxd", "uuidd", "tcpdump", "tss", "dnsmasq", "avahi", "ntp", "_chrony", "statd", "_rpc",
    "postfix", "postdrop", "postgres", "redis", "minio", "grafana", "prometheus", "node-exporter",
    "admin", "wheel",
))
_EMAIL_RE = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# One authorized_keys line: type, blank, base64, optional comment; no line break anywhere.
_SSH_KEY_RE = re.compile(
    r"(ssh-(?:ed25519|rsa|dss)|ecdsa-sha2-nistp[0-9]+|sk-[^\s\x00-\x1f\x7f]+)"
    r"[ \t]+[A-Za-z0-9+/=]+(?:[ \t][^\x00-\x1f\x7f]*)?")

# Node fields an inventory entry may set (as fleet_<field>); all but role/ipv4/member override
# the role's profile.
QUOTA_FIELDS = ("cpu", "memory", "disk", "pool")
GiB = 2**30
# Where a node without a member keeps the app checkout (a member's is /home/<login>/app).
DEFAULT_APP_DIR = "/opt/fleet-app"
# The compose commands the node layer knows: v1 (Debian's docker-compose) and the v2 plugin.
COMPOSE_COMMANDS = ("docker-compose", "docker compose")
DEFAULT_COMPOSE_COMMAND = "docker-compose"


class FleetError(ValueError):
    """The inventory does not describe a valid fleet; the message lists every problem found."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("invalid fleet inventory:\n" + "\n".join("  - " + p for p in self.problems))


def parse_size(value):
    """Bytes from a size LXD accepts ('8GiB', '512MiB', '300GB', '2048', 1073741824); ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        match = _SIZE_RE.fullmatch(value)
        if not match:
            raise ValueError(value)
        size = int(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(value)
    if size <= 0 or size > _INT64_MAX:
        raise ValueError(value)
    return size


def format_size(size):
    """The shortest exact LXD size string for a byte count ('8GiB', '1536MiB', '123B')."""
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size % factor == 0:
            return "%d%s" % (size // factor, unit)
    return "%dB" % size


def _size_hint(value):
    """What is wrong with a size string, in LXD's terms; '' when nothing specific."""
    if not isinstance(value, str):
        return ""
    if value != value.strip() or (re.search(r"[0-9]\s+[A-Za-z]", value) and not value.endswith(" bytes")):
        return "; LXD takes no blank: write it like 8GiB"
    if "." in value or "," in value:
        return "; LXD takes whole numbers only: write 1536MiB, not 1.5GiB"
    unit = value.lstrip("0123456789")
    known = [u for u in _UNITS if u and u.lower() == unit.lower()]
    if unit and known and unit not in _UNITS:
        return "; LXD units are case-sensitive: write %s" % known[0]
    return ""


def _size_field(problems, where, field, value):
    try:
        return parse_size(value)
    except (TypeError, ValueError):
        problems.append("%s: %s %r is not a size (write it like 8GiB, 512MiB or 300GB)%s"
                        % (where, field, value, _size_hint(value)))
        return None


def _whole_number(value):
    """A positive int from an int or a string of ASCII digits, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"[0-9]+", value):
        number = int(value)
    else:
        return None
    return number if number >= 1 else None


def _cpu_field(problems, where, field, value):
    number = _whole_number(value)
    if number is None:
        problems.append("%s: %s %r is not a whole number of CPUs (1 or more)" % (where, field, value))
    return number


def _login_problem(login):
    """Why login cannot be a teammate's login, or None."""
    if not _LOGIN_RE.fullmatch(login):
        return ("is not a valid Linux login (lowercase letters, digits, _ and -, starting with a letter, "
                "at most 32)")
    if login in SYSTEM_ACCOUNTS or login.startswith("systemd-"):
        return "is a system account or group of the nodes; a teammate needs a login of their own"
    return None


def _member(problems, node, member, logins):
    if not isinstance(member, dict):
        problems.append("%s: fleet_member must be a mapping with login, name, email" % node)
        return None
    login = str(member.get("login", ""))
    problem = _login_problem(login)
    if problem:
        problems.append("%s: fleet_member.login %r %s" % (node, login, problem))
    elif login in logins:
        problems.append("%s: fleet_member.login %r is already the member of %s" % (node, login, logins[login]))
    else:
        logins[login] = node
    name = str(member.get("name", login))  # checked only when given: a bad login is reported once, as the login
    if "name" in member and _CONTROL_RE.search(name):
        problems.append("%s: fleet_member.name %r holds a control character (a line break, a tab...)" % (node, name))
    elif "name" in member and ":" in name:
        problems.append("%s: fleet_member.name %r holds a colon, which /etc/passwd cannot store" % (node, name))
    email = member.get("email")
    if email is not None and not _EMAIL_RE.fullmatch(str(email)):
        problems.append("%s: fleet_member.email %r is not an e-mail address" % (node, email))
    key = member.get("ssh_key")
    # Blanks and line breaks around the key are dropped (a YAML block scalar ends with one); inside it is one line.
    if key is not None and not _SSH_KEY_RE.fullmatch(str(key).strip()):
        problems.append("%s: fleet_member.ssh_key is not an OpenSSH public key line" % node)
    return {
        "login": login,
        "name": name,
        "email": email,
        "ssh_key": str(key).strip() if key else None,
    }


def _node_name_problem(name):
    """Why name cannot be a node (LXD instance and DNS name), or None."""
    if not isinstance(name, str):
        return "not a valid container name (a string is needed)"
    if _NODE_RE.fullmatch(name):
        return None
    if _NODE_RE.fullmatch(name.lower()):
        return ("uppercase letters are refused in a node name: LXD/DNS fold case, so %s and %s would be the same "
                "host (write %s)" % (name, name.lower(), name.lower()))
    return ("not a valid container name (lowercase letters, digits and dashes, starting with a letter, not ending "
            "with a dash; at most 63)")


def _network(problems, network):
    if not isinstance(network, dict):
        problems.append("fleet_network: must be a mapping with name and ipv4")
        return None
    if not network.get("name") or not isinstance(network["name"], str):
        problems.append("fleet_network: name is missing (the LXD bridge's name)")
    try:
        bridge = ipaddress.IPv4Interface(str(network["ipv4"]))
    except (KeyError, TypeError, ValueError):
        problems.append("fleet_network: ipv4 %r must be the bridge's address and prefix, like 10.10.10.1/24"
                        % network.get("ipv4"))
        return None
    if bridge.ip in (bridge.network.network_address, bridge.network.broadcast_address):
        problems.append("fleet_network: ipv4 %s must be the bridge's (gateway's) own address, like 10.10.10.1/24"
                        % bridge)
        return None
    return bridge


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
            problems.append("%s: pool %r is not one of the fleet's pools (%s)"
                            % (where, pool, ", ".join(sorted(pool_names))))
        effective[role] = {
            "cpu": cpu, "memory": memory, "disk": disk, "pool": pool,
            "docker": bool(spec.get("docker", False)),
            "member_required": bool(spec.get("member_required", False)),
        }
    return effective


def _options(problems, app_dir, compose_command):
    if not isinstance(app_dir, str) or not app_dir.startswith("/") or _CONTROL_RE.search(app_dir):
        problems.append("app_dir %r must be an absolute path, like %s" % (app_dir, DEFAULT_APP_DIR))
    if compose_command not in COMPOSE_COMMANDS:
        problems.append("compose_command %r must be one of %s"
                        % (compose_command, ", ".join(repr(c) for c in COMPOSE_COMMANDS)))


def build_model(nodes, roles, network, pools, live_pools=None, app_dir=DEFAULT_APP_DIR,
                compose_command=DEFAULT_COMPOSE_COMMAND):
    """Validate the inventory and return the fleet model.

    nodes: {name: {"groups": [...], "ipv4": ..., "member": ..., "cpu"/"memory"/"disk"/"pool": overrides}}
    roles: fleet_roles (role -> cpu, memory, disk, pool, docker, member_required)
    network: fleet_network (name, ipv4 gateway/prefix)
    pools: fleet_pools (name, driver, size and maybe source)
    live_pools: names of the pools the LXD host really has, when known.
    app_dir: the app checkout of a node without a member (a member's is /home/<login>/app).
    compose_command: how docker nodes run compose, "docker-compose" (v1) or "docker compose" (v2).
    Raises FleetError naming every bad node and field.
    """
    problems = []
    _options(problems, app_dir, compose_command)
    pool_sizes = {}
    for pool in pools or []:
        name = pool.get("name") if isinstance(pool, dict) else None
        if not name:
            problems.append("fleet_pools: every pool needs a name (%r)" % (pool,))
            continue
        where = "fleet_pools.%s" % name
        if pool.get("size") is None:
            problems.append("%s: size is missing; the disk capacity check needs it" % where)
            pool_sizes[name] = None
        else:
            pool_sizes[name] = _size_field(problems, where, "size", pool["size"])
    if live_pools is not None:
        for name in sorted(set(pool_sizes) - set(live_pools)):
            problems.append("fleet_pools.%s: the LXD host has no such storage pool" % name)
    role_specs = _roles(problems, roles, set(pool_sizes))
    bridge = _network(problems, network)

    model_nodes = {}
    addresses = {}
    logins = {}
    for name in sorted(nodes, key=str):
        node = nodes[name]
        name_problem = _node_name_problem(name)
        if name_problem:
            problems.append("%s: %s" % (name, name_problem))
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
        if ipv4 is None or ipv4 == "":
            problems.append("%s: fleet_ipv4 is missing (the node layer reaches each node by SSH at its static address)"
                            % name)
            ipv4 = None
        else:
            ipv4 = str(ipv4)
            try:
                address = ipaddress.IPv4Address(ipv4)
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
            "gateway": str(bridge.ip) if bridge is not None else None,
            "member": member,
            "app_dir": "/home/%s/app" % member["login"] if member else app_dir,
            "compose": compose_command if spec["docker"] else None,
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
            "members": {node["member"]["login"]: name for name, node in model_nodes.items() if node["member"]},
            "network": {"name": network["name"], "ipv4": str(bridge), "subnet": str(bridge.network),
                        "gateway": str(bridge.ip)}}


def _ratio(problems, policy, field):
    """An overcommit ratio of fleet_capacity: a finite number above 0 (default 1)."""
    value = policy.get(field)
    if value is None:
        return 1.0
    where = "fleet_capacity.%s" % field
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        ratio = float(value)
    except (TypeError, ValueError):
        problems.append("%s %r is not a number" % (where, value))
        return None
    if not math.isfinite(ratio) or ratio <= 0:
        problems.append("%s %r must be a number greater than 0" % (where, value))
        return None
    return ratio


def capacity(model, host, policy):
    """Compare the fleet's totals with what the host may hand out.

    host: fleet_host {"cpus": whole number, "memory": size}; pool sizes come from the model.
    policy: fleet_capacity (memory_reserve, memory_overcommit, cpu_overcommit, disk_overcommit).
    Returns {"rows": [...], "problems": [...]}; a problem names the resource and its biggest consumers.
    Raises FleetError naming the variable and field when host or policy is not valid.
    """
    errors = []
    if not isinstance(host, dict):
        raise FleetError(["fleet_host must be a mapping with cpus and memory, not %r" % (host,)])
    policy = policy or {}
    if not isinstance(policy, dict):
        raise FleetError(["fleet_capacity must be a mapping, not %r" % (policy,)])
    cpus = memory_total = None
    if host.get("cpus") is None:
        errors.append("fleet_host.cpus is missing")
    else:
        cpus = _whole_number(host["cpus"])
        if cpus is None:
            errors.append("fleet_host.cpus %r is not a whole number (1 or more)" % (host["cpus"],))
    if host.get("memory") is None:
        errors.append("fleet_host.memory is missing")
    else:
        try:
            memory_total = parse_size(host["memory"])
        except ValueError:
            errors.append("fleet_host.memory %r is not a size (write it like 84GiB)%s"
                          % (host["memory"], _size_hint(host["memory"])))
    reserve = 0
    if policy.get("memory_reserve") not in (None, 0, "0"):
        try:
            reserve = parse_size(policy["memory_reserve"])
        except ValueError:
            errors.append("fleet_capacity.memory_reserve %r is not a size (write it like 2GiB)%s"
                          % (policy["memory_reserve"], _size_hint(policy["memory_reserve"])))
    ratios = {field: _ratio(errors, policy, field)
              for field in ("cpu_overcommit", "memory_overcommit", "disk_overcommit")}
    if errors:
        raise FleetError(errors)

    nodes = list(model["nodes"].values())
    resources = [
        ("cpu", "CPU", cpus * ratios["cpu_overcommit"],
         nodes, lambda n: n["cpu"], lambda v: "%g" % v),
        ("memory", "memory", (memory_total - reserve) * ratios["memory_overcommit"],
         nodes, lambda n: n["memory_bytes"], lambda v: format_size(int(v)) if v == int(v) else "%.1fGiB" % (v / GiB)),
    ]
    for pool, size in sorted(model["pools"].items()):
        if size is None:
            continue
        on_pool = [n for n in nodes if n["pool"] == pool]
        resources.append(("disk:" + pool, "disk on pool " + pool, size * ratios["disk_overcommit"],
                          on_pool, lambda n: n["disk_bytes"], lambda v: "%.1fGiB" % (v / GiB)))
    rows, problems = [], []
    for key, label, available, members, amount, show in resources:
        requested = sum(amount(n) for n in members)
        row = {"resource": key, "requested": requested, "available": available,
               "used_percent": round(100.0 * requested / available, 1) if available > 0 else None,
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
            node["name"], node["role"], node["cpu"], node["memory"], node["disk"], node["pool"], node["ipv4"]))
    lines.append("")
    lines.append("%-18s %12s %12s %7s" % ("resource", "requested", "available", "used"))
    for row in rows:
        lines.append("%-18s %12s %12s %6s%%" % (
            row["resource"], row["requested_text"], row["available_text"], row["used_percent"]))
    return lines
