"""Observability against the test fleets: real node-exporters, the daemon's metrics endpoint, Prometheus and
Alertmanager on the infra node, and a real HTTP listener on the LXD host's bridge address standing in
for the Discord webhook (tests/integration/inventory sets alertmanager_discord_webhook_url to it)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import GATEWAY, ON_LAB_ONLY, eventually

REPO = Path(__file__).resolve().parents[2]
SCRAPE_INTERVAL = 15


def alerts(lab, name):
    """Prometheus's alerts of that name: {node: state}."""
    return {a["labels"].get("node"): a["state"] for a in lab.api("/api/v1/alerts")["data"]["alerts"]
            if a["labels"]["alertname"] == name}


# Takes memory in 8 MiB steps until the container (lxcfs shows its limit) has 4 % left, then holds it.
MEMORY_HOG = """import time
def available():
    info = dict(line.split(':', 1) for line in open('/proc/meminfo'))
    return int(info['MemAvailable'].split()[0]) / int(info['MemTotal'].split()[0])
hog = []
while available() > 0.04:
    hog.append(bytearray(b'x') * (8 << 20))
time.sleep(400)
"""


def test_every_exporter_and_lxd_endpoint_is_up(each_lab):
    # Every node and the LXD host.
    wanted = {name: "up" for name in each_lab.nodes} | {"localhost": "up"}
    assert eventually(lambda: each_lab.target_health("node"), wanted, timeout=2 * SCRAPE_INTERVAL + 5) == wanted
    assert eventually(lambda: each_lab.target_health("lxd"), {None: "up"}, timeout=2 * SCRAPE_INTERVAL + 5) == {None: "up"}
    # Nothing of these jobs is down. A target just removed (test_lifecycle offboards a node) keeps its
    # last `up` until Prometheus marks it stale, one to two scrape intervals after its removal.
    down = eventually(lambda: each_lab.query('up{job=~"node|lxd|prometheus|alertmanager"} != 1'), [],
                      timeout=3 * SCRAPE_INTERVAL + 5)
    assert down == [], down
    assert {s["metric"]["job"] for s in each_lab.query('up{job=~"node|lxd|prometheus|alertmanager"} == 1')} \
        == {"node", "lxd", "prometheus", "alertmanager"}
    # The daemon's figures arrive per container, renamed to the fleet's `node` label. A container just
    # deleted (test_lifecycle's newcomer) leaves its series until the next scrapes mark them stale.

    def memory():
        return {s["metric"]["node"] for s in each_lab.query("lxd_memory_MemTotal_bytes")}

    assert eventually(memory, set(each_lab.nodes), timeout=3 * SCRAPE_INTERVAL + 5) == set(each_lab.nodes)


def test_quotas_from_the_model_are_published(each_lab):
    # Labelled by project: another fleet on this host (the each_lab of `make up`) publishes its own.
    project = '{project="%s"}' % each_lab.project
    memory = {s["metric"]["node"]: int(float(s["value"][1]))
              for s in each_lab.query("adelie_fleet_quota_memory_bytes" + project)}
    assert {name: node["memory_bytes"] for name, node in each_lab.nodes.items()} == memory
    cpu = {s["metric"]["node"]: int(float(s["value"][1])) for s in each_lab.query("adelie_fleet_quota_cpu" + project)}
    assert {name: node["cpu"] for name, node in each_lab.nodes.items()} == cpu
    # LXD's own memory total is the limit, and agrees with the model's quota.
    ratio = each_lab.query("lxd_memory_MemTotal_bytes / on (project, node) adelie_fleet_quota_memory_bytes")
    assert {s["metric"]["node"] for s in ratio} == set(each_lab.nodes) and all(s["value"][1] == "1" for s in ratio)

    # Each container's real root-disk use, what LXD reports for it (its quota group), not the pool's
    # size that LXD's metrics and df show. The publisher refreshes it every 60 s.
    def published():
        return {s["metric"]["node"]: float(s["value"][1]) for s in each_lab.query("adelie_fleet_disk_used_bytes" + project)}

    def lxd_usage():
        return {name: each_lab.disk_used(name) for name in each_lab.nodes}

    def agrees():
        now, live = published(), lxd_usage()
        return set(now) == set(live) and all(abs(now[n] - live[n]) <= max(64 << 20, 0.1 * live[n]) for n in live)

    # Two refreshes and a margin: the test before may have just freed disk (the health sweep's fill).
    assert eventually(agrees, True, timeout=135, interval=5), (published(), lxd_usage())
    assert all(0 < used < each_lab.nodes[name]["disk_bytes"] for name, used in published().items()), published()
    joined = each_lab.query("adelie_fleet_disk_used_bytes%s / on (project, node) group_left adelie_fleet_quota_disk_bytes" % project)
    assert {s["metric"]["node"] for s in joined} == set(each_lab.nodes)


