# -*- coding: utf-8 -*-
# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory's rules as data: every fleet_* variable, and one table row per field of its mappings.

A row says what the field holds (its kind, below), why it is required when it is, and its bounds. check()
applies a table to a mapping and reports every problem at once, each naming the variable (or the node) and
the field; an unknown field gets a did-you-mean. What relates values to each other (a role's pool among
the pools, one address per node, a node's CPUs against the host's threads, the services of a role) is
fleet.py's.

Strict on purpose: a careless edit must fail, not be read as something else. A size is a string with
its unit (a bare 8 is 8 bytes to LXD); a count is an unquoted YAML integer ('4' and 4.0 are refused); a
flag is a YAML boolean (the string 'false' would count as true).

Why not Ansible's ArgumentSpecValidator (the machinery behind meta/argument_specs.yml): tried on
fleet_capacity and fleet_pools, it converts where this must refuse ('false' to False, '4' to 4), its
messages for a nested mapping name neither the pool nor the role ("... found in fleet_pools") and list
another mapping's keys as the supported ones, it has no did-you-mean, and it needs Ansible where this
module also runs without it (bench/, the unit tests).
"""

from __future__ import annotations

import base64
import binascii
import difflib
import ipaddress
import math
import re
import struct
from typing import NamedTuple

__metaclass__ = type

MiB, GiB = 2**20, 2**30

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

# The least a size may be: below these the figure is a typo, not a choice. A node runs systemd,
# journald and sshd before any work (64 MiB); its root disk holds the base image (230 MB unpacked)
# and Docker's files (1 GiB); a pool holds at least one such disk; a host below 1 GiB runs no fleet.
# A size without a unit (8 is 8 bytes) is refused before these.
NODE_MEMORY_MIN = 64 * MiB
NODE_DISK_MIN = GiB
POOL_SIZE_MIN = GiB
HOST_MEMORY_MIN = GiB
# The storage drivers LXD 5.0 knows.
POOL_DRIVERS = ("btrfs", "ceph", "cephfs", "cephobject", "dir", "lvm", "zfs")


class Rule(NamedTuple):
    """One field: its kind (a key of KINDS), why it is required ("" when optional), its bounds."""
    kind: str
    required: str = ""
    low: float | None = None
    high: float | None = None
    example: str = "8GiB, 512MiB or 300GB"  # a size's example, in its message
    choices: tuple = ()
    table: dict | None = None  # a nested mapping's table


# The tables, one row per field: Rule(kind, why it is required (no reason: optional), bounds). A kind is
# one of KINDS below: size (a string with its unit, at least low), cpus and port (a YAML integer from low
# to high), ratio (a YAML number from low to high), bool (a YAML boolean), choice (one of choices), name,
# ifname, unit, login, fullname, email, ssh_key, ipv4, gateway, settings, text, or mapping (a nested table).
#
# The overcommit ratios' bounds: below 0.1 is a typo whatever the resource; CPU limits are shares of
# time, and past 16 times the host's threads a limit no longer limits anything; memory limits are
# memory the kernel must find, and past 2 times the OOM killer decides which node loses; a thin pool
# (btrfs, lvm-thin, zfs) uses only what is written, and past 4 times the pool a full disk is only a
# matter of time.
ROLE = {  # each entry of fleet_roles; it becomes the LXD profile fleet-<role>
    "cpu": Rule("cpus", "the profile's CPU limit", low=1),  # at most the host's threads (fleet.py)
    "memory": Rule("size", "the profile's memory limit", low=NODE_MEMORY_MIN),
    "disk": Rule("size", "the size of the root disk", low=NODE_DISK_MIN),
    "pool": Rule("name", "the storage pool of the root disk"),  # one of fleet_pools (fleet.py)
    "docker": Rule("bool"),  # false when unset
    "member_required": Rule("bool"),  # false when unset
}
MEMBER = {  # fleet_member of a node: the teammate it belongs to
    "login": Rule("login", "the teammate's Linux account"),  # no other node's (fleet.py)
    "name": Rule("fullname"),  # the login when unset
    "email": Rule("email"),
    "ssh_key": Rule("ssh_key"),
}
NODE = {  # a node's host entry, fleet_<field>; cpu, memory, disk and pool override its role's
    "ipv4": Rule("ipv4", "the node layer reaches each node by SSH at its static address"),  # in the subnet
    "member": Rule("mapping", table=MEMBER),  # required by a role with member_required (fleet.py)
    "cpu": Rule("cpus", low=1),
    "memory": Rule("size", low=NODE_MEMORY_MIN),
    "disk": Rule("size", low=NODE_DISK_MIN),
    "pool": Rule("name"),
    "location": Rule("name"),  # one of group lxd_hosts (fleet.py)
}
NETWORK = {  # fleet_network: the bridge every node sits on, or (parent) the uplink a cluster's members route
    "name": Rule("ifname", "the LXD bridge's name"),
    "ipv4": Rule("gateway", "the bridge's address and prefix, like 10.10.10.1/24"),
    "config": Rule("settings"),  # more of the bridge's LXD settings (lxd_host)
    # Routed NICs on this interface of every member instead of a bridge (fleet.py: a cluster needs it);
    # ipv4 is then the uplink's router and prefix.
    "parent": Rule("ifname"),
}
POOL = {  # each entry of fleet_pools; no two with one name
    "name": Rule("name", "LXD's name of the pool"),
    "driver": Rule("choice", "LXD's storage driver", choices=POOL_DRIVERS),
    "size": Rule("size", "the disk capacity check needs it", low=POOL_SIZE_MIN, example="1600GiB"),
    "source": Rule("text"),  # a device or a directory; a loop file when unset
}
HOST = {  # fleet_host: the LXD host's size (read from its nproc and /proc/meminfo when unset)
    "cpus": Rule("cpus", "the capacity check needs the host's CPU threads", low=1),
    "memory": Rule("size", "the capacity check needs the host's memory", low=HOST_MEMORY_MIN, example="84GiB"),
}
CAPACITY = {  # fleet_capacity: what the host may hand out
    "memory_reserve": Rule("size", low=0, example="2GiB"),  # 0 when unset; less than the host's memory
    "memory_overcommit": Rule("ratio", low=0.1, high=2),  # 1 when unset
    "cpu_overcommit": Rule("ratio", low=0.1, high=16),  # 1 when unset
    "disk_overcommit": Rule("ratio", low=0.1, high=4),  # 1 when unset
}
SERVICE = {  # each service of fleet_services (under all, docker or a role's name); once per node
    "name": Rule("name", "a short label, like sshd"),
    "unit": Rule("unit", "the systemd unit, like ssh.service"),
    "port": Rule("port", low=1, high=65535),  # the TCP port it answers on, if any
}
SERVICE_GROUPS = ("all", "docker")  # fleet_services keys besides the roles' names

# Every fleet_* variable there is. A host variable starting with fleet_ that is none of these is refused
# with a did-you-mean: a misspelt name would otherwise be ignored without a word.
NODE_VARIABLES = {
    "fleet_ipv4": "the node's static address on the bridge",
    "fleet_member": "the teammate the node belongs to (login, name, email, ssh_key)",
    "fleet_cpu": "overrides the role's cpu",
    "fleet_memory": "overrides the role's memory",
    "fleet_disk": "overrides the role's disk",
    "fleet_pool": "overrides the role's pool",
    "fleet_location": "the cluster member (a host of lxd_hosts) the node runs on; the model places it when unset",
}
GLOBAL_VARIABLES = {
    "fleet_backend": "the daemon of the LXD host: lxd or incus",
    "fleet_project": "the LXD project of the containers and profiles",
    "fleet_image": "the base image's alias",
    "fleet_network": "the bridge (NETWORK)",
    "fleet_pools": "the storage pools (POOL)",
    "fleet_roles": "the roles' quotas (ROLE)",
    "fleet_host": "the LXD host's size (HOST)",
    "fleet_capacity": "the overcommit policy (CAPACITY)",
    "fleet_services": "what every node must have running (SERVICE)",
    "fleet_ssh_key_file": "the controller's SSH key for the nodes",
    "fleet_ssh_jump_host": "the server's name in a teammate's ssh config",
    "fleet_ssh_proxy_jump": "reach the nodes through fleet_ssh_jump_host",
    "fleet_app_dir": "the app checkout of a node without a member",
    "fleet_app_compose_project": "the app's compose project name",
    "fleet_compose_command": "docker-compose or docker compose",
    "fleet_export_dir": "where offboard.yml keeps its exports",
    "fleet_export_compression": "offboard.yml's export compression",
    "fleet_target": "the nodes an operation runs on (-e)",
    "fleet_plan": "model.yml also prints the capacity table (plan.yml)",
}
FACTS = {  # set by model.yml on the hosts, never by the user
    "fleet_node": "each node's part of the model",
    "fleet_model": "the whole model, on the LXD host",
}
VARIABLES = {**NODE_VARIABLES, **GLOBAL_VARIABLES, **FACTS}

# An LXD instance name that DNS keeps as written: lowercase letters, digits and dashes, starting with a
# letter, not ending with a dash, at most 63 (one DNS label). LXD and DNS fold case, so no uppercase.
_NODE_RE = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
# A role is an Ansible group (no dashes: Ansible warns of them) and the profile fleet-<role, _ as ->.
_ROLE_RE = re.compile(r"[a-z][a-z0-9_]{0,56}")
_RESERVED_ROLES = ("all", "ungrouped", "fleet", "lxd_hosts", "docker")
# A pool's or a service's name: what LXD takes in a name and in its API paths, kept to plain characters.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# A bridge: a Linux interface name (at most 15, IFNAMSIZ less its NUL), plain characters.
_IFNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,14}")
# A systemd service unit, maybe a template's instance (postgresql@15-main.service); at most 255.
_UNIT_RE = re.compile(r"(?=.{1,255}$)[A-Za-z0-9:_.-]+(?:@[A-Za-z0-9:_.-]+)?\.service")
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
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# One authorized_keys line: type, blank, base64, optional comment; no line break anywhere.
_SSH_KEY_RE = re.compile(r"(\S+)[ \t]+([A-Za-z0-9+/]+={0,2})(?:[ \t]+[^\x00-\x1f\x7f]*)?")
SSH_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
                 "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")


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


# Each kind: (value, rule) -> what is wrong, said after "<where> <field> ", or None.

def _is_int(value):
    """A YAML integer: an int but no bool (Ansible hands over its own subclasses of int, tagged with their origin)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _size(value, rule):
    if rule.low == 0 and value == 0 and _is_int(value):
        return None
    if _is_int(value) or (isinstance(value, str) and value.isascii() and value.isdigit()):
        return "%r has no unit, so LXD would read it as bytes: write it like %s" % (value, rule.example)
    try:
        size = parse_size(value)
    except ValueError:
        return "%r is not a size (write it like %s)%s" % (value, rule.example, _size_hint(value))
    if size < rule.low:
        return "%r is less than %s, the least it may be" % (value, format_size(rule.low))
    return None


