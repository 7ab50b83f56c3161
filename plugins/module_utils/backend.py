# -*- coding: utf-8 -*-
# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The two daemons a fleet can run on, LXD and Incus, and everything that differs between them.

One map, read once into the fleet model (fleet_model.backend): the roles, playbooks and modules take the
CLI, socket and paths from there, bench/fleet_backend.py and the integration tests from the model too; no
other file names either daemon's command or paths (tests/unit/test_no_daemon_literals.py). Both serve the
same /1.0 REST API (Incus dropped /1.0/containers: use /1.0/instances), projects, profiles and clustering
model. Incus's `query` prints nothing for an empty list where LXD prints []: readers take both.

Debian's packages (checked on this machine, 2026-12-04): LXD 5.0.2 in Debian 12 (security fixes until
June 2027; Debian 13 is expected to be the last release with it); Incus 6.0 LTS in bookworm-backports
and in Debian 13. `incus-base` is the daemon for containers alone (`incus` adds QEMU and swtpm for VMs).
"""

from __future__ import annotations

import copy

__metaclass__ = type

DEFAULT_BACKEND = "lxd"

# Per backend: cli (the client command), daemon (its binary, started by hand where PID 1 is not systemd;
# Debian keeps incusd out of PATH), waitready (returns once the daemon answers), unit (its systemd
# service), log_dir (where it logs when started by hand), var_dir and socket, admin_group (members may
# use the socket), init (takes a preseed on stdin), metrics_prefix (of the metric names in /1.0/metrics),
# trust_metrics (trusts a client certificate for /1.0/metrics only; the certificate's path follows), and
# the Debian packages per major release with the suite they come from (None: the release's own).
BACKENDS = {
    "lxd": {
        "name": "lxd",
        "cli": "lxc",
        "daemon": ["lxd", "--group", "lxd"],
        "waitready": ["lxd", "waitready"],
        "unit": "lxd.service",
        "log_dir": "/var/log/lxd",
        "var_dir": "/var/lib/lxd",
        "socket": "/var/lib/lxd/unix.socket",
        "admin_group": "lxd",
        "init": ["lxd", "init", "--preseed"],
        "metrics_prefix": "lxd",
        "trust_metrics": ["lxc", "config", "trust", "add", "--type=metrics"],
        "packages": {"12": {"names": ["lxd", "lxd-client", "lxcfs"], "suite": None},
                     "13": {"names": ["lxd", "lxd-client", "lxcfs"], "suite": None}},
    },
    "incus": {
        "name": "incus",
        "cli": "incus",
        "daemon": ["/usr/libexec/incus/incusd", "--group", "incus-admin"],
        "waitready": ["incus", "admin", "waitready"],
        "unit": "incus.service",
        "log_dir": "/var/log/incus",
        "var_dir": "/var/lib/incus",
        "socket": "/var/lib/incus/unix.socket",
        "admin_group": "incus-admin",
        "init": ["incus", "admin", "init", "--preseed"],
        "metrics_prefix": "incus",
        "trust_metrics": ["incus", "config", "trust", "add-certificate", "--type=metrics"],
        "packages": {"12": {"names": ["incus-base", "incus-client", "lxcfs"], "suite": "bookworm-backports"},
                     "13": {"names": ["incus-base", "incus-client", "lxcfs"], "suite": None}},
        # Moving an LXD host here in place (playbooks/migrate_to_incus.yml): Incus's own lxd-to-incus, from
        # incus-extra. It takes LXD 4.0 to 5.21 (its validate.go) into an empty Incus, stops and starts both
        # daemons through systemd or OpenRC, purges LXD's packages (--yes) and leaves `done` when it succeeded.
        "migrate_from": {
            "source": "lxd",
            "packages": ["incus-extra"],
            "command": ["lxd-to-incus", "--yes"],
            "versions": ["4.0", "5.21"],
            "done": "/var/lib/incus/.migrated-from-lxd",
        },
    },
}


def backend(name=None):
    """The map's entry of a backend (a copy: the model may hand it on); KeyError for an unknown name.

    A backend that takes hosts from another (migrate_from) carries that one's entry as migrate_from.source.
    """
    entry = copy.deepcopy(BACKENDS[name or DEFAULT_BACKEND])
    if "migrate_from" in entry:
        entry["migrate_from"]["source"] = copy.deepcopy(BACKENDS[entry["migrate_from"]["source"]])
    return entry
