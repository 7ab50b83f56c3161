# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health sweep's node probe: everything about one fleet node, from one python3 process on it.

health_package sends the text of dotenv.py, jwt_status.py and this file, joined into one script
(their collection imports removed), to a node's ``python3`` over SSH; ``main(args)`` prints one JSON
document. The JWT secret is judged by jwt_status.file_status, the code
adelie.fleet.jwt_secret rotates with, never by a copy. No value of any file is ever printed.

What it reads, all at once (the commands run concurrently, the rest meanwhile):
  systemd         systemctl is-system-running; list-units --failed; the state of the node's declared
                  services (and of a repair's target): loaded/masked/missing, active, for how long
  memory          /proc/meminfo (lxcfs shows the container's limit as MemTotal)
  docker          its API on the unix socket (HTTP/1.0): /_ping, /containers/json?all=1, /containers/ID/json
                  (health and RestartCount), /images/json
  compose images  the compose file's services (image:, build:) read without a YAML library: running
                  `docker-compose config` costs a second of CPU per node (compose v1 is Python)
  git             git status --porcelain=v1 -b: branch, upstream, ahead/behind (as of the last fetch),
                  modified and untracked files, read-only (GIT_OPTIONAL_LOCKS=0)
  JWT             jwt_status.file_status of APP/.env

Standard library only; Python 3.8+ (Debian 12 nodes have 3.11). Every step is bounded by a timeout
and an error in one step is reported in its section, never a crash of the probe.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time

from ansible_collections.adelie.fleet.plugins.module_utils.dotenv import DotEnvError, DotEnvFileError, decode, parse
from ansible_collections.adelie.fleet.plugins.module_utils.jwt_status import RotationError, file_status

__metaclass__ = type

PROBE_VERSION = 1
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
DOCKER_SOCKET = "/var/run/docker.sock"
DOCKER_UNIT = "docker.service"
# What `systemctl show` tells of a unit: whether it exists (LoadState: loaded, masked, not-found),
# its state, and since when it is active (CLOCK_MONOTONIC, as time.monotonic(), in microseconds).
UNIT_PROPERTIES = ("LoadState", "ActiveState", "SubState", "ActiveEnterTimestampMonotonic", "NRestarts")
# Where adelie-fleet-backup (the db_backup role, on the node running the shared services) publishes
# the time of each database's last good backup for node-exporter.
BACKUP_METRICS = "/var/lib/prometheus/node-exporter/adelie_fleet_backup.prom"
_BACKUP_LINE = re.compile(r'^adelie_fleet_backup_last_success_timestamp_seconds\{db="([^"]+)"\} (\S+)$')

_BRANCH_RE = re.compile(r"^## (?P<branch>.+?)(?:\.\.\.(?P<upstream>\S+))?(?: \[(?P<track>[^\]]*)\])?$")
_TRACK_RE = re.compile(r"(ahead|behind) (\d+)")
_KEY_RE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\-]+|\"[^\"]+\"|'[^']+'):(?:[ \t]+(?P<value>.*?))?[ \t]*$")
_VAR_RE = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*)|(?P<dollar>\$))")


# ---------------------------------------------------------------------------
# Parsers of what the node's commands print (pure functions, unit-tested with real outputs)
# ---------------------------------------------------------------------------


def parse_failed_units(text):
    """Unit names from ``systemctl list-units --failed --plain --no-legend``."""
    units = []
    for line in text.splitlines():
        fields = line.replace("\u25cf", " ").split()
        if fields and not fields[0].startswith("0"):
            units.append(fields[0])
    return units


def parse_unit_show(text, units, now):
    """``systemctl show -p ... UNIT...`` (one block per unit, in the order asked) -> {unit: state}.

    state: load, active, sub, restarts, and active_for (seconds active, None unless active)."""
    blocks = text.strip().split("\n\n") if text.strip() else []
    result = {}
    for unit, block in zip(units, blocks):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        number = {key: int(props[key]) if props.get(key, "").isdigit() else 0
                  for key in ("ActiveEnterTimestampMonotonic", "NRestarts")}
        active = props.get("ActiveState") or "unknown"
        since = number["ActiveEnterTimestampMonotonic"]
        result[unit] = {
            "load": props.get("LoadState") or "unknown", "active": active, "sub": props.get("SubState") or "",
            "restarts": number["NRestarts"],
            "active_for": round(now - since / 1e6, 1) if active == "active" and since else None,
        }
    return result


