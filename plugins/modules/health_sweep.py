#!/usr/bin/python
# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# Why our own module: no collection sweeps a fleet of LXD containers. community.general's lxd
# modules manage one container's configuration, community.docker's look at one Docker daemon, and
# one Ansible task per check per node (systemd, disk, memory, Docker, images, git, .env, exporter:
# about ten tasks on each of 8-32 nodes) costs tens of seconds of task overhead where the whole
# sweep must take about two. This module probes every node in parallel with one Python process
# each (module_utils/health_probe.py, shipped over SSH), judges the JWT secret with the same code
# as adelie.fleet.jwt_secret, repairs what is enabled, and writes the reports and the metrics the
# alert rules and the fleet-health dashboard read.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: health_sweep
short_description: Sweep the fleet's containers for faults, repair the enabled kinds, report
version_added: 0.2.0
description:
  - Runs on the LXD host. Lists the containers of LXD project O(project) once, through the REST API and the
    client of the host's daemon O(backend) (a stopped, frozen or missing container is a finding, and is not
    probed), then probes every running node of O(nodes) in
    parallel over SSH, one C(python3) process per node that collects systemd's state and failed units,
    memory against the limit, whether dockerd answers, every Docker container's state, health and
    restart count, the images the app's compose file needs but the node lacks, the app checkout's branch,
    ahead/behind and modified files, the status of C(JWT_SECRET) in the app's C(.env) (the rules of
    M(adelie.fleet.jwt_secret)) and the node's declared services (C(services) of the fleet model; each unit
    must be loaded and active, and its port must answer on the node's address, tried from the LXD host).
    Root-disk use against the quota comes from LXD's state of the container (inside, C(df) shows the pool).
  - A node that does not answer is the finding C(unreachable); the rest of the fleet is still swept.
  - Repairs are opt-in per kind (O(repair)); each one is recorded in the result and the reports.
    Nothing destructive is ever done (no volume, image, data or file removed, no checkout reset).
  - The JWT secret is not rotated by this module. Its kind V(jwt_default) is reported as C(delegated)
    and the node listed in RV(jwt_rotation_nodes), for the jwt_rotation role (see C(playbooks/nightly.yml)).
  - Writes C(health.json) to O(report_dir) and the node-exporter textfile C(adelie_fleet_health.prom) to
    O(textfile_dir), each atomically. The pages for people (C(health.md), C(health.html)) are templates of the
    C(adelie.fleet.nightly) role, rendered from this module's result.
author:
  - Adelie infra team (@adelie)
attributes:
  check_mode:
    support: full
    description: In check mode the fleet is swept, repairs are only planned (status C(planned)) and no file is written.
  diff_mode:
    support: none
    description: The module has no diff to show; the reports list what changed.
