"""The node layer's transport under parallel load: 2,000 commands spread over the test fleet's
nodes through SSH (as the playbooks reach them), and 2,000 module runs through ansible.cfg's
strategy (Mitogen's): not one output lost, not one hang."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import INVENTORY, REPO

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("via", ["ssh", "ansible"])
def test_two_thousand_commands_lose_nothing(lab, via):
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "transport.py"), "-i", str(INVENTORY),
                           "--via", via, "--commands", "2000", "--timeout", "30", "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=900, check=True)
    result = json.loads(proc.stdout)
    print(result)
    assert result["nodes"] == len(lab.nodes)
    assert (result["commands"], result["lost"], result["hangs"]) == (2000, 0, 0), result
