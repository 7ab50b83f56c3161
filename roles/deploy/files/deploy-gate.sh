#!/bin/sh
# deploy-gate.sh APP_DIR PROJECT SERVICE URL TRIES DELAY [SMOKE]
# The release gate, on the environment's node: SERVICE's container of compose project PROJECT is
# running and healthy (or has no healthcheck), URL answers 200, and SMOKE (a shell command, if any)
# exits 0 in APP_DIR. Tried TRIES times, DELAY seconds after the first try, the wait doubling after each.
# One line per try (the evidence); exit 0 when a try passes, 1 when none did.
set -u
app_dir=$1 project=$2 service=$3 url=$4 tries=$5 delay=$6
smoke=${7:-}
try=1
while :; do
    id=$(docker ps -q --filter "label=com.docker.compose.project=$project" \
        --filter "label=com.docker.compose.service=$service" | head -n 1)
    if [ -n "$id" ]; then
        health=$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$id")
    else
        health=not-running
    fi
    http=$(python3 -c 'import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=5).status)
except Exception as error:
    print(type(error).__name__)' "$url")
    smoke_result=none
    if [ -n "$smoke" ]; then
        if (cd "$app_dir" && sh -c "$smoke") >/dev/null 2>&1; then smoke_result=ok; else smoke_result="failed($?)"; fi
    fi
    echo "try $try: $service container $health, $url $http, smoke $smoke_result"
    passed=1
    case "$health" in healthy | none) ;; *) passed=0 ;; esac
    [ "$http" = 200 ] || passed=0
    case "$smoke_result" in none | ok) ;; *) passed=0 ;; esac
    if [ "$passed" = 1 ]; then
        echo "PASS"
        exit 0
    fi
    if [ "$try" -ge "$tries" ]; then
        echo "FAIL after $tries tries"
        exit 1
    fi
    sleep "$delay"
    delay=$((delay * 2))
    try=$((try + 1))
done
