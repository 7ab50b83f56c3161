"""Daemon hosts nested in containers of the lab's daemon (test scaffolding only): the Incus move's LXD host
(test_migrate.py) and a cluster's members (test_cluster.py), where this machine's PID 1 (not systemd) or its
one daemon do not do.

Each host is privileged and nested (its own nested containers run without an idmap range otherwise),
runs systemd, sits on the lab's bridge at a static address, and gets the controller's key, this
machine's apt cache and the lab's image tarballs (its lxd_image imports one instead of building it).
"""
from __future__ import annotations

import json
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

from conftest import GATEWAY, SSH_OPTIONS, eventually

# Where the lab's image tarball is cached (roles/lxd_image).
IMAGE_CACHE = Path("/var/cache/adelie-fleet/images")


def cgroup_v1_mounts():
    """This machine's cgroup v1 hierarchies: {directory name: mount options naming its controllers}."""
    mounts = {}
    for line in Path("/proc/mounts").read_text().splitlines():
        _source, target, kind, options = line.split()[:4]
        if kind == "cgroup" and target.startswith("/sys/fs/cgroup/"):
            mounts[target.rsplit("/", 1)[1]] = ",".join(o for o in options.split(",") if o not in ("rw", "relatime"))
    return mounts


# What a nested host needs beyond a node, before its daemon is installed:
# - the cgroup v1 hierarchies mounted as this machine mounts them: the host's systemd assumes cpu and cpuacct
#   share one (its symlinks point at an empty cpu,cpuacct), where liblxc then fails to start a container;
# - lxcfs allowed to run in a container (Debian's unit skips it there), or the node would not see its limits;
# - this machine's apt cache, and the directory the inventory's pool sits on.
NESTING_SETUP = " && ".join(
    ["mount -o remount,rw /sys/fs/cgroup"]
    + ["{ mountpoint -q /sys/fs/cgroup/%s || { rm -f /sys/fs/cgroup/%s && mkdir -p /sys/fs/cgroup/%s"
       " && mount -t cgroup -o %s cgroup /sys/fs/cgroup/%s; }; }" % (name, name, name, options, name)
       for name, options in sorted(cgroup_v1_mounts().items())]
    + ["mkdir -p /etc/systemd/system/lxcfs.service.d",
       "printf '[Unit]\\nConditionVirtualization=\\n' > /etc/systemd/system/lxcfs.service.d/nested.conf",
       "printf 'Acquire::http::Proxy \"http://%s:3142\";\\n' > /etc/apt/apt.conf.d/01adelie-proxy" % GATEWAY,
       "mkdir -p /var/lib/adelie-fleet-pool"])


def ssh_command(key, address, user="root"):
    """The ssh command line that runs a command on a nested host (or anything on the lab's bridge)."""
    return ["ssh", *SSH_OPTIONS.split(), "-i", str(key), "%s@%s" % (user, address)]


def _answers(key, address):
    """ssh's exit status for `true` on the nested host."""
    return subprocess.run(ssh_command(key, address) + ["true"], capture_output=True, timeout=60, check=False).returncode


@contextmanager
def nested_hosts(lab, project, hosts, memory="3GiB", disk="8GiB"):
    """hosts ({name: address}) running in project, each answering SSH with the controller's key; removed
    afterwards (also on failure) unless FLEET_TEST_KEEP is set."""
    def remove():
        for name in hosts:
            lab.client("delete", "--force", "--project", project, name, check=False)
        lab.client("project", "delete", project, check=False)

    remove()
    try:
        # The lab's image and profiles (features off: the default project's are used).
        lab.client("project", "create", project, "-c", "features.images=false", "-c", "features.profiles=false")
        for name, address in hosts.items():
            instance = {
                "name": name, "source": {"type": "image", "alias": "adelie/bookworm"},
                "config": {"security.privileged": "true", "security.nesting": "true", "limits.cpu": "2",
                           "limits.memory": memory},
                "devices": {"root": {"type": "disk", "path": "/", "pool": "fleet", "size": disk},
                            "eth0": {"type": "nic", "name": "eth0", "network": "fleetbr0", "ipv4.address": address},
                            # lxcfs (the nodes' limits seen from inside) needs FUSE.
                            "fuse": {"type": "unix-char", "source": "/dev/fuse", "path": "/dev/fuse"}}}
            lab.client("query", "--wait", "-X", "POST", "-d", json.dumps(instance), "/1.0/instances?project=" + project)
            lab.client("start", "--project", project, name)
            pushes = [(lab.key + ".pub", "/root/.ssh/authorized_keys", "0600")]
            pushes += [(str(tarball), str(tarball), "0644") for tarball in IMAGE_CACHE.glob("*.tar")]
            for source, target, mode in pushes:
                lab.client("file", "push", "--project", project, "--create-dirs", "--mode", mode, source, name + target)
            lab.client("exec", "--project", project, name, "--", "sh", "-c", NESTING_SETUP)
        for address in hosts.values():
            assert eventually(lambda a=address: _answers(lab.key, a), 0, timeout=60) == 0
        yield lab.key
    finally:
        if not os.environ.get("FLEET_TEST_KEEP"):
            remove()
