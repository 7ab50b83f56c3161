# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the health sweep finds: the kinds of finding, and a node's findings from LXD's view of its
container and from its probe (pure functions of data, unit-tested without a fleet).

Standard library only (bench/health_sweep.py runs the sweep without Ansible).
"""

from __future__ import annotations

from ansible_collections.adelie.fleet.plugins.module_utils import health_probe, jwt_status

__metaclass__ = type

# Finding kind -> (severity, repair kind or None). info never counts as broken.
FINDING_KINDS = {
    "container_missing": ("critical", None),
    "container_stopped": ("critical", "container_stopped"),
    "container_frozen": ("critical", "container_stopped"),
    "container_state": ("critical", None),
    "unreachable": ("critical", None),
    "probe_error": ("critical", None),
    "lxd_error": ("warning", None),
    "dockerd_down": ("critical", "dockerd_down"),
    "service_down": ("critical", "service_down"),
    "unit_failed": ("warning", "unit_failed"),
    "system_state": ("warning", None),
    "container_unhealthy": ("warning", "container_unhealthy"),
    "container_restarting": ("warning", None),
    "app_service_down": ("warning", None),
    "image_missing": ("warning", "image_missing"),
    "image_unbuildable": ("warning", None),
    "jwt_default": ("critical", "jwt_default"),
    "jwt_unreadable": ("warning", None),
    "repair_failed": ("critical", None),
    "disk_high": ("warning", None),
    "backup_old": ("warning", None),
    "memory_high": ("warning", None),
    "git_error": ("warning", None),
    "git_diverged": ("warning", None),
    "git_dirty": ("info", None),
    "git_behind": ("info", None),
    "git_detached": ("info", None),
}
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
# dockerd's socket unit: dockerd_down covers it (Docker's own API is the stronger check).
_DOCKER_UNITS = (health_probe.DOCKER_UNIT, "docker.socket")


def finding(node, kind, message, target=None):
    severity, repair = FINDING_KINDS[kind]
    return {"node": node["name"], "kind": kind, "severity": severity, "target": target, "message": message,
            "repair": repair}


def lxd_findings(node, status, project):
    """Findings from LXD's view of the container (None: not in LXD)."""
    if status is None:
        return [finding(node, "container_missing", "container %s is not in LXD project %s (site.yml creates it, "
                        "restore.yml brings an export back)" % (node["name"], project))]
    if status == "Stopped":
        return [finding(node, "container_stopped", "container %s is stopped" % node["name"])]
    if status == "Frozen":
        return [finding(node, "container_frozen", "container %s is frozen" % node["name"])]
    if status != "Running":
        return [finding(node, "container_state", "container %s is %s" % (node["name"], status))]
    return []


def _percent(part, whole):
    return "%.0f%%" % (100.0 * part / whole) if whole else "?"


