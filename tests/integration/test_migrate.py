"""An LXD host moved to Incus in place by playbooks/migrate_to_incus.yml, its fleet kept.

lxd-to-incus stops and starts the daemons through systemd or OpenRC, and this machine's PID 1 is neither. So
the LXD host under test is a container of the lab's daemon running systemd: mig-host, privileged and nested
(test-only), in a project of its own, at 10.10.10.250 on the lab's bridge. The playbooks make it an LXD host
with one teammate's node (tests/integration/inventory_migrate), then move it to Incus. Everything is checked
from outside: on the host, in the node, and over SSH as the teammate.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_collections.adelie.fleet.plugins.module_utils.backend import backend
from conftest import SSH_OPTIONS, run_playbook
from nested import nested_hosts

INVENTORY = Path(__file__).resolve().parent / "inventory_migrate"
PROJECT = "fleet-test-mig"
HOST, HOST_ADDRESS = "mig-host", "10.10.10.250"
NODE, NODE_ADDRESS, LOGIN = "mg-box", "10.10.30.31", "dana"
INCUS = backend("incus")
LXD = INCUS["migrate_from"]["source"]
# The metrics client certificate lxd_metrics made on the host (the one Prometheus presents).
METRICS_CLIENT = "/var/lib/adelie-fleet/metrics/client"


def fetch(url, certificate=False):
    """A command that prints url's body, read on the nested host (it has Python, not curl)."""
    context = "c=ssl.create_default_context();c.check_hostname=False;c.verify_mode=ssl.CERT_NONE;"
    if certificate:
        context += "c.load_cert_chain('%s.crt','%s.key');" % (METRICS_CLIENT, METRICS_CLIENT)
    return ("python3 -c \"import ssl,sys,urllib.request as u;%ssys.stdout.write(u.urlopen('%s',context=c,timeout=10)"
            ".read().decode())\"" % (context, url))


def ssh(key, target, cmd, user="root", check=False, jump_key=None):
    """cmd on the nested host, or on its node through it (as the inventory reaches it; the jump with
    jump_key, by default key)."""
    command = ["ssh", *SSH_OPTIONS.split(), "-i", str(key)]
    if target != HOST_ADDRESS:
        command += ["-o", "ProxyCommand=ssh %s -i %s -W %%h:%%p root@%s" % (SSH_OPTIONS, jump_key or key, HOST_ADDRESS)]
    return subprocess.run(command + ["%s@%s" % (user, target), cmd], capture_output=True, text=True, check=check, timeout=300)


@pytest.fixture(scope="module")
def nested_host(lab):
    """mig-host running, with the controller's key, this machine's apt cache and the lab's image tarball."""
    with nested_hosts(lab, PROJECT, {HOST: HOST_ADDRESS}) as key:
        yield key


