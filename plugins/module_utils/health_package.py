# Copyright: Adelie infra team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health probe as it travels to a node: module_utils' own text joined into one script, sent on
stdin over SSH and kept on the node as a module named by its hash (see PROBE_CACHE_DIR).

Standard library only (bench/health_sweep.py runs the sweep without Ansible).
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import shlex
import threading

from ansible_collections.adelie.fleet.plugins.module_utils import dotenv, health_probe, jwt_status

__metaclass__ = type

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


def probe_args(node, options, units=()):
    """What the probe of ``node`` needs to know (from the fleet model and the options): ``units`` are
    systemd units to look at besides the node's declared services (a repair's target, to verify it)."""
    watched = {service["unit"] for service in node.get("services") or ()} | set(units)
    if node.get("docker", True):
        watched.add(health_probe.DOCKER_UNIT)
    return {
        "app_dir": node.get("app_dir"),
        "compose": node.get("compose") or "docker-compose",
        "compose_project": options["compose_project"],
        "docker": bool(node.get("docker", True)),
        "jwt_key": options["jwt_key"],
        "jwt_min_length": options["jwt_min_length"],
        "timeout": max(2, int(options["timeout"]) - 2),
        "units": sorted(watched),
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


def probe_input(node, options, units=()):
    """What the probe command reads: the node's arguments as one JSON line, then the probe's code."""
    return json.dumps(probe_args(node, options, units), sort_keys=True) + "\n" + probe_body()
