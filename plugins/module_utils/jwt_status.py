# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a dotenv secret needs rotating: missing, a known default, too short, too old.

The one implementation of a JWT secret's status: ``adelie.fleet.jwt_secret`` decides its rotations
with it, and the health sweep's node probe (``health_probe``) ships this file's text inside its
script, so a node is judged by exactly the rules the rotation applies.

Standard library only (plus dotenv); must stay importable on Python 3.8+ (it runs on managed hosts).
"""

from __future__ import annotations

import datetime
import re

from ansible_collections.adelie.fleet.plugins.module_utils.dotenv import decode, parse, read_file

__metaclass__ = type

BUILTIN_WEAK_VALUES = (
    "changeme",
    "change-me",
    "change_me",
    "changeit",
    "change-this",
    "changethis",
    "secret",
    "secretkey",
    "secret-key",
    "secret_key",
    "mysecret",
    "my-secret",
    "my_secret",
    "your-secret-key",
    "your_secret_key",
    "yoursecretkey",
    "your-secret",
    "your_secret",
    "your-256-bit-secret",
    "your-jwt-secret",
    "your_jwt_secret",
    "jwt_secret",
    "jwt-secret",
    "jwtsecret",
    "supersecret",
    "super-secret",
    "super_secret",
    "supersecretkey",
    "topsecret",
    "dev-secret",
    "dev_secret",
    "devsecret",
    "test-secret",
    "test_secret",
    "testsecret",
    "default",
    "password",
    "passw0rd",
    "admin",
    "test",
    "testing",
    "example",
    "sample",
    "placeholder",
    "replace-me",
    "replaceme",
    "todo",
    "xxx",
    "xxxx",
    "null",
    "none",
    "undefined",
    "123456",
    "12345678",
    "secret123",
    "s3cr3t",
)

REASONS = ("missing", "default", "too_short", "expired", "forced", "ok")
# Rotations for which the old value was acceptable and may be kept under previous_key.
KEEP_PREVIOUS_REASONS = ("expired", "forced")

ROTATED_AT_SUFFIX = "_ROTATED_AT"
_DURATION_RE = re.compile(r"^\s*(?:\d+\s*[smhdw]?\s*)+$", re.IGNORECASE)
_DURATION_PART_RE = re.compile(r"(\d+)\s*([smhdw]?)", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class RotationError(Exception):
    def __init__(self, message, line=None):
        super().__init__(message)
        self.line = line


def parse_duration(text):
    """'90d' / '1w2d' / '3600' -> seconds; ValueError when invalid or zero."""
    if text is None or not _DURATION_RE.match(str(text)):
        raise ValueError("invalid duration")
    seconds = sum(int(n) * _UNIT_SECONDS[unit.lower()] for n, unit in _DURATION_PART_RE.findall(str(text)))
    if seconds <= 0:
        raise ValueError("duration must be positive")
    return seconds


def format_timestamp(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text):
    """ISO 8601 -> aware datetime (naive means UTC); ValueError when invalid."""
    value = text.strip()
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    moment = datetime.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment


def is_weak(value, weak_values):
    normalized = value.strip().lower()
    return any(normalized == weak.strip().lower() for weak in weak_values)


def secret_age(doc, params, state, now, warn):
    """Age of the current secret in seconds, from <key>_ROTATED_AT or else the file mtime."""
    path = params["path"]
    stamp_key = params["key"] + ROTATED_AT_SUFFIX
    line = doc.line(stamp_key)
    if line is None:
        return max(0.0, now.timestamp() - (state.mtime or now.timestamp()))
    try:
        rotated = parse_timestamp(line.value)
    except ValueError:
        raise RotationError(
            "%s: line %d: %s is not an ISO 8601 timestamp (expected e.g. 2025-01-31T08:00:00Z)"
            % (path, line.number, stamp_key),
            line.number,
        ) from None
    age = (now - rotated).total_seconds()
    if age < 0:
        warn("%s: line %d: %s is in the future; treating the secret as just rotated" % (path, line.number, stamp_key))
        return 0.0
    return age


def detect(doc, params, state, now, warn, *, max_age=None):
    """Return the rotation reason for the current document."""
    current = doc.get(params["key"])
    if current is None or not current.strip():
        return "missing"
    if is_weak(current, BUILTIN_WEAK_VALUES + tuple(params["weak_values"])):
        return "default"
    if len(current.encode("utf-8", "surrogateescape")) < params["min_length"]:
        return "too_short"
    if max_age is not None and secret_age(doc, params, state, now, warn) > max_age:
        return "expired"
    if params["force"]:
        return "forced"
    return "ok"


# Rotation reasons that mean the current secret is weak (as opposed to merely old, or forced).
WEAK_REASONS = ("missing", "default", "too_short")


def file_status(path, key="JWT_SECRET", min_length=32, weak_values=(), max_age=None, now=None):
    """The rotation reason for the secret ``key`` of the dotenv file ``path``, read-only.

    Returns ``{"present": False}`` when the file does not exist, else ``{"present": True, "reason":
    one of REASONS but "forced", "rotated_at": the companion timestamp or None}``. Raises
    DotEnvFileError (unreadable, a symlink), DotEnvError (malformed) or RotationError (a bad
    timestamp); none of their messages holds a value. Never returns a value of the file.
    """
    state = read_file(path)
    if not state.exists:
        return {"present": False}
    doc = parse(decode(state.data))
    params = {"path": path, "key": key, "min_length": min_length, "weak_values": list(weak_values), "force": False}
    now = now or datetime.datetime.now(datetime.timezone.utc)
    reason = detect(doc, params, state, now, lambda message: None, max_age=max_age)
    return {"present": True, "reason": reason, "rotated_at": doc.get(key + ROTATED_AT_SUFFIX)}
