#!/usr/bin/env bash
# Health sweep timing: the old shell loop (bench/health_loop.sh, the client's exec per node, sequential)
# beside the sweep (bench/health_sweep.py, process start included), over the first N nodes.
#   bench/health.sh [N...]          e.g. bench/health.sh 8 32   (default: every node)
#   INVENTORY=inventories/lab NODES_JSON=build/health-nodes.json REPEAT=3
# The nodes file is built once from the inventory (Ansible's inventory API, not timed).
# Report only: the sweep runs no repair and writes no file.
set -euo pipefail
cd "$(dirname "$0")/.."
INVENTORY=${INVENTORY:-inventories/lab}
# shellcheck source=bench/lib.sh
. bench/lib.sh
NODES_JSON=${NODES_JSON:-build/health-nodes.json}
REPEAT=${REPEAT:-3}
PY=${PY:-.venv/bin/python}
mkdir -p "$(dirname "$NODES_JSON")"
[ -s "$NODES_JSON" ] || "$PY" bench/health_sweep.py -i "$INVENTORY" --write-nodes "$NODES_JSON" --no-sweep >/dev/null 2>&1 || true
[ -s "$NODES_JSON" ] || { echo "cannot build $NODES_JSON from $INVENTORY" >&2; exit 1; }
total=$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); n=d if isinstance(d,list) else d["nodes"]; print(len(n))' "$NODES_JSON")
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=("$total")

seconds() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN {printf "%.3f", e - s}'; }
best() { local best=""; for _ in $(seq "$REPEAT"); do t=$(seconds "$@"); best=$(awk -v a="$best" -v b="$t" 'BEGIN {print (a == "" || b < a) ? b : a}'); done; echo "$best"; }

printf '%-6s %-12s %-12s %s\n' nodes loop_s sweep_s ratio
for n in "${counts[@]}"; do
    [ "$n" -le "$total" ] || { echo "only $total nodes in $NODES_JSON, not $n" >&2; continue; }
    limit=$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); n=d if isinstance(d,list) else d["nodes"]; print(",".join(x["name"] for x in n[:int(sys.argv[2])]))' "$NODES_JSON" "$n")
    loop=$(best bench/health_loop.sh "$NODES_JSON" "$n")
    sweep=$(best "$PY" bench/health_sweep.py --nodes "$NODES_JSON" --limit "$limit" --quiet)
    printf '%-6s %-12s %-12s %s\n' "$n" "$loop" "$sweep" "$(awk -v a="$sweep" -v b="$loop" 'BEGIN {printf "%.2f", a / b}')"
done
