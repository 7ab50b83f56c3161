"""The fleet model: sizes, validation messages naming node and field, and capacity arithmetic."""

from __future__ import annotations

import pytest

from ansible_collections.adelie.fleet.plugins.module_utils.fleet import (
    FleetError, build_model, capacity, capacity_table, format_size, parse_size)

ROLES = {
    "infra": {"cpu": 2, "memory": "4GiB", "disk": "20GiB", "pool": "nvme", "docker": True},
    "dev": {"cpu": 4, "memory": "8GiB", "disk": "150GiB", "pool": "nvme", "docker": True, "member_required": True},
}
NETWORK = {"name": "fleetbr0", "ipv4": "10.10.10.1/24"}
POOLS = [{"name": "nvme", "driver": "btrfs", "size": "1TiB"}, {"name": "hdd", "driver": "btrfs", "source": "/dev/sdb"}]


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
        build_model(nodes, kwargs.get("roles", ROLES), kwargs.get("network", NETWORK), kwargs.get("pools", POOLS),
                    live_pools=kwargs.get("live_pools"))
    return error.value.problems


@pytest.mark.parametrize("text, size", [
    ("8GiB", 8 * 2**30), ("512MiB", 512 * 2**20), ("300GB", 300 * 10**9), ("1.5GiB", 3 * 2**29),
    (1073741824, 2**30), ("2048", 2048), ("8 GiB", 8 * 2**30), ("1TiB", 2**40)])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["8 gigs", "", "-1GiB", "0", "GiB", "8GX", True, None, "1e3GiB"])
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
    assert "disk:hdd" not in rows  # a pool on a device has no declared size to check


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