def classify(node, probe, options, disk_used=None):
    """Findings of a node from its probe (and its root-disk use from LXD)."""
    found = []
    if probe.get("probe_error"):
        return [finding(node, "probe_error", "the probe failed on the node: %s" % probe["probe_error"])]
    systemd = probe.get("systemd") or {}
    state = systemd.get("state")
    if state not in ("running", "degraded", None):
        found.append(finding(node, "system_state", "systemd's state is %s%s" % (
            state, (": " + systemd["error"]) if systemd.get("error") else "")))
    declared = [service["unit"] for service in node.get("services") or ()]
    for unit in systemd.get("failed_units") or []:
        if unit not in declared and unit not in _DOCKER_UNITS:
            found.append(finding(node, "unit_failed", "unit %s failed" % unit, unit))
    docker = probe.get("docker")
    dockerd_down = docker is not None and not docker.get("answers")
    for service in node.get("services") or ():
        if not (dockerd_down and service["unit"] in _DOCKER_UNITS):
            found.extend(_service_findings(node, service, probe))

    memory = probe.get("memory") or {}
    limit = node.get("memory_bytes") or memory.get("total")
    total, available = memory.get("total"), memory.get("available")
    if limit and total and available is not None:
        used = total - available
        if used >= options["memory_threshold"] * limit:
            found.append(finding(node, "memory_high", "memory %s of its %d MiB limit in use" % (
                _percent(used, limit), limit // 1048576)))
    quota = node.get("disk_bytes")
    if quota and disk_used is not None and disk_used >= options["disk_threshold"] * quota:
        found.append(finding(node, "disk_high", "root disk %s of its %d GiB quota in use" % (
            _percent(disk_used, quota), quota // 1073741824)))

    for db, age in sorted(backup_ages(probe).items()):
        if age > options["backup_max_age"]:
            found.append(finding(node, "backup_old", "the last good backup of %s is %s old" % (db, hours(age)), db))

    weak = (probe.get("jwt") or {}).get("reason") in jwt_status.WEAK_REASONS
    if dockerd_down:
        unit = (probe.get("units") or {}).get(health_probe.DOCKER_UNIT) or {}
        found.append(finding(node, "dockerd_down", "dockerd does not answer (%s; unit %s)" % (
            docker.get("error") or "no answer", unit_text(unit)), health_probe.DOCKER_UNIT))
    elif docker is not None:
        found.extend(_container_findings(node, probe, options, weak))

    found.extend(_app_findings(node, probe, weak))
    return found


def unit_text(unit):
    """How systemd describes a unit's state: "active (running) for 12 s", "activating (auto-restart)"."""
    if not unit:
        return "unknown (systemd did not answer)"
    text = "%s (%s)" % (unit.get("active"), unit.get("sub")) if unit.get("sub") else str(unit.get("active"))
    if unit.get("active_for") is not None:
        text += " for %g s" % unit["active_for"]
    return text


def _service_findings(node, service, probe):
    """A declared service must exist, be active, and answer on its port (tried from the LXD host)."""
    unit = (probe.get("units") or {}).get(service["unit"]) or {}
    label = "service %s (%s)" % (service["name"], service["unit"])
    load = unit.get("load")
    if load == "masked":
        item = finding(node, "service_down", "%s is masked: unmask it if that was not meant" % label,
                       service["unit"])
        item["repair"] = None  # someone masked it on purpose, or by mistake: a person decides
        return [item]
    if load == "not-found":
        item = finding(node, "service_down", "%s is not installed (site.yml installs it)" % label, service["unit"])
        item["repair"] = None
        return [item]
    if unit.get("active") != "active":
        return [finding(node, "service_down", "%s is %s" % (label, unit_text(unit)), service["unit"])]
    port = service.get("port")
    if port and not (probe.get("ports") or {}).get(str(port)):
        return [finding(node, "service_down", "%s is active but port %s does not answer on %s" % (
            label, port, node.get("ipv4")), service["unit"])]
    return []


def backup_ages(probe):
    """db -> seconds since its last good backup (by the node's clock), where the node backs up databases."""
    backups = (probe or {}).get("backups") or {}
    return {db: max(0.0, backups["now"] - stamp) for db, stamp in (backups.get("last_success") or {}).items()}


def hours(seconds):
    return "%.1f h" % (seconds / 3600.0)


def _container_findings(node, probe, options, jwt_weak):
    found = []
    docker = probe["docker"]
    services = {}
    for container in docker.get("containers") or []:
        name = container["name"]
        if container.get("project") == options["compose_project"] and container.get("service"):
            services.setdefault(container["service"], []).append(container)
        if container.get("health") == "unhealthy":
            item = finding(node, "container_unhealthy", "container %s is unhealthy (%s)" % (
                name, container.get("status")), name)
            item["container_id"] = container["id"]
            item["service"] = container.get("service")
            if jwt_weak and container.get("service") == options["jwt_service"]:
                item["repair"] = None
                item["message"] += "; its JWT secret is weak: the JWT rotation recreates it"
            found.append(item)
        if container.get("state") == "restarting" or container.get("restart_count", 0) >= options["restart_threshold"]:
            found.append(finding(node, "container_restarting", "container %s is %s and restarted %d times" % (
                name, container.get("state"), container.get("restart_count", 0)), name))
    present = set(docker.get("images") or [])
    for service, spec in sorted(((probe.get("compose") or {}).get("images") or {}).items()):
        if spec["image"] not in present:
            if spec.get("build"):
                item = finding(node, "image_missing", "image %s of service %s is missing (built locally)" % (
                    spec["image"], service), service)
            else:
                item = finding(node, "image_unbuildable", "image %s of service %s is missing and the compose "
                               "file does not build it (pull it, or add build:)" % (spec["image"], service), service)
            item["image"] = spec["image"]
            found.append(item)
        elif not any(c.get("state") == "running" for c in services.get(service, [])):
            states = ", ".join(sorted(set(c.get("state") or "?" for c in services.get(service, [])))) or "no container"
            found.append(finding(node, "app_service_down", "app service %s is not running (%s)" % (service, states),
                                 service))
    return found


def _app_findings(node, probe, jwt_weak):
    found = []
    jwt = probe.get("jwt") or {}
    if jwt.get("error"):
        found.append(finding(node, "jwt_unreadable", "the app's .env cannot be judged: %s" % jwt["error"]))
    elif jwt_weak:
        found.append(finding(node, "jwt_default", "JWT_SECRET in the app's .env is %s" % {
            "missing": "missing or empty", "default": "a known default", "too_short": "shorter than its minimum",
        }[jwt["reason"]], ".env"))
    git = probe.get("git") or {}
    if git.get("error"):
        found.append(finding(node, "git_error", "git cannot read the checkout: %s" % git["error"]))
    elif git.get("present"):
        if git.get("detached"):
            found.append(finding(node, "git_detached", "the checkout is on a detached HEAD"))
        if git.get("modified") or git.get("conflicted"):
            found.append(finding(node, "git_dirty", "the checkout has %d modified file(s)" % git["modified"]))
        if git.get("ahead") and git.get("behind"):
            found.append(finding(node, "git_diverged", "branch %s has diverged from %s (%d ahead, %d behind)" % (
                git["branch"], git.get("upstream"), git["ahead"], git["behind"])))
        elif git.get("behind"):
            found.append(finding(node, "git_behind", "branch %s is %d commit(s) behind %s (sync.yml pulls it)" % (
                git["branch"], git["behind"], git.get("upstream"))))
    return found


def is_broken(item):
    return item["severity"] != "info"
