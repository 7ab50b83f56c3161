"""deploy.yml and rollback.yml refuse bad input before anything changes, naming the variable and field; no
LXD, registry or node is reached (the production inventory, whose host is described in the inventory)."""

from __future__ import annotations

import json

import pytest
from playbook_run import REPO, run_playbook

PRODUCTION = REPO / "inventories" / "production"


@pytest.mark.parametrize("playbook, extra, message", [
    ("playbooks/deploy.yml", {"env": "qa"}, 'deploy: env "qa" is not one of the fleet environments ["deploy", "staging"]'),
    ("playbooks/deploy.yml", {}, 'deploy: env "" is not one of the fleet environments'),
    ("playbooks/deploy.yml", {"env": "staging", "deploy_images": [{"service": "frontend", "contxt": "frontend"}]},
     "deploy_images.contxt. Supported parameters include: context, service."),
    ("playbooks/deploy.yml", {"env": "staging", "deploy_health_service": "worker"},
     "deploy_health_service worker is not one of its services"),
    ("playbooks/deploy.yml", {"env": "staging", "deploy_gate_tries": "five"}, "deploy_gate_tries"),
    ("playbooks/rollback.yml", {"env": "dev"}, 'deploy: env "dev" is not one of the fleet environments'),
])
def test_bad_input_is_refused_before_anything_changes(playbook, extra, message):
    result = run_playbook(playbook, "-e", json.dumps(extra), inventory=PRODUCTION)
    assert result.rc != 0
    assert message in result.out, str(result)
    assert result.changed_hosts() == {}
    # Nothing after the checks ran: no lock taken, no node reached.
    assert "Take the lock" not in result.out and "Resolve the ref" not in result.out
