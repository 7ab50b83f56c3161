"""The shared services' templates rendered by Ansible from the roles' defaults on a fake fleet, and
checked: pg_hba.conf admits only the fleet subnet, one line per tenant database for its own role;
PostgreSQL listens on the bridge address; redis.conf binds the bridge, requires the password, keeps
protected mode and has maxmemory from the container's limit; the exporters' files; each node's .env
values; MinIO's preflight refuses a download without a checksum and accepts a local file. The fake
fleet's model is build_model's, so the roles are checked against the fields the model really has
(tenants, LXD host, password store).
"""

from __future__ import annotations

import json
import re
import sys

import pytest
import yaml
from playbook_run import run_playbook

from ansible_collections.adelie.fleet.plugins.module_utils.fleet import build_model

HERE = "tests/unit/shared_services"
SUBNET = "10.10.10.0/24"
GIB = 1 << 30
ROLES = {"infra": {"cpu": 2, "memory": "4GiB", "disk": "8GiB", "pool": "fleet", "docker": True},
         "deploy": {"cpu": 2, "memory": "2GiB", "disk": "6GiB", "pool": "fleet", "docker": True},
         "dev": {"cpu": 1, "memory": "1GiB", "disk": "5GiB", "pool": "fleet", "docker": True, "member_required": True}}
ENTRIES = {"infra-server": {"groups": ["fleet", "infra"], "ipv4": "10.10.10.10"},
           "deploy-test": {"groups": ["fleet", "deploy"], "ipv4": "10.10.10.20"},
           "dev-hj": {"groups": ["fleet", "dev"], "ipv4": "10.10.10.34", "member": {"login": "hj"}},
           "dev-yj99son": {"groups": ["fleet", "dev"], "ipv4": "10.10.10.31", "member": {"login": "yj99son"}}}
MODEL = build_model(ENTRIES, ROLES, {"name": "fleetbr0", "ipv4": "10.10.10.1/24"},
                    [{"name": "fleet", "driver": "btrfs", "size": "64GiB"}], lxd_host="lab-host")
NODES = MODEL["nodes"]
TENANTS = ["deploy", "dev_hj", "dev_yj99son"]
SECRETS = {"postgresql_" + t: "pg-%s-Zx81kq7HwR2vP0aLmN4b" % t for t in TENANTS}
SECRETS.update({"redis": "redis-Qw3rTy7UiOp1AsDfGhJkL0", "minio_root": "root-Bn7Vc5Xz3Lk1Jh9Gf"})
SECRETS.update({"s3_" + t: "s3-%s-Mn8Bv6Cx4Za2" % t for t in TENANTS})
SLOTS = {"deploy": 0, "dev_hj": 1, "dev_yj99son": 2}
TEMPLATES = [
    ["postgresql", "etc/postgresql/main/pg_hba.conf.j2"],
    ["postgresql", "etc/postgresql/main/conf.d/adelie-fleet.conf.j2"],
    ["redis", "etc/redis/redis.conf.j2"],
    ["db_exporters", "etc/default/prometheus-postgres-exporter.j2"],
    ["db_exporters", "etc/default/prometheus-redis-exporter.j2"],
    ["db_backup", "etc/adelie-fleet/backup.conf.j2"],
    ["db_backup", "etc/systemd/system/adelie-fleet-backup.timer.j2"],
    ["minio", "etc/default/minio.j2"],
    ["minio", "etc/systemd/system/minio.service.j2"],
]


