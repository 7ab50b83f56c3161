"""People and resources changing: resize in place, hand-made drift, onboarding, offboarding, restore."""

from __future__ import annotations

import subprocess
import time

import pytest
import yaml
from conftest import ON_LAB_ONLY, ON_OTHER_ONLY, eventually

pytestmark = pytest.mark.integration


def extra_inventory(tmp_path, role, hosts):
    """An inventory file adding or overriding host entries of one role group."""
    path = tmp_path / "extra.yml"
    path.write_text(yaml.safe_dump({"all": {"children": {"fleet": {"children": {role: {"hosts": hosts}}}}}}))
    return str(path)


def init_pid(lab, node):
    return lab.client_json("/1.0/instances/%s/state" % node)["pid"]


def test_resize_in_place_keeps_data_and_does_not_restart(each_lab, tmp_path):
    node = each_lab.first("dev")
    each_lab.exec(node, "echo before-resize > /root/keep.txt", check=True)
    pid = init_pid(each_lab, node)
    bigger = extra_inventory(tmp_path, "dev", {node: {"fleet_memory": "1536MiB"}})
    try:
        result = each_lab.playbook("playbooks/fleet.yml", "-i", bigger)
        assert result.rc == 0, str(result)
        assert "limits.memory is 1GiB, the inventory says 1536MiB" in result.out
        assert each_lab.exec(node, "grep MemTotal /proc/meminfo").stdout.split()[1] == str(1536 * 1024)
        assert each_lab.exec(node, "cat /root/keep.txt").stdout == "before-resize\n"
        assert init_pid(each_lab, node) == pid, "the container was restarted"
    finally:
        back = each_lab.playbook("playbooks/fleet.yml")
        assert back.rc == 0, str(back)
    assert each_lab.exec(node, "grep MemTotal /proc/meminfo").stdout.split()[1] == str(1024 * 1024)


def test_drift_made_by_hand_is_reverted_reported_and_snapshotted(each_lab):
    node = each_lab.first(cpu=2)
    snapshots_before = each_lab.client_json("/1.0/instances/%s/snapshots" % node)
    each_lab.client("config", "set", "--project", each_lab.project, node, "limits.cpu", "1")
    assert each_lab.config(node)["config"]["limits.cpu"] == "1"
    result = each_lab.playbook("playbooks/fleet.yml")
    assert result.rc == 0, str(result)
    cpu = each_lab.nodes[node]["cpu"]
    assert ("%s drifted from the inventory, applied in place: limits.cpu is 1, the inventory says %d" % (node, cpu)
            in result.out), str(result)
    assert result.changed_hosts().keys() == {node}
    assert each_lab.config(node)["config"]["limits.cpu"] == str(cpu)
    snapshots = each_lab.client_json("/1.0/instances/%s/snapshots" % node)
    assert len(snapshots) == len(snapshots_before) + 1
    assert snapshots[-1].rsplit("/", 1)[-1].startswith("fleet-")


@pytest.fixture()
def newcomer_key(tmp_path):
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dave@test", "-f", str(key)], check=True)
    return key


def add_newcomer(lab, tmp_path, public_key):
    """A third dev node beside the fleet's (ft-dev3 at .233 in the lab's test fleet): (node, login,
    address, the inventory file adding it)."""
    first = lab.first("dev")
    node, login, address = first[:-1] + "3", "dave", lab.nodes[first]["ipv4"].rsplit(".", 1)[0] + ".233"
    extra = extra_inventory(tmp_path, "dev", {node: {"fleet_ipv4": address, "fleet_member": {
        "login": login, "name": "Dave Newcomer", "email": "dave@adelie.invalid", "ssh_key": public_key}}})
    return node, login, address, extra


def offboard(lab, inventory, login, node, exports):
    """offboard.yml for member login: the node is gone and its one export, returned, is not empty."""
    result = lab.playbook("playbooks/offboard.yml", "-i", inventory, "-e", "member=" + login,
                          "-e", "fleet_export_dir=%s" % exports)
    assert result.rc == 0, str(result)
    assert lab.client_json("/1.0/instances/%s" % node) is None
    tarballs = sorted(exports.glob("%s-*.tar.zst" % node))
    assert len(tarballs) == 1 and tarballs[0].stat().st_size > 1024 * 1024
    return tarballs[0]


