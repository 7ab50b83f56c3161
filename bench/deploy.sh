#!/usr/bin/env bash
# Deploy timings on the lab (issue 19): a changed commit deployed to staging (build, push, pull, up, gate),
# its promotion to deploy-test (pull, up, gate: nothing built), a failing commit (gate, automatic rollback),
# and rollback.yml; beside them the floor measured in the same run: the same fetch, build, push, pull and up
# by hand over SSH on the staging node. The commits are branches of the lab's fixture repository, removed at
# the end; staging is left on the good commit.
set -euo pipefail
cd "$(dirname "$0")/.."
INVENTORY=${INVENTORY:-inventories/lab}
# shellcheck source=bench/lib.sh
source bench/lib.sh
forget '^deploy_'
PLAY=(ansible-playbook -i "$INVENTORY")
APP_REPO=/srv/git/fleet-app.git
work=$(mktemp -d)
cleanup() {
    rm -rf "$work"
    for branch in bench-deploy-good bench-deploy-bad bench-deploy-floor; do
        git -C "$APP_REPO" branch -D "$branch" >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT

git clone -q "$APP_REPO" "$work/app"
commit_as() {  # commit_as BRANCH: commit the work tree and push it as BRANCH
    git -C "$work/app" -c user.name=bench -c user.email=bench@adelie.invalid commit -qam "bench: $1"
    git -C "$work/app" push -q origin "HEAD:refs/heads/$1"
}
echo "<!-- bench $(date +%s) -->" >>"$work/app/frontend/index.html"
commit_as bench-deploy-good

timed "deploy a changed commit to staging (build, push, pull, up, gate)" \
    "${PLAY[@]}" playbooks/deploy.yml -e env=staging -e ref=bench-deploy-good
record deploy_staging
timed "promote it to deploy-test (pull, up, gate)" \
    "${PLAY[@]}" playbooks/deploy.yml -e env=deploy -e ref=bench-deploy-good
record deploy_promote

sed -i '2i exit 1' "$work/app/backend-api/healthcheck.sh"
commit_as bench-deploy-bad
# The deploy fails by design (rolled back): time it by hand, it must end non-zero.
start=$(date +%s.%N)
if "${PLAY[@]}" playbooks/deploy.yml -e env=staging -e ref=bench-deploy-bad >"$work/bad.log" 2>&1; then
    tail -n 20 "$work/bad.log"; echo "the failing commit was deployed: FAILED"; exit 1
fi
grep -q "rolled back:" "$work/bad.log" || { tail -n 40 "$work/bad.log"; echo "no rollback: FAILED"; exit 1; }
TAKEN=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}'); CHANGED=-
printf '%-60s %7s s   (gate: 5 tries over 2+4+8+16 s of waits)\n' "failing commit to staging (gate fails, rollback)" "$TAKEN"
record deploy_rolled_back

# The floor: the same work by hand on the staging node, one SSH command: fetch and unpack a new commit, build
# and push both images, pull them back (cached), up -d with them. No gate, no record, no Ansible.
git -C "$work/app" reset -q --hard HEAD~1
echo "<!-- floor $(date +%s) -->" >>"$work/app/frontend/index.html"
commit_as bench-deploy-floor
floor_commit=$(git -C "$work/app" rev-parse HEAD)
# The lab's fixture repository is served by git daemon on the bridge's gateway (roles/lab_fixture_app).
read -r staging registry repo_url < <(ansible -i "$INVENTORY" localhost -m adelie.fleet.fleet_model -o 2>/dev/null | python3 -c '
import json, sys
model = json.loads(sys.stdin.read().split("=>", 1)[1])["fleet"]
print(next(n["ipv4"] for n in model["nodes"].values() if n["role"] == "staging"), model["registry"]["host"],
      "git://%s/fleet-app.git" % model["network"]["gateway"])')
key=$(ansible -i "$INVENTORY" staging -m ansible.builtin.debug -a var=fleet_ssh_key_file -o 2>/dev/null | sed 's/.*"fleet_ssh_key_file": "\([^"]*\)".*/\1/')
cat >"$work/floor.sh" <<SH
set -euo pipefail
d=\$(mktemp -d); trap 'rm -rf \$d' EXIT
git -C /var/cache/adelie-fleet/build/repo.git fetch -q --force $repo_url '+refs/heads/*:refs/heads/*'
git -C /var/cache/adelie-fleet/build/repo.git archive $floor_commit | tar -x -C \$d
for s in frontend backend-api; do
    docker build -q -t $registry/fleet-app/\$s:$floor_commit \$d/\$s >/dev/null
    docker push -q $registry/fleet-app/\$s:$floor_commit >/dev/null
    docker pull -q $registry/fleet-app/\$s:$floor_commit >/dev/null
done
printf 'version: "3.8"\nservices:\n  frontend:\n    image: %s\n  backend-api:\n    image: %s\n' \
    $registry/fleet-app/frontend:$floor_commit $registry/fleet-app/backend-api:$floor_commit >/opt/fleet-app/docker-compose.override.yml
cd /opt/fleet-app && docker-compose -p fleet-app up -d --no-build 2>/dev/null
SH
timed "floor: the same fetch, build, push, pull and up by hand over SSH" \
    ssh -i "${key/#\~/$HOME}" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o LogLevel=ERROR "root@$staging" bash -s <"$work/floor.sh"
record deploy_floor

# rollback.yml: staging on the floor's commit through deploy.yml (its images are in the registry: no
# build), then back to the release before it, the good commit.
quietly "deploy the floor's commit to staging" "${PLAY[@]}" playbooks/deploy.yml -e env=staging -e ref=bench-deploy-floor
timed "rollback.yml on staging (the release before)" "${PLAY[@]}" playbooks/rollback.yml -e env=staging
record deploy_rollback

awk -v d="$(figure deploy_staging)" -v f="$(figure deploy_floor)" \
    'BEGIN {if (d != "FAILED" && f != "FAILED" && f > 0) printf "%-60s   x%.2f of the floor (the gate waits for the healthcheck)\n", "deploy to staging", d / f}'