def _inventory(tmp_path):
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    hosts = {name: {**local, "fleet_node": node} for name, node in NODES.items()}
    inventory = {"all": {"children": {
        "lxd_hosts": {"hosts": {"lab-host": {**local, "fleet_model": MODEL}}},
        "fleet": {"children": {
            "infra": {"hosts": {"infra-server": hosts["infra-server"]}},
            "deploy": {"hosts": {"deploy-test": hosts["deploy-test"]}},
            "dev": {"hosts": {"dev-hj": hosts["dev-hj"], "dev-yj99son": hosts["dev-yj99son"]}},
        }},
    }}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("render")
    out = tmp_path / "out"
    for host in NODES:
        for template in (pair[1] for pair in TEMPLATES):
            (out / host / template).parent.mkdir(parents=True, exist_ok=True)
    extra = {"render_out": str(out), "render_templates": TEMPLATES, "render_secrets": SECRETS, "render_slots": SLOTS,
             "shared_services_minio_enabled": True}
    result = run_playbook(f"{HERE}/render.yml", "-e", json.dumps(extra), inventory=_inventory(tmp_path))
    assert result.rc == 0, str(result)
    for value in SECRETS.values():
        assert value not in result.out, "a secret was printed by the render run"
    return out / "infra-server", out


def _lines(path):
    return [line for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_pg_hba_admits_only_the_fleet_subnet_one_line_per_tenant(rendered):
    infra = rendered[0]
    rows = [line.split() for line in _lines(infra / "etc/postgresql/main/pg_hba.conf")]
    local = [row for row in rows if row[0] == "local"]
    host = [row for row in rows if row[0] != "local"]
    assert local == [["local", "all", "postgres", "peer"], ["local", "postgres", "prometheus", "peer"]]
    assert sorted(row[1] for row in host) == TENANTS
    for row in host:
        assert row == ["host", row[1], row[1], SUBNET, "scram-sha-256"], row
    assert not any(word in ("all", "0.0.0.0/0", "trust", "::/0", "md5", "password") for row in host for word in row)


def test_postgresql_listens_on_the_bridge_with_memory_from_the_limit(rendered):
    infra = rendered[0]
    settings = dict(line.split(" = ", 1) for line in _lines(infra / "etc/postgresql/main/conf.d/adelie-fleet.conf"))
    assert settings["listen_addresses"] == "'10.10.10.10,localhost'"
    assert settings["password_encryption"] == "scram-sha-256"
    assert settings["shared_buffers"] == "1024MB"  # 25 % of 4 GiB
    assert settings["effective_cache_size"] == "2048MB"
    assert settings["work_mem"] == "10MB"  # 4096 / 4 / 100 connections
    assert settings["maintenance_work_mem"] == "256MB"


def test_redis_binds_the_bridge_requires_the_password_and_limits_memory(rendered):
    infra = rendered[0]
    conf = {}
    for line in _lines(infra / "etc/redis/redis.conf"):
        key, value = line.partition(" ")[::2]
        conf.setdefault(key, []).append(value)
    assert conf["bind"] == ["10.10.10.10 127.0.0.1"]
    assert conf["protected-mode"] == ["yes"]
    assert conf["requirepass"] == [SECRETS["redis"]]
    assert conf["maxmemory"] == [str(GIB)]  # 25 % of 4 GiB
    assert conf["maxmemory-policy"] == ["allkeys-lru"]
    assert conf["databases"] == ["16"]
    assert conf["supervised"] == ["systemd"] and conf["daemonize"] == ["no"]


def test_exporters_listen_on_the_bridge_and_keep_the_password_off_the_command_line(rendered):
    infra = rendered[0]
    pg = (infra / "etc/default/prometheus-postgres-exporter").read_text()
    assert "--web.listen-address=10.10.10.10:9187" in pg and "postgresql://prometheus@:5432/postgres?host=/run/postgresql" in pg
    redis = (infra / "etc/default/prometheus-redis-exporter").read_text()
    args = re.search(r'^ARGS="(.*)"$', redis, re.M).group(1)
    assert "-web.listen-address=10.10.10.10:9121" in args and SECRETS["redis"] not in args
    assert "REDIS_PASSWORD=" + SECRETS["redis"] in redis


def test_backup_configuration_and_timer(rendered):
    infra = rendered[0]
    conf = dict(line.split("=", 1) for line in _lines(infra / "etc/adelie-fleet/backup.conf"))
    assert conf == {"BACKUP_DIR": "/var/backups/fleet", "KEEP_COUNT": "7", "KEEP_DAYS": "14",
                    "TEXTFILE_DIR": "/var/lib/prometheus/node-exporter", "REDIS_HOST": "10.10.10.10",
                    "REDIS_PORT": "6379", "TIMEOUT": "3600"}
    assert "OnCalendar=*-*-* 02:30:00" in (infra / "etc/systemd/system/adelie-fleet-backup.timer").read_text()


def test_minio_listens_on_the_bridge(rendered):
    infra = rendered[0]
    env = (infra / "etc/default/minio").read_text()
    assert '--address 10.10.10.10:9000 --console-address 10.10.10.10:9001' in env
    assert "MINIO_ROOT_PASSWORD=" + SECRETS["minio_root"] in env


def test_each_node_gets_its_tenants_env(rendered):
    out = rendered[1]
    values = {host: json.loads((out / host / "values.json").read_text()) for host in NODES}
    assert values["infra-server"]["env"] is None and values["infra-server"]["tenant"] is None
    assert values["dev-hj"]["tenant"] == "dev_hj"
    assert values["infra-server"]["postgresql_tenants"] == TENANTS == MODEL["tenants"]
    hj = values["dev-hj"]["env"]
    assert hj == {
        "DATABASE_URL": "postgresql://dev_hj:%s@10.10.10.10:5432/dev_hj" % SECRETS["postgresql_dev_hj"],
        "POSTGRES_HOST": "10.10.10.10", "POSTGRES_PORT": "5432", "POSTGRES_DB": "dev_hj", "POSTGRES_USER": "dev_hj",
        "POSTGRES_PASSWORD": SECRETS["postgresql_dev_hj"],
        "REDIS_URL": "redis://:%s@10.10.10.10:6379/1" % SECRETS["redis"],
        "S3_ENDPOINT": "http://10.10.10.10:9000", "S3_BUCKET": "dev-hj", "S3_ACCESS_KEY": "fleet-dev-hj",
        "S3_SECRET_KEY": SECRETS["s3_dev_hj"]}
    assert values["deploy-test"]["env"]["POSTGRES_DB"] == "deploy"
    assert values["deploy-test"]["env"]["REDIS_URL"].endswith("/0")
    assert {"name": "s3_deploy", "length": 24} in values["dev-hj"]["secret_names"]


@pytest.mark.parametrize("extra, ok, message", [
    ({}, False, "refusing to download"),
    ({"minio_checksum": "sha256:" + "ab" * 32}, False, "mc: refusing to download"),
    ({"minio_checksum": "sha256:" + "ab" * 32, "minio_mc_checksum": "sha256:" + "cd" * 32}, True, None),
    ({"minio_checksum": "md5:abc", "minio_mc_checksum": "sha256:" + "cd" * 32}, False, "refusing to download"),
    ({"minio_local_file": "LOCAL", "minio_mc_local_file": "LOCAL"}, True, None),
    ({"minio_local_file": "/nonexistent/minio", "minio_mc_local_file": "LOCAL"}, False, "which does not exist"),
])
def test_minio_preflight(tmp_path, extra, ok, message):
    local = tmp_path / "minio.bin"
    local.write_bytes(b"\x7fELF fake")
    extra = {key: (str(local) if value == "LOCAL" else value) for key, value in extra.items()}
    # The role's own variables override the store the fleet model names.
    extra.update(minio_secrets_file=str(tmp_path / "store.vault.yml"),
                 minio_vault_password_file=str(tmp_path / "vault-pass"), preflight_role="minio")
    result = run_playbook(f"{HERE}/preflight.yml", "-e", json.dumps(extra), inventory=_inventory(tmp_path))
    assert (result.rc == 0) == ok, str(result)
    if message:
        assert message in result.out
    if ok:
        assert (tmp_path / "store.vault.yml").read_bytes().startswith(b"$ANSIBLE_VAULT;")
