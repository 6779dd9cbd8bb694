"""`lab backup|restore|tenant` helpers and the backup scheduler's decisions, without services."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import labdef
from labdef.errors import LabError
from seclab.commands.backup import BackupConfig, backup_rows, parse_target, pg_target, restore_argv
from seclab.commands.tenant import add_to_yaml, remove_from_yaml

ROOT = Path(__file__).resolve().parents[2]
CFG = BackupConfig(stanza="seclab", pg_user="postgres", data_dir="/d", socket_dir="/s", port=5432, bin_dir="/b",
                   server_process="postgresql", scheduler_process="pgbackrest-schedule", writers=["app"],
                   env_file="/e", app_url="https://127.0.0.1:8000", ca_file="/ca", client_cert="/c", client_key="/k")


def _scheduler() -> Any:
    path = ROOT / "playbooks/roles/postgresql/files/backup_schedule.py"
    spec = importlib.util.spec_from_file_location("backup_schedule", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_restore_time_needs_an_offset_and_is_sent_in_utc() -> None:
    with pytest.raises(LabError, match="offset"):
        parse_target("2026-12-02 17:30:00")
    with pytest.raises(LabError, match="ISO 8601"):
        parse_target("yesterday")
    when = parse_target("2026-12-02T19:30:00+02:00")
    assert when == datetime(2026, 12, 2, 17, 30, tzinfo=UTC)
    assert pg_target(when) == "2026-12-02 17:30:00.000000+00"


def test_restore_arguments() -> None:
    assert restore_argv(CFG, None) == ["pgbackrest", "--stanza=seclab", "--delta", "--log-level-console=info",
                                       "restore"]
    argv = restore_argv(CFG, parse_target("2026-12-02 17:30:00+00:00"))
    assert "--type=time" in argv and "--target=2026-12-02 17:30:00.000000+00" in argv
    assert "--target-action=promote" in argv and argv[-1] == "restore"


def test_backup_rows_from_pgbackrest_info() -> None:
    info = {"backup": [{"label": "20261202-170000F", "type": "full", "timestamp": {"start": 100, "stop": 160},
                        "info": {"size": 5, "repository": {"delta": 3}},
                        "archive": {"start": "A", "stop": "B"}}]}
    (row,) = backup_rows(info)
    assert row["type"] == "full" and row["seconds"] == 60 and row["repo_bytes"] == 3 and row["wal"] == "A..B"


def test_scheduler_takes_full_then_incremental_when_due() -> None:
    s = _scheduler()
    day, hour = 86400.0, 3600.0
    assert s.due([], 1000.0, day, hour) == "full"
    full = {"type": "full", "timestamp": {"start": 0, "stop": 1000}}
    assert s.due([full], 1000.0 + 10, day, hour) is None
    assert s.due([full], 1000.0 + hour, day, hour) == "incr"
    assert s.due([full], 1000.0 + day, day, hour) == "full"
    text = s.metrics("seclab", [full], 2)
    assert 'seclab_backup_last_success_timestamp_seconds{stanza="seclab"} 1000' in text
    assert 'seclab_backup_failures_total{stanza="seclab"} 2' in text
    assert "seclab_backup_last_success_timestamp_seconds{" not in s.metrics("seclab", [], 0)


def test_tenant_add_then_remove_gives_back_the_same_lab_yml() -> None:
    text = (ROOT / "lab.yml").read_text(encoding="utf-8")
    added = add_to_yaml(text, "zeta", "Zeta: Inc")
    assert labdef.parse(added).tenant_names()[-1] == "zeta"
    assert remove_from_yaml(added, "zeta") == text
    with pytest.raises(LabError, match="not in lab.yml"):
        remove_from_yaml(text, "zeta")
