#!/usr/bin/env bash
# The floor of the node layer's cold run: the same Debian packages, put on freshly created nodes
# with plain apt-get over SSH, every node at once, through the same apt proxy. The node layer cold
# is judged against it (goal: at most 1.5 x this floor). bench/converge.sh runs the three steps:
#
#   bench/apt_floor.sh image     on fresh nodes: record what the image has manually installed
#   bench/apt_floor.sh layer     after a cold node layer run: record what it installed, per node, and
#                                the apt and dpkg settings its apt_cache client wrote
#   bench/apt_floor.sh install   on fresh nodes again: write those settings (not timed), then time
#                                the package lists' refresh, one node at a time as the apt_cache
#                                client does it (concurrent refreshes of the same InRelease break
#                                apt-cacher-ng: roles/apt_cache/tasks/client.yml), and one
#                                `apt-get install -y --no-install-recommends` per node, all at once
#
# "The same packages" are measured, not derived: per node, `apt-mark showmanual` after the cold
# node layer run minus `apt-mark showmanual` on that node fresh from the image. The apt module
# marks every package a role names as manual and leaves their dependencies automatic, so this is
# each node's own list as the roles gave it (apt installs its dependencies the same way here), and
# it includes a package any task installs, which the roles' package variables (docker_*,
# dev_toolchain_*, lab_fixture_app_*, member_account_*, picked per node by the model) would not
# without repeating the model's conditions in this script.
# Nodes, their addresses, SSH users and keys: the inventory's fleet group (fleet_ipv4,
# ansible_user, ansible_ssh_private_key_file). What passes between the steps: build/bench/floor/.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
INVENTORY=${INVENTORY:-inventories/lab}
STATE=build/bench/floor
# What roles/apt_cache/tasks/client.yml writes on a node: apt's proxy settings, the probe they run
# (with apt_cache_client_fallback) and dpkg's unsafe-io setting (apt_cache_client_dpkg_unsafe_io,
# on in the lab), without the leading slash (tar).
APT_SETTINGS=(etc/apt/apt.conf.d/01adelie-fleet-proxy etc/apt/adelie-fleet-proxy-detect
              etc/dpkg/dpkg.cfg.d/adelie-fleet-unsafe-io)
# The SSH options of the inventory (group_vars/fleet.yml: the nodes' host keys are not remembered).
SSH_OPTIONS=(-o BatchMode=yes -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR
             -o ConnectTimeout=10)

nodes=()
declare -A login key
while read -r node user address keyfile; do
    nodes+=("$node")
    login[$node]="$user@$address"
    key[$node]=${keyfile/#\~/$HOME}
done < <(ansible -i "$INVENTORY" fleet -m ansible.builtin.debug -o \
           -a '{"msg": "{{ ansible_user }} {{ fleet_ipv4 }} {{ ansible_ssh_private_key_file }}"}' 2>/dev/null \
         | sed -n 's/^\([^ ]*\) | SUCCESS => .*"msg": "\([^"]*\)".*/\1 \2/p' | sort)
[ "${#nodes[@]}" -gt 0 ] || { echo "apt_floor: no fleet node in $INVENTORY" >&2; exit 1; }

# on NODE COMMAND...: run it on the node over SSH.
on() {
    local node=$1; shift
    ssh "${SSH_OPTIONS[@]}" -i "${key[$node]}" "${login[$node]}" "$@"
}

# Containers that were just created need a few seconds before sshd answers.
wait_for_ssh() {
    local node try
    for node in "${nodes[@]}"; do
        for try in $(seq 60); do
            on "$node" true </dev/null 2>/dev/null && continue 2
            sleep 1
        done
        echo "apt_floor: $node does not answer by SSH ($try tries, a second apart)" >&2
        return 1
    done
}

record_image() {
    rm -rf "$STATE" && mkdir -p "$STATE"
    wait_for_ssh
    for node in "${nodes[@]}"; do
        on "$node" apt-mark showmanual </dev/null | LC_ALL=C sort >"$STATE/$node.image"
        [ -s "$STATE/$node.image" ] || { echo "apt_floor: $node: apt-mark showmanual printed nothing" >&2; exit 1; }
    done
}

record_layer() {
    declare -A same
    local node list
    for node in "${nodes[@]}"; do
        [ -s "$STATE/$node.image" ] \
            || { echo "apt_floor: no image list for $node: run '$0 image' on fresh nodes first" >&2; exit 1; }
        on "$node" apt-mark showmanual </dev/null | LC_ALL=C sort | LC_ALL=C comm -13 "$STATE/$node.image" - >"$STATE/$node.packages"
        # shellcheck disable=SC2029  # the paths expand here, on purpose
        on "$node" "tar -C / --ignore-failed-read -cf - ${APT_SETTINGS[*]} 2>/dev/null" </dev/null >"$STATE/$node.settings.tar"
        tar -tf "$STATE/$node.settings.tar" | grep -x "${APT_SETTINGS[0]}" >/dev/null \
            || { echo "apt_floor: $node has no /${APT_SETTINGS[0]}: did the node layer run?" >&2; exit 1; }
        list=$(paste -sd ' ' "$STATE/$node.packages")
        same[${list:-(none)}]+=" $node"
    done
    # One line per distinct list, with the nodes that have it.
    for list in "${!same[@]}"; do
        echo "floor packages of${same[$list]}: $list"
    done | sort
}

refresh_lists() {
    local node try
    for node in "${nodes[@]}"; do
        for try in 1 2 3; do
            on "$node" timeout --kill-after=10 120 apt-get update -q </dev/null && continue 2
            echo "$node: apt-get update failed (try $try of 3)"
            sleep 5
        done
        return 1
    done
}

install_packages() {
    local node i failed=0 pids=() packages
    for node in "${nodes[@]}"; do
        mapfile -t packages <"$STATE/$node.packages"
        on "$node" env DEBIAN_FRONTEND=noninteractive timeout --kill-after=10 900 \
            apt-get install -y -q --no-install-recommends "${packages[@]}" </dev/null >"$STATE/$node.install.log" 2>&1 &
        pids+=("$!")
    done
    for i in "${!pids[@]}"; do
        if ! wait "${pids[$i]}"; then
            echo "${nodes[$i]}: apt-get install failed:"; tail -n 20 "$STATE/${nodes[$i]}.install.log"
            failed=1
        fi
    done
    return "$failed"
}

floor() {
    local node
    for node in "${nodes[@]}"; do
        if [ ! -f "$STATE/$node.packages" ] || [ ! -s "$STATE/$node.settings.tar" ]; then
            echo "apt_floor: nothing recorded for $node: run '$0 layer' after a cold node layer run" >&2
            exit 1
        fi
    done
    wait_for_ssh
    for node in "${nodes[@]}"; do
        on "$node" tar -C / -xf - <"$STATE/$node.settings.tar"
    done
    timed "direct-apt floor: package lists, one node at a time" refresh_lists
    record floor_lists
    timed "direct-apt floor: apt-get install, ${#nodes[@]} nodes at once" install_packages
    record floor_install
    TAKEN=$(awk -v a="$(figure floor_lists)" -v b="$(figure floor_install)" 'BEGIN {printf "%.1f", a + b}')
    CHANGED=-
    printf '%-60s %7s s\n' "direct-apt floor of the node layer (lists + install)" "$TAKEN"
    record floor
}

case ${1:-} in
    image) record_image ;;
    layer) record_layer ;;
    install) floor ;;
    *) echo "usage: $0 image|layer|install" >&2; exit 2 ;;
esac
