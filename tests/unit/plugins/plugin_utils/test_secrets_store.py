"""The vault-encrypted secrets store: created once, encrypted, mode 0600, never regenerated.

The store is imported when the tests run, not when pytest collects them: importing Ansible's controller
side (ansible.parsing.vault) at collection time changes how module warnings are recorded for the module
tests collected with it (test_jwt_secret's warning checks then see none).
"""

from __future__ import annotations

import os
import stat

import importlib

import pytest


@pytest.fixture(name="secrets_store")
def _secrets_store():
    return importlib.import_module("ansible_collections.adelie.fleet.plugins.plugin_utils.secrets_store")


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_creates_password_file_and_encrypted_store(secrets_store, tmp_path):
    store, password = tmp_path / "s" / "store.vault.yml", tmp_path / "cfg" / "vault-pass"
    content, created = secrets_store.ensure(str(store), str(password), names=["postgresql_dev_hj", "redis"],
                                            slots=["dev_hj", "deploy"])
    assert sorted(created) == ["postgresql_dev_hj", "redis", "slot:deploy", "slot:dev_hj"]
    assert _mode(password) == 0o600 and _mode(password.parent) == 0o700
    assert _mode(store) == 0o600
    data = store.read_bytes()
    assert data.startswith(b"$ANSIBLE_VAULT;1.1;AES256")
    for value in content["secrets"].values():
        assert len(value) >= 43 and value.encode() not in data
    assert content["slots"] == {"dev_hj": 0, "deploy": 1}


def test_never_regenerates_and_allocates_new_slots_only(secrets_store, tmp_path):
    store, password = str(tmp_path / "store.vault.yml"), str(tmp_path / "vault-pass")
    first = secrets_store.ensure(store, password, names=["a"], slots=["x", "y"])[0]
    before = (tmp_path / "store.vault.yml").read_bytes()
    again, created = secrets_store.ensure(store, password, names=["a"], slots=["x", "y"])
    assert created == [] and again == first
    assert (tmp_path / "store.vault.yml").read_bytes() == before  # nothing rewritten
    more, created = secrets_store.ensure(store, password, names=["a", {"name": "s3_x", "length": 24}], slots=["z", "x"])
    assert created == ["s3_x", "slot:z"]
    assert more["secrets"]["a"] == first["secrets"]["a"] and len(more["secrets"]["s3_x"]) == 32
    assert more["slots"] == {"x": 0, "y": 1, "z": 2}
    assert secrets_store.load(store, password) == more


def test_check_mode_writes_nothing(secrets_store, tmp_path):
    store = tmp_path / "store.vault.yml"
    content, created = secrets_store.ensure(str(store), str(tmp_path / "pw"), names=["a"], write=False)
    assert created == ["a"] and content["secrets"]["a"] and not store.exists()


def test_refuses_plain_text_or_open_files(secrets_store, tmp_path):
    password = tmp_path / "pw"
    password.write_text("sekrit-password-123\n")
    password.chmod(0o600)
    plain = tmp_path / "plain.yml"
    plain.write_text("secrets: {a: visible}\n")
    plain.chmod(0o600)
    with pytest.raises(secrets_store.SecretsStoreError, match="not vault-encrypted"):
        secrets_store.load(str(plain), str(password))
    password.chmod(0o644)
    with pytest.raises(secrets_store.SecretsStoreError, match="readable by others"):
        secrets_store.vault_secret(str(password))


def test_wrong_password_is_an_error_without_values(secrets_store, tmp_path):
    store, password = str(tmp_path / "store.vault.yml"), tmp_path / "pw"
    content = secrets_store.ensure(store, str(password), names=["a"])[0]
    password.write_text("another-password\n")
    with pytest.raises(secrets_store.SecretsStoreError) as error:
        secrets_store.load(store, str(password))
    assert content["secrets"]["a"] not in str(error.value)
