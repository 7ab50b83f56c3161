"""Publish each fleet container's root-disk use for node-exporter's textfile collector.

The daemon's (LXD's or Incus's) /1.0/metrics reports the storage pool's size and free space as every container's filesystem
(so does `df` inside one); the container's own use is in its state (the btrfs quota group), which
is what its root-disk `size` quota limits. Every INTERVAL seconds this writes
adelie_fleet_disk_used_bytes{project, node, role} for the instances of the given projects, read with
the daemon's client CLI (LXD's or Incus's).

Usage: python3 fleet-disk-usage.py OUTPUT INTERVAL CLI PROJECT... [--daemon PIDFILE]
--daemon: detach and keep running; exits at once (printing nothing) when the same command already
runs from PIDFILE, or prints "started" after starting it (hosts where PID 1 is not systemd).
"""

import json
import os
import re
import subprocess
import sys
import time


def read_usage(cli, project):
    proc = subprocess.run([cli, "query", "/1.0/instances?recursion=2&project=" + project],
                          capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        return None
    usage = {}
    # Incus prints nothing for an empty list.
    for instance in json.loads(proc.stdout or "[]"):
        disk = (instance.get("state") or {}).get("disk") or {}
        if "root" in disk:
            usage[instance["name"]] = disk["root"].get("usage", 0)
    return usage


QUOTA_LINE = re.compile(r'^adelie_fleet_quota_cpu\{project="([^"]*)",node="([^"]*)",role="([^"]*)"\}')


def read_roles(directory):
    """node -> role, from the quota files the lxd_metrics role writes beside the output (the fleet
    model's publication), so that every series of the host's exporter carries its node's role."""
    roles = {}
    for name in os.listdir(directory):
        if name.startswith("adelie_fleet_quota_") and name.endswith(".prom"):
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                for match in filter(None, map(QUOTA_LINE.match, handle)):
                    roles[match.group(1), match.group(2)] = match.group(3)
    return roles


def render(cli, projects, roles):
    lines = ["# HELP adelie_fleet_disk_used_bytes Root-disk use of a fleet container (the daemon's figure, its quota group).",
             "# TYPE adelie_fleet_disk_used_bytes gauge",
             "# HELP adelie_fleet_disk_usage_read_ok 1 when the daemon answered for the project at the last read.",
             "# TYPE adelie_fleet_disk_usage_read_ok gauge"]
    for project in projects:
        usage = read_usage(cli, project)
        lines.append('adelie_fleet_disk_usage_read_ok{project="%s"} %d' % (project, usage is not None))
        for node, used in sorted((usage or {}).items()):
            role = roles.get((project, node), "")
            lines.append('adelie_fleet_disk_used_bytes{project="%s",node="%s",role="%s"} %d' % (project, node, role, used))
    return "\n".join(lines) + "\n"


def write_atomically(path, text):
    """node-exporter must never read half a file: write beside it, then rename."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def running_from(pidfile, argv):
    try:
        with open(pidfile, encoding="utf-8") as handle:
            pid = int(handle.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return handle.read().split(b"\0")[:-1] == [os.fsencode(a) for a in argv]
    except (OSError, ValueError):
        return False


def daemonize(pidfile, argv):
    if running_from(pidfile, argv):
        return False
    try:
        with open(pidfile, encoding="utf-8") as handle:
            os.kill(int(handle.read().strip()), 15)  # an older command line: replace it
    except (OSError, ValueError):
        pass
    if os.fork():
        return True
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    write_atomically(pidfile, "%d\n" % os.getpid())
    return None


def main(argv):
    args = argv[1:]
    pidfile = None
    if "--daemon" in args:
        index = args.index("--daemon")
        pidfile = args[index + 1]
        del args[index:index + 2]
    if len(args) < 4:
        sys.exit(__doc__)
    output, interval, cli, projects = args[0], float(args[1]), args[2], args[3:]
    if pidfile:
        # The daemon runs the same command line, so a second call finds it running.
        started = daemonize(pidfile, [sys.executable] + argv)
        if started is not None:
            print("started" if started else "", end="")
            return
    while True:
        try:
            write_atomically(output, render(cli, projects, read_roles(os.path.dirname(output) or ".")))
        except (OSError, subprocess.SubprocessError, ValueError) as err:
            print("fleet-disk-usage: %s" % err, file=sys.stderr)
        time.sleep(interval)


if __name__ == "__main__":
    main(sys.argv)
