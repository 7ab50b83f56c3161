"""The fleet model: sizes, validation messages naming node and field, and capacity arithmetic."""

from __future__ import annotations

import pytest

from ansible_collections.adelie.fleet.plugins.module_utils.backend import backend
from ansible_collections.adelie.fleet.plugins.module_utils.fleet import (
    FleetError, build_model, capacity, capacity_table, cluster_capacity, cluster_capacity_table, format_size,
    inventory_options, model_from_inventory,
    parse_size)

ROLES = {
    "infra": {"cpu": 2, "memory": "4GiB", "disk": "20GiB", "pool": "nvme", "docker": True},
    "dev": {"cpu": 4, "memory": "8GiB", "disk": "150GiB", "pool": "nvme", "docker": True, "member_required": True},
}
NETWORK = {"name": "fleetbr0", "ipv4": "10.10.10.1/24"}
# Every pool has a size now (the disk capacity check needs it), a pool on a device too.
POOLS = [{"name": "nvme", "driver": "btrfs", "size": "1TiB"},
         {"name": "hdd", "driver": "btrfs", "source": "/dev/sdb", "size": "4TiB"}]


def dev(address, login, **extra):
    member = {"login": login, "name": login, "email": login + "@example.org"}
    return {"groups": ["fleet", "dev"], "ipv4": address, "member": member, **extra}


def fleet(**nodes):
    base = {"infra-server": {"groups": ["fleet", "infra"], "ipv4": "10.10.10.10"},
            "dev-a": dev("10.10.10.31", "alice")}
    base.update(nodes)
    return base


def problems(nodes, **kwargs):
    with pytest.raises(FleetError) as error:
        build_model(nodes, kwargs.pop("roles", ROLES), kwargs.pop("network", NETWORK), kwargs.pop("pools", POOLS),
                    **kwargs)
    return error.value.problems


# Exactly LXD 5.0's units.ParseByteSizeString: digits, then a case-sensitive unit (or none, or " bytes").
@pytest.mark.parametrize("text, size", [
    ("8GiB", 8 * 2**30), ("512MiB", 512 * 2**20), ("300GB", 300 * 10**9), ("1536MiB", 3 * 2**29),
    (1073741824, 2**30), ("2048", 2048), ("2048B", 2048), ("2048 bytes", 2048), ("1TiB", 2**40),
    ("4kB", 4000), ("4KiB", 4096), ("3MB", 3 * 10**6), ("2TB", 2 * 10**12), ("1PB", 10**15), ("1PiB", 2**50),
    ("1EB", 10**18), ("1EiB", 2**60), ("08GiB", 8 * 2**30)])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", [
    "8 gigs", "", "-1GiB", "0", "GiB", "8GX", True, None, "1e3GiB",
    # what LXD refuses: a blank before the unit or around the size, a fraction, units in another case
    "12 GB", "8 GiB", " 8GiB", "8GiB ", "8GiB\n", "1.5GiB", "1.5.GiB", "8gb", "8GB ", "8KB", "8kb", "8gib", "8Gi",
    "8G", "8k", "8b", "+8GiB", "8 Bytes", "\u0668GiB", 8.0, 0, -1, "8EiB", 2**63])
def test_parse_size_refuses(text):
    with pytest.raises((ValueError, TypeError)):
        parse_size(text)


def test_format_size_is_exact_and_stable():
    assert format_size(8 * 2**30) == "8GiB"
    assert format_size(1536 * 2**20) == "1536MiB"
    assert format_size(300 * 10**9) == "292968750KiB"
    assert parse_size(format_size(123456789)) == 123456789


def test_role_defaults_and_node_overrides():
    model = build_model(fleet(**{"dev-b": dev("10.10.10.32", "bob", memory="12GiB", cpu=6)}), ROLES, NETWORK, POOLS)
    a, b = model["nodes"]["dev-a"], model["nodes"]["dev-b"]
    assert (a["cpu"], a["memory"], a["disk"], a["pool"], a["profile"]) == (4, "8GiB", "150GiB", "nvme", "fleet-dev")
    assert (b["cpu"], b["memory"], b["memory_bytes"]) == (6, "12GiB", 12 * 2**30)
    assert b["member"]["login"] == "bob"
    assert model["profiles"]["dev"] == {"name": "fleet-dev", "cpu": 4, "memory": "8GiB", "disk": "150GiB",
                                        "pool": "nvme", "docker": True}
    assert model["network"]["subnet"] == "10.10.10.0/24"


