"""Shared services on the test fleet's infra node, for real: PostgreSQL, Redis, the exporters and the
backups (MinIO cannot be obtained here). Reached as the teammates' apps reach them: over the bridge,
with the settings the collection wrote into each app's .env."""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import eventually
from playbook_run import REPO

SECRETS = Path("~/.config/adelie-fleet/fleet-test-shared-services.vault.yml").expanduser()
VAULT_PASS = Path("~/.config/adelie-fleet/vault-pass").expanduser()
# A network namespace on the bridge with an address outside the fleet's subnet.
OUTSIDE_NS, OUTSIDE_ADDRESS = "fleet-test-outside", "10.99.0.2"
# A PostgreSQL StartupMessage, answered by an ErrorResponse ('E') or an authentication request ('R').
PG_PROBE = """
import socket, struct, sys
host, user, db = sys.argv[1:4]
body = struct.pack('!i', 196608) + b'user\\0' + user.encode() + b'\\0database\\0' + db.encode() + b'\\0\\0'
with socket.create_connection((host, 5432), timeout=5) as s:
    s.sendall(struct.pack('!i', len(body) + 4) + body)
    print(s.recv(4096).decode(errors='replace'))
"""


def dotenv(lab, node):
    """The app's .env of a node, as a dict."""
    text = lab.exec(node, "cat %s/.env" % shlex.quote(lab.nodes[node]["app_dir"]), check=True).stdout
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def secrets():
    out = subprocess.run([str(REPO / ".venv/bin/ansible-vault"), "view", "--vault-password-file", str(VAULT_PASS),
                          str(SECRETS)], capture_output=True, text=True, check=True).stdout
    return out


def psql(lab, node, sql, db="postgres"):
    """SQL as PostgreSQL's superuser on the infra node (local socket)."""
    return lab.exec(node, "runuser -u postgres -- psql -XAtq -d %s -c %s" % (db, shlex.quote(sql)))


@pytest.fixture(scope="module")
def infra(lab):
    return lab.monitoring_node


@pytest.fixture(scope="module")
def members(lab):
    """(node, login) of the two teammates."""
    return sorted((name, node["member"]["login"]) for name, node in lab.nodes.items() if node.get("member"))[:2]


@pytest.fixture(scope="module")
def client(lab, members):
    """The first teammate's node with PostgreSQL's client (what the teammate would install)."""
    node = members[0][0]
    lab.exec(node, "command -v psql || DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q "
             "--no-install-recommends postgresql-client", check=True)
    return node


def test_a_teammate_reaches_their_own_database_only(lab, infra, members, client):
    (node, login), (_other_node, other) = members
    env = dotenv(lab, node)
    assert env["DATABASE_URL"].startswith("postgresql://dev_%s:" % login)
    assert "@%s:5432/dev_%s" % (lab.address(infra), login) in env["DATABASE_URL"]
    own = lab.exec(node, "psql %s -XAtc 'select current_user'" % shlex.quote(env["DATABASE_URL"]), user=login)
    assert own.returncode == 0 and own.stdout.strip() == "dev_" + login, own.stderr
    # The same role, the other teammate's database: refused by pg_hba.conf.
    other_url = env["DATABASE_URL"].rsplit("/", 1)[0] + "/dev_" + other
    theirs = lab.exec(node, "psql %s -XAtc 'select 1'" % shlex.quote(other_url), user=login)
    assert theirs.returncode != 0 and "no pg_hba.conf entry" in theirs.stderr, theirs.stderr


@pytest.fixture()
def outside(lab):
    """A namespace plugged into the fleet bridge with an address outside the fleet's subnet."""
    def run(*cmd):
        return subprocess.run(cmd, capture_output=True, text=True, check=False)

    run("ip", "netns", "add", OUTSIDE_NS)
    run("ip", "link", "add", "ft-out0", "type", "veth", "peer", "name", "ft-out1")
    run("ip", "link", "set", "ft-out1", "netns", OUTSIDE_NS)
    run("ip", "link", "set", "ft-out0", "master", "fleetbr0", "up")
    run("ip", "-n", OUTSIDE_NS, "addr", "add", OUTSIDE_ADDRESS + "/24", "dev", "ft-out1")
    run("ip", "-n", OUTSIDE_NS, "link", "set", "ft-out1", "up")
    run("ip", "-n", OUTSIDE_NS, "route", "add", "10.10.10.0/24", "dev", "ft-out1")
    # The infra node answers through its gateway, the host: route the outside address to the bridge.
    run("ip", "route", "add", OUTSIDE_ADDRESS + "/32", "dev", "fleetbr0")
    try:
        yield ["ip", "netns", "exec", OUTSIDE_NS]
    finally:
        run("ip", "route", "del", OUTSIDE_ADDRESS + "/32", "dev", "fleetbr0")
        run("ip", "link", "del", "ft-out0")
        run("ip", "netns", "del", OUTSIDE_NS)


