# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Minimal dotenv (``.env``) parser and writer that round-trips byte-for-byte.

A file is parsed into one record per physical line: blank, comment or
assignment (``KEY=value`` / ``export KEY=value``, with a single-quoted,
double-quoted or unquoted value and an optional trailing comment).  Rendering an
unmodified document gives back exactly the input, including CRLF line endings,
a UTF-8 BOM and a missing final newline.  ``set`` rewrites only the value part
of one line.

Multi-line quoted values are not supported; they are reported as malformed.

Error messages never contain values, only file names, key names and line
numbers, because values are usually secrets. ``redacted_diff`` gives the
before/after texts of a change with every value and comment text hidden.

Must stay importable on Python 3.8+ (it runs on managed hosts).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat

# typing and tempfile are imported only where needed: the health sweep's probe runs this file on
# every node, and their imports were a large part of its start (annotations are postponed).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Mapping

__all__ = [
    "REDACTED",
    "REDACTED_NEW",
    "REDACTED_OLD",
    "DotEnv",
    "DotEnvError",
    "DotEnvFileError",
    "FileState",
    "check_writable",
    "decode",
    "encode",
    "parse",
    "read_file",
    "redacted_diff",
    "valid_key",
    "write_atomic",
]

REDACTED = "<redacted>"
# What a value that a change replaced shows in a redacted diff, before and after.
REDACTED_OLD = "<redacted old value>"
REDACTED_NEW = "<redacted new value>"

_BOM = "\ufeff"
_KEY = r"[A-Za-z_][A-Za-z0-9_.\-]*"
_KEY_RE = re.compile(r"^" + _KEY + r"$")
_ASSIGN_RE = re.compile(
    r"^(?P<lead>[ \t]*)(?P<export>export[ \t]+)?(?P<key>" + _KEY + r")(?P<eq>[ \t]*=[ \t]*)(?P<rest>.*)$"
)
_EXPORT_RE = re.compile(r"^[ \t]*export[ \t]")
# Unquoted value: everything up to an inline comment (" #...") or trailing blanks.
_UNQUOTED_RE = re.compile(r"^(?P<value>.*?)(?P<trail>(?:[ \t]+#.*)?[ \t]*)$")
# What may follow a closing quote.
_AFTER_QUOTE_RE = re.compile(r"^[ \t]*(?:#.*)?$")
# Values that can be written without quotes and read back unchanged by common
# dotenv readers (no blanks, quotes, comment marks, escapes or interpolation).
_SAFE_UNQUOTED_RE = re.compile(r"^[^\s'\"#\\$]*$")

_DOUBLE_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "$": "$"}


class DotEnvError(Exception):
    """A dotenv document is malformed or an operation on it is invalid."""

    def __init__(self, message: str, line_number: int | None = None) -> None:
        super().__init__(message, line_number)
        self.message = message
        self.line_number = line_number

    def __str__(self) -> str:
        if self.line_number is None:
            return self.message
        return "line %d: %s" % (self.line_number, self.message)


class DotEnvFileError(Exception):
    """A dotenv file cannot be read or written safely."""


class Line:
    """One physical line.

    For assignments the content is ``prefix + quote + raw + quote + suffix``
    where ``raw`` is the value as written between the quotes.
    """

    __slots__ = ("eol", "key", "kind", "number", "prefix", "quote", "raw", "suffix", "text")

    BLANK = "blank"
    COMMENT = "comment"
    ASSIGNMENT = "assignment"

    def __init__(
        self,
        kind: str,
        number: int,
        eol: str,
        *,
        text: str = "",
        key: str | None = None,
        prefix: str = "",
        quote: str = "",
        raw: str = "",
        suffix: str = "",
    ) -> None:
        self.kind = kind
        self.number = number
        self.eol = eol
        self.text = text
        self.key = key
        self.prefix = prefix
        self.quote = quote
        self.raw = raw
        self.suffix = suffix

    @property
    def exported(self) -> bool:
        return self.kind == Line.ASSIGNMENT and _EXPORT_RE.match(self.prefix) is not None

    @property
    def value(self) -> str:
        """The value as a program would see it (quotes removed, escapes resolved)."""
        if self.quote == '"':
            return _unescape_double(self.raw)
        return self.raw

    def render(self, redact: bool = False) -> str:
        if self.kind != Line.ASSIGNMENT:
            return self.text + self.eol
        raw = REDACTED if redact else self.raw
        suffix = self.suffix
        if not self.quote and raw and suffix.startswith("#"):
            suffix = " " + suffix
        return self.prefix + self.quote + raw + self.quote + suffix + self.eol

    def render_redacted(self, marker: str = REDACTED) -> str:
        """The line with nothing of value: a non-empty value becomes ``marker``, comment text REDACTED.

        The key, ``export``, quotes, blanks and the line ending stay, so the line keeps its place and
        shape in a diff; an empty value stays empty (that it is empty tells nothing secret).
        """
        if self.kind == Line.BLANK:
            return self.text + self.eol
        if self.kind == Line.COMMENT:
            return _redact_comment(self.text) + self.eol
        raw = marker if self.raw else ""
        suffix = _redact_comment(self.suffix)
        if not self.quote and raw and suffix.startswith("#"):
            suffix = " " + suffix
        return self.prefix + self.quote + raw + self.quote + suffix + self.eol