def _integer(value, rule, what, example):
    if _is_int(value) and value >= rule.low and (rule.high is None or value <= rule.high):
        return None
    bounds = "%d or more" % rule.low if rule.high is None else "%d to %d" % (rule.low, rule.high)
    return "%r is not %s (%s, written as a YAML integer: %d, not '%d' or %d.0)" % (
        value, what, bounds, example, example, example)


def _ratio(value, rule):
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
            and rule.low <= value <= rule.high:
        return None
    return "%r is not a number from %g to %g (written unquoted, like 1.5)" % (value, rule.low, rule.high)


def _bool(value, rule):
    if isinstance(value, bool):
        return None
    return "%r is not true or false (a YAML boolean, unquoted: the string 'false' would count as true)" % (value,)


def _pattern(regex, what):
    def check(value, rule):
        if isinstance(value, str) and regex.fullmatch(value):
            return None
        return "%r is not %s" % (value, what)
    return check


def _login(value, rule):
    if not isinstance(value, str) or not _LOGIN_RE.fullmatch(value):
        return ("%r is not a valid Linux login (lowercase letters, digits, _ and -, starting with a letter, "
                "at most 32)" % (value,))
    if value in SYSTEM_ACCOUNTS or value.startswith("systemd-"):
        return "%r is a system account or group of the nodes; a teammate needs a login of their own" % value
    return None


