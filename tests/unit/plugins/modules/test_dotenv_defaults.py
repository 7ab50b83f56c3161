"""adelie.fleet.dotenv_defaults: adds only the missing keys, keeps everything else, never shows a value."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.adelie.fleet.plugins.modules import dotenv_defaults

PASSWORD = "pg-Zx81kq7HwR2vP0aLmN4b"
ORIGINAL = b"# the app\r\nexport JWT_SECRET='old-secret-value-1234'\r\nDATABASE_URL=\r\n\r\nOTHER=1 # note\r\n"


def run(capsys, **args):
    with patch_module_args(args), pytest.raises(SystemExit):
        dotenv_defaults.main()
    out = capsys.readouterr().out
    return json.loads(out), out


def test_adds_only_missing_keys_and_keeps_the_rest(tmp_path, capsys):
    path = tmp_path / ".env"
    path.write_bytes(ORIGINAL)
    path.chmod(0o640)
    result, out = run(capsys, path=str(path), values={"DATABASE_URL": "postgresql://x:%s@h/x" % PASSWORD,
                                                      "POSTGRES_PASSWORD": PASSWORD, "OTHER": "2", "REDIS_URL": "redis://h/1"})
    assert result["changed"] and result["added"] == ["POSTGRES_PASSWORD", "REDIS_URL"]
    assert result["kept"] == ["DATABASE_URL", "OTHER"]
    assert path.read_bytes() == ORIGINAL + ("POSTGRES_PASSWORD=%s\r\nREDIS_URL=redis://h/1\r\n" % PASSWORD).encode()
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    assert PASSWORD not in out
    again = run(capsys, path=str(path), values={"POSTGRES_PASSWORD": "other", "REDIS_URL": "x"})[0]
    assert not again["changed"] and again["added"] == []


def test_check_mode_and_redacted_diff(tmp_path, capsys):
    path = tmp_path / ".env"
    path.write_bytes(ORIGINAL)
    result, out = run(capsys, path=str(path), values={"POSTGRES_PASSWORD": PASSWORD},
                      _ansible_check_mode=True, _ansible_diff=True)
    assert result["changed"] and path.read_bytes() == ORIGINAL
    assert "POSTGRES_PASSWORD=<redacted new value>" in result["diff"]["after"]
    assert "old-secret-value" not in out and PASSWORD not in out


def test_missing_file_needs_create(tmp_path, capsys):
    path = tmp_path / ".env"
    result = run(capsys, path=str(path), values={"A": "1"})[0]
    assert result["failed"] and "create=true" in result["msg"]
    result = run(capsys, path=str(path), values={"A": "1"}, create=True, mode="0600")[0]
    assert result["changed"] and path.read_bytes() == b"A=1\n" and oct(path.stat().st_mode & 0o777) == "0o600"


def test_malformed_file_is_refused_without_values(tmp_path, capsys):
    path = tmp_path / ".env"
    path.write_bytes(b"A=1\nA=%s\n" % PASSWORD.encode())
    result, out = run(capsys, path=str(path), values={"B": "x"})
    assert result["failed"] and "defined twice" in result["msg"] and PASSWORD not in out
