"""Tenants named from the fleet model, and their bucket names."""

from __future__ import annotations

import pytest
from ansible_collections.adelie.fleet.plugins.module_utils import shared_services as ss


def _node(name, role, login=None):
    return {"name": name, "role": role, "member": {"login": login} if login else None}


def test_tenants_per_member_and_environment():
    listed = [_node("infra-server", "infra"), _node("deploy-test", "deploy"), _node("staging", "staging"),
              _node("dev-hj", "dev", "hj"), _node("dev-x", "dev_ai", "Ry.e-jin")]
    nodes = {n["name"]: n for n in listed}
    tenants = ss.tenants(nodes, ["deploy", "staging"])
    assert [t["name"] for t in tenants] == ["deploy", "dev_hj", "dev_ry_e_jin", "staging"]
    assert ss.tenant_for_node(nodes["infra-server"], ["deploy"]) is None
    assert ss.bucket_name("dev_hj") == "dev-hj"


def test_clashes_and_reserved_names_are_refused():
    with pytest.raises(ss.TenantError, match="share the tenant name dev_a_b"):
        ss.tenants([_node("n1", "dev", "a.b"), _node("n2", "dev", "a-b")], [])
    with pytest.raises(ss.TenantError, match="reserved"):
        ss.tenants([_node("n1", "postgres")], ["postgres"])
    two = ss.tenants([_node("s1", "staging"), _node("s2", "staging")], ["staging"])
    assert two[0]["nodes"] == ["s1", "s2"]
