# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health sweep's outputs that are data: the summary (also the webhook's message), health.json,
the node-exporter textfile the alert rules and the fleet-health dashboard read, and the webhook body.
The pages for people (health.md, health.html) are templates of the nightly role
(roles/nightly/templates/var/lib/adelie-fleet/health/), rendered from the sweep's result.

Standard library only (bench/health_sweep.py runs the sweep without Ansible).
"""

from __future__ import annotations

import json
import os
import tempfile

from ansible_collections.adelie.fleet.plugins.module_utils import jwt_status
from ansible_collections.adelie.fleet.plugins.module_utils.health_findings import SEVERITY_ORDER, backup_ages, hours, is_broken

__metaclass__ = type


def git_summary(probe):
    """The app checkout in a few words: "main +1/-2 dirty", "-" without one."""
    git = ((probe or {}).get("git")) or {}
    if not git.get("present") or git.get("error"):
        return "-"
    text = git.get("branch") or "?"
    if git.get("ahead") or git.get("behind"):
        text += " +%d/-%d" % (git.get("ahead", 0), git.get("behind", 0))
    if git.get("modified"):
        text += " dirty"
    return text


def summary_text(result, findings=None, repairs=None, broken=None):
    nodes = result["nodes"]
    if findings is None:
        findings, repairs, broken = result["findings"], result["repairs"], result["broken"]
    states = {state: sum(n["state"] == state for n in nodes) for state in ("ok", "repaired", "broken")}
    lines = ["Fleet health sweep %s (LXD project %s%s): %d node(s) in %.1f s; ok %d, repaired %d, broken %d" % (
        result["time_iso"], result["project"], ", check mode" if result["check_mode"] else "", len(nodes),
        result["seconds"], states["ok"], states["repaired"], states["broken"])]
    if repairs:
        lines.append("Repairs:")
        lines.extend("  %s: %s%s: %s" % (r["node"], r["kind"], " " + r["target"] if r.get("target") else "", r["status"] +
                                         ("" if r["status"] == "done" else " (%s)" % r["message"])) for r in repairs)
    if broken:
        lines.append("Still broken:")
        lines.extend("  %s: %s: %s" % (f["node"] or "fleet", f["kind"], f["message"]) for f in
                     sorted(broken, key=lambda f: (f["node"] or "", SEVERITY_ORDER[f["severity"]])))
    else:
        lines.append("Nothing is left broken.")
    ages = {(n["node"], db): age for n in nodes for db, age in backup_ages(n.get("probe")).items()}
    if ages:
        backups = ["%s %s ago (%s)" % (db, hours(age), node) for (node, db), age in sorted(ages.items())]
        lines.append("Last good backups: " + ", ".join(backups))
    notes = [f for f in findings if not is_broken(f)]
    if notes:
        lines.append("Notes: " + "; ".join("%s %s" % (f["node"], f["kind"]) for f in notes))
    return "\n".join(lines)


def render_json(result):
    return json.dumps(result, indent=2, sort_keys=True, default=str) + "\n"


def _label(value):
    return str(value if value is not None else "").replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


METRICS = (
    ("adelie_fleet_health_node_up", "1 when the node answered the health sweep's probe."),
    ("adelie_fleet_health_findings", "Findings of the node left broken after the sweep's repairs (severity warning or critical)."),
    ("adelie_fleet_health_repairs", "Repairs the sweep ran on the node (done or failed)."),
    ("adelie_fleet_health_repairs_failed", "Repairs of the node that failed."),
    ("adelie_fleet_health_container_unhealthy", "1 when a Docker container with a healthcheck is unhealthy after the sweep."),
    ("adelie_fleet_health_jwt_secret_weak", "1 when the app's JWT_SECRET is missing, a known default or too short."),
    ("adelie_fleet_health_last_sweep_timestamp_seconds", "When the health sweep last looked at the node (Unix time)."),
)


def render_textfile(result):
    """node-exporter textfile content for the LXD host's exporter (labels node and role)."""
    series = {metric[0]: [] for metric in METRICS}
    for node in result["nodes"]:
        labels = 'node="%s",role="%s"' % (_label(node["node"]), _label(node["role"]))
        probe = node.get("probe") or {}
        series["adelie_fleet_health_node_up"].append((labels, int(node["reachable"])))
        series["adelie_fleet_health_findings"].append((labels, len(node["broken"])))
        series["adelie_fleet_health_repairs"].append(
            (labels, sum(r.get("status") in ("done", "failed") for r in node["repairs"])))
        series["adelie_fleet_health_repairs_failed"].append(
            (labels, sum(r.get("status") == "failed" for r in node["repairs"])))
        for container in (probe.get("docker") or {}).get("containers") or []:
            if container.get("health"):
                series["adelie_fleet_health_container_unhealthy"].append(
                    ('%s,container="%s"' % (labels, _label(container["name"])), int(container["health"] == "unhealthy")))
        jwt = probe.get("jwt") or {}
        if jwt.get("present") and not jwt.get("error"):
            series["adelie_fleet_health_jwt_secret_weak"].append(
                (labels, int(jwt.get("reason") in jwt_status.WEAK_REASONS)))
        series["adelie_fleet_health_last_sweep_timestamp_seconds"].append((labels, int(result["time"])))
    lines = ["# Written by the fleet health sweep (adelie.fleet.health_sweep) at %s." % result["time_iso"]]
    for name, help_text in METRICS:
        lines += ["# HELP %s %s" % (name, help_text), "# TYPE %s gauge" % name]
        lines += ["%s{%s} %s" % (name, labels, value) for labels, value in series[name]]
    lines += ["# HELP adelie_fleet_health_sweep_duration_seconds How long the last health sweep took.",
              "# TYPE adelie_fleet_health_sweep_duration_seconds gauge",
              'adelie_fleet_health_sweep_duration_seconds{project="%s"} %s' % (_label(result["project"]), result["seconds"])]
    return "\n".join(lines) + "\n"


def webhook_payload(result, limit=1900):
    """One JSON body for Discord (``content``, at most 2000 characters) and Slack (``text``)."""
    text = result["summary"]
    short = text if len(text) <= limit else text[: limit - 20].rsplit("\n", 1)[0] + "\n... (see the report)"
    return {"content": short, "text": text}


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def write_atomic(path, text, mode=0o644):
    """Replace ``path`` with ``text``: a temporary file beside it, fsynced, then renamed."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


TEXTFILE_NAME = "adelie_fleet_health.prom"


def write_reports(result, report_dir=None, textfile_dir=None):
    """Write health.json and the textfile metrics; returns the paths written."""
    written = []
    if report_dir:
        os.makedirs(report_dir, mode=0o755, exist_ok=True)
        path = os.path.join(report_dir, "health.json")
        write_atomic(path, render_json(result))
        written.append(path)
    if textfile_dir:
        path = os.path.join(textfile_dir, TEXTFILE_NAME)
        write_atomic(path, render_textfile(result))
        written.append(path)
    return written
