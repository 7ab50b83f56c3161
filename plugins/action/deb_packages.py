# -*- coding: utf-8 -*-
# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of adelie.fleet.deb_packages: apt only for the packages dpkg says are missing.

apt costs 2-5 s a call even when nothing is missing (it opens its cache), and the roles install
packages about ten times per node and run. dpkg answers for the named packages in milliseconds, so
one task asks dpkg and runs ansible.builtin.apt only when a package is missing: one task and one
round trip per call when everything is there (it was a role of six tasks per node).
"""

from __future__ import annotations

import shlex
import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

__metaclass__ = type

ARGUMENT_SPEC = dict(
    names=dict(type="list", elements="str", required=True),
    install_recommends=dict(type="bool", default=False),
    cache_valid_time=dict(type="int", default=86400),
    retries=dict(type="int", default=2),
    delay=dict(type="int", default=10),
)

# Only these packages are asked for: the whole list (package_facts) would sit in the host's facts,
# which Ansible copies for every task and host.
QUERY_FORMAT = "--showformat=${Package} ${db:Status-Status}\\n"
# A fresh Debian image ships /var/lib/apt/lists empty but new: apt's cache_valid_time would call it
# fresh and find no package. No *_Packages file there means refresh now.
LISTS_PROBE = "find /var/lib/apt/lists -maxdepth 1 -type f -name '*_Packages*' -print -quit"


def missing_packages(names, query_stdout):
    """The names dpkg-query did not report as installed, in the order asked."""
    installed = set()
    for line in query_stdout.splitlines():
        package, _sep, status = line.strip().partition(" ")
        if status == "installed":
            installed.add(package)
    return [name for name in names if name not in installed]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def _run(self, command):
        return self._low_level_execute_command(command, sudoable=True)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        _spec, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        names = args["names"]
        query = self._run(shlex.join(["dpkg-query", "--show", QUERY_FORMAT] + names))
        # rc 1: a package dpkg has never heard of (it is then missing); more is dpkg failing.
        if query["rc"] > 1:
            raise AnsibleActionFail("dpkg-query failed (rc %s): %s" % (query["rc"], query["stderr"].strip()))
        missing = missing_packages(names, query["stdout"])
        result.update(changed=False, missing=missing)
        if not missing:
            return result

        lists = self._run(LISTS_PROBE)["stdout"].strip()
        apt_args = dict(name=names, state="present", install_recommends=args["install_recommends"],
                        update_cache=True, cache_valid_time=args["cache_valid_time"] if lists else 0)
        # A mirror or cache hiccup: apt runs again, `delay` seconds later. Installing again what is
        # missing is safe.
        for attempt in range(args["retries"] + 1):
            apt = self._execute_module(module_name="ansible.builtin.apt", module_args=apt_args, task_vars=task_vars)
            if not apt.get("failed"):
                result.update(changed=apt.get("changed", False), msg=apt.get("msg", ""))
                return result
            if attempt < args["retries"]:
                time.sleep(args["delay"])
        host = (task_vars or {}).get("inventory_hostname", "the host")
        tries = "1 try" if not args["retries"] else "%d tries" % (args["retries"] + 1)
        raise AnsibleActionFail(
            "apt could not install %s on %s (%s): %s. Check that the host reaches its Debian mirror or the fleet's apt "
            "cache (`apt-get update` there), run `dpkg --configure -a` if dpkg was interrupted, then run the playbook "
            "again." % (" ".join(missing), host, tries, apt.get("msg", "no message")))
