#!/bin/sh
# Keep btrfs quota accounting exact on the fleet's btrfs pools, so root-disk sizes stay enforced.
# Usage: btrfs-quota.sh POOL_DIR...   Prints "set: ..." for a setting it changed and "rescanned: ..."
# for accounting it repaired (nothing when all was in order).
# Since Linux 6.x, dropping a subvolume taller than qgroups/drop_subtree_threshold (3 by default)
# skips its accounting and marks the filesystem's qgroups inconsistent: after deleting a container
# with Docker's nested subvolumes, no container's size is enforced until a rescan. Level 8 (the
# maximum) always accounts; the setting lives in sysfs, so it is set again after each mount. The
# kernel also marks them inconsistent when a qgroup that still counts bytes is removed, which
# Docker's own subvolumes inside the nodes cause now and then: that is rescanned.
set -eu
for dir in "$@"; do
    uuid=$(findmnt --noheadings --output UUID --target "$dir")
    qgroups="/sys/fs/btrfs/$uuid/qgroups"
    if [ ! -d "$qgroups" ]; then
        # LXD turns quotas on with the first sized volume, after this check on a new pool: the next
        # run would then set the threshold, a change on a fleet nobody touched. Turn them on now.
        btrfs quota enable "$dir"
        echo "set: $dir quota enabled"
    fi
    if [ -f "$qgroups/drop_subtree_threshold" ] && [ "$(cat "$qgroups/drop_subtree_threshold")" != 8 ]; then
        echo 8 >"$qgroups/drop_subtree_threshold"
        echo "set: $dir drop_subtree_threshold 8"
    fi
    if [ -f "$qgroups/inconsistent" ] && [ "$(cat "$qgroups/inconsistent")" = 1 ]; then
        timeout 600 btrfs quota rescan -w "$dir" >/dev/null
        echo "rescanned: $dir (its quota accounting was inconsistent)"
    fi
done
