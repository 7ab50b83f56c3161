#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Why a module: lineinfile would overwrite a value a person set (or add a duplicate key), and its
# diff prints the values, which here are database and S3 credentials.
from __future__ import annotations

DOCUMENTATION = r"""
---
module: dotenv_defaults
short_description: Add the keys a dotenv file lacks, never changing one it has
version_added: 0.2.0
description:
  - Appends to the dotenv (C(.env)) file O(path) each key of O(values) that the file does not define,
    in the order given, with the line ending most lines of the file use.
  - A key the file already defines keeps its line and its value, even an empty one. Every other line
    (comments, blank lines, order, quoting, C(export) prefixes, CRLF) is kept byte-for-byte, and the
    file keeps its owner, group and mode.
  - The file is replaced atomically (temporary file in the same directory, fsync, rename).
  - No value is ever returned or shown in a diff (see the diff_mode attribute); error messages name
    files, keys and line numbers only.
author:
  - Adelie infra team (@adelie)
attributes:
  check_mode:
    support: full
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    support: full
    description:
      - Shows which lines would be added; B(every) value and comment text of the file is shown as
        C(<redacted>) (a C(.env) holds credentials).
options:
  path:
    description:
      - Path of the dotenv file. Must be a regular file, not a symbolic link.
    type: path
    required: true
  values:
    description:
      - The keys to add when missing, with their values (converted to strings).
    type: dict
    required: true
  create:
    description:
      - Create O(path) when it does not exist (its directory must exist), owned by O(owner)/O(group)
        with mode O(mode). When V(false), a missing file is an error.
    type: bool
    default: false
  owner:
    description: Owner of a file this module creates (an existing file keeps its owner).
    type: str
  group:
    description: Group of a file this module creates (an existing file keeps its group).
    type: str
  mode:
    description: Mode of a file this module creates, e.g. V('0600') (an existing file keeps its mode).
    type: str
    default: "0600"
notes:
  - Multi-line quoted values are not supported; such a file is reported as malformed and left unchanged,
    as are files with a key defined twice.
seealso:
  - module: adelie.fleet.jwt_secret
"""

EXAMPLES = r"""
- name: The app's database and Redis settings, where the .env has none yet
  adelie.fleet.dotenv_defaults:
    path: /opt/fleet-app/.env
    values:
      DATABASE_URL: "postgresql://deploy:{{ password }}@10.10.10.10:5432/deploy"
      REDIS_URL: "redis://:{{ redis_password }}@10.10.10.10:6379/1"
  no_log: true
"""

RETURN = r"""
path:
  description: Path of the dotenv file.
  returned: always
  type: str
  sample: /opt/fleet-app/.env
added:
  description: The keys that were (in check mode, would be) added; no values.
  returned: always
  type: list
  elements: str
  sample: [DATABASE_URL, REDIS_URL]
kept:
  description: The keys of O(values) the file already had, left as they were.
  returned: always
  type: list
  elements: str
"""

import grp
import os
import pwd

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
    valid_key,
    write_atomic,
)

_MIN_MASKED_LENGTH = 6


class DefaultsError(Exception):
    def __init__(self, message, line=None):
        super().__init__(message)
        self.line = line


def _ids(params):
    try:
        uid = pwd.getpwnam(params["owner"]).pw_uid if params["owner"] else None
        gid = grp.getgrnam(params["group"]).gr_gid if params["group"] else None
    except KeyError as exc:
        raise DefaultsError("unknown owner or group %s" % exc) from None
    return uid, gid


def run(module):
    params = module.params
    path = params["path"]
    values = {str(key): "" if value is None else str(value) for key, value in params["values"].items()}
    for key, value in values.items():
        if not valid_key(key):
            raise DefaultsError("invalid key name %r" % key)
        if len(value) >= _MIN_MASKED_LENGTH:
            module.no_log_values.add(value)

    state = read_file(path)
    if not state.exists:
        if not params["create"]:
            raise DefaultsError("%s does not exist (set create=true to create it)" % path)
        if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise DefaultsError("cannot create %s: parent directory does not exist" % path)
    try:
        doc = parse(decode(state.data))
        added = doc.add_missing(values)
    except DotEnvError as exc:
        raise DefaultsError("%s: %s" % (path, exc), exc.line_number) from None

    result = {"changed": bool(added), "path": path, "added": added,
              "kept": [key for key in values if key not in added]}
    if not added:
        return result
    if module._diff:
        before, after = redacted_diff(parse(decode(state.data)), doc)
        result["diff"] = {"before": before, "after": after, "after_header": path,
                          "before_header": path if state.exists else "%s (absent)" % path}
    if module.check_mode:
        return result

    check_writable(path, state.exists)
    if read_file(path).data != state.data:
        raise DefaultsError("%s changed while the module was running; nothing was written" % path)
    if state.exists:
        mode, uid, gid = state.mode, state.uid, state.gid
    else:
        try:
            mode = int(params["mode"], 8)
        except ValueError:
            raise DefaultsError("mode %r is not an octal mode" % params["mode"]) from None
        uid, gid = _ids(params)
    write_atomic(module, path, encode(doc.render()), mode, uid, gid)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            values=dict(type="dict", required=True, no_log=True),
            create=dict(type="bool", default=False),
            owner=dict(type="str"),
            group=dict(type="str"),
            mode=dict(type="str", default="0600"),
        ),
        supports_check_mode=True,
    )
    try:
        result = run(module)
    except DefaultsError as exc:
        extra = {"line": exc.line} if exc.line is not None else {}
        module.fail_json(msg=str(exc), path=module.params["path"], **extra)
    except DotEnvFileError as exc:
        module.fail_json(msg=str(exc), path=module.params["path"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