def test_postgresql_refuses_a_client_outside_the_fleet_subnet(lab, infra, members, outside):
    login = members[0][1]
    probe = subprocess.run(outside + ["python3", "-c", PG_PROBE, lab.address(infra), "dev_" + login, "dev_" + login],
                           capture_output=True, text=True, timeout=30, check=False)
    # The server answers (the port is reachable from there) but with an error, not a password request.
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.startswith("E") and "no pg_hba.conf entry" in probe.stdout, probe.stdout
    # From inside the subnet the same startup gets a password request.
    inside = subprocess.run(["python3", "-c", PG_PROBE, lab.address(infra), "dev_" + login, "dev_" + login],
                            capture_output=True, text=True, timeout=30, check=False)
    assert inside.stdout.startswith("R"), inside.stdout


def test_redis_refuses_an_unauthenticated_command(lab, infra, members):
    with socket.create_connection((lab.address(infra), 6379), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(1024).startswith(b"-NOAUTH")
    # The teammate's settings authenticate.
    url = dotenv(lab, members[0][0])["REDIS_URL"]
    password, rest = url.split("://:", 1)[1].split("@", 1)
    with socket.create_connection((lab.address(infra), 6379), timeout=5) as sock:
        sock.sendall(b"AUTH %s\r\nPING\r\n" % password.encode())
        answer, deadline = b"", time.monotonic() + 5
        while answer.count(b"\r\n") < 2 and time.monotonic() < deadline:
            answer += sock.recv(1024)
        assert answer == b"+OK\r\n+PONG\r\n", answer
    assert rest.startswith("%s:6379/" % lab.address(infra))


def test_exporters_are_scraped(lab):
    for job in ("postgres", "redis"):
        health = eventually(lambda: lab.target_health(job), {lab.monitoring_node: "up"}, timeout=45)
        assert health == {lab.monitoring_node: "up"}, job
    assert lab.query("pg_up")[0]["value"][1] == "1"
    assert lab.query("redis_up")[0]["value"][1] == "1"


def test_backup_then_restore_one_database_leaves_the_others(lab, infra, members):
    mine, other = "dev_" + members[0][1], "dev_" + members[1][1]
    for db in (mine, other):
        assert psql(lab, infra, "drop table if exists t; create table t (i int); insert into t values (1)", db).returncode == 0
    backup = lab.playbook("playbooks/backup_db.yml")
    assert backup.rc == 0, str(backup)
    psql(lab, infra, "delete from t; insert into t values (2)", mine)
    psql(lab, infra, "insert into t values (99)", other)
    restore = lab.playbook("playbooks/restore_db.yml", "-e", "db=" + mine)
    assert restore.rc == 0, str(restore)
    assert psql(lab, infra, "select i from t order by i", mine).stdout.split() == ["1"]
    assert psql(lab, infra, "select i from t order by i", other).stdout.split() == ["1", "99"]
    # Refused before anything changes: an unknown database, a stamp with no backup.
    unknown = lab.playbook("playbooks/restore_db.yml", "-e", "db=nosuchdb")
    assert unknown.rc != 0 and "nosuchdb" in unknown.out
    assert psql(lab, infra, "select i from t order by i", mine).stdout.split() == ["1"]
    metrics = lab.exec(infra, "cat /var/lib/prometheus/node-exporter/adelie_fleet_backup.prom").stdout
    assert 'adelie_fleet_backup_last_success_timestamp_seconds{db="%s"}' % mine in metrics
    # The nightly health run reports the age of each database's last good backup.
    nightly = lab.playbook("playbooks/nightly.yml", "-e", '{"nightly_repair": []}')
    summary = json.loads(Path("/var/lib/adelie-fleet/health/health.json").read_text())["summary"]
    assert re.search(r"Last good backups: .*%s 0\.[0-2] h ago \(%s\)" % (mine, infra), summary), (nightly.out[-2000:], summary)


def test_env_gets_only_the_keys_it_lacks(lab, members):
    node, login = members[1]
    path = "%s/.env" % lab.nodes[node]["app_dir"]
    lab.exec(node, "sed -i 's|^DATABASE_URL=.*|DATABASE_URL=postgresql://custom|; /^REDIS_URL=/d' %s" % path, check=True)
    before = lab.exec(node, "cat %s" % path).stdout
    run = lab.playbook("playbooks/shared_services.yml")
    assert run.rc == 0, str(run)
    after = dotenv(lab, node)
    assert after["DATABASE_URL"] == "postgresql://custom"
    assert after["REDIS_URL"].startswith("redis://")
    assert lab.exec(node, "cat %s" % path).stdout.startswith(before.rstrip("\n"))


def test_no_password_in_verbose_output_or_in_the_repository(lab):
    store = SECRETS.read_text()
    assert store.startswith("$ANSIBLE_VAULT") and oct(SECRETS.stat().st_mode & 0o777) == "0o600"
    values = list(yaml.safe_load(secrets())["secrets"].values())
    assert len(values) >= 3, "the store holds the tenants' passwords"
    run = lab.playbook("playbooks/shared_services.yml", "-vvv")
    assert run.rc == 0, run.out[-3000:]
    check = lab.playbook("playbooks/shared_services.yml", "--check", "--diff")
    assert check.rc == 0 and check.changed_hosts() == {}, str(check)
    for value in values:
        assert value not in run.out and value not in check.out
        hits = subprocess.run(["git", "grep", "-F", "-l", value], cwd=REPO, capture_output=True, text=True, check=False)
        assert hits.stdout == "", hits.stdout
