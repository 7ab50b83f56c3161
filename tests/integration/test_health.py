"""The nightly health/repair run against each test fleet (both daemons), with real faults injected: a stopped
container, dockerd stopped, backend-api on a default JWT secret, the frontend image deleted,
node-exporter stopped, a failed systemd unit, a dirty checkout and a disk filled near its quota.
Report only, then repair, then a run that finds the fleet healthy; the webhook stand-in gets the
summary and a real headless browser renders the HTML report. Then the faults whose repair must be
judged from outside: a frozen container, a declared service (Redis) stopped by hand, a hung
backend-api (unhealthy), and node-exporter without its executable, a repair that cannot hold."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from conftest import ON_LAB_ONLY, eventually
from playbook_run import REPO

REPORT_DIR = Path("/var/lib/adelie-fleet/health")
ARTIFACTS = REPO / "build" / "test-artifacts"
FAILING_UNIT = """[Unit]
Description=adelie.fleet test: fails until /run/fleet-test-ok exists
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/test -f /run/fleet-test-ok
"""


def report():
    return json.loads((REPORT_DIR / "health.json").read_text())


def kinds(data, node, key="findings"):
    entry = next(n for n in data["nodes"] if n["node"] == node)
    return {f["kind"] for f in entry[key]}


def nightly(each_lab, *args):
    return each_lab.playbook("playbooks/nightly.yml", *args)


@pytest.fixture(scope="module")
def nodes(each_lab):
    by_role = {node["role"]: name for name, node in sorted(each_lab.nodes.items(), reverse=True)}
    return {"stopped": by_role["dev_ai"], "infra": by_role["infra"], "app": by_role["deploy"], "dev": by_role["dev"]}


@pytest.fixture(scope="module")
def faults(each_lab, nodes):
    """Every fault of the issue, each on the node where it does not hide another."""
    app, dev = each_lab.nodes[nodes["app"]]["app_dir"], each_lab.nodes[nodes["dev"]]["app_dir"]
    quota = each_lab.nodes[nodes["dev"]]["disk_bytes"]
    used = each_lab.disk_used(nodes["dev"])
    each_lab.client("stop", "--force", "--project", each_lab.project, nodes["stopped"])
    each_lab.exec(nodes["infra"], "systemctl stop docker.socket docker", check=True)
    each_lab.exec(nodes["app"], "cd %s && sed -i 's/^JWT_SECRET=.*/JWT_SECRET=changeme/' .env && "
                  "docker-compose up -d --force-recreate backend-api && docker-compose rm -sf frontend && "
                  "docker rmi fleet/frontend:local" % app, check=True)
    each_lab.exec(nodes["dev"], "systemctl stop prometheus-node-exporter", check=True)
    each_lab.exec(nodes["dev"], "rm -f /run/fleet-test-ok; cat > /etc/systemd/system/fleet-test-fail.service <<'EOF'\n%sEOF\n"
                  "systemctl daemon-reload; systemctl start fleet-test-fail; touch /run/fleet-test-ok" % FAILING_UNIT)
    each_lab.exec(nodes["dev"], "echo '# local change' >> %s/README.md" % dev, check=True)
    each_lab.exec(nodes["dev"], "fallocate -l %d /root/fill && sync" % int(quota * 0.93 - used), check=True)
    # btrfs counts the quota group at its next commit: wait until LXD sees it.
    eventually(lambda: each_lab.disk_used(nodes["dev"]) > 0.9 * quota, True, timeout=60, interval=2)
    yield nodes
    each_lab.exec(nodes["dev"], "rm -f /root/fill /etc/systemd/system/fleet-test-fail.service /run/fleet-test-ok; "
                  "systemctl reset-failed; git -c safe.directory='*' -C %s checkout -- README.md" % dev)
    each_lab.client("start", "--project", each_lab.project, nodes["stopped"], check=False)


def test_report_only_finds_every_fault_and_changes_nothing(each_lab, faults):
    run = nightly(each_lab, "-e", '{"nightly_repair": []}')
    assert run.rc != 0, "faults are left broken: the run must fail"
    data = report()
    assert "container_stopped" in kinds(data, faults["stopped"])
    assert "dockerd_down" in kinds(data, faults["infra"])
    assert {"jwt_default", "image_missing"} <= kinds(data, faults["app"])
    assert {"service_down", "unit_failed", "git_dirty", "disk_high"} <= kinds(data, faults["dev"])
    assert kinds(data, faults["app"], "repairs") == set() and not any(n["repairs"] for n in data["nodes"])
    # Nothing changed.
    assert each_lab.config(faults["stopped"])
    assert each_lab.client_json("/1.0/instances/%s/state" % faults["stopped"])["status"] == "Stopped"
    assert each_lab.exec(faults["infra"], "systemctl is-active docker").stdout.strip() != "active"
    assert each_lab.exec(faults["app"], "docker image inspect fleet/frontend:local").returncode != 0
    assert "JWT_SECRET=changeme" in each_lab.exec(faults["app"], "cat %s/.env" % each_lab.nodes[faults["app"]]["app_dir"]).stdout
    assert each_lab.exec(faults["dev"], "systemctl is-active prometheus-node-exporter").stdout.strip() != "active"
    assert each_lab.exec(faults["dev"], "systemctl is-failed fleet-test-fail").stdout.strip() == "failed"


def test_repair_fixes_what_is_safe_and_reports_the_rest(each_lab, faults, receiver):
    run = nightly(each_lab)
    # The disk filled near its quota is reported, never cleaned up: the run still fails.
    assert run.rc != 0, str(run)
    data = report()
    repaired = {(n["node"], r["kind"]) for n in data["nodes"] for r in n["repairs"]}
    for node, kind in [(faults["stopped"], "container_stopped"), (faults["infra"], "dockerd_down"),
                       (faults["app"], "image_missing"), (faults["app"], "jwt_default"),
                       (faults["dev"], "service_down"),
                       (faults["dev"], "unit_failed")]:
        assert (node, kind) in repaired, (node, kind, repaired)
    broken = {(n["node"], f["kind"]) for n in data["nodes"] for f in n["broken"]}
    assert broken == {(faults["dev"], "disk_high")}, broken
    # The real state: every repair holds.
    state = each_lab.client_json("/1.0/instances/%s/state" % faults["stopped"])
    assert state["status"] == "Running"
    assert each_lab.exec(faults["infra"], "systemctl is-active docker").stdout.strip() == "active"
    app_dir = each_lab.nodes[faults["app"]]["app_dir"]
    assert "JWT_SECRET=changeme" not in each_lab.exec(faults["app"], "cat %s/.env" % app_dir).stdout
    assert eventually(lambda: each_lab.exec(faults["app"], "docker ps --filter health=healthy --format '{{.Names}}'")
                      .stdout.count("backend-api"), 1, timeout=90, interval=3) == 1
    assert "fleet-app_frontend_1" in each_lab.exec(faults["app"], "docker ps --format '{{.Names}}'").stdout
    assert each_lab.exec(faults["dev"], "systemctl is-active prometheus-node-exporter").stdout.strip() == "active"
    assert each_lab.exec(faults["dev"], "systemctl is-active fleet-test-fail").stdout.strip() == "active"
    # Nothing destructive: the dirty checkout and the big file are still there.
    dev_dir = each_lab.nodes[faults["dev"]]["app_dir"]
    assert "# local change" in each_lab.exec(faults["dev"], "cat %s/README.md" % dev_dir).stdout
    assert each_lab.exec(faults["dev"], "test -f /root/fill").returncode == 0
    # The summary reached the webhook stand-in.
    posts = [p for p in receiver.posts if p[1] == "/nightly"]
    assert posts and faults["dev"] in json.dumps(posts[-1][2]) and "disk" in json.dumps(posts[-1][2]).lower()


def test_html_report_renders_in_a_headless_browser(each_lab, faults):
    browser = shutil.which("chromium-headless-shell") or shutil.which("chromium")
    assert browser, "chromium-headless-shell is installed by `make test-deps`"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = "file://%s" % (REPORT_DIR / "health.html")
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1024"]
    dom = subprocess.run(base + ["--dump-dom", page], capture_output=True, text=True, timeout=120, check=True).stdout
    for name in each_lab.nodes:
        assert name in dom
    assert "<table" in dom and "disk_high" in dom
    shot = ARTIFACTS / "health-report.png"
    subprocess.run(base + ["--screenshot=%s" % shot, page], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 10_000


def test_after_cleanup_the_next_run_finds_the_fleet_healthy(each_lab, faults):
    dev_dir = each_lab.nodes[faults["dev"]]["app_dir"]
    each_lab.exec(faults["dev"], "rm -f /root/fill && sync; git -c safe.directory='*' -C %s checkout -- README.md" % dev_dir,
                  check=True)
    quota = each_lab.nodes[faults["dev"]]["disk_bytes"]
    assert eventually(lambda: each_lab.disk_used(faults["dev"]) < 0.8 * quota, True, timeout=60, interval=2)
    run = nightly(each_lab)
    assert run.rc == 0, str(run)
    data = report()
    assert not any(n["broken"] for n in data["nodes"]), data["summary"]
    assert not any(n["repairs"] for n in data["nodes"]), data["summary"]


EXPORTER = "/usr/bin/prometheus-node-exporter"


def unit_state(each_lab, node, unit):
    return each_lab.exec(node, "systemctl is-active %s" % unit).stdout.strip()


def health_of(each_lab, node, container):
    return each_lab.exec(node, "docker inspect -f '{{.State.Health.Status}}' %s" % container).stdout.strip()


@pytest.fixture(scope="module")
def hard_faults(each_lab, nodes):
    """A frozen container, Redis stopped by hand, backend-api's httpd hung (SIGSTOP: unhealthy until
    restarted), and node-exporter's executable gone (its restart can never hold)."""
    each_lab.client("pause", "--project", each_lab.project, nodes["stopped"])
    each_lab.exec(nodes["infra"], "systemctl stop redis-server", check=True)
    each_lab.exec(nodes["app"], "kill -STOP $(docker top fleet-app_backend-api_1 -o pid,comm | awk '$2 == \"httpd\" {print $1}')",
                  check=True)
    each_lab.exec(nodes["dev"], "mv %s %s.away && systemctl restart prometheus-node-exporter; true" % (EXPORTER, EXPORTER),
                  check=True)
    # Docker marks the container unhealthy after two failed checks (5 s apart, 5 s timeout each).
    assert eventually(lambda: health_of(each_lab, nodes["app"], "fleet-app_backend-api_1"), "unhealthy",
                      timeout=90, interval=3) == "unhealthy"
    yield nodes
    each_lab.exec(nodes["dev"], "test -e %s.away && mv %s.away %s; systemctl reset-failed prometheus-node-exporter; "
                  "systemctl restart prometheus-node-exporter" % (EXPORTER, EXPORTER, EXPORTER))
    each_lab.client("start", "--project", each_lab.project, nodes["stopped"], check=False)  # resumes a frozen container
    each_lab.exec(nodes["infra"], "systemctl start redis-server")