def _text(value, rule):
    if not isinstance(value, str) or not value:
        return "%r is not a text" % (value,)
    if CONTROL_RE.search(value):
        return "%r holds a control character (a line break, a tab...)" % value
    return None


def _fullname(value, rule):
    problem = _text(value, rule)
    if problem is None and ":" in value:
        return "%r holds a colon, which /etc/passwd cannot store" % value
    return problem


def _email(value, rule):
    if isinstance(value, str) and _EMAIL_RE.fullmatch(value):
        return None
    return "%r is not an e-mail address" % (value,)


def _ssh_key(value, rule):
    """An authorized_keys line whose base64 really holds a key of the type it names."""
    # Blanks and line breaks around the key are dropped (a YAML block scalar ends with one); inside it is one line.
    match = _SSH_KEY_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if not match:
        return "is not an OpenSSH public key line (type, blank, base64 key, optional comment, on one line)"
    kind, blob = match.group(1), match.group(2)
    if kind not in SSH_KEY_TYPES:
        return "is not an OpenSSH public key line: %r is not a key type (%s)" % (kind, ", ".join(SSH_KEY_TYPES))
    try:
        blob = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return "is not an OpenSSH public key line: its key is not valid base64"
    # The key starts with its type again, as a length-prefixed string (RFC 4253, 6.6); an ed25519 key
    # then holds the 32 bytes of the point, as one more such string.
    head = struct.pack(">I", len(kind)) + kind.encode()
    if not blob.startswith(head):
        return "is not an OpenSSH public key line: its base64 does not hold a %s key" % kind
    point = blob[len(head):]
    if kind == "ssh-ed25519" and (len(point) != 36 or point[:4] != struct.pack(">I", 32)):
        return "is not an OpenSSH public key line: its base64 does not hold a 32-byte ed25519 key"
    return None


