"""The node layer's transport under parallel load: 2,000 commands spread over the test fleet's
nodes through SSH (as the playbooks reach them), not one output lost, not one hang."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import INVENTORY, REPO

pytestmark = pytest.mark.integration


def test_two_thousand_commands_over_ssh_lose_nothing(lab):
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "transport.py"), "-i", str(INVENTORY),
                           "--via", "ssh", "--commands", "2000", "--timeout", "30", "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=900, check=True)
    result = json.loads(proc.stdout)
    print(result)
    assert result["nodes"] == len(lab.nodes)
    assert (result["commands"], result["lost"], result["hangs"]) == (2000, 0, 0), result
