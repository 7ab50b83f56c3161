# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import errno
import os
import stat
import tempfile

import pytest
from ansible_collections.adelie.fleet.plugins.module_utils import dotenv
from ansible_collections.adelie.fleet.plugins.module_utils.dotenv import (
    REDACTED,
    DotEnvError,
    DotEnvFileError,
    check_writable,
    decode,
    encode,
    parse,
    read_file,
    redacted_diff,
    write_atomic,
)

ROUND_TRIP_SAMPLES = [
    "",
    "\n",
    "\r\n",
    "A=1",
    "A=1\n",
    "A=1\r\nB=2\r\n",
    "A=1\r\nB=2\nC=3",
    "# only a comment",
    "   \t\n\n# c\n  # indented comment\n",
    "export A=1\n  export   B='two words' # trailing\n",
    'A=\'single # not a comment\'\nB="double \\" # still value" # comment\n',
    "A=\nB= # empty with comment\nC=#not-a-comment\nD=a#b\n",
    "A = spaced\nB\t=\ttabbed  \n",
    "\ufeffA=bom\n",
    "dotted.key-name=1\n_under=2\n",
    "A=\"x\"   \nB='y'\t# c\r\n",
]


@pytest.mark.parametrize("text", ROUND_TRIP_SAMPLES)
def test_render_round_trips(text):
    assert parse(text).render() == text


def test_round_trips_undecodable_bytes():
    data = b"A=caf\xe9\r\nB=\xff\xfe\n"
    assert encode(parse(decode(data)).render()) == data


@pytest.mark.parametrize(
    "text, key, expected",
    [
        ("A=plain\n", "A", "plain"),
        ("A=plain # comment\n", "A", "plain"),
        ("A=a#b\n", "A", "a#b"),
        ("A=two words  \n", "A", "two words"),
        ("A='lit\\n $x'\n", "A", "lit\\n $x"),
        ('A="esc\\n\\"q\\\\ \\x"\n', "A", 'esc\n"q\\ \\x'),
        ("export A='x' # c\n", "A", "x"),
        ("A=\n", "A", ""),
        ("A= # c\n", "A", ""),
        ("A=1\n", "B", None),
    ],
)
def test_get(text, key, expected):
    assert parse(text).get(key) == expected


def test_line_metadata():
    doc = parse("# c\nexport A=1\nexporter=2\n")
    assert doc.line("A").number == 2
    assert doc.line("A").exported
    assert not doc.line("exporter").exported
    assert doc.keys() == ["A", "exporter"]
    assert "A" in doc and "B" not in doc


@pytest.mark.parametrize(
    "line, expected",
    [
        ("A=old\n", "A=new\n"),
        ("A='old'\n", "A='new'\n"),
        ('A="old"\n', 'A="new"\n'),
        ("export A=old # keep me\n", "export A=new # keep me\n"),
        ("  export  A = 'old'\t# keep\n", "  export  A = 'new'\t# keep\n"),
        ("A= # empty\n", "A= new # empty\n"),
        ('A=""\n', 'A="new"\n'),
    ],
)
def test_set_replaces_only_the_value(line, expected):
    text = "# head\r\n\n" + line + "B='other' # x\nC=3"
    doc = parse(text)
    assert doc.set("A", "new") is True
    assert doc.render() == "# head\r\n\n" + expected + "B='other' # x\nC=3"


def test_set_same_value_is_not_a_change():
    text = 'A="same"\n'
    doc = parse(text)
    assert doc.set("A", "same") is False
    assert doc.render() == text


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "A=v\n"),
        ("X=1\n", "X=1\nA=v\n"),
        ("X=1\r\nY=2\r\n", "X=1\r\nY=2\r\nA=v\r\n"),
        ("X=1\r\nY=2", "X=1\r\nY=2\r\nA=v\r\n"),
        ("X=1", "X=1\nA=v\n"),
        ("X=1\r\nY=2\nZ=3\r\n", "X=1\r\nY=2\nZ=3\r\nA=v\r\n"),
        ("X=1\nY=2\r\n", "X=1\nY=2\r\nA=v\n"),
    ],
)
def test_set_appends_with_dominant_line_ending(text, expected):
    doc = parse(text)
    assert doc.set("A", "v") is True
    assert doc.render() == expected
    assert parse(doc.render()).get("A") == "v"


@pytest.mark.parametrize("quote", ["", "'", '"'])
@pytest.mark.parametrize(
    "value",
    ["simple", "", "two words", "it's", 'say "hi"', "back\\slash", "$HOME", "a # b", "#lead", "multi\nline", " pad "],
)
def test_set_any_value_reads_back(quote, value):
    doc = parse("X=1\nA=%sold%s # c\nY=2\n" % (quote, quote))
    doc.set("A", value)
    reparsed = parse(doc.render())
    assert reparsed.get("A") == value
    assert reparsed.get("X") == "1" and reparsed.get("Y") == "2"


