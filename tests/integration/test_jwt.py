"""The JWT incident: a default secret leaves backend-api unhealthy; rotate_jwt.yml brings it back."""

from __future__ import annotations

import re
import time

import pytest
from conftest import eventually

pytestmark = pytest.mark.integration

HEALTH = ("docker inspect --format '{{.State.Health.Status}}' "
          "$(docker ps -q --filter label=com.docker.compose.project=fleet-app "
          "--filter label=com.docker.compose.service=backend-api)")


def health(lab, node):
    return lab.exec(node, HEALTH).stdout.strip()


def wait_for(lab, node, status, timeout=60):
    return eventually(lambda: health(lab, node), status, timeout=timeout, interval=2)


def app_nodes(lab):
    """The teammates' nodes (dev, dev_ai) and their app checkouts: the fleet's JWT secrets."""
    return {name: node["app_dir"] for name, node in sorted(lab.nodes.items()) if node["role"].startswith("dev")}


def env_lines(lab, node):
    return lab.exec(node, "cat %s/.env" % lab.nodes[node]["app_dir"], check=True).stdout.splitlines()


def set_secret(lab, node, value):
    """Put a weak secret in place by hand, as the incident had it, and recreate the backend."""
    app = lab.nodes[node]["app_dir"]
    lab.exec(node, "sed -i 's/^JWT_SECRET=.*/JWT_SECRET=%s/' %s/.env && cd %s && "
             "docker-compose -p fleet-app up -d --no-deps --force-recreate backend-api" % (value, app, app), check=True)


# Names the shared services write into .env that are no secret: the tenant's database and role are named
# after the teammate (dev_<login>) and appear in the runs' task labels.
PUBLIC_KEYS = {"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_HOST", "POSTGRES_PORT", "S3_BUCKET", "S3_ENDPOINT"}


def env_values(lab):
    """Every value of every app node's .env but the public names (long enough not to occur by chance)."""
    return {line.split("=", 1)[1].strip().strip("'\"") for node in app_nodes(lab) for line in env_lines(lab, node)
            if "=" in line and not line.lstrip().startswith("#")
            and line.split("=", 1)[0].strip() not in PUBLIC_KEYS} - {""}


def test_check_diff_shows_no_value_of_any_env(lab):
    """--check --diff of a rotation (which has a diff to show) and of the whole site (make check):
    key names at most, never a value of any .env, here a database password among them."""
    password = "hunter2-%d" % time.time_ns()
    first = next(iter(app_nodes(lab)))
    secret_line = next(line for line in env_lines(lab, first) if line.startswith("JWT_SECRET="))
    for node, app in app_nodes(lab).items():
        lab.exec(node, "printf 'DB_URL=postgres://app:%s@10.10.10.210/app\\n' >> %s/.env" % (password, app),
                 check=True)
    set_secret(lab, first, "changeme")
    try:
        values = {value for value in env_values(lab) if len(value) >= 6}
        assert "changeme" in values and any(password in value for value in values)
        rotation = lab.playbook("playbooks/rotate_jwt.yml", "--check", "--diff")
        site = lab.playbook("site.yml", "--check", "--diff")
        for result in (rotation, site):
            assert result.rc == 0, str(result)
            leaked = sorted(value for value in values if value in result.out)
            assert not leaked, "values of .env in the output: %s" % leaked
        assert "JWT_SECRET" in rotation.out and "<redacted" in rotation.out, str(rotation)
    finally:
        for node, app in app_nodes(lab).items():
            lab.exec(node, "sed -i '/^DB_URL=postgres:\\/\\/app:hunter2-/d' %s/.env" % app)
        # The secret it had, and its backend healthy again: the tests after this one find the app as it was.
        set_secret(lab, first, secret_line.split("=", 1)[1])


def test_default_secret_is_unhealthy_and_rotation_heals_it(each_lab):
    lab = each_lab
    first, second = app_nodes(lab)
    weak = {first: "changeme", second: "short-but-unique-4711"}
    for node, value in weak.items():
        set_secret(lab, node, value)
    before = {node: [line for line in env_lines(lab, node) if not line.startswith("JWT_SECRET")] for node in weak}
    for node in weak:
        assert wait_for(lab, node, "unhealthy") == "unhealthy"

    started = time.monotonic()
    result = lab.playbook("playbooks/rotate_jwt.yml", "-vvv")
    seconds = time.monotonic() - started
    assert result.rc == 0, str(result)
    assert re.search(r"%s\s+default\s+rotated, backend-api healthy" % first, result.out), str(result)
    assert re.search(r"%s\s+too_short\s+rotated, backend-api healthy" % second, result.out), str(result)
    assert re.search(r"%s\s+-\s+no /opt/fleet-app/.env" % lab.first("infra"), result.out), str(result)

    for node in weak:
        assert health(lab, node) == "healthy"
        lines = env_lines(lab, node)
        secret = [line.split("=", 1)[1] for line in lines if line.startswith("JWT_SECRET=")]
        assert len(secret) == 1 and re.fullmatch(r"[0-9a-f]{64}", secret[0])
        # Neither the new nor the old secret is ever printed, even at -vvv.
        assert secret[0] not in result.out
        assert weak[node] not in result.out
        # Every other line is kept, in order; the rotation time is recorded beside the secret.
        assert [line for line in lines if not line.startswith("JWT_SECRET")] == before[node]
        assert len([line for line in lines if line.startswith("JWT_SECRET_ROTATED_AT=")]) == 1
        assert lab.exec(node, "stat -c %%a %s/.env" % lab.nodes[node]["app_dir"]).stdout.strip() == "600"
    print("fleet-wide rotation with recreate and health waits: %.1f s" % seconds)

    again = lab.playbook("playbooks/rotate_jwt.yml")
    assert again.rc == 0, str(again)
    assert again.changed_hosts() == {}
    assert re.search(r"%s\s+ok\s+unchanged" % first, again.out)
