"""plan.yml prints the capacity table of any inventory and changes nothing; no LXD needed (the
production inventory declares its host's size)."""

from __future__ import annotations

import json

import pytest
import yaml
from playbook_run import REPO, run_playbook

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


def test_an_inventory_that_fails_to_parse_is_an_error(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("all:\n  children:\n    fleet: [unclosed\n")
    result = run_playbook("playbooks/plan.yml", "-i", str(broken), inventory=PRODUCTION)
    assert result.rc != 0
    assert "broken.yml" in result.out and "no hosts matched" not in result.out, result


@pytest.mark.parametrize("policy, field", [
    ({"fleet_host": {"cpus": "many", "memory": "84GiB"}}, "fleet_host.cpus"),
    ({"fleet_capacity": {"cpu_overcommit": "lots"}}, "fleet_capacity.cpu_overcommit"),
])
def test_a_non_numeric_host_or_policy_names_the_variable(policy, field):
    result = run_playbook("playbooks/plan.yml", "-e", json.dumps(policy), inventory=PRODUCTION)
    assert result.rc != 0
    assert field in result.out and "Traceback" not in result.out, result
