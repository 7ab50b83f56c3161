#!/bin/sh
# base-image.sh TAG [BUSYBOX]
# Import a minimal busybox rootfs as the Docker image TAG unless it exists (there is no registry
# to pull a base image from). Prints "imported TAG" when it made the image.
set -eu
tag="$1"
busybox="${2:-/bin/busybox}"
if docker image inspect "$tag" >/dev/null 2>&1; then
    exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
root="$dir/rootfs"
mkdir -p "$root/bin" "$root/etc" "$root/root" "$root/tmp" "$root/www" "$root/proc" "$root/sys" "$root/dev"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
tar -C "$root" --numeric-owner -cf - . \
    | docker import --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' \
        --message "busybox rootfs (adelie.fleet lab_fixture_app)" - "$tag" >/dev/null
echo "imported $tag"
