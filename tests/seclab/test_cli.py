"""The CLI's contract: one-line errors, and the `status --json` shape other tools rely on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import labdef
from labdef import status

ROOT = Path(__file__).resolve().parents[2]


def run_lab(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seclab.cli", *args], check=False, cwd=ROOT, capture_output=True, text=True, env=env, timeout=60
    )


def test_bad_lab_file_is_one_line_naming_field_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "lab.yml"
    bad.write_text("tenants:\n  - name: acme\nusers:\n  - username: alice\n    tenant: acme\n    roles: [boss]\n")
    res = run_lab("-f", str(bad), "validate")
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert f"{bad}:6: users.0.roles.0" in lines[0]
    assert "Traceback" not in res.stderr


def test_unknown_user_token_is_a_clear_error() -> None:
    res = run_lab("token", "mallory")
    assert res.returncode == 1
    assert "lab: error: no user 'mallory'" in res.stderr
    assert "Traceback" not in res.stderr


def test_status_json_has_the_architecture_keys(tmp_path: Path) -> None:
    # Point every port at something closed so the probe says "down" rather than guessing.
    lab = labdef.parse(
        "tenants: [{name: acme}]\nusers: [{username: alice, tenant: acme, roles: [user]}]\n"
        "ports: {postgres: 1, redis: 2, app: 3, idp: 4}\n"
        f"paths: {{etc: {tmp_path}, data: {tmp_path}, pki: {tmp_path}/pki}}\n"
    )
    st = status.collect(lab)
    assert set(st) >= {"edge", "api", "idp", "realm_export", "services"}
    assert set(st["edge"]) >= {"url", "ca_cert"} and st["edge"]["ca_cert"].startswith(str(tmp_path))
    assert st["idp"]["kind"] == "keycloak" and st["idp"]["label"] == f"Keycloak {lab.identity.keycloak_version}"
    assert {"postgres", "redis", "app", "idp", "edge"} <= set(st["services"])
    assert all(st["services"][name]["up"] is False for name in ("postgres", "redis", "app", "idp"))
    (tmp_path / "idp.json").write_text(json.dumps({"kind": "keycloak", "version": "26.7.3",
                                                   "issuer": "https://kc/realms/seclab"}))
    assert status.collect(lab)["idp"] == {"issuer": "https://kc/realms/seclab", "kind": "keycloak",
                                          "version": "26.7.3", "label": "Keycloak 26.7.3"}


@pytest.mark.parametrize("engine", ["terraform"])
def test_unknown_engine_is_refused(engine: str) -> None:
    res = run_lab("up", "--engine", engine)
    assert res.returncode == 1 and "unknown engine 'terraform'" in res.stderr
