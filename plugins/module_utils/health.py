# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet health sweep, run on the LXD host: probe every node at once, classify, repair, verify, report.

One sweep:
  1. LXD: one query of ``/1.0/instances?recursion=1`` gives every container's state (a stopped,
     frozen or missing one is a finding, never a crash, and is not probed); a second query with
     recursion=2 (each container's root-disk use, its btrfs quota group) runs meanwhile.
  2. Repair ``container_stopped`` (the API's ``start``, or ``unfreeze`` for a frozen one) when enabled;
     it holds when LXD says Running and the node answers SSH within ``start_wait``.
  3. Probe every running node in parallel (health_package: one SSH session each, a timeout per node)
     and try its declared services' ports from here (health_transport). A node that does not answer
     is the finding ``unreachable`` and the rest of the fleet is swept.
  4. Classify (health_findings); plan the enabled repairs and run them over SSH (per node in order,
     nodes in parallel); judge each from a fresh probe until it holds or ``verify_timeout`` passes
     (health_repairs); a second round repairs what the first uncovered (an image missing once
     dockerd answers again). A repair that does not hold is ``failed``, and its node stays broken.
  5. Report (health_report): JSON, node-exporter textfile metrics, the summary, the webhook body.

The JWT secret is not rotated here: ``jwt_default`` is reported as delegated and the nightly
playbook runs the jwt_rotation role for those nodes.

Standard library only (the CLI bench/health_sweep.py runs it without Ansible).
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import time

from ansible_collections.adelie.fleet.plugins.module_utils.backend import DEFAULT_BACKEND
from ansible_collections.adelie.fleet.plugins.module_utils.health_findings import (
    FINDING_KINDS, classify, finding, is_broken, lxd_findings)
from ansible_collections.adelie.fleet.plugins.module_utils.health_package import probe_command, probe_input
from ansible_collections.adelie.fleet.plugins.module_utils.health_repairs import (
    REPAIR_KINDS, judge, plan_repairs, record, repair_command, repair_key, tail)
from ansible_collections.adelie.fleet.plugins.module_utils.health_report import git_summary, summary_text
from ansible_collections.adelie.fleet.plugins.module_utils.health_transport import (
    DEFAULT_SSH_ARGS, LxdHost, SshTransport, action_command)

__metaclass__ = type

DEFAULTS = {
    "project": "default",
    # The LXD host's daemon: its client answers the REST queries (module_utils/backend.py).
    "backend": DEFAULT_BACKEND,
    "ssh_user": "root",
    "ssh_key": None,
    "ssh_args": list(DEFAULT_SSH_ARGS),
    "connect_timeout": 5,
    "timeout": 20,
    "parallelism": 32,
    "repair": [],
    "repair_timeout": 300,
    "rounds": 2,
    "start_wait": 60,
    # A repaired unit must stay active this long; the judge gives up after verify_timeout.
    "settle": 10,
    "verify_timeout": 60,
    "verify_interval": 2,
    "check_mode": False,
    "lxd": True,
    "compose_project": "fleet-app",
    "jwt_key": "JWT_SECRET",
    "jwt_min_length": 32,
    "jwt_service": "backend-api",
    "disk_threshold": 0.9,
    "memory_threshold": 0.9,
    "restart_threshold": 5,
    "backup_max_age": 36 * 3600,
    "previous_repairs": [],
}


class Sweep:
    """One sweep of ``nodes`` (dicts of the fleet model) with ``options`` (see DEFAULTS)."""

    def __init__(self, nodes, options, transport=None, lxd=None, clock=time.time):
        self.options = dict(DEFAULTS, **{k: v for k, v in options.items() if v is not None})
        self.nodes = {node["name"]: node for node in nodes}
        self.transport = transport or SshTransport(self.options)
        self.lxd = lxd if lxd is not None else (LxdHost(self.options) if self.options["lxd"] else None)
        self.clock = clock
        self.enabled = set(self.options["repair"])
        unknown = self.enabled - set(REPAIR_KINDS)
        if unknown:
            raise ValueError("unknown repair kind(s): %s (known: %s)" % (", ".join(sorted(unknown)), ", ".join(REPAIR_KINDS)))
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, int(self.options["parallelism"])))

    # -- probing --------------------------------------------------------------------------------

    def probe(self, node, wait=0.0, units=()):
        """(probe dict or None, error message). Retries a connection failure until ``wait`` s passed.
        The probe also holds ``ports``: whether each declared service's port answers, tried from here."""
        give_up = time.monotonic() + wait
        while True:
            rc, out, err = self.transport.run(node, probe_command(), stdin=probe_input(node, self.options, units),
                                              timeout=self.options["timeout"])
            if rc == 0 or rc not in (124, 255):
                break
            if time.monotonic() >= give_up:
                break
            time.sleep(1.0)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if rc in (124, 255):
            return None, "%s does not answer over SSH: %s" % (node["name"], tail(err) or "exit %d" % rc)
        try:
            probe = json.loads(lines[-1])
        except (IndexError, ValueError):
            return {"probe_error": "unreadable output (exit %d): %s" % (rc, tail(err or out))}, None
        probe["ports"] = {str(service["port"]): self.transport.port_open(node, service["port"])
                          for service in node.get("services") or () if service.get("port")}
        return probe, None

    def probe_many(self, names, wait=0.0):
        futures = {name: self.pool.submit(self.probe, self.nodes[name], wait) for name in names}
        return {name: future.result() for name, future in futures.items()}

    # -- repairs --------------------------------------------------------------------------------

    def run_node_repairs(self, name, plan):
        """Run a node's repairs in order, then judge those that ran; returns (records, last probe or None)."""
        node = self.nodes[name]
        records, ran = [], []
        for item in plan:
            if item["repair"] == "jwt_default":
                records.append(record(item, "delegated", "rotated by the jwt_rotation role (nightly.yml, rotate_jwt.yml)",
                                      action="jwt_rotation"))
                continue
            command = repair_command(item, node, self.options)
            if self.options["check_mode"]:
                records.append(record(item, "planned", "check mode: not run", action=command))
                continue
            started = time.monotonic()
            rc, out, err = self.transport.run(node, command, timeout=int(self.options["repair_timeout"]) + 30)
            records.append(record(item, "done" if rc == 0 else "failed",
                                  "ran" if rc == 0 else "exit %d: %s" % (rc, tail(err or out)),
                                  time.monotonic() - started, command))
            if rc == 0:
                ran.append((item, records[-1]))
        return records, (self.verify(node, ran) if ran else None)

    def verify(self, node, ran):
        """Probe the node until every repair of ``ran`` ((finding, record) pairs) holds, or until
        verify_timeout: a repair that does not hold by then is failed, with what was last seen."""
        opts = self.options
        units = sorted({item["target"] for item, _rec in ran if item["repair"] in ("service_down", "unit_failed")})
        started = time.monotonic()
        while True:
            result = self.probe(node, units=units)
            verdicts = [judge(item, node, result[0], float(opts["settle"])) for item, _rec in ran]
            waited = time.monotonic() - started
            if all(ok for ok, _why in verdicts) or waited >= float(opts["verify_timeout"]):
                break
            time.sleep(float(opts["verify_interval"]))
        for (_item, rec), (ok, why) in zip(ran, verdicts):
            rec["seconds"] = round(rec["seconds"] + waited, 2)
            if ok:
                rec["message"] = "holds (checked from outside after %.0f s)" % waited
            else:
                rec.update(status="failed", message="ran, but %.0f s later %s" % (waited, why))
        return result

    def start_containers(self, plan):
        """Start (or unfreeze) containers; a start holds when LXD says Running (SSH is judged later)."""
        records = []
        for item in plan:
            action = "unfreeze" if item["kind"] == "container_frozen" else "start"
            shown = action_command(self.options["project"], item["node"], action, self.options["backend"])
            if self.options["check_mode"]:
                records.append(record(item, "planned", "check mode: not run", action=shown))
                continue
            started = time.monotonic()
            ok, message = self.lxd.action(item["node"], action)
            status = self.lxd.status(item["node"]) if ok else None
            if ok and status != "Running":
                ok, message = False, "LXD says %s after %s" % (status or "nothing", action)
            records.append(record(item, "done" if ok else "failed", "ran" if ok else message,
                                  time.monotonic() - started, shown))
        return records

    # -- the whole sweep ------------------------------------------------------------------------

    def run(self):
        started = time.monotonic()
        when = self.clock()
        opts = self.options
        names = sorted(self.nodes)
        fleet_findings = []
        statuses = {name: "Running" for name in names}
        usage_future = None
        if self.lxd is not None:
            try:
                listed = self.lxd.instances()
                statuses = {name: listed.get(name) for name in names}
            except (RuntimeError, ValueError, KeyError, TypeError) as error:
                fleet_findings.append({"node": None, "kind": "lxd_error", "severity": "warning", "target": None,
                                       "message": "LXD did not list the instances (every node is probed): %s" % error,
                                       "repair": None})
            usage_future = self.pool.submit(self.lxd.disk_usage)

        initial = {name: lxd_findings(self.nodes[name], statuses[name], opts["project"]) for name in names}
        repairs = {name: [] for name in names}
        for previous in opts["previous_repairs"] or []:
            repairs.setdefault(previous.get("node"), []).append(dict(previous))
        attempted = set()
        started_nodes = {}
        for rec in self.start_containers(plan_repairs([f for name in names for f in initial[name]], self.enabled)):
            repairs[rec["node"]].append(rec)
            attempted.add((rec["node"], rec["kind"], rec["target"]))
            if rec["status"] == "done":
                started_nodes[rec["node"]] = rec

        probes = self.probe_many([name for name in names if statuses[name] == "Running"])
        if started_nodes:
            probes.update(self.probe_many(sorted(started_nodes), wait=float(opts["start_wait"])))
            for name, rec in started_nodes.items():
                if probes[name][0] is None:
                    rec.update(status="failed", message="LXD says Running, but the node does not answer SSH "
                               "within %s s" % opts["start_wait"])
                else:
                    rec["message"] = "holds: LXD says Running and the node answers SSH"

        usage = {}
        if usage_future is not None:
            try:
                usage = usage_future.result(timeout=opts["timeout"])
            except Exception:  # disk use is one check among many: unknown, not a failed sweep
                usage = {}

        def findings_of(name):
            node = self.nodes[name]
            probe, error = probes.get(name, (None, None))
            if name in started_nodes or statuses[name] == "Running":
                if probe is None:
                    return [finding(node, "unreachable", error or "%s does not answer" % name)]
                return classify(node, probe, opts, usage.get(name))
            return initial[name]

        current = {name: findings_of(name) for name in names}
        first = {name: (initial[name] if name in started_nodes else []) + current[name] for name in names}
        for _round in range(int(opts["rounds"])):
            plan = plan_repairs([f for name in names for f in current[name]], self.enabled, attempted)
            if not plan:
                break
            by_node = {}
            for item in plan:
                by_node.setdefault(item["node"], []).append(item)
                attempted.add(repair_key(item))
            futures = {name: self.pool.submit(self.run_node_repairs, name, items) for name, items in by_node.items()}
            ran = []
            for name, future in futures.items():
                records, probe = future.result()
                repairs[name].extend(records)
                if probe is not None:
                    probes[name] = probe
                    ran.append(name)
                elif any(r["status"] == "failed" for r in records):
                    ran.append(name)
                    probes[name] = self.probe(self.nodes[name])
            if opts["check_mode"] or not ran:
                break
            for name in ran:
                current[name] = findings_of(name)
        self.pool.shutdown(wait=False)

        nodes = []
        for name in names:
            node = self.nodes[name]
            probe, _error = probes.get(name, (None, None))
            current[name] += failed_repair_findings(node, current[name], repairs.get(name, []))
            still = {(f["kind"], f["target"]) for f in current[name]}
            broken = [f for f in current[name] if is_broken(f)]
            done = [r for r in repairs.get(name, []) if r.get("status") == "done"]
            nodes.append({
                "node": name, "role": node.get("role"), "ipv4": node.get("ipv4"), "lxd_status": statuses[name],
                "reachable": probe is not None and not probe.get("probe_error"),
                "probe": probe, "disk_used_bytes": usage.get(name), "git": git_summary(probe),
                "findings": current[name], "broken": broken, "repairs": repairs.get(name, []),
                "initial_findings": first[name],
                "fixed": [f for f in first[name] if (f["kind"], f["target"]) not in still],
                "state": "broken" if broken else ("repaired" if done else "ok"),
                "jwt_rotation": any(r["kind"] == "jwt_default" and r["status"] == "delegated"
                                    for r in repairs.get(name, [])),
            })
        result = {
            "time": when, "time_iso": _iso(when), "project": opts["project"], "check_mode": opts["check_mode"],
            "repair_enabled": sorted(self.enabled, key=REPAIR_KINDS.index),
            "seconds": round(time.monotonic() - started, 3), "nodes": nodes, "fleet_findings": fleet_findings,
        }
        result.update(totals(result))
        return result


