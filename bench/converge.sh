#!/usr/bin/env bash
# Converge timings of the lab fleet on this machine. It RECREATES the lab's containers
# (inventories/lab, LXD project of fleet_project) several times: run it on a lab you can rebuild.
# Prints one line per figure: name, seconds, and the recap's changed count; keeps the figures in
# build/bench/figures for bench/summary.py (the goals, at the end of make bench).
# In order: the lab cold (image cached) and re-run; the node layer cold and re-run; the lab cold
# with the image built again; the direct-apt floor of the node layer on those fresh nodes
# (bench/apt_floor.sh); the node layer cold again on fresh nodes, against the floor; observability
# cold and re-run; site.yml's converging run (the shared services layer's first); the idempotent
# site.yml under three executors (bench/executors.sh: a failed executor is reported and the bench
# goes on, summary.py then exits 1); site.yml --check --diff; onboarding; JWT rotation; plan.yml;
# the transport check. The lab is left converged.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
: >"$BENCH_FIGURES"
export INVENTORY=${INVENTORY:-inventories/lab}
PLAY=(ansible-playbook -i "$INVENTORY")
project=$(ansible -i "$INVENTORY" localhost -m ansible.builtin.debug -a var=fleet_project -o | sed 's/.*"fleet_project": "\([^"]*\)".*/\1/')
image=$(ansible -i "$INVENTORY" localhost -m ansible.builtin.debug -a var=fleet_image -o | sed 's/.*"fleet_image": "\([^"]*\)".*/\1/')
nodes=$(ansible -i "$INVENTORY" fleet --list-hosts | tail -n +2)

delete_containers() {
    for node in $nodes; do "$CLI" delete --force --project "$project" "$node" 2>/dev/null || true; done
}

quietly "host.yml before the bench" "${PLAY[@]}" playbooks/host.yml
delete_containers
timed "lab cold converge, image cached" "${PLAY[@]}" playbooks/host.yml playbooks/fleet.yml
timed "lab idempotent re-run" "${PLAY[@]}" playbooks/host.yml playbooks/fleet.yml
# The nodes are as the image made them: what it has manually installed, for the floor's lists.
bench/apt_floor.sh image

timed "node layer cold (docker, toolchain, app), 1st" "${PLAY[@]}" playbooks/nodes.yml
record node_cold_1
timed "node layer idempotent re-run" "${PLAY[@]}" playbooks/nodes.yml
# What the node layer installed on each node (printed), and the apt settings it wrote.
bench/apt_floor.sh layer

delete_containers
"$CLI" image delete "$image" 2>/dev/null || true
rm -rf /var/cache/adelie-fleet/images
timed "lab cold converge, image not cached" "${PLAY[@]}" playbooks/host.yml playbooks/fleet.yml

# The floor on these fresh nodes; then fresh nodes again for the node layer's second cold run.
bench/apt_floor.sh install
delete_containers
quietly "lab cold converge (fresh nodes after the floor)" "${PLAY[@]}" playbooks/host.yml playbooks/fleet.yml
timed "node layer cold (docker, toolchain, app), 2nd" "${PLAY[@]}" playbooks/nodes.yml
record node_cold_2
read -r best _ < <(best_of '^node_cold_[12]$')
record_value node_cold_best "$best"
awk -v n="$best" -v f="$(figure floor)" 'BEGIN {printf "%-60s %7.1f s   floor %.1f s: x%.2f (goal: at most x1.5)\n",
    "node layer cold, best of 2, against the direct-apt floor", n, f, n / f}'

timed "observability layer cold" "${PLAY[@]}" playbooks/observability.yml
timed "observability layer idempotent re-run" "${PLAY[@]}" playbooks/observability.yml
# The first site.yml over the new nodes: the shared services layer's cold run, the rest converged.
timed "site.yml converging run (shared services layer cold)" "${PLAY[@]}" site.yml

