#!/bin/sh
# Start prometheus-node-exporter by hand where PID 1 is not systemd, with the given flags.
# Usage: node-exporter-start.sh PIDFILE LOG FLAG...
# Prints "started" when it (re)started the exporter, nothing when it already runs with these flags.
# A pid file, not pgrep: the host also sees every container's own exporter process.
set -eu
pidfile="$1"
log="$2"
shift 2
want="/usr/bin/prometheus-node-exporter $*"
if [ -s "$pidfile" ]; then
    pid=$(cat "$pidfile")
    have=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | sed 's/ $//') || have=""
    [ "$have" = "$want" ] && exit 0
    [ -z "$have" ] || kill "$pid"
fi
mkdir -p "$(dirname "$log")" "$(dirname "$pidfile")"
setsid /usr/bin/prometheus-node-exporter "$@" </dev/null >>"$log" 2>&1 &
echo "$!" >"$pidfile"
# It must answer (a wrong flag or a taken port ends it at once).
sleep 1
kill -0 "$!" 2>/dev/null || { echo "prometheus-node-exporter exited, see $log" >&2; tail -n 5 "$log" >&2; exit 1; }
echo "started"
