#!/bin/sh
# backend-api's health: JWT_SECRET must be set, not a known default, and at least 32 bytes.
# Writes /www/health and /www/metrics, then checks that httpd answers. Exit 1 = unhealthy.
secret="${JWT_SECRET:-}"
# shellcheck disable=SC2018,SC2019 # ASCII case folding is what the defaults list needs
lower=$(printf '%s' "$secret" | tr 'A-Z' 'a-z' | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
reason=""
case "$lower" in
    "") reason="JWT_SECRET is not set" ;;
    changeme | change-me | change_me | secret | jwt_secret | jwt-secret | jwtsecret | \
    your-secret-key | your_secret_key | your-jwt-secret | your_jwt_secret | your-256-bit-secret | \
    supersecret | super-secret | dev-secret | default | password | test | example | xxx)
        reason="JWT_SECRET is a known default" ;;
esac
if [ -z "$reason" ] && [ "$(printf '%s' "$secret" | wc -c)" -lt 32 ]; then
    reason="JWT_SECRET is shorter than 32 bytes"
fi

count_file=/tmp/requests_total
count=$(( $(cat "$count_file" 2>/dev/null || echo 0) + 1 ))
echo "$count" >"$count_file"
ok=1
[ -z "$reason" ] || ok=0

{
    echo "# HELP app_requests_total Requests served by backend-api (the fixture counts its health checks)."
    echo "# TYPE app_requests_total counter"
    echo "app_requests_total{path=\"/health\"} $count"
    echo "# HELP app_jwt_secret_ok 1 when JWT_SECRET is usable (set, not a known default, 32 bytes or more)."
    echo "# TYPE app_jwt_secret_ok gauge"
    echo "app_jwt_secret_ok $ok"
    echo "# HELP app_info Fixture application information."
    echo "# TYPE app_info gauge"
    echo "app_info{app=\"fleet-app\",service=\"backend-api\",env=\"${APP_ENV:-unknown}\"} 1"
} >/www/metrics.tmp && mv /www/metrics.tmp /www/metrics

if [ -n "$reason" ]; then
    echo "unhealthy: $reason" >/www/health.tmp && mv /www/health.tmp /www/health
    echo "unhealthy: $reason"
    exit 1
fi
echo ok >/www/health.tmp && mv /www/health.tmp /www/health
# The service itself must answer (the first run, before httpd starts, stops here).
wget -q -O /dev/null http://127.0.0.1:8000/health || { echo "unhealthy: httpd does not answer"; exit 1; }
echo ok
