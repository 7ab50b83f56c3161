# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bench/summary.py: the goals table at the end of `make bench`, from a figures file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SUMMARY = Path(__file__).resolve().parents[2] / "bench" / "summary.py"
spec = importlib.util.spec_from_file_location("bench_summary", SUMMARY)
summary = importlib.util.module_from_spec(spec)
spec.loader.exec_module(summary)


def rows(tmp_path, text):
    path = tmp_path / "figures"
    path.write_text(text)
    return {row[0]: row for row in summary.goal_rows(summary.read_figures(path))}


def test_the_idempotent_goal_shows_the_executors_floor(tmp_path):
    row = rows(tmp_path, "default_strategy mitogen_linear\nsite_idem_mitogen_best 55.0 0\nsite_idem_host_tasks 855\n"
                         "site_idem_floor_ping 37.8\nsite_idem_floor_debug 24.0\n")["idempotent site.yml (strategy mitogen_linear)"]
    assert row[2] == "55.0 s, changed=0, best of 2; floor for its 855 host-tasks: 37.8 s as pings, 24.0 s as debug"
    assert row[3] == "2.75 x bound, 1.46 x ping floor" and row[4] == "no"


def test_without_a_floor_the_goal_is_shown_alone(tmp_path):
    row = rows(tmp_path, "default_strategy mitogen_linear\nsite_idem_mitogen_best 19.0 0\n")[
        "idempotent site.yml (strategy mitogen_linear)"]
    assert row[2:] == ("19.0 s, changed=0, best of 2", "0.95 x bound", "yes")
