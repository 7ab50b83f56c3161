#!/usr/bin/python
# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# Why a custom module: lineinfile/ini_file can set a value but cannot decide
# *whether* a secret needs rotating (missing, known default, too short, too old),
# cannot keep the previous value for a grace period, and print the old and new
# values in their diff.  No maintained module rotates a dotenv secret while
# preserving the rest of the file byte-for-byte and never exposing the values.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: jwt_secret
short_description: Rotate a JWT signing secret stored in a dotenv file
version_added: 0.1.0
description:
  - Checks the secret stored under O(key) in the dotenv (C(.env)) file O(path) and replaces it with a
    fresh random value when it is missing, a known default, shorter than O(min_length), older than
    O(max_age), or when O(force=true).
  - The new secret is C(secrets.token_hex(length)), that is O(length) random bytes written as
    2 x O(length) hexadecimal characters.
  - Every other line of the file (comments, blank lines, order, quoting, C(export) prefixes,
    CRLF line endings, a missing final newline unless a line has to be appended after it) is preserved
    byte-for-byte, and the file keeps its owner, group and mode. New variables are appended at the end
    with the line ending used by most lines of the file.
  - The file is replaced atomically, through a temporary file in the same directory that is fsynced
    and renamed over the original.
  - Neither the old nor the new secret is ever returned, logged or shown in a diff; nor is any other value
    of the file (see the diff_mode attribute).
  - The module does not restart anything. Use C(changed) to decide whether the services reading the file
    must be recreated. A restart is not enough for a container, which keeps the environment it was created
    with (see the examples).
author:
  - Adelie infra team (@adelie)
attributes:
  check_mode:
    support: full
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    support: full
    description:
      - Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
      - B(Every) value of the file is replaced by C(<redacted>), not only the secret's (a C(.env) holds other
        credentials, such as a password in a database URL), and so is the text of every comment (a
        commented-out line often keeps an old credential). Key names, C(export), quotes and line positions
        stay, and a value that changed shows as C(<redacted old value>) before and C(<redacted new value>)
        after, so the diff shows which lines changed and nothing of any value.
options:
  path:
    description:
      - Path of the dotenv file.
      - Must be a regular file, not a symbolic link.
    type: path
    required: true
  key:
    description:
      - Name of the variable holding the secret.
    type: str
    default: JWT_SECRET
  min_length:
    description:
      - Minimum acceptable length of the current secret, in bytes (UTF-8).
      - Must not exceed 2 x O(length), otherwise the generated secret would itself be too short.
    type: int
    default: 32
  length:
    description:
      - Number of random bytes in a generated secret. The value written is hex encoded,
        so it is twice as many characters (64 for the default).
      - Must be at least 16.
    type: int
    default: 32
  weak_values:
    description:
      - Additional values that are treated as known defaults and always rotated, for example a secret
        that was committed to a repository.
      - Extends a built-in list of common placeholders such as C(changeme), C(change-me), C(secret),
        C(your-secret-key), C(your-256-bit-secret), C(jwt_secret), C(your_jwt_secret), C(supersecret),
        C(dev-secret), C(default) and C(password).
      - Comparison ignores case and surrounding blanks.
      - These values are treated as secrets; any occurrence of them in the module result is masked, so
        very short entries that also occur in ordinary output (such as V(ok)) would garble the result.
    type: list
    elements: str
    default: []
  max_age:
    description:
      - Rotate the secret when it is older than this.
      - Either a number of seconds or a duration made of integers with a unit C(s), C(m), C(h), C(d) or
        C(w), for example V(90d), V(12h) or V(1w3d).
      - The age comes from the companion variable C(<key>_ROTATED_AT) (see notes). When that variable is
        absent, the modification time of the file is used instead.
      - When not set, the age is not checked.
    type: str
  force:
    description:
      - Rotate the secret even if it passes every check.
    type: bool
    default: false
  create:
    description:
      - Create O(path) with mode C(0600) when it does not exist.
      - When V(false), a missing file is an error.
      - The parent directory must exist.
    type: bool
    default: false
  backup:
    description:
      - Make a timestamped copy of the file, with its owner and mode, before changing it.
      - The backup contains the old secret.
    type: bool
    default: false
  previous_key:
    description:
      - Name of a variable, for example V(JWT_SECRET_PREVIOUS), that receives the old secret on rotation,
        so that tokens signed before the rotation can still be verified by an application that checks
        both keys.
      - The old value is only kept when it was itself acceptable (rotation reason V(expired) or
        V(forced)). A missing, default or too short secret is never kept, because accepting tokens signed
        with a guessable key is what the rotation is meant to stop; in that case an existing
        O(previous_key) line is left unchanged.
    type: str
