#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: shared_secrets
short_description: Generated secrets kept once in a vault-encrypted file on the controller
version_added: 0.2.0
description:
  - Makes sure the ansible-vault encrypted YAML file O(path) on the controller holds a random secret
    (C(secrets.token_urlsafe)) for each of O(names) and a small integer slot for each of O(slots), and
    returns them. An entry that exists is never regenerated or renumbered; delete it from the file
    (C(ansible-vault edit)) to rotate it.
  - The vault password is read from O(vault_password_file). When that file does not exist it is
    created with a random password, mode C(0600), in a directory of mode C(0700). The store is written
    atomically with mode C(0600), and a store or password file readable by others is refused.
  - Runs on the controller (an action plugin). Its result is always hidden as with C(no_log); set
    C(no_log) on the task all the same, and on every task that uses the values.
author:
  - Adelie infra team (@adelie)
attributes:
  check_mode:
    support: full
    description: In check mode missing secrets are generated for the run only and the file is not written.
  diff_mode:
    support: none
    description: Never shows a diff (it would show secrets).
options:
  path:
    description: The vault-encrypted store on the controller (kept out of git).
    type: path
    required: true
  vault_password_file:
    description: The file holding the vault password; created (mode 0600) when missing.
    type: path
    required: true
  names:
    description:
      - Secrets that must exist, each a name or a mapping C({name, length}) (C(length) random bytes).
    type: list
    elements: raw
    default: []
  slots:
    description: Names that must have a slot, the lowest non-negative integer no other name holds.
    type: list
    elements: str
    default: []
  length:
    description: Random bytes of a generated secret when its entry gives none (C(token_urlsafe(length))).
    type: int
    default: 32
"""

EXAMPLES = r"""
- name: Passwords of the tenants' database roles
  adelie.fleet.shared_secrets:
    path: ~/.config/adelie-fleet/default-shared-services.vault.yml
    vault_password_file: ~/.config/adelie-fleet/vault-pass
    names: [postgresql_dev_hj, postgresql_deploy, {name: s3_deploy, length: 24}]
    slots: [dev_hj, deploy]
  register: shared
  no_log: true
  run_once: true
"""

RETURN = r"""
secrets:
  description: The requested secrets, name -> value.
  returned: always
  type: dict
slots:
  description: Every allocated slot, name -> integer.
  returned: always
  type: dict
created:
  description: Names that were missing (slots as C(slot:<name>)); no values.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(
        path=dict(type="path", required=True),
        vault_password_file=dict(type="path", required=True, no_log=False),
        names=dict(type="list", elements="raw", default=[]),
        slots=dict(type="list", elements="str", default=[]),
        length=dict(type="int", default=32),
    ), supports_check_mode=True)
    module.fail_json(msg="adelie.fleet.shared_secrets runs on the controller as an action plugin; it cannot run as a module")


if __name__ == "__main__":
    main()
