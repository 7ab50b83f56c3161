#!/usr/bin/env bash
# The idempotent site.yml on the converged lab under four executors, each run twice (issue 16):
#   as before       the roles of b59b3a6, the last commit with the pre-read layer (one raw/shell read
#                   per role, the modules skipped by when:), from a temporary git worktree of this
#                   repository; strategy linear with pipelining
#   linear          today's roles (plain modules decide); strategy linear with pipelining
#   mitogen_linear  today's roles under Mitogen's strategy as shipped (mitogen, requirements.txt)
#   unpinned        today's roles under adelie.fleet.mitogen_linear (ansible.cfg's): Mitogen's
#                   strategy without its CPU pinning
# Every variant sets its strategy itself, so the comparison holds whatever ansible.cfg's default is.
# All use the same inventory. Prints every run, then the best of the two runs of each variant with
# its ratio to "as before". Needs a converged lab (changed=0 is expected on every run). A variant
# that fails is reported and the others still run; exit 1 if one did.
#   bench/executors.sh        (make bench runs it from bench/converge.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
INVENTORY_IN_TREE=${INVENTORY:-inventories/lab}
INVENTORY=$(realpath "$INVENTORY_IN_TREE")
BEFORE=b59b3a6
RUNS=2
VARIANTS=(before linear mitogen unpinned)
declare -A LABEL=(
    [before]="as before: pre-read layer ($BEFORE), linear"
    [linear]="plain modules, linear + pipelining"
    [mitogen]="plain modules, mitogen_linear (pinned)"
    [unpinned]="plain modules, adelie.fleet.mitogen_linear"
)

work=$(mktemp -d)
before="$work/before"
# The worktree goes away however the script ends (git worktree prune forgets it if only rm ran).
cleanup() {
    git worktree remove --force "$before" >/dev/null 2>&1 || true
    rm -rf "$work"
    git worktree prune
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# As before: the old tree with its own collection link (ansible.cfg's collections_path) and its own
# fact cache, run from inside it so that its ansible.cfg and roles are the ones used. The cache
# starts as a copy of this checkout's, so that its first run does not gather facts the others have.
git worktree add --detach --quiet "$before" "$BEFORE"
mkdir -p "$before/build/collections/ansible_collections/adelie" "$before/build/facts"
ln -s ../../../.. "$before/build/collections/ansible_collections/adelie/fleet"
if [ -d build/facts ]; then cp -a build/facts/. "$before/build/facts/"; fi

# Mitogen's strategy plugins, linked by `make venv` from the pinned mitogen package.
mitogen_strategies=$PWD/.venv/mitogen-strategy

# run VARIANT: site.yml once under it. As before: with the inventory as it was then (variables have
# been renamed since, lab_fixture_app_*), and the nightly schedule's command names the checkout
# it starts from (roles/nightly: nightly_project_dir, from playbook_dir); run from the worktree, it
# would point the lab's schedule at a directory about to be removed, and count that as a change.
run() {
    case $1 in
        before)
            env -u ANSIBLE_CONFIG -C "$before" ANSIBLE_STRATEGY=linear ANSIBLE_PIPELINING=True \
                ansible-playbook -i "$before/$INVENTORY_IN_TREE" site.yml -e "nightly_project_dir=$PWD" ;;
        linear)
            env ANSIBLE_STRATEGY=linear ANSIBLE_PIPELINING=True ansible-playbook -i "$INVENTORY" site.yml ;;
        mitogen)
            if [ ! -d "$mitogen_strategies" ]; then
                echo "no $mitogen_strategies (Mitogen's strategy plugins): make venv"
                return 1
            fi
            env ANSIBLE_STRATEGY_PLUGINS="$mitogen_strategies" ANSIBLE_STRATEGY=mitogen_linear \
                ansible-playbook -i "$INVENTORY" site.yml ;;
        unpinned)
            env ANSIBLE_STRATEGY=adelie.fleet.mitogen_linear ansible-playbook -i "$INVENTORY" site.yml ;;
    esac
}

# The runs of a variant follow each other: should the old roles leave a file different from
# today's, only the first run of the next variant (which puts it back) shows it.
forget '^site_idem_'
failed=0
echo "site.yml idempotent on the converged lab, four executors:"
for variant in "${VARIANTS[@]}"; do
    for round in $(seq "$RUNS"); do
        timed "  ${LABEL[$variant]}, run $round" run "$variant" || failed=1
        record "site_idem_${variant}_$round"
        if [ "$variant" = unpinned ] && [ "$TAKEN" != FAILED ]; then SITE_HOST_TASKS=$HOST_TASKS; fi
    done
done

echo "site.yml idempotent, best of $RUNS runs:"
read -r reference _ < <(best_of '^site_idem_before_[0-9]+$') || reference=
for variant in "${VARIANTS[@]}"; do
    if read -r seconds changed < <(best_of "^site_idem_${variant}_[0-9]+\$"); then
        record_value "site_idem_${variant}_best" "$seconds" "$changed"
        ratio=$(awk -v s="$seconds" -v r="$reference" 'BEGIN {if (r > 0) printf "x%.2f of as before", s / r}')
        printf '  %-58s %7s s   changed=%s   %s\n' "${LABEL[$variant]}" "$seconds" "$changed" "$ratio"
    else
        record_value "site_idem_${variant}_best" FAILED
        printf '  %-58s %7s\n' "${LABEL[$variant]}" FAILED
    fi
done

# The executor's own floor: as many host-tasks as the idempotent run (unpinned) has, over the same hosts, each
# doing nothing but answer (ping: a module run on the host; debug: nothing leaves the controller),
# under ansible.cfg's strategy. A bound below it cannot be met by faster tasks, only by fewer.
hosts=$(ansible-inventory -i "$INVENTORY" --list 2>/dev/null | python -c 'import json, sys; print(len(json.load(sys.stdin)["_meta"]["hostvars"]))')
if [ -n "${SITE_HOST_TASKS:-}" ] && [ "$hosts" -gt 0 ]; then
    per_host=$(( (SITE_HOST_TASKS + hosts - 1) / hosts ))
    record_value site_idem_host_tasks "$SITE_HOST_TASKS"
    echo "the executor's floor: $SITE_HOST_TASKS host-tasks of the idempotent run = $per_host tasks x $hosts hosts, each a no-op:"
    for action in ping debug; do
        {
            echo "- name: $per_host no-op tasks on every host"
            echo "  hosts: all"
            echo "  gather_facts: false"
            echo "  tasks:"
            for i in $(seq "$per_host"); do echo "    - {name: noop $i, ansible.builtin.$action: {}}"; done
        } >"$work/floor-$action.yml"
        for round in $(seq "$RUNS"); do
            timed "  $action, run $round" env -u ANSIBLE_STRATEGY ansible-playbook -i "$INVENTORY" "$work/floor-$action.yml" || failed=1
            record "site_idem_floor_${action}_$round"
        done
        read -r seconds _ < <(best_of "^site_idem_floor_${action}_[0-9]+\$") && record_value "site_idem_floor_${action}" "$seconds"
    done
fi
# Exit 1 when a run failed (the others ran all the same).
if [ "$failed" != 0 ]; then exit 1; fi
