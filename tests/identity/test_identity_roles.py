"""The keycloak and idp_standin roles: templates render with Ansible's own templating, every
default is documented, and ansible-playbook --syntax-check accepts a play that uses both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

import labdef

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "playbooks" / "roles"


def _trust(value: Any) -> Any:
    """Role defaults are templates too (Ansible trusts files from the role; a bare yaml load does not)."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: _trust(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_trust(v) for v in value]
    return value


def _render(role: str, template: str, **extra: Any) -> str:
    defaults = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())
    variables = {**labdef.as_vars(labdef.load(labdef.DEFAULT_PATH)), **_trust(defaults), **extra}
    templar = Templar(loader=DataLoader(), variables=variables)
    return str(templar.template(trust_as_template((ROLES / role / "templates" / template).read_text())))


def _conf(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


PW = {"keycloak_db_password_raw": {"content": "c2VjcmV0LXB3"}}  # base64("secret-pw"), a test value


def test_keycloak_conf_loopback_behind_the_edge() -> None:
    conf = _conf(_render("keycloak", "keycloak.conf.j2", **PW))
    assert conf["http-host"] == "127.0.0.1"
    assert conf["http-port"] == "8180"
    # The issuer base is the edge URL: users reach Keycloak through the edge (lab.edge_url).
    assert conf["hostname"] == "https://localhost" and conf["hostname-strict"] == "true"
    assert conf["proxy-headers"] == "xforwarded" and conf["proxy-trusted-addresses"] == "127.0.0.1/32"
    assert conf["db"] == "postgres" and conf["db-url"].startswith("jdbc:postgresql://127.0.0.1:5432/keycloak?sslmode=verify-full&")
    assert conf["db-password"] == "secret-pw"
    assert conf["health-enabled"] == conf["metrics-enabled"] == "true"
    assert "{{" not in json.dumps(conf)


def test_keycloak_conf_with_tls_disables_http() -> None:
    conf = _conf(_render("keycloak", "keycloak.conf.j2", keycloak_tls_cert_file=trust_as_template("/p/idp.crt"),
                         keycloak_tls_key_file=trust_as_template("/p/idp.key"), **PW))
    assert conf["http-enabled"] == "false" and conf["https-port"] == "8180"
    assert conf["https-certificate-file"] == "/p/idp.crt"


@pytest.mark.parametrize("role", ["keycloak", "idp_standin"])
def test_idp_record_is_json(role: str) -> None:
    data = json.loads(_render(role, "idp.json.j2", idp_kind="stand-in", idp_issuer="http://127.0.0.1:8180/realms/seclab"))
    assert data == {"kind": "stand-in", "issuer": "http://127.0.0.1:8180/realms/seclab", "realm": "seclab",
                    "stand_in": True}


def test_archive_comes_only_from_the_lab_definition() -> None:
    """No download is attempted unless lab.yml names an archive: offline hosts and CI use the stand-in."""
    defaults = yaml.safe_load((ROLES / "keycloak" / "defaults" / "main.yml").read_text())
    lab = labdef.as_vars(labdef.load(labdef.DEFAULT_PATH))
    templar = Templar(loader=DataLoader(), variables={**lab, **_trust(defaults)})
    assert templar.template(trust_as_template("{{ keycloak_archive }}")) == ""
    lab["lab"]["identity"]["keycloak_archive"] = "/srv/keycloak-26.0.7.tar.gz"
    templar = Templar(loader=DataLoader(), variables={**lab, **_trust(defaults)})
    assert templar.template(trust_as_template("{{ keycloak_archive }}")) == "/srv/keycloak-26.0.7.tar.gz"


@pytest.mark.parametrize("role", ["keycloak", "idp_standin"])
def test_every_default_has_a_comment(role: str) -> None:
    lines = (ROLES / role / "defaults" / "main.yml").read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith(("#", " ", "-")) and ":" in line:
            j = i - 1
            while j >= 0 and lines[j].startswith("#") is False and lines[j][:1].isalpha():
                j -= 1  # consecutive variables share the comment above them
            assert j >= 0 and lines[j].startswith("#"), f"{role}: {line.split(':')[0]} has no comment"


def test_syntax_check_of_a_play_with_both_roles(tmp_path: Path) -> None:
    play = tmp_path / "identity.yml"
    play.write_text(yaml.safe_dump([{
        "name": "identity", "hosts": "localhost", "gather_facts": False,
        "roles": [{"role": "keycloak"}, {"role": "idp_standin", "when": "seclab_idp_kind == 'stand-in'"}],
    }]))
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROLES), "ANSIBLE_CONFIG": str(ROOT / "playbooks" / "ansible.cfg")}
    bindir = Path(sys.executable).parent
    r = subprocess.run([str(bindir / "ansible-playbook"), "--syntax-check", "-i", "localhost,", str(play)],
                       env=env, capture_output=True, text=True, timeout=180, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
