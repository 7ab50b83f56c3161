"""lxd_snapshot against a stand-in of community.general's REST client: naming, retention, check mode, errors."""

from __future__ import annotations

import json
import re

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.adelie.fleet.plugins.module_utils import lxd
from ansible_collections.adelie.fleet.plugins.module_utils.backend import BACKENDS, DEFAULT_BACKEND
from ansible_collections.adelie.fleet.plugins.modules import lxd_snapshot
from ansible_collections.community.general.plugins.module_utils.lxd import LXDClientException

BASE = "/1.0/instances/dev-a"


class FakeDaemon:
    """The /1.0 API of one instance's snapshots, as LXDClient.do answers (operations already waited for)."""

    def __init__(self, names, exists=True, refuse=None):
        self.names, self.exists, self.refuse, self.calls = list(names), exists, refuse, []

    def do(self, method, url, body_json=None, ok_error_codes=None, **_kwargs):
        path, query = url.split("?", 1)
        self.calls.append((method, path, query, body_json))
        if method == self.refuse:
            raise LXDClientException("the daemon refused")
        if not self.exists:
            assert 404 in ok_error_codes
            return {"type": "error", "error_code": 404, "error": "Instance not found"}
        if method == "GET" and path == BASE + "/snapshots":
            return {"type": "sync", "metadata": [BASE + "/snapshots/" + name for name in self.names]}
        if method == "GET" and path == BASE:
            return {"type": "sync", "metadata": {"name": "dev-a"}}
        if method == "POST":
            self.names.append(body_json["name"])
        elif method == "DELETE":
            self.names.remove(path.rsplit("/", 1)[-1])
        return {"type": "sync", "metadata": None}


def daemon(monkeypatch, **kwargs):
    fake = FakeDaemon(["fleet-20260101-000000", "fleet-20260102-000000", "manual-before-upgrade"], **kwargs)
    monkeypatch.setattr(lxd_snapshot, "lxd_client", lambda module: fake)
    return fake


@pytest.fixture()
def instance(monkeypatch):
    return daemon(monkeypatch)


def run(capsys, **args):
    with patch_module_args({"name": "dev-a", **args}), pytest.raises(SystemExit):
        lxd_snapshot.main()
    return json.loads(capsys.readouterr().out)


def test_takes_a_time_named_snapshot_and_prunes_only_its_own(capsys, instance):
    result = run(capsys, keep=2, project="fleet-test")
    assert result["changed"] is True
    assert re.fullmatch(r"fleet-\d{8}-\d{6}", result["snapshot"])
    assert result["deleted"] == ["fleet-20260101-000000"]
    assert result["kept"] == ["fleet-20260102-000000", result["snapshot"]]
    assert sorted(instance.names) == sorted(["fleet-20260102-000000", "manual-before-upgrade", result["snapshot"]])
    # Every call in the module's project.
    assert {query for _method, _path, query, _body in instance.calls} == {"project=fleet-test"}


def test_keep_zero_keeps_everything(capsys, instance):
    result = run(capsys, keep=0)
    assert result["deleted"] == [] and len(instance.names) == 4


def test_check_mode_changes_nothing(capsys, instance):
    result = run(capsys, keep=1, _ansible_check_mode=True)
    assert result["changed"] is True and len(result["deleted"]) == 2
    assert instance.names == ["fleet-20260101-000000", "fleet-20260102-000000", "manual-before-upgrade"]
    assert {method for method, *_rest in instance.calls} == {"GET"}


def test_pruned_state_takes_no_snapshot(capsys, instance):
    result = run(capsys, state="pruned", keep=5)
    assert result["changed"] is False and "snapshot" not in result


def test_negative_keep_fails(capsys, instance):
    result = run(capsys, keep=-1)
    assert result["failed"] is True and "keep must be 0 or more" in result["msg"]


def test_a_missing_instance_is_named(capsys, monkeypatch):
    daemon(monkeypatch, exists=False)
    result = run(capsys, project="fleet-test")
    assert result["failed"] is True and result["msg"] == "no instance dev-a in project fleet-test"


def test_a_refused_snapshot_says_which(capsys, monkeypatch):
    daemon(monkeypatch, refuse="POST")
    result = run(capsys)
    assert result["failed"] is True
    assert re.fullmatch(r"snapshot fleet-\d{8}-\d{6} of dev-a failed: the daemon refused", result["msg"])


class FakeModule:
    def __init__(self, **params):
        self.params = dict(project="fleet-test", **params)


@pytest.mark.parametrize("given, expected", [
    (None, BACKENDS[DEFAULT_BACKEND]["socket"]),
    ("/var/lib/incus/unix.socket", "/var/lib/incus/unix.socket"),
])
def test_the_client_takes_the_given_socket_else_the_default_backends(monkeypatch, given, expected):
    made = []
    monkeypatch.setattr(lxd, "LXDClient", made.append)
    lxd.lxd_client(FakeModule(socket=given))
    assert made == ["unix:" + expected]
