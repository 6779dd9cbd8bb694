"""The monitoring role follows the repository's rules: every variable documented in defaults, every
monitoring_* name used by tasks/handlers/templates defined there, processes bound to loopback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from .support import MONITORING, REPO, ROLE

DEFAULTS_TEXT = (ROLE / "defaults" / "main.yml").read_text()
DEFAULTS = yaml.safe_load(DEFAULTS_TEXT)


def test_every_default_has_a_comment() -> None:
    lines = DEFAULTS_TEXT.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[a-z_]+:", line):
            assert lines[i - 1].startswith("#"), f"no comment above {line.split(':')[0]}"


def test_every_used_variable_is_defined() -> None:
    registered = {
        "monitoring_scripts",
        "monitoring_pg_secret",
        "monitoring_pg_role_state",
        "monitoring_pg_password",
        "monitoring_redis_password",
        "monitoring_redis_pwfile",
        "monitoring_packaged_status",
    }
    sources = [*ROLE.rglob("*.yml"), *MONITORING.glob("*.j2"), *MONITORING.glob("rules/*.j2")]
    used = {m for p in sources for m in re.findall(r"\bmonitoring_[a-z_]+\b", p.read_text())}
    used -= {"monitoring_source_dir"} if "monitoring_source_dir" in DEFAULTS else set()
    assert used - set(DEFAULTS) - registered == set()


def test_processes_listen_on_loopback_and_take_no_secret_inline() -> None:
    commands = " ".join(p["command"] for p in DEFAULTS["monitoring_processes"])
    listens = re.findall(r"(?:listen-address[= ]|--listen )(\{\{ \w+ \}\}:|\S+)", commands)
    assert len(listens) == 7 and set(listens) == {"{{ monitoring_listen_host }}:"}, listens
    assert DEFAULTS["monitoring_listen_host"] == "127.0.0.1"
    assert "--cluster.listen-address=" in commands  # Alertmanager's gossip port stays closed
    assert "enable-lifecycle" not in commands and "enable-admin-api" not in commands
    assert not re.search(r"password(?!-file)[= ]", commands, re.IGNORECASE)
    env = next(p for p in DEFAULTS["monitoring_processes"] if p.get("environment"))["environment"]
    assert "DATA_SOURCE_PASS_FILE" in env and "DATA_SOURCE_NAME" not in env


def test_secret_handling_tasks_are_no_log() -> None:
    tasks = yaml.safe_load((ROLE / "tasks" / "credentials.yml").read_text())
    for task in tasks:
        touches_secret = "slurp" in str(task) or "PASSWORD" in str(task) or "password.json" in str(task)
        if touches_secret and "Generate" not in task["name"] and "Set owner" not in task["name"]:
            assert task.get("no_log") is True, task["name"]


def test_playbook_syntax(tmp_path: Path) -> None:
    play = tmp_path / "play.yml"
    play.write_text("- hosts: localhost\n  gather_facts: false\n  roles: [monitoring]\n")
    env = {
        "ANSIBLE_ROLES_PATH": str(REPO / "playbooks" / "roles"),
        "ANSIBLE_CONFIG": str(REPO / "playbooks" / "ansible.cfg"),
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    res = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "--syntax-check", str(play)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
