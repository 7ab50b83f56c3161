#!/bin/sh
# Start lxcfs and the fleet's daemon (lxd or incusd) by hand where PID 1 is not systemd (CI
# containers, WSL2). Usage: daemon-start.sh LOG TIMEOUT 'WAITREADY COMMAND' DAEMON [ARGS...]
# Prints "started: ..." for what it had to start, nothing when both already run.
set -eu
log="$1"
timeout="$2"
waitready="$3"
shift 3
daemon="$(basename "$1")"
# Whether a daemon runs: matched on its command line, because LXD's per-container
# "[lxc monitor]" processes are also named lxd, and not as a zombie waiting for PID 1.
running() { pgrep -f --runstates RSDI "^([^ ]*/)?$1( |\$)" >/dev/null; }
mkdir -p "$(dirname "$log")"
# The daemons get every CPU. Ansible's executor may run this pinned to one (Mitogen pins its workers
# and what they start), and the containers would inherit that: `nproc` 1 whatever limits.cpu says.
taskset --all-tasks --pid --cpu-list "0-$(( $(nproc --all) - 1 ))" $$ >/dev/null
if ! running lxcfs; then
    # A dead lxcfs leaves its FUSE mount behind ("Transport endpoint is not connected"),
    # on which even mkdir fails: unmount it first.
    umount -l /var/lib/lxcfs 2>/dev/null || true
    mkdir -p /var/lib/lxcfs
    setsid lxcfs /var/lib/lxcfs </dev/null >>"$log.lxcfs" 2>&1 &
    # The daemon must see lxcfs mounted when it starts, or containers get the host's /proc/meminfo.
    i=0
    until grep -qs ' /var/lib/lxcfs fuse' /proc/mounts; do
        i=$((i + 1)); [ "$i" -lt 50 ] || { echo "lxcfs did not mount" >&2; exit 1; }
        sleep 0.1
    done
    echo "started: lxcfs"
fi
if ! running "$daemon"; then
    setsid "$@" --logfile "$log" </dev/null >>"$log.stdout" 2>&1 &
    echo "started: $daemon"
fi
# shellcheck disable=SC2086 # the command's words, split on purpose
$waitready --timeout="$timeout"
