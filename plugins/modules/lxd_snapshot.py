#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Our own module because community.general.lxd_container has no snapshots (create, list, prune).

from __future__ import annotations

DOCUMENTATION = r"""
module: lxd_snapshot
short_description: Take a time-named snapshot of an LXD instance and prune old ones
version_added: 0.1.0
author: Adelie infra team (@adelie)
description:
  - Takes a snapshot named C(<prefix>-YYYYMMDD-HHMMSS) (UTC) of an instance, then deletes the oldest snapshots with
    that prefix beyond O(keep). Snapshots with other names are never touched.
  - Used before destructive or restarting operations on a fleet node (offboarding, config changes).
  - community.general.lxd_container has no snapshot support, hence this module, on the same REST client over the
    daemon's unix socket (nothing to install on the LXD host).
attributes:
  check_mode:
    support: full
    description: Reports the snapshot it would take and the ones it would delete.
  diff_mode:
    support: none
    description: Returns no diff.
options:
  name:
    description: Instance name.
    type: str
    required: true
  project:
    description: LXD project of the instance.
    type: str
    default: default
  socket:
    description:
      - The daemon's unix socket, C(fleet_model.backend.socket) for the fleet's LXD host.
      - Not set, LXD's (the default backend's socket in C(module_utils/backend.py)).
    type: path
  prefix:
    description: Name prefix of the snapshots this module manages.
    type: str
    default: fleet
  keep:
    description: How many snapshots with O(prefix) to keep, the newest first, including the one just taken. C(0) keeps all.
    type: int
    default: 5
  state:
    description: V(present) takes a snapshot now; V(pruned) only deletes the ones beyond O(keep).
    type: str
    choices: [present, pruned]
    default: present
"""

EXAMPLES = r"""
- name: Snapshot a node before offboarding it, keeping the last three
  adelie.fleet.lxd_snapshot:
    name: dev-alice
    socket: "{{ fleet_model.backend.socket }}"
    keep: 3
"""

RETURN = r"""
snapshot:
  description: Name of the snapshot taken (or that would be taken).
  returned: when O(state=present)
  type: str
  sample: fleet-20261121-220102
deleted:
  description: Snapshots deleted by the retention.
  returned: always
  type: list
  elements: str
kept:
  description: Snapshots with O(prefix) that remain.
  returned: always
  type: list
  elements: str
"""

import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.adelie.fleet.plugins.module_utils.lxd import LXD_COMMON_ARGS, api, lxd_client


def main():
    module = AnsibleModule(argument_spec=dict(
        name=dict(type="str", required=True),
        prefix=dict(type="str", default="fleet"),
        keep=dict(type="int", default=5),
        state=dict(type="str", choices=["present", "pruned"], default="present"),
        **LXD_COMMON_ARGS
    ), supports_check_mode=True)
    name, prefix, keep = module.params["name"], module.params["prefix"], module.params["keep"]
    if keep < 0:
        module.fail_json(msg="keep must be 0 or more, not %d" % keep)
    client = lxd_client(module)
    snapshots = "/1.0/instances/%s/snapshots" % name
    # None: no such instance, or an empty list answered as null; the instance itself tells which.
    urls = api(module, client, "GET", snapshots, what="reading the snapshots of %s" % name)
    if urls is None and api(module, client, "GET", "/1.0/instances/%s" % name) is None:
        module.fail_json(msg="no instance %s in project %s" % (name, module.params["project"]))
    pattern = re.compile(r"^%s-\d{8}-\d{6}$" % re.escape(prefix))
    ours = sorted(url.rsplit("/", 1)[-1] for url in urls or [] if pattern.match(url.rsplit("/", 1)[-1]))

    result = dict(changed=False, deleted=[])
    if module.params["state"] == "present":
        snapshot = "%s-%s" % (prefix, time.strftime("%Y%m%d-%H%M%S", time.gmtime()))
        while snapshot in ours:  # two in the same second: wait for the next name
            time.sleep(0.2)
            snapshot = "%s-%s" % (prefix, time.strftime("%Y%m%d-%H%M%S", time.gmtime()))
        result.update(changed=True, snapshot=snapshot)
        if not module.check_mode:
            api(module, client, "POST", snapshots, {"name": snapshot}, what="snapshot %s of %s" % (snapshot, name))
        ours.append(snapshot)

    surplus = ours[:-keep] if keep and len(ours) > keep else []
    for old in surplus:
        if not module.check_mode:
            api(module, client, "DELETE", "%s/%s" % (snapshots, old), what="deleting snapshot %s of %s" % (old, name))
        result["deleted"].append(old)
    result["changed"] = result["changed"] or bool(surplus)
    result["kept"] = [snapshot for snapshot in ours if snapshot not in surplus]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