def _ipv4(value, rule):
    try:
        ipaddress.IPv4Address(value if isinstance(value, str) else None)
    except ValueError:
        return "%r is not an IPv4 address" % (value,)
    return None


def _gateway(value, rule):
    try:
        bridge = ipaddress.IPv4Interface(value if isinstance(value, str) and "/" in value else None)
    except ValueError:
        return "%r must be the bridge's address and prefix, like 10.10.10.1/24" % (value,)
    if bridge.network.prefixlen > 30:
        return "%s leaves no address for a node: use a prefix of 30 or less, like 10.10.10.1/24" % bridge
    if bridge.ip in (bridge.network.network_address, bridge.network.broadcast_address):
        return "%s must be the bridge's (gateway's) own address, like 10.10.10.1/24" % bridge
    return None


def _settings(value, rule):
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return None
    return "%r is not a mapping of LXD settings" % (value,)


def _choice(value, rule):
    if isinstance(value, str) and value in rule.choices:
        return None
    close = difflib.get_close_matches(str(value), rule.choices, n=1)
    return "%r is not one of %s%s" % (value, ", ".join(rule.choices), "; did you mean %s?" % close[0] if close else "")


KINDS = {
    "size": _size,
    "cpus": lambda value, rule: _integer(value, rule, "a whole number of CPUs", 4),
    "port": lambda value, rule: _integer(value, rule, "a TCP port", 5432),
    "ratio": _ratio,
    "bool": _bool,
    "choice": _choice,
    "name": _pattern(_NAME_RE, "a valid name (letters, digits, _ . and -, starting with a letter or digit, "
                               "at most 63)"),
    "ifname": _pattern(_IFNAME_RE, "a valid bridge name (at most 15 characters, the kernel's limit; letters, digits, "
                                   "_ and -, starting with a letter or digit)"),
    "unit": _pattern(_UNIT_RE, "a systemd service unit (letters, digits and :_.@-, ending in .service, like "
                               "ssh.service)"),
    "login": _login,
    "fullname": _fullname,
    "email": _email,
    "ssh_key": _ssh_key,
    "ipv4": _ipv4,
    "gateway": _gateway,
    "settings": _settings,
    "text": _text,
}


