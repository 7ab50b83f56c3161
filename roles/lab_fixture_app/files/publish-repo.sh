#!/bin/sh
# publish-repo.sh REPO SOURCE BRANCH
# Make SOURCE's content (minus what its .gitignore excludes) the tip of BRANCH in the bare
# repository REPO, creating REPO when missing. Commits only when the content differs from the
# tip; prints what it did ("created ...", "committed ..."), nothing when REPO was up to date.
set -eu
repo="$1"
src="$2"
branch="$3"
if [ ! -f "$repo/HEAD" ]; then
    mkdir -p "$repo"
    git init -q --bare --initial-branch="$branch" "$repo"
    echo "created $repo"
fi
# git daemon serves only repositories that carry this file.
[ -e "$repo/git-daemon-export-ok" ] || touch "$repo/git-daemon-export-ok"
export GIT_DIR="$repo" GIT_WORK_TREE="$src" GIT_INDEX_FILE="$repo/adelie-fleet-publish.index"
export GIT_AUTHOR_NAME="adelie.fleet lab_fixture_app" GIT_AUTHOR_EMAIL="fixture@adelie.invalid"
export GIT_COMMITTER_NAME="adelie.fleet lab_fixture_app" GIT_COMMITTER_EMAIL="fixture@adelie.invalid"
git read-tree --empty
git add -A
tree=$(git write-tree)
parent=$(git rev-parse -q --verify "refs/heads/$branch" || true)
if [ -n "$parent" ] && [ "$(git rev-parse "$parent^{tree}")" = "$tree" ]; then
    exit 0
fi
if [ -n "$parent" ]; then
    commit=$(git commit-tree "$tree" -p "$parent" -m "fleet-app fixture content (adelie.fleet lab_fixture_app)")
else
    commit=$(git commit-tree "$tree" -m "fleet-app fixture content (adelie.fleet lab_fixture_app)")
fi
git update-ref "refs/heads/$branch" "$commit"
echo "committed $commit"
