# -*- coding: utf-8 -*-
# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""community.general.lxd with a retry on LXD's lost exec status.

LXD 5.0.2 answers about one exec in fifty into a container whose Docker containers run
healthchecks with "Failed to retrieve PID of executing child process" (canonical/lxd#8577,
#12084), measured here. The command DID run; only its output and exit status are lost. What
Ansible sends is safe to run again (modules converge to a state; chmod, rm and the home lookup
are idempotent) except the creation of its temporary directory, which is retried with mkdir -p.
Do not use raw tasks with side effects through this connection: they would run twice.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: lxd
short_description: Run tasks in LXD instances with C(lxc exec), retrying LXD's transient exec failure
version_added: 0.1.0
author: Adelie infra team (@adelie)
description:
  - The C(community.general.lxd) connection, plus a retry when LXD answers an exec with
    C(Failed to retrieve PID of executing child process). The command ran but its output and status were lost,
    so it is run again; the creation of the temporary directory is run again with C(mkdir -p).
  - Ansible's modules are safe to run again; a C(raw) task with side effects is not, so do not use one through this connection.
options:
  remote_addr:
    description: Instance name; the part before the first dot of an FQDN.
    type: string
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_lxd_host
  executable:
    description: Shell to use for execution inside the instance.
    type: string
    default: /bin/sh
    vars:
      - name: ansible_executable
      - name: ansible_lxd_executable
  lxd_become_method:
    description: Become command used to switch to a non-root user.
    type: str
    default: /bin/su
    vars:
      - name: lxd_become_method
  remote:
    description: Name of the LXD remote to use.
    type: string
    default: local
    vars:
      - name: ansible_lxd_remote
  remote_user:
    description: User to run as inside the instance.
    type: string
    default: root
    vars:
      - name: ansible_user
    env:
      - name: ANSIBLE_REMOTE_USER
    ini:
      - section: defaults
        key: remote_user
    keyword:
      - name: remote_user
  project:
    description: Name of the LXD project to use.
    type: string
    vars:
      - name: ansible_lxd_project
  exec_retries:
    description: How many times to retry an exec that LXD failed to start.
    type: int
    default: 3
    vars:
      - name: ansible_lxd_exec_retries
"""

import re
import time

from ansible_collections.community.general.plugins.connection.lxd import Connection as LxdConnection

TRANSIENT_EXEC_ERROR = "Failed to retrieve PID of executing child process"
TMP_MKDIR = re.compile(r'mkdir "(?=` echo [^`]*ansible-tmp-)')


class Connection(LxdConnection):
    """lxc exec, run again when LXD lost the status of the command."""

    transport = "adelie.fleet.lxd"

    def exec_command(self, cmd, in_data=None, sudoable=True):
        attempts = self.get_option("exec_retries") + 1
        for attempt in range(1, attempts + 1):
            returncode, stdout, stderr = super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
            if TRANSIENT_EXEC_ERROR not in stderr or attempt == attempts:
                return returncode, stdout, stderr
            self._display.vvv("LXD lost the command's status (%s), retry %d" % (TRANSIENT_EXEC_ERROR, attempt),
                              host=self._host())
            time.sleep(attempt)
            # The lost attempt may have made the temporary directory already.
            cmd = TMP_MKDIR.sub('mkdir -p "', cmd)
        return returncode, stdout, stderr
