#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: deb_packages
short_description: Install the Debian packages that are missing, asking dpkg first
version_added: 0.2.0
description:
  - Asks C(dpkg-query) about O(names) only. When all are installed that is the whole task (one round trip,
    never changed). When one is missing, runs M(ansible.builtin.apt) once with all O(names), state present,
    with the package lists refreshed first when older than O(cache_valid_time), or at once when there are
    none (a fresh Debian image ships C(/var/lib/apt/lists) empty).
  - Why not M(ansible.builtin.apt) alone? apt opens its cache on every call, 2-5 s even when nothing is
    missing, and the collection's roles install packages about ten times per node and run.
  - A failed apt run is tried again O(retries) times, O(delay) seconds apart; the final error names the
    missing packages, the host and what to do. The task's C(timeout) (or C(task_timeout)) bounds all tries.
  - Runs as an action plugin on the controller that drives the host; it cannot run as a module.
author:
  - Adelie infra team (@adelie)
attributes:
  check_mode:
    support: full
    description: In check mode apt reports what it would install and installs nothing.
  diff_mode:
    support: none
    description: apt shows no diff of what it installs; the result lists the missing packages.
options:
  names:
    description: Debian packages that must be installed.
    type: list
    elements: str
    required: true
  install_recommends:
    description: Also install the packages' Recommends (the nodes' roles say no, so nothing like needrestart comes in).
    type: bool
    default: false
  cache_valid_time:
    description: Refresh the package lists first when they are older than this many seconds.
    type: int
    default: 86400
  retries:
    description: Further apt runs after a failed one.
    type: int
    default: 2
  delay:
    description: Seconds between two apt runs.
    type: int
    default: 10
"""

EXAMPLES = r"""
- name: Install Redis
  adelie.fleet.deb_packages:
    names: [redis-server, redis-tools]
  register: redis_install

- name: Restart only after a fresh install
  ansible.builtin.debug:
    msg: "installed {{ redis_install.missing | join(' ') }}"
  when: redis_install is changed
"""

RETURN = r"""
missing:
  description: The packages dpkg did not report as installed before the task (empty when apt did not run).
  returned: always
  type: list
  elements: str
msg:
  description: apt's message, when apt ran.
  returned: when a package was missing
  type: str
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(
        names=dict(type="list", elements="str", required=True),
        install_recommends=dict(type="bool", default=False),
        cache_valid_time=dict(type="int", default=86400),
        retries=dict(type="int", default=2),
        delay=dict(type="int", default=10),
    ), supports_check_mode=True)
    module.fail_json(msg="adelie.fleet.deb_packages runs on the controller as an action plugin; it cannot run as a module")


if __name__ == "__main__":
    main()