@pytest.mark.parametrize("node, expected", [
    ({"groups": ["fleet", "dba"], "ipv4": "10.10.10.40"}, "dev-x: must be in exactly one role group"),
    ({"groups": ["fleet", "dev", "infra"], "ipv4": "10.10.10.40"}, "dev-x: must be in exactly one role group"),
    (dev("10.10.11.5", "xavier"), "dev-x: fleet_ipv4 10.10.11.5 is outside fleetbr0's subnet"),
    (dev("10.10.10.1", "xavier"), "dev-x: fleet_ipv4 10.10.10.1 is outside fleetbr0's subnet 10.10.10.0/24 or reserved"),
    (dev("10.10.10.255", "xavier"), "dev-x: fleet_ipv4 10.10.10.255 is outside"),
    (dev("10.10.10.300", "xavier"), "dev-x: fleet_ipv4 '10.10.10.300' is not an IPv4 address"),
    (dev("10.10.10.31", "xavier"), "dev-x: fleet_ipv4 10.10.10.31 is already the address of dev-a"),
    (dev("10.10.10.40", "Xavier!"), "dev-x: fleet_member.login 'Xavier!' is not a valid Linux login"),
    (dev("10.10.10.40", "alice"), "dev-x: fleet_member.login 'alice' is already the member of dev-a"),
    (dev("10.10.10.40", "xavier", memory="2 gigs"), "dev-x: fleet_memory '2 gigs' is not a size"),
    (dev("10.10.10.40", "xavier", disk="lots"), "dev-x: fleet_disk 'lots' is not a size"),
    (dev("10.10.10.40", "xavier", cpu="two"), "dev-x: fleet_cpu 'two' is not a whole number"),
    (dev("10.10.10.40", "xavier", pool="ssd"), "dev-x: fleet_pool 'ssd' is not one of the fleet's pools"),
    ({"groups": ["dev"], "ipv4": "10.10.10.40"}, "dev-x: role dev needs a fleet_member"),
    ({**dev("10.10.10.40", "xavier"), "member": {"login": "xavier", "email": "nope"}}, "dev-x: fleet_member.email 'nope'"),
    ({**dev("10.10.10.40", "xavier"), "member": {"login": "xavier", "ssh_key": "hello"}}, "dev-x: fleet_member.ssh_key"),
])
def test_bad_node_is_named_with_its_field(node, expected):
    found = problems(fleet(**{"dev-x": node}))
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_is_reported_at_once():
    found = problems(fleet(**{"dev-x": dev("10.10.99.1", "BAD", memory="huge")}))
    assert len(found) == 3
    assert "invalid fleet inventory" in str(FleetError(found))


def test_bad_container_name():
    assert any(p.startswith("dev_x: not a valid container name") for p in problems(fleet(dev_x=dev("10.10.10.40", "x"))))


def test_pool_missing_on_the_host():
    found = problems(fleet(), live_pools=["nvme"])
    assert found == ["fleet_pools.hdd: the LXD host has no such storage pool"]


def test_bad_role_spec_and_network():
    found = problems(fleet(), roles={**ROLES, "qa": {"cpu": 0, "memory": "x", "disk": "1GiB", "pool": "tape"}},
                     network={"name": "br", "ipv4": "nonsense"})
    assert any(p.startswith("fleet_roles.qa: cpu 0") for p in found)
    assert any(p.startswith("fleet_roles.qa: memory 'x'") for p in found)
    assert any(p.startswith("fleet_roles.qa: pool 'tape'") for p in found)
    assert any(p.startswith("fleet_network: ipv4 'nonsense'") for p in found)


HOST = {"cpus": 8, "memory": "40GiB"}


def test_capacity_fits():
    model = build_model(fleet(), ROLES, NETWORK, POOLS)
    report = capacity(model, HOST, {"memory_reserve": "4GiB"})
    rows = {row["resource"]: row for row in report["rows"]}
    assert report["problems"] == []
    assert rows["cpu"]["requested"] == 6 and rows["cpu"]["available"] == 8
    assert rows["memory"]["requested"] == 12 * 2**30 and rows["memory"]["available"] == 36 * 2**30
    assert rows["disk:nvme"]["requested"] == 170 * 2**30 and rows["disk:nvme"]["available"] == 2**40
    assert rows["disk:hdd"]["requested"] == 0 and rows["disk:hdd"]["available"] == 4 * 2**40


def test_memory_overcommit_is_refused_naming_the_biggest_consumer():
    nodes = fleet(**{"deploy-test": dev("10.10.10.20", "deployer", memory="64GiB")})
    report = capacity(build_model(nodes, ROLES, NETWORK, POOLS), HOST, {"memory_reserve": "4GiB", "cpu_overcommit": 2})
    assert len(report["problems"]) == 1
    problem = report["problems"][0]
    assert problem.startswith("memory overcommitted: the fleet asks 76GiB, the host may hand out 36GiB")
    assert problem.index("deploy-test 64GiB") < problem.index("dev-a 8GiB")


def test_overcommit_ratios():
    nodes = fleet(**{"dev-b": dev("10.10.10.32", "bob")})
    model = build_model(nodes, ROLES, NETWORK, POOLS)
    assert capacity(model, HOST, {})["problems"][0].startswith("CPU overcommitted: the fleet asks 10, the host may hand out 8.")
    assert capacity(model, HOST, {"cpu_overcommit": 2})["problems"] == []
    assert capacity(model, {"cpus": 16, "memory": "20GiB"}, {"memory_overcommit": 1.5})["problems"] == []
    small_disk = capacity(model, HOST, {"cpu_overcommit": 2, "disk_overcommit": 0.25})["problems"]
    assert small_disk == ["disk on pool nvme overcommitted: the fleet asks 320.0GiB, the host may hand out 256.0GiB. "
                          "Biggest consumers: dev-a 150.0GiB, dev-b 150.0GiB, infra-server 20.0GiB"]


