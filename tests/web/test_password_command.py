"""`./lab password USER`: root only, and the password is the ONLY output (it goes into pipes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from labdef.errors import LabError
from seclab.commands.password import require_root

ROOT = Path(__file__).resolve().parents[2]


def lab_file(tmp_path: Path) -> Path:
    secrets = tmp_path / "secrets"
    (secrets / "users").mkdir(parents=True)
    (secrets / "users" / "alice.password").write_text("0123456789abcdef" * 4 + "\n")
    (secrets / "users" / "admin.totp").write_text("JBSWY3DPEHPK3PXP\n")
    f = tmp_path / "lab.yml"
    f.write_text(
        "tenants: [{name: acme}]\n"
        "users: [{username: alice, tenant: acme, roles: [user]}, {username: admin, roles: [lab-admin]}]\n"
        f"paths: {{secrets: {secrets}, etc: {tmp_path}, data: {tmp_path}, pki: {tmp_path}/pki}}\n"
    )
    return f


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "seclab.cli", *args], cwd=ROOT, check=False, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(os.geteuid() != 0, reason="the command is root-only; this checks its output as root")
def test_prints_the_password_and_nothing_else(tmp_path: Path) -> None:
    res = run("-f", str(lab_file(tmp_path)), "password", "alice")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "0123456789abcdef" * 4 + "\n"
    assert res.stderr == ""


@pytest.mark.skipif(os.geteuid() != 0, reason="the command is root-only")
def test_totp_prints_a_six_digit_code_for_lab_admins_only(tmp_path: Path) -> None:
    f = str(lab_file(tmp_path))
    res = run("-f", f, "password", "admin", "--totp")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().isdigit() and len(res.stdout.strip()) == 6 and res.stderr == ""
    res = run("-f", f, "password", "alice", "--totp")
    assert res.returncode == 1 and res.stdout == ""
    assert "only lab-admin users" in res.stderr


def test_unknown_user_is_one_line_on_stderr(tmp_path: Path) -> None:
    res = run("-f", str(lab_file(tmp_path)), "password", "mallory")
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.startswith("lab: error:") and "Traceback" not in res.stderr


def test_non_root_is_refused_before_reading_anything() -> None:
    with pytest.raises(LabError, match="root only"):
        require_root(lambda: 1000)
    require_root(lambda: 0)
