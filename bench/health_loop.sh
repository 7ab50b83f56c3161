#!/usr/bin/env bash
# The old `health-lxd` loop, the baseline of the health sweep's timing: for each node, one exec
# of the daemon's client (CLI, bench/lib.sh) printing the app checkout's branch and `docker ps`,
# one node after the other.
#   bench/health_loop.sh NODES_JSON [N]   (NODES_JSON: what bench/health_sweep.py --write-nodes saves)
set -euo pipefail
nodes_json=$(realpath "${1:?usage: $0 NODES_JSON [N]}")
limit=${2:-0}
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
project=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("project") or "default") if isinstance(d, dict) else print("default")' "$nodes_json")
python3 -c '
import json, sys
data = json.load(open(sys.argv[1]))
nodes = data if isinstance(data, list) else data["nodes"]
nodes = list(nodes.values()) if isinstance(nodes, dict) else nodes
limit = int(sys.argv[2])
for node in (nodes[:limit] if limit else nodes):
    print(node["name"], node.get("app_dir") or "/opt/fleet-app")
' "$nodes_json" "$limit" | while read -r node app; do
    echo "== $node"
    "$CLI" exec --project "$project" "$node" -- sh -c "git -C '$app' branch --show-current; docker ps" </dev/null || echo "$node: failed"
done
