#!/usr/bin/env bash
# The health sweep at 8, 16 and 30 nodes against the old shell loop: the lab's 8 nodes plus 22
# lightweight containers (role `light`: 1 CPU, 256 MiB, no Docker; made for this run by fleet.yml,
# removed afterwards). Prints bench/health.sh's table and the sweep's cost per added node.
#   bench/sweep_scale.sh            (needs the converged lab: make up)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
INVENTORY=${INVENTORY:-inventories/lab}
# shellcheck source=bench/lib.sh
. bench/lib.sh
work=$(mktemp -d)
extra="$work/light.yml"
vars="$work/vars.json"
nodes_json="$work/nodes.json"

# 22 light nodes at .100-.121 of the lab's bridge, the lab's roles plus `light`, and room for them
# (limits are caps and the loop pool is sparse: idle light containers use little of either). 22 is
# what the model's largest CPU overcommit (16) leaves on 2 threads beside the lab's 10 CPUs.
LIGHT=22
"$PY" - "$extra" "$LIGHT" <<'PY'
import sys
hosts = "\n".join("            bench-light%02d: {fleet_ipv4: 10.10.10.%d}" % (i, 100 + i) for i in range(int(sys.argv[2])))
open(sys.argv[1], "w").write("all:\n  children:\n    fleet:\n      children:\n        light:\n          hosts:\n%s\n" % hosts)
PY
ansible -i "$INVENTORY" localhost -m ansible.builtin.debug -a var=fleet_roles -o \
    | sed 's/^[^{]*//' | "$PY" -c '
import json, sys
roles = json.load(sys.stdin)["fleet_roles"]
roles["light"] = {"cpu": 1, "memory": "256MiB", "disk": "2GiB", "pool": "fleet", "docker": False}
capacity = {"memory_reserve": "1GiB", "memory_overcommit": 1.0, "cpu_overcommit": 16.0, "disk_overcommit": 2.0}
print(json.dumps({"fleet_roles": roles, "fleet_capacity": capacity}))' >"$vars"

cleanup() {
    project=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("project", "default"))' "$nodes_json" 2>/dev/null || echo default)
    for i in $(seq -w 0 $((LIGHT - 1))); do "$CLI" delete --force --project "$project" "bench-light$i" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT

ansible-playbook -i "$INVENTORY" -i "$extra" -e "@$vars" playbooks/fleet.yml >"$work/fleet.log" 2>&1 \
    || { tail -n 30 "$work/fleet.log"; exit 1; }
# Every light node answers SSH before anything is timed.
ansible -i "$INVENTORY" -i "$extra" -e "@$vars" light -m ansible.builtin.wait_for_connection -a timeout=120 >/dev/null
# The lab's 8 nodes first, then the light ones (health.sh takes the first N).
"$PY" bench/health_sweep.py -i "$INVENTORY" --write-nodes "$nodes_json" --no-sweep >/dev/null
"$PY" - "$nodes_json" "$LIGHT" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
template = data["nodes"][0]
for i in range(int(sys.argv[2])):
    data["nodes"].append(dict(template, name="bench-light%02d" % i, role="light", ipv4="10.10.10.%d" % (100 + i),
                              member=None, docker=False, cpu=1, memory_bytes=256 << 20, disk_bytes=2 << 30))
json.dump(data, open(sys.argv[1], "w"))
PY
NODES_JSON="$nodes_json" bench/health.sh 8 16 $((8 + LIGHT)) | tee "$work/table.txt"
awk 'NR > 1 {n[NR] = $1; s[NR] = $3} END {printf "sweep cost per added node (8 -> %d): %.1f ms\n", n[NR], (s[NR] - s[2]) / (n[NR] - n[2]) * 1000}' "$work/table.txt"