def test_capacity_table_lists_nodes_then_totals():
    model = build_model(fleet(), ROLES, NETWORK, POOLS)
    lines = capacity_table(model, capacity(model, HOST, {})["rows"])
    assert lines[0].split() == ["node", "role", "cpu", "memory", "disk", "pool", "address"]
    assert lines[1].split() == ["dev-a", "dev", "4", "8GiB", "150GiB", "nvme", "10.10.10.31"]
    assert lines[2].split()[0] == "infra-server"
    assert any(line.startswith("memory") and line.rstrip().endswith("30.0%") for line in lines)


# ---------------------------------------------------------------------------
# refusals added with the node layer: every message names the node (or variable) and the field
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("login", ["root", "daemon", "www-data", "nobody", "_apt", "sshd", "docker", "polkitd",
                                   "messagebus", "systemd-network", "systemd-timesync", "systemd-anything", "sudo"])
def test_system_account_login_is_refused(login):
    found = problems(fleet(**{"dev-x": dev("10.10.10.40", login)}))
    assert ["dev-x: fleet_member.login %r is a system account or group of the nodes; a teammate needs a login of "
            "their own" % login] == found


@pytest.mark.parametrize("member, expected", [
    ({"login": "xavier\n"}, "dev-x: fleet_member.login 'xavier\\n' is not a valid Linux login"),
    ({"login": "xavier", "email": "x@example.org\n"}, "dev-x: fleet_member.email 'x@example.org\\n' is not an e-mail"),
    ({"login": "xavier", "name": "Xavier\n"}, "dev-x: fleet_member.name 'Xavier\\n' holds a control character"),
    ({"login": "xavier", "name": "Xa\tvier"}, "dev-x: fleet_member.name 'Xa\\tvier' holds a control character"),
    ({"login": "xavier", "name": "X\x1b[31m"}, "dev-x: fleet_member.name 'X\\x1b[31m' holds a control character"),
    ({"login": "xavier", "name": "X:Y"}, "dev-x: fleet_member.name 'X:Y' holds a colon"),
    ({"login": "xavier", "ssh_key": "ssh-ed25519 AAAAC3Nz x@y\nssh-rsa AAAAB3 evil"}, "dev-x: fleet_member.ssh_key"),
    ({"login": "xavier", "ssh_key": "ssh-ed25519\nAAAAC3Nz"}, "dev-x: fleet_member.ssh_key"),
])
def test_line_breaks_and_control_characters_are_refused(member, expected):
    found = problems(fleet(**{"dev-x": {**dev("10.10.10.40", "xavier"), "member": member}}))
    assert len(found) == 1 and found[0].startswith(expected), found


# A real public key (ssh-keygen -t ed25519): the key inside its base64 is checked.
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDYugKFFPh0TVS+6gjCgMFsNIac1aVD3Wku2TjT5itAY"


def test_member_fields_that_pass():
    key = KEY + " x@y"
    member = {"login": "xavier", "name": "Xavier Ünal-Smith", "email": "x@example.org", "ssh_key": key + "\n"}
    model = build_model(fleet(**{"dev-x": {**dev("10.10.10.40", "xavier"), "member": member}}), ROLES, NETWORK, POOLS)
    assert model["nodes"]["dev-x"]["member"] == {"login": "xavier", "name": "Xavier Ünal-Smith",
                                                 "email": "x@example.org", "ssh_key": key}


@pytest.mark.parametrize("name", ["Dev-X", "DEV-X", "dev-X"])
def test_uppercase_node_name_is_refused_as_folded(name):
    found = problems(fleet(**{name: dev("10.10.10.40", "xavier")}))
    assert found == ["%s: uppercase letters are refused in a node name: LXD/DNS fold case, so %s and %s would be "
                     "the same host (write %s)" % (name, name, name.lower(), name.lower())]


@pytest.mark.parametrize("name", ["dev_x", "dev-", "-dev", "1dev", "dev.x", "dev x", "dev-x\n", "d" * 64, "dév"])
def test_node_name_dns_would_reject(name):
    found = problems(fleet(**{name: dev("10.10.10.40", "xavier")}))
    assert found == ["%s: not a valid container name (lowercase letters, digits and dashes, starting with a letter, "
                     "not ending with a dash; at most 63)" % name]


@pytest.mark.parametrize("name", ["x", "d" * 63, "dev-2", "a-b-c9"])
def test_node_names_that_pass(name):
    assert name in build_model(fleet(**{name: dev("10.10.10.40", "xavier")}), ROLES, NETWORK, POOLS)["nodes"]