def test_an_lxd_host_moves_to_incus_with_its_fleet(nested_host, tmp_path):
    key = nested_host
    member_key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dana@test", "-f", str(member_key)], check=True)
    extra = tmp_path / "member.yml"
    extra.write_text(yaml.safe_dump({"all": {"children": {"fleet": {"children": {"box": {"hosts": {NODE: {
        "fleet_member": {"login": LOGIN, "name": "Dana Test", "email": "dana@adelie.invalid",
                         "ssh_key": member_key.with_suffix(".pub").read_text().strip()}}}}}}}}}))

    def play(playbook, *args):
        return run_playbook(playbook, "-i", str(extra), *args, inventory=INVENTORY)

    def on_host(cmd):
        return ssh(key, HOST_ADDRESS, cmd)

    # The fleet on LXD: the host, the container, the teammate's account, the exporters and LXD's metrics.
    for playbook, args in (("playbooks/host.yml", ()), ("playbooks/fleet.yml", ()), ("playbooks/nodes.yml", ("--skip-tags", "node_layer")),
                           ("playbooks/observability.yml", ())):
        result = play(playbook, *args)
        assert result.rc == 0, str(result)
    ssh(key, NODE_ADDRESS, "echo root-work > /root/notes.txt", check=True)
    ssh(key, NODE_ADDRESS, "su - %s -c 'echo dana-work > notes.txt'" % LOGIN, check=True)
    assert re.search(r'^lxd_cpu_seconds_total\{.*name="%s"' % NODE, on_host(fetch("https://10.10.30.1:8444/1.0/metrics", certificate=True)).stdout, re.M)

    # Refused while the inventory still names LXD: nothing changes.
    refused = play("playbooks/migrate_to_incus.yml")
    assert refused.rc != 0 and "Set fleet_backend: incus" in refused.out, str(refused)
    assert on_host("test -d /var/backups/adelie-fleet").returncode != 0

    moved = play("playbooks/migrate_to_incus.yml", "-e", "fleet_backend=incus")
    assert moved.rc == 0, str(moved)

    # On the host: Incus runs the node, LXD is gone, and the node was snapshotted and exported first.
    assert on_host("%s list --format csv --columns ns" % INCUS["cli"]).stdout.split() == ["%s,RUNNING" % NODE]
    # lxd-to-incus --yes purges the packages of Debian's LXD.
    status = on_host("dpkg-query --show --showformat='${db:Status-Status} ' lxd lxd-client").stdout
    assert "installed" not in status.replace("not-installed", ""), status
    assert on_host("test -e " + LXD["var_dir"]).returncode != 0
    exports = on_host("stat --format=%%s /var/backups/adelie-fleet/%s-migrate-*.tar.zst" % NODE).stdout.split()
    assert len(exports) == 1 and int(exports[0]) > 1024 * 1024, exports
    assert "migrate-" in on_host("%s query /1.0/instances/%s/snapshots" % (INCUS["cli"], NODE)).stdout
    # In the node: its data, address and limits.
    assert ssh(key, NODE_ADDRESS, "cat /root/notes.txt").stdout == "root-work\n"
    assert ssh(key, NODE_ADDRESS, "ip -4 -brief address show eth0").stdout.split()[2] == NODE_ADDRESS + "/24"
    assert ssh(key, NODE_ADDRESS, "nproc").stdout.strip() == "1"
    assert ssh(key, NODE_ADDRESS, "grep MemTotal /proc/meminfo").stdout.split()[1] == str(512 * 1024)
    # The teammate still logs in with their own key, and finds their files.
    assert ssh(member_key, NODE_ADDRESS, "cat notes.txt", user=LOGIN, jump_key=key).stdout == "dana-work\n"
    # The scrape targets: the node's exporter, and the daemon's metrics with the same client certificate.
    assert on_host(fetch("http://%s:9100/metrics" % NODE_ADDRESS)).stdout.count("\nnode_uname_info{") == 1
    assert re.search(r'^incus_cpu_seconds_total\{.*name="%s"' % NODE, on_host(fetch("https://10.10.30.1:8444/1.0/metrics", certificate=True)).stdout, re.M)

    # Run again: nothing left to move, and the converged fleet does not change.
    again = play("playbooks/migrate_to_incus.yml", "-e", "fleet_backend=incus")
    assert again.rc == 0 and again.changed_hosts() == {}, str(again)
    assert "holds no LXD data" in again.out


def test_a_host_without_systemd_is_refused_before_anything_changes(lab, tmp_path):
    """This machine (its PID 1 is neither systemd nor OpenRC): refused by name. In check mode, so that a
    refusal that broke could not touch the lab either."""
    exports = tmp_path / "exports"
    result = lab.playbook("playbooks/migrate_to_incus.yml", "--check", "-e", "fleet_backend=incus",
                          "-e", "fleet_export_dir=%s" % exports)
    assert result.rc != 0 and "cannot move to Incus" in result.out and "systemd or OpenRC only" in result.out, str(result)
    assert not exports.exists()
