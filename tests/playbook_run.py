"""Run a playbook from the checkout and read its recap: shared by the unit and integration tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
_RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@dataclass
class Result:
    rc: int
    out: str
    seconds: float
    recap: dict = field(default_factory=dict)

    def changed_hosts(self):
        return {host: counts["changed"] for host, counts in self.recap.items() if counts["changed"]}

    def __str__(self):
        """For assertion messages: every failed task with its message, then the end of the output."""
        lines = self.out.splitlines()
        failed = [" / ".join(lines[i:i + 3]) for i, line in enumerate(lines)
                  if line.startswith(("fatal:", "failed:")) or "FAILED!" in line]
        return "\n".join(failed[:20] + ["..."] + lines[-40:])


def run_playbook(playbook, *args, inventory, env=None):
    """ansible-playbook from the checkout; returns rc, the whole output and the parsed recap."""
    started = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(REPO / playbook), *args],
        cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", **(env or {})}, check=False)
    out = proc.stdout + proc.stderr
    recap = {m[0]: {"ok": int(m[1]), "changed": int(m[2]), "unreachable": int(m[3]), "failed": int(m[4])}
             for m in _RECAP.findall(out)}
    return Result(proc.returncode, out, time.monotonic() - started, recap)