def test_pool_without_size_is_refused():
    pools = [POOLS[0], {"name": "hdd", "driver": "btrfs", "source": "/dev/sdb"}]
    assert problems(fleet(), pools=pools) == ["fleet_pools.hdd: size is missing (the disk capacity check needs it)"]


def test_missing_ipv4_is_refused():
    node = dev(None, "xavier")
    assert problems(fleet(**{"dev-x": node})) == [
        "dev-x: fleet_ipv4 is missing (the node layer reaches each node by SSH at its static address)"]


@pytest.mark.parametrize("address", ["10.10.10.40\n", " 10.10.10.40", "fd00::40", "10.10.10.040"])
def test_ipv4_must_be_exactly_an_ipv4_address(address):
    assert problems(fleet(**{"dev-x": dev(address, "xavier")})) == [
        "dev-x: fleet_ipv4 %r is not an IPv4 address" % address]


@pytest.mark.parametrize("field, value, hint", [
    ("memory", "12 GB", "LXD takes no blank"),
    ("memory", " 8GiB", "LXD takes no blank"),
    ("memory", "8GiB ", "LXD takes no blank"),
    ("disk", "1.5GiB", "LXD takes whole numbers only"),
    ("disk", "1.5.GiB", "LXD takes whole numbers only"),
    ("memory", "8gb", "LXD units are case-sensitive: write GB"),
    ("memory", "8KB", "LXD units are case-sensitive: write kB"),
    ("memory", "8gib", "LXD units are case-sensitive: write GiB"),
    ("memory", "8GX", ""),
])
def test_sizes_lxd_would_refuse(field, value, hint):
    found = problems(fleet(**{"dev-x": dev("10.10.10.40", "xavier", **{field: value})}))
    assert len(found) == 1, found
    expected = "dev-x: fleet_%s %r is not a size (write it like 8GiB, 512MiB or 300GB)" % (field, value)
    assert found[0].startswith(expected), found
    assert (hint in found[0]) if hint else ";" not in found[0], found


def test_role_and_pool_sizes_lxd_would_refuse():
    roles = {**ROLES, "qa": {"cpu": 1, "memory": "512 MiB", "disk": "4GiB", "pool": "nvme"}}
    pools = [{"name": "nvme", "driver": "btrfs", "size": "1tib"}, POOLS[1]]
    found = problems(fleet(), roles=roles, pools=pools)
    assert any(p.startswith("fleet_roles.qa: memory '512 MiB' is not a size") for p in found), found
    assert any(p.startswith("fleet_pools.nvme: size '1tib' is not a size") for p in found), found


# Strict: a YAML integer only, so a quoted "4" or a float 4.0 (which YAML keeps as written) is refused.
@pytest.mark.parametrize("cpu", ["²", "٣", "4.0", " 4", "4", 4.0, 2.5, True, 0, -1])
def test_cpu_must_be_a_yaml_integer(cpu):
    found = problems(fleet(**{"dev-x": dev("10.10.10.40", "xavier", cpu=cpu)}))
    assert found == ["dev-x: fleet_cpu %r is not a whole number of CPUs (1 or more, written as a YAML integer: 4, "
                     "not '4' or 4.0)" % (cpu,)]


def test_network_without_name_or_with_network_address():
    assert problems(fleet(), network={"ipv4": "10.10.10.1/24"}) == [
        "fleet_network: name is missing (the LXD bridge's name)"]
    found = problems(fleet(), network={"name": "br", "ipv4": "10.10.10.0/24"})
    assert found == ["fleet_network: ipv4 10.10.10.0/24 must be the bridge's (gateway's) own address, "
                     "like 10.10.10.1/24"]


def test_new_refusals_are_reported_together():
    nodes = fleet(**{"Dev-X": {**dev(None, "root", memory="12 GB"), "member": {"login": "root", "name": "R\n"}}})
    found = problems(nodes, pools=[POOLS[0], {"name": "hdd", "driver": "btrfs"}], app_dir="rel",
                     compose_command="podman")
    assert [p.split(" ")[0] for p in found] == ["app_dir", "compose_command", "fleet_pools.hdd:", "Dev-X:",
                                                "Dev-X:", "Dev-X:", "Dev-X:", "Dev-X:"], found


# ---------------------------------------------------------------------------
# capacity() validates fleet_host and fleet_capacity
# ---------------------------------------------------------------------------


def capacity_problems(host, policy):
    model = build_model(fleet(), ROLES, NETWORK, POOLS)
    with pytest.raises(FleetError) as error:
        capacity(model, host, policy)
    return error.value.problems


CPUS = " is not a whole number of CPUs (1 or more, written as a YAML integer: 4, not '4' or 4.0)"


