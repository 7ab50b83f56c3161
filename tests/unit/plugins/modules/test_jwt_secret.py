# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import datetime
import errno
import json
import os
import re
import stat
import tempfile

import pytest
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.testing import patch_module_args
from ansible_collections.adelie.fleet.plugins.module_utils import dotenv
from ansible_collections.adelie.fleet.plugins.modules import jwt_secret

STRONG_OLD = "0ldStr0ngSecretValue-7f3a9c2e41b84d6aa1c0e5f9d2b7c4a8"
STRONG_PREV = "Pr3viousStr0ngSecret-9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(autouse=True)
def _clear_ansible_warnings():
    # AnsibleModule keeps warnings in a process-wide registry.
    registry = getattr(ansible_warnings, "_global_warnings", None)
    if registry is not None:
        registry.clear()
    yield
    if registry is not None:
        registry.clear()


def run_module(capsys, **args):
    """Run jwt_secret.main() with ``args``; return (result, raw stdout)."""
    with patch_module_args(args), pytest.raises(SystemExit):
        jwt_secret.main()
    out = capsys.readouterr().out
    return json.loads(out), out


def env_file(tmp_path, data, mode=0o600, name=".env"):
    path = tmp_path / name
    path.write_bytes(data)
    path.chmod(mode)
    return path


def new_value(path, key="JWT_SECRET"):
    return dotenv.parse(dotenv.decode(path.read_bytes())).get(key)


def warning_texts(result):
    return json.dumps(result.get("warnings", []))


def stamp(days_ago):
    moment = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days_ago)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------
# detection reasons
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, extra, reason",
    [
        ("OTHER=1\n", {}, "missing"),
        ("JWT_SECRET=\n", {}, "missing"),
        ("JWT_SECRET='   '\n", {}, "missing"),
        ("JWT_SECRET=changeme\n", {}, "default"),
        ('JWT_SECRET="Your-Secret-Key"\n', {}, "default"),
        ("JWT_SECRET=your-256-bit-secret\n", {}, "default"),
        ("JWT_SECRET=%s\n" % STRONG_OLD, {"weak_values": [STRONG_OLD]}, "default"),
        ("JWT_SECRET=Sh0rtButRandom-91x\n", {}, "too_short"),
        ("JWT_SECRET=%s\nJWT_SECRET_ROTATED_AT=2000-01-01T00:00:00Z\n" % STRONG_OLD, {"max_age": "90d"}, "expired"),
        ("JWT_SECRET=%s\nJWT_SECRET_ROTATED_AT=%s\n" % (STRONG_OLD, stamp(2)), {"max_age": "1d"}, "expired"),
        ("JWT_SECRET=%s\n" % STRONG_OLD, {"force": True}, "forced"),
        ("JWT_SECRET=changeme\n", {"force": True}, "default"),
    ],
)
def test_detection_reasons_rotate(tmp_path, capsys, content, extra, reason):
    path = env_file(tmp_path, content.encode())
    result, _out = run_module(capsys, path=str(path), **extra)
    assert result["changed"] is True
    assert result["reason"] == reason
    assert result["path"] == str(path)
    assert HEX64.match(new_value(path))
    assert new_value(path, "JWT_SECRET_ROTATED_AT") == result["rotated_at"]
    assert "backup_file" not in result


def test_reason_ok(tmp_path, capsys):
    rotated = stamp(10)
    data = ("JWT_SECRET=%s\nJWT_SECRET_ROTATED_AT=%s\n" % (STRONG_OLD, rotated)).encode()
    path = env_file(tmp_path, data)
    result, _out = run_module(capsys, path=str(path), max_age="90d")
    assert result["changed"] is False
    assert result["reason"] == "ok"
    assert result["rotated_at"] == rotated
    assert path.read_bytes() == data


def test_reason_ok_without_max_age_ignores_age(tmp_path, capsys):
    data = ("JWT_SECRET=%s\nJWT_SECRET_ROTATED_AT=2000-01-01T00:00:00Z\n" % STRONG_OLD).encode()
    path = env_file(tmp_path, data)
    result, _out = run_module(capsys, path=str(path))
    assert (result["changed"], result["reason"], result["rotated_at"]) == (False, "ok", "2000-01-01T00:00:00Z")
    assert path.read_bytes() == data