def failed_repair_findings(node, findings, records):
    """A failed repair whose finding is not (or no longer) seen still leaves its node broken: the
    nightly report must never be green over a repair that did not hold."""
    seen = {(FINDING_KINDS[f["kind"]][1], f["target"]) for f in findings}
    return [finding(node, "repair_failed", "repair %s%s failed: %s" % (
        rec["kind"], " " + rec["target"] if rec.get("target") else "", rec.get("message")), rec.get("target"))
        for rec in records if rec.get("status") == "failed" and (rec["kind"], rec.get("target")) not in seen]


def _iso(when):
    return datetime.datetime.fromtimestamp(when, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def totals(result):
    nodes = result["nodes"]
    findings = [f for n in nodes for f in n["findings"]] + result["fleet_findings"]
    repairs = [r for n in nodes for r in n["repairs"]]
    broken = [f for n in nodes for f in n["broken"]] + [f for f in result["fleet_findings"] if is_broken(f)]
    return {
        "findings": findings, "repairs": repairs, "broken": broken,
        "jwt_rotation_nodes": [n["node"] for n in nodes if n["jwt_rotation"]],
        "counts": {"nodes": len(nodes), "ok": sum(n["state"] == "ok" for n in nodes),
                   "repaired": sum(n["state"] == "repaired" for n in nodes),
                   "broken": sum(n["state"] == "broken" for n in nodes),
                   "unreachable": sum(not n["reachable"] for n in nodes),
                   "findings": len(findings), "repairs": len(repairs),
                   "repairs_failed": sum(r.get("status") == "failed" for r in repairs)},
        "summary": summary_text(result, findings, repairs, broken),
    }
