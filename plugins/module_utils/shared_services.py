# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared services' tenants, named from the fleet model.

A tenant is who gets a PostgreSQL database and login role of the same name, a Redis database index
and an S3 bucket with its access key: each teammate (``dev_<login>``, from the member of their node)
and each environment (a node whose role is listed, e.g. ``deploy``, ``staging``: the role's name).
Names are PostgreSQL identifiers that need no quoting (lowercase letters, digits, ``_``; at most 63
bytes), derived the same way on every host, so the infra node and each app node agree on them.

Must stay importable on Python 3.8+.
"""

from __future__ import annotations

import re

__all__ = ["DEFAULT_ENVIRONMENTS", "TenantError", "bucket_name", "tenant_for_node", "tenants"]

# The node roles that are environments when the inventory does not say (shared_services_environments).
DEFAULT_ENVIRONMENTS = ("deploy", "staging")

_UNSAFE = re.compile(r"[^a-z0-9_]")
# Names the server itself uses: a tenant may not take them.
RESERVED = frozenset(["postgres", "template0", "template1", "prometheus", "public", "redis", "minio"])


class TenantError(ValueError):
    """Two tenants would share a name, or a name is not usable."""


def _identifier(text):
    name = _UNSAFE.sub("_", str(text).lower())
    if not name or not name[0].isalpha():
        name = "t_" + name
    return name


def tenant_for_node(node, environments, member_prefix="dev_"):
    """The tenant of one fleet node (its ``fleet_node``), or None when it has none.

    A node whose role is in ``environments`` is that environment's tenant; a node with a member is
    the member's tenant. An environment's node wins when both hold (a teammate's deploy node serves
    the environment).
    """
    role = node.get("role")
    if role in environments:
        return {"name": _identifier(role), "kind": "environment", "node": node.get("name"), "login": None}
    member = node.get("member") or {}
    if member.get("login"):
        return {"name": _identifier(member_prefix + member["login"]), "kind": "member",
                "node": node.get("name"), "login": member["login"]}
    return None


def tenants(nodes, environments, member_prefix="dev_"):
    """Every tenant of the fleet, sorted by name; raises TenantError on a clash or a bad name.

    ``nodes`` is the fleet model's ``nodes`` (a mapping name -> node, or a list of nodes). Several
    nodes of one environment (two staging nodes) share its tenant.
    """
    values = nodes.values() if isinstance(nodes, dict) else nodes
    found = {}
    for node in sorted(values, key=lambda n: n.get("name") or ""):
        tenant = tenant_for_node(node, environments, member_prefix)
        if tenant is None:
            continue
        name = tenant["name"]
        if name in RESERVED:
            raise TenantError("node %s: tenant name %s is reserved by the shared services" % (tenant["node"], name))
        if len(name.encode("utf-8")) > 63:
            raise TenantError("node %s: tenant name %s is longer than 63 bytes" % (tenant["node"], name))
        other = found.get(name)
        if other is not None:
            if other["kind"] == "environment" and tenant["kind"] == "environment":
                other["nodes"].append(tenant["node"])
                continue
            raise TenantError("nodes %s and %s would share the tenant name %s" % (other["node"], tenant["node"], name))
        tenant["nodes"] = [tenant["node"]]
        found[name] = tenant
    return [found[name] for name in sorted(found)]


def bucket_name(tenant_name):
    """An S3 bucket name for a tenant (S3 allows no ``_``): ``dev_hj`` -> ``dev-hj``."""
    name = tenant_name.replace("_", "-").strip("-")
    return name if len(name) >= 3 else name + "-bucket"