def test_expired_falls_back_to_mtime_without_rotated_at(tmp_path, capsys):
    data = ("JWT_SECRET=%s\n" % STRONG_OLD).encode()
    path = env_file(tmp_path, data)
    result, _out = run_module(capsys, path=str(path), max_age="30d")
    assert (result["changed"], result["reason"], result["rotated_at"]) == (False, "ok", None)

    old = datetime.datetime(2001, 1, 1, tzinfo=datetime.timezone.utc).timestamp()
    os.utime(path, (old, old))
    result, _out = run_module(capsys, path=str(path), max_age="30d")
    assert (result["changed"], result["reason"]) == (True, "expired")


def test_future_rotated_at_warns_and_counts_as_fresh(tmp_path, capsys):
    data = ("JWT_SECRET=%s\nJWT_SECRET_ROTATED_AT=%s\n" % (STRONG_OLD, stamp(-30))).encode()
    path = env_file(tmp_path, data)
    result, _out = run_module(capsys, path=str(path), max_age="1d")
    assert (result["changed"], result["reason"]) == (False, "ok")
    assert "is in the future" in warning_texts(result)


def test_invalid_rotated_at_fails(tmp_path, capsys):
    data = ("JWT_SECRET=%s\n\nJWT_SECRET_ROTATED_AT=last tuesday\n" % STRONG_OLD).encode()
    path = env_file(tmp_path, data)
    result, _out = run_module(capsys, path=str(path), max_age="1d")
    assert result["failed"] is True
    assert "line 3: JWT_SECRET_ROTATED_AT is not an ISO 8601 timestamp" in result["msg"]
    assert result["line"] == 3
    assert path.read_bytes() == data


@pytest.mark.parametrize(
    "text, seconds",
    [("3600", 3600), ("90d", 90 * 86400), ("12h", 43200), ("1w3d", 10 * 86400), (" 5 m ", 300), ("2W", 1209600)],
)
def test_parse_duration(text, seconds):
    assert jwt_secret.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0d", "soon", "5y", "-1", "1.5d"])
def test_parse_duration_invalid(text):
    with pytest.raises(ValueError):
        jwt_secret.parse_duration(text)


# ---------------------------------------------------------------------------
# preservation
# ---------------------------------------------------------------------------


def test_crlf_file_preserved_byte_for_byte(tmp_path, capsys):
    original = (
        b"# API settings\r\n"
        b"\r\n"
        b"export DB_URL='postgres://db/app' # single\r\n"
        b'  GREETING="hello \\"world\\""\r\n'
        b'export JWT_SECRET="changeme" # rotate me\r\n'
        b"EMPTY=\r\n"
        b"   # indented comment\r\n"
        b"LAST=unquoted value"
    )
    path = env_file(tmp_path, original, mode=0o640)
    result, _out = run_module(capsys, path=str(path))
    assert result["changed"] is True
    secret = new_value(path)
    expected = (
        original.replace(b'"changeme"', b'"' + secret.encode() + b'"')
        + b"\r\nJWT_SECRET_ROTATED_AT="
        + result["rotated_at"].encode()
        + b"\r\n"
    )
    assert path.read_bytes() == expected
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


@pytest.mark.parametrize(
    "line_template",
    [
        "JWT_SECRET={}",
        "JWT_SECRET='{}'",
        'JWT_SECRET="{}"',
        "export JWT_SECRET={} # trailing comment",
        "  export JWT_SECRET = '{}'\t# spaced",
    ],
)
def test_quoting_and_other_lines_preserved(tmp_path, capsys, line_template):
    head = "# head\n\nA='x y'\nB=\"z\"\n"
    tail = "\n# tail\nC=3\n"
    original = head + line_template.format("secret") + tail
    path = env_file(tmp_path, original.encode())
    result, _out = run_module(capsys, path=str(path))
    assert result["reason"] == "default"
    secret = new_value(path)
    assert path.read_text() == (
        head + line_template.format(secret) + tail + "JWT_SECRET_ROTATED_AT=%s\n" % result["rotated_at"]
    )


