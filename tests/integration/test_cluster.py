"""A fleet on a two-member cluster: formed by site.yml, its nodes placed per member, moved, evacuated and
restored (issue 18).

The members are daemons nested in two privileged containers of the lab's daemon (tests/integration/nested.py),
cl-a and cl-b on the lab's bridge; the three small nodes of tests/integration/inventory_cluster are routed on
the members' eth0, so their addresses sit on the lab's bridge too and the controller reaches them directly.
Everything is checked from outside the playbooks: the cluster's own API on a member, and the nodes over SSH.
The cases share the cluster and run in order (an evacuation and its restore, then a move).
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_collections.adelie.fleet.plugins.module_utils.backend import backend
from conftest import run_playbook
from nested import nested_hosts, ssh_command

INVENTORY = Path(__file__).resolve().parent / "inventory_cluster"
PROJECT = "fleet-test-cluster"
MEMBERS = {"cl-a": "10.10.10.251", "cl-b": "10.10.10.252"}
NODES = {name: entry["fleet_ipv4"] for name, entry in yaml.safe_load(
    (INVENTORY / "hosts.yml").read_text())["all"]["children"]["fleet"]["children"]["box"]["hosts"].items()}
CLI = backend(yaml.safe_load((INVENTORY / "group_vars" / "lxd_hosts.yml").read_text())["fleet_backend"])["cli"]
MiB = 1024


class Cluster:
    def __init__(self, key):
        self.key = key

    def run(self, address, cmd):
        return subprocess.run(ssh_command(self.key, address) + [cmd], capture_output=True, text=True, timeout=120,
                              check=False)

    def api(self, path):
        """A GET of the cluster's API, through its first member."""
        result = self.run(MEMBERS["cl-a"], "%s query %s" % (CLI, path))
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout or "[]")

    def locations(self):
        return {i["name"]: i["location"] for i in self.api("/1.0/instances?recursion=1")}

    def node(self, name, cmd):
        return self.run(NODES[name], cmd)

    def memory_limit(self, name):
        """The node's memory as it sees it (lxcfs), in KiB."""
        return int(self.node(name, "grep MemTotal /proc/meminfo").stdout.split()[1])


@pytest.fixture(scope="module")
def cluster(lab):
    with nested_hosts(lab, PROJECT, MEMBERS, memory="2GiB", disk="6GiB") as key:
        result = run_playbook("site.yml", inventory=INVENTORY)
        assert result.rc == 0, str(result)
        yield Cluster(key)


def play(playbook, *args):
    return run_playbook(playbook, *args, inventory=INVENTORY)


def test_site_yml_forms_the_cluster_and_places_each_node_on_its_member(cluster):
    members = cluster.api("/1.0/cluster/members?recursion=1")
    assert {(m["server_name"], m["status"]) for m in members} == {("cl-a", "Online"), ("cl-b", "Online")}
    # Pinned: cl-one on cl-a, cl-two on cl-b; cl-three (768MiB) where the most memory was left: cl-b.
    assert cluster.locations() == {"cl-one": "cl-a", "cl-two": "cl-b", "cl-three": "cl-b"}
    for name, address in NODES.items():
        assert cluster.node(name, "ip -4 -brief address show eth0").stdout.split()[2] == address + "/32"
    assert cluster.memory_limit("cl-three") == 768 * MiB
    assert cluster.memory_limit("cl-one") == 256 * MiB

    again = play("site.yml")
    assert again.rc == 0 and again.changed_hosts() == {}, str(again)


def test_an_evacuation_empties_a_member_and_a_restore_brings_its_nodes_back(cluster):
    # cl-b's nodes (1GiB) do not fit cl-a's 768MiB beside cl-one: refused by name, nothing moves.
    refused = play("playbooks/evacuate.yml", "-e", "member=cl-b")
    assert refused.rc != 0
    assert "does not fit the members left without cl-b (cl-a)" in refused.out, str(refused)
    before = cluster.locations()
    assert before == {"cl-one": "cl-a", "cl-two": "cl-b", "cl-three": "cl-b"}

    assert cluster.node("cl-one", "echo kept > /root/before-evacuation").returncode == 0
    evacuated = play("playbooks/evacuate.yml", "-e", "member=cl-a")
    assert evacuated.rc == 0, str(evacuated)
    assert set(cluster.locations().values()) == {"cl-b"}
    assert cluster.api("/1.0/instances/cl-one")["config"]["user.adelie.origin"] == "cl-a"
    assert cluster.node("cl-one", "cat /root/before-evacuation").stdout == "kept\n"
    # The next converge leaves the evacuated node where it is.
    converged = play("site.yml")
    assert converged.rc == 0 and converged.changed_hosts() == {}, str(converged)
    assert set(cluster.locations().values()) == {"cl-b"}

    restored = play("playbooks/evacuate.yml", "-e", "member=cl-a", "-e", "restore=true")
    assert restored.rc == 0, str(restored)
    assert cluster.locations() == before
    assert "user.adelie.origin" not in cluster.api("/1.0/instances/cl-one")["config"]
    assert cluster.node("cl-one", "cat /root/before-evacuation").stdout == "kept\n"


def test_a_node_moves_with_its_data_address_and_limits_and_a_move_without_room_is_refused(cluster):
    assert cluster.node("cl-two", "echo kept > /root/before-move").returncode == 0
    moved = play("playbooks/move.yml", "-e", "node=cl-two", "-e", "target=cl-a")
    assert moved.rc == 0, str(moved)
    assert cluster.locations()["cl-two"] == "cl-a"
    assert cluster.node("cl-two", "cat /root/before-move").stdout == "kept\n"
    assert cluster.node("cl-two", "ip -4 -brief address show eth0").stdout.split()[2] == NODES["cl-two"] + "/32"
    assert cluster.memory_limit("cl-two") == 256 * MiB
    assert cluster.api("/1.0/instances/cl-two")["config"]["limits.cpu"] == "1"
    snapshots = [snapshot["name"] for snapshot in cluster.api("/1.0/instances/cl-two/snapshots?recursion=1")]
    assert any(name.startswith("move-") for name in snapshots), snapshots

    # cl-a may hand out 768MiB and holds 512MiB now: cl-three's 768MiB does not fit, whatever cl-b has left.
    refused = play("playbooks/move.yml", "-e", "node=cl-three", "-e", "target=cl-a")
    assert refused.rc != 0
    assert "the nodes placed on member cl-a ask 1280MiB, it may hand out 768MiB" in refused.out, str(refused)
    assert cluster.locations()["cl-three"] == "cl-b"
    assert cluster.api("/1.0/instances/cl-three/snapshots") == []


def test_a_host_of_lxd_hosts_that_is_no_member_of_the_cluster_is_named(cluster, tmp_path):
    """cl-c: a third host of lxd_hosts whose daemon (cl-b's) is in the cluster under another name, as a member
    removed by hand would be. The host layer's configuration phase names it and changes nothing."""
    extra = tmp_path / "stray.yml"
    extra.write_text(yaml.safe_dump({"all": {"children": {"lxd_hosts": {"hosts": {"cl-c": {
        "ansible_host": MEMBERS["cl-b"], "fleet_host": {"cpus": 2, "memory": "1GiB"}}}}}}}))
    result = play("playbooks/host.yml", "-i", str(extra), "--tags", "lxd_host_configure")
    assert result.rc != 0
    assert "members of group lxd_hosts not online in the cluster: cl-c" in result.out, str(result)
    assert result.changed_hosts() == {}
    assert {m["server_name"] for m in cluster.api("/1.0/cluster/members?recursion=1")} == {"cl-a", "cl-b"}