def parse_meminfo(text):
    """``/proc/meminfo`` -> {field: bytes}."""
    info = {}
    for line in text.splitlines():
        name, _sep, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            info[name.strip()] = int(fields[0]) * (1024 if fields[1:2] == ["kB"] else 1)
    return info


def parse_git_status(text):
    """``git status --porcelain=v1 -b`` -> branch, upstream, ahead, behind, modified, untracked, conflicted."""
    result = {"branch": None, "upstream": None, "ahead": 0, "behind": 0, "modified": 0, "untracked": 0,
              "conflicted": 0, "detached": False}
    for line in text.splitlines():
        if line.startswith("## "):
            head = line[3:]
            if head.startswith("No commits yet on ") or head.startswith("Initial commit on "):
                result["branch"] = head.rsplit(" ", 1)[-1]
                continue
            if head.startswith("HEAD (no branch)"):
                result["detached"] = True
                result["branch"] = "HEAD"
                continue
            match = _BRANCH_RE.match(line)
            if match:
                result["branch"] = match.group("branch")
                result["upstream"] = match.group("upstream")
                for kind, count in _TRACK_RE.findall(match.group("track") or ""):
                    result[kind] = int(count)
        elif line.startswith("??"):
            result["untracked"] += 1
        elif len(line) > 3:
            code = line[:2]
            if code in ("DD", "AU", "UD", "UA", "DU", "AA", "UU"):
                result["conflicted"] += 1
            result["modified"] += 1
    return result


def _scalar(value):
    """A YAML scalar as written on one line: quotes removed, a trailing comment dropped."""
    value = (value or "").strip()
    if value[:1] in ("'", '"'):
        end = value.find(value[0], 1)
        return value[1:end] if end > 0 else value[1:]
    return re.sub(r"[ \t]+#.*$", "", value).strip()


def parse_compose_services(text):
    """The services of a compose file -> {service: {"image": str or None, "build": bool}}.

    Block-style YAML as compose files are written (a top-level ``services:`` mapping, one service per
    key, ``image:`` and ``build:`` among its keys; a service in flow style ``{image: x}`` too). Not a
    YAML parser: anchors, merges and multi-document files are not followed (their services then
    count as having no image, which makes no finding).
    """
    services = {}
    in_services = False
    service_indent = None
    current = None
    prop_indent = None
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        match = _KEY_RE.match(raw.rstrip())
        indent = len(raw) - len(raw.lstrip(" "))
        if indent == 0:
            in_services = bool(match) and match.group("key").strip("'\"") == "services"
            service_indent = current = prop_indent = None
            continue
        if not in_services or match is None:
            continue
        key = match.group("key").strip("'\"")
        if service_indent is None:
            service_indent = indent
        if indent == service_indent:
            current = services.setdefault(key, {"image": None, "build": False})
            prop_indent = None
            value = (match.group("value") or "").strip()
            if value.startswith("{"):
                image = re.search(r"\bimage:\s*('[^']*'|\"[^\"]*\"|[^,}]+)", value)
                current["image"] = _scalar(image.group(1)) if image else None
                current["build"] = re.search(r"\bbuild:", value) is not None
            continue
        if current is None or indent < service_indent:
            continue
        if prop_indent is None:
            prop_indent = indent
        if indent != prop_indent:
            continue
        if key == "image":
            current["image"] = _scalar(match.group("value"))
        elif key == "build":
            current["build"] = True
    return services


def interpolate(text, env):
    """Compose's variable substitution of ``text`` (``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``)."""
    def replace(match):
        if match.group("dollar"):
            return "$"
        name = match.group("braced") or match.group("plain")
        value = env.get(name)
        op = match.group("op") or ""
        if op == ":-" and not value:
            return match.group("arg")
        if op == "-" and value is None:
            return match.group("arg")
        return value or ""
    return _VAR_RE.sub(replace, text)


def project_name(name):
    """Compose's normalisation of a project name (lower case; letters, digits, '-' and '_')."""
    return re.sub(r"[^a-z0-9_\-]", "", name.lower())


