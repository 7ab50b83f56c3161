"""The goals of issue 16 beside what was measured: the last lines of `make bench`.

Reads the figures bench/converge.sh kept in build/bench/figures (this bench run) and the wall times
`make up` and `make test` append to build/timings/make.log. One row per goal: its bound, the measured
figure, the ratio (to the bound, or to the floor for the node layer) and whether it is met.

  .venv/bin/python bench/summary.py

Exit 1 when a figure of this run is recorded as FAILED (a failed executor run: bench/converge.sh
reports it and goes on).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "build" / "bench" / "figures"
TIMINGS = ROOT / "build" / "timings" / "make.log"
IDEMPOTENT_GOAL = 20.0
CHECK_GOAL = 20.0
NODE_LAYER_FACTOR = 1.5
UP_GOAL = 600.0
TEST_GOAL = 1200.0
# ansible.cfg's strategy -> the variant of bench/executors.sh that runs it.
VARIANT_OF_STRATEGY = {"linear": "linear", "mitogen_linear": "mitogen", "adelie.fleet.mitogen_linear": "unpinned"}


def read_figures(path):
    """{key: (value, changed)} of the figures file, the last line of a key winning."""
    figures = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if len(fields) >= 2:
                figures[fields[0]] = (fields[1], fields[2] if len(fields) > 2 else "-")
    return figures


def last_timing(path, target, **wanted):
    """The fields of the last line of make.log for the target (and the wanted key=value pairs), or None."""
    found = None
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            date, rest = (line.split(" ", 1) + [""])[:2]
            fields = dict(item.split("=", 1) for item in rest.split() if "=" in item)
            if fields.get("target") == target and all(fields.get(k) == v for k, v in wanted.items()):
                found = dict(fields, date=date)
    return found


def seconds(figures, key):
    """The figure's seconds as a float, or None when it is missing or FAILED."""
    value = figures.get(key, ("",))[0]
    try:
        return float(value)
    except ValueError:
        return None


def changed_note(figures, key):
    """The text ', changed=N' for a playbook's figure, nothing for another."""
    changed = figures.get(key, ("", "-"))[1]
    return "" if changed == "-" else ", changed=%s" % changed


def goal_rows(figures):
    """(goal, bound, measured, ratio, met) for every goal."""
    rows = []
    strategy = figures.get("default_strategy", ("?",))[0]
    # The goal is the idempotent site.yml as ansible.cfg runs it: the executor with its strategy.
    variant = VARIANT_OF_STRATEGY.get(strategy)
    key = "site_idem_%s_best" % variant
    value = seconds(figures, key) if variant else None
    goal = "idempotent site.yml (strategy %s)" % strategy
    if value is None:
        why = "not measured" if variant else "no executor runs strategy %s" % strategy
        rows.append((goal, "%.0f s" % IDEMPOTENT_GOAL, figures.get(key, (why,))[0], "", "no"))
    else:
        measured, ratio = "%.1f s%s, best of 2" % (value, changed_note(figures, key)), "%.2f x bound" % (value / IDEMPOTENT_GOAL)
        # The executor's floor: as many no-op host-tasks (bench/executors.sh).
        ping, debug = seconds(figures, "site_idem_floor_ping"), seconds(figures, "site_idem_floor_debug")
        if ping and debug:
            measured += "; floor for its %s host-tasks: %.1f s as pings, %.1f s as debug" % (
                figures["site_idem_host_tasks"][0], ping, debug)
            ratio += ", %.2f x ping floor" % (value / ping)
        rows.append((goal, "%.0f s" % IDEMPOTENT_GOAL, measured, ratio, "yes" if value <= IDEMPOTENT_GOAL else "no"))

    value = seconds(figures, "check_diff")
    goal = "site.yml --check --diff (strategy %s)" % strategy
    if value is None:
        rows.append((goal, "%.0f s" % CHECK_GOAL, "not measured", "", "no"))
    else:
        rows.append((goal, "%.0f s" % CHECK_GOAL, "%.1f s%s" % (value, changed_note(figures, "check_diff")),
                     "%.2f x bound" % (value / CHECK_GOAL), "yes" if value <= CHECK_GOAL else "no"))

    value, floor = seconds(figures, "node_cold_best"), seconds(figures, "floor")
    goal = "node layer cold against the direct-apt floor"
    if value is None or not floor:
        rows.append((goal, "%.1f x floor" % NODE_LAYER_FACTOR, "not measured", "", "no"))
    else:
        rows.append((goal, "%.1f x floor = %.1f s" % (NODE_LAYER_FACTOR, NODE_LAYER_FACTOR * floor),
                     "%.1f s, best of 2; floor %.1f s" % (value, floor), "%.2f x floor" % (value / floor),
                     "yes" if value <= NODE_LAYER_FACTOR * floor else "no"))

    # A fresh machine: no lxd command when make up began.
    for target, bound, goal, wanted in (("up", UP_GOAL, "make up on a fresh machine", {"fresh": "yes"}),
                                        ("test", TEST_GOAL, "make test", {})):
        last = last_timing(TIMINGS, target, **wanted)
        if last is None:
            rows.append((goal, "%.0f min" % (bound / 60), "not recorded yet", "", ""))
            continue
        value = float(last["seconds"])
        rows.append((goal, "%.0f min" % (bound / 60), "%.0f s, exit %s, %s" % (value, last["exit"], last["date"][:16]),
                     "%.2f x bound" % (value / bound), "yes" if value <= bound and last["exit"] == "0" else "no"))
    return rows


def main():
    figures = read_figures(FIGURES)
    rows = [("goal", "bound", "measured", "ratio", "met")] + goal_rows(figures)
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    print("\nGoals (issue 16): this bench run; make up and make test from %s" % TIMINGS.relative_to(ROOT))
    for r in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(r, widths)).rstrip())
    failed = sorted(key for key, figure in figures.items() if figure[0] == "FAILED")
    if failed:
        print("FAILED in this run: %s" % " ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