def test_set_keeps_quote_style_when_possible():
    doc = parse("A='x'\nB=\"y\"\nC=z\n")
    doc.set("A", "two words")
    doc.set("B", "two words")
    doc.set("C", "two words")
    assert doc.render() == "A='two words'\nB=\"two words\"\nC='two words'\n"


def test_set_rejects_invalid_key():
    with pytest.raises(DotEnvError):
        parse("").set("1BAD", "v")


def test_render_redacts_values_only():
    doc = parse("export A='s3cret' # c\r\nB=visible\nC=\"also\"")
    assert doc.render(redact=["A", "C", "MISSING"]) == (
        "export A='%s' # c\r\nB=visible\nC=\"%s\"" % (REDACTED, REDACTED)
    )
    assert "s3cret" in doc.render()


@pytest.mark.parametrize(
    "line, expected",
    [
        ("A=s3cret", "A=<redacted>"),
        ("export A='s 3' # why", "export A='<redacted>' # <redacted>"),
        ('  A = "x\\"y"\t# c', '  A = "<redacted>"\t# <redacted>'),
        ("A=v #c", "A=<redacted> # <redacted>"),
        ("A=", "A="),
        ("A= # only a comment", "A= # <redacted>"),
        ("A=''", "A=''"),
        ("# DB_URL=postgres://u:hunter2@db/x", "# <redacted>"),
        ("   #indented", "   # <redacted>"),
        ("#", "#"),
        ("#   ", "#   "),
        ("", ""),
        ("  \t", "  \t"),
    ],
)
def test_render_redacted_hides_values_and_comment_text(line, expected):
    for eol in ("", "\n", "\r\n"):
        assert parse(line + eol).render_redacted() == expected + eol


def test_render_redacted_markers_and_bom():
    doc = parse("\ufeffA=1\r\nB=2")
    assert doc.render_redacted({"B": "<x>"}) == "\ufeffA=<redacted>\r\nB=<x>"


def test_redacted_diff_marks_changed_values_only():
    text = "# pw-x\nA=k33p\nB=0ld-v\nexport C='c' # n\nE=\n"
    before, after = parse(text), parse(text)
    after.set("B", "n3w-v")
    after.set("E", "f1lled")
    after.set("D", "4dded")
    old, new = redacted_diff(before, after)
    assert old == "# <redacted>\nA=<redacted>\nB=<redacted old value>\nexport C='<redacted>' # <redacted>\nE=\n"
    assert new == (
        "# <redacted>\nA=<redacted>\nB=<redacted new value>\nexport C='<redacted>' # <redacted>\n"
        "E=<redacted new value>\nD=<redacted new value>\n"
    )
    for value in ("pw-x", "k33p", "0ld-v", "n3w-v", "f1lled", "4dded", "'c'", "# n"):
        assert value not in old + new


@pytest.mark.parametrize(
    "text, line_number, fragment",
    [
        ("A=1\njust some words\n", 2, "not a blank line"),
        ("KEYONLY\n", 1, "not a blank line"),
        ("1KEY=x\n", 1, "not a blank line"),
        ('A=1\nB="hunter2-unterminated\n', 2, "unterminated double-quoted value for key B"),
        ("B='hunter2\n", 1, "unterminated single-quoted value for key B"),
        ("B='hunter2'trailing\n", 1, "unexpected text after the closing quote of key B"),
        ("A=1\rB=hunter2\n", 1, "stray carriage return"),
        ("A=1\nexport\n", 2, "not a blank line"),
    ],
)
def test_malformed_lines(text, line_number, fragment):
    with pytest.raises(DotEnvError) as info:
        parse(text)
    assert info.value.line_number == line_number
    assert fragment in str(info.value)
    assert str(info.value).startswith("line %d: " % line_number)
    assert "hunter2" not in str(info.value)


def test_duplicate_key_names_key_and_both_lines():
    with pytest.raises(DotEnvError) as info:
        parse("A=1\n# c\nB=2\nexport A=hunter2\n")
    assert info.value.line_number == 4
    assert "key A is defined twice (lines 1 and 4)" in str(info.value)
    assert "hunter2" not in str(info.value)


# ---------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------


def test_read_file_regular(tmp_path):
    path = tmp_path / ".env"
    path.write_bytes(b"A=1\r\n")
    path.chmod(0o640)
    state = read_file(str(path))
    assert state.exists
    assert state.data == b"A=1\r\n"
    assert state.mode == 0o640
    assert state.uid == os.stat(path).st_uid
    assert state.mtime == os.stat(path).st_mtime