@pytest.mark.parametrize("host, policy, expected", [
    ({"cpus": "many", "memory": "40GiB"}, {}, "fleet_host.cpus 'many'" + CPUS),
    ({"cpus": 0, "memory": "40GiB"}, {}, "fleet_host.cpus 0" + CPUS),
    ({"cpus": True, "memory": "40GiB"}, {}, "fleet_host.cpus True" + CPUS),
    ({"cpus": "8", "memory": "40GiB"}, {}, "fleet_host.cpus '8'" + CPUS),
    ({"memory": "40GiB"}, {}, "fleet_host.cpus is missing (the capacity check needs the host's CPU threads)"),
    ({"cpus": 8, "memory": "x"}, {}, "fleet_host.memory 'x' is not a size (write it like 84GiB)"),
    ({"cpus": 8, "memory": "40 GiB"}, {}, "fleet_host.memory '40 GiB' is not a size (write it like 84GiB); "
                                          "LXD takes no blank: write it like 8GiB"),
    ({"cpus": 8, "memory": 40 * 2**30}, {}, "fleet_host.memory 42949672960 has no unit, so LXD would read it as "
                                            "bytes: write it like 84GiB"),
    ({"cpus": 8, "memory": "512MiB"}, {}, "fleet_host.memory '512MiB' is less than 1GiB, the least it may be"),
    ({"cpus": 8}, {}, "fleet_host.memory is missing (the capacity check needs the host's memory)"),
    (HOST, {"cpu_overcommit": "lots"}, "fleet_capacity.cpu_overcommit 'lots' is not a number from 0.1 to 16 "
                                       "(written unquoted, like 1.5)"),
    (HOST, {"memory_overcommit": [1]}, "fleet_capacity.memory_overcommit [1] is not a number from 0.1 to 2"),
    (HOST, {"disk_overcommit": True}, "fleet_capacity.disk_overcommit True is not a number from 0.1 to 4"),
    (HOST, {"cpu_overcommit": -1}, "fleet_capacity.cpu_overcommit -1 is not a number from 0.1 to 16"),
    (HOST, {"cpu_overcommit": 1e9}, "fleet_capacity.cpu_overcommit 1000000000.0 is not a number from 0.1 to 16"),
    (HOST, {"memory_overcommit": "0"}, "fleet_capacity.memory_overcommit '0' is not a number from 0.1 to 2"),
    (HOST, {"memory_overcommit": 3}, "fleet_capacity.memory_overcommit 3 is not a number from 0.1 to 2"),
    (HOST, {"disk_overcommit": float("nan")}, "fleet_capacity.disk_overcommit nan is not a number from 0.1 to 4"),
    (HOST, {"disk_overcommit": "1.5"}, "fleet_capacity.disk_overcommit '1.5' is not a number from 0.1 to 4"),
    (HOST, {"memory_reserve": "lots"}, "fleet_capacity.memory_reserve 'lots' is not a size (write it like 2GiB)"),
    (HOST, {"memory_reserve": "40GiB"}, "fleet_capacity.memory_reserve '40GiB' leaves nothing of the host's 40GiB "
                                        "of memory"),
    (HOST, {"memory_reserv": "2GiB"}, "fleet_capacity.memory_reserv is not a known field; did you mean "
                                      "memory_reserve? (known: memory_reserve, memory_overcommit, cpu_overcommit, "
                                      "disk_overcommit)"),
])
def test_capacity_refuses_bad_host_or_policy(host, policy, expected):
    found = capacity_problems(host, policy)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_capacity_reports_every_bad_field_at_once():
    found = capacity_problems({"cpus": "many", "memory": "x"}, {"cpu_overcommit": "lots", "disk_overcommit": 0})
    assert [p.split(" ")[0] for p in found] == [
        "fleet_host.cpus", "fleet_host.memory", "fleet_capacity.cpu_overcommit", "fleet_capacity.disk_overcommit"]
    assert "invalid fleet inventory" in str(FleetError(found))


def test_capacity_takes_what_model_yml_measures():
    # model.yml reads the host's nproc (an integer) and its MemTotal (KiB) when fleet_host is not set.
    model = build_model(fleet(), ROLES, NETWORK, POOLS)
    report = capacity(model, {"cpus": 8, "memory": "%dKiB" % (40 * 2**20)},
                      {"cpu_overcommit": 1.5, "memory_reserve": 0})
    rows = {row["resource"]: row for row in report["rows"]}
    assert rows["cpu"]["available"] == 12 and rows["memory"]["available"] == 40 * 2**30


# ---------------------------------------------------------------------------
# derived node data: the model is the one source of it
# ---------------------------------------------------------------------------


def test_derived_fields_defaults():
    model = build_model(fleet(), ROLES, NETWORK, POOLS)
    a, infra = model["nodes"]["dev-a"], model["nodes"]["infra-server"]
    assert (a["app_dir"], a["compose"], a["gateway"]) == ("/home/alice/app", "docker-compose", "10.10.10.1")
    assert (infra["app_dir"], infra["compose"], infra["gateway"]) == ("/opt/fleet-app", "docker-compose", "10.10.10.1")
    assert model["members"] == {"alice": "dev-a"}
    assert model["network"] == {"name": "fleetbr0", "ipv4": "10.10.10.1/24", "subnet": "10.10.10.0/24",
                                "gateway": "10.10.10.1", "parent": None}