def test_existing_rotated_at_line_is_updated_in_place(tmp_path, capsys):
    original = "JWT_SECRET_ROTATED_AT='2000-01-01T00:00:00Z' # managed\nJWT_SECRET=%s\nZ=1\n" % STRONG_OLD
    path = env_file(tmp_path, original.encode())
    result, _out = run_module(capsys, path=str(path), max_age="90d")
    assert result["reason"] == "expired"
    assert path.read_text() == "JWT_SECRET_ROTATED_AT='%s' # managed\nJWT_SECRET=%s\nZ=1\n" % (
        result["rotated_at"],
        new_value(path),
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="changing ownership needs root")
def test_owner_group_and_mode_preserved(tmp_path, capsys):
    path = env_file(tmp_path, b"JWT_SECRET=changeme\n", mode=0o640)
    os.chown(path, 1234, 2345)
    result, _out = run_module(capsys, path=str(path))
    assert result["changed"] is True
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 2345, 0o640)


def test_mode_preserved(tmp_path, capsys):
    path = env_file(tmp_path, b"JWT_SECRET=changeme\n", mode=0o604)
    result, _out = run_module(capsys, path=str(path))
    assert result["changed"] is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o604
    assert "world-readable" in warning_texts(result)


def test_create_new_file_is_0600(tmp_path, capsys):
    path = tmp_path / "sub.env"
    result, _out = run_module(capsys, path=str(path), create=True, key="API_JWT")
    assert (result["changed"], result["reason"]) == (True, "missing")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    expected = "API_JWT=%s\nAPI_JWT_ROTATED_AT=%s\n" % (new_value(path, "API_JWT"), result["rotated_at"])
    assert path.read_text() == expected
    assert sorted(os.listdir(tmp_path)) == ["sub.env"]


# ---------------------------------------------------------------------------
# check mode, diff, secrecy
# ---------------------------------------------------------------------------


def test_check_mode_writes_nothing(tmp_path, capsys):
    data = b"# c\r\nJWT_SECRET=changeme\r\n"
    path = env_file(tmp_path, data)
    old = 1_000_000_000
    os.utime(path, ns=(old * 10**9, old * 10**9))
    before = os.stat(path)
    result, _out = run_module(capsys, path=str(path), backup=True, _ansible_check_mode=True)
    assert (result["changed"], result["reason"]) == (True, "default")
    assert "backup_file" not in result
    after = os.stat(path)
    assert path.read_bytes() == data
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)
    assert sorted(os.listdir(tmp_path)) == [".env"]


def test_check_mode_does_not_create(tmp_path, capsys):
    path = tmp_path / ".env"
    result, _out = run_module(capsys, path=str(path), create=True, _ansible_check_mode=True)
    assert (result["changed"], result["reason"]) == (True, "missing")
    assert not path.exists()


def test_diff_redacts_every_value_and_marks_the_changed_lines(tmp_path, capsys):
    data = ("# c\nexport JWT_SECRET='%s' # k\nJWT_SECRET_PREVIOUS=%s\nPORT=8080\n" % (STRONG_OLD, STRONG_PREV)).encode()
    path = env_file(tmp_path, data)
    result, out = run_module(capsys, path=str(path), force=True, previous_key="JWT_SECRET_PREVIOUS", _ansible_diff=True)
    secret = new_value(path)
    for value in (STRONG_OLD, STRONG_PREV, secret):
        assert value not in out
    diff = result["diff"]
    assert diff["before"] == (
        "# <redacted>\nexport JWT_SECRET='<redacted old value>' # <redacted>\n"
        "JWT_SECRET_PREVIOUS=<redacted old value>\nPORT=<redacted>\n"
    )
    assert diff["after"] == (
        "# <redacted>\nexport JWT_SECRET='<redacted new value>' # <redacted>\n"
        "JWT_SECRET_PREVIOUS=<redacted new value>\nPORT=<redacted>\n"
        "JWT_SECRET_ROTATED_AT=<redacted new value>\n"
    )


