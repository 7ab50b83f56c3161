#!/usr/bin/env bash
# Converge timings of the lab fleet on this machine. It RECREATES the lab's containers
# (inventories/lab, LXD project of fleet_project): run it on a lab you can rebuild.
# Prints one line per figure: name, seconds, and the recap's changed count.
set -euo pipefail
cd "$(dirname "$0")/.."
# The checkout's venv first, also when the script is run on its own (not through make bench).
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_NOCOLOR=1
INVENTORY=${INVENTORY:-inventories/lab}
PLAY=(ansible-playbook -i "$INVENTORY")
project=$(ansible -i "$INVENTORY" localhost -m ansible.builtin.debug -a var=fleet_project -o | sed 's/.*"fleet_project": "\([^"]*\)".*/\1/')
image=$(ansible -i "$INVENTORY" localhost -m ansible.builtin.debug -a var=fleet_image -o | sed 's/.*"fleet_image": "\([^"]*\)".*/\1/')
nodes=$(ansible -i "$INVENTORY" fleet --list-hosts | tail -n +2)

# timed NAME COMMAND...: run it, print seconds and how many tasks changed.
timed() {
    local name=$1; shift
    local log; log=$(mktemp)
    local start; start=$(date +%s.%N)
    "$@" >"$log" 2>&1 || { tail -n 40 "$log"; echo "$name: FAILED"; exit 1; }
    local end; end=$(date +%s.%N)
    local changed; changed=$(awk '/ changed=/ {sub(/.*changed=/, ""); sum += $1} END {print sum + 0}' "$log")
    awk -v n="$name" -v s="$start" -v e="$end" -v c="$changed" 'BEGIN {printf "%-44s %7.1f s   changed=%s\n", n, e - s, c}'
    rm -f "$log"
}

delete_containers() {
    for node in $nodes; do lxc delete --force --project "$project" "$node" 2>/dev/null || true; done
}

"${PLAY[@]}" playbooks/host.yml >/dev/null
delete_containers
timed "lab cold converge, image cached" "${PLAY[@]}" playbooks/host.yml playbooks/fleet.yml
timed "lab idempotent re-run" "${PLAY[@]}" playbooks/host.yml playbooks/fleet.yml

delete_containers
lxc image delete "$image" 2>/dev/null || true
rm -rf /var/cache/adelie-fleet/images
timed "lab cold converge, image not cached" "${PLAY[@]}" playbooks/host.yml playbooks/fleet.yml

if [ -f playbooks/nodes.yml ]; then
    timed "node layer cold (docker, toolchain, app)" "${PLAY[@]}" playbooks/nodes.yml
    timed "node layer idempotent re-run" "${PLAY[@]}" playbooks/nodes.yml
fi
timed "observability layer cold" "${PLAY[@]}" playbooks/observability.yml
timed "observability layer idempotent re-run" "${PLAY[@]}" playbooks/observability.yml
timed "site.yml idempotent re-run" "${PLAY[@]}" site.yml

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
print("%-44s %7.1f s   (goal: scrape interval 15 s + 5 s)" % ("onboarding end -> new node's target up", time.monotonic() - start))
PY
lxc delete --force --project "$project" dev-benchnew
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
# playbooks use) beside LXD's REST exec with recorded output and `lxc exec` (what they used
# before): both lose outputs here, `lxc exec` also hangs.
python bench/transport.py -i "$INVENTORY" --via ssh rest lxc --commands 2000 --timeout 30
