"""plan.yml refuses a careless inventory: each case is the production inventory with ONE edit, run
through the real playbook. Each must fail, say what is wrong naming the node or variable and the
field, and never show a raw Python error. No LXD needed (production declares its host's size)."""

from __future__ import annotations

import shutil

import pytest
from playbook_run import REPO, run_playbook

PRODUCTION = REPO / "inventories" / "production"
RAW_ERRORS = ("Traceback", "KeyError", "TypeError", "AttributeError", "NameError", "IndexError")
# A real ed25519 public key, and its base64 under another type's name.
ED25519 = "AAAAC3NzaC1lZDI1NTE5AAAAIDYugKFFPh0TVS+6gjCgMFsNIac1aVD3Wku2TjT5itAY"
HJ = "              fleet_member: {login: hj, name: hj, email: hj@adelie.invalid}\n"
DEV_HJ = "              fleet_ipv4: 10.10.10.34\n"


def node(line):
    """An edit of hosts.yml: one more line in dev-hj's host entry."""
    return "hosts.yml", DEV_HJ, DEV_HJ + "              %s\n" % line


def member(extra):
    """An edit of hosts.yml: one more field in dev-hj's fleet_member."""
    return "hosts.yml", HJ, HJ.replace("}", ", %s}" % extra)


def group_vars(old, new):
    return "group_vars/all.yml", old, new


def move_dev_out(text):
    """The dev group's block moved from under fleet: children: to under all: children:."""
    start, end = text.index("        dev:\n"), text.index("        dev_ai:\n")
    return text[:start] + text[end:] + "".join(line[4:] + "\n" for line in text[start:end].splitlines())


INFRA_ROLE = "  infra: {cpu: 4, memory: 4GiB, disk: 300GiB, pool: nvme, docker: true}"
QA_ROLE = "  qa: {cpu: 2, memory: 4GiB, disk: 150GiB, pool: nvme, docker: true, member_required: true}"
DOCKER_SERVICE = "    - {name: docker, unit: docker.service}\n"
SSH_SERVICE = "    - {name: sshd, unit: ssh.service, port: 22}"