# On the lab's daemon: the other's state actions (start, unfreeze) are the same API call, shown by the
# stopped container's repair above on both.
@ON_LAB_ONLY
def test_repairs_are_judged_from_outside_and_one_that_cannot_hold_fails_the_run(each_lab, hard_faults):
    run = nightly(each_lab)
    assert run.rc != 0, "node-exporter cannot run without its executable: the run must fail"
    data = report()
    records = {(n["node"], r["kind"]): r for n in data["nodes"] for r in n["repairs"]}
    for node, kind in [(hard_faults["stopped"], "container_stopped"), (hard_faults["infra"], "service_down"),
                       (hard_faults["app"], "container_unhealthy")]:
        assert records[(node, kind)]["status"] == "done", (node, kind, records)
    exporter = records[(hard_faults["dev"], "service_down")]
    assert exporter["status"] == "failed", exporter
    assert "prometheus-node-exporter.service" in exporter["message"] and "not active" in exporter["message"]
    states = {n["node"]: n["state"] for n in data["nodes"]}
    assert states[hard_faults["dev"]] == "broken" and states[hard_faults["stopped"]] == "repaired", states
    assert {n["node"] for n in data["nodes"] if n["broken"]} == {hard_faults["dev"]}, data["summary"]
    # What holds is checked here, from outside the sweep: LXD's state, the unit, the port, Docker.
    assert each_lab.client_json("/1.0/instances/%s/state" % hard_faults["stopped"])["status"] == "Running"
    assert each_lab.exec(hard_faults["stopped"], "true").returncode == 0
    assert unit_state(each_lab, hard_faults["infra"], "redis-server") == "active"
    with socket.create_connection((each_lab.address(hard_faults["infra"]), 6379), timeout=5):
        pass
    assert health_of(each_lab, hard_faults["app"], "fleet-app_backend-api_1") == "healthy"
    # The repair that could not hold: the unit is still down, and the report says so in every format.
    assert unit_state(each_lab, hard_faults["dev"], "prometheus-node-exporter") != "active"
    assert "failed" in (REPORT_DIR / "health.md").read_text()
    assert 'adelie_fleet_health_repairs_failed{node="%s",role="dev"} 1' % hard_faults["dev"] in \
        Path("/var/lib/prometheus/node-exporter/adelie_fleet_health.prom").read_text()