def test_derived_fields_with_options_and_a_role_without_docker():
    roles = {**ROLES, "db": {"cpu": 1, "memory": "1GiB", "disk": "5GiB", "pool": "nvme", "docker": False}}
    nodes = fleet(**{"db-1": {"groups": ["db"], "ipv4": "10.10.10.50"}, "dev-b": dev("10.10.10.32", "bob")})
    for name, node in nodes.items():
        nodes[name] = {**node, "ipv4": node["ipv4"].replace("10.10.10.", "192.168.6.")}
    model = build_model(nodes, roles, {"name": "br", "ipv4": "192.168.7.254/23"}, POOLS, app_dir="/srv/app",
                        compose_command="docker compose")
    nodes = model["nodes"]
    assert {name: (n["app_dir"], n["compose"]) for name, n in nodes.items()} == {
        "db-1": ("/srv/app", None), "dev-a": ("/home/alice/app", "docker compose"),
        "dev-b": ("/home/bob/app", "docker compose"), "infra-server": ("/srv/app", "docker compose")}
    assert {n["gateway"] for n in nodes.values()} == {"192.168.7.254"}
    assert model["network"]["gateway"] == "192.168.7.254"
    assert model["members"] == {"alice": "dev-a", "bob": "dev-b"}
    assert set(nodes["dev-a"]) == {"name", "role", "profile", "cpu", "memory", "memory_bytes", "disk", "disk_bytes",
                                   "pool", "docker", "ipv4", "gateway", "member", "app_dir", "compose", "services",
                                   "project", "lxd_host", "location", "tenant"}


@pytest.mark.parametrize("kwargs, expected", [
    ({"app_dir": "srv/app"}, "app_dir 'srv/app' must be an absolute path, like /opt/fleet-app"),
    ({"app_dir": ""}, "app_dir '' must be an absolute path, like /opt/fleet-app"),
    ({"app_dir": "/srv/app\n"}, "app_dir '/srv/app\\n' must be an absolute path, like /opt/fleet-app"),
    ({"compose_command": "podman-compose"},
     "compose_command 'podman-compose' must be one of 'docker-compose', 'docker compose'"),
    ({"compose_command": "docker  compose"},
     "compose_command 'docker  compose' must be one of 'docker-compose', 'docker compose'"),
])
def test_bad_options_are_refused(kwargs, expected):
    assert problems(fleet(), **kwargs) == [expected]


# ---------------------------------------------------------------------------
# global facts: the project, the LXD host, the shared services' tenants and store come from the model
# ---------------------------------------------------------------------------

LAB_ROLES = {**ROLES, "deploy": {"cpu": 2, "memory": "2GiB", "disk": "6GiB", "pool": "nvme", "docker": True},
             "staging": {"cpu": 1, "memory": "2GiB", "disk": "6GiB", "pool": "nvme", "docker": True}}


def test_global_facts_defaults():
    model = build_model(fleet(**{"deploy-1": {"groups": ["deploy"], "ipv4": "10.10.10.20"}}), LAB_ROLES, NETWORK, POOLS)
    # deploy and staging are environments by default; the fleet has no staging node, so no staging tenant.
    assert (model["project"], model["lxd_host"], model["environments"]) == ("default", None, ["deploy", "staging"])
    assert model["tenants"] == ["deploy", "dev_alice"]
    assert model["secrets_file"] == "~/.config/adelie-fleet/default-shared-services.vault.yml"
    assert model["vault_password_file"] == "~/.config/adelie-fleet/vault-pass"
    assert model["ca_dir"] == "~/.config/adelie-fleet/default-ca"
    # The registry is the first infra node's, on its bridge address.
    assert model["registry"] == {"node": "infra-server", "address": model["nodes"]["infra-server"]["ipv4"],
                                 "port": 5000, "host": model["nodes"]["infra-server"]["ipv4"] + ":5000"}
    nodes = model["nodes"]
    assert {name: (n["project"], n["lxd_host"], n["tenant"]) for name, n in nodes.items()} == {
        "deploy-1": ("default", None, "deploy"), "dev-a": ("default", None, "dev_alice"),
        "infra-server": ("default", None, None)}
    # Without those roles, no environment (the default is deploy and staging where the fleet has them).
    assert build_model(fleet(), ROLES, NETWORK, POOLS)["environments"] == []