# (file, old text or a function of the file's text, new text, what the output must say)
CASES = {
    # the inventory's shape
    "empty hosts.yml": ("hosts.yml", None, "", "the inventory needs a host in group lxd_hosts"),
    "all: children: misspelt": ("hosts.yml", "all:\n  children:", "all:\n  childen:",
                                "the inventory needs a host in group lxd_hosts"),
    "fleet: misspelt": ("hosts.yml", "    fleet:\n", "    flet:\n", "the inventory has no fleet node"),
    "fleet: misspelt names the stray hosts": ("hosts.yml", "    fleet:\n", "    flet:\n",
                                              "dev-hj: in role group dev but not in group fleet"),
    "fleet's children: misspelt": ("hosts.yml", "    fleet:\n      children:", "    fleet:\n      childern:",
                                   "the inventory has no fleet node"),
    "role group under all, not fleet": ("hosts.yml", move_dev_out, None,
                                        "dev-hj: in role group dev but not in group fleet"),
    "a node in two role groups": ("hosts.yml", "        qa:\n          hosts: {}",
                                  "        qa:\n          hosts:\n            dev-hj:",
                                  "dev-hj: must be in exactly one role group"),
    "a node twice in its group": ("hosts.yml", "            dev-hj:\n",
                                  "            dev-hj:\n              fleet_ipv4: 10.10.10.36\n            dev-hj:\n",
                                  "Found duplicate mapping key 'dev-hj'"),
    "a variable twice in group_vars": group_vars(
        "fleet_image: adelie/bookworm\n", "fleet_image: adelie/bookworm\nfleet_image: adelie/trixie\n") + (
        "Found duplicate mapping key 'fleet_image'",),
    "uppercase node name": ("hosts.yml", "            dev-hj:\n", "            Dev-hj:\n",
                            "Dev-hj: uppercase letters are refused in a node name"),
    # a node's variables
    "misspelt node variable": node("fleet_memroy: 8GiB") + ("dev-hj: fleet_memroy is not a fleet variable; did you "
                                                            "mean fleet_memory?",),
    "memory without a unit": node("fleet_memory: 8") + ("dev-hj: fleet_memory 8 has no unit",),
    "absurdly small memory": node("fleet_memory: 8MiB") + ("dev-hj: fleet_memory '8MiB' is less than 64MiB",),
    "absurdly small disk": node("fleet_disk: 512MiB") + ("dev-hj: fleet_disk '512MiB' is less than 1GiB",),
    "more CPUs than the host's threads": node("fleet_cpu: 64") + (
        "dev-hj: fleet_cpu 64 is more than the host's 32 CPU threads",),
    "CPUs quoted": node("fleet_cpu: '4'") + ("dev-hj: fleet_cpu '4' is not a whole number of CPUs",),
    "CPUs a float": node("fleet_cpu: 2.0") + ("dev-hj: fleet_cpu 2.0 is not a whole number of CPUs",),
    "unknown pool of a node": node("fleet_pool: ssd") + ("dev-hj: fleet_pool 'ssd' is not one of the fleet's pools",),
    "address outside the subnet": ("hosts.yml", DEV_HJ, DEV_HJ.replace("10.10.10.34", "10.10.20.34"),
                                   "dev-hj: fleet_ipv4 10.10.20.34 is outside fleetbr0's subnet"),
    "duplicate address": ("hosts.yml", DEV_HJ, DEV_HJ.replace("34", "31"),
                          "fleet_ipv4 10.10.10.31 is already the address of"),
    # a member
    "member ssh-key for ssh_key": member("ssh-key: %s" % ED25519) + (
        "dev-hj: fleet_member.ssh-key is not a known field; did you mean ssh_key?",),
    "member mail for email": ("hosts.yml", HJ, HJ.replace("email:", "mail:"),
                              "dev-hj: fleet_member.mail is not a known field; did you mean email?"),
    "ssh key that is no key": member("ssh_key: ssh-rsa hello") + (
        "dev-hj: fleet_member.ssh_key is not an OpenSSH public key line",),
    "ssh key of another type": member("ssh_key: ssh-rsa %s" % ED25519) + (
        "dev-hj: fleet_member.ssh_key is not an OpenSSH public key line: its base64 does not hold a ssh-rsa key",),
    "ssh key cut short": member("ssh_key: ssh-ed25519 %s" % ED25519[:-4]) + (
        "dev-hj: fleet_member.ssh_key is not an OpenSSH public key line",),
    "duplicate login": ("hosts.yml", HJ, HJ.replace("login: hj", "login: yj99son"),
                        "fleet_member.login 'yj99son' is already the member of"),
    "login in uppercase": ("hosts.yml", HJ, HJ.replace("login: hj", "login: HJ"),
                           "dev-hj: fleet_member.login 'HJ' is not a valid Linux login"),
    "e-mail without a domain": ("hosts.yml", HJ, HJ.replace("hj@adelie.invalid", "hj@"),
                                "dev-hj: fleet_member.email 'hj@' is not an e-mail address"),
    # fleet_roles
    "docker as a string": group_vars(QA_ROLE, QA_ROLE.replace("docker: true", "docker: 'false'")) + (
        "fleet_roles.qa: docker 'false' is not true or false",),
    "member_required as a string": group_vars(QA_ROLE, QA_ROLE.replace("member_required: true",
                                                                       "member_required: 'yes'")) + (
        "fleet_roles.qa: member_required 'yes' is not true or false",),
    "misspelt role field": group_vars(INFRA_ROLE, INFRA_ROLE.replace("docker:", "dockr:")) + (
        "fleet_roles.infra: dockr is not a known field; did you mean docker?",),
    "role with more CPUs than the host": group_vars(INFRA_ROLE, INFRA_ROLE.replace("cpu: 4", "cpu: 64")) + (
        "infra-server: cpu (fleet_roles.infra.cpu) 64 is more than the host's 32 CPU threads",),
    "role memory without a unit": group_vars(INFRA_ROLE, INFRA_ROLE.replace("memory: 4GiB", "memory: 4")) + (
        "fleet_roles.infra: memory 4 has no unit",),
    "role name with a dash": group_vars(QA_ROLE, QA_ROLE.replace("qa:", "q-a:")) + (
        "fleet_roles.q-a: 'q-a' is not a valid role name",),
    "role on an unknown pool": group_vars(INFRA_ROLE, INFRA_ROLE.replace("pool: nvme", "pool: ssd")) + (
        "fleet_roles.infra: pool 'ssd' is not one of the fleet's pools",),
    # fleet_capacity and fleet_host
    "misspelt capacity field": group_vars("  memory_reserve: 2GiB", "  memory_reserv: 2GiB") + (
        "fleet_capacity.memory_reserv is not a known field; did you mean memory_reserve?",),
    "absurd CPU overcommit": group_vars("  cpu_overcommit: 2.0", "  cpu_overcommit: 1.0e+9") + (
        "fleet_capacity.cpu_overcommit 1000000000.0 is not a number from 0.1 to 16",),
    "memory overcommit past 2": group_vars("  memory_overcommit: 1.0", "  memory_overcommit: 3.0") + (
        "fleet_capacity.memory_overcommit 3.0 is not a number from 0.1 to 2",),
    "overcommit quoted": group_vars("  disk_overcommit: 1.0", "  disk_overcommit: '1.0'") + (
        "fleet_capacity.disk_overcommit '1.0' is not a number",),
    "host CPUs a float": group_vars("  cpus: 32", "  cpus: 32.0") + ("fleet_host.cpus 32.0 is not a whole number",),
    "host memory without a unit": group_vars("  memory: 84GiB", "  memory: 84") + (
        "fleet_host.memory 84 has no unit",),
    "misspelt host field": group_vars("  memory: 84GiB", "  memroy: 84GiB") + (
        "fleet_host.memroy is not a known field; did you mean memory?",),
    "misspelt global variable": group_vars("fleet_capacity:\n", "fleet_capcity:\n") + (
        "fleet_capcity is not a fleet variable; did you mean fleet_capacity?",),
    "fleet_roles misspelt": group_vars("fleet_roles:\n", "fleet_role:\n") + ("fleet_roles is missing",),
    # fleet_network and fleet_pools
    "bridge name too long": group_vars("  name: fleetbr0", "  name: fleet-bridge-prod") + (
        "fleet_network: name 'fleet-bridge-prod' is not a valid bridge name (at most 15 characters",),
    "bridge address without prefix": group_vars("  ipv4: 10.10.10.1/24", "  ipv4: 10.10.10.1") + (
        "fleet_network: ipv4 '10.10.10.1' must be the bridge's address and prefix",),
    "misspelt network field": group_vars("  ipv4: 10.10.10.1/24", "  ip4: 10.10.10.1/24") + (
        "fleet_network: ip4 is not a known field; did you mean ipv4?",),
    "unknown pool driver": group_vars("    driver: btrfs\n    size: 1600GiB",
                                      "    driver: btrfss\n    size: 1600GiB") + (
        "fleet_pools.nvme: driver 'btrfss' is not one of btrfs, ceph, cephfs, cephobject, dir, lvm, zfs; did you "
        "mean btrfs?",),
    "two pools of one name": group_vars("  - name: hdd", "  - name: nvme") + (
        "fleet_pools.nvme: listed twice (fleet_pools[0] and fleet_pools[1])",),
    "pool size without a unit": group_vars("    size: 1600GiB", "    size: '1600'") + (
        "fleet_pools.nvme: size '1600' has no unit",),
    "misspelt pool field": group_vars("    size: 3600GiB", "    sise: 3600GiB") + (
        "fleet_pools.hdd: sise is not a known field; did you mean size?",),
    # fleet_services
    "services of an unknown role": group_vars("  infra:\n    - {name: postgresql",
                                              "  infr:\n    - {name: postgresql") + (
        "fleet_services.infr is not all, docker or a role of fleet_roles; did you mean infra?",),
    "service unit without .service": group_vars(SSH_SERVICE, SSH_SERVICE.replace("ssh.service", "ssh")) + (
        "fleet_services.all.sshd: unit 'ssh' is not a systemd service unit",),
    "service port quoted": group_vars(SSH_SERVICE, SSH_SERVICE.replace("22", "'22'")) + (
        "fleet_services.all.sshd: port '22' is not a TCP port",),
    "service port out of range": group_vars(SSH_SERVICE, SSH_SERVICE.replace("22", "70000")) + (
        "fleet_services.all.sshd: port 70000 is not a TCP port (1 to 65535",),
    "misspelt service field": group_vars(SSH_SERVICE, SSH_SERVICE.replace("port:", "prot:")) + (
        "fleet_services.all.sshd: prot is not a known field; did you mean port?",),
    "a unit twice on a role's nodes": group_vars(
        "    - {name: loki, unit: loki.service, port: 3100}\n",
        "    - {name: loki, unit: loki.service, port: 3100}\n    - {name: engine, unit: docker.service}\n") + (
        "fleet_services: unit docker.service would be listed twice for the nodes of role infra (in docker and in "
        "infra)",),
    "a service name twice in a list": group_vars(DOCKER_SERVICE, DOCKER_SERVICE + DOCKER_SERVICE.replace(
        "docker.service", "containerd.service")) + ("fleet_services.docker: name docker is listed twice",),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_plan_refuses_a_careless_edit(tmp_path, case):
    name, old, new, expected = CASES[case]
    inventory = tmp_path / "inventory"
    shutil.copytree(PRODUCTION, inventory)
    path = inventory / name
    text = path.read_text(encoding="utf-8")
    if old is None:
        text = new
    elif callable(old):
        text = old(text)
    else:
        assert text.count(old) == 1, "the edit must change exactly one place: %r" % old
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    result = run_playbook("playbooks/plan.yml", inventory=inventory)
    assert result.rc != 0, str(result)
    assert expected in result.out, str(result)
    assert not any(error in result.out for error in RAW_ERRORS), str(result)


def test_every_problem_at_once(tmp_path):
    """Three careless edits in one inventory: one run names all three."""
    inventory = tmp_path / "inventory"
    shutil.copytree(PRODUCTION, inventory)
    hosts = inventory / "hosts.yml"
    hosts.write_text(hosts.read_text(encoding="utf-8").replace(DEV_HJ, DEV_HJ + "              fleet_memory: 8\n"))
    all_vars = inventory / "group_vars" / "all.yml"
    all_vars.write_text(all_vars.read_text(encoding="utf-8")
                        .replace(QA_ROLE, QA_ROLE.replace("docker: true", "docker: 'false'"))
                        .replace("  cpus: 32", "  cpus: '32'"))
    result = run_playbook("playbooks/plan.yml", inventory=inventory)
    assert result.rc != 0
    for expected in ("dev-hj: fleet_memory 8 has no unit", "fleet_roles.qa: docker 'false'", "fleet_host.cpus '32'"):
        assert expected in result.out, str(result)