notes:
  - B(Age tracking.) On every rotation the module writes C(<key>_ROTATED_AT=<timestamp>) (for example
    C(JWT_SECRET_ROTATED_AT=2025-01-31T08:00:00Z), ISO 8601 in UTC) in the same file, next to the secret.
    With O(max_age), the age of the secret is the time since that timestamp. If the variable is absent,
    for example for a file written by hand, the age is unknown and the file's modification time is used
    instead; this overestimates the age when other lines were edited later, so the secret may be rotated
    earlier than necessary but never later. A value that is not a valid timestamp is an error. A
    timestamp in the future counts as age zero and raises a warning. The variable is not written when
    nothing is rotated.
  - Multi-line quoted values are not supported; such a file is reported as malformed and left unchanged.
  - Malformed lines, a key defined twice, a symbolic link, an unreadable or unwritable file or directory,
    and a missing file with O(create=false) make the module fail without modifying the file.
  - Generating a new secret invalidates every token signed with the old one unless the application also
    accepts O(previous_key).
seealso:
  - module: ansible.builtin.lineinfile
"""

EXAMPLES = r"""
- name: Make sure the API has a strong JWT secret, rotated every 90 days
  adelie.fleet.jwt_secret:
    path: /srv/api/.env
    max_age: 90d
    previous_key: JWT_SECRET_PREVIOUS
    backup: true
  register: jwt

# A restart keeps the environment the container was created with (the old secret): recreate it.
- name: Recreate the API so that it reads the new secret
  ansible.builtin.command:
    cmd: docker compose up -d --no-deps --force-recreate backend-api
    chdir: /srv/api
  when: jwt.changed

- name: Create the file if needed and treat a leaked value as a default
  adelie.fleet.jwt_secret:
    path: /srv/worker/.env
    key: WORKER_JWT_SECRET
    create: true
    weak_values:
      - "{{ leaked_worker_secret }}"

- name: Rotate now, whatever the state of the current secret
  adelie.fleet.jwt_secret:
    path: /srv/api/.env
    force: true
"""

RETURN = r"""
path:
  description: Path of the dotenv file.
  returned: always
  type: str
  sample: /srv/api/.env
reason:
  description:
    - Why the secret was (or, in check mode, would be) rotated.
    - V(missing) the key is absent or empty; V(default) the value is a known default or listed in
      O(weak_values); V(too_short) the value is shorter than O(min_length) bytes; V(expired) the secret is
      older than O(max_age); V(forced) O(force=true) and no other reason applies; V(ok) nothing to do.
    - When several apply, the first in this order is reported.
  returned: always
  type: str
  sample: expired
rotated_at:
  description:
    - ISO 8601 UTC time of the rotation, as written to C(<key>_ROTATED_AT).
    - When nothing was rotated, the value already recorded in the file, or V(null) if there is none.
  returned: always
  type: str
  sample: "2025-01-31T08:00:00Z"
backup_file:
  description: Name of the backup file.
  returned: when O(backup=true) and the file was changed
  type: str
  sample: /srv/api/.env.1234.2025-01-31@08:00:00~
