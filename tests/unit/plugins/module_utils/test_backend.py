"""The backend map: a daemon that takes hosts from another carries that one's entry."""

from __future__ import annotations

from ansible_collections.adelie.fleet.plugins.module_utils.backend import BACKENDS, backend


def test_incus_carries_the_lxd_entry_it_migrates_from():
    migrate = backend("incus")["migrate_from"]
    assert migrate["source"] == BACKENDS["lxd"]
    assert migrate["done"].startswith(BACKENDS["incus"]["var_dir"] + "/")


def test_an_entry_is_a_copy():
    entry = backend("incus")
    entry["migrate_from"]["source"]["cli"] = "changed"
    assert backend("incus")["migrate_from"]["source"]["cli"] == BACKENDS["lxd"]["cli"]
    assert "migrate_from" not in backend("lxd")