def test_diff_in_check_mode(tmp_path, capsys):
    path = env_file(tmp_path, b"JWT_SECRET=changeme\nA=1")
    result, out = run_module(capsys, path=str(path), _ansible_check_mode=True, _ansible_diff=True)
    assert result["diff"]["before"] == "JWT_SECRET=<redacted old value>\nA=<redacted>"
    assert (
        result["diff"]["after"]
        == "JWT_SECRET=<redacted new value>\nA=<redacted>\nJWT_SECRET_ROTATED_AT=<redacted new value>\n"
    )
    assert "changeme" not in out
    assert path.read_bytes() == b"JWT_SECRET=changeme\nA=1"


def test_secret_reused_under_other_key_is_masked(tmp_path, capsys):
    data = ("JWT_SECRET=%s\nREFRESH_SECRET=%s\n" % (STRONG_OLD, STRONG_OLD)).encode()
    path = env_file(tmp_path, data)
    result, out = run_module(capsys, path=str(path), force=True, _ansible_diff=True)
    assert result["changed"] is True
    assert STRONG_OLD not in out
    assert new_value(path) not in out
    assert "REFRESH_SECRET=" in result["diff"]["after"]


@pytest.mark.parametrize("extra", [{}, {"_ansible_check_mode": True}, {"backup": True}])
@pytest.mark.parametrize("old", [STRONG_OLD, "changeme-NOT-A-KNOWN-DEFAULT", "Sh0rt-hunter2"])
def test_no_secret_in_output(tmp_path, capsys, monkeypatch, extra, old):
    generated = "feedfacecafebeef" * 4
    monkeypatch.setattr(jwt_secret.secrets, "token_hex", lambda nbytes: generated)
    data = ("JWT_SECRET=%s\nJWT_SECRET_ROTATED_AT=2000-01-01T00:00:00Z\n" % old).encode()
    path = env_file(tmp_path, data)
    result, out = run_module(capsys, path=str(path), max_age="1d", previous_key="JWT_OLD", _ansible_diff=True, **extra)
    assert result["changed"] is True
    assert old not in out
    assert generated not in out
    assert "JWT_SECRET=<redacted new value>" in result["diff"]["after"]
    if "_ansible_check_mode" not in extra:
        assert new_value(path) == generated


# The incident: a --diff of a rotation showed every other line of the .env in clear (a DB_URL password 4 times).
INCIDENT_ENV = (
    "\ufeff# backend-api settings\r\n"
    "\r\n"
    "DB_URL=postgres://u:hunter2@db/x\r\n"
    "# DB_URL=postgres://u:oldpass-1977@db/x\r\n"
    "export REDIS_URL='redis://:r3dis-pw@redis:6379/0' # note: rotated by ops\r\n"
    '  export MINIO_SECRET_KEY = "minio-\\"quoted\\"-secret"\t# mc alias\r\n'
    "export JWT_SECRET='%s' # signing key\r\n"
    "JWT_SECRET_OLD=%s\r\n"
    "EMPTY=\r\n"
    "DEBUG=false\r\n"
    "SMTP_PASSWORD=pl41n-unquoted # inline\r\n"
    "JWT_SECRET_ROTATED_AT=2001-02-03T04:05:06Z"
) % (STRONG_OLD, STRONG_PREV)
INCIDENT_VALUES = (
    "hunter2",
    "u:hunter2",
    "postgres://",
    "oldpass-1977",
    "r3dis-pw",
    "redis://",
    "rotated by ops",
    "minio-",
    "quoted",
    "mc alias",
    STRONG_OLD,
    STRONG_PREV,
    "signing key",
    "false",
    "pl41n-unquoted",
    "inline",
    "2001-02-03",
    "backend-api settings",
)
INCIDENT_KEYS = (
    "DB_URL",
    "REDIS_URL",
    "MINIO_SECRET_KEY",
    "JWT_SECRET",
    "JWT_SECRET_OLD",
    "EMPTY",
    "DEBUG",
    "SMTP_PASSWORD",
    "JWT_SECRET_ROTATED_AT",
)


