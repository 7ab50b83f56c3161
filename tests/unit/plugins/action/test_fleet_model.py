# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet_model action plugin: inventory entries in, the model out, failures as AnsibleActionFail.

Importing Ansible's controller side (ansible.errors, ansible.plugins.action) marks the whole process as the
controller, after which a module's warnings go to the display instead of its result: the module tests in the
same run would then miss them. So the controller side is imported only in a fixture that restores the mark.
"""

from __future__ import annotations

from unittest.mock import MagicMock

import pytest
from ansible.module_utils import _internal

ROLES = {
    "infra": {"cpu": 2, "memory": "4GiB", "disk": "20GiB", "pool": "nvme", "docker": True},
    "dev": {"cpu": 4, "memory": "8GiB", "disk": "150GiB", "pool": "nvme", "docker": True, "member_required": True},
}
ARGS = {"roles": ROLES, "network": {"name": "fleetbr0", "ipv4": "10.10.10.1/24"},
        "pools": [{"name": "nvme", "driver": "btrfs", "size": "1TiB"}]}
HOSTVARS = {
    "infra-server": {"group_names": ["fleet", "infra"], "fleet_ipv4": "10.10.10.10"},
    "dev-a": {"group_names": ["dev", "fleet"], "fleet_ipv4": "10.10.10.31",
              "fleet_member": {"login": "alice", "name": "Alice", "email": "alice@example.org"}},
}


@pytest.fixture(autouse=True)
def controller(monkeypatch):
    """(ActionModule, AnsibleActionFail), with the controller mark put back after the test."""
    monkeypatch.setattr(_internal, "is_controller", _internal.is_controller)
    from ansible.errors import AnsibleActionFail
    from ansible_collections.adelie.fleet.plugins.action.fleet_model import ActionModule

    return ActionModule, AnsibleActionFail


@pytest.fixture
def action_fail(controller):
    return controller[1]


def groups_of(hostvars):
    """The inventory's groups as Ansible gives them, from each host's group_names."""
    groups = {"all": sorted(hostvars)}
    for name, host in sorted(hostvars.items()):
        for group in host.get("group_names", []):
            groups.setdefault(group, []).append(name)
    return groups


@pytest.fixture
def run(controller):
    def run_action(args, hostvars=None, host=None):
        task = MagicMock(args=args, async_val=0, check_mode=False)
        action = controller[0](task, MagicMock(), MagicMock(), MagicMock(), MagicMock(), MagicMock())
        hostvars = HOSTVARS if hostvars is None else hostvars
        return action.run(task_vars={"hostvars": hostvars, "groups": groups_of(hostvars), "inventory_hostname": host})

    return run_action


def test_model_with_default_options(run):
    nodes = run(dict(ARGS))["fleet"]["nodes"]
    assert (nodes["dev-a"]["app_dir"], nodes["dev-a"]["compose"]) == ("/home/alice/app", "docker-compose")
    assert (nodes["infra-server"]["app_dir"], nodes["infra-server"]["gateway"]) == ("/opt/fleet-app", "10.10.10.1")


def test_app_dir_and_compose_command_are_passed_through(run):
    result = run({**ARGS, "app_dir": "/srv/app", "compose_command": "docker compose"})
    nodes = result["fleet"]["nodes"]
    assert (nodes["infra-server"]["app_dir"], nodes["infra-server"]["compose"]) == ("/srv/app", "docker compose")
    assert result["fleet"]["members"] == {"alice": "dev-a"}
    assert result["changed"] is False


def test_bad_inventory_fails_naming_node_and_field(run, action_fail):
    hostvars = {**HOSTVARS, "dev-b": {"group_names": ["dev", "fleet"], "fleet_member": {"login": "root"}}}
    with pytest.raises(action_fail) as error:
        run({**ARGS, "compose_command": "podman"}, hostvars)
    message = str(error.value)
    assert "compose_command 'podman' must be one of" in message
    assert "dev-b: fleet_ipv4 is missing" in message
    assert "dev-b: fleet_member.login 'root' is a system account" in message


def test_bad_host_capacity_fails_instead_of_raising_value_error(run, action_fail):
    with pytest.raises(action_fail) as error:
        run({**ARGS, "host": {"cpus": "many", "memory": "x"}, "policy": {"cpu_overcommit": "lots"}})
    message = str(error.value)
    assert "fleet_host.cpus 'many' is not a whole number" in message
    assert "fleet_host.memory 'x' is not a size" in message
    assert "fleet_capacity.cpu_overcommit 'lots' is not a number" in message


def test_unknown_option_is_refused(run, action_fail):
    with pytest.raises(action_fail, match="Invalid options"):
        run({**ARGS, "compose": "docker compose"})


def test_services_reach_each_node(run):
    services = {"all": [{"name": "sshd", "unit": "ssh.service", "port": 22}],
                "docker": [{"name": "docker", "unit": "docker.service"}]}
    nodes = run({**ARGS, "services": services})["fleet"]["nodes"]
    assert nodes["dev-a"]["services"] == [{"name": "sshd", "unit": "ssh.service", "port": 22},
                                          {"name": "docker", "unit": "docker.service", "port": None}]
    assert run(dict(ARGS))["fleet"]["nodes"]["dev-a"]["services"] == []


def test_inventory_shape_and_variable_names_are_checked(run, action_fail):
    # A misspelt variable on a node; a host of role group dev outside group fleet.
    hostvars = {**HOSTVARS, "infra-server": {**HOSTVARS["infra-server"], "fleet_memroy": "8GiB"},
                "dev-x": {"group_names": ["dev"], "fleet_ipv4": "10.10.10.40"}}
    with pytest.raises(action_fail) as error:
        run(dict(ARGS), hostvars)
    message = str(error.value)
    assert "infra-server: fleet_memroy is not a fleet variable; did you mean fleet_memory?" in message
    assert "dev-x: in role group dev but not in group fleet" in message


def test_inventory_and_host_problems_come_together(run, action_fail):
    hostvars = {**HOSTVARS, "dev-b": {"group_names": ["dev", "fleet"], "fleet_ipv4": "10.10.10.32",
                                      "fleet_member": {"login": "bob", "mail": "bob@example.org"}}}
    with pytest.raises(action_fail) as error:
        run({**ARGS, "host": {"cpus": 2, "memory": "16GiB"}, "policy": {"cpu_overcommit": 1e9}}, hostvars)
    message = str(error.value)
    assert "dev-b: fleet_member.mail is not a known field; did you mean email?" in message
    assert "dev-a: cpu (fleet_roles.dev.cpu) 4 is more than the host's 2 CPU threads" in message
    assert "fleet_capacity.cpu_overcommit 1000000000.0 is not a number from 0.1 to 16" in message


def test_options_not_given_are_the_inventory_variables_of_the_task_host(run):
    # What model.yml does: no roles, network or pools given; the LXD host is the one of group lxd_hosts.
    common = {"fleet_roles": ROLES, "fleet_network": ARGS["network"], "fleet_pools": ARGS["pools"],
              "fleet_project": "fleet-test", "shared_services_secrets_file": "/srv/store.yml"}
    hostvars = {"lab-host": {**common, "group_names": ["lxd_hosts"]},
                **{name: {**common, **host} for name, host in HOSTVARS.items()}}
    model = run({}, hostvars, host="lab-host")["fleet"]
    assert (model["project"], model["lxd_host"], model["secrets_file"]) == ("fleet-test", "lab-host", "/srv/store.yml")
    assert (model["tenants"], model["nodes"]["dev-a"]["tenant"]) == (["dev_alice"], "dev_alice")
    assert model["nodes"]["infra-server"]["lxd_host"] == "lab-host"
    # A task's argument wins; without the variables (or the task's host), a required option is missing.
    assert run({"project": "other"}, hostvars, host="lab-host")["fleet"]["project"] == "other"


def test_missing_inventory_variables_are_reported(run, action_fail):
    with pytest.raises(action_fail) as error:
        run({})
    message = str(error.value)
    assert "fleet_roles is missing" in message and "fleet_network is missing" in message
    assert "fleet_pools is missing" in message