def compose_images(services, project, compose_command, env):
    """service -> {"image": the image name compose needs, "build": bool}; ``image:`` interpolated,
    else the name compose gives a built image (v1 ``project_service``, v2 ``project-service``)."""
    separator = "-" if compose_command.split()[:2] == ["docker", "compose"] else "_"
    images = {}
    for service, spec in services.items():
        if spec.get("image"):
            image = interpolate(spec["image"], env)
        elif spec.get("build"):
            image = "%s%s%s" % (project_name(project), separator, service)
        else:
            continue
        if ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
            image += ":latest"
        images[service] = {"image": image, "build": bool(spec.get("build"))}
    return images


def summarize_container(summary, inspect):
    """One container from /containers/json and its /containers/ID/json."""
    labels = summary.get("Labels") or {}
    state = (inspect or {}).get("State") or {}
    health = (state.get("Health") or {}).get("Status")
    names = summary.get("Names") or [""]
    return {
        "id": (summary.get("Id") or "")[:12],
        "name": names[0].lstrip("/"),
        "image": summary.get("Image"),
        "state": summary.get("State") or state.get("Status"),
        "status": summary.get("Status"),
        "health": health,
        "restart_count": int((inspect or {}).get("RestartCount") or 0),
        "project": labels.get("com.docker.compose.project"),
        "service": labels.get("com.docker.compose.service"),
    }


# ---------------------------------------------------------------------------
# Collectors (run on the node)
# ---------------------------------------------------------------------------


def docker_get(socket_path, path, timeout):
    """The body of one ``GET path`` of the Docker API: HTTP/1.0 on a new unix-socket connection.

    Not http.client: its import (with email and ssl) was the largest part of the probe's start on
    every node. Docker (Go's net/http) answers HTTP/1.0 unchunked and closes the connection.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(socket_path)
        sock.sendall(("GET %s HTTP/1.0\r\nHost: docker\r\n\r\n" % path).encode("ascii"))
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    finally:
        sock.close()
    head, _sep, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or status[1] != b"200":
        raise OSError("Docker API %s answered %s" % (path, b" ".join(status[1:]).decode("ascii", "replace") or "nothing"))
    return body


def docker_state(socket_path, timeout):
    """What Docker says, through its API: answers, containers (with health and restarts), image tags."""
    result = {"socket": os.path.exists(socket_path), "answers": False, "containers": [], "images": []}
    if not result["socket"]:
        result["error"] = "no Docker socket at %s" % socket_path
        return result

    def get(path):
        return docker_get(socket_path, path, timeout)

    try:
        result["answers"] = get("/_ping").strip() == b"OK"
        listing = json.loads(get("/containers/json?all=1"))
        for summary in listing:
            try:
                inspect = json.loads(get("/containers/%s/json" % summary["Id"]))
            except (OSError, ValueError):
                inspect = None  # removed meanwhile
            result["containers"].append(summarize_container(summary, inspect))
        for image in json.loads(get("/images/json")):
            result["images"].extend(tag for tag in image.get("RepoTags") or [] if tag != "<none>:<none>")
    except (OSError, ValueError) as error:
        result["error"] = "%s: %s" % (error.__class__.__name__, error)
    return result


def _start(argv, env=None):
    try:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                env=env, universal_newlines=True)
    except OSError as error:
        return error


def _finish(proc, deadline):
    """(rc, stdout, stderr) of a started command, killed at ``deadline``."""
    if isinstance(proc, OSError):
        return 127, "", str(proc)
    try:
        out, err = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return 124, out, "timed out"
    return proc.returncode, out, err


def app_section(args):
    """The app checkout's compose file, .env and JWT status (git is read concurrently elsewhere)."""
    app_dir = args.get("app_dir")
    section = {"dir": app_dir, "present": bool(app_dir) and os.path.isdir(app_dir)}
    jwt = {"present": False}
    compose = {"file": None, "images": {}}
    if not section["present"]:
        return section, compose, jwt
    env = {}
    env_path = os.path.join(app_dir, ".env")
    try:
        jwt = file_status(env_path, key=args.get("jwt_key", "JWT_SECRET"),
                          min_length=args.get("jwt_min_length", 32), weak_values=args.get("jwt_weak_values", ()))
        if jwt["present"]:
            with open(env_path, "rb") as handle:
                doc = parse(decode(handle.read()))
            env = {key: doc.get(key) for key in doc.keys()}
    except (DotEnvError, DotEnvFileError, RotationError, OSError) as error:
        jwt = {"present": True, "reason": None, "error": str(error)}
    for name in args.get("compose_files") or COMPOSE_FILES:
        path = os.path.join(app_dir, name)
        if os.path.isfile(path):
            compose["file"] = path
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    services = parse_compose_services(handle.read())
                compose["images"] = compose_images(services, args.get("compose_project") or os.path.basename(app_dir),
                                                   args.get("compose") or "docker-compose", env)
            except OSError as error:
                compose["error"] = str(error)
            break
    return section, compose, jwt