@pytest.mark.parametrize("extra", [{}, {"_ansible_check_mode": True}])
def test_diff_of_a_rotation_shows_no_value_at_all(tmp_path, capsys, monkeypatch, extra):
    secret = "0123abcd" * 8
    monkeypatch.setattr(jwt_secret.secrets, "token_hex", lambda nbytes: secret)
    path = env_file(tmp_path, INCIDENT_ENV.encode())
    result, out = run_module(
        capsys, path=str(path), force=True, previous_key="JWT_SECRET_OLD", _ansible_diff=True, **extra
    )
    assert (result["changed"], result["reason"]) == (True, "forced")
    assert new_value(path) == (STRONG_OLD if extra else secret)
    before, after = result["diff"]["before"], result["diff"]["after"]
    for value in INCIDENT_VALUES + (secret, result["rotated_at"]):
        assert value not in before and value not in after, value
    # The whole module output too ("false" excepted: the JSON has its own false values).
    for value in [v for v in INCIDENT_VALUES if v != "false"] + [secret]:
        assert value not in out, value
    # Redacted, not masked: no_log's ******** never had to step in.
    assert "********" not in before + after
    for key in INCIDENT_KEYS:
        assert key + "=" in before.replace(" = ", "=") and key + "=" in after.replace(" = ", "="), key
    # Line for line, CRLF and BOM kept; only the three rotated lines differ, and the diff says so.
    before_lines, after_lines = before.split("\r\n"), after.split("\r\n")
    assert before.startswith("\ufeff# <redacted>\r\n") and len(before_lines) == len(after_lines) == 12
    changed = [(b, a) for b, a in zip(before_lines, after_lines) if b != a]
    assert changed == [
        (
            "export JWT_SECRET='<redacted old value>' # <redacted>",
            "export JWT_SECRET='<redacted new value>' # <redacted>",
        ),
        ("JWT_SECRET_OLD=<redacted old value>", "JWT_SECRET_OLD=<redacted new value>"),
        ("JWT_SECRET_ROTATED_AT=<redacted old value>", "JWT_SECRET_ROTATED_AT=<redacted new value>"),
    ]
    assert before_lines[2:4] == ["DB_URL=<redacted>", "# <redacted>"]
    assert "EMPTY=\r\n" in after


def test_weak_values_are_masked_in_invocation(tmp_path, capsys):
    path = env_file(tmp_path, ("JWT_SECRET=%s\n" % STRONG_OLD).encode())
    result, out = run_module(capsys, path=str(path), weak_values=[STRONG_OLD])
    assert result["reason"] == "default"
    assert STRONG_OLD not in out


# ---------------------------------------------------------------------------
# previous_key, backup, idempotence
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, reason",
    [
        ({"force": True}, "forced"),
        ({"max_age": "1d", "_rotated": "2000-01-01T00:00:00Z"}, "expired"),
    ],
)
def test_previous_key_keeps_old_value(tmp_path, capsys, extra, reason):
    lines = "JWT_SECRET=%s\n" % STRONG_OLD
    rotated = extra.pop("_rotated", None)
    if rotated:
        lines += "JWT_SECRET_ROTATED_AT=%s\n" % rotated
    path = env_file(tmp_path, lines.encode())
    result, _out = run_module(capsys, path=str(path), previous_key="JWT_SECRET_PREVIOUS", **extra)
    assert result["reason"] == reason
    assert new_value(path, "JWT_SECRET_PREVIOUS") == STRONG_OLD
    assert HEX64.match(new_value(path))


def test_previous_key_replaces_older_previous_in_place(tmp_path, capsys):
    path = env_file(tmp_path, ("JWT_SECRET_PREVIOUS='%s'\nJWT_SECRET=%s\n" % (STRONG_PREV, STRONG_OLD)).encode())
    _result, out = run_module(capsys, path=str(path), force=True, previous_key="JWT_SECRET_PREVIOUS")
    assert path.read_text().startswith("JWT_SECRET_PREVIOUS='%s'\n" % STRONG_OLD)
    assert STRONG_PREV not in path.read_text()
    assert STRONG_PREV not in out and STRONG_OLD not in out


