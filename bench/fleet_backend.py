"""The fleet's daemon for the bench scripts and molecule's create/destroy, so that none of them names one:
the backend map's entry (plugins/module_utils/backend.py: its client command, its socket, ...) of the
inventory's fleet_backend as its LXD host sees it, as playbooks/model.yml reads it (the lab's inventory
takes FLEET_BACKEND from the environment).

  python bench/fleet_backend.py [-i INVENTORY] [FIELD]    prints FIELD of the entry (without: the entry, JSON)

bench/lib.sh exports the client command as CLI; bench/transport.py takes the entry from inventory_backend
and bench/health_sweep.py reads its inventory through inventory_hostvars.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "build", "collections"))

from ansible_collections.adelie.fleet.plugins.module_utils.backend import backend  # noqa: E402


def inventory_hostvars(inventory):
    """(hostvars, groups) of an inventory through Ansible's API: its own hostvars, templated on access,
    as the fleet_model action gets them. Ansible is imported here only: a caller may not need it."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader
    from ansible.vars.hostvars import HostVars
    from ansible.vars.manager import VariableManager

    init_plugin_loader()  # without it the inventory's lookups (env) fail and their variables read as unset
    loader = DataLoader()
    manager = InventoryManager(loader=loader, sources=[inventory])
    hostvars = HostVars(inventory=manager, variable_manager=VariableManager(loader=loader, inventory=manager),
                        loader=loader)
    return hostvars, manager.get_groups_dict()


def inventory_backend(inventory):
    """The map's entry of the inventory's daemon: fleet_backend of its LXD host (unset: the map's default)."""
    hostvars, groups = inventory_hostvars(inventory)
    lxd_hosts = groups.get("lxd_hosts") or []
    return backend(hostvars[lxd_hosts[0]].get("fleet_backend") if lxd_hosts else None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("-i", "--inventory", default=os.path.join(ROOT, "inventories", "lab"))
    parser.add_argument("field", nargs="?")
    args = parser.parse_args()
    try:
        entry = inventory_backend(args.inventory)
        print(entry[args.field] if args.field else json.dumps(entry))
    except KeyError as error:
        raise SystemExit("%s: unknown backend or field %s" % (sys.argv[0], error)) from None


if __name__ == "__main__":
    main()
