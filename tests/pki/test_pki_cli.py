"""`lab pki ...` (Typer sub-app) and `python -m pki ensure` (the Ansible entry point)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from typer.testing import CliRunner

from labdef import LabDefinition, as_vars
from pki.layout import Layout
from seclab.commands.pki import app
from tests.pki.pki_support import cert

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def lab_file(tmp_path: Path, lab: LabDefinition) -> Path:
    import yaml

    p = tmp_path / "lab.yml"
    p.write_text(yaml.safe_dump(lab.model_dump(mode="json")))
    return p


def _invoke(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.output


def test_init_then_status_json(lab_file: Path, tmp_path: Path) -> None:
    d = tmp_path / "pki"
    code, out = _invoke("init", "--lab", str(lab_file), "--dir", str(d), "--json")
    assert code == 0, out
    first = json.loads(out)
    assert first["changed"] and "edge" in first["issued"]
    code, out = _invoke("init", "--lab", str(lab_file), "--dir", str(d), "--json")
    assert code == 0 and json.loads(out)["changed"] is False
    code, out = _invoke("status", "--lab", str(lab_file), "--dir", str(d), "--json")
    assert code == 0, out
    st = json.loads(out)
    assert st["ok"] and st["ca_cert"] == str(d / "ca" / "ca-bundle.crt")
    names = {c["name"] for c in st["certificates"]}
    assert {"root", "intermediate", "edge", "seclab_app"} <= names
    edge = next(c for c in st["certificates"] if c["name"] == "edge")
    assert edge["verifies"] and "localhost" in edge["sans"] and 29 < edge["days_left"] <= 30


def test_status_fails_on_empty_dir(lab_file: Path, tmp_path: Path) -> None:
    code, out = _invoke("status", "--lab", str(lab_file), "--dir", str(tmp_path / "none"), "--json")
    assert code == 1
    assert "root" in json.loads(out)["missing"]


def test_rotate_runs_reload_hooks_and_reports_failure(lab_file: Path, tmp_path: Path) -> None:
    d = tmp_path / "pki"
    _invoke("init", "--lab", str(lab_file), "--dir", str(d))
    before = cert(Layout(d).cert("edge")).serial_number
    marker = tmp_path / "reloaded"
    code, out = _invoke(
        "rotate", "edge", "--lab", str(lab_file), "--dir", str(d), "--reload", f"touch {marker}"
    )
    assert code == 0, out
    assert marker.exists()
    assert cert(Layout(d).cert("edge")).serial_number != before
    code, out = _invoke("rotate", "edge", "--lab", str(lab_file), "--dir", str(d), "--reload", "false")
    assert code == 3
    code, out = _invoke("rotate", "nope", "--lab", str(lab_file), "--dir", str(d))
    assert code == 2


def test_revoke_command(lab_file: Path, tmp_path: Path) -> None:
    d = tmp_path / "pki"
    _invoke("init", "--lab", str(lab_file), "--dir", str(d))
    serial = cert(Layout(d).cert("app-redis")).serial_number
    code, out = _invoke(
        "revoke", "app-redis", "--reason", "key_compromise", "--lab", str(lab_file), "--dir", str(d)
    )
    assert code == 0, out
    crl = x509.load_pem_x509_crl(Layout(d).intermediate_crl.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None
    code, _ = _invoke("status", "--lab", str(lab_file), "--dir", str(d))
    assert code == 1  # a revoked certificate is a failing status
    code, _ = _invoke("revoke", "app-redis", "--reason", "bogus", "--lab", str(lab_file), "--dir", str(d))
    assert code == 2


def test_python_m_pki_ensure(lab: LabDefinition, tmp_path: Path) -> None:
    lab_json = tmp_path / "lab.json"
    lab_json.write_text(json.dumps(as_vars(lab)))
    d = tmp_path / "pki"
    cmd = [sys.executable, "-m", "pki", "ensure", "--lab-json", str(lab_json), "--dir", str(d)]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert out["changed"] is True and "postgres" in out["issued"]
    second = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    assert json.loads(second.stdout) | {"owners_skipped": []} == {
        "changed": False,
        "issued": [],
        "reasons": {},
        "fixed": [],
        "revoked": [],
        "crl_updated": False,
        "owners_skipped": [],
    }


def test_python_m_pki_bad_lab_json(tmp_path: Path) -> None:
    bad = tmp_path / "lab.json"
    bad.write_text(json.dumps({"lab": {"tenants": []}}))
    res = subprocess.run(
        [sys.executable, "-m", "pki", "ensure", "--lab-json", str(bad), "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert res.returncode == 2 and json.loads(res.stdout)["failed"] is True