options:
  nodes:
    description:
      - The nodes to sweep, as in the fleet model (C(fleet_model.nodes) values); the keys used are
        C(name), C(role), C(ipv4), C(app_dir), C(compose), C(docker), C(memory_bytes), C(disk_bytes), C(services).
    type: list
    elements: dict
    required: true
  project:
    description: LXD project of the fleet's containers.
    type: str
    default: default
  backend:
    description:
      - The LXD host's daemon, V(lxd) or V(incus) (C(fleet_model.backend.name)). Its client, named by the map in
        C(module_utils/backend.py), runs the REST queries (O(lxd)) and starts or unfreezes a container (V(container_stopped)).
    type: str
    choices: [lxd, incus]
    default: lxd
  lxd:
    description: Ask the daemon (O(backend)) for the containers' states and disk use (V(false) probes every node over SSH only).
    type: bool
    default: true
  ssh_key:
    description: Private key for root's SSH login on the nodes.
    type: path
  ssh_user:
    description: User of the SSH login.
    type: str
    default: root
  ssh_args:
    description: Options given to C(ssh) (ControlMaster and ControlPersist keep one connection per node for the repairs).
    type: list
    elements: str
  connect_timeout:
    description: Seconds SSH may take to connect to a node.
    type: int
    default: 5
  timeout:
    description: Seconds a node's probe may take in all, connection included; a node over it is C(unreachable).
    type: int
    default: 20
  parallelism:
    description: Nodes probed (and repaired) at the same time.
    type: int
    default: 32
  repair:
    description:
      - Kinds of repair to run. V([]) sweeps and reports only.
      - V(container_stopped) start a stopped container (unfreeze a frozen one) through the daemon's API; it holds when
        the daemon says C(Running) and the node answers SSH within O(start_wait).
      - V(dockerd_down) C(systemctl restart docker); it holds when dockerd answers C(/_ping).
      - V(service_down) C(systemctl reset-failed) and restart a declared service (C(services) of the node) that is
        stopped or failed, not one that is masked or not installed. V(unit_failed) the same for any other failed unit.
        Each holds when the unit has been active for O(settle) seconds and the service's port answers.
      - V(container_unhealthy) C(docker restart) an unhealthy container (not backend-api while the JWT secret
        is weak, because the rotation recreates it); it holds when the container is healthy.
      - V(image_missing) build the compose service whose local image is missing, then C(up -d) it; it holds when
        the image exists and the service's container runs (healthy, if it has a healthcheck).
      - V(jwt_default) mark the node for the jwt_rotation role.
      - Each repair is judged from a fresh probe of the node until it holds or O(verify_timeout) passes; one that
        does not hold is C(failed), with what was last seen, and its node stays broken.
    type: list
    elements: str
    default: []
    choices: [container_stopped, dockerd_down, service_down, unit_failed, container_unhealthy, image_missing, jwt_default]
  repair_timeout:
    description: Seconds one repair may take on a node (coreutils' C(timeout) there).
    type: int
    default: 300
  start_wait:
    description: Seconds to wait for SSH on a container this run started.
    type: int
    default: 60
  settle:
    description: Seconds a repaired unit must have been active before its repair counts as holding.
    type: int
    default: 10
  verify_timeout:
    description: Seconds after a node's repairs within which each must hold; after that it is C(failed).
    type: int
    default: 60
  compose_project:
    description: The app's compose project name.
    type: str
    default: fleet-app
  jwt_key:
    description: Variable of the app's C(.env) holding the JWT secret.
    type: str
    default: JWT_SECRET
  jwt_min_length:
    description: Minimum length of the secret, in bytes.
    type: int
    default: 32
  disk_threshold:
    description: Fraction of the root-disk quota in use that makes the finding C(disk_high).
    type: float
    default: 0.9
  memory_threshold:
    description: Fraction of the memory limit in use that makes the finding C(memory_high).
    type: float
    default: 0.9
  previous_repairs:
    description:
      - Repair records of an earlier sweep of the same run (RV(repairs)), shown in this sweep's reports
        (the nightly run's second, final sweep lists the first one's repairs and the JWT rotations).
    type: list
    elements: dict
    default: []
  report_dir:
    description: Directory for C(health.json) (created). Not set, no report file.
    type: path
  textfile_dir:
    description: node-exporter's textfile directory on the LXD host. Not set, no metrics file.
    type: path
notes:
  - The metrics carry the labels C(node) and C(role) (and C(container)); the Prometheus job that scrapes
    the LXD host's exporter keeps them (C(honor_labels)).
  - Ahead/behind is counted against the remote-tracking branch as of the checkout's last fetch; the sweep
    does not fetch (C(playbooks/sync.yml) does).
seealso:
  - module: adelie.fleet.jwt_secret
"""

EXAMPLES = r"""
- name: Sweep the fleet and report only
  adelie.fleet.health_sweep:
    nodes: "{{ fleet_model.nodes.values() | list }}"
    project: "{{ fleet_model.project }}"
    backend: "{{ fleet_model.backend.name }}"
    ssh_key: ~/.ssh/adelie_fleet_ed25519
    report_dir: /var/lib/adelie-fleet/health
    textfile_dir: /var/lib/prometheus/node-exporter
  register: sweep

- name: Sweep and repair stopped containers, dockerd and unhealthy containers
  adelie.fleet.health_sweep:
    nodes: "{{ fleet_model.nodes.values() | list }}"
    ssh_key: ~/.ssh/adelie_fleet_ed25519
    repair: [container_stopped, dockerd_down, container_unhealthy]
"""

RETURN = r"""
nodes:
  description: One entry per node; C(state) is V(ok), V(repaired) or V(broken).
  returned: always
  type: list
  elements: dict
  sample:
    - node: dev-hj
      role: dev
      lxd_status: Running
      reachable: true
      state: broken
      findings: [{kind: jwt_default, severity: critical, target: .env, message: JWT_SECRET ... is a known default, repair: jwt_default}]
      broken: [{kind: jwt_default}]
      repairs: [{kind: jwt_default, status: delegated}]
findings:
  description: Every finding left after the repairs (kind, severity, node, target, message, repair kind).
  returned: always
  type: list
  elements: dict
repairs:
  description:
    - Every repair, with C(status) V(done) (it ran and holds), V(failed) (it did not run, or did not hold; C(message)
      says what was seen), V(planned) (check mode) or V(delegated) (JWT).
  returned: always
  type: list
  elements: dict
broken:
  description: The findings of severity warning or critical left after the repairs.
  returned: always
  type: list
  elements: dict
jwt_rotation_nodes:
  description: Nodes whose weak JWT secret is left to the jwt_rotation role.
  returned: always
  type: list
  elements: str
counts:
  description: Nodes, ok, repaired, broken, unreachable, findings, repairs and failed repairs.
  returned: always
  type: dict
summary:
  description: The readable summary (also the webhook's message).
  returned: always
  type: str
webhook:
  description: A webhook body, C(content) for Discord and C(text) for Slack.
  returned: always
  type: dict
files:
  description: Files written.
  returned: always
  type: list
  elements: str
seconds:
  description: How long the sweep took.
  returned: always
  type: float
time:
  description: When the sweep started (UTC, ISO 8601).
  returned: always
  type: str
time_iso:
  description: The same as RV(time), under the name the report templates read.
  returned: always
  type: str
project:
  description: The LXD project swept.
  returned: always
  type: str
backend:
  description: The daemon asked (O(backend)).
  returned: always
  type: str
  sample: lxd
check_mode:
  description: Whether the sweep ran in check mode (repairs only planned).
  returned: always
  type: bool
fleet_findings:
  description: Findings about the fleet as a whole (the daemon did not answer).
  returned: always
  type: list
  elements: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.adelie.fleet.plugins.module_utils import health, health_report
from ansible_collections.adelie.fleet.plugins.module_utils.backend import BACKENDS, DEFAULT_BACKEND


def main():
    module = AnsibleModule(
        argument_spec=dict(
            nodes=dict(type="list", elements="dict", required=True),
            project=dict(type="str", default="default"),
            backend=dict(type="str", choices=list(BACKENDS), default=DEFAULT_BACKEND),
            lxd=dict(type="bool", default=True),
            ssh_key=dict(type="path", no_log=False),
            ssh_user=dict(type="str", default="root"),
            ssh_args=dict(type="list", elements="str"),
            connect_timeout=dict(type="int", default=5),
            timeout=dict(type="int", default=20),
            parallelism=dict(type="int", default=32),
            repair=dict(type="list", elements="str", default=[], choices=list(health.REPAIR_KINDS)),
            repair_timeout=dict(type="int", default=300),
            start_wait=dict(type="int", default=60),
            settle=dict(type="int", default=10),
            verify_timeout=dict(type="int", default=60),
            compose_project=dict(type="str", default="fleet-app"),
            jwt_key=dict(type="str", default="JWT_SECRET", no_log=False),
            jwt_min_length=dict(type="int", default=32),
            disk_threshold=dict(type="float", default=0.9),
            memory_threshold=dict(type="float", default=0.9),
            previous_repairs=dict(type="list", elements="dict", default=[]),
            report_dir=dict(type="path"),
            textfile_dir=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    problems = ["nodes[%d] has no %s" % (index, key) for index, node in enumerate(params["nodes"])
                for key in ("name", "ipv4") if not node.get(key)]
    if params["parallelism"] < 1 or params["timeout"] < 3:
        problems.append("parallelism must be 1 or more and timeout 3 s or more")
    if problems:
        module.fail_json(msg="; ".join(problems))
    options = {key: params[key] for key in (
        "project", "backend", "lxd", "ssh_key", "ssh_user", "ssh_args", "connect_timeout", "timeout", "parallelism", "repair",
        "repair_timeout", "start_wait", "settle", "verify_timeout", "compose_project", "jwt_key", "jwt_min_length", "disk_threshold",
        "memory_threshold", "previous_repairs")}
    options["check_mode"] = module.check_mode
    result = health.Sweep(params["nodes"], options).run()

    files = []
    if not module.check_mode:
        textfile_dir = params["textfile_dir"]
        if textfile_dir and not os.path.isdir(textfile_dir):
            module.warn("textfile_dir %s does not exist (is node-exporter installed?): no metrics written" % textfile_dir)
            textfile_dir = None
        try:
            files = health_report.write_reports(result, params["report_dir"], textfile_dir)
        except OSError as error:
            module.fail_json(msg="cannot write the reports: %s" % error, summary=result["summary"])
    # The reports are the sweep's output, like a log: only a repair changes the fleet.
    module.exit_json(
        changed=any(r.get("status") == "done" for r in result["repairs"]), webhook=health_report.webhook_payload(result),
        files=files, time=result["time_iso"], backend=params["backend"],
        **{key: result[key] for key in ("nodes", "findings", "repairs", "broken", "jwt_rotation_nodes", "counts", "summary",
                                        "seconds", "time_iso", "project", "check_mode", "fleet_findings")}
    )


if __name__ == "__main__":
    main()
