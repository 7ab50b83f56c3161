"""lxd_snapshot with a stand-in pylxd client: naming, retention, check mode, errors."""

from __future__ import annotations

import json
import re
import types

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.adelie.fleet.plugins.module_utils import lxd
from ansible_collections.adelie.fleet.plugins.module_utils.backend import BACKENDS, DEFAULT_BACKEND
from ansible_collections.adelie.fleet.plugins.modules import lxd_snapshot


class FakeSnapshot:
    def __init__(self, owner, name):
        self.owner, self.name = owner, name

    def delete(self, wait=False):
        self.owner.names.remove(self.name)


class FakeSnapshots:
    def __init__(self, names):
        self.names = list(names)

    def all(self):
        return [FakeSnapshot(self, name) for name in self.names]

    def get(self, name):
        return FakeSnapshot(self, name)

    def create(self, name, wait=False):
        self.names.append(name)


class FakeInstance:
    def __init__(self, names):
        self.name = "dev-a"
        self.snapshots = FakeSnapshots(names)


@pytest.fixture()
def instance(monkeypatch):
    box = FakeInstance(["fleet-20260101-000000", "fleet-20260102-000000", "manual-before-upgrade"])
    monkeypatch.setattr(lxd_snapshot, "lxd_client", lambda module: object())
    monkeypatch.setattr(lxd_snapshot, "get_instance", lambda module, client, name: box)
    return box


def run(capsys, **args):
    with patch_module_args({"name": "dev-a", **args}), pytest.raises(SystemExit):
        lxd_snapshot.main()
    return json.loads(capsys.readouterr().out)


def test_takes_a_time_named_snapshot_and_prunes_only_its_own(capsys, instance):
    result = run(capsys, keep=2)
    assert result["changed"] is True
    assert re.fullmatch(r"fleet-\d{8}-\d{6}", result["snapshot"])
    assert result["deleted"] == ["fleet-20260101-000000"]
    assert result["kept"] == ["fleet-20260102-000000", result["snapshot"]]
    assert sorted(instance.snapshots.names) == sorted(["fleet-20260102-000000", "manual-before-upgrade", result["snapshot"]])


def test_keep_zero_keeps_everything(capsys, instance):
    result = run(capsys, keep=0)
    assert result["deleted"] == [] and len(instance.snapshots.names) == 4


def test_check_mode_changes_nothing(capsys, instance):
    result = run(capsys, keep=1, _ansible_check_mode=True)
    assert result["changed"] is True and len(result["deleted"]) == 2
    assert instance.snapshots.names == ["fleet-20260101-000000", "fleet-20260102-000000", "manual-before-upgrade"]


def test_pruned_state_takes_no_snapshot(capsys, instance):
    result = run(capsys, state="pruned", keep=5)
    assert result["changed"] is False and "snapshot" not in result


def test_negative_keep_fails(capsys, instance):
    result = run(capsys, keep=-1)
    assert result["failed"] is True and "keep must be 0 or more" in result["msg"]


class FakeModule:
    def __init__(self, **params):
        self.params = dict(project="fleet-test", **params)


@pytest.mark.parametrize("given, expected", [
    (None, BACKENDS[DEFAULT_BACKEND]["socket"]),
    ("/var/lib/incus/unix.socket", "/var/lib/incus/unix.socket"),
])
def test_the_client_takes_the_given_socket_else_the_default_backends(monkeypatch, given, expected):
    made = []

    class Client:
        def __init__(self, **kwargs):
            made.append(kwargs)

    monkeypatch.setattr(lxd, "pylxd", types.SimpleNamespace(Client=Client))
    lxd.lxd_client(FakeModule(socket=given))
    assert made == [{"endpoint": expected, "project": "fleet-test"}]