def parse_backup_metrics(text):
    """db -> time of its last good backup (seconds since the epoch), from adelie-fleet-backup's textfile."""
    backups = {}
    for line in text.splitlines():
        match = _BACKUP_LINE.match(line.strip())
        if match:
            backups[match.group(1)] = float(match.group(2))
    return backups


def probe(args):
    """Collect everything about this node; returns the JSON-able result."""
    started = time.monotonic()
    deadline = started + float(args.get("timeout", 15))
    app_dir = args.get("app_dir")
    git_env = dict(os.environ, GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    procs = {
        "state": _start(["systemctl", "is-system-running"]),
        "failed": _start(["systemctl", "list-units", "--failed", "--plain", "--no-legend", "--no-pager"]),
    }
    units = list(args.get("units") or ())
    if units:
        procs["units"] = _start(["systemctl", "show", "--property=" + ",".join(UNIT_PROPERTIES), "--"] + units)
    if app_dir and os.path.isdir(os.path.join(app_dir, ".git")):
        # root reads a checkout its member owns: safe.directory, or git refuses (CVE-2022-24765).
        procs["git"] = _start(["git", "-c", "safe.directory=*", "-C", app_dir, "status", "--porcelain=v1", "-b"],
                              env=git_env)
    result = {"probe_version": PROBE_VERSION, "python": sys.version.split()[0]}
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            info = parse_meminfo(handle.read())
        result["memory"] = {"total": info.get("MemTotal"), "available": info.get("MemAvailable")}
    except OSError as error:
        result["memory"] = {"error": str(error)}
    try:
        with open(args.get("backup_metrics", BACKUP_METRICS), encoding="utf-8") as handle:
            result["backups"] = {"now": time.time(), "last_success": parse_backup_metrics(handle.read())}
    except OSError:
        pass  # not the node of the shared services
    if args.get("docker", True):
        result["docker"] = docker_state(args.get("docker_socket", DOCKER_SOCKET), max(1.0, deadline - time.monotonic()))
    result["app"], result["compose"], result["jwt"] = app_section(args)

    outputs = {name: _finish(proc, deadline) for name, proc in procs.items()}
    rc, out, err = outputs["state"]
    result["systemd"] = {"state": out.strip() or "unknown", "failed_units": parse_failed_units(outputs["failed"][1])}
    if rc == 124 or (not out.strip() and err):
        result["systemd"]["error"] = err.strip()[:300]
    result["units"] = parse_unit_show(outputs["units"][1], units, time.monotonic()) if units else {}
    if "git" in outputs:
        rc, out, err = outputs["git"]
        result["git"] = dict(parse_git_status(out), present=True) if rc == 0 else {
            "present": True, "error": (err.strip() or "git exited %d" % rc)[:300]}
    else:
        result["git"] = {"present": False}
    result["elapsed_ms"] = int((time.monotonic() - started) * 1000)
    return result


def main(args):
    """Entry of the shipped script: print the probe's JSON (a crash prints an error document)."""
    try:
        result = probe(args)
    except Exception as error:  # the sweep must learn what went wrong, not read a traceback
        result = {"probe_version": PROBE_VERSION, "probe_error": "%s: %s" % (error.__class__.__name__, error)}
    sys.stdout.write(json.dumps(result, sort_keys=True))
    sys.stdout.write("\n")
    sys.stdout.flush()
