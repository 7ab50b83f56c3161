"""release_history: the file, the metrics, the rollback target, check mode and bad input."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.adelie.fleet.plugins.modules import release_history


def run(capsys, tmp_path, **args):
    with patch_module_args({"dir": str(tmp_path / "releases"), "env": "staging", **args}), pytest.raises(SystemExit):
        release_history.main()
    return json.loads(capsys.readouterr().out)


def release(commit, outcome="deployed", **extra):
    return {"commit": commit, "outcome": outcome, **extra}


def test_an_empty_history_reads_as_none(capsys, tmp_path):
    result = run(capsys, tmp_path)
    assert (result["changed"], result["releases"], result["current"], result["previous"]) == (False, [], None, None)


def test_record_writes_the_history_and_the_metrics(capsys, tmp_path):
    textfiles = tmp_path / "textfile"
    run(capsys, tmp_path, state="record", release=release("a" * 40, time=100), textfile=str(textfiles / "release.prom"))
    result = run(capsys, tmp_path, state="record", release=release("b" * 40, time=200), textfile=str(textfiles / "release.prom"))
    assert result["changed"] is True
    assert [r["commit"] for r in result["releases"]] == ["a" * 40, "b" * 40]
    assert result["current"]["commit"] == "b" * 40 and result["previous"]["commit"] == "a" * 40
    stored = json.loads((tmp_path / "releases" / "staging.json").read_text())
    assert stored["releases"][-1] == {"commit": "b" * 40, "outcome": "deployed", "time": 200, "env": "staging"}
    prom = (textfiles / "release.prom").read_text()
    assert 'adelie_fleet_release_info{env="staging",commit="%s"} 1' % ("b" * 40) in prom
    assert 'adelie_fleet_release_last_deploy_timestamp_seconds{env="staging"} 200' in prom
    assert 'adelie_fleet_release_last_outcome{env="staging",outcome="deployed"} 1' in prom
    assert 'adelie_fleet_release_last_outcome{env="staging",outcome="rolled_back"} 0' in prom


def test_a_rolled_back_deploy_keeps_the_current_release_and_says_so(capsys, tmp_path):
    textfiles = tmp_path / "textfile"
    run(capsys, tmp_path, state="record", release=release("good"), textfile=str(textfiles / "release.prom"), node="staging-1")
    result = run(capsys, tmp_path, state="record", release=release("bad", "rolled_back"), textfile=str(textfiles / "release.prom"),
                 node="staging-1")
    assert result["current"]["commit"] == "good"
    prom = (textfiles / "release.prom").read_text()
    assert 'adelie_fleet_release_info{env="staging",node="staging-1",commit="good"} 1' in prom
    assert 'adelie_fleet_release_last_outcome{env="staging",node="staging-1",outcome="rolled_back"} 1' in prom


@pytest.mark.parametrize("history, expected", [
    ([release("x"), release("a"), release("b")], "a"),
    # A rollback from b to a: the next one goes further back, never to b again.
    ([release("x"), release("a"), release("b"), release("a", via="rollback", **{"from": "b"})], "x"),
    ([release("a"), release("b"), release("a", via="rollback", **{"from": "b"})], None),
    # Failed deploys are never a target; a redeploy of the same commit is skipped.
    ([release("a"), release("c", "rolled_back"), release("b"), release("b")], "a"),
    ([release("a")], None),
])
def test_the_rollback_target(history, expected):
    found = release_history.previous(history)
    assert (found["commit"] if found else None) == expected


def test_check_mode_writes_nothing(capsys, tmp_path):
    result = run(capsys, tmp_path, state="record", release=release("a"), _ansible_check_mode=True)
    assert result["changed"] is True and not (tmp_path / "releases").exists()


def test_keep_drops_the_oldest(capsys, tmp_path):
    for commit in "abc":
        result = run(capsys, tmp_path, state="record", release=release(commit), keep=2)
    assert [r["commit"] for r in result["releases"]] == ["b", "c"]


@pytest.mark.parametrize("args, message", [
    ({"env": "Staging!"}, "env 'Staging!' is not an environment name"),
    ({"state": "record", "release": {"commit": "a", "outcome": "done"}}, "release needs a commit and an outcome"),
    ({"state": "record", "release": {"outcome": "deployed"}}, "release needs a commit"),
    ({"keep": 0}, "keep must be 1 or more"),
])
def test_bad_input_is_refused(capsys, tmp_path, args, message):
    result = run(capsys, tmp_path, **args)
    assert result["failed"] is True and message in result["msg"]