def test_every_rule_and_dashboard_query_evaluates(each_lab):
    groups = eventually(lambda: len(each_lab.api("/api/v1/rules")["data"]["groups"]) > 0, True, timeout=30)
    assert groups
    rules = [rule for group in each_lab.api("/api/v1/rules")["data"]["groups"] for rule in group["rules"]]
    names = {rule["name"] for rule in rules}
    assert {"NodeDown", "ContainerMemoryNearQuota", "ContainerCpuHigh", "ContainerDiskNearQuota"} <= names

    # Prometheus evaluated each rule at least once, without error.
    def all_evaluated():
        return all(r.get("lastEvaluation", "0001").startswith("20")
                   for g in each_lab.api("/api/v1/rules")["data"]["groups"] for r in g["rules"])

    evaluated = eventually(all_evaluated, True, timeout=40)
    assert evaluated
    for rule in (r for g in each_lab.api("/api/v1/rules")["data"]["groups"] for r in g["rules"]):
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
    # The test inventory's prometheus_alert_for changed those alerts' durations, and only theirs.
    durations = {r["name"]: r.get("duration") for g in each_lab.api("/api/v1/rules")["data"]["groups"]
                 for r in g["rules"] if r["type"] == "alerting"}
    assert durations["NodeDown"] == durations["ContainerMemoryNearQuota"] == 15, durations
    assert durations["ServiceDown"] == 60 and durations["ContainerCpuHigh"] == 600, durations
    # Every provisioned dashboard panel's query, against the live Prometheus.
    import dashboards

    checked = 0
    for path in sorted((REPO / "roles/grafana/files/dashboards").glob("*.json")):
        for title, expr in dashboards.panel_queries(path):
            result = each_lab.api("/api/v1/query", query=expr)
            assert result["status"] == "success", (path.name, title, expr)
            checked += 1
    assert checked >= 12


def test_one_phase_of_prometheus_run_alone_keeps_its_configuration(lab):
    """`--tags prometheus_configure` alone: the model and LXD's metrics endpoint are still read, so the
    converged configuration stands (its LXD job once went missing from such a run)."""
    result = lab.playbook("playbooks/observability.yml", "--tags", "prometheus_configure", "--check", "--diff")
    assert result.rc == 0 and result.changed_hosts() == {}, str(result)


def test_monitoring_ports_answer_only_on_the_bridge(lab):
    addresses = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    others = [line.split()[3].split("/")[0] for line in addresses.splitlines()
              if " fleetbr0 " not in " %s " % line.split()[1]]
    assert others, addresses
    for address in others:
        for port in (9100, 8444):
            with socket.socket() as sock:
                sock.settimeout(2)
                assert sock.connect_ex((address, port)) != 0, "%s:%d answers outside the fleet bridge" % (address, port)
    with socket.create_connection((GATEWAY, 9100), timeout=5):
        pass
    # Inside the nodes too: each service is bound to the node's bridge address, not to every interface.
    infra = lab.monitoring_node
    listening = lab.exec(infra, "ss -Hltn").stdout
    for port in (9090, 9093, 9100):
        bound = [line.split()[3] for line in listening.splitlines() if line.split()[3].endswith(":%d" % port)]
        assert bound == ["%s:%d" % (lab.address(infra), port)], (port, listening)
    assert ":9094" not in listening  # Alertmanager's cluster gossip is off


@pytest.fixture(scope="module")
def faults(each_lab, receiver):
    """Two faults at once (their alerts' `for` runs concurrently): node-exporter stopped on one dev
    node, most of another's memory quota taken by a process."""
    # The first two dev nodes (the other daemon's fleet has one: then its next node but the infra one).
    dev = sorted(name for name, node in each_lab.nodes.items() if node["role"].startswith("dev"))
    down, full = (dev + sorted(set(each_lab.nodes) - set(dev) - {each_lab.monitoring_node}))[:2]
    started = time.time()
    each_lab.exec(down, "systemctl stop prometheus-node-exporter", check=True)
    each_lab.exec(full, "cat > /root/memory-hog.py <<'EOF'\n%sEOF" % MEMORY_HOG, check=True)
    each_lab.exec(full, "systemd-run --unit=memory-hog --collect timeout 400 python3 /root/memory-hog.py", check=True)
    try:
        yield {"down": down, "full": full, "started": started}
    finally:
        each_lab.exec(full, "systemctl stop memory-hog; rm -f /root/memory-hog.py")
        each_lab.exec(down, "systemctl start prometheus-node-exporter")


# Alertmanager's routing does not depend on the daemon: the quota alert below runs on both.
@ON_LAB_ONLY
def test_node_down_alert_reaches_the_discord_receiver_and_resolves(each_lab, receiver, faults):
    down = faults["down"]
    assert eventually(lambda: alerts(each_lab, "NodeDown").get(down), "firing", timeout=150, interval=2) == "firing"
    fired = time.time()
    # Critical: no group wait, so the webhook gets it within one evaluation and a notification.

    def arrived():
        return [p for p in receiver.posts
                if p[1] == "/discord" and down in json.dumps(p[2]) and "FIRING" in json.dumps(p[2])]

    posts = eventually(lambda: bool(arrived()), True, timeout=30, interval=1)
    assert posts, receiver.posts
    assert arrived()[0][0] - fired < SCRAPE_INTERVAL + 10
    assert set(alerts(each_lab, "NodeDown")) == {down}
    # Alertmanager's own view: the alert went to the critical receiver.
    am_alerts = each_lab.api("/api/v2/alerts", port=9093)
    receivers = {r["name"] for a in am_alerts if a["labels"]["alertname"] == "NodeDown" for r in a["receivers"]}
    assert receivers and all("critical" in name for name in receivers), am_alerts
    # Started again: Prometheus resolves it, and the receiver hears so.
    each_lab.exec(down, "systemctl start prometheus-node-exporter", check=True)
    assert eventually(lambda: alerts(each_lab, "NodeDown").get(down), None, timeout=60, interval=2) is None
    resolved = eventually(lambda: any(p[1] == "/discord" and down in json.dumps(p[2]) and "RESOLVED" in json.dumps(p[2])
                                      for p in receiver.posts), True, timeout=90, interval=2)
    assert resolved, receiver.posts


def test_memory_near_quota_fires_for_that_node_only(each_lab, faults):
    full = faults["full"]
    assert eventually(lambda: alerts(each_lab, "ContainerMemoryNearQuota").get(full), "firing",
                      timeout=240, interval=3) == "firing"
    assert set(alerts(each_lab, "ContainerMemoryNearQuota")) == {full}