def test_previous_key_does_not_keep_weak_value(tmp_path, capsys):
    data = "JWT_SECRET=changeme\nJWT_SECRET_PREVIOUS=%s\n" % STRONG_PREV
    path = env_file(tmp_path, data.encode())
    result, _out = run_module(capsys, path=str(path), previous_key="JWT_SECRET_PREVIOUS")
    assert result["reason"] == "default"
    assert new_value(path, "JWT_SECRET_PREVIOUS") == STRONG_PREV

    path2 = env_file(tmp_path, b"JWT_SECRET=changeme\n", name="other.env")
    run_module(capsys, path=str(path2), previous_key="JWT_SECRET_PREVIOUS")
    assert new_value(path2, "JWT_SECRET_PREVIOUS") is None


def test_backup_file_created(tmp_path, capsys):
    data = b"JWT_SECRET=changeme\r\nA=1\r\n"
    path = env_file(tmp_path, data, mode=0o640)
    result, _out = run_module(capsys, path=str(path), backup=True)
    backup = result["backup_file"]
    assert os.path.dirname(backup) == str(tmp_path)
    with open(backup, "rb") as handle:
        assert handle.read() == data
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o640
    assert path.read_bytes() != data


def test_no_backup_when_unchanged(tmp_path, capsys):
    path = env_file(tmp_path, ("JWT_SECRET=%s\n" % STRONG_OLD).encode())
    result, _out = run_module(capsys, path=str(path), backup=True)
    assert result["changed"] is False and "backup_file" not in result
    assert sorted(os.listdir(tmp_path)) == [".env"]


@pytest.mark.parametrize("extra", [{}, {"max_age": "90d"}, {"previous_key": "JWT_SECRET_PREVIOUS"}])
def test_second_run_is_idempotent(tmp_path, capsys, extra):
    path = env_file(tmp_path, b"# c\r\nJWT_SECRET='changeme'\r\n")
    first, _out = run_module(capsys, path=str(path), **extra)
    assert first["changed"] is True
    data = path.read_bytes()
    second, _out = run_module(capsys, path=str(path), **extra)
    assert (second["changed"], second["reason"]) == (False, "ok")
    assert second["rotated_at"] == first["rotated_at"]
    assert path.read_bytes() == data


# ---------------------------------------------------------------------------
# failures leave the file untouched
# ---------------------------------------------------------------------------


def assert_failed(result, *fragments):
    assert result["failed"] is True
    for fragment in fragments:
        assert fragment in result["msg"]


def test_malformed_line_fails(tmp_path, capsys):
    data = b"A=1\r\nJWT_SECRET=changeme\r\nthis is not valid hunter2\r\n"
    path = env_file(tmp_path, data)
    result, out = run_module(capsys, path=str(path), force=True)
    assert_failed(result, str(path), "line 3", "not a blank line, a comment or a KEY=value assignment")
    assert result["line"] == 3
    assert "hunter2" not in out and "changeme" not in out
    assert path.read_bytes() == data


def test_unterminated_quote_does_not_leak_value(tmp_path, capsys):
    data = b'JWT_SECRET="hunter2-unterminated\n'
    path = env_file(tmp_path, data)
    result, out = run_module(capsys, path=str(path))
    assert_failed(result, str(path), "line 1", "unterminated double-quoted value for key JWT_SECRET")
    assert "hunter2" not in out
    assert path.read_bytes() == data


def test_duplicate_key_fails(tmp_path, capsys):
    data = b"JWT_SECRET=changeme\nB=2\nexport JWT_SECRET=other\n"
    path = env_file(tmp_path, data)
    result, _out = run_module(capsys, path=str(path))
    assert_failed(result, str(path), "key JWT_SECRET is defined twice (lines 1 and 3)")
    assert path.read_bytes() == data


def test_symlink_fails(tmp_path, capsys):
    data = b"JWT_SECRET=changeme\n"
    target = env_file(tmp_path, data, name="real.env")
    link = tmp_path / ".env"
    link.symlink_to(target)
    result, _out = run_module(capsys, path=str(link), force=True)
    assert_failed(result, str(link), "symbolic link")
    assert link.is_symlink()
    assert target.read_bytes() == data


def test_missing_file_without_create_fails(tmp_path, capsys):
    path = tmp_path / ".env"
    result, _out = run_module(capsys, path=str(path))
    assert_failed(result, str(path), "does not exist", "create=true")
    assert not path.exists()