# The whole story on the lab's daemon; test_offboard_then_restore_keep_the_data below is its daemon's
# part (snapshot, export, delete, import) on the other one.
@ON_LAB_ONLY
def test_onboard_offboard_restore(each_lab, tmp_path, newcomer_key):
    public_key = newcomer_key.with_suffix(".pub").read_text().strip()
    node, login, address, newcomer = add_newcomer(each_lab, tmp_path, public_key)
    exports = tmp_path / "exports"
    try:
        started = 'process_start_time_seconds{job="prometheus"}'
        assert eventually(lambda: len(each_lab.query(started)), 1, timeout=2 * 15 + 5) == 1  # scraped itself once
        prometheus_started = each_lab.query(started)[0]["value"][1]
        onboard = each_lab.playbook("playbooks/onboard.yml", "-i", newcomer, "-e", "member=" + login)
        ended = time.monotonic()
        assert onboard.rc == 0, str(onboard)
        # Prometheus scrapes the newcomer's exporter within one scrape interval (15 s) plus 5 s of the
        # run's end, with no restart (file-based discovery).
        up = eventually(lambda: each_lab.target_health("node", node).get(node), "up", timeout=20, interval=0.5)
        assert up == "up" and time.monotonic() - ended < 20 + 1, each_lab.target_health("node")
        assert each_lab.query(started)[0]["value"][1] == prometheus_started
        # Only the newcomer's node was touched, besides its quotas on the host and its targets.
        assert set(onboard.changed_hosts()) <= {node, "localhost", each_lab.monitoring_node}, onboard.changed_hosts()
        assert "Host %s" % node in onboard.out and "HostName %s" % address in onboard.out
        assert "User %s" % login in onboard.out and "ProxyJump" in onboard.out
        # A running, limited container with the account and its key, seen from inside and over SSH.
        assert each_lab.exec(node, "nproc").stdout.strip() == "1"
        assert each_lab.exec(node, "grep MemTotal /proc/meminfo").stdout.split()[1] == str(1024 * 1024)
        assert public_key in each_lab.exec(node, "cat /home/%s/.ssh/authorized_keys" % login).stdout
        ssh = subprocess.run(
            ["ssh", "-i", str(newcomer_key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "%s@%s" % (login, address), "id -un"],
            capture_output=True, text=True, check=False)
        assert ssh.stdout.strip() == login, ssh.stderr
        each_lab.exec(node, "echo work-in-progress > notes.txt", user=login, check=True)
        # Their database, its role and their app's settings came with the onboarding run alone.
        env = each_lab.exec(node, "cat /home/%s/app/.env" % login, check=True).stdout
        assert "DATABASE_URL=postgresql://dev_%s:" % login in env and "REDIS_URL=redis://" in env
        databases = each_lab.exec(each_lab.monitoring_node, "runuser -u postgres -- psql -XAtc 'select datname from pg_database'")
        assert "dev_%s" % login in databases.stdout.split()

        export = offboard(each_lab, newcomer, login, node, exports)
        # Nobody is paged about a node offboarded on purpose: its target and quotas left with the run.
        assert eventually(lambda: each_lab.target_health("node", node), {}, timeout=10) == {}
        quota = 'adelie_fleet_quota_cpu{node="%s"}' % node
        assert eventually(lambda: each_lab.query(quota), [], timeout=2 * 15 + 5) == []

        restore = each_lab.playbook("playbooks/restore.yml", "-i", newcomer, "-e", "export=%s" % export)
        assert restore.rc == 0, str(restore)
        assert eventually(lambda: each_lab.exec(node, "cat notes.txt", user=login).stdout,
                          "work-in-progress\n") == "work-in-progress\n"
        assert each_lab.config(node)["config"]["limits.memory"] == "1GiB"
        # Restore never overwrites a living container.
        again = each_lab.playbook("playbooks/restore.yml", "-i", newcomer, "-e", "export=%s" % export)
        assert again.rc != 0 and "restore never overwrites" in again.out
    finally:
        each_lab.client("delete", "--force", "--project", each_lab.project, node, check=False)


@ON_OTHER_ONLY
def test_offboard_then_restore_keep_the_data(each_lab, tmp_path, newcomer_key):
    node, login, _address, extra = add_newcomer(each_lab, tmp_path, newcomer_key.with_suffix(".pub").read_text().strip())
    exports = tmp_path / "exports"
    try:
        # The container alone (no node layer): what offboarding exports is the daemon's instance.
        created = each_lab.playbook("playbooks/fleet.yml", "-i", extra)
        assert created.rc == 0, str(created)
        # fleet.yml waits for the address only; sshd comes up a moment later (nodes.yml waits for it).
        assert eventually(lambda: each_lab.exec(node, "echo work-in-progress > /root/notes.txt").returncode, 0) == 0
        export = offboard(each_lab, extra, login, node, exports)

        restore = each_lab.playbook("playbooks/restore.yml", "-i", extra, "-e", "export=%s" % export)
        assert restore.rc == 0, str(restore)
        assert eventually(lambda: each_lab.exec(node, "cat /root/notes.txt").stdout,
                          "work-in-progress\n") == "work-in-progress\n"
        assert each_lab.config(node)["config"]["limits.memory"] == "1GiB"
        snapshots = each_lab.client_json("/1.0/instances/%s/snapshots" % node)
        assert any(url.rsplit("/", 1)[-1].startswith("offboard") for url in snapshots), snapshots
    finally:
        each_lab.client("delete", "--force", "--project", each_lab.project, node, check=False)
