#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Our own module: the releases of an environment, which deploy.yml and rollback.yml read and append to,
# and the metrics Prometheus reads from them. No collection keeps such a record.

from __future__ import annotations

DOCUMENTATION = r"""
module: release_history
short_description: Read or append to an environment's release history, and publish it as metrics
version_added: 0.1.0
author: Adelie infra team (@adelie)
description:
  - Keeps one JSON file per environment (C(<dir>/<env>.json)) with its releases, oldest first, each with its
    commit, image references, digests, time, who started it and the outcome.
  - V(read) returns the history, the current release and the one a rollback goes back to.
  - V(record) appends a release and rewrites the environment's node-exporter textfile (C(adelie_fleet_release_*)
    metrics).
  - The release a rollback goes back to is the newest deployed release before the current one that is neither the
    current commit nor a commit an earlier rollback left, so that repeated rollbacks walk back in time.
attributes:
  check_mode:
    support: full
    description: V(record) reports the change and writes nothing.
  diff_mode:
    support: none
    description: Returns no diff.
options:
  dir:
    description: Directory of the history files (created, mode 0755, when missing).
    type: path
    required: true
  env:
    description: The environment (a fleet role whose node runs a release, e.g. staging).
    type: str
    required: true
  state:
    description: V(read) the history, or V(record) O(release) at its end.
    type: str
    choices: [read, record]
    default: read
  release:
    description:
      - For V(record), the release; C(commit) and C(outcome) (C(deployed), C(rolled_back) or C(rollback_failed))
        are required, the rest (images, digests, time, who, duration, via, from, evidence) is kept as given.
    type: dict
  textfile:
    description: The metrics' file in node-exporter's textfile directory (C(*.prom)); not set, no metrics are written.
    type: path
  node:
    description:
      - The environment's node, the metrics' C(node) label (Prometheus keeps the labels of the LXD host's textfile
        metrics), so that alerts name it.
    type: str
  keep:
    description: The newest releases kept in the file.
    type: int
    default: 100
"""

EXAMPLES = r"""
- name: Read staging's releases
  adelie.fleet.release_history:
    dir: /var/lib/adelie-fleet/releases
    env: staging
  register: history

- name: Record the release that passed its gate
  adelie.fleet.release_history:
    dir: /var/lib/adelie-fleet/releases
    env: staging
    state: record
    textfile: /var/lib/prometheus/node-exporter/adelie_fleet_release_default_staging.prom
    release:
      commit: 3f2a9c1d0e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49
      outcome: deployed
      images: {backend-api: "10.10.10.10:5000/fleet-app/backend-api:3f2a9c1d0e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49"}
"""

RETURN = r"""
releases:
  description: The environment's releases, oldest first (after the record, for V(record)).
  returned: always
  type: list
  elements: dict
current:
  description: The newest release with outcome C(deployed), or null.
  returned: always
  type: dict
previous:
  description: The release a rollback goes back to, or null when there is none.
  returned: always
  type: dict
"""

import json
import os
import re
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

OUTCOMES = ("deployed", "rolled_back", "rollback_failed")
ENV_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*$")


def current(releases):
    """The newest deployed release, or None."""
    return next((release for release in reversed(releases) if release["outcome"] == "deployed"), None)


def previous(releases):
    """The release a rollback goes back to: the newest deployed one before the current, skipping the current
    commit and every commit a rollback left (its `from`)."""
    now = current(releases)
    if now is None:
        return None
    left = {release.get("from") for release in releases if release.get("via") == "rollback"}
    index = len(releases) - 1 - releases[::-1].index(now)
    for release in reversed(releases[:index]):
        if release["outcome"] == "deployed" and release["commit"] != now["commit"] and release["commit"] not in left:
            return release
    return None


def _label(value):
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics(env, releases, node=None):
    """node-exporter textfile lines for the environment (its node as the node label, when given)."""
    labels = 'env="%s"' % _label(env) + (',node="%s"' % _label(node) if node else "")
    lines = [
        "# HELP adelie_fleet_release_info The release running in the environment (value 1).",
        "# TYPE adelie_fleet_release_info gauge",
    ]
    now = current(releases)
    if now:
        lines.append('adelie_fleet_release_info{%s,commit="%s"} 1' % (labels, _label(now["commit"])))
    last = releases[-1] if releases else None
    lines += [
        "# HELP adelie_fleet_release_last_deploy_timestamp_seconds When the environment's last deploy or rollback ended.",
        "# TYPE adelie_fleet_release_last_deploy_timestamp_seconds gauge",
    ]
    if last:
        lines.append('adelie_fleet_release_last_deploy_timestamp_seconds{%s} %d' % (labels, last.get("time", 0)))
    lines += [
        "# HELP adelie_fleet_release_last_outcome The outcome of the environment's last deploy (1 for the outcome it had).",
        "# TYPE adelie_fleet_release_last_outcome gauge",
    ]
    for outcome in OUTCOMES:
        value = 1 if last and last["outcome"] == outcome else 0
        lines.append('adelie_fleet_release_last_outcome{%s,outcome="%s"} %d' % (labels, outcome, value))
    return "\n".join(lines) + "\n"


def write_atomic(module, path, content, mode):
    handle, temp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".release-history-")
    with os.fdopen(handle, "w") as stream:
        stream.write(content)
    os.chmod(temp, mode)
    module.atomic_move(temp, path)


def main():
    module = AnsibleModule(argument_spec=dict(
        dir=dict(type="path", required=True),
        env=dict(type="str", required=True),
        state=dict(type="str", choices=["read", "record"], default="read"),
        release=dict(type="dict"),
        textfile=dict(type="path"),
        node=dict(type="str"),
        keep=dict(type="int", default=100),
    ), required_if=[("state", "record", ["release"])], supports_check_mode=True)
    env, release = module.params["env"], module.params["release"]
    if not ENV_PATTERN.match(env):
        module.fail_json(msg="env %r is not an environment name (lower-case letters, digits, - and _)" % env)
    if module.params["keep"] < 1:
        module.fail_json(msg="keep must be 1 or more, not %d" % module.params["keep"])
    path = os.path.join(module.params["dir"], env + ".json")
    try:
        with open(path, encoding="utf-8") as stream:
            releases = json.load(stream).get("releases", [])
    except FileNotFoundError:
        releases = []
    except (OSError, ValueError) as error:
        module.fail_json(msg="cannot read the release history %s: %s" % (path, error))

    changed = False
    if module.params["state"] == "record":
        if not release.get("commit") or release.get("outcome") not in OUTCOMES:
            module.fail_json(msg="release needs a commit and an outcome among %s, got commit %r and outcome %r"
                             % (", ".join(OUTCOMES), release.get("commit"), release.get("outcome")))
        release = dict(release, env=env)
        release.setdefault("time", int(time.time()))
        releases = (releases + [release])[-module.params["keep"]:]
        changed = True
        if not module.check_mode:
            os.makedirs(module.params["dir"], mode=0o755, exist_ok=True)
            write_atomic(module, path, json.dumps({"env": env, "releases": releases}, indent=2, sort_keys=True) + "\n",
                         0o644)
            if module.params["textfile"]:
                os.makedirs(os.path.dirname(module.params["textfile"]), mode=0o755, exist_ok=True)
                write_atomic(module, module.params["textfile"], metrics(env, releases, module.params["node"]), 0o644)
    module.exit_json(changed=changed, releases=releases, current=current(releases), previous=previous(releases))


if __name__ == "__main__":
    main()