# The idempotent site.yml: before the pre-read layer went, plain modules, plain modules under Mitogen.
bench/executors.sh || echo "bench/executors.sh: a run FAILED (above); the bench goes on"

# Under ansible.cfg's strategy (an ANSIBLE_STRATEGY of the caller's environment is left out).
strategy=$(env -u ANSIBLE_STRATEGY ansible-config dump | sed -n 's/^DEFAULT_STRATEGY([^)]*) = //p')
record_value default_strategy "$strategy"
timed "site.yml --check --diff (ansible.cfg's strategy: $strategy)" env -u ANSIBLE_STRATEGY "${PLAY[@]}" site.yml --check --diff
record check_diff

# Onboarding a sixth developer: container + account (node layer excluded, as the goal states).
newbie=$(mktemp --suffix=.yml)
cat >"$newbie" <<'YAML'
all:
  children:
    fleet:
      children:
        dev:
          hosts:
            dev-benchnew:
              fleet_ipv4: 10.10.10.39
              fleet_member: {login: benchnew, name: Bench Newcomer, email: benchnew@adelie.invalid}
YAML
timed "onboard one teammate (container + account)" "${PLAY[@]}" -i "$newbie" playbooks/onboard.yml -e member=benchnew --skip-tags node_layer
# From the end of that run until Prometheus has scraped the newcomer's exporter (file_sd, no restart).
prometheus=$(ansible -i "$INVENTORY" infra -m ansible.builtin.debug -a var=fleet_ipv4 -o | sed 's/.*"fleet_ipv4": "\([^"]*\)".*/\1/' | head -n 1)
python3 - "$prometheus" dev-benchnew <<'PY'
import json, sys, time, urllib.request
start, (address, node) = time.monotonic(), sys.argv[1:]
while time.monotonic() - start < 120:
    with urllib.request.urlopen("http://%s:9090/api/v1/targets?state=active" % address, timeout=5) as r:
        if any(t["labels"].get("node") == node and t["health"] == "up" for t in json.load(r)["data"]["activeTargets"]):
            break
    time.sleep(0.2)
print("%-60s %7.1f s   (goal: scrape interval 15 s + 5 s)" % ("onboarding end -> new node's target up", time.monotonic() - start))
PY
"$CLI" delete --force --project "$project" dev-benchnew
rm -f "$newbie"

# The JWT incident on every dev node: a default secret, then one fleet-wide rotation.
if [ -f playbooks/rotate_jwt.yml ]; then
    # shellcheck disable=SC2016  # $f expands on the nodes
    ansible -i "$INVENTORY" fleet -m ansible.builtin.shell \
        -a 'for f in /home/*/app/.env; do [ -f "$f" ] && sed -i "s/^JWT_SECRET=.*/JWT_SECRET=changeme/" "$f"; done; true' >/dev/null
    timed "fleet-wide JWT rotation (recreate + health)" "${PLAY[@]}" playbooks/rotate_jwt.yml
fi
timed "plan.yml on the production inventory" ansible-playbook -i inventories/production playbooks/plan.yml

# The node layer's transport: 2,000 commands over the lab's nodes in parallel, SSH (what the
# playbooks use) beside LXD's REST exec with recorded output and the client's exec (what they used
# before): both lose outputs here, the client's exec also hangs.
python bench/transport.py -i "$INVENTORY" --via ssh ansible rest cli --commands 2000 --timeout 30

# The same stress on each daemon over fleets of the same four nodes: the integration suite's two test
# fleets, on the lab's daemon and on the other one (Incus beside an LXD lab). Left converged: the suite
# removes and rebuilds them when it starts.
for fleet in tests/integration/inventory tests/integration/inventory_other; do
    quietly "converge $fleet" ansible-playbook -i "$fleet" site.yml
    python bench/transport.py -i "$fleet" --via ssh rest cli --commands 2000 --timeout 30
done
