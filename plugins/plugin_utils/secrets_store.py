# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A vault-encrypted file of generated secrets on the controller.

The file is YAML encrypted with ansible-vault (``ansible-vault view FILE --vault-password-file PW``
shows it) holding two mappings: ``secrets`` (name -> random string) and ``slots`` (name -> small
integer, e.g. a tenant's Redis database index). ``ensure`` adds what is missing and never changes an
entry that exists: a secret is generated once, a slot is allocated once (the lowest free number).

The vault password is read from a file; when that file does not exist it is created with a random
password, mode 0600 in a 0700 directory. The store itself is written atomically with mode 0600.
Values never appear in an exception's message.
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile

import yaml
from ansible.parsing.vault import VaultLib, VaultSecret, is_encrypted

__all__ = ["SecretsStoreError", "ensure", "load", "vault_secret"]

MODE = 0o600
DIR_MODE = 0o700


class SecretsStoreError(Exception):
    """The store or its password file cannot be used safely."""


def _write_private(path, data):
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, DIR_MODE)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _check_private(path, what):
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        raise SecretsStoreError("%s %s is not a regular file" % (what, path))
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise SecretsStoreError("%s %s is readable by others (mode %o): chmod 600 it" % (
            what, path, stat.S_IMODE(info.st_mode)))


def vault_secret(password_file, create=True):
    """The vault password from ``password_file``; creates the file (random, mode 0600) when missing."""
    password_file = os.path.expanduser(password_file)
    if not os.path.exists(password_file):
        if not create:
            raise SecretsStoreError("vault password file %s does not exist" % password_file)
        _write_private(password_file, (secrets.token_urlsafe(32) + "\n").encode("ascii"))
    _check_private(password_file, "vault password file")
    with open(password_file, "rb") as handle:
        password = handle.read().strip()
    if not password:
        raise SecretsStoreError("vault password file %s is empty" % password_file)
    return VaultSecret(password)


def load(path, password_file):
    """The store's content ``{'secrets': {...}, 'slots': {...}}`` (empty when the file is missing)."""
    path = os.path.expanduser(path)
    empty = {"secrets": {}, "slots": {}}
    if not os.path.exists(path):
        return empty
    _check_private(path, "secrets file")
    with open(path, "rb") as handle:
        data = handle.read()
    if not is_encrypted(data):
        raise SecretsStoreError("secrets file %s is not vault-encrypted: refusing to use it" % path)
    vault = VaultLib([("default", vault_secret(password_file, create=False))])
    try:
        text = vault.decrypt(data)
    except Exception as exc:  # pylint: disable=broad-except
        raise SecretsStoreError("cannot decrypt %s with the vault password file %s (%s)" % (
            path, password_file, type(exc).__name__)) from None
    content = yaml.safe_load(text) or {}
    if not isinstance(content, dict):
        raise SecretsStoreError("secrets file %s does not hold a mapping" % path)
    return {"secrets": dict(content.get("secrets") or {}), "slots": dict(content.get("slots") or {})}


def _dump(content):
    header = ("# adelie.fleet shared services: generated secrets and allocated slots. Written by the\n"
              "# adelie.fleet.shared_secrets action; an entry is never regenerated (delete it to rotate).\n")
    return header + yaml.safe_dump(content, default_flow_style=False, sort_keys=True)


def ensure(path, password_file, names=None, slots=None, length=32, write=True, generator=None):
    """Make sure the store holds a secret for each of ``names`` and a slot for each of ``slots``.

    ``names`` is a list of names or of ``{name, length}``. Returns ``(content, created)``, where
    ``created`` lists the names (secrets and ``slot:<name>``) that were missing. Nothing existing is
    changed. With ``write=False`` (check mode) the new entries exist only in the returned content.
    """
    generator = generator or secrets.token_urlsafe
    path = os.path.expanduser(path)
    content = load(path, password_file) if os.path.exists(path) else {"secrets": {}, "slots": {}}
    created = []
    for entry in names or []:
        name, size = (entry.get("name"), entry.get("length", length)) if isinstance(entry, dict) else (entry, length)
        if not name or not isinstance(name, str):
            raise SecretsStoreError("a secret needs a name (got %r)" % (name,))
        # Plain str: the names come in as Ansible's tagged strings, which YAML cannot write.
        name = str(name)
        if not content["secrets"].get(name):
            content["secrets"][name] = generator(int(size))
            created.append(name)
    used = set(content["slots"].values())
    for name in map(str, slots or []):
        if name not in content["slots"]:
            free = 0
            while free in used:
                free += 1
            content["slots"][name] = free
            used.add(free)
            created.append("slot:" + name)
    if created and write:
        vault = VaultLib([("default", vault_secret(password_file, create=True))])
        secret = vault_secret(password_file, create=False)
        data = vault.encrypt(_dump(content), secret)
        _write_private(path, data)
    return content, created