def test_global_facts_from_the_options():
    model = build_model(fleet(), ROLES, NETWORK, POOLS, project="fleet-test", lxd_host="lab-host",
                        environments=["infra"])
    assert (model["project"], model["lxd_host"], model["tenants"]) == ("fleet-test", "lab-host", ["dev_alice", "infra"])
    # The store is one per project unless the inventory names it.
    assert model["secrets_file"] == "~/.config/adelie-fleet/fleet-test-shared-services.vault.yml"
    infra = model["nodes"]["infra-server"]
    assert (infra["project"], infra["lxd_host"], infra["tenant"]) == ("fleet-test", "lab-host", "infra")
    assert model["ca_dir"] == "~/.config/adelie-fleet/fleet-test-ca"
    # A fleet without an infra node has no registry.
    no_infra = {name: node for name, node in fleet().items() if "infra" not in node["groups"]}
    assert build_model(no_infra, ROLES, NETWORK, POOLS)["registry"] is None
    named = build_model(fleet(), ROLES, NETWORK, POOLS, secrets_file="/srv/store.yml", vault_password_file="/srv/pass")
    assert (named["secrets_file"], named["vault_password_file"]) == ("/srv/store.yml", "/srv/pass")


@pytest.mark.parametrize("kwargs, expected", [
    ({"project": "my project"}, "fleet_project 'my project' is not a valid name"),
    ({"project": ""}, "fleet_project '' is not a valid name"),
    ({"backend": "LXD"}, "fleet_backend 'LXD' must be one of lxd, incus"),
    ({"backend": None}, "fleet_backend None must be one of lxd, incus"),
    ({"backend": ["lxd"]}, "fleet_backend ['lxd'] must be one of lxd, incus"),
    ({"environments": ["stagin"], "roles": LAB_ROLES},
     "shared_services_environments: stagin is not a role of fleet_roles; did you mean staging?"),
    ({"environments": "deploy"}, "shared_services_environments must be a list of roles of fleet_roles, not 'deploy'"),
    ({"secrets_file": ""}, "shared_services_secrets_file '' is not a text"),
    ({"vault_password_file": "/a\nb"}, "shared_services_vault_password_file '/a\\nb' holds a control character"),
])
def test_bad_global_facts_are_refused(kwargs, expected):
    found = problems(fleet(), **kwargs)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_the_model_carries_its_backends_map_entry():
    """The roles take the CLI, socket and paths from the model: LXD unless the inventory says incus."""
    assert build_model(fleet(), ROLES, NETWORK, POOLS)["backend"] == backend("lxd")
    incus = build_model(fleet(), ROLES, NETWORK, POOLS, backend="incus")["backend"]
    assert (incus["cli"], incus["socket"], incus["admin_group"]) == ("incus", "/var/lib/incus/unix.socket", "incus-admin")


def test_a_tenant_the_shared_services_cannot_have_is_refused():
    roles = {**ROLES, "redis": {"cpu": 1, "memory": "1GiB", "disk": "5GiB", "pool": "nvme"}}
    nodes = fleet(**{"cache-1": {"groups": ["redis"], "ipv4": "10.10.10.60"}})
    assert problems(nodes, roles=roles, environments=["redis"]) == [
        "node cache-1: tenant name redis is reserved by the shared services"]


def test_model_from_inventory_reads_the_inventory_as_model_yml_does():
    common = {"fleet_roles": ROLES, "fleet_network": NETWORK, "fleet_pools": POOLS, "fleet_project": "fleet-test",
              "fleet_compose_command": "docker compose", "shared_services_environments": ["infra"]}
    hostvars = {"lab-host": {**common, "group_names": ["lxd_hosts"]},
                "infra-server": {**common, "group_names": ["fleet", "infra"], "fleet_ipv4": "10.10.10.10"},
                "dev-a": {**common, "group_names": ["dev", "fleet"], "fleet_ipv4": "10.10.10.31", "fleet_cpu": 2,
                          "fleet_member": {"login": "alice", "email": "alice@example.org"}}}
    groups = {"all": sorted(hostvars), "lxd_hosts": ["lab-host"], "fleet": ["dev-a", "infra-server"],
              "infra": ["infra-server"], "dev": ["dev-a"]}
    options = inventory_options(hostvars["lab-host"])
    # Unset optional variables are left to build_model's defaults; a missing required one is passed as None.
    assert set(options) == {"roles", "network", "pools", "project", "compose_command", "environments"}
    assert inventory_options({})["roles"] is None and "project" not in inventory_options({})
    model = model_from_inventory(hostvars, groups, options)
    assert (model["project"], model["lxd_host"], model["tenants"]) == ("fleet-test", "lab-host", ["dev_alice", "infra"])
    dev_a = model["nodes"]["dev-a"]
    assert (dev_a["cpu"], dev_a["compose"], dev_a["lxd_host"], dev_a["tenant"]) == (2, "docker compose", "lab-host",
                                                                                    "dev_alice")
    # An option given wins over the inventory's variable.
    given = model_from_inventory(hostvars, groups, inventory_options(hostvars["lab-host"], {"project": "other"}))
    assert given["nodes"]["dev-a"]["project"] == "other"
    with pytest.raises(FleetError, match="lab-host: fleet_projet is not a fleet variable; did you mean fleet_project"):
        model_from_inventory({**hostvars, "lab-host": {**hostvars["lab-host"], "fleet_projet": "x"}}, groups, options)


# ---------------------------------------------------------------------------
# a cluster (issue 18): members from group lxd_hosts, each node placed on one, capacity per member
# ---------------------------------------------------------------------------