"""

import datetime
import os
import re
import secrets

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.adelie.fleet.plugins.module_utils.dotenv import (
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
# What makes a secret due for rotation: shared with the health sweep's node probe (one implementation).
from ansible_collections.adelie.fleet.plugins.module_utils.jwt_status import (
    KEEP_PREVIOUS_REASONS,
    ROTATED_AT_SUFFIX,
    RotationError,
    detect,
    format_timestamp,
    parse_duration,
)

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Values shorter than this are not added to no_log_values: masking a short
# string everywhere would mangle unrelated output (and such values are weak).
_MIN_MASKED_LENGTH = 8


def validate(module):
    """Fail on inconsistent options; return max_age in seconds (or None)."""
    params = module.params
    errors = []
    for option in ("key", "previous_key"):
        name = params[option]
        if name is not None and not _NAME_RE.match(name):
            errors.append("%s must be a variable name (letters, digits, underscores), got %r" % (option, name))
    if params["previous_key"] is not None and params["previous_key"] in (
        params["key"],
        params["key"] + ROTATED_AT_SUFFIX,
    ):
        errors.append("previous_key must differ from key and from %s%s" % (params["key"], ROTATED_AT_SUFFIX))
    if params["length"] < 16:
        errors.append("length must be at least 16 bytes, got %d" % params["length"])
    if params["min_length"] < 1:
        errors.append("min_length must be at least 1, got %d" % params["min_length"])
    elif params["min_length"] > 2 * params["length"]:
        errors.append(
            "min_length (%d) exceeds the length of a generated secret (2 x length = %d hex characters)"
            % (params["min_length"], 2 * params["length"])
        )
    max_age = None
    if params["max_age"] is not None:
        try:
            max_age = parse_duration(params["max_age"])
        except ValueError:
            errors.append(
                "max_age must be a positive number of seconds or a duration such as 90d, 12h or 1w3d, got %r"
                % params["max_age"]
            )
    if errors:
        module.fail_json(msg="; ".join(errors), path=params["path"])
    return max_age


def run(module, max_age):
    params = module.params
    path = params["path"]
    key = params["key"]
    previous_key = params["previous_key"]
    stamp_key = key + ROTATED_AT_SUFFIX

    state = read_file(path)
    if not state.exists:
        if not params["create"]:
            raise RotationError("%s does not exist (set create=true to create it)" % path)
        if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise RotationError("cannot create %s: parent directory does not exist" % path)

    try:
        doc = parse(decode(state.data))
    except DotEnvError as exc:
        raise RotationError("%s: %s" % (path, exc), exc.line_number) from None

    now = datetime.datetime.now(datetime.timezone.utc)
    reason = detect(doc, params, state, now, module.warn, max_age=max_age)
    result = {"changed": False, "path": path, "reason": reason, "rotated_at": doc.get(stamp_key)}

    if state.exists and state.mode is not None and state.mode & 0o004:
        module.warn("%s is world-readable (mode %04o); consider mode 0600" % (path, state.mode))

    if reason == "ok":
        return result

    old_value = doc.get(key)
    old_previous = doc.get(previous_key) if previous_key else None
    new_value = secrets.token_hex(params["length"])
    rotated_at = format_timestamp(now)

    # Defence in depth: mask these anywhere in the result (for example the same
    # value reused under another key that the diff shows in clear).
    module.no_log_values.add(new_value)
    for value in (old_value, old_previous):
        if value and len(value) >= _MIN_MASKED_LENGTH:
            module.no_log_values.add(value)

    doc.set(key, new_value)
    if previous_key and reason in KEEP_PREVIOUS_REASONS and old_value:
        doc.set(previous_key, old_value)
    doc.set(stamp_key, rotated_at)
    data = encode(doc.render())

    result.update(changed=True, rotated_at=rotated_at)
    if module._diff:
        # Every value and comment text hidden, not only the secret's: the rest of a .env holds credentials too.
        before, after = redacted_diff(parse(decode(state.data)), doc)
        result["diff"] = {
            "before": before,
            "after": after,
            "before_header": path if state.exists else "%s (absent)" % path,
            "after_header": path,
        }
    if module.check_mode:
        return result

    check_writable(path, state.exists)
    # Refuse to overwrite changes made by someone else since we read the file.
    if read_file(path).data != state.data:
        raise RotationError("%s changed while the module was running; nothing was written" % path)
    if params["backup"] and state.exists:
        try:
            result["backup_file"] = module.backup_local(path)
        except Exception as exc:
            raise RotationError("cannot back up %s: %s" % (path, exc)) from None
    write_atomic(module, path, data, state.mode, state.uid, state.gid)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            key=dict(type="str", default="JWT_SECRET", no_log=False),
            min_length=dict(type="int", default=32),
            length=dict(type="int", default=32),
            weak_values=dict(type="list", elements="str", default=[], no_log=True),
            max_age=dict(type="str"),
            force=dict(type="bool", default=False),
            create=dict(type="bool", default=False),
            backup=dict(type="bool", default=False),
            previous_key=dict(type="str", no_log=False),
        ),
        supports_check_mode=True,
    )
    max_age = validate(module)
    error = None
    line = None
    try:
        result = run(module, max_age)
    except RotationError as exc:
        error, line = str(exc), exc.line
    except DotEnvFileError as exc:
        error = str(exc)
    if error is not None:
        extra = {"line": line} if line is not None else {}
        module.fail_json(msg=error, path=module.params["path"], **extra)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
