"""roles/internal_release_binary run for real on localhost (connection local), everything under tmp_path:
a tar.gz release made here holding a tiny shell script that prints its version, served by a file:// URL
(or given as the controller's local file). Installed once with its handler notified, nothing changed and
nothing fetched on the second run, a wrong checksum refused with the role's message, check mode makes
nothing, and a play that includes it directly is refused by its guard.

The role installs as owner root (as on the fleet's hosts), so these tests need root.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tarfile

import pytest
import yaml
from playbook_run import run_playbook

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the role installs its binary as owner root")

ROLE = "adelie.fleet.internal_release_binary"


def _release(tmp_path, version):
    """fakebin-<version>.tar.gz holding fakebin-<version>/fakebin; returns its path and sha256."""
    folder = tmp_path / "src" / ("fakebin-" + version)
    folder.mkdir(parents=True)
    script = folder / "fakebin"
    script.write_text('#!/bin/sh\necho "fakebin, version v%s (test release)"\n' % version)
    script.chmod(0o755)
    archive = tmp_path / ("fakebin-%s.tar.gz" % version)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def _role_vars(tmp_path, version, archive, checksum, local=False):
    return {
        "internal_release_binary_name": "fakebin",
        "internal_release_binary_version": version,
        "internal_release_binary_url": "file://%s" % archive if not local else "https://invalid.example/fakebin.tar.gz",
        "internal_release_binary_local_file": str(archive) if local else "",
        "internal_release_binary_checksum": checksum,
        "internal_release_binary_download_name": "fakebin.tar.gz",
        "internal_release_binary_archive_member": "fakebin-%s/fakebin" % version,
        "internal_release_binary_cache_dir": str(tmp_path / "cache"),
        "internal_release_binary_dest": str(tmp_path / "bin" / "fakebin"),
        "internal_release_binary_download_retries": 0,
        "internal_release_binary_notify": ["Fakebin installed"],
    }


def _play(tmp_path, role_vars, direct=None):
    """A play including the role from a role of its own (as loki, alloy... do), or directly from the play
    (direct="include_role" or "roles") to meet the guard. Returns the playbook and the inventory."""
    caller = tmp_path / "roles" / "caller"
    (caller / "tasks").mkdir(parents=True, exist_ok=True)
    (caller / "handlers").mkdir(exist_ok=True)
    (caller / "tasks" / "main.yml").write_text(yaml.safe_dump([
        {"name": "Install fakebin", "ansible.builtin.include_role": {"name": ROLE}}]))
    (caller / "handlers" / "main.yml").write_text(yaml.safe_dump([
        {"name": "Fakebin installed", "ansible.builtin.command": {
            "argv": ["sh", "-c", 'echo installed >>"$1"', "sh", str(tmp_path / "handler.log")]}}]))
    (tmp_path / "bin").mkdir(exist_ok=True)
    play = {"name": "Release", "hosts": "localhost", "gather_facts": False, "vars": role_vars}
    if direct == "include_role":
        play["tasks"] = [{"name": "Include it from the play", "ansible.builtin.include_role": {"name": ROLE}}]
    elif direct == "roles":
        play["roles"] = [ROLE]
    else:
        play["roles"] = ["caller"]
    playbook = tmp_path / "release.yml"
    playbook.write_text(yaml.safe_dump([play]))
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    return str(playbook), inventory


def _handler_runs(tmp_path):
    log = tmp_path / "handler.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def _version(binary):
    return subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("local", [False, True], ids=["download", "local_file"])
def test_installs_once_then_changes_and_fetches_nothing(tmp_path, local):
    archive, sha256 = _release(tmp_path, "1.2.3")
    binary = tmp_path / "bin" / "fakebin"
    playbook, inventory = _play(tmp_path, _role_vars(tmp_path, "1.2.3", archive, "sha256:" + sha256, local))

    checked = run_playbook(playbook, "--check", inventory=inventory)
    assert checked.rc == 0, str(checked)
    assert not binary.exists() and not (tmp_path / "cache").exists(), "check mode made something"

    first = run_playbook(playbook, inventory=inventory)
    assert first.rc == 0, str(first)
    assert first.recap["localhost"]["changed"] > 0, str(first)
    assert stat.S_IMODE(binary.stat().st_mode) == 0o755 and binary.stat().st_uid == 0
    assert "version v1.2.3" in _version(binary)
    assert (tmp_path / "cache" / "1.2.3" / "fakebin.tar.gz").is_file()
    assert _handler_runs(tmp_path) == 1

    # Converged: the installed binary's version decides, so the release and the cached copies of it
    # may as well be gone (the cache directory itself is the role's to keep).
    archive.unlink()
    for cached in (tmp_path / "cache" / "1.2.3").iterdir():
        shutil.rmtree(cached) if cached.is_dir() else cached.unlink()
    second = run_playbook(playbook, inventory=inventory)
    assert second.rc == 0, str(second)
    assert second.recap["localhost"]["changed"] == 0, str(second)
    assert _handler_runs(tmp_path) == 1


def test_another_version_replaces_the_binary(tmp_path):
    old, old_sha = _release(tmp_path, "1.2.3")
    binary = tmp_path / "bin" / "fakebin"
    playbook, inventory = _play(tmp_path, _role_vars(tmp_path, "1.2.3", old, "sha256:" + old_sha))
    assert run_playbook(playbook, inventory=inventory).rc == 0
    new, new_sha = _release(tmp_path, "1.3.0")
    playbook, inventory = _play(tmp_path, _role_vars(tmp_path, "1.3.0", new, "sha256:" + new_sha))
    result = run_playbook(playbook, inventory=inventory)
    assert result.rc == 0, str(result)
    assert "version v1.3.0" in _version(binary)
    assert _handler_runs(tmp_path) == 2


@pytest.mark.parametrize("local", [False, True], ids=["download", "local_file"])
def test_a_wrong_checksum_fails_with_the_roles_message(tmp_path, local):
    archive, _sha256 = _release(tmp_path, "1.2.3")
    wrong = "0" * 64
    playbook, inventory = _play(tmp_path, _role_vars(tmp_path, "1.2.3", archive, "sha256:" + wrong, local))
    result = run_playbook(playbook, inventory=inventory)
    assert result.rc != 0 and result.recap["localhost"]["failed"] == 1, str(result)
    source = str(archive) if local else "file://%s" % archive
    assert "fakebin: release 1.2.3 could not be installed on localhost (%s)" % source in result.out, str(result)
    assert "Check fakebin_checksum against the release page" in result.out, str(result)
    assert wrong in result.out, str(result)
    assert not (tmp_path / "bin" / "fakebin").exists()
    assert _handler_runs(tmp_path) == 0


def test_a_download_without_a_checksum_is_refused(tmp_path):
    archive, _sha256 = _release(tmp_path, "1.2.3")
    playbook, inventory = _play(tmp_path, _role_vars(tmp_path, "1.2.3", archive, ""))
    result = run_playbook(playbook, inventory=inventory)
    assert result.rc != 0, str(result)
    assert "fakebin: the release needs a version" in result.out and 'for a download (got "")' in result.out, \
        str(result)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "bin" / "fakebin").exists()


@pytest.mark.parametrize("direct", ["include_role", "roles"])
def test_a_play_cannot_run_it_directly(tmp_path, direct):
    archive, sha256 = _release(tmp_path, "1.2.3")
    playbook, inventory = _play(tmp_path, _role_vars(tmp_path, "1.2.3", archive, "sha256:" + sha256), direct)
    result = run_playbook(playbook, inventory=inventory)
    assert result.rc != 0, str(result)
    assert "internal role of adelie.fleet: include it from a role" in result.out, str(result)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "bin" / "fakebin").exists()
