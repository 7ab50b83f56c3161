"""plan.yml prints the capacity table of any inventory and changes nothing; no LXD needed."""

from __future__ import annotations

import yaml
from conftest import REPO, run_playbook

PRODUCTION = REPO / "inventories" / "production"


def test_plan_prints_the_production_capacity_table():
    result = run_playbook("playbooks/plan.yml", inventory=PRODUCTION)
    assert result.rc == 0, str(result)
    assert result.changed_hosts() == {}
    for line in ("deploy-test      deploy     16     32GiB    200GiB  nvme     10.10.10.20",
                 "dev-ryejinn      dev_ai      4     12GiB    150GiB  nvme     10.10.10.35",
                 "memory                    82GiB        82GiB  100.0%"):
        assert line in result.out, str(result)


def test_plan_refuses_deploy_test_back_at_64_gib(tmp_path):
    edit = tmp_path / "deploy64.yml"
    edit.write_text(yaml.safe_dump({"all": {"children": {"fleet": {"children": {"deploy": {"hosts": {
        "deploy-test": {"fleet_memory": "64GiB"}}}}}}}}))
    result = run_playbook("playbooks/plan.yml", "-i", str(edit), inventory=PRODUCTION)
    assert result.rc != 0
    assert "memory overcommitted: the fleet asks 114GiB, the host may hand out 82GiB. " \
           "Biggest consumers: deploy-test 64GiB" in result.out, result
