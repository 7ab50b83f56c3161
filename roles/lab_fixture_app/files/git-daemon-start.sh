#!/bin/sh
# git-daemon-start.sh ADDRESS PORT BASE PIDFILE
# Serve the repositories under BASE read-only with `git daemon` on ADDRESS:PORT, unless the
# daemon of PIDFILE still runs. Prints "started ..." when it started one, nothing otherwise.
# (Started by hand: the lab host has no systemd as PID 1.)
set -eu
address="$1"
port="$2"
base="$3"
pidfile="$4"
if [ -s "$pidfile" ]; then
    pid=$(cat "$pidfile")
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = git-daemon ]; then
        exit 0
    fi
fi
mkdir -p "$(dirname "$pidfile")"
# The daemon drops to nobody, which does not own the repositories: trust them explicitly.
git -c safe.directory='*' daemon --detach --reuseaddr --listen="$address" --port="$port" \
    --base-path="$base" --pid-file="$pidfile" --user=nobody --group=nogroup "$base"
i=0
until [ -s "$pidfile" ]; do
    i=$((i + 1)); [ "$i" -lt 50 ] || { echo "git daemon did not start" >&2; exit 1; }
    sleep 0.1
done
echo "started git daemon on $address:$port (pid $(cat "$pidfile"))"