def _redact_comment(text: str) -> str:
    """``text`` with whatever follows its ``#`` replaced by REDACTED.

    Comment text is hidden too, not only values: a commented-out assignment
    (``# DB_URL=postgres://app:old-password@db/app``) is the usual way an old
    credential stays in a ``.env``, and nothing tells such a comment from a
    harmless one reliably.
    """
    mark = text.find("#")
    if mark < 0 or not text[mark + 1 :].strip(" \t"):
        return text
    return text[: mark + 1] + " " + REDACTED


def _unescape_double(raw: str) -> str:
    out = []
    i = 0
    while i < len(raw):
        char = raw[i]
        if char == "\\" and i + 1 < len(raw) and raw[i + 1] in _DOUBLE_UNESCAPE:
            out.append(_DOUBLE_UNESCAPE[raw[i + 1]])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _escape_double(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")


def _encode_value(value: str, preferred_quote: str):
    """Return ``(quote, raw)`` for ``value``, keeping ``preferred_quote`` when it can hold it."""
    candidates = [preferred_quote] + [q for q in ("", "'", '"') if q != preferred_quote]
    for quote in candidates:
        if quote == "" and _SAFE_UNQUOTED_RE.match(value):
            return "", value
        if quote == "'" and "'" not in value and "\n" not in value and "\r" not in value:
            return "'", value
        if quote == '"':
            return '"', _escape_double(value)
    raise AssertionError("unreachable")  # pragma: no cover


def _find_closing_double(rest: str) -> int:
    i = 1
    while i < len(rest):
        if rest[i] == "\\":
            i += 2
            continue
        if rest[i] == '"':
            return i
        i += 1
    return -1


def _parse_line(content: str, eol: str, number: int) -> Line:
    if not content.strip(" \t"):
        return Line(Line.BLANK, number, eol, text=content)
    if content.lstrip(" \t").startswith("#"):
        return Line(Line.COMMENT, number, eol, text=content)

    match = _ASSIGN_RE.match(content)
    if match is None:
        raise DotEnvError("not a blank line, a comment or a KEY=value assignment", number)
    key = match.group("key")
    prefix = content[: match.start("rest")]
    rest = match.group("rest")

    if rest[:1] in ("'", '"'):
        quote = rest[0]
        end = rest.find("'", 1) if quote == "'" else _find_closing_double(rest)
        if end < 0:
            raise DotEnvError(
                "unterminated %s-quoted value for key %s (multi-line values are not supported)"
                % ("single" if quote == "'" else "double", key),
                number,
            )
        after = rest[end + 1 :]
        if not _AFTER_QUOTE_RE.match(after):
            raise DotEnvError("unexpected text after the closing quote of key %s" % key, number)
        return Line(Line.ASSIGNMENT, number, eol, key=key, prefix=prefix, quote=quote, raw=rest[1:end], suffix=after)

    if rest.startswith("#") and match.group("eq")[-1:] in (" ", "\t"):
        # "KEY= # comment": empty value followed by a comment.
        return Line(Line.ASSIGNMENT, number, eol, key=key, prefix=prefix, suffix=rest)
    unquoted = _UNQUOTED_RE.match(rest)
    if unquoted is None:  # pragma: no cover - the pattern matches any single line
        raise DotEnvError("cannot parse the value of key %s" % key, number)
    return Line(
        Line.ASSIGNMENT,
        number,
        eol,
        key=key,
        prefix=prefix,
        raw=unquoted.group("value"),
        suffix=unquoted.group("trail"),
    )


class DotEnv:
    """A parsed dotenv document."""

    def __init__(self, lines: list[Line], bom: str = "") -> None:
        self.lines = lines
        self.bom = bom
        self._index: dict[str, Line] = {}
        for line in lines:
            if line.kind != Line.ASSIGNMENT:
                continue
            if line.key is None:
                raise AssertionError("an assignment line without a key")
            first = self._index.get(line.key)
            if first is not None:
                raise DotEnvError(
                    "key %s is defined twice (lines %d and %d)" % (line.key, first.number, line.number),
                    line.number,
                )
            self._index[line.key] = line

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def keys(self) -> list[str]:
        return list(self._index)

    def get(self, key: str, default: str | None = None) -> str | None:
        line = self._index.get(key)
        return default if line is None else line.value

    def line(self, key: str) -> Line | None:
        """The record holding ``key``, or None."""
        return self._index.get(key)

    def dominant_eol(self) -> str:
        crlf = sum(1 for line in self.lines if line.eol == "\r\n")
        lf = sum(1 for line in self.lines if line.eol == "\n")
        return "\r\n" if crlf > lf else "\n"

    def set(self, key: str, value: str) -> bool:
        """Set ``key`` to ``value``; return True if the document changed.

        An existing line keeps its position, ``export`` prefix, quoting style
        (unless the value cannot be written in it) and trailing comment. A new
        key is appended as ``KEY=value`` using the dominant line ending.
        """
        if not valid_key(key):
            raise DotEnvError("invalid key name %r" % key)
        line = self._index.get(key)
        if line is not None:
            if line.value == value:
                return False
            line.quote, line.raw = _encode_value(value, line.quote)
            return True

        eol = self.dominant_eol()
        if self.lines and not self.lines[-1].eol:
            self.lines[-1].eol = eol
        quote, raw = _encode_value(value, "")
        number = len(self.lines) + 1
        line = Line(Line.ASSIGNMENT, number, eol, key=key, prefix=key + "=", quote=quote, raw=raw)
        self.lines.append(line)
        self._index[key] = line
        return True

    def add_missing(self, values: Mapping[str, str]) -> list[str]:
        """Append each key of ``values`` that the document lacks, in the order given; return those keys.

        A key that is present keeps its line and value, even when empty: what a person wrote stays.
        """
        for key in values:
            if not valid_key(key):
                raise DotEnvError("invalid key name %r" % key)
        added = [key for key in values if key not in self._index]
        for key in added:
            self.set(key, str(values[key]))
        return added

    def render_redacted(self, markers: Mapping[str, str] | None = None) -> str:
        """The document with every value and comment text hidden, line for line (see Line.render_redacted).

        ``markers`` maps a key to what its value shows instead of REDACTED.
        """
        markers = markers or {}
        return self.bom + "".join(line.render_redacted(markers.get(line.key or "", REDACTED)) for line in self.lines)

    def render(self, redact: Iterable[str] = ()) -> str:
        """Return the document text; values of keys in ``redact`` are replaced by REDACTED."""
        hidden = frozenset(redact)
        return self.bom + "".join(
            line.render(redact=line.key in hidden and line.kind == Line.ASSIGNMENT) for line in self.lines
        )


def redacted_diff(before: DotEnv, after: DotEnv) -> tuple[str, str]:
    """Texts for a ``--diff`` of ``before`` -> ``after`` that show which lines changed and no value.

    Every value and every comment text is hidden; a key whose value differs shows REDACTED_OLD before
    and REDACTED_NEW after, so the diff marks its line as changed without showing either value.
    """
    changed = {key for key in set(before.keys()) | set(after.keys()) if before.get(key) != after.get(key)}
    return (
        before.render_redacted({key: REDACTED_OLD for key in changed}),
        after.render_redacted({key: REDACTED_NEW for key in changed}),
    )


def valid_key(key: Any) -> bool:
    return isinstance(key, str) and _KEY_RE.match(key) is not None


def parse(text: str) -> DotEnv:
    """Parse dotenv ``text``; raises DotEnvError on a malformed line or a duplicate key."""
    bom = ""
    if text.startswith(_BOM):
        bom, text = _BOM, text[1:]
    lines: list[Line] = []
    pos = 0
    number = 0
    while pos < len(text):
        number += 1
        newline = text.find("\n", pos)
        if newline < 0:
            content, eol, pos = text[pos:], "", len(text)
        else:
            content, eol, pos = text[pos:newline], "\n", newline + 1
            if content.endswith("\r"):
                content, eol = content[:-1], "\r\n"
        if "\r" in content:
            raise DotEnvError("stray carriage return (only LF and CRLF line endings are supported)", number)
        lines.append(_parse_line(content, eol, number))
    return DotEnv(lines, bom)


def decode(data: bytes) -> str:
    """Bytes to text, reversibly (undecodable bytes survive a round trip)."""
    return data.decode("utf-8", "surrogateescape")


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


# ---------------------------------------------------------------------------
# File helpers
# ---------------------------------------------------------------------------


class FileState:
    """What was read from disk; ``exists`` is False for a missing file."""

    __slots__ = ("data", "exists", "gid", "mode", "mtime", "path", "uid")

    def __init__(
        self,
        path: str,
        exists: bool,
        data: bytes = b"",
        *,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        mtime: float | None = None,
    ) -> None:
        self.path = path
        self.exists = exists
        self.data = data
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.mtime = mtime


def _reason(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__


def read_file(path: str) -> FileState:
    """Read ``path`` without following a symlink at its last component.

    A missing file gives ``FileState(exists=False)``; a symlink, a non-regular
    file or an unreadable file raises DotEnvFileError.
    """
    try:
        st = os.lstat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return FileState(path, exists=False)
        raise DotEnvFileError("cannot inspect %s: %s" % (path, _reason(exc))) from None
    if stat.S_ISLNK(st.st_mode):
        raise DotEnvFileError("%s is a symbolic link; refusing to follow it (point path at the real file)" % path)
    if not stat.S_ISREG(st.st_mode):
        raise DotEnvFileError("%s is not a regular file" % path)

    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DotEnvFileError(
                "%s is a symbolic link; refusing to follow it (point path at the real file)" % path
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise DotEnvFileError("cannot read %s: permission denied" % path) from None
        raise DotEnvFileError("cannot read %s: %s" % (path, _reason(exc))) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DotEnvFileError("%s is not a regular file" % path)
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError as exc:
        raise DotEnvFileError("cannot read %s: %s" % (path, _reason(exc))) from None
    finally:
        os.close(fd)
    return FileState(
        path, True, b"".join(chunks), mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid, mtime=st.st_mtime
    )


def check_writable(path: str, exists: bool) -> None:
    """Raise DotEnvFileError unless ``path`` can be replaced atomically."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise DotEnvFileError("directory %s of %s does not exist" % (directory, path))
    if not os.access(directory, os.W_OK | os.X_OK):
        raise DotEnvFileError(
            "cannot write %s: directory %s is not writable (needed for the atomic replace)" % (path, directory)
        )
    if exists and not os.access(path, os.W_OK):
        raise DotEnvFileError("cannot write %s: file is not writable" % path)


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        # Some filesystems refuse fsync on directories; the rename has happened.
        pass
    finally:
        os.close(fd)


def write_atomic(
    module: Any,
    path: str,
    data: bytes,
    mode: int | None = None,
    owner_uid: int | None = None,
    group_gid: int | None = None,
) -> None:
    """Replace ``path`` with ``data`` atomically.

    Writes a temporary file in the same directory, fsyncs it, applies owner and
    mode (``0600`` when ``mode`` is None), renames it over ``path`` and fsyncs
    the directory. ``module`` (an AnsibleModule or None) is used to copy the
    SELinux context of an existing file. Raises DotEnvFileError.
    """
    import tempfile  # pylint: disable=import-outside-toplevel

    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    except OSError as exc:
        raise DotEnvFileError("cannot create a temporary file in %s: %s" % (directory, _reason(exc))) from None
    try:
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                current = os.fstat(handle.fileno())
                uid = -1 if owner_uid is None or owner_uid == current.st_uid else owner_uid
                gid = -1 if group_gid is None or group_gid == current.st_gid else group_gid
                if uid != -1 or gid != -1:
                    try:
                        os.fchown(handle.fileno(), uid, gid)
                    except OSError as exc:
                        raise DotEnvFileError(
                            "cannot preserve the owner/group of %s: %s" % (path, _reason(exc))
                        ) from None
                # chmod after chown: chown may clear set-id bits.
                os.fchmod(handle.fileno(), 0o600 if mode is None else mode)
                os.fsync(handle.fileno())
            if module is not None and os.path.exists(path) and module.selinux_enabled():
                module.set_context_if_different(tmp, module.selinux_context(path), False)
            os.replace(tmp, path)
        except OSError as exc:
            raise DotEnvFileError("cannot write %s: %s" % (path, _reason(exc))) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)