def test_missing_parent_directory_fails(tmp_path, capsys):
    path = tmp_path / "nodir" / ".env"
    result, _out = run_module(capsys, path=str(path), create=True)
    assert_failed(result, str(path), "parent directory does not exist")


def _deny_directory(monkeypatch, directory):
    real_access = os.access

    def fake_access(path, mode, *args, **kwargs):
        if os.fspath(path) == str(directory):
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(dotenv.os, "access", fake_access)


def test_unwritable_directory_fails(tmp_path, capsys, monkeypatch):
    data = b"# keep\nJWT_SECRET=changeme\n"
    path = env_file(tmp_path, data)
    if os.geteuid() == 0:
        _deny_directory(monkeypatch, tmp_path)  # root ignores permission bits
    else:
        tmp_path.chmod(0o500)
    try:
        result, out = run_module(capsys, path=str(path), backup=True)
    finally:
        tmp_path.chmod(0o700)
    assert_failed(result, str(path), "is not writable")
    assert "changeme" not in out
    assert path.read_bytes() == data
    assert sorted(os.listdir(tmp_path)) == [".env"]


def test_write_failure_fails_cleanly(tmp_path, capsys, monkeypatch):
    data = b"JWT_SECRET=changeme\n"
    path = env_file(tmp_path, data)

    def denied(**kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    result, _out = run_module(capsys, path=str(path))
    assert_failed(result, "cannot create a temporary file in %s" % tmp_path, "Permission denied")
    assert path.read_bytes() == data
    assert sorted(os.listdir(tmp_path)) == [".env"]


def test_unreadable_file_fails(tmp_path, capsys, monkeypatch):
    data = b"JWT_SECRET=changeme\n"
    path = env_file(tmp_path, data)
    real_open = os.open

    def fake_open(name, flags, *args, **kwargs):
        if os.fspath(name) == str(path):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(dotenv.os, "open", fake_open)
    result, _out = run_module(capsys, path=str(path))
    assert_failed(result, "cannot read %s: permission denied" % path)
    monkeypatch.undo()
    assert path.read_bytes() == data


def test_concurrent_modification_is_detected(tmp_path, capsys, monkeypatch):
    data = b"JWT_SECRET=changeme\n"
    path = env_file(tmp_path, data)
    real_check = dotenv.check_writable

    def edit_then_check(target, exists):
        path.write_bytes(b"JWT_SECRET=edited-by-someone-else\n")
        real_check(target, exists)

    monkeypatch.setattr(jwt_secret, "check_writable", edit_then_check)
    result, _out = run_module(capsys, path=str(path))
    assert_failed(result, "changed while the module was running")
    assert path.read_bytes() == b"JWT_SECRET=edited-by-someone-else\n"


@pytest.mark.parametrize(
    "args, fragment",
    [
        ({"length": 8}, "length must be at least 16 bytes"),
        ({"min_length": 100}, "min_length (100) exceeds the length of a generated secret"),
        ({"min_length": 0}, "min_length must be at least 1"),
        ({"max_age": "soon"}, "max_age must be a positive number of seconds"),
        ({"key": "JWT-SECRET"}, "key must be a variable name"),
        ({"previous_key": "JWT_SECRET"}, "previous_key must differ from key"),
        ({"previous_key": "JWT_SECRET_ROTATED_AT"}, "previous_key must differ from key"),
    ],
)
def test_invalid_options_fail(tmp_path, capsys, args, fragment):
    data = b"JWT_SECRET=changeme\n"
    path = env_file(tmp_path, data)
    result, _out = run_module(capsys, path=str(path), **args)
    assert_failed(result, fragment)
    assert path.read_bytes() == data


def test_max_age_accepts_integer_seconds(tmp_path, capsys):
    data = ("JWT_SECRET=%s\nJWT_SECRET_ROTATED_AT=%s\n" % (STRONG_OLD, stamp(1))).encode()
    path = env_file(tmp_path, data)
    result, _out = run_module(capsys, path=str(path), max_age=3600)
    assert (result["changed"], result["reason"]) == (True, "expired")
