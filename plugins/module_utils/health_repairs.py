# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health sweep's repairs: which to run, the command each runs on a node, and how each is judged
afterwards from outside it (a fresh probe of the node, its port tried from the LXD host).

A repair is ``done`` only when what it fixed works and keeps working: a restarted unit has been
active for ``settle`` seconds and its port answers; dockerd answers ``/_ping``; a restarted container
is healthy; a built image exists and its service runs (healthy, if it has a healthcheck). Otherwise
it is ``failed`` with the reason. Nothing destructive: no volume, image, data or file is removed, no
checkout reset, no container recreated.

Standard library only (bench/health_sweep.py runs the sweep without Ansible).
"""

from __future__ import annotations

import shlex

from ansible_collections.adelie.fleet.plugins.module_utils.health_findings import unit_text

__metaclass__ = type

# Repair kinds, each opt-in (``repair`` option), in the order a node's repairs run.
REPAIR_KINDS = ("container_stopped", "dockerd_down", "service_down", "unit_failed",
                "container_unhealthy", "image_missing", "jwt_default")


def repair_key(item):
    return (item["node"], item["repair"], item.get("target"))


def plan_repairs(findings, enabled, attempted=()):
    """The repairs to run for ``findings``: enabled kinds only, each (node, kind, target) once, in
    REPAIR_KINDS order per node."""
    done = set(attempted)
    plan = []
    for item in findings:
        key = repair_key(item)
        if item.get("repair") and item["repair"] in enabled and key not in done:
            done.add(key)
            plan.append(item)
    return sorted(plan, key=lambda item: (item["node"], REPAIR_KINDS.index(item["repair"])))


def repair_command(item, node, options):
    """The shell command a node-side repair runs (bounded by coreutils' timeout on the node)."""
    timeout = int(options["repair_timeout"])
    kind = item["repair"]
    if kind == "dockerd_down":
        return "systemctl reset-failed docker.service docker.socket 2>/dev/null; timeout %d systemctl restart docker.service" % timeout
    if kind in ("unit_failed", "service_down"):
        unit = shlex.quote(item["target"])
        return "systemctl reset-failed %s; timeout %d systemctl restart %s" % (unit, timeout, unit)
    if kind == "container_unhealthy":
        return "timeout %d docker restart %s" % (timeout, shlex.quote(item["container_id"]))
    if kind == "image_missing":
        compose = " ".join(shlex.quote(word) for word in (node.get("compose") or "docker-compose").split())
        project, service = shlex.quote(options["compose_project"]), shlex.quote(item["target"])
        return ("cd %s && timeout %d %s -p %s build %s && timeout %d %s -p %s up -d %s" % (
            shlex.quote(node["app_dir"]), timeout, compose, project, service, timeout, compose, project, service))
    raise ValueError("no node-side command for repair kind %s" % kind)


def record(item, status, message, seconds=0.0, action=None):
    return {"node": item["node"], "kind": item["repair"], "target": item.get("target"), "status": status,
            "message": message, "seconds": round(seconds, 2), "action": action}


def tail(text, length=300):
    text = " ".join((text or "").split())
    return text[-length:]


def _container(probe, name=None, service=None):
    for container in ((probe.get("docker") or {}).get("containers")) or []:
        if container.get("name") == name or (service and container.get("service") == service):
            return container
    return None


def _container_ok(container):
    """(ok, what is wrong): running, and healthy when it has a healthcheck."""
    if container is None:
        return False, "no container"
    if container.get("state") != "running":
        return False, "container %s is %s" % (container.get("name"), container.get("state"))
    if container.get("health") not in (None, "healthy"):
        return False, "container %s is %s" % (container.get("name"), container.get("health"))
    return True, ""


def judge(item, node, probe, settle):
    """Whether the repair of ``item`` holds, from a probe of the node taken after it: (ok, what is
    wrong). Called again until it holds or a deadline passes; the last answer is the reason."""
    if probe is None or probe.get("probe_error"):
        return False, "the node does not answer the probe: %s" % ((probe or {}).get("probe_error") or "no answer")
    kind, target = item["repair"], item.get("target")
    if kind == "dockerd_down":
        docker = probe.get("docker") or {}
        return bool(docker.get("answers")), "dockerd does not answer /_ping (%s)" % (docker.get("error") or "no answer")
    if kind in ("service_down", "unit_failed"):
        unit = (probe.get("units") or {}).get(target)
        if not unit or unit.get("active") != "active" or (unit.get("active_for") or 0) < settle:
            return False, "unit %s is %s, not active for %g s" % (target, unit_text(unit), settle)
        port = next((s.get("port") for s in node.get("services") or () if s["unit"] == target), None)
        if port and not (probe.get("ports") or {}).get(str(port)):
            return False, "unit %s is active but port %s does not answer on %s" % (target, port, node.get("ipv4"))
        return True, ""
    if kind == "container_unhealthy":
        return _container_ok(_container(probe, name=target))
    if kind == "image_missing":
        if item.get("image") and item["image"] not in ((probe.get("docker") or {}).get("images") or []):
            return False, "image %s is still missing" % item["image"]
        return _container_ok(_container(probe, service=target))
    return True, ""
