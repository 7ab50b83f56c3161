"""roles/db_backup's adelie-fleet-backup without PostgreSQL: retention, the metric, the choice of a dump
and the restore's refusals (which must come before anything is changed)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "roles/db_backup/files/usr/local/sbin/adelie-fleet-backup"


@pytest.fixture(name="backup")
def _backup():
    loader = importlib.machinery.SourceFileLoader("adelie_fleet_backup", str(SCRIPT))
    spec = importlib.util.spec_from_loader("adelie_fleet_backup", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _config(backup, tmp_path, **extra):
    config = backup.load_config(str(tmp_path / "missing.conf"))
    config.update(BACKUP_DIR=str(tmp_path / "b"), TEXTFILE_DIR=str(tmp_path / "t"), **extra)
    (tmp_path / "t").mkdir(exist_ok=True)
    return config


def _dump(tmp_path, db, days_ago, kind="postgresql", ext="dump"):
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - days_ago * 86400))
    folder = tmp_path / "b" / kind / db
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ("%s-%s.%s" % (db, stamp, ext))
    path.write_bytes(b"PGDMP")
    return stamp


def test_retention_keeps_the_newest_or_the_young(backup, tmp_path):
    config = _config(backup, tmp_path, KEEP_COUNT="2", KEEP_DAYS="3")
    stamps = [_dump(tmp_path, "dev_hj", days) for days in (0, 1, 2, 5, 9)]
    _dump(tmp_path, "deploy", 30)
    (tmp_path / "b/postgresql/dev_hj/dev_hj-x.dump.partial").write_bytes(b"")
    removed = backup.prune(config, time.time())
    assert sorted(Path(p).name for p in removed) == sorted("dev_hj-%s.dump" % s for s in stamps[3:])
    kept = backup.dumps(config)
    assert [item[0] for item in kept["dev_hj"]] == stamps[:3] and len(kept["deploy"]) == 1


def test_metric_is_the_newest_complete_dump(backup, tmp_path):
    config = _config(backup, tmp_path)
    stamp = _dump(tmp_path, "dev_hj", 0)
    _dump(tmp_path, "dev_hj", 2)
    _dump(tmp_path, "redis", 1, kind="redis", ext="rdb")
    backup.write_metrics(config, [], time.time())
    text = (tmp_path / "t/adelie_fleet_backup.prom").read_text()
    assert 'adelie_fleet_backup_last_success_timestamp_seconds{db="dev_hj"} %d' % backup._stamp_seconds(stamp) in text
    assert 'adelie_fleet_backup_last_success_timestamp_seconds{db="redis"}' in text
    assert "adelie_fleet_backup_last_run_failures 0" in text


def test_choose_newest_or_at_or_before(backup):
    items = [("20260103T000000Z", "c"), ("20260102T000000Z", "b"), ("20260101T000000Z", "a")]
    assert backup.choose(items, None) == items[0]
    assert backup.choose(items, "20260102T120000Z") == items[1]
    assert backup.choose(items, "20251231T000000Z") is None


@pytest.mark.parametrize("args, message", [
    (["restore", "--db", "nope"], "no database nope"),
    (["restore", "--db", "deploy"], "no backup of deploy"),
    (["restore", "--db", "dev_hj", "--at", "yesterday"], "not a stamp"),
    (["restore", "--db", "dev_hj", "--at", "20000101T000000Z"], "at or before 20000101T000000Z"),
    (["restore", "--db", "dev_hj; drop"], "not a database name"),
])
def test_restore_refuses_before_changing_anything(backup, tmp_path, monkeypatch, capsys, args, message):
    config_file = tmp_path / "backup.conf"
    config_file.write_text("BACKUP_DIR=%s\n" % (tmp_path / "b"))
    _dump(tmp_path, "dev_hj", 1)
    monkeypatch.setattr(backup, "databases", lambda config: ["deploy", "dev_hj"])
    calls = []
    monkeypatch.setattr(backup, "as_postgres", lambda *a, **k: calls.append(a))
    assert backup.main(["--config", str(config_file)] + args) == 2
    assert message in capsys.readouterr().err
    assert calls == []


def test_list(backup, tmp_path, capsys):
    config_file = tmp_path / "backup.conf"
    config_file.write_text("BACKUP_DIR=%s\n" % (tmp_path / "b"))
    stamp = _dump(tmp_path, "dev_hj", 0)
    assert backup.main(["--config", str(config_file), "list", "--db", "dev_hj"]) == 0
    assert json.loads(capsys.readouterr().out) == {"dev_hj": [stamp]}