MEMBERS = ["srv-a", "srv-b"]
SIZES = {"srv-a": {"cpus": 8, "memory": "40GiB"}, "srv-b": {"cpus": 8, "memory": "24GiB"}}
ROUTED = dict(NETWORK, parent="eth0")


def cluster(nodes=None, **kwargs):
    return build_model(nodes or fleet(**{"dev-b": dev("10.10.10.32", "bob"), "dev-c": dev("10.10.10.33", "carol")}),
                       ROLES, ROUTED, POOLS, lxd_hosts=MEMBERS, hosts=SIZES, policy={"memory_reserve": "4GiB"},
                       **kwargs)


def test_a_cluster_routes_its_nodes_on_an_uplink_not_a_bridge():
    found = problems(fleet(), lxd_hosts=MEMBERS, hosts=SIZES)
    assert found == ["fleet_network.parent: a cluster's nodes need it (the uplink each member routes their addresses "
                     "on, like eth0): a bridge's address would be the same on every member"]
    assert cluster()["network"]["parent"] == "eth0"


def locations(model):
    return {name: node["location"] for name, node in model["nodes"].items()}


def test_a_single_host_places_every_node_on_it():
    model = build_model(fleet(), ROLES, NETWORK, POOLS, lxd_host="lxd-01", host=HOST)
    assert set(locations(model).values()) == {"lxd-01"}
    assert (model["lxd_hosts"], model["clustered"]) == (["lxd-01"], False)


def test_the_model_places_the_biggest_nodes_first_where_most_memory_is_left():
    model = cluster()
    # srv-a may hand out 36GiB, srv-b 20GiB. The 8GiB dev nodes: srv-a (28 left), srv-a (20 left, as
    # much as srv-b: the member listed first), srv-a (12 left); then the 4GiB infra node: srv-b.
    assert locations(model) == {"dev-a": "srv-a", "dev-b": "srv-a", "dev-c": "srv-a", "infra-server": "srv-b"}
    assert model["lxd_host"] == "srv-a" and model["clustered"]
    assert cluster() == model  # the same inventory, the same placement


def test_a_running_node_stays_where_it_runs_and_fleet_location_wins():
    moved = cluster(live_locations={"dev-a": "srv-b", "gone": "srv-b"})
    assert locations(moved)["dev-a"] == "srv-b"
    nodes = fleet(**{"dev-b": dev("10.10.10.32", "bob", location="srv-b")})
    pinned = cluster(nodes, live_locations={"dev-b": "srv-a"})
    assert locations(pinned)["dev-b"] == "srv-b"


def test_fleet_location_must_name_a_member():
    found = problems(fleet(**{"dev-b": dev("10.10.10.32", "bob", location="srv-z")}), network=ROUTED,
                     lxd_hosts=MEMBERS, hosts=SIZES)
    assert found == ["dev-b: fleet_location 'srv-z' is not a host of group lxd_hosts (srv-a, srv-b)"]


def test_a_node_may_not_have_more_cpus_than_its_member_has_threads():
    sizes = dict(SIZES, **{"srv-b": {"cpus": 2, "memory": "24GiB"}})
    found = problems(fleet(**{"dev-b": dev("10.10.10.32", "bob", location="srv-b")}), network=ROUTED,
                     lxd_hosts=MEMBERS, hosts=sizes)
    assert found == ["dev-b: cpu (fleet_roles.dev.cpu) 4 is more than the member srv-b's 2 CPU threads"]


def test_a_bad_member_size_names_the_member():
    found = problems(fleet(), network=ROUTED, lxd_hosts=MEMBERS,
                     hosts=dict(SIZES, **{"srv-b": {"cpus": "many", "memory": "24GiB"}}))
    assert len(found) == 1 and found[0].startswith("srv-b: fleet_host.cpus 'many' is not a whole number")


def test_an_overcommitted_member_is_refused_by_name_though_the_cluster_has_room():
    nodes = fleet(**{name: dev("10.10.10.%d" % (32 + i), name[4:], location="srv-b")
                     for i, name in enumerate(["dev-bob", "dev-cat", "dev-dan"])})
    model = cluster(nodes)
    report = cluster_capacity(model, SIZES, {"memory_reserve": "4GiB", "cpu_overcommit": 4})
    assert report["problems"] == [
        "memory overcommitted: the nodes placed on member srv-b ask 24GiB, it may hand out 20GiB. "
        "Biggest consumers: dev-bob 8GiB, dev-cat 8GiB, dev-dan 8GiB"]
    totals = {row["resource"]: row for row in report["rows"]}
    assert totals["memory"]["requested"] == 36 * 2**30 and totals["memory"]["available"] == 56 * 2**30
    lines = cluster_capacity_table(model, report)
    assert lines.index("member srv-a") < lines.index("member srv-b") < lines.index("cluster of 2 members")
    assert any(line.split()[:2] == ["dev-bob", "dev"] for line in lines[lines.index("member srv-b"):])
