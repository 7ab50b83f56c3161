"""No source file names LXD's client command, its /var/lib directory or its systemd unit: they come
from the backend map (plugins/module_utils/backend.py) through the fleet model, so that a fleet on
Incus runs the same code (issue 17).

The forbidden words are read from the map itself (this file names none of them). The client's word
is forbidden as a word: LXD's config keys around it (raw.<word>, <word>.mount.auto), liblxc's
"[<word> monitor]" process and longer words (lxcfs) are not the client.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ansible_collections.adelie.fleet.plugins.module_utils.backend import BACKENDS

ROOT = Path(__file__).resolve().parents[2]
MAP = ROOT / "plugins" / "module_utils" / "backend.py"
SUFFIXES = (".py", ".yml", ".yaml", ".j2", ".sh")
SKIPPED_DIRS = {".git", ".venv", "build", ".ansible", ".pytest_cache", "__pycache__"}

LXD = BACKENDS["lxd"]
FORBIDDEN = re.compile("|".join((
    r"(?<!\.)\b%s\b(?!\.\w| monitor\])" % re.escape(LXD["cli"]),
    r"%s(?![\w-])" % re.escape(LXD["var_dir"]),
    r"(?<![\w-])%s\b" % re.escape(LXD["unit"]),
)))


def source_files():
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(files):
            path = Path(folder) / name
            if name.endswith(SUFFIXES) and path != MAP:
                yield path


def hits(path):
    """file:line: text of every forbidden word in a file."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return ["%s:%d: %s" % (path.relative_to(ROOT), number, line.strip())
            for number, line in enumerate(text.splitlines(), 1) if FORBIDDEN.search(line)]


def test_the_patterns_catch_the_client_and_spare_lookalikes():
    cli, var_dir, unit = LXD["cli"], LXD["var_dir"], LXD["unit"]
    for line in ("%s query /1.0" % cli, "argv: [%s, export]" % cli, "`%s exec node`" % cli, "/usr/bin/%s" % cli,
                 "%s/unix.socket" % var_dir, "After=%s" % unit):
        assert FORBIDDEN.search(line), line
    for line in ("%sfs" % cli, "raw.%s: %s.mount.auto=cgroup" % (cli, cli), "[%s monitor]" % cli, "lxd_container",
                 "snap.lxd.daemon.service", "%s-x" % var_dir, "/var/lib/incus"):
        assert not FORBIDDEN.search(line), line


def test_no_source_file_names_the_daemons_literals():
    found = [hit for path in source_files() for hit in hits(path)]
    assert not found, "names LXD's client, directory or unit; take them from the fleet model's backend:\n" + "\n".join(found)
