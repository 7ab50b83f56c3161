# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet health sweep, run on the LXD host: probe every node at once, classify, repair, report.

One sweep:
  1. LXD: one ``lxc query /1.0/instances?recursion=1`` gives every container's state (a stopped,
     frozen or missing one is a finding, never a crash, and is not probed); a second query with
     recursion=2 (each container's root-disk use, its btrfs quota group) runs meanwhile.
  2. Repair ``container_stopped`` (``lxc start`` / ``lxc unfreeze``) when enabled, then wait for SSH.
  3. Probe every running node in parallel: one SSH session each (ControlMaster, ConnectTimeout, a
     timeout per node) running the probe (health_probe, one file made from module_utils' text,
     sent on stdin and kept on the node as a module named by its hash: see PROBE_CACHE_DIR). A
     node that does not answer is the finding ``unreachable`` and the rest of the fleet is swept.
  4. Classify (kind, severity, message, repair kind); plan the enabled repairs; run them over SSH
     (per node in order, nodes in parallel); probe the repaired nodes again; a second round repairs
     what the first one uncovered (e.g. an image missing once dockerd answers again).
  5. Report: JSON, Markdown, a self-contained HTML page, node-exporter textfile metrics (on the LXD
     host's textfile directory, one series per node with labels node and role: a node that does not
     answer still gets its ``adelie_fleet_health_node_up 0``), the summary and the webhook payload.

Nothing destructive: no repair removes a volume, a container's data, an image or a file, resets a
checkout or recreates an LXD container. The JWT secret is not rotated here: ``jwt_default`` is
reported as delegated and the nightly playbook runs the jwt_rotation role for those nodes.

Standard library only (the CLI bench/health_sweep.py runs it without Ansible).
"""

from __future__ import annotations

import ast
import concurrent.futures
import datetime
import hashlib
import html
import inspect
import json
import os
import shlex
import subprocess
import tempfile
import threading
import time

from ansible_collections.adelie.fleet.plugins.module_utils import dotenv, health_probe, jwt_status

__metaclass__ = type

# Repair kinds, each opt-in (``repair`` option), in the order a node's repairs run.
REPAIR_KINDS = ("container_stopped", "dockerd_down", "unit_failed", "node_exporter_down",
                "container_unhealthy", "image_missing", "jwt_default")
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
    "unit_failed": ("warning", "unit_failed"),
    "system_state": ("warning", None),
    "node_exporter_down": ("warning", "node_exporter_down"),
    "container_unhealthy": ("warning", "container_unhealthy"),
    "container_restarting": ("warning", None),
    "service_down": ("warning", None),
    "image_missing": ("warning", "image_missing"),
    "image_unbuildable": ("warning", None),
    "jwt_default": ("critical", "jwt_default"),
    "jwt_unreadable": ("warning", None),
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
# Units with a finding (and a repair) of their own.
_OWN_UNITS = ("docker.service", "docker.socket", health_probe.NODE_EXPORTER_UNIT)

DEFAULT_SSH_ARGS = (
    "-o", "BatchMode=yes", "-o", "ControlMaster=auto", "-o", "ControlPersist=120s",
    "-o", "ControlPath=/tmp/adelie-fleet-cp/health-%C", "-o", "ServerAliveInterval=5",
    "-o", "ServerAliveCountMax=3", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
)

DEFAULTS = {
    "project": "default",
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


# ---------------------------------------------------------------------------
# The probe script: module_utils' own text, joined into one file
# ---------------------------------------------------------------------------

_SCRIPT_LOCK = threading.Lock()
_SCRIPT_BODY = []


def _without_collection_imports(source):
    """``source`` minus its ``from __future__`` and ``ansible_collections`` imports (by line range)."""
    lines = source.splitlines(True)
    drop = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("__future__", "ansible_collections"):
            drop.update(range(node.lineno - 1, node.end_lineno))
    return "".join(line for number, line in enumerate(lines) if number not in drop)


def probe_body():
    """The probe's code: dotenv, jwt_status and health_probe as one script (built once per process)."""
    with _SCRIPT_LOCK:
        if not _SCRIPT_BODY:
            parts = ["from __future__ import annotations\n"]
            for module in (dotenv, jwt_status, health_probe):
                parts.append("# ---- %s ----\n" % module.__name__.rsplit(".", 1)[-1])
                parts.append(_without_collection_imports(inspect.getsource(module)))
            _SCRIPT_BODY.append("".join(parts))
        return _SCRIPT_BODY[0]


def probe_args(node, options):
    """What the probe of ``node`` needs to know (from the fleet model and the options)."""
    return {
        "app_dir": node.get("app_dir"),
        "compose": node.get("compose") or "docker-compose",
        "compose_project": options["compose_project"],
        "docker": bool(node.get("docker", True)),
        "jwt_key": options["jwt_key"],
        "jwt_min_length": options["jwt_min_length"],
        "timeout": max(2, int(options["timeout"]) - 2),
    }


# Where a node keeps the probe's code, named by its hash (root-only, on the /run tmpfs): a sweep
# then imports it with its cached bytecode instead of compiling 45 KB of source on every node.
PROBE_CACHE_DIR = "/run/adelie-fleet/health-probe"

# Run by ``python3 -I -S -c`` with the module's name and directory as arguments; stdin is the probe's
# arguments (one JSON line), then the probe's source, written to the cache when it is not there.
# Without a writable cache the source runs as it came.
_PROBE_BOOTSTRAP = """import os, sys
name, directory = sys.argv[1], sys.argv[2]
args, _nl, source = sys.stdin.buffer.read().partition(b"\\n")
path = os.path.join(directory, name + ".py")
try:
    if not os.path.isfile(path):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        for folder in (directory, os.path.join(directory, "__pycache__")):
            for old in os.listdir(folder) if os.path.isdir(folder) else ():
                os.unlink(os.path.join(folder, old))
        with open(path + ".new", "wb") as handle:
            handle.write(source)
        os.replace(path + ".new", path)
    sys.path.insert(0, directory)
    module = __import__(name)
except (OSError, ImportError):
    module = type(sys)(name)
    exec(compile(source, path, "exec"), module.__dict__)
module.main(__import__("json").loads(args))
"""


def probe_command(cache_dir=PROBE_CACHE_DIR):
    """The node's command line for the probe (its module name is the hash of its code)."""
    name = "probe_%s" % hashlib.sha1(probe_body().encode("utf-8")).hexdigest()[:16]
    return "python3 -I -S -c %s %s %s" % (shlex.quote(_PROBE_BOOTSTRAP), name, shlex.quote(cache_dir))


def probe_input(node, options):
    """What the probe command reads: the node's arguments as one JSON line, then the probe's code."""
    return json.dumps(probe_args(node, options), sort_keys=True) + "\n" + probe_body()


# ---------------------------------------------------------------------------
# Transports: SSH to a node, commands on the LXD host
# ---------------------------------------------------------------------------


def run_local(argv, timeout, stdin=None):
    """(rc, stdout, stderr) of a command on this host; rc 124 when it timed out, 127 when missing."""
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return 124, "", "%s timed out after %s s" % (argv[0], timeout)
    except OSError as error:
        return 127, "", "%s: %s" % (argv[0], error)
    return proc.returncode, proc.stdout, proc.stderr


class SshTransport:
    """Runs a command on a node over SSH (one ControlMaster per node, reused by the repairs)."""

    def __init__(self, options):
        self.options = options
        for arg in options["ssh_args"]:
            if arg.startswith("ControlPath="):
                os.makedirs(os.path.dirname(arg.split("=", 1)[1]), mode=0o700, exist_ok=True)

    def argv(self, node, command):
        argv = ["ssh"] + list(self.options["ssh_args"]) + ["-o", "ConnectTimeout=%d" % self.options["connect_timeout"]]
        if self.options.get("ssh_key"):
            argv += ["-i", os.path.expanduser(self.options["ssh_key"])]
        return argv + ["-l", self.options["ssh_user"], node["ipv4"], command]

    def run(self, node, command, stdin=None, timeout=None):
        timeout = timeout or self.options["timeout"]
        # stderr to a file: a ControlPersist master started by this call keeps its stderr open.
        with tempfile.TemporaryFile() as errors:
            try:
                proc = subprocess.Popen(self.argv(node, command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=errors)
            except OSError as error:
                return 127, "", "ssh: %s" % error
            try:
                out, _err = proc.communicate(stdin.encode() if stdin is not None else None, timeout=timeout)
                rc = proc.returncode
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _err = proc.communicate()
                rc = 124
            errors.seek(0)
            err = errors.read().decode("utf-8", "replace")
        return rc, out.decode("utf-8", "replace"), err if rc != 124 else "no answer within %s s" % timeout


class LxdHost:
    """The LXD side: instances' states, disk use, start and unfreeze (through the lxc client)."""

    def __init__(self, options, runner=run_local):
        self.project = options["project"]
        self.timeout = options["timeout"]
        self.runner = runner

    def _query(self, path):
        sep = "&" if "?" in path else "?"
        rc, out, err = self.runner(["lxc", "query", "%s%sproject=%s" % (path, sep, self.project)], self.timeout)
        if rc != 0:
            raise RuntimeError((err or out).strip()[:300] or "lxc query exited %d" % rc)
        return json.loads(out)

    def instances(self):
        """name -> status ("Running", "Stopped", "Frozen", ...)."""
        return {item["name"]: item.get("status") for item in self._query("/1.0/instances?recursion=1")}

    def disk_usage(self):
        """name -> bytes used on the root disk (LXD's state: the quota group, what the quota limits)."""
        usage = {}
        for item in self._query("/1.0/instances?recursion=2"):
            root = ((item.get("state") or {}).get("disk") or {}).get("root") or {}
            if "usage" in root:
                usage[item["name"]] = int(root["usage"])
        return usage

    def action(self, name, verb):
        rc, out, err = self.runner(["lxc", verb, "--project", self.project, name], max(self.timeout, 60))
        return rc == 0, (err or out).strip()[:300]


# ---------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------


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
    for unit in systemd.get("failed_units") or []:
        if unit not in _OWN_UNITS:
            found.append(finding(node, "unit_failed", "unit %s failed" % unit, unit))
    units = probe.get("units") or {}
    exporter = units.get(health_probe.NODE_EXPORTER_UNIT)
    if exporter not in ("active", "reloading", "activating"):
        found.append(finding(node, "node_exporter_down", "node-exporter is %s" % exporter,
                             health_probe.NODE_EXPORTER_UNIT))

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
            found.append(finding(node, "backup_old", "the last good backup of %s is %s old" % (db, _hours(age)), db))

    docker = probe.get("docker")
    weak = (probe.get("jwt") or {}).get("reason") in jwt_status.WEAK_REASONS
    if docker is not None:
        if not docker.get("answers"):
            found.append(finding(node, "dockerd_down", "dockerd does not answer (%s; unit %s)" % (
                docker.get("error") or "no answer", units.get(health_probe.DOCKER_UNIT)), "docker.service"))
        else:
            found.extend(_container_findings(node, probe, options, weak))

    found.extend(_app_findings(node, probe, weak))
    return found


def backup_ages(probe):
    """db -> seconds since its last good backup (by the node's clock), where the node backs up databases."""
    backups = (probe or {}).get("backups") or {}
    return {db: max(0.0, backups["now"] - stamp) for db, stamp in (backups.get("last_success") or {}).items()}


def _hours(seconds):
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
            found.append(finding(node, "service_down", "service %s is not running (%s)" % (service, states), service))
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


# ---------------------------------------------------------------------------
# Repairs
# ---------------------------------------------------------------------------


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
    if kind in ("unit_failed", "node_exporter_down"):
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


def _record(item, status, message, seconds=0.0, action=None):
    return {"node": item["node"], "kind": item["repair"], "target": item.get("target"), "status": status,
            "message": message, "seconds": round(seconds, 2), "action": action}


def _tail(text, length=300):
    text = " ".join((text or "").split())
    return text[-length:]


# ---------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------


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

    def probe(self, node, wait=0.0):
        """(probe dict or None, error message). Retries a connection failure until ``wait`` s passed."""
        give_up = time.monotonic() + wait
        while True:
            rc, out, err = self.transport.run(node, probe_command(), stdin=probe_input(node, self.options),
                                              timeout=self.options["timeout"])
            if rc == 0 or rc not in (124, 255):
                break
            if time.monotonic() >= give_up:
                break
            time.sleep(1.0)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if rc in (124, 255):
            return None, "%s does not answer over SSH: %s" % (node["name"], _tail(err) or "exit %d" % rc)
        try:
            return json.loads(lines[-1]), None
        except (IndexError, ValueError):
            return {"probe_error": "unreadable output (exit %d): %s" % (rc, _tail(err or out))}, None

    def probe_many(self, names, wait=0.0):
        futures = {name: self.pool.submit(self.probe, self.nodes[name], wait) for name in names}
        return {name: future.result() for name, future in futures.items()}

    # -- repairs --------------------------------------------------------------------------------

    def run_node_repairs(self, name, plan):
        node = self.nodes[name]
        records = []
        for item in plan:
            if item["repair"] == "jwt_default":
                records.append(_record(item, "delegated", "rotated by the jwt_rotation role (nightly.yml, rotate_jwt.yml)",
                                       action="jwt_rotation"))
                continue
            command = repair_command(item, node, self.options)
            if self.options["check_mode"]:
                records.append(_record(item, "planned", "check mode: not run", action=command))
                continue
            started = time.monotonic()
            rc, out, err = self.transport.run(node, command, timeout=int(self.options["repair_timeout"]) + 30)
            ok = rc == 0
            records.append(_record(item, "done" if ok else "failed",
                                   "ok" if ok else "exit %d: %s" % (rc, _tail(err or out)),
                                   time.monotonic() - started, command))
        return records

    def start_containers(self, plan):
        records = []
        for item in plan:
            verb = "unfreeze" if item["kind"] == "container_frozen" else "start"
            action = "lxc %s --project %s %s" % (verb, self.options["project"], item["node"])
            if self.options["check_mode"]:
                records.append(_record(item, "planned", "check mode: not run", action=action))
                continue
            started = time.monotonic()
            ok, message = self.lxd.action(item["node"], verb)
            records.append(_record(item, "done" if ok else "failed", "ok" if ok else message,
                                   time.monotonic() - started, action))
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
        for record in opts["previous_repairs"] or []:
            repairs.setdefault(record.get("node"), []).append(dict(record))
        attempted = set()
        host_plan = plan_repairs([f for name in names for f in initial[name]], self.enabled)
        started_nodes = []
        if host_plan:
            for record in self.start_containers(host_plan):
                repairs[record["node"]].append(record)
                attempted.add((record["node"], record["kind"], record["target"]))
                if record["status"] == "done":
                    started_nodes.append(record["node"])

        probe_names = [name for name in names if statuses[name] == "Running"]
        probes = self.probe_many(probe_names)
        if started_nodes:
            probes.update(self.probe_many(started_nodes, wait=float(opts["start_wait"])))

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
                records = future.result()
                repairs[name].extend(records)
                if any(r["status"] in ("done", "failed") for r in records):
                    ran.append(name)
            if opts["check_mode"] or not ran:
                break
            probes.update(self.probe_many(ran))
            for name in ran:
                current[name] = findings_of(name)
        self.pool.shutdown(wait=False)

        nodes = []
        for name in names:
            node = self.nodes[name]
            probe, error = probes.get(name, (None, None))
            still = {(f["kind"], f["target"]) for f in current[name]}
            broken = [f for f in current[name] if is_broken(f)]
            done = [r for r in repairs.get(name, []) if r.get("status") == "done"]
            nodes.append({
                "node": name, "role": node.get("role"), "ipv4": node.get("ipv4"), "lxd_status": statuses[name],
                "reachable": probe is not None and not probe.get("probe_error"),
                "probe": probe, "disk_used_bytes": usage.get(name),
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


# ---------------------------------------------------------------------------
# Renderers
# ---------------------------------------------------------------------------


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
        lines.extend("  %s: %s %s: %s" % (r["node"], r["kind"], r.get("target") or "", r["status"] +
                                          ("" if r["status"] == "done" else " (%s)" % r["message"])) for r in repairs)
    if broken:
        lines.append("Still broken:")
        lines.extend("  %s: %s: %s" % (f["node"] or "fleet", f["kind"], f["message"]) for f in
                     sorted(broken, key=lambda f: (f["node"] or "", SEVERITY_ORDER[f["severity"]])))
    else:
        lines.append("Nothing is left broken.")
    ages = {(n["node"], db): age for n in nodes for db, age in backup_ages(n.get("probe")).items()}
    if ages:
        backups = ["%s %s ago (%s)" % (db, _hours(age), node) for (node, db), age in sorted(ages.items())]
        lines.append("Last good backups: " + ", ".join(backups))
    notes = [f for f in findings if not is_broken(f)]
    if notes:
        lines.append("Notes: " + "; ".join("%s %s" % (f["node"], f["kind"]) for f in notes))
    return "\n".join(lines)


def _cell_findings(node):
    return [f"{f['kind']}{' ' + f['target'] if f.get('target') else ''}" for f in node["findings"]]


def _cell_repairs(node):
    return ["%s%s: %s" % (r["kind"], " " + r["target"] if r.get("target") else "", r["status"]) for r in node["repairs"]]


def _cell_broken(node):
    return [f"{f['kind']}{' ' + f['target'] if f.get('target') else ''}" for f in node["broken"]]


def _git_cell(node):
    git = ((node.get("probe") or {}).get("git")) or {}
    if not git.get("present") or git.get("error"):
        return "-"
    text = git.get("branch") or "?"
    if git.get("ahead") or git.get("behind"):
        text += " +%d/-%d" % (git.get("ahead", 0), git.get("behind", 0))
    if git.get("modified"):
        text += " dirty"
    return text


def render_json(result):
    return json.dumps(result, indent=2, sort_keys=True, default=str) + "\n"


def _md(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(result):
    lines = ["# Fleet health %s" % result["time_iso"], "",
             "LXD project `%s`; %d node(s); swept in %.1f s%s." % (
                 result["project"], len(result["nodes"]), result["seconds"], " (check mode)" if result["check_mode"] else ""),
             "", "| node | role | state | git | findings | repairs | still broken |",
             "|---|---|---|---|---|---|---|"]
    for node in result["nodes"]:
        lines.append("| %s |" % " | ".join(_md(cell) for cell in (
            node["node"], node["role"], node["state"], _git_cell(node), ", ".join(_cell_findings(node)) or "-",
            ", ".join(_cell_repairs(node)) or "-", ", ".join(_cell_broken(node)) or "-")))
    for item in result["fleet_findings"]:
        lines.append("| (fleet) | | %s | | %s | - | %s |" % (item["severity"], _md(item["message"]), _md(item["kind"])))
    lines += ["", "```", result["summary"], "```", ""]
    return "\n".join(lines)


_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eee}tr.ok td.state{background:#c8f0c8}tr.repaired td.state{background:#cde3ff}
tr.broken td.state{background:#ffc8c8}tr.unreachable td.state{background:#999;color:#fff}
.critical{color:#b00;font-weight:bold}.warning{color:#a60}.info{color:#666}ul{margin:0;padding-left:1.2em}
pre{background:#f6f6f6;padding:1em;white-space:pre-wrap}"""


def _html_list(items, css=None):
    if not items:
        return "-"
    return "<ul>%s</ul>" % "".join('<li%s>%s</li>' % (' class="%s"' % html.escape(c) if c else "", html.escape(t))
                                   for t, c in items)


def render_html(result):
    rows = []
    for node in result["nodes"]:
        state = node["state"] if node["reachable"] or node["state"] != "broken" else "unreachable"
        rows.append("<tr class=\"%s\"><td>%s</td><td>%s</td><td class=\"state\">%s</td><td>%s</td><td>%s</td>"
                    "<td>%s</td><td>%s</td></tr>" % (
                        state, html.escape(node["node"]), html.escape(str(node["role"])), html.escape(state),
                        html.escape(_git_cell(node)),
                        _html_list([("%s: %s" % (f["kind"], f["message"]), f["severity"]) for f in node["findings"]]),
                        _html_list([(t, None) for t in _cell_repairs(node)]),
                        _html_list([(t, "critical") for t in _cell_broken(node)])))
    for item in result["fleet_findings"]:
        rows.append("<tr class=\"broken\"><td>(fleet)</td><td></td><td class=\"state\">%s</td><td></td><td>%s</td>"
                    "<td>-</td><td>%s</td></tr>" % (html.escape(item["severity"]), html.escape(item["message"]),
                                                    html.escape(item["kind"])))
    return """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Fleet health %(when)s</title><style>%(css)s</style></head>
<body><h1>Fleet health %(when)s</h1>
<p>LXD project <code>%(project)s</code>; %(count)d nodes swept in %(seconds).1f s%(check)s.</p>
<table><thead><tr><th>node</th><th>role</th><th>state</th><th>git</th><th>findings</th><th>repairs</th>
<th>still broken</th></tr></thead>
<tbody>
%(rows)s
</tbody></table>
<h2>Summary</h2><pre>%(summary)s</pre>
</body></html>
""" % {"when": html.escape(result["time_iso"]), "css": _CSS, "project": html.escape(result["project"]),
       "count": len(result["nodes"]), "seconds": result["seconds"],
       "check": " (check mode)" if result["check_mode"] else "", "rows": "\n".join(rows),
       "summary": html.escape(result["summary"])}


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


REPORT_FILES = {"health.json": render_json, "health.md": render_markdown, "health.html": render_html}
TEXTFILE_NAME = "adelie_fleet_health.prom"


def write_reports(result, report_dir=None, textfile_dir=None):
    """Write the reports and the textfile metrics; returns the paths written."""
    written = []
    if report_dir:
        os.makedirs(report_dir, mode=0o755, exist_ok=True)
        for name, render in REPORT_FILES.items():
            path = os.path.join(report_dir, name)
            write_atomic(path, render(result))
            written.append(path)
    if textfile_dir:
        path = os.path.join(textfile_dir, TEXTFILE_NAME)
        write_atomic(path, render_textfile(result))
        written.append(path)
    return written