def test_schedule_runs_one_nightly_at_a_time(lab):
    try:
        on = lab.playbook("playbooks/schedule.yml", "-e", "nightly_enabled=true", "-e", "nightly_time=04:15")
        assert on.rc == 0, str(on)
        cron = Path("/etc/cron.d/adelie-fleet-nightly").read_text()
        assert "15 4 * * *" in cron and "/usr/local/sbin/adelie-fleet-nightly" in cron
        # The lock: while one run holds it, the next one gives up at once (exit 75) instead of overlapping.
        holder = subprocess.Popen(["flock", "/run/adelie-fleet-nightly.lock", "sleep", "30"])
        try:
            def lock_free():
                return subprocess.run(["flock", "-n", "/run/adelie-fleet-nightly.lock", "true"], check=False).returncode

            eventually(lock_free, 1, timeout=5, interval=0.2)
            second = subprocess.run(["/usr/local/sbin/adelie-fleet-nightly"], capture_output=True, text=True, timeout=20,
                                    check=False)
            assert second.returncode == 75, (second.returncode, second.stdout, second.stderr)
        finally:
            holder.kill()
            holder.wait()
    finally:
        off = lab.playbook("playbooks/schedule.yml", "-e", "nightly_enabled=false")
        assert off.rc == 0, str(off)
    assert not Path("/etc/cron.d/adelie-fleet-nightly").exists()
