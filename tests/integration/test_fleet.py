"""The fleet from the inside: every container has the inventory's limits, and a re-run changes nothing."""

from __future__ import annotations

import time

import pytest
import yaml
from conftest import lxc_json

pytestmark = pytest.mark.integration


def test_every_node_runs_with_its_address(lab):
    for name, node in lab.nodes.items():
        state = lxc_json("/1.0/instances/%s/state" % name)
        assert state["status"] == "Running", name
        addresses = [a["address"] for a in state["network"]["eth0"]["addresses"] if a["family"] == "inet"]
        assert addresses == [node["ipv4"]], name


def test_cpu_and_memory_limits_seen_from_inside(lab):
    for name, node in lab.nodes.items():
        assert lab.exec(name, "nproc").stdout.strip() == str(node["cpu"]), name
        meminfo = lab.exec(name, "grep MemTotal /proc/meminfo").stdout.split()
        assert int(meminfo[1]) * 1024 == node["memory_bytes"], name


def test_node_override_beats_role_quota(lab):
    # ft-dev2 is dev_ai (1GiB in fleet_roles) with fleet_memory: 768MiB in its host entry.
    assert lab.nodes["ft-dev2"]["memory"] == "768MiB"
    assert lab.config("ft-dev2")["config"]["limits.memory"] == "768MiB"


def test_write_past_disk_quota_fails(lab):
    name = "ft-dev1"
    quota = lab.nodes[name]["disk_bytes"]
    write = lab.exec(name, "dd if=/dev/zero of=/var/tmp/fill bs=1M count=%d conv=fsync 2>&1" % (quota // 2**20 + 256))
    try:
        assert write.returncode != 0, write.stdout
        assert "quota" in write.stdout.lower() or "no space" in write.stdout.lower(), write.stdout
    finally:
        lab.exec(name, "rm -f /var/tmp/fill; sync")
        # btrfs gives the space back to the quota group asynchronously: wait for it, or the
        # next run on this node finds its disk still full.
        deadline = time.monotonic() + 120
        while lxc_json("/1.0/instances/%s/state" % name)["disk"]["root"]["usage"] > quota * 0.8:
            assert time.monotonic() < deadline, "the quota group never gave the space back"
            lab.exec(name, "sync")
            time.sleep(2)
    # And the node is still usable after the failed write.
    assert lab.exec(name, "echo ok > /var/tmp/after && cat /var/tmp/after").stdout.strip() == "ok"


def test_second_run_changes_nothing(lab):
    again = lab.playbook("site.yml")
    assert again.rc == 0, str(again)
    assert set(again.recap) >= set(lab.nodes) | {"localhost"}
    assert again.changed_hosts() == {}, str(again)


def test_check_mode_on_converged_fleet_changes_nothing(lab):
    check = lab.playbook("site.yml", "--check", "--diff")
    assert check.rc == 0, str(check)
    assert check.changed_hosts() == {}, str(check)


BAD_ENTRIES = {
    "address outside the subnet": ({"fleet_ipv4": "10.20.0.5"}, "fleet_ipv4"),
    "duplicate address": ({"fleet_ipv4": "10.10.10.231"}, "fleet_ipv4"),
    "unparsable memory size": ({"fleet_ipv4": "10.10.10.239", "fleet_memory": "2 gigs"}, "fleet_memory"),
}


@pytest.mark.parametrize("case", sorted(BAD_ENTRIES))
def test_bad_input_fails_before_any_change(lab, tmp_path, case):
    host_vars, field = BAD_ENTRIES[case]
    # A bad new node, and in the same inventory a valid edit of an existing one.
    extra = tmp_path / "bad.yml"
    extra.write_text(yaml.safe_dump({"all": {"children": {"fleet": {"children": {"deploy": {"hosts": {
        "ft-bad": host_vars, "ft-deploy": {"fleet_memory": "512MiB"}}}}}}}}))
    before = lab.config("ft-deploy")["config"]["limits.memory"]
    result = lab.playbook("playbooks/fleet.yml", "-i", str(extra))
    assert result.rc != 0
    # The message names the node and the field (a duplicate names both nodes).
    message = next(line for line in result.out.splitlines() if line.startswith("fatal:"))
    assert "ft-bad" in message and field in message, str(result)
    # Nothing was created or changed.
    assert lxc_json("/1.0/instances/ft-bad") is None
    assert lab.config("ft-deploy")["config"]["limits.memory"] == before
