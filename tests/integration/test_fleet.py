"""The fleet from the inside: every container has the inventory's limits, and a re-run changes nothing."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from conftest import ON_LAB_ONLY, eventually


pytestmark = pytest.mark.integration


def test_every_node_runs_with_its_address(each_lab):
    for name, node in each_lab.nodes.items():
        state = each_lab.client_json("/1.0/instances/%s/state" % name)
        assert state["status"] == "Running", name
        addresses = [a["address"] for a in state["network"]["eth0"]["addresses"] if a["family"] == "inet"]
        assert addresses == [node["ipv4"]], name


def test_cpu_and_memory_limits_seen_from_inside(each_lab):
    for name, node in each_lab.nodes.items():
        assert each_lab.exec(name, "nproc").stdout.strip() == str(node["cpu"]), name
        meminfo = each_lab.exec(name, "grep MemTotal /proc/meminfo").stdout.split()
        assert int(meminfo[1]) * 1024 == node["memory_bytes"], name


def test_node_override_beats_role_quota(lab):
    # ft-dev2 is dev_ai (1GiB in fleet_roles) with fleet_memory: 768MiB in its host entry.
    assert lab.nodes["ft-dev2"]["memory"] == "768MiB"
    assert lab.config("ft-dev2")["config"]["limits.memory"] == "768MiB"


def test_write_past_disk_quota_fails(each_lab):
    name = each_lab.first("dev")
    quota = each_lab.nodes[name]["disk_bytes"]
    write = each_lab.exec(name, "dd if=/dev/zero of=/var/tmp/fill bs=1M count=%d conv=fsync 2>&1" % (quota // 2**20 + 256))
    try:
        assert write.returncode != 0, write.stdout
        assert "quota" in write.stdout.lower() or "no space" in write.stdout.lower(), write.stdout
    finally:
        each_lab.exec(name, "rm -f /var/tmp/fill; sync")
        # The space is back in the quota group (disk_used commits the pool first), or the next run on
        # this node finds its disk still full.
        assert eventually(lambda: each_lab.disk_used(name) < quota * 0.8, True, timeout=60, interval=2), \
            "the quota group never gave the space back"
    # And the node is still usable after the failed write.
    assert each_lab.exec(name, "echo ok > /var/tmp/after && cat /var/tmp/after").stdout.strip() == "ok"


def test_second_run_changes_nothing(each_lab):
    again = each_lab.playbook("site.yml")
    assert again.rc == 0, str(again)
    assert set(again.recap) >= set(each_lab.nodes) | {"localhost"}
    assert again.changed_hosts() == {}, str(again)


# Check mode runs the same modules on either daemon: on the lab's (the re-run above covers both).
@ON_LAB_ONLY
def test_check_mode_on_converged_fleet_changes_nothing(each_lab):
    check = each_lab.playbook("site.yml", "--check", "--diff")
    assert check.rc == 0, str(check)
    assert check.changed_hosts() == {}, str(check)


# A canary the host layer would create at once if it ran before validation: a new storage pool.
CANARY_POOL = {"name": "ft-canary", "driver": "btrfs", "size": "1GiB"}
LAB_POOLS = [{"name": "fleet", "driver": "btrfs", "size": "64GiB"}]
MEMBER = {"login": "carol", "name": "Carol Test", "email": "carol@adelie.invalid"}
NEW_NODE = {"fleet_ipv4": "10.10.10.239"}


def new_member_node(**member):
    return {**NEW_NODE, "fleet_member": {**MEMBER, **member}}


# case: (node name, role group, host vars, extra vars, what the message must name)
BAD_INVENTORIES = {
    "address outside the subnet": ("ft-bad", "deploy", {"fleet_ipv4": "10.20.0.5"}, {}, "fleet_ipv4"),
    "duplicate address": ("ft-bad", "deploy", {"fleet_ipv4": "10.10.10.231"}, {}, "fleet_ipv4"),
    "unparsable memory size": ("ft-bad", "deploy", {**NEW_NODE, "fleet_memory": "2 gigs"}, {}, "fleet_memory"),
    "size LXD rejects (a space)": ("ft-bad", "deploy", {**NEW_NODE, "fleet_memory": "12 GB"}, {}, "fleet_memory"),
    "member login root": ("ft-bad", "dev", new_member_node(login="root"), {}, "fleet_member.login"),
    "member login a system account": ("ft-bad", "dev", new_member_node(login="nobody"), {}, "fleet_member.login"),
    "login ending in a newline": ("ft-bad", "dev", new_member_node(login="carol\n"), {}, "fleet_member.login"),
    "e-mail ending in a newline": ("ft-bad", "dev", new_member_node(email="carol@adelie.invalid\n"), {},
                                   "fleet_member.email"),
    "name ending in a newline": ("ft-bad", "dev", new_member_node(name="Carol\n"), {}, "fleet_member.name"),
    "uppercase node name": ("FT-Bad", "deploy", NEW_NODE, {}, "uppercase"),
    "pool without a size": ("ft-bad", "deploy", NEW_NODE,
                            {"fleet_pools": LAB_POOLS + [{"name": "ft-canary", "driver": "btrfs"}]}, "size"),
    "non-numeric fleet_host": ("ft-bad", "deploy", NEW_NODE, {"fleet_host": {"cpus": "many", "memory": "24GiB"}},
                               "fleet_host.cpus"),
    "non-numeric fleet_capacity": ("ft-bad", "deploy", NEW_NODE, {"fleet_capacity": {"cpu_overcommit": "lots"}},
                                   "fleet_capacity.cpu_overcommit"),
    "unknown daemon": ("ft-bad", "deploy", NEW_NODE, {"fleet_backend": "LXD"}, "fleet_backend"),
}


def host_state(lab):
    """What a run could change on the host: LXD's objects, the installed packages, a node's limits."""
    paths = ("/1.0/instances", "/1.0/profiles", "/1.0/networks", "/1.0/storage-pools", "/1.0/projects", "/1.0/images")
    lxd = {(path, project): lab.client_json(path, project) for path in paths for project in ("default", lab.project)}
    packages = subprocess.run(["dpkg-query", "--show"], capture_output=True, text=True, check=True).stdout
    return {"lxd": lxd, "packages": packages, "ft-deploy": lab.config("ft-deploy")["config"]}


@pytest.mark.parametrize("case", sorted(BAD_INVENTORIES))
def test_bad_inventory_is_refused_before_any_change(lab, tmp_path, case):
    node, group, host_vars, bad_vars, field = BAD_INVENTORIES[case]
    # The bad entry, a valid edit of an existing node and, unless the case is about pools, a new
    # pool: each of them a change the run would make if it validated late.
    inventory = tmp_path / "bad.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"fleet": {"children": {
        group: {"hosts": {node: host_vars}}}}}}}))
    edit = tmp_path / "edit.yml"
    edit.write_text(yaml.safe_dump({"all": {"children": {"fleet": {"children": {"deploy": {"hosts": {
        "ft-deploy": {"fleet_memory": "512MiB"}}}}}}}}))
    extra_vars = {"fleet_pools": LAB_POOLS + [CANARY_POOL], **bad_vars}
    before = host_state(lab)
    result = lab.playbook("site.yml", "-i", str(inventory), "-i", str(edit), "-e", json.dumps(extra_vars))
    assert result.rc != 0
    # The message names the node (or the variable) and the field; a duplicate names both nodes.
    message = next(line for line in result.out.splitlines() if line.startswith("fatal:"))
    assert field in message, str(result)
    if not bad_vars:
        assert node in message, str(result)
    # The model play is the only one that ran, and nothing on the host changed.
    assert "PLAY [Prepare the LXD host" not in result.out, str(result)
    assert host_state(lab) == before
