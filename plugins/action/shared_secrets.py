# -*- coding: utf-8 -*-
# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of adelie.fleet.shared_secrets: the vault-encrypted store of generated secrets.

An action plugin: the store and its vault password file are on the controller, and the secrets are
made and read here in Python, so no value ever is a task argument, a command line or a printed diff.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.adelie.fleet.plugins.plugin_utils.secrets_store import SecretsStoreError, ensure

__metaclass__ = type


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("path", "vault_password_file", "names", "slots", "length"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        for required in ("path", "vault_password_file"):
            if not args.get(required):
                raise AnsibleActionFail("shared_secrets: %s is required" % required)
        try:
            content, created = ensure(args["path"], args["vault_password_file"], names=args.get("names") or [],
                                      slots=args.get("slots") or [], length=int(args.get("length") or 32),
                                      write=not self._task.check_mode)
        except SecretsStoreError as error:
            raise AnsibleActionFail("shared_secrets: %s" % error) from None
        wanted = {entry["name"] if isinstance(entry, dict) else entry for entry in args.get("names") or []}
        result.update(
            changed=bool(created),
            created=created,
            secrets={name: value for name, value in content["secrets"].items() if name in wanted},
            slots=content["slots"],
        )
        # Ansible hides the whole result of a task with no_log; this keeps the values out even when
        # a caller forgets it.
        result["_ansible_no_log"] = True
        return result