def test_read_file_missing(tmp_path):
    state = read_file(str(tmp_path / "absent"))
    assert not state.exists and state.data == b""
    assert not read_file(str(tmp_path / "nodir" / "absent")).exists


def test_read_file_refuses_symlink(tmp_path):
    target = tmp_path / "real"
    target.write_text("A=1\n")
    link = tmp_path / ".env"
    link.symlink_to(target)
    with pytest.raises(DotEnvFileError, match=r"is a symbolic link; refusing to follow it"):
        read_file(str(link))


def test_read_file_refuses_directory(tmp_path):
    with pytest.raises(DotEnvFileError, match=r"is not a regular file"):
        read_file(str(tmp_path))


def test_read_file_unreadable(tmp_path, monkeypatch):
    path = tmp_path / ".env"
    path.write_text("A=1\n")
    real_open = os.open

    def fake_open(name, flags, *args, **kwargs):
        if os.fspath(name) == str(path):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(dotenv.os, "open", fake_open)
    with pytest.raises(DotEnvFileError, match=r"cannot read .*\.env: permission denied"):
        read_file(str(path))


def test_check_writable(tmp_path, monkeypatch):
    path = tmp_path / ".env"
    path.write_text("A=1\n")
    check_writable(str(path), True)
    check_writable(str(tmp_path / "new"), False)
    with pytest.raises(DotEnvFileError, match=r"does not exist"):
        check_writable(str(tmp_path / "nodir" / ".env"), False)

    real_access = os.access
    denied = {str(tmp_path)}
    monkeypatch.setattr(dotenv.os, "access", lambda p, m: False if os.fspath(p) in denied else real_access(p, m))
    with pytest.raises(DotEnvFileError, match=r"directory .* is not writable"):
        check_writable(str(path), True)
    denied = {str(path)}
    monkeypatch.setattr(dotenv.os, "access", lambda p, m: False if os.fspath(p) in denied else real_access(p, m))
    with pytest.raises(DotEnvFileError, match=r"file is not writable"):
        check_writable(str(path), True)


def _leftovers(directory, keep):
    return sorted(name for name in os.listdir(directory) if name not in keep)


def test_write_atomic_new_file_is_0600(tmp_path):
    path = tmp_path / ".env"
    write_atomic(None, str(path), b"A=1\n")
    assert path.read_bytes() == b"A=1\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert _leftovers(tmp_path, {".env"}) == []


def test_write_atomic_preserves_mode_and_replaces_inode(tmp_path):
    path = tmp_path / ".env"
    path.write_bytes(b"old\n")
    path.chmod(0o640)
    before = os.stat(path)
    write_atomic(None, str(path), b"new\r\n", 0o640, before.st_uid, before.st_gid)
    after = os.stat(path)
    assert path.read_bytes() == b"new\r\n"
    assert stat.S_IMODE(after.st_mode) == 0o640
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert after.st_ino != before.st_ino  # renamed into place, not rewritten
    assert _leftovers(tmp_path, {".env"}) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="changing ownership needs root")
def test_write_atomic_sets_owner(tmp_path):
    path = tmp_path / ".env"
    write_atomic(None, str(path), b"A=1\n", 0o640, 1234, 2345)
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 2345, 0o640)


def test_write_atomic_chown_failure_is_clear(tmp_path, monkeypatch):
    path = tmp_path / ".env"
    path.write_bytes(b"old\n")

    def refuse(*args):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(dotenv.os, "fchown", refuse)
    with pytest.raises(DotEnvFileError, match=r"cannot preserve the owner/group of .*Operation not permitted"):
        write_atomic(None, str(path), b"new\n", 0o600, os.getuid() + 1, None)
    assert path.read_bytes() == b"old\n"
    assert _leftovers(tmp_path, {".env"}) == []


def test_write_atomic_failure_leaves_original_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / ".env"
    path.write_bytes(b"old\n")

    def broken_replace(src, dst):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(dotenv.os, "replace", broken_replace)
    with pytest.raises(DotEnvFileError, match=r"cannot write .*Input/output error"):
        write_atomic(None, str(path), b"new\n")
    assert path.read_bytes() == b"old\n"
    assert _leftovers(tmp_path, {".env"}) == []


def test_write_atomic_unwritable_directory(tmp_path, monkeypatch):
    def denied(**kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(DotEnvFileError, match=r"cannot create a temporary file in .*Permission denied"):
        write_atomic(None, str(tmp_path / ".env"), b"A=1\n")