def unknown(prefix, key, known, what="is not a known field"):
    """'<prefix><key> is not a known field; did you mean <closest>? (known: ...)'."""
    close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1)
    return "%s%s %s%s (known: %s)" % (prefix, key, what, "; did you mean %s?" % close[0] if close else "",
                                      ", ".join(known))


def check(table, value, where, sep=": "):
    """Check the mapping value against table: (its fields that passed, the problems).

    Each problem reads where + sep + field + what is wrong ('fleet_roles.dev: cpu ...', 'fleet_host.cpus ...',
    'dev-a: fleet_member.login ...'). A field set to None counts as unset. The fields that passed are
    returned as given (a nested mapping's as its own fields that passed); None when value is no mapping.
    """
    if value is None:
        return None, ["%s is missing (a mapping of %s)" % (where, ", ".join(table))]
    if not isinstance(value, dict):
        return None, ["%s must be a mapping of %s, not %r" % (where, ", ".join(table), value)]
    problems = [unknown(where + sep, key, table) for key in value if key not in table]
    valid = {}
    for field, rule in table.items():
        item = value.get(field)
        if item is None:
            if rule.required:
                problems.append("%s%s%s is missing (%s)" % (where, sep, field, rule.required))
            continue
        if rule.kind == "mapping":
            nested, found = check(rule.table, item, where + sep + field, ".")
            problems += found
            if nested is not None:
                valid[field] = nested
            continue
        problem = KINDS[rule.kind](item, rule)
        if problem:
            problems.append("%s%s%s %s" % (where, sep, field, problem))
        else:
            valid[field] = item
    return valid, problems


def node_name_problem(name):
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


def role_name_problem(name):
    """Why name cannot be a role (an Ansible group, an LXD profile fleet-<role>), or None."""
    if not isinstance(name, str) or not _ROLE_RE.fullmatch(name):
        return ("%r is not a valid role name (lowercase letters, digits and _, starting with a letter, at most 57: "
                "it is an Ansible group and the LXD profile fleet-<role>)" % (name,))
    if name in _RESERVED_ROLES:
        return "%r cannot be a role: it is taken (%s)" % (name, ", ".join(_RESERVED_ROLES))
    return None


def unknown_variables(variables):
    """Problems for host variables named fleet_* that are none of VARIABLES.

    variables: {host: the names of its variables} for every host of the inventory. A name every host has
    (group_vars/all.yml, -e) is reported once; else once per host.
    """
    hosts_of = {}
    for host, names in variables.items():
        for name in names:
            if isinstance(name, str) and name.startswith("fleet_") and name not in VARIABLES:
                hosts_of.setdefault(name, []).append(host)
    problems = []
    for name, hosts in sorted(hosts_of.items()):
        close = difflib.get_close_matches(name, list(VARIABLES), n=1)
        what = "is not a fleet variable%s" % ("; did you mean %s?" % close[0] if close else
                                              " (plugins/module_utils/fleet_schema.py lists them)")
        if len(hosts) > 1 and len(hosts) == len(variables):
            problems.append("%s %s (set for every host: group_vars/all.yml or -e)" % (name, what))
        else:
            problems += ["%s: %s %s" % (host, name, what) for host in sorted(hosts)]
    return problems
