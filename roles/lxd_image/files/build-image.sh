#!/bin/sh
# Build a unified LXD image tarball of Debian with systemd, offline-capable (debootstrap from
# a Debian mirror only). Usage: build-image.sh SUITE MIRROR OUT.tar PKG,PKG,... [TIMEOUT]
# debootstrap gets TIMEOUT seconds (default 900), then it is stopped and the build fails.
set -eu
suite="$1"; mirror="$2"; out="$3"; packages="$4"; limit="${5:-900}"
work=$(mktemp -d /var/tmp/fleet-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"

timeout --kill-after=30 "$limit" \
    debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { rc=$?; tail -n 30 "$work/debootstrap.log" >&2
         [ "$rc" -ne 124 ] || echo "debootstrap did not finish in $limit s" >&2; exit 1; }

cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb ${mirror%/debian}/debian-security $suite-security main
SOURCES

# binfmt cannot be set up inside a container: masked, or the system state is "degraded".
ln -sf /dev/null "$root/etc/systemd/system/systemd-binfmt.service"
# eth0 (templates/eth0.network.tpl below, written when a container is made): DHCP on a bridge, where the
# daemon's dnsmasq hands each container its static address; on a routed NIC (a cluster's nodes), the
# address and route the daemon set before boot, kept.
mkdir -p "$root/etc/systemd/network"
chroot "$root" systemctl enable systemd-networkd.service systemd-resolved.service >/dev/null 2>&1
ln -sf /run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
# sshd (the node layer's transport) takes keys only; each container makes its own host keys at
# first boot, instead of every container sharing the image's.
mkdir -p "$root/etc/ssh/sshd_config.d" "$root/etc/systemd/system/ssh.service.d"
printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n' \
    >"$root/etc/ssh/sshd_config.d/adelie-fleet.conf"
rm -f "$root"/etc/ssh/ssh_host_*
printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' \
    >"$root/etc/systemd/system/ssh.service.d/adelie-fleet-host-keys.conf"
# Each container gets its own machine id and host name at first boot.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root/etc/hostname"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/*

mkdir -p "$work/templates"
printf '{{ container.name }}\n' >"$work/templates/hostname.tpl"
printf '127.0.0.1 localhost\n127.0.1.1 {{ container.name }}\n' >"$work/templates/hosts.tpl"
cat >"$work/templates/eth0.network.tpl" <<'NETWORK'
[Match]
Name=eth0

[Network]
{% if devices.eth0.nictype == "routed" %}KeepConfiguration=yes
LinkLocalAddressing=no
IPv6AcceptRA=no
{% else %}DHCP=ipv4
{% endif %}
NETWORK
cat >"$work/metadata.yaml" <<META
architecture: $(uname -m)
creation_date: $(date +%s)
properties:
  description: Debian $suite (adelie.fleet offline build)
  os: debian
  release: $suite
templates:
  /etc/hostname:
    when: [create, copy]
    template: hostname.tpl
  /etc/hosts:
    when: [create, copy]
    template: hosts.tpl
  /etc/systemd/network/eth0.network:
    when: [create, copy]
    template: eth0.network.tpl
META
tar -C "$work" -cf "$out.part" metadata.yaml templates rootfs
mv "$out.part" "$out"
