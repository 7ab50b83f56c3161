"""The inventory's schema (fleet_schema) and the relations fleet.build_model adds: strict types, units and
bounds, did-you-mean for unknown fields and variables, names LXD and the kernel take, real SSH keys,
duplicates, the inventory's shape, and the services of each node."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ansible_collections.adelie.fleet.plugins.module_utils import fleet_schema as schema
from ansible_collections.adelie.fleet.plugins.module_utils.fleet import FleetError, build_model

REPO = Path(__file__).resolve().parents[4]
ROLES = {
    "infra": {"cpu": 2, "memory": "4GiB", "disk": "20GiB", "pool": "nvme", "docker": True},
    "dev": {"cpu": 4, "memory": "8GiB", "disk": "150GiB", "pool": "nvme", "docker": True, "member_required": True},
    "db": {"cpu": 1, "memory": "1GiB", "disk": "5GiB", "pool": "nvme"},
}
NETWORK = {"name": "fleetbr0", "ipv4": "10.10.10.1/24"}
POOLS = [{"name": "nvme", "driver": "btrfs", "size": "1TiB"}]
NODES = {
    "infra-server": {"groups": ["fleet", "infra"], "ipv4": "10.10.10.10"},
    "dev-a": {"groups": ["fleet", "dev"], "ipv4": "10.10.10.31", "member": {"login": "alice"}},
    "db-1": {"groups": ["fleet", "db"], "ipv4": "10.10.10.50"},
}
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDYugKFFPh0TVS+6gjCgMFsNIac1aVD3Wku2TjT5itAY"
ECDSA = ("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPrFPpPkKU43oqmTWjvsKZ9yCGZuZ+M/GLqxu"
         "w9266mJE3ly0Tzu4ygq5BhfPCfMN8FYpBUCbyQA7/QrjQFxBvo=")
RSA = ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQD+6waYmcXQ1JDXy7XhsYUmdk85KVtb+8ogC1RuLfBJ712+2eNLbhj/q5nBd7AHoIoIvqtrGnc"
       "fC+tM2DEWwVjDXuZujBppKydZlcGewoj9j6E2dWse9EY/ZCyffCcEhirA2PZnjr2mNmJRsQEIwhaPfTI99T+KN90zpl08C7fjIw==")


def model(**kwargs):
    """build_model of the fixtures above, any of them replaced by a keyword."""
    args = {"nodes": NODES, "roles": ROLES, "network": NETWORK, "pools": POOLS}
    args.update(kwargs)
    return build_model(**args)


def problems(**kwargs):
    with pytest.raises(FleetError) as error:
        model(**kwargs)
    return error.value.problems


def check(table, value):
    return schema.check(table, value, "x")[1]


# ---------------------------------------------------------------------------
# values: strict types, units, bounds
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    (8, "x: memory 8 has no unit, so LXD would read it as bytes: write it like 8GiB, 512MiB or 300GB"),
    ("8", "x: memory '8' has no unit"),
    (8.0, "x: memory 8.0 is not a size"),
    ("63MiB", "x: memory '63MiB' is less than 64MiB, the least it may be"),
    ("67108863B", "x: memory '67108863B' is less than 64MiB"),
])
def test_role_memory_needs_a_unit_and_64_mib(value, expected):
    found = check(schema.ROLE, {**ROLES["db"], "memory": value})
    assert len(found) == 1 and found[0].startswith(expected), found


@pytest.mark.parametrize("table, field, low", [
    (schema.ROLE, "memory", "64MiB"), (schema.ROLE, "disk", "1GiB"), (schema.NODE, "memory", "64MiB"),
    (schema.NODE, "disk", "1GiB"), (schema.POOL, "size", "1GiB"), (schema.HOST, "memory", "1GiB")])
def test_size_lower_bounds(table, field, low):
    low_bytes = schema.parse_size(low)
    assert schema.KINDS["size"]("%dB" % low_bytes, table[field]) is None
    assert "is less than %s" % low in schema.KINDS["size"]("%dB" % (low_bytes - 1), table[field])


def test_memory_reserve_may_be_zero():
    assert check(schema.CAPACITY, {"memory_reserve": 0}) == []
    assert check(schema.CAPACITY, {"memory_reserve": "0"}) == ["x: memory_reserve '0' has no unit, so LXD would "
                                                               "read it as bytes: write it like 2GiB"]


@pytest.mark.parametrize("value", ["false", "true", "yes", "no", 0, 1, "False", ""])
def test_flags_must_be_yaml_booleans(value):
    found = check(schema.ROLE, {**ROLES["db"], "docker": value, "member_required": value})
    assert [p.split(" ")[1] for p in found] == ["docker", "member_required"], found
    assert "the string 'false' would count as true" in found[0]


def test_unset_flags_and_none_are_false():
    nodes = model(roles={**ROLES, "db": {**ROLES["db"], "docker": None}})["nodes"]
    assert (nodes["db-1"]["docker"], nodes["db-1"]["compose"], nodes["infra-server"]["docker"]) == (False, None, True)


@pytest.mark.parametrize("value, ok", [(1, True), (4, True), (0, False), (-2, False), ("4", False), (4.0, False),
                                       (True, False), (None, True)])
def test_cpus_are_yaml_integers(value, ok):
    assert (check(schema.NODE, {"ipv4": "10.0.0.2", "cpu": value}) == []) is ok


@pytest.mark.parametrize("field, value, ok", [
    ("cpu_overcommit", 0.1, True), ("cpu_overcommit", 16, True), ("cpu_overcommit", 16.01, False),
    ("cpu_overcommit", 0.09, False), ("cpu_overcommit", 1e9, False), ("cpu_overcommit", float("inf"), False),
    ("memory_overcommit", 2.0, True), ("memory_overcommit", 2.5, False), ("disk_overcommit", 4, True),
    ("disk_overcommit", 4.5, False), ("disk_overcommit", float("nan"), False), ("disk_overcommit", "1.0", False)])
def test_overcommit_ratios_stay_in_range(field, value, ok):
    assert (check(schema.CAPACITY, {field: value}) == []) is ok


@pytest.mark.parametrize("port, ok", [(1, True), (22, True), (65535, True), (0, False), (65536, False),
                                      ("22", False), (22.0, False), (True, False)])
def test_service_port(port, ok):
    assert (check(schema.SERVICE, {"name": "sshd", "unit": "ssh.service", "port": port}) == []) is ok


# ---------------------------------------------------------------------------
# unknown fields and variables
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("table, key, closest", [
    (schema.ROLE, "dockr", "docker"), (schema.ROLE, "member_requried", "member_required"),
    (schema.MEMBER, "ssh-key", "ssh_key"), (schema.MEMBER, "mail", "email"), (schema.NODE, "ipv", "ipv4"),
    (schema.CAPACITY, "memory_reserv", "memory_reserve"), (schema.HOST, "cpu", "cpus"),
    (schema.NETWORK, "nmae", "name"), (schema.POOL, "drive", "driver"), (schema.SERVICE, "prot", "port")])
def test_unknown_field_gets_a_did_you_mean(table, key, closest):
    found = schema.check(table, {key: 1}, "x")[1]
    assert found[0] == "x: %s is not a known field; did you mean %s? (known: %s)" % (key, closest, ", ".join(table))


def test_unknown_field_without_a_close_one():
    assert schema.check(schema.HOST, {"cpus": 4, "memory": "8GiB", "colour": "red"}, "fleet_host", ".")[1] == [
        "fleet_host.colour is not a known field (known: cpus, memory)"]


def test_nested_member_fields_are_checked():
    found = schema.check(schema.NODE, {"ipv4": "10.0.0.2", "member": {"login": "bob", "mail": "b@x"}}, "n",
                         ": fleet_")[1]
    assert found == ["n: fleet_member.mail is not a known field; did you mean email? (known: login, name, email, "
                     "ssh_key)"]
    assert schema.check(schema.NODE, {"ipv4": "10.0.0.2", "member": "bob"}, "n", ": fleet_")[1] == [
        "n: fleet_member must be a mapping of login, name, email, ssh_key, not 'bob'"]


def test_unknown_variables():
    every = ["fleet_roles", "fleet_capcity"]
    found = schema.unknown_variables({"localhost": every, "dev-a": every + ["fleet_memroy", "fleet_node"],
                                      "dev-b": every + ["fleet_zzz_qqq", "fleet_memroy"]})
    assert found == [
        "fleet_capcity is not a fleet variable; did you mean fleet_capacity? (set for every host: group_vars/all.yml "
        "or -e)",
        "dev-a: fleet_memroy is not a fleet variable; did you mean fleet_memory?",
        "dev-b: fleet_memroy is not a fleet variable; did you mean fleet_memory?",
        "dev-b: fleet_zzz_qqq is not a fleet variable (plugins/module_utils/fleet_schema.py lists them)"]


def test_every_fleet_variable_the_repository_uses_is_known():
    # The Ansible side (YAML and templates): a name there the schema did not know would be refused.
    used = set()
    for folder in ("roles", "playbooks", "inventories", "tests", "molecule"):
        for path in (REPO / folder).rglob("*"):
            if path.suffix in (".yml", ".yaml", ".j2"):
                used |= set(re.findall(r"(?<![.\w])fleet_[a-z0-9_]+", path.read_text(encoding="utf-8")))
    assert used - set(schema.VARIABLES) == set()
    assert {"fleet_services", "fleet_node", "fleet_model", "fleet_target"} <= used


# ---------------------------------------------------------------------------
# names and keys
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", [ED25519, ED25519 + " alice@test", ED25519 + "\n", ECDSA + " e@x", RSA])
def test_real_ssh_keys_pass(key):
    assert schema.KINDS["ssh_key"](key, None) is None


@pytest.mark.parametrize("key, why", [
    ("ssh-rsa hello", "its key is not valid base64"),
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFleetTestKeyAliceAAAAAAAAAAAAAAAAAAAAAAAA", "not valid base64"),
    ("ssh-rsa " + ED25519.split()[1], "its base64 does not hold a ssh-rsa key"),
    ("ecdsa-sha2-nistp384 " + ECDSA.split()[1], "does not hold a ecdsa-sha2-nistp384 key"),
    (ED25519[:-4], "does not hold a 32-byte ed25519 key"),
    (ED25519 + "AAAA", "does not hold a 32-byte ed25519 key"),
    ("ssh-foo " + ED25519.split()[1], "'ssh-foo' is not a key type"),
    (ED25519.split()[1], "(type, blank, base64 key"),
    (ED25519 + " a\n" + RSA, "(type, blank, base64 key"),
    (42, "(type, blank, base64 key"),
])
def test_ssh_keys_that_are_no_keys(key, why):
    problem = schema.KINDS["ssh_key"](key, None)
    assert problem.startswith("is not an OpenSSH public key line") and why in problem, problem


@pytest.mark.parametrize("kind, value, ok", [
    ("ifname", "fleetbr0", True), ("ifname", "a" * 15, True), ("ifname", "a" * 16, False),
    ("ifname", "br 0", False), ("ifname", "-br0", False), ("ifname", "br/0", False), ("ifname", "br:0", False),
    ("name", "nvme", True), ("name", "hdd-2", True), ("name", "my pool", False), ("name", "../x", False),
    ("name", "a" * 64, False),
    ("unit", "ssh.service", True), ("unit", "postgresql@15-main.service", True),
    ("unit", "prometheus-node-exporter.service", True), ("unit", "ssh", False), ("unit", "ssh.socket", False),
    ("unit", "foo@.service", False), ("unit", "a b.service", False), ("unit", "x" * 250 + ".service", False),
    ("gateway", "10.10.10.1/24", True), ("gateway", "10.10.10.1", False), ("gateway", "10.10.10.1/31", False),
    ("gateway", "10.10.10.0/24", False), ("ipv4", "10.10.10.5", True), ("ipv4", 168430085, False),
])
def test_names_and_addresses(kind, value, ok):
    assert (schema.KINDS[kind](value, None) is None) is ok


@pytest.mark.parametrize("driver", schema.POOL_DRIVERS)
def test_every_lxd_driver_passes(driver):
    assert check(schema.POOL, {"name": "p", "driver": driver, "size": "10GiB"}) == []


def test_unknown_driver_gets_a_did_you_mean():
    assert check(schema.POOL, {"name": "p", "driver": "btrfss", "size": "10GiB"}) == [
        "x: driver 'btrfss' is not one of btrfs, ceph, cephfs, cephobject, dir, lvm, zfs; did you mean btrfs?"]


@pytest.mark.parametrize("role, why", [("dev-ai", "is not a valid role name"), ("Dev", "is not a valid role name"),
                                       ("a" * 58, "is not a valid role name"), ("docker", "cannot be a role"),
                                       ("all", "cannot be a role"), ("fleet", "cannot be a role")])
def test_role_names(role, why):
    found = problems(roles={**ROLES, role: ROLES["db"]})
    assert any(p.startswith("fleet_roles.%s: %r %s" % (role, role, why)) for p in found), found


# ---------------------------------------------------------------------------
# relations: duplicates, the inventory's shape, CPUs against the host
# ---------------------------------------------------------------------------


def test_two_pools_of_one_name():
    pools = POOLS + [{"name": "nvme", "driver": "zfs", "size": "2TiB"}, {"driver": "dir", "size": "1GiB"}]
    assert problems(pools=pools) == [
        "fleet_pools.nvme: listed twice (fleet_pools[0] and fleet_pools[1]); the later would replace the earlier",
        "fleet_pools[2]: name is missing (LXD's name of the pool)"]


@pytest.mark.parametrize("value, expected", [
    (None, "fleet_pools is missing"), ({"name": "nvme"}, "fleet_pools must be a list of pools")])
def test_pools_must_be_a_list(value, expected):
    assert any(p.startswith(expected) for p in problems(pools=value))


def test_an_inventory_without_fleet_nodes():
    assert problems(nodes={}) == [
        "the inventory has no fleet node: group fleet is empty or missing (hosts.yml needs all: children: fleet: "
        "children: <role>: hosts:; is fleet: or children: misspelt?)"]


def test_a_host_of_a_role_group_outside_fleet():
    groups = {"all": ["localhost", *NODES, "dev-x"], "fleet": list(NODES), "dev": ["dev-a", "dev-x"],
              "lxd_hosts": ["localhost"]}
    assert problems(groups=groups) == ["dev-x: in role group dev but not in group fleet (in hosts.yml, dev: belongs "
                                       "under fleet: children:)"]
    assert model(groups={**groups, "dev": ["dev-a"]})["nodes"]


def test_a_node_may_not_have_more_cpus_than_the_host_has_threads():
    host = {"cpus": 2, "memory": "16GiB"}
    nodes = {**NODES, "db-1": {**NODES["db-1"], "cpu": 3}}
    assert problems(nodes=nodes, host=host) == [
        "db-1: fleet_cpu 3 is more than the host's 2 CPU threads",
        "dev-a: cpu (fleet_roles.dev.cpu) 4 is more than the host's 2 CPU threads"]
    assert model(host={"cpus": 4, "memory": "16GiB"})


def test_missing_variables_are_named_once():
    found = problems(roles=None, network=None, pools=None)
    assert found == ["fleet_pools is missing (a list of pools: name, driver, size)",
                     "fleet_roles is missing (a mapping of each role to its cpu, memory, disk and pool)",
                     "fleet_network is missing (a mapping of name, ipv4, config, parent)"]


# ---------------------------------------------------------------------------
# services
# ---------------------------------------------------------------------------

SSHD = {"name": "sshd", "unit": "ssh.service", "port": 22}
DOCKER = {"name": "docker", "unit": "docker.service"}
PG = {"name": "postgresql", "unit": "postgresql@15-main.service", "port": 5432}


def test_each_node_gets_all_then_docker_then_its_roles_services():
    nodes = model(services={"all": [SSHD], "docker": [DOCKER], "infra": [PG], "db": [PG]})["nodes"]
    docker = {**DOCKER, "port": None}
    assert nodes["infra-server"]["services"] == [SSHD, docker, PG]
    assert nodes["dev-a"]["services"] == [SSHD, docker]
    assert nodes["db-1"]["services"] == [SSHD, PG]  # db has no docker
    assert all(node["services"] == [] for node in model()["nodes"].values())


def test_a_unit_or_a_name_twice_for_a_role_is_refused():
    found = problems(services={"all": [SSHD], "docker": [DOCKER], "infra": [{**DOCKER, "name": "engine"}],
                               "dev": [{**DOCKER, "name": "engine"}], "db": [SSHD, {**SSHD, "unit": "sshd.service"}]})
    assert found == [
        "fleet_services.db: name sshd is listed twice",
        "fleet_services: name sshd would be listed twice for the nodes of role db (in all and in db)",
        "fleet_services: unit docker.service would be listed twice for the nodes of role dev (in docker and in dev)",
        "fleet_services: unit docker.service would be listed twice for the nodes of role infra (in docker and in "
        "infra)",
        "fleet_services: unit ssh.service would be listed twice for the nodes of role db (in all and in db)"]
    assert problems(services={"all": [DOCKER], "docker": [DOCKER]}) == [
        "fleet_services: name docker would be listed twice for the nodes of roles dev, infra (in all and in docker)",
        "fleet_services: unit docker.service would be listed twice for the nodes of roles dev, infra (in all and in "
        "docker)"]


@pytest.mark.parametrize("services, expected", [
    ({"infr": [PG]}, "fleet_services.infr is not all, docker or a role of fleet_roles; did you mean infra? (known: "
                     "all, docker, db, dev, infra)"),
    ({"all": SSHD}, "fleet_services.all must be a list of services (name, unit, port), not "),
    ({"all": ["sshd"]}, "fleet_services.all[0] must be a mapping of name, unit, port, not 'sshd'"),
    ({"all": [{"unit": "ssh.service"}]}, "fleet_services.all[0]: name is missing (a short label, like sshd)"),
    ({"all": [{**SSHD, "unit": "ssh"}]}, "fleet_services.all.sshd: unit 'ssh' is not a systemd service unit"),
    ({"all": [{**SSHD, "prot": 22}]}, "fleet_services.all.sshd: prot is not a known field; did you mean port?"),
    (["sshd"], "fleet_services must be a mapping of all, docker or a role's name to a list of services"),
])
def test_bad_services(services, expected):
    found = problems(services=services)
    assert len(found) == 1 and found[0].startswith(expected), found
