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


def test_plan_passes_the_lab_and_the_test_fleet():
    # Neither declares fleet_host: plan.yml reads this machine's nproc and /proc/meminfo (no LXD needed).
    for inventory in (REPO / "inventories" / "lab", REPO / "tests" / "integration" / "inventory"):
        result = run_playbook("playbooks/plan.yml", inventory=inventory)
        assert result.rc == 0, str(result)
        assert "memory  " in result.out and result.changed_hosts() == {}, str(result)


def _show(tmp_path, msg, inventory, *args):
    """model.yml, then the message msg on localhost (the LXD host of these inventories), as JSON."""
    playbook = tmp_path / "show.yml"
    playbook.write_text(yaml.safe_dump([
        {"ansible.builtin.import_playbook": str(REPO / "playbooks" / "model.yml")},
        {"name": "Show", "hosts": "localhost", "gather_facts": False, "tasks": [{"ansible.builtin.debug": {
            "msg": msg}}]}]))
    result = run_playbook(str(playbook), *args, inventory=inventory)
    assert result.rc == 0, str(result)
    start = result.out.index("ok: [localhost] => {") + len("ok: [localhost] => ")
    return json.loads(result.out[start:result.out.index("\n}", start) + 2])["msg"]


def test_the_model_gives_each_node_its_services(tmp_path):
    # fleet_services of the inventory, through model.yml: all, then docker, then the role's own.
    services = "{{ ['infra-server', 'dev-hj'] | map('extract', hostvars, ['fleet_node', 'services']) }}"
    infra, dev = _show(tmp_path, services, PRODUCTION)
    sshd, exporter, docker = (
        {"name": "sshd", "unit": "ssh.service", "port": 22},
        {"name": "node-exporter", "unit": "prometheus-node-exporter.service", "port": 9100},
        {"name": "docker", "unit": "docker.service", "port": None})
    assert dev == [sshd, exporter, docker]
    assert infra[:3] == [sshd, exporter, docker]
    assert [service["unit"] for service in infra[3:]] == [
        "postgresql@15-main.service", "redis-server.service", "prometheus.service",
        "prometheus-alertmanager.service", "docker-registry.service", "grafana-server.service", "loki.service"]


GLOBALS = ("{{ {'model': fleet_model | dict2items | selectattr('key', 'in', ['project', 'lxd_host', 'environments', "
           "'tenants', 'secrets_file', 'vault_password_file']) | items2dict, "
           "'node': ['project', 'lxd_host', 'tenant'] | map('extract', hostvars['ft-dev1'].fleet_node) | list} }}")


def test_the_model_hands_out_the_global_facts(tmp_path):
    # The test fleet's own LXD project, with both environments (deploy and staging: test_deploy.py).
    shown = _show(tmp_path, GLOBALS, REPO / "tests" / "integration" / "inventory")
    assert shown["model"] == {
        "project": "fleet-test", "lxd_host": "localhost", "environments": ["deploy", "staging"],
        "tenants": ["deploy", "dev_alice", "dev_bob", "staging"],
        "secrets_file": "~/.config/adelie-fleet/fleet-test-shared-services.vault.yml",
        "vault_password_file": "~/.config/adelie-fleet/vault-pass"}
    assert shown["node"] == ["fleet-test", "localhost", "dev_alice"]
    # The shared services' variables still choose the environments and the store, through the model.
    extra = {"shared_services_environments": ["deploy", "infra"], "shared_services_secrets_file": "/srv/store.yml"}
    shown = _show(tmp_path, GLOBALS, REPO / "tests" / "integration" / "inventory", "-e", json.dumps(extra))
    assert (shown["model"]["tenants"], shown["model"]["secrets_file"]) == (
        ["deploy", "dev_alice", "dev_bob", "infra"], "/srv/store.yml")
    # The registry and the CA, from the model too.
    registry = _show(tmp_path, "{{ [fleet_model.registry, fleet_model.ca_dir] }}", REPO / "tests" / "integration" / "inventory")
    assert registry == [{"node": "ft-infra", "address": "10.10.10.210", "port": 5000, "host": "10.10.10.210:5000"},
                        "~/.config/adelie-fleet/fleet-test-ca"]


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


def _cluster(tmp_path, pins=None):
    """The production fleet on a cluster of three declared members: localhost (the production server),
    lxd-a (as big) and lxd-b (half of it); pins: {(role group, node): member} (fleet_location)."""
    extra = tmp_path / "members.yml"
    members = {"lxd-a": {"fleet_host": {"cpus": 32, "memory": "84GiB"}, "ansible_connection": "local"},
               "lxd-b": {"fleet_host": {"cpus": 16, "memory": "42GiB"}, "ansible_connection": "local"}}
    fleet = {}
    for (group, node), member in (pins or {}).items():
        fleet.setdefault(group, {"hosts": {}})["hosts"][node] = {"fleet_location": member}
    extra.write_text(yaml.safe_dump({"all": {"children": {"lxd_hosts": {"hosts": members},
                                                          "fleet": {"children": fleet}}}}))
    return extra


# A cluster's nodes are routed on the members' uplink (a bridge's address would be every member's).
ROUTED = ("-e", json.dumps({"fleet_network": {"name": "fleetbr0", "ipv4": "10.10.10.1/24", "parent": "eno1"}}))


def test_plan_prints_a_table_per_member_of_a_cluster(tmp_path):
    result = run_playbook("playbooks/plan.yml", "-i", str(_cluster(tmp_path)), *ROUTED, inventory=PRODUCTION)
    assert result.rc == 0, str(result)
    out = result.out
    assert out.index('"member localhost"') < out.index('"member lxd-a"') < out.index('"member lxd-b"')
    assert out.index('"member lxd-b"') < out.index('"cluster of 3 members"')
    # The single server's 82GiB of nodes, now on 206GiB of members (after each one's 2GiB reserve).
    assert "\"memory                    82GiB       204GiB   40.2%\"" in out, out
    assert result.changed_hosts() == {}


def test_plan_refuses_an_overcommitted_member_though_the_cluster_has_room(tmp_path):
    pins = {("deploy", "deploy-test"): "lxd-b", ("dev", "dev-hj"): "lxd-b", ("staging", "staging"): "lxd-b"}
    result = run_playbook("playbooks/plan.yml", "-i", str(_cluster(tmp_path, pins)), *ROUTED, inventory=PRODUCTION)
    assert result.rc != 0
    assert ("memory overcommitted: the nodes placed on member lxd-b ask 42GiB, it may hand out 40GiB. "
            "Biggest consumers: deploy-test 32GiB, dev-hj 8GiB, staging 2GiB") in result.out, str(result)
    assert "PLAY [" not in result.out.split("Validate the fleet")[-1], str(result)
