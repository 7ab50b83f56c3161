from __future__ import annotations

import subprocess

import pytest
from ansible_collections.adelie.fleet.plugins.filter.dpkg_installed import FilterModule, dpkg_installed


def test_only_installed_packages_count():
    lines = ["git ii ", "rsync un ", "sudo rc ", "lxd ii", "docker.io iU ", "g++ ii ", "libc6-dev ii "]
    assert dpkg_installed(lines) == ["git", "lxd", "g++", "libc6-dev"]


@pytest.mark.parametrize("line", [
    "groups: hj ii",          # the rest of a combined raw probe
    "account: ii",
    "node: v18.19.0",
    "adelie-fleet-read-done",
    "",
])
def test_other_probe_lines_are_ignored(line):
    assert dpkg_installed([line]) == []


def test_registered_under_its_name():
    assert FilterModule().filters()["dpkg_installed"] is dpkg_installed


def test_reads_real_dpkg_query_output():
    proc = subprocess.run(["dpkg-query", "--show", "--showformat=${Package} ${db:Status-Abbrev}\\n", "dpkg", "coreutils"],
                          capture_output=True, text=True, check=True)
    assert dpkg_installed(proc.stdout.splitlines()) == ["coreutils", "dpkg"]
