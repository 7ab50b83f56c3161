# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deb_packages action plugin: dpkg first, apt only for a missing package, retries, clear failures.

The host is a fake (its commands' answers are set per test); apt is never run. Controller-side imports
happen in a fixture that restores the controller mark (see test_fleet_model.py).
"""

from __future__ import annotations

from unittest.mock import MagicMock

import pytest
from ansible.module_utils import _internal

INSTALLED = "git installed\ncurl installed\nrsync not-installed\n"


@pytest.fixture
def plugin(monkeypatch):
    monkeypatch.setattr(_internal, "is_controller", _internal.is_controller)
    from ansible.errors import AnsibleActionFail
    from ansible_collections.adelie.fleet.plugins.action import deb_packages

    monkeypatch.setattr(deb_packages.time, "sleep", lambda seconds: None)
    return deb_packages, AnsibleActionFail


@pytest.fixture
def run(plugin):
    def run_action(args, dpkg=(0, INSTALLED), lists="/var/lib/apt/lists/deb.debian.org_Packages\n", apt=()):
        task = MagicMock(args=args, async_val=0, check_mode=False)
        action = plugin[0].ActionModule(task, MagicMock(), MagicMock(), MagicMock(), MagicMock(), MagicMock())
        commands = []

        def command(cmd, sudoable=True):
            commands.append(cmd)
            if cmd.startswith("dpkg-query"):
                return {"rc": dpkg[0], "stdout": dpkg[1], "stderr": "dpkg: error" if dpkg[0] > 1 else ""}
            return {"rc": 0, "stdout": lists, "stderr": ""}

        answers = list(apt) or [{"changed": True, "msg": "installed"}]
        action._low_level_execute_command = command
        action._execute_module = MagicMock(side_effect=answers)
        result = action.run(task_vars={"inventory_hostname": "dev-a"})
        return result, commands, action._execute_module

    return run_action


def test_missing_packages_reads_only_installed_lines(plugin):
    assert plugin[0].missing_packages(["git", "rsync", "zip"], INSTALLED) == ["rsync", "zip"]


def test_nothing_missing_is_one_query_and_no_apt(run):
    result, commands, apt = run({"names": ["git", "curl"]})
    assert result["changed"] is False and result["missing"] == []
    assert len(commands) == 1 and "'--showformat=${Package} ${db:Status-Status}\\n'" in commands[0]
    apt.assert_not_called()


def test_a_missing_package_runs_apt_once_with_all_names(run):
    result, commands, apt = run({"names": ["git", "rsync"], "install_recommends": True})
    assert result["changed"] is True and result["missing"] == ["rsync"]
    args = apt.call_args.kwargs["module_args"]
    assert apt.call_args.kwargs["module_name"] == "ansible.builtin.apt"
    assert args["name"] == ["git", "rsync"] and args["install_recommends"] is True
    assert args["update_cache"] is True and args["cache_valid_time"] == 86400


def test_no_package_lists_refresh_at_once(run):
    _result, _commands, apt = run({"names": ["rsync"]}, lists="")
    assert apt.call_args.kwargs["module_args"]["cache_valid_time"] == 0


def test_a_failed_apt_is_tried_again(run):
    result, _commands, apt = run({"names": ["rsync"]}, apt=[{"failed": True, "msg": "503"}, {"changed": True}])
    assert result["changed"] is True and apt.call_count == 2


def test_apt_failing_every_time_names_packages_host_and_tries(run, plugin):
    with pytest.raises(plugin[1], match=r"apt could not install rsync on dev-a \(3 tries\): Unable to fetch"):
        run({"names": ["git", "rsync"]}, apt=[{"failed": True, "msg": "Unable to fetch"}] * 3)


def test_dpkg_failing_is_an_error(run, plugin):
    with pytest.raises(plugin[1], match="dpkg-query failed"):
        run({"names": ["git"]}, dpkg=(2, ""))


@pytest.mark.parametrize("args", [{}, {"names": ["git"], "nmae": "x"}, {"names": ["git"], "retries": "many"}])
def test_bad_arguments_are_refused(run, plugin, args):
    with pytest.raises(plugin[1]):
        run(args)
