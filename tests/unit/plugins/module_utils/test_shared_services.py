"""Tenants named from the fleet model, and the SCRAM-SHA-256 check against a verifier made as PostgreSQL does."""

from __future__ import annotations

import base64
import hashlib
import hmac

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


def _verifier(password, salt=b"0123456789abcdef", iterations=4096):
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return "SCRAM-SHA-256$%d:%s$%s:%s" % (iterations, _b64(salt), _b64(hashlib.sha256(client).digest()), _b64(server))


def _b64(data):
    return base64.b64encode(data).decode()


def test_scram_matches():
    verifier = _verifier("right-password")
    assert ss.scram_matches("right-password", verifier)
    assert not ss.scram_matches("wrong-password", verifier)
    assert not ss.scram_matches("right-password", "md5abcdef")
    assert not ss.scram_matches("right-password", "")


def test_pg_state():
    state = ss.pg_state(["role|dev_hj|SCRAM-SHA-256$x", "db|dev_hj|dev_hj|f", "db|postgres|postgres|t",
                         "member|prometheus|pg_monitor", "noise"])
    assert state == {"roles": {"dev_hj": "SCRAM-SHA-256$x"},
                     "databases": {"dev_hj": {"owner": "dev_hj", "public_connect": False},
                                   "postgres": {"owner": "postgres", "public_connect": True}},
                     "members": {"prometheus": ["pg_monitor"]}}
