# Copyright: (c) 2026, Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The names of the installed packages in `dpkg-query --show --showformat='${Package} ${db:Status-Abbrev}\\n'`
output. The roles read a node once with `raw` (no Python module run) and call ansible.builtin.apt only
when a package is missing: the apt module alone costs about 2 s per node even when nothing is to do."""

from __future__ import annotations

import re

DOCUMENTATION = r"""
name: dpkg_installed
short_description: Installed package names from dpkg-query output
version_added: 0.1.0
author: Adelie infra team (@adelie)
description:
  - Reads lines of C(dpkg-query --show --showformat='${Package} ${db:Status-Abbrev}\n') and returns the
    names of the packages whose status is C(ii) (installed). Other lines, such as the rest of a combined
    read-only C(raw) probe, are ignored.
options:
  _input:
    description: The output's lines (C(stdout_lines) of the task that ran dpkg-query).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Install what is missing
  ansible.builtin.apt:
    name: "{{ wanted }}"
  when: wanted | difference(probe.stdout_lines | adelie.fleet.dpkg_installed) | length > 0
"""

RETURN = r"""
_value:
  description: Names of the installed packages, in the order of the lines.
  type: list
  elements: str
"""

_INSTALLED = re.compile(r"^([a-z0-9][a-z0-9+.-]+) ii ?$")


def dpkg_installed(lines):
    return [match.group(1) for match in map(_INSTALLED.match, lines) if match]


class FilterModule:
    def filters(self):
        return {"dpkg_installed": dpkg_installed}
